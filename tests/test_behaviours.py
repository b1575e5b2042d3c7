"""Recognizer cropping and batching, class balancing, the learning-rate schedule, and the
``train``/``evaluate`` CLI options around splits, FER+, TTA and partly shared labels.

Real face photos (scikit-image's astronaut and cameraman), real tiny model files."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from emotionkit import EmotionRecognizer
from emotionkit.classifiers import ModelConfig, load_classifier
from emotionkit.cli import main
from emotionkit.io import crop
from emotionkit.training import FolderDataset, evaluate_predictions
from emotionkit.training import trainer as trainer_module
from emotionkit.training.trainer import class_weights, oversample_index
from test_datasets import face_crops, write_face_folders
from test_evaluate import _MeanBrightness
from test_training import _trainer


def scaled(image: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mediapipe():
    from emotionkit.detectors.mediapipe import MediaPipeDetector

    with MediaPipeDetector() as detector:
        yield detector


# -- EmotionRecognizer: margin and batch_size -------------------------------------------


class _CropRecorder:
    """A classifier that keeps every crop it is given (uniform probabilities)."""

    labels = ("a", "b")
    input_size = (48, 48)
    crop_margin = 0.25  # used when the recognizer's margin is None

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []

    def predict(self, faces):
        self.crops += [np.array(f) for f in faces]
        return np.full((len(faces), 2), 0.5)


def test_margin_grows_the_crop_given_to_the_classifier(mediapipe, astronaut_bgr,
                                                       brightness_model_dir) -> None:
    [det] = mediapipe.detect(astronaut_bgr)
    x, y, w, h = det.box
    # a face box with room for the largest margin below on every side
    assert 40 <= w <= 200 and min(x, y) > 0.4 * max(w, h)
    assert x + 1.4 * w < astronaut_bgr.shape[1] and y + 1.4 * h < astronaut_bgr.shape[0]
    sizes = {}
    for margin in (0.0, 0.1, None, 0.4):
        probe = _CropRecorder()
        rec = EmotionRecognizer(detector=mediapipe, classifier=probe, margin=margin)
        faces = rec.detect(astronaut_bgr)
        assert [f.box for f in faces] == [det.box]  # the reported box is not grown
        [got] = probe.crops
        m = 0.25 if margin is None else margin
        assert rec.crop_margin == m
        np.testing.assert_array_equal(got, crop(astronaut_bgr, det.box, m))
        assert got.shape[:2] == (h + 2 * round(h * m), w + 2 * round(w * m))
        sizes[m] = got.shape[0] * got.shape[1]
    assert list(sizes) == sorted(sizes) and len(set(sizes.values())) == 4
    assert sizes[0.0] < sizes[0.1] < sizes[0.25] < sizes[0.4]

    # a real model: the probabilities are those of the grown crop, not the tight one
    image = scaled(astronaut_bgr, 0.7)
    for margin in (0.0, 0.5):
        rec = EmotionRecognizer(detector=mediapipe, classifier=brightness_model_dir,
                                margin=margin)
        [face] = rec.detect(image)
        expected = rec.classify([crop(image, face.box, margin)])[0]
        np.testing.assert_allclose(list(face.emotions.values()), expected, atol=1e-6)
    tight = rec.classify([crop(image, face.box, 0.0)])[0]
    assert np.abs(np.array(list(face.emotions.values())) - tight).max() > 1e-3


class _CallSizes:
    """A real Keras classifier that records the size of every predict() call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.labels, self.input_size = inner.labels, inner.input_size
        self.crop_margin = inner.crop_margin
        self.calls: list[int] = []

    def predict(self, faces):
        self.calls.append(len(faces))
        return self.inner.predict(faces)


