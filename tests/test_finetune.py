"""Fine-tuning: a run that starts from a trained model's weights (``init_from``,
``emotionkit train --init-from``), on real face crops told apart by brightness."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import FER_CSV, needs_shared
from emotionkit.classifiers import load_classifier
from emotionkit.cli import main
from emotionkit.registry import list_classifiers
from emotionkit.training import ImageData, Trainer, TrainingError
from test_datasets import write_face_folders
from test_distill import TINY, _lit_faces

# one epoch at a learning rate too small to change anything: what such a run saves is
# what it started from
FROZEN = {"arch_options": TINY, "epochs": 1, "batch_size": 16, "learning_rate": 1e-9,
          "progress": False, "augment": False, "seed": 3}


@pytest.fixture(scope="module")
def lit() -> tuple[ImageData, ImageData]:
    pixels, truth = _lit_faces(128, seed=11)
    val_pixels, val_truth = _lit_faces(48, seed=12)
    return (ImageData(pixels, truth, ("bright", "dark"), name="lit"),
            ImageData(val_pixels, val_truth, ("bright", "dark"), name="val"))


@pytest.fixture(scope="module")
def base_run(lit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fer-cnn trained here to tell bright from dark faces."""
    out = tmp_path_factory.mktemp("base") / "run"
    Trainer(out, arch_options=TINY, epochs=6, batch_size=16, learning_rate=3e-3,
            progress=False, seed=1, augment=False).fit(*lit)
    return out


def _accuracy(run: Path, data: ImageData) -> float:
    classifier = load_classifier(run)
    assert classifier.labels == data.labels
    return float((classifier.predict_pixels(data.pixels).argmax(axis=1)
                  == data.targets).mean())


def test_run_starts_from_the_model_it_is_given(lit, base_run: Path, tmp_path: Path) -> None:
    train, val = lit
    assert _accuracy(base_run, val) >= 0.9
    Trainer(tmp_path / "ft", init_from=base_run, **FROZEN).fit(train, val)
    Trainer(tmp_path / "cold", **FROZEN).fit(train, val)
    assert _accuracy(tmp_path / "ft", val) >= 0.9

    def kernels(run: Path) -> list[np.ndarray]:
        model = load_classifier(run).model
        return [layer.get_weights()[0] for layer in model.layers
                if layer.name.endswith("conv1") or layer.name == "probs"]

    base, tuned, cold = kernels(base_run), kernels(tmp_path / "ft"), kernels(tmp_path / "cold")
    assert len(base) == 3  # two blocks' first convolutions and the output layer
    assert all(np.allclose(b, t, atol=1e-5) for b, t in zip(base, tuned))
    assert not any(np.allclose(b, c, atol=1e-3) for b, c in zip(base, cold))
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["training"]["init_from"] == str(base_run)


def test_output_units_follow_label_names(lit, base_run: Path, tmp_path: Path) -> None:
    # the same faces with the labels listed the other way round
    swap = [ImageData(d.pixels, 1 - d.targets, ("dark", "bright"), d.name) for d in lit]
    Trainer(tmp_path / "swap", init_from=base_run, **FROZEN).fit(*swap)
    assert _accuracy(tmp_path / "swap", swap[1]) >= 0.9
    # a label the model lacks gets a fresh unit; the others keep theirs (the first two
    # faces of each split relabelled "grey", so that every label has images)
    three = [ImageData(d.pixels, np.where(np.arange(len(d)) < 2, 0, d.targets + 1),
                       ("grey", "bright", "dark"), d.name) for d in lit]
    Trainer(tmp_path / "three", init_from=base_run, **FROZEN).fit(*three)
    kernel = load_classifier(base_run).model.get_layer("probs").get_weights()[0]
    new = load_classifier(tmp_path / "three").model.get_layer("probs").get_weights()[0]
    assert np.allclose(new[:, 1:], kernel, atol=1e-4)
    assert not np.allclose(new[:, 0], kernel[:, 0], atol=1e-2)


def test_init_from_a_different_architecture_is_refused(lit, base_run: Path,
                                                       tmp_path: Path) -> None:
    options = {**FROZEN, "arch_options": {**TINY, "widths": (8, 32)}}
    with pytest.raises(TrainingError, match="same --arch and --arch-option"):
        Trainer(tmp_path / "wide", init_from=base_run, **options).fit(*lit)


def test_cli_init_from_errors_are_one_line(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=8)
    base = ["train", str(root), "--epochs", "1", "--quiet", "--arch-option", "widths=[8,16]"]
    missing = tmp_path / "missing"
    for spec in (str(missing), "nosuch"):  # exit 2 as an unknown classifier elsewhere
        result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a"),
                                           "--init-from", spec])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.splitlines() == [
            f"error: --init-from: unknown classifier {spec!r}: not a registered name "
            f"({', '.join(list_classifiers())}) and no such model file or directory"], result.output
        assert not (tmp_path / "a").exists()
    long_name = "a" * 300  # too long for a file name: an error line, not an OSError traceback
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a"),
                                       "--init-from", long_name])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"error: --init-from: {'a' * 80}...: not a classifier "
                                    "name or a usable path (File name too long)")
    # the bundled fer-cnn is 4 blocks wide, this run 2: a clear refusal
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "b"),
                                       "--init-from", "fer-cnn"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "same --arch and --arch-option values" in result.output


@needs_shared
def test_cli_fine_tunes_the_bundled_model_on_real_fer2013(tmp_path: Path) -> None:
    """400 real Training rows and the first 600 PublicTest rows; one epoch at a small
    learning rate keeps what the bundled model knows."""
    csv = tmp_path / "fer.csv"
    counts = {"Training": 0, "PublicTest": 0}
    with gzip.open(FER_CSV, "rt") as src, open(csv, "w") as dst:
        dst.write(next(src))
        for line in src:
            usage = line.rstrip("\n").rsplit(",", 1)[1]
            if counts.get(usage, 600) < (400 if usage == "Training" else 600):
                counts[usage] += 1
                dst.write(line)
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(csv), "--out", str(tmp_path / "ft"),
                                  "--init-from", "fer-cnn", "--lr", "1e-5", "--epochs", "1",
                                  "--batch-size", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    accuracy = {}
    for name in ("fer-cnn", str(tmp_path / "ft")):
        result = runner.invoke(main, ["evaluate", str(csv), "--classifier", name, "--split",
                                      "PublicTest", "--format", "json"])
        assert result.exit_code == 0, result.output
        accuracy[name] = json.loads(result.output)["accuracy"]
    tuned = accuracy[str(tmp_path / "ft")]
    # the bundled model scores 66% on PublicTest; a model from random weights ~25% here
    assert tuned > 0.6 and abs(tuned - accuracy["fer-cnn"]) < 0.03, accuracy
