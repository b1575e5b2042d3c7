"""Knowledge distillation: a student trained on pure-noise labels learns its teacher.

The teacher is the ``brightness_model_dir`` model (trained in the test session on real
face crops to tell bright from dark faces); the student's training labels are coin flips.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from emotionkit.classifiers import load_classifier
from emotionkit.cli import main
from emotionkit.errors import EmotionKitError
from emotionkit.registry import list_classifiers
from emotionkit.training import ImageData, Trainer, TrainingError
from emotionkit.training.datasets import DatasetError
from emotionkit.training.distill import (
    SoftLabelFile,
    cross_fitted_soft_labels,
    distillation_targets,
    fold_index,
    save_soft_labels,
    soft_labels,
)
from test_datasets import face_crops, write_face_folders

TINY = {"widths": (8, 16), "dropout": 0.1, "head_dropout": 0.1, "bn_momentum": 0.7}


def _lit_faces(n: int, seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Gray real face crops, alternately brightened (truth 0) and darkened (truth 1)."""
    pixels, truth = [], []
    for i, crop in enumerate(face_crops(n, seed=seed)):
        gain = 1.6 if i % 2 == 0 else 0.45
        lit = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        gray = cv2.cvtColor(cv2.resize(lit, (size, size), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_BGR2GRAY)
        pixels.append(gray[:, :, None])
        truth.append(i % 2)
    return np.stack(pixels), np.array(truth)


@pytest.fixture(scope="module")
def noisy() -> tuple[ImageData, ImageData, np.ndarray]:
    """Training data with coin-flip labels, validation data with the true ones."""
    pixels, truth = _lit_faces(160, seed=5)
    flips = np.random.default_rng(0).integers(0, 2, size=len(truth))
    train = ImageData(pixels, flips, ("bright", "dark"), name="coin flips")
    val_pixels, val_truth = _lit_faces(48, seed=6)
    val = ImageData(val_pixels, val_truth, ("bright", "dark"), name="val")
    return train, val, truth


def test_soft_labels_follow_the_teacher(brightness_model_dir: Path, noisy) -> None:
    train, _, truth = noisy
    teacher = load_classifier(brightness_model_dir)
    soft = soft_labels(teacher, train, temperature=1.0)
    assert soft.shape == (len(train), 2) and np.allclose(soft.sum(axis=1), 1, atol=1e-5)
    assert (soft.argmax(axis=1) == truth).mean() > 0.9
    # the same faces at another size go through the teacher's own resizing (BGR crops)
    pixels64, _ = _lit_faces(160, seed=5, size=64)
    resized = soft_labels(teacher, ImageData(pixels64, train.targets, train.labels))
    assert (resized.argmax(axis=1) == soft.argmax(axis=1)).mean() > 0.9
    # a higher temperature gives softer targets, the same ranking
    hot = soft_labels(teacher, train, temperature=4.0)
    assert (hot.max(axis=1) <= soft.max(axis=1) + 1e-6).all()
    assert (hot.argmax(axis=1) == soft.argmax(axis=1)).all()
    mixed = distillation_targets(train, soft, 0.25)
    np.testing.assert_allclose(mixed, 0.75 * np.eye(2)[train.targets] + 0.25 * soft, atol=1e-6)
    with pytest.raises(DatasetError, match="teacher has no label 'happy'"):
        soft_labels(teacher, ImageData(train.pixels, train.targets, ("happy", "dark")))
    # an ensemble averages its teachers' probabilities, then applies the temperature
    inverted = soft_labels(teacher, ImageData(255 - train.pixels, train.targets,
                                              train.labels), temperature=1.0, tta=False)
    plain = soft_labels(teacher, train, temperature=1.0, tta=False)
    assert (inverted.argmax(axis=1) != plain.argmax(axis=1)).mean() > 0.5
    both = soft_labels([teacher, _Inverted(teacher)], train, temperature=4.0, tta=False)
    mean = (plain + inverted) / 2
    np.testing.assert_allclose(both, mean ** 0.25 / (mean ** 0.25).sum(axis=1, keepdims=True),
                               atol=1e-5)
    # a teacher named twice counts twice but classifies the images once
    twice = _Inverted(teacher)
    weighted = soft_labels([teacher, twice, twice], train, temperature=1.0, tta=False)
    np.testing.assert_allclose(weighted, (plain + 2 * inverted) / 3, atol=1e-5)
    assert twice.calls == 1
    with pytest.raises(ValueError, match="no teacher"):
        soft_labels([], train)


class _Inverted:
    """A second, different teacher: the real one shown brightness-inverted faces."""

    def __init__(self, classifier) -> None:
        self.labels = classifier.labels
        self._classifier = classifier
        self.calls = 0

    def predict_pixels(self, pixels: np.ndarray, tta: bool = False) -> np.ndarray:
        self.calls += 1
        return self._classifier.predict_pixels(255 - pixels, tta=tta)


def test_student_learns_the_teacher_not_the_noisy_labels(
    brightness_model_dir: Path, noisy, tmp_path: Path
) -> None:
    train, val, _ = noisy
    agreement = {}
    for weight, teachers in ((0.0, [brightness_model_dir]),
                             (1.0, [brightness_model_dir, brightness_model_dir])):
        out = tmp_path / f"w{weight}"
        Trainer(out, arch_options=TINY, epochs=6, batch_size=16, learning_rate=3e-3,
                progress=False, seed=1, augment=False, teacher=teachers,
                teacher_weight=weight, teacher_temperature=1.0).fit(train, val)
        student = load_classifier(out)
        agreement[weight] = (student.predict_pixels(val.pixels).argmax(axis=1)
                             == val.targets).mean()
        config = json.loads((out / "config.json").read_text())
        assert config["training"]["teacher"] == {
            "models": [str(t) for t in teachers], "weight": weight, "temperature": 1.0}
    assert agreement[1.0] >= 0.9 > 0.75 > agreement[0.0], agreement


def test_cli_teacher_errors_are_one_line(tmp_path: Path, brightness_model_dir: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=8)
    runner = CliRunner()
    base = ["train", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet",
            "--arch-option", "widths=[8,16]"]
    result = runner.invoke(main, [*base, "--teacher", str(brightness_model_dir)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "teacher has no label 'happy'" in result.output
    # an unknown teacher is a bad option (exit 2, as an unknown classifier elsewhere),
    # refused before the data is loaded
    missing = tmp_path / "missing"
    result = runner.invoke(main, [*base, "--teacher", "fer-cnn", "--teacher", str(missing)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines() == [
        f"error: --teacher: unknown classifier {str(missing)!r}: not a registered name "
        f"({', '.join(list_classifiers())}) and no such model file or directory"], result.output
    with pytest.raises(TrainingError, match="teacher_weight"):
        Trainer(tmp_path / "x", teacher="fer-cnn", teacher_weight=2.0)


def test_resume_reuses_the_soft_labels_without_the_teachers(
    brightness_model_dir: Path, noisy, tmp_path: Path
) -> None:
    train, val, _ = noisy
    teacher = tmp_path / "teacher"
    shutil.copytree(brightness_model_dir, teacher)
    out = tmp_path / "run"

    def trainer(epochs: int, resume: bool) -> Trainer:
        return Trainer(out, arch_options=TINY, epochs=epochs, batch_size=16, progress=False,
                       seed=1, augment=False, teacher=[teacher], teacher_weight=1.0,
                       resume=resume)

    trainer(1, False).fit(train, val)
    stored = out / "checkpoint" / "teacher_soft_labels.npz"
    assert stored.is_file()
    shutil.rmtree(teacher)  # the resumed run has what it needs in its checkpoint
    trainer(2, True).fit(train, val)
    assert len(json.loads((out / "metrics.json").read_text())["history"]["val_accuracy"]) == 2
    # a fresh run in another directory does need its teachers
    with pytest.raises(EmotionKitError, match="no such model file"):
        Trainer(tmp_path / "other", arch_options=TINY, epochs=1, progress=False,
                teacher=[teacher]).fit(train, val)


def test_soft_label_file_is_a_teacher(brightness_model_dir: Path, noisy, tmp_path: Path) -> None:
    train, val, _ = noisy
    soft = soft_labels(load_classifier(brightness_model_dir), train, temperature=1.0)
    path = save_soft_labels(tmp_path / "soft.npz", train, soft)
    out = tmp_path / "student"
    Trainer(out, arch_options=TINY, epochs=6, batch_size=16, learning_rate=3e-3,
            progress=False, seed=1, augment=False, teacher=path, teacher_weight=1.0,
            teacher_temperature=1.0).fit(train, val)
    student = load_classifier(out)
    assert (student.predict_pixels(val.pixels).argmax(axis=1) == val.targets).mean() >= 0.9
    # made for other images (here: the validation images): refused, naming the file
    with pytest.raises(DatasetError, match="soft.npz: soft labels for other images"):
        Trainer(tmp_path / "other", arch_options=TINY, epochs=1, progress=False,
                teacher=path).fit(val, val)
    with pytest.raises(ValueError, match="expected"):
        save_soft_labels(tmp_path / "bad.npz", train, soft[:, :1])


def test_cli_bad_soft_label_file_is_one_line(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=8)
    bad = tmp_path / "votes.npz"
    np.savez(bad, numbers=np.zeros(3))
    base = ["train", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet",
            "--arch-option", "widths=[8,16]"]
    for teacher, message, code in (
            (bad, "votes.npz: not a soft-label file", 1),
            (tmp_path / "none.npz", f"error: --teacher: {tmp_path / 'none.npz'}: no such "
                                    "soft-label file", 2)):  # a bad option, found up front
        result = CliRunner().invoke(main, [*base, "--teacher", str(teacher)])
        assert result.exit_code == code and "Traceback" not in result.output
        assert message in result.output and len(result.output.strip().splitlines()) <= 2


def test_fold_index_is_stratified_and_seeded() -> None:
    targets = np.repeat([0, 1, 2], [10, 7, 3])
    folds = fold_index(targets, 3, seed=4)
    assert sorted(set(folds.tolist())) == [0, 1, 2]
    for label in range(3):
        counts = np.bincount(folds[targets == label], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert (fold_index(targets, 3, seed=4) == folds).all()
    assert (fold_index(targets, 3, seed=5) != folds).any()


def test_cross_fitted_teachers_label_images_they_did_not_train_on(tmp_path: Path) -> None:
    pixels, truth = _lit_faces(96, seed=7)
    train = ImageData(pixels, truth, ("bright", "dark"), name="lit")
    val_pixels, val_truth = _lit_faces(32, seed=8)
    val = ImageData(val_pixels, val_truth, ("bright", "dark"), name="val")

    def teacher(k: int) -> Trainer:
        return Trainer(tmp_path / f"teacher-{k}", arch_options=TINY, epochs=5, batch_size=16,
                       learning_rate=3e-3, progress=False, seed=k, augment=False, resume=True)

    soft = cross_fitted_soft_labels(teacher, train, val, folds=2, seed=0)
    assert soft.shape == (96, 2) and np.allclose(soft.sum(axis=1), 1, atol=1e-5)
    assert (soft.argmax(axis=1) == truth).mean() >= 0.85  # teachers generalise to their fold
    folds = fold_index(truth, 2, seed=0)
    for k in range(2):
        config = json.loads((tmp_path / f"teacher-{k}" / "config.json").read_text())
        assert config["data"]["train"]["images"] == int((folds != k).sum())
    # the file they make is a teacher for a student on exactly these images
    save_soft_labels(tmp_path / "cross.npz", train, soft)
    Trainer(tmp_path / "student", arch_options=TINY, epochs=1, batch_size=16, progress=False,
            teacher=tmp_path / "cross.npz").fit(train, val)
    # a second call reuses both finished teachers as they are: nothing is scored or
    # written again (it used to re-run fit on each: new metrics.json, plots, config.json)
    outputs = ("metrics.json", "config.json", "history.png", "confusion_matrix.png")
    written = {(k, name): (tmp_path / f"teacher-{k}" / name).stat().st_mtime_ns
               for k in range(2) for name in outputs}
    assert np.allclose(cross_fitted_soft_labels(teacher, train, val, folds=2, seed=0), soft)
    assert written == {(k, name): (tmp_path / f"teacher-{k}" / name).stat().st_mtime_ns
                       for k in range(2) for name in outputs}
    # other folds are other training data: not those teachers' run, whatever it holds
    with pytest.raises(TrainingError, match="the train data differ"):
        cross_fitted_soft_labels(teacher, train, val, folds=2, seed=1)


def test_a_damaged_soft_label_cache_is_computed_again(brightness_model_dir: Path, noisy,
                                                      tmp_path: Path) -> None:
    """The checkpoint's teacher_soft_labels.npz is a cache: cut short (a disk filled while
    it was written elsewhere, a bad copy), a resume stopped with a BadZipFile traceback;
    now it warns and asks the teachers again."""
    train, val, _ = noisy
    out = tmp_path / "run"

    def trainer(epochs: int, resume: bool) -> Trainer:
        return Trainer(out, arch_options=TINY, epochs=epochs, batch_size=16, progress=False,
                       seed=1, augment=False, teacher=[brightness_model_dir],
                       teacher_weight=1.0, resume=resume)

    trainer(1, False).fit(train, val)
    stored = out / "checkpoint" / "teacher_soft_labels.npz"
    first = stored.read_bytes()
    stored.write_bytes(first[:100])
    trainer(2, True).fit(train, val)
    assert len(json.loads((out / "metrics.json").read_text())["history"]["val_accuracy"]) == 2
    assert stored.read_bytes() == first  # computed again, the same


def test_a_cut_short_soft_label_file_is_one_error(tmp_path: Path) -> None:
    """A soft-label .npz cut short (a failed copy) raised zipfile.BadZipFile, which is no
    OSError or ValueError: a traceback."""
    cut = tmp_path / "cut.npz"
    np.savez(cut, labels=np.array(["a", "b"]), fingerprint=np.array("x"),
             soft=np.full((50, 2), 0.5))
    cut.write_bytes(cut.read_bytes()[:60])
    with pytest.raises(DatasetError, match=r"cut\.npz: not a soft-label file"):
        SoftLabelFile(cut)


def test_cross_fitting_continues_a_teacher_with_more_epochs(tmp_path: Path) -> None:
    """A finished teacher is reused only for the run it is: asked for more epochs, it
    trains on (a stopped-early teacher too, as ``Trainer.fit`` would)."""
    pixels, truth = _lit_faces(32, seed=7)
    train = ImageData(pixels, truth, ("bright", "dark"), name="lit")
    val = train.subset(np.arange(8))

    def teacher(epochs: int):
        return lambda k: Trainer(tmp_path / f"teacher-{k}", arch_options=TINY, epochs=epochs,
                                 batch_size=16, progress=False, seed=k, augment=False,
                                 resume=True)

    cross_fitted_soft_labels(teacher(1), train, val, folds=2)
    cross_fitted_soft_labels(teacher(2), train, val, folds=2)
    for k in range(2):
        metrics = json.loads((tmp_path / f"teacher-{k}" / "metrics.json").read_text())
        assert metrics["epochs_run"] == 2


def test_cross_fitting_refuses_a_label_too_rare_for_its_folds(tmp_path: Path) -> None:
    """A label with a single image leaves one teacher without it: that teacher stopped
    with an error only after the teachers before it had trained (hours, on FER2013)."""
    pixels, truth = _lit_faces(12, seed=7)
    truth[:] = 0
    truth[5] = 1
    train = ImageData(pixels, truth, ("bright", "dark"), name="lit")

    def teacher(k: int) -> Trainer:
        return Trainer(tmp_path / f"teacher-{k}", arch_options=TINY, epochs=1, batch_size=16,
                       progress=False, resume=True)

    with pytest.raises(DatasetError, match=r"lit: 1 image of dark: a teacher would have none"):
        cross_fitted_soft_labels(teacher, train, train, folds=3)
    assert not list(tmp_path.iterdir())  # no teacher trained


class _PluginClassifier:
    """A classifier as a plugin writes one (the ``EmotionClassifier`` protocol):
    ``predict(faces)`` of BGR crops, no mirror averaging; here the real trained model."""

    def __init__(self, classifier) -> None:
        self.labels = classifier.labels
        self.input_size = classifier.input_size
        self.crop_margin = classifier.crop_margin
        self._classifier = classifier

    def predict(self, faces) -> np.ndarray:
        return self._classifier.predict(faces)


def test_a_teacher_without_mirror_averaging_teaches_without_it(
        brightness_model_dir: Path, noisy) -> None:
    """The default ``tta=True`` (and every ``--teacher`` run) called ``predict(crops,
    tta=True)`` on a teacher whose ``predict`` takes no ``tta``: a TypeError traceback."""
    train, _, truth = noisy
    teacher = load_classifier(brightness_model_dir)
    plugin = _PluginClassifier(teacher)
    soft = soft_labels(plugin, train, temperature=1.0)
    np.testing.assert_allclose(soft, soft_labels(teacher, train, 1.0, tta=False), atol=1e-4)
    assert (soft.argmax(axis=1) == truth).mean() > 0.9


@pytest.fixture(scope="module")
def lit() -> ImageData:
    pixels, truth = _lit_faces(12, seed=7)
    return ImageData(pixels, truth, ("bright", "dark"), name="lit")


_GOOD = np.tile([0.8, 0.2], (12, 1))
_WITH_NAN, _WITH_INF, _NEGATIVE = _GOOD.copy(), _GOOD.copy(), _GOOD.copy()
_WITH_NAN[3, 1], _WITH_INF[4, 0], _NEGATIVE[5] = np.nan, np.inf, [1.2, -0.2]


@pytest.mark.parametrize(("labels", "soft", "problem"), [
    (["bright", "dark"], _GOOD[:, 0],
     r"soft labels of shape \(12,\), not \(images, 2\) for its labels bright, dark"),
    (["bright", "dark"], np.tile([0.5, 0.3, 0.2], (12, 1)),
     r"soft labels of shape \(12, 3\), not \(images, 2\) for its labels bright, dark"),
    (["bright", "dark"], _WITH_NAN, "1 soft label is nan or infinite"),
    (["bright", "dark"], _WITH_INF, "1 soft label is nan or infinite"),
    (["bright", "dark"], _NEGATIVE, "1 soft label is negative"),
    (["bright", "dark"], np.tile([3.0, 7.0], (12, 1)),
     r"12 of its 12 rows do not sum to 1 \(row 1: 10\)"),
    (["bright", "dark"], np.vstack([_GOOD, [[0.0, 0.0]]])[1:],
     r"1 of its 12 rows do not sum to 1 \(row 12: 0\)"),
    (["bright", "dark"], np.vstack([_GOOD, _GOOD[:1]]),
     "soft labels for 13 images, but lit has 12"),
    ("bright", _GOOD, "its labels are not a list of names"),
], ids=["1-d", "columns", "nan", "inf", "negative", "counts", "zero-row", "rows", "labels"])
def test_a_hand_made_soft_label_file_is_checked(lit: ImageData, tmp_path: Path, labels, soft,
                                                problem: str) -> None:
    """A soft-label file written by hand with the data's fingerprint but wrong content was
    used as it was: a traceback (IndexError, a broadcasting ValueError, a TypeError), a
    silently renormalised or uniform row, or a ``nan`` loss reported as a diverging run."""
    path = tmp_path / "votes.npz"
    np.savez(path, labels=np.array(labels), fingerprint=np.array(lit.fingerprint()), soft=soft)
    with pytest.raises(DatasetError, match=rf"^{path}: {problem}; write the file with "
                                           r"emotionkit\.training\.distill\.save_soft_labels"):
        soft_labels(SoftLabelFile(path), lit, temperature=1.0)


def test_a_soft_label_file_with_nan_stops_training_before_it_starts(lit: ImageData,
                                                                   tmp_path: Path) -> None:
    """A ``nan`` soft label trained an epoch, then read as "training diverged ... run again
    with a lower learning rate"."""
    path = tmp_path / "votes.npz"
    np.savez(path, labels=np.array(lit.labels), fingerprint=np.array(lit.fingerprint()),
             soft=_WITH_NAN)
    out = tmp_path / "run"
    with pytest.raises(DatasetError, match=rf"^{path}: 1 soft label is nan or infinite"):
        Trainer(out, arch_options=TINY, epochs=1, progress=False, teacher=path).fit(lit, lit)
    assert not (out / "model.keras").exists()