def test_batch_size_does_not_change_probabilities(mediapipe, astronaut_bgr, frame_640x480,
                                                  brightness_model_dir) -> None:
    images = [astronaut_bgr, scaled(astronaut_bgr, 0.45), scaled(astronaut_bgr, 1.6),
              frame_640x480, scaled(frame_640x480, 0.6)]
    clf = load_classifier(brightness_model_dir)
    results = {}
    for batch_size, calls in ((256, [5]), (1, [1] * 5), (2, [2, 2, 1])):
        probe = _CallSizes(clf)
        rec = EmotionRecognizer(detector=mediapipe, classifier=probe, batch_size=batch_size)
        faces = rec.detect_batch(images)
        assert [len(f) for f in faces] == [1] * 5
        assert probe.calls == calls
        results[batch_size] = (
            [f[0].box for f in faces],
            np.array([list(f[0].emotions.values()) for f in faces]),
            rec.classify(face_crops(7, seed=11) + face_crops(4, seed=12, which="camera")),
        )
    boxes, probs, crops_probs = results[256]
    # different faces get different answers, so a mixed-up batch would show
    assert {row.argmax() for row in probs} == {0, 1}
    assert crops_probs.shape == (11, 2) and np.ptp(crops_probs[:, 0]) > 1e-3
    for batch_size in (1, 2):
        assert results[batch_size][0] == boxes
        np.testing.assert_allclose(results[batch_size][1], probs, atol=1e-5)
        np.testing.assert_allclose(results[batch_size][2], crops_probs, atol=1e-5)


class _Shaped:
    labels = ("bright", "dark")
    input_size = (48, 48)
    crop_margin = 0.0

    def __init__(self, rows, columns) -> None:
        self.rows, self.columns = rows, columns

    def predict(self, faces):
        return np.full((self.rows(len(faces)), self.columns), 0.5)


@pytest.mark.parametrize("rows, columns, batch_size, expected", [
    (lambda n: n, 3, 256, (4, 3)),  # a column too many
    (lambda n: n, 1, 256, (4, 1)),
    (lambda n: n - 1, 2, 256, (3, 2)),  # a row missing
    (lambda n: 1, 2, 3, (2, 2)),  # one row per call, whatever the call's size
], ids=["extra-column", "one-column", "row-missing", "one-row-per-call"])
def test_classifier_returning_the_wrong_shape_is_a_value_error(
    rows, columns, batch_size, expected, astronaut_bgr, mediapipe,
) -> None:
    rec = EmotionRecognizer(detector="none", classifier=_Shaped(rows, columns),
                            batch_size=batch_size)
    message = re.escape(f"classifier returned shape {expected}, expected (4, 2)")
    with pytest.raises(ValueError, match=message):
        rec.classify(face_crops(4, seed=3))
    images = [astronaut_bgr, scaled(astronaut_bgr, 0.5), scaled(astronaut_bgr, 1.5),
              astronaut_bgr[:, ::-1]]
    with pytest.raises(ValueError, match=message):  # four faces, one per photo
        EmotionRecognizer(detector=mediapipe, classifier=_Shaped(rows, columns),
                          batch_size=batch_size).detect_batch(images)


# -- class balancing on a real imbalanced dataset -----------------------------------------

COUNTS = {"Happy": 16, "SADNESS": 4, "Neutral": 1}  # canonical order: happy, sad, neutral


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FolderDataset]:
    """Real face crops, 16 happy (astronaut), 4 sad and 1 neutral (cameraman) to train
    on, 2 of each to validate on."""
    root = tmp_path_factory.mktemp("imbalanced")
    for split, counts in (("train", COUNTS), ("val", dict.fromkeys(COUNTS, 2))):
        for s, (folder, n) in enumerate(counts.items()):
            (root / split / folder).mkdir(parents=True)
            which = "astronaut" if folder == "Happy" else "camera"
            for i, face in enumerate(face_crops(n, seed=10 * s + len(split), which=which)):
                cv2.imwrite(str(root / split / folder / f"{i:02d}.png"), face)
    return root, FolderDataset(root)


