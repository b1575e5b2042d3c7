"""Model files users bring: plain Keras models saved by their own code, not by
``emotionkit train`` (functional, Sequential; ``.keras`` and legacy ``.h5``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import small_cnn


def _sequential(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((48, 48, 1)),
        keras.layers.Conv2D(8, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(7, activation="softmax"),
    ])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("build", [_sequential, lambda: small_cnn(7)],
                         ids=["sequential", "functional"])
def test_plain_model_files_load_and_classify_real_faces(
        build, suffix: str, tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """A Sequential model (the commonest way to write a small CNN) failed to load with a
    raw KeyError from the batch-norm folding step; the classifier must give the model's
    own probabilities."""
    from emotionkit import EmotionRecognizer

    model = build()
    path = tmp_path / f"model{suffix}"
    model.save(path)
    rec = EmotionRecognizer(detector="none", classifier=path)
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    crops = [cv2.resize(gray[y:y + 120, x:x + 120], (48, 48), interpolation=cv2.INTER_AREA)
             for y, x in ((60, 160), (70, 170), (40, 150), (200, 200))]  # the face, and not
    got = rec.classify(crops)
    # a bare model file is fed pixels / 255 (docs/models.md)
    x = np.stack(crops)[..., None].astype("float32") / 255.0
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert rec.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
