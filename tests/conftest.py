"""Shared fixtures: real face images and the FER2013 data in ../shared (when present)."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTIONKIT_SHARED", ROOT.parent / "shared"))
FER_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED / "data" / "fer2013" / "ferplus.csv.gz"

needs_shared = pytest.mark.skipif(
    not FER_CSV.is_file(),
    reason=f"FER2013 not found at {FER_CSV} (../shared is only in the project's CI and "
    "dev machines; set EMOTIONKIT_SHARED to its location)",
)


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut photo (one real frontal face), BGR uint8 512x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def frame_640x480(astronaut_bgr: np.ndarray) -> np.ndarray:
    """A 640x480 BGR frame holding the astronaut photo's face region once."""
    frame = np.full((480, 640, 3), 90, dtype=np.uint8)
    frame[40:440, 120:520] = astronaut_bgr[0:400, 40:440]
    return frame


@pytest.fixture(scope="session")
def fer_rows() -> list[tuple[int, np.ndarray, str]]:
    """The first 600 rows of ../shared FER2013 as (label code, 48x48 uint8, usage)."""
    if not FER_CSV.is_file():
        pytest.skip(f"FER2013 not found at {FER_CSV}")
    rows = []
    with gzip.open(FER_CSV, "rt") as f:
        next(f)
        for line in f:
            emotion, pixels, usage = line.rstrip("\n").split(",")
            img = np.array(pixels.split(), dtype=np.uint8).reshape(48, 48)
            rows.append((int(emotion), img, usage))
            if len(rows) == 600:
                break
    return rows


def save_model_dir(directory: Path, model, labels, **config) -> Path:
    """Save a Keras ``model`` as an emotionkit model directory (model.keras + config.json)."""
    from emotionkit.classifiers import ModelConfig

    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model.keras")
    ModelConfig(labels=tuple(labels), input_size=tuple(model.input_shape[1:3]),
                channels=model.input_shape[3], **config).write(directory)
    return directory


def small_cnn(num_classes: int, input_shape=(48, 48, 1), seed: int = 0):
    """A small real Keras CNN (softmax output), built the same way in every test."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def fer7_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained 7-class FER-shaped model directory (for I/O and CLI behaviour)."""
    from emotionkit import FER_LABELS

    return save_model_dir(tmp_path_factory.mktemp("fer7"), small_cnn(7), FER_LABELS)


@pytest.fixture(scope="session")
def brightness_model_dir(
    tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray
) -> Path:
    """A model trained here on real face crops to tell 'bright' from 'dark' faces.

    Trained on the astronaut's face (box found by MediaPipe, cropped, jittered, brightened
    or darkened). It lets tests check that the recognizer crops the face and preprocesses
    it the way the model expects, end to end, with a real trained model file.
    """
    import cv2
    import keras

    rng = np.random.default_rng(0)
    face = astronaut_bgr[82:178, 177:273]
    xs, ys = [], []
    for i in range(400):
        label = i % 2
        dx, dy = rng.integers(-8, 9, size=2)
        crop = astronaut_bgr[max(0, 82 + dy):178 + dy, max(0, 177 + dx):273 + dx]
        gain = rng.uniform(1.4, 1.8) if label == 0 else rng.uniform(0.35, 0.6)
        crop = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        gray = cv2.cvtColor(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_BGR2GRAY)
        xs.append(gray[:, :, None])
        ys.append(label)
    assert face.shape[:2] == (96, 96)
    x = np.stack(xs).astype(np.float32) / 255.0
    y = np.array(ys)
    model = small_cnn(2, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return save_model_dir(tmp_path_factory.mktemp("bright"), model, ("bright", "dark"))


@contextlib.contextmanager
def killed_at_epoch(epoch: int) -> Iterator[None]:
    """Inside: a training run is killed (``KeyboardInterrupt``) as epoch ``epoch``
    (1-based) begins, after the earlier epochs' checkpoints were written."""
    from emotionkit.training import trainer as trainer_module

    original = trainer_module._RunState.on_epoch_begin

    def kill(self, index, logs=None):
        if index + 1 == epoch:
            raise KeyboardInterrupt("simulated kill")
        original(self, index, logs)

    trainer_module._RunState.on_epoch_begin = kill
    try:
        yield
    finally:
        trainer_module._RunState.on_epoch_begin = original


def spreadsheet_resave(path: Path, out: Path) -> Path:
    """The csv ``path`` as a spreadsheet re-saves it, written to ``out``: a UTF-8 byte-order
    mark and a space after every comma."""
    out.write_text("\ufeff" + path.read_text().replace(",", ", "), encoding="utf-8")
    return out


def cli_json(*args: str) -> Any:
    """The JSON that ``emotionkit ARGS`` prints (run in-process; it must succeed)."""
    import json

    from click.testing import CliRunner

    from emotionkit.cli import main

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def without_root_file_access() -> list[str]:
    """A command prefix under which file permissions hold: none for a normal user; for
    root (CI, containers), setpriv drops the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