def test_class_weights_on_an_imbalanced_dataset(imbalanced) -> None:
    _, dataset = imbalanced
    train = dataset.load("train")
    assert train.labels == ("happy", "sad", "neutral")
    assert train.class_counts().tolist() == [16, 4, 1]
    # mean weight over the 21 images is 1: sum(count * weight) == 21
    # sqrt: weight = k / sqrt(count), k = 21 / (4 + 2 + 1) = 3
    np.testing.assert_allclose(class_weights(train.targets, 3, "sqrt"), [0.75, 1.5, 3.0])
    # balanced: weight = k / count, k = 21 / 3 = 7
    np.testing.assert_allclose(class_weights(train.targets, 3, "balanced"), [7 / 16, 7 / 4, 7])
    np.testing.assert_allclose(class_weights(train.targets, 3), [0.75, 1.5, 3.0])  # default
    for mode in ("none", "oversample"):
        np.testing.assert_allclose(class_weights(train.targets, 3, mode), [1, 1, 1])
    # a label without images (here a 4th, "angry") gets 0; the others are unchanged
    four = FolderDataset(dataset.root, labels=["happy", "sad", "neutral", "angry"])
    targets = four.load("train").targets
    np.testing.assert_allclose(class_weights(targets, 4, "sqrt"), [0.75, 1.5, 3.0, 0])
    np.testing.assert_allclose(class_weights(targets, 4, "balanced"), [7 / 16, 7 / 4, 7, 0])
    np.testing.assert_allclose(class_weights(targets, 4, "none"), [1, 1, 1, 0])
    with pytest.raises(trainer_module.TrainingError, match="class_weight must be one of"):
        class_weights(train.targets, 3, "inverse")


def test_oversample_repeats_rare_classes_to_the_largest_count(imbalanced) -> None:
    _, dataset = imbalanced
    train = dataset.load("train")
    index = oversample_index(train.targets, seed=0)
    assert np.bincount(train.targets[index]).tolist() == [16, 16, 16]
    uses = np.bincount(index, minlength=len(train))
    expected = np.array([{0: 1, 1: 4, 2: 16}[t] for t in train.targets])
    np.testing.assert_array_equal(uses, expected)
    # 14 happy images to match: each of the 4 sad ones 3 times, 2 of them (drawn at random,
    # without replacement) once more; the single neutral one 14 times
    happy = np.flatnonzero(train.targets == 0)
    fewer = train.subset(np.setdiff1d(np.arange(len(train)), happy[:2]))
    assert fewer.class_counts().tolist() == [14, 4, 1]
    draws = set()
    for seed in range(20):
        index = oversample_index(fewer.targets, seed=seed)
        assert np.bincount(fewer.targets[index]).tolist() == [14, 14, 14]
        uses = np.bincount(index, minlength=len(fewer))
        assert sorted(uses[fewer.targets == 1].tolist()) == [3, 3, 4, 4]
        assert uses[fewer.targets == 0].tolist() == [1] * 14
        assert uses[fewer.targets == 2].tolist() == [14]
        assert np.array_equal(index, oversample_index(fewer.targets, seed=seed))
        draws.add(tuple(uses))
    assert len(draws) > 1  # the seed chooses which rows get the extra copies


def _record_batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, float]]:
    """(epoch, optimizer step, learning rate) at the start of every training batch of the
    next runs, recorded by the run's own per-epoch callback."""
    seen: list[tuple[int, int, float]] = []
    begin = trainer_module._RunState.on_epoch_begin

    def on_epoch_begin(self, epoch, logs=None):
        self._recorded_epoch = epoch
        begin(self, epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        seen.append((self._recorded_epoch, int(opt.iterations),
                     float(np.asarray(opt.learning_rate))))

    monkeypatch.setattr(trainer_module._RunState, "on_epoch_begin", on_epoch_begin)
    monkeypatch.setattr(trainer_module._RunState, "on_train_batch_begin",
                        on_train_batch_begin, raising=False)
    return seen


def test_oversample_run_trains_on_the_balanced_epoch(imbalanced, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, dataset = imbalanced
    train, val = dataset.load("train"), dataset.load("val")
    seen = _record_batches(monkeypatch)
    metrics = _trainer(tmp_path / "run", epochs=1, batch_size=8,
                       class_weight="oversample").fit(train, val)
    assert metrics["epochs_run"] == 1
    assert len(seen) == math.ceil(48 / 8)  # 3 x 16 images an epoch, not 21


# -- learning-rate schedule -------------------------------------------------------------


def test_learning_rate_warms_up_then_decays_to_a_hundredth(
    imbalanced, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/training.md: linear warm-up over the first 10% of the epochs (at most one
    epoch) from lr/10 to lr, then cosine decay to lr/100 at the last epoch."""
    _, dataset = imbalanced
    train, val = dataset.load("train"), dataset.load("val")
    peak, epochs, batch_size = 3e-3, 5, 6
    steps = math.ceil(len(train) / batch_size)  # 21 images: 4 steps an epoch
    total = steps * epochs
    warmup = total // 10  # 10% of 5 epochs = 2 steps, within one epoch
    assert (steps, total, warmup) == (4, 20, 2)

    def expected(step: int) -> float:
        if step < warmup:
            return peak / 10 + (peak - peak / 10) * step / warmup
        cosine = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        return peak * (0.01 + 0.99 * cosine)

    seen = _record_batches(monkeypatch)
    out = tmp_path / "run"
    metrics = _trainer(out, epochs=epochs, batch_size=batch_size, learning_rate=peak,
                       patience=0).fit(train, val)
    assert [s for _, s, _ in seen] == list(range(total))
    assert [e for e, _, _ in seen] == [i // steps for i in range(total)]
    lrs = [lr for _, _, lr in seen]
    assert lrs[0] == pytest.approx(peak / 10, rel=1e-5)
    assert lrs[1] == pytest.approx(0.55 * peak, rel=1e-5)
    assert lrs[warmup] == pytest.approx(peak, rel=1e-5) and max(lrs) == lrs[warmup]
    assert lrs == pytest.approx([expected(s) for s in range(total)], rel=1e-5)
    assert all(a > b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # decays throughout
    # the history: the rate after each epoch's last step, ending at lr/100
    history = metrics["history"]["learning_rate"]
    assert history == pytest.approx([expected(steps * e) for e in range(1, epochs + 1)],
                                    rel=1e-5)
    assert history[-1] == pytest.approx(peak / 100, rel=1e-5)
    assert json.loads((out / "metrics.json").read_text())["history"]["learning_rate"] == \
        history
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx(history, rel=1e-5)


# -- emotionkit train: --train-split / --val-split, --ferplus ----------------------------


def test_cli_train_uses_the_named_splits(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=6, splits=("train", "val", "test"))
    # three splits of different sizes: 12 train, 11 val, 9 test images
    (root / "val" / "SADNESS" / "000.png").unlink()
    for name in ("000.jpg", "001.jpg", "002.jpg"):
        (root / "test" / "Happy" / name).unlink()
    out = tmp_path / "model"
    result = CliRunner().invoke(main, [
        "train", str(root), "--out", str(out), "--epochs", "1", "--batch-size", "16",
        "--quiet", "--arch-option", "widths=[8, 16]", "--train-split", "validation",
        "--val-split", "test"])
    assert result.exit_code == 0, result.output
    assert "training fer-cnn on 11 images, validating on 9" in result.output
    data = ModelConfig.read(out / "config.json").extra["data"]
    assert data["train"]["name"] == f"{root} [val]"
    assert data["train"]["images"] == 11
    assert data["train"]["class_counts"] == {"happy": 6, "sad": 5}
    assert data["val"]["name"] == f"{root} [test]"
    assert data["val"]["images"] == 9
    assert data["val"]["class_counts"] == {"happy": 3, "sad": 6}
    assert json.loads((out / "metrics.json").read_text())["val"]["n"] == 9


def test_cli_train_ferplus_on_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=4)  # trainable: 4 + 4 images
    votes = tmp_path / "ferplus.csv"
    votes.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,"
                     "fear,contempt,unknown,NF\n")
    out = tmp_path / "model"
    result = CliRunner().invoke(main, ["train", str(root), "--out", str(out), "--ferplus",
                                       str(votes), "--epochs", "1", "--quiet",
                                       "--val-fraction", "0.5"])
    assert result.exit_code == 2  # a bad combination of options
    assert result.output == "error: --ferplus applies to a FER2013 csv only\n"
    assert not (out / "model.keras").exists() and not (out / "config.json").exists()


def test_cli_evaluate_ferplus_on_a_folder_is_the_same_error(tmp_path: Path) -> None:
    """evaluate used to ignore --ferplus for a folder and score the folder labels."""
    root = write_face_folders(tmp_path / "faces", n=2)
    votes = tmp_path / "ferplus.csv"
    votes.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,"
                     "fear,contempt,unknown,NF\n")
    result = CliRunner().invoke(main, ["evaluate", str(root), "--ferplus", str(votes)])
    assert result.exit_code == 2
    assert result.output == "error: --ferplus applies to a FER2013 csv only\n"


# -- emotionkit evaluate: --tta without support, partly shared labels --------------------


def _lit_faces(root: Path, counts: dict[str, int]) -> Path:
    """Real astronaut crops under bright/ (x1.6), dark/ (x0.45) and other/ (as taken)."""
    gains = {"bright": 1.6, "dark": 0.45, "other": 1.0}
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i, face in enumerate(face_crops(n, seed=len(label))):
            cv2.imwrite(str(root / label / f"{i}.png"), scaled(face, gains[label]))
    return root


def test_cli_evaluate_tta_without_support_is_one_error_line(tmp_path: Path) -> None:
    from emotionkit.registry import _classifiers, register_classifier

    root = _lit_faces(tmp_path / "faces", {"bright": 3, "dark": 3})
    register_classifier("test-no-tta", _MeanBrightness)
    try:
        runner = CliRunner()
        result = runner.invoke(main, ["evaluate", str(root), "--classifier", "test-no-tta",
                                      "--tta"])
        assert result.exit_code == 2
        assert result.output == "error: classifier 'test-no-tta' does not support --tta\n"
        # without --tta the same classifier evaluates (so the error is about --tta only)
        result = runner.invoke(main, ["evaluate", str(root), "--classifier", "test-no-tta",
                                      "--format", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["n"] == 6 and report["accuracy"] == 1.0
    finally:
        _classifiers.unregister("test-no-tta")


def test_cli_evaluate_scores_only_the_shared_labels_and_says_so(
    brightness_model_dir: Path, tmp_path: Path
) -> None:
    root = _lit_faces(tmp_path / "faces", {"bright": 6, "dark": 5, "other": 4})
    result = CliRunner().invoke(main, ["evaluate", str(root), "--classifier",
                                       str(brightness_model_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == ["bright", "dark"] and report["n"] == 11
    assert [report["per_class"][x]["support"] for x in ("bright", "dark")] == [6, 5]
    notes = result.stderr.splitlines()
    assert len(notes) == 1, result.stderr
    assert notes[0].endswith(f"{root} [train]: left out 4 images with labels the "
                             "classifier lacks: other")
    # the scores are the model's on the 11 shared-label images alone
    data = FolderDataset(root, val_fraction=0).load("train")
    clf = load_classifier(brightness_model_dir)
    keep = np.array(data.labels)[data.targets] != "other"
    predicted = clf.predict_pixels(data.pixels[keep]).argmax(axis=1)
    truth = [("bright", "dark").index(data.labels[t]) for t in data.targets[keep]]
    by_hand = evaluate_predictions(truth, predicted, ("bright", "dark"))
    assert report["confusion_matrix"] == by_hand.confusion.tolist()
    assert report["accuracy"] == pytest.approx(by_hand.accuracy)
    assert report["accuracy"] >= 0.9  # a trained model on its own kind of faces
