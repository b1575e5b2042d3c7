"""Metrics, reports and ``emotionkit evaluate`` with a model trained on real faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from emotionkit.classifiers import load_classifier
from emotionkit.cli import main
from emotionkit.training import FolderDataset, evaluate_classifier, evaluate_predictions
from test_datasets import face_crops


def _runner() -> CliRunner:
    """In-process CLI runs (fd 2 is left alone so the runner captures error lines)."""
    return CliRunner()


def test_metrics_match_hand_computation(tmp_path: Path) -> None:
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    r = evaluate_predictions(y_true, y_pred, ("a", "b", "c"), name="toy")
    assert r.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.precision.tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert r.recall.tolist() == pytest.approx([2 / 3, 0.5, 1.0])
    f1 = [0.8, 0.5, 2 / 3]
    assert r.f1.tolist() == pytest.approx(f1)
    assert r.macro_f1 == pytest.approx(sum(f1) / 3)
    text = r.to_text()
    assert "accuracy  0.6667" in text and "confusion matrix" in text
    d = json.loads(r.to_json())
    assert d["per_class"]["b"]["support"] == 2 and d["confusion_matrix"][0] == [2, 1, 0]
    png = r.save_confusion_png(tmp_path / "cm.png")
    assert cv2.imread(str(png)) is not None


def test_absent_class_is_left_out_of_macro_f1() -> None:
    r = evaluate_predictions([0, 0, 1], [0, 0, 1], ("a", "b", "c"))
    assert r.macro_f1 == 1.0 and r.f1[2] == 0.0
    with pytest.raises(ValueError):
        evaluate_predictions([0, 3], [0, 1], ("a", "b"))


def _bright_dark_folder(root: Path) -> Path:
    """Real astronaut face crops, brightened or darkened, under bright/ and dark/."""
    for label, gain in (("bright", 1.6), ("dark", 0.45)):
        (root / label).mkdir(parents=True)
        for i, crop in enumerate(face_crops(10, seed=5)):
            lit = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / label / f"{i}.png"), lit)
    return root


def test_evaluate_classifier_on_trained_model(brightness_model_dir: Path, tmp_path: Path) -> None:
    clf = load_classifier(brightness_model_dir)
    data = FolderDataset(_bright_dark_folder(tmp_path / "bd"), val_fraction=0).load("train")
    report = evaluate_classifier(clf, data)
    assert report.labels == ("bright", "dark") and report.n == 20
    assert report.accuracy >= 0.9
    assert evaluate_classifier(clf, data, tta=True).accuracy >= 0.9


def test_cli_evaluate_text_json_and_png(brightness_model_dir: Path, tmp_path: Path) -> None:
    root = _bright_dark_folder(tmp_path / "bd")
    runner = _runner()
    result = runner.invoke(main, ["evaluate", str(root), "--classifier",
                                  str(brightness_model_dir), "--tta", "--out",
                                  str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "macro-F1" in result.output
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["n"] == 20 and report["accuracy"] >= 0.9
    result = runner.invoke(main, ["evaluate", str(root), "--classifier", "no-such-model"])
    assert result.exit_code == 2 and result.output.startswith("error: ")  # as in detect
    assert len(result.output.splitlines()) == 1 and "unknown classifier" in result.output


def test_cli_evaluate_label_mismatch_is_an_error(brightness_model_dir: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "a.png"), face_crops(1, 0)[0])
    result = _runner().invoke(main, ["evaluate", str(tmp_path), "--classifier",
                                       str(brightness_model_dir)])
    assert result.exit_code == 1 and "none of the dataset labels" in result.output


class _MeanBrightness:
    """A non-Keras classifier (only ``labels`` and ``predict`` on BGR crops)."""

    labels = ("bright", "dark")
    input_size = (48, 48)
    crop_margin = 0.0

    def predict(self, faces):
        bright = np.array([float(f.mean() > 100) for f in faces])
        return np.stack([bright, 1 - bright], axis=1)


def test_evaluate_plain_protocol_classifier(tmp_path: Path) -> None:
    root = _bright_dark_folder(tmp_path / "bd")
    data = FolderDataset(root, val_fraction=0, channels=3).load("train")
    report = evaluate_classifier(_MeanBrightness(), data)
    assert report.accuracy == 1.0 and report.n == 20


def test_seven_class_model_scored_on_a_label_subset(tmp_path: Path) -> None:
    """The bundled fer-cnn scored as an angry/happy/sad classifier on real face crops."""
    from emotionkit import create_classifier
    from emotionkit.training.datasets import DatasetError

    root = tmp_path / "faces"
    for label, crops in (("happy", face_crops(8, 3)), ("sad", face_crops(8, 4, "camera")),
                         ("neutral", face_crops(4, 5, "camera"))):
        (root / label).mkdir(parents=True)
        for i, crop in enumerate(crops):
            cv2.imwrite(str(root / label / f"{i}.png"), crop)
    clf = create_classifier("fer-cnn")
    data = FolderDataset(root, val_fraction=0, channels=1).load("train")
    subset = ["angry", "happy", "sad"]
    report = evaluate_classifier(clf, data, labels=subset)
    assert report.labels == tuple(subset) and report.n == 16  # neutral faces left out
    keep = np.isin(np.array(data.labels)[data.targets], subset)
    probs = clf.predict_pixels(data.pixels[keep])
    expected = probs[:, [clf.labels.index(x) for x in subset]].argmax(axis=1)
    truth = [subset.index(data.labels[t]) for t in data.targets[keep]]
    by_hand = evaluate_predictions(truth, expected, subset)
    assert report.confusion.tolist() == by_hand.confusion.tolist()
    full = evaluate_classifier(clf, data)
    assert full.labels == clf.labels and full.n == 20
    with pytest.raises(DatasetError, match="no label 'calm'"):
        evaluate_classifier(clf, data, labels=["happy", "calm"])

    result = _runner().invoke(main, ["evaluate", str(root), "--labels", "angry,happy,sad",
                                     "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == subset


def test_cli_evaluate_defaults_to_the_last_split_with_rows(tmp_path: Path) -> None:
    """A FER2013-layout csv without ``PrivateTest`` rows is scored on ``PublicTest``."""
    from test_datasets import write_fer_csv

    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False, splits=("Training", "PublicTest"))
    result = _runner().invoke(main, ["evaluate", str(path), "--classifier", "fer-cnn",
                                     "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 4 and "[PublicTest]" in report["name"]


def test_cli_evaluate_labels_by_synonym_or_case(tmp_path: Path) -> None:
    from test_datasets import write_face_folders

    root = write_face_folders(tmp_path / "faces", n=4)
    result = _runner().invoke(main, ["evaluate", str(root), "--labels", "Sadness,HAPPY",
                                     "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["labels"] == ["sad", "happy"] and report["n"] == 8


def test_plots_leave_the_callers_matplotlib_alone(tmp_path: Path) -> None:
    """A notebook's pyplot backend and open figures stay as they were when the library
    writes its PNGs (it used to switch the whole process to Agg)."""
    script = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
from emotionkit.training.evaluation import evaluate_predictions, save_history_png
plt.figure()
report = evaluate_predictions([0, 1, 1], [0, 1, 0], ("a", "b"))
report.save_confusion_png(r"{tmp_path / 'cm.png'}")
save_history_png({{"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}}, r"{tmp_path / 'h.png'}")
from emotionkit.summary import FaceTimeline, plot_timelines
timeline = FaceTimeline("v.mp4", 0, ("a", "b"), [0.0, 0.1], ["a", "b"], [(0.9, 0.1), (0.2, 0.8)])
plot_timelines([timeline], r"{tmp_path / 't.png'}")
print(matplotlib.get_backend(), plt.get_fignums())
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["svg", "[1]"]
    for name in ("cm.png", "h.png", "t.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.std() > 10  # something was drawn


def test_cli_evaluate_unknown_or_unloadable_classifier_exits_2(tmp_path: Path) -> None:
    root = _bright_dark_folder(tmp_path / "bd")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    for spec in ("nosuch", str(broken)):
        for command in (["evaluate", str(root)], ["detect", str(root / "bright" / "0.png")]):
            result = _runner().invoke(main, [*command, "--classifier", spec])
            assert result.exit_code == 2, (command, result.output)
            assert len(result.output.splitlines()) == 1
            assert result.output.startswith("error: ")


def test_cli_evaluate_csv_with_bom_and_spaces(tmp_path: Path) -> None:
    """A FER2013 csv re-saved by a spreadsheet (byte-order mark, spaces after commas)."""
    from conftest import cli_json, spreadsheet_resave
    from test_datasets import write_fer_csv

    plain = tmp_path / "plain.csv"
    write_fer_csv(plain, bad_rows=False)
    resaved = spreadsheet_resave(plain, tmp_path / "resaved.csv")
    reports = [cli_json("evaluate", str(path), "--format", "json") for path in (plain, resaved)]
    assert reports[1]["n"] == 4 and reports[1]["confusion_matrix"] == \
        reports[0]["confusion_matrix"]


def test_cli_evaluate_headerless_csv_is_one_short_error_line(tmp_path: Path) -> None:
    from test_datasets import write_fer_csv

    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    path.write_text(path.read_text().split("\n", 1)[1])  # a 5,000-character first line
    result = _runner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and len(lines[0]) - len(str(path)) < 250, lines[0]
    assert "seems to have no header line" in lines[0] and "...'" in lines[0]


def test_images_left_out_by_labels_are_not_blamed_on_the_classifier(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """fer-cnn has neutral: ``labels=`` leaves its images out, the classifier does not lack
    it; other/ is a label it lacks."""
    import logging

    from emotionkit import create_classifier

    root = tmp_path / "faces"
    for label, n in (("happy", 4), ("sad", 3), ("neutral", 2), ("other", 5)):
        (root / label).mkdir(parents=True)
        for i, crop in enumerate(face_crops(n, seed=n)):
            cv2.imwrite(str(root / label / f"{i}.png"), crop)
    data = FolderDataset(root, val_fraction=0, channels=1).load("train")
    with caplog.at_level(logging.WARNING):
        report = evaluate_classifier(create_classifier("fer-cnn"), data,
                                     labels=["angry", "happy", "sad"])
    assert report.n == 7
    notes = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert notes == [
        f"{data.name}: left out 2 images with labels outside the chosen labels (angry, happy, "
        "sad): neutral",
        f"{data.name}: left out 5 images with labels the classifier lacks: other"], notes


def test_cli_evaluate_maps_emotion_folders_beside_custom_ones(tmp_path: Path) -> None:
    """Folders happy/, Sad/, angry/ are emotions of fer-cnn though other/ is not: only
    other/'s images are left out."""
    root = tmp_path / "faces"
    for label, n in (("happy", 4), ("Sad", 3), ("angry", 2), ("other", 5)):
        (root / label).mkdir(parents=True)
        for i, crop in enumerate(face_crops(n, seed=n)):
            cv2.imwrite(str(root / label / f"{i}.png"), crop)
    result = _runner().invoke(main, ["evaluate", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    support = {label: row["support"] for label, row in report["per_class"].items()}
    assert report["n"] == 9 and (support["happy"], support["sad"], support["angry"]) == (4, 3, 2)
    notes = result.stderr.splitlines()
    assert len(notes) == 1 and notes[0].endswith(
        f"{root} [train]: left out 5 images with labels the classifier lacks: other"), notes


class _Colourful:
    """A classifier whose labels are cased differently from the canonical ones: colour
    crops (the astronaut) are ``Happy``, gray ones (the cameraman) ``Sad``."""

    labels = ("Sad", "Happy")
    input_size = (48, 48)
    crop_margin = 0.0

    def predict(self, faces):
        colour = np.array([float(np.ptp(f.astype(int), axis=2).mean() > 5) for f in faces])
        return np.stack([1 - colour, colour], axis=1)


def test_evaluate_matches_labels_by_case_and_synonym(tmp_path: Path) -> None:
    from test_datasets import write_face_folders

    root = write_face_folders(tmp_path / "faces", n=4)  # Happy/ colour, SADNESS/ gray
    data = FolderDataset(root, val_fraction=0, channels=3).load("train")
    assert data.labels == ("happy", "sad")
    report = evaluate_classifier(_Colourful(), data)
    assert report.labels == ("Sad", "Happy") and report.n == 8 and report.accuracy == 1.0
    subset = evaluate_classifier(_Colourful(), data, labels=["happy", "sad"])
    assert subset.labels == ("happy", "sad") and subset.accuracy == 1.0


def test_tta_is_applied_or_refused_never_dropped(tmp_path: Path) -> None:
    """``tta=True`` with images not in the classifier's own input format (they go through
    ``predict``) used to be dropped without a word, as with a classifier that has none."""
    from emotionkit import create_classifier
    from emotionkit.training.datasets import DatasetError

    root = tmp_path / "faces"
    for label, crops in (("happy", face_crops(12, 3)), ("sad", face_crops(12, 4, "camera"))):
        (root / label).mkdir(parents=True)
        for i, crop in enumerate(crops):
            cv2.imwrite(str(root / label / f"{i}.png"), crop)
    clf = create_classifier("fer-cnn")  # 48x48 gray
    data = FolderDataset(root, val_fraction=0, input_size=(64, 64), channels=3,
                         color_order="bgr").load("train")
    truth = [clf.labels.index(data.labels[t]) for t in data.targets]
    crops = list(data.pixels)  # BGR, as predict takes them
    for tta in (False, True):
        expected = clf.predict(crops, tta=tta).argmax(axis=1)
        report = evaluate_classifier(clf, data, tta=tta)
        assert report.confusion.tolist() == evaluate_predictions(
            truth, expected, clf.labels).confusion.tolist(), tta
    # the mirrored faces change some answers, so the check above tells tta apart
    assert (clf.predict(crops, tta=True).argmax(axis=1)
            != clf.predict(crops).argmax(axis=1)).any()
    plain = FolderDataset(_bright_dark_folder(tmp_path / "bd"), val_fraction=0,
                          channels=3).load("train")
    with pytest.raises(DatasetError, match="_MeanBrightness has no test-time augmentation"):
        evaluate_classifier(_MeanBrightness(), plain, tta=True)


@pytest.mark.parametrize("split", ["tset", "PrivateTest"])
def test_cli_evaluate_unknown_split_is_a_usage_error(tmp_path: Path, split: str) -> None:
    """docs/cli.md: a --split the dataset does not have is exit code 2 (it was 1), one
    line naming the splits it has; a split folder whose images cannot be read stays 1."""
    root = _bright_dark_folder(tmp_path / "bd")
    result = _runner().invoke(main, ["evaluate", str(root), "--split", split])
    assert result.exit_code == 2, result.output
    assert result.output == (f"error: {root}: no split {split!r}; available: train\n")
    broken = tmp_path / "broken" / "test" / "happy"
    broken.mkdir(parents=True)
    for i in range(2):
        (broken / f"{i}.png").write_bytes(b"not a png")
    result = _runner().invoke(main, ["evaluate", str(tmp_path / "broken"), "--split", "test"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {tmp_path / 'broken'} [test]: no usable images (2 unreadable "
                      "files)"]


def test_cli_evaluate_short_classifier_option(brightness_model_dir: Path,
                                              tmp_path: Path) -> None:
    """``-c`` is ``--classifier``, as for ``detect``."""
    root = _bright_dark_folder(tmp_path / "bd")
    result = _runner().invoke(main, ["evaluate", str(root), "-c", str(brightness_model_dir),
                                     "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 20


def test_cli_evaluate_tta_without_support_is_a_usage_error(tmp_path: Path) -> None:
    """``--tta`` with a classifier that has no flipped-face averaging is a wrong option for
    it: exit code 2 (it was 1), one line, before any image is read."""
    from emotionkit.registry import _classifiers, register_classifier

    root = _bright_dark_folder(tmp_path / "bd")
    register_classifier("test-eval-no-tta", _MeanBrightness)
    try:
        result = _runner().invoke(main, ["evaluate", str(root), "-c", "test-eval-no-tta",
                                         "--tta"])
    finally:
        _classifiers.unregister("test-eval-no-tta")
    assert result.exit_code == 2, result.output
    assert result.output == "error: classifier 'test-eval-no-tta' does not support --tta\n"


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_cli_labels_a_fer_csv_lacks_are_a_usage_error(tmp_path: Path, command: str) -> None:
    """``--labels happy,sda`` (a typo) on a FER2013 csv was exit 1 and did not name the
    option; on a folder dataset the same mistake is exit 2."""
    from test_datasets import write_fer_csv

    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    extra = ["--out", str(tmp_path / "run"), "--epochs", "1"] if command == "train" else []
    for labels, says in (("happy,sda", "no label 'sda'; labels: angry, disgust, fear"),
                         ("happy,Happy", "labels must be unique")):
        result = _runner().invoke(main, [command, str(path), "--labels", labels, *extra])
        assert result.exit_code == 2, result.output
        (line,) = result.output.splitlines()
        assert line.startswith(f"error: --labels: {path}: {says}"), line
    assert not (tmp_path / "run").exists()


class _Contrast:
    """A plain-protocol classifier: softmax of the face's brightness in units of its own
    contrast, ``(mean - 128) / std``; a flat face (``std == 0``) gives NaN."""

    labels = ("bright", "dark")
    input_size = (48, 48)
    crop_margin = 0.0

    def predict(self, faces):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.array([(f.mean() - 128.0) / f.std() for f in faces])
            e = np.exp(np.stack([z, -z], axis=1))
            return e / e.sum(axis=1, keepdims=True)


def test_classifier_answers_that_are_not_probabilities_are_an_error(tmp_path: Path) -> None:
    """NaN probabilities were scored as the first label (argmax of NaN is 0), and a
    classifier answering fewer columns than it has labels was scored in silence."""
    from emotionkit.errors import EmotionKitError

    root = _bright_dark_folder(tmp_path / "bd")
    data = FolderDataset(root, val_fraction=0, channels=3).load("train")
    assert evaluate_classifier(_Contrast(), data).accuracy == 1.0  # real faces: fine
    cv2.imwrite(str(root / "dark" / "flat.png"), np.full((60, 60, 3), 128, np.uint8))
    flat = FolderDataset(root, val_fraction=0, channels=3).load("train")
    with pytest.raises(EmotionKitError, match=r"_Contrast gave non-finite probabilities "
                       r"\(NaN or infinity\) for 1 of 21 images"):
        evaluate_classifier(_Contrast(), flat)

    class _ThreeNames(_MeanBrightness):
        labels = ("bright", "dark", "neutral")  # but predict answers two columns

    with pytest.raises(EmotionKitError, match=r"_ThreeNames answered 2 probabilities per "
                       r"image for its 3 labels \(bright, dark, neutral\)"):
        evaluate_classifier(_ThreeNames(), data)


def test_labels_naming_one_classifier_label_twice_is_an_error(tmp_path: Path) -> None:
    """``labels=["bright", "Bright"]`` scored a one-label classifier: every answer right."""
    from emotionkit.training.datasets import DatasetError

    data = FolderDataset(_bright_dark_folder(tmp_path / "bd"), val_fraction=0,
                         channels=3).load("train")
    with pytest.raises(DatasetError, match=r"labels \['dark', 'Dark'\] name the "
                       "classifier's label dark more than once"):
        evaluate_classifier(_MeanBrightness(), data, labels=["dark", "Dark"])


def _by_hand(truth: list[str], answer: list[str], labels: list[str]) -> dict:
    """Accuracy, per-label precision/recall/F1/support and macro-F1 (over the labels with
    images) counted with plain loops."""
    per = {}
    for x in labels:
        tp = sum(t == x and a == x for t, a in zip(truth, answer))
        said, has = answer.count(x), truth.count(x)
        p, r = (tp / said if said else 0.0), (tp / has if has else 0.0)
        per[x] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                  "support": has}
    present = [per[x]["f1"] for x in labels if per[x]["support"]]
    return {"accuracy": sum(t == a for t, a in zip(truth, answer)) / len(truth),
            "macro_f1": sum(present) / len(present), "per_class": per}


def test_metrics_on_real_fer2013_rows_match_a_hand_count(fer_rows) -> None:
    """The bundled fer-cnn on the first 600 real FER2013 rows, loaded with labels in an
    order other than the classifier's: predictions are mapped by name, the report (all the
    classifier's labels, some without images) and its JSON match a count by hand, and no
    number is NaN; ``labels=`` in yet another order does too."""
    from conftest import FER_CSV
    from emotionkit import create_classifier
    from emotionkit.classifiers import FER_LABELS
    from emotionkit.training import Fer2013Csv

    chosen = ["neutral", "Sadness", "happy", "ANGER"]
    names = ["neutral", "sad", "happy", "angry"]
    data = Fer2013Csv(FER_CSV, limit=600, labels=chosen).load("Training")
    assert data.labels == tuple(names)
    clf = create_classifier("fer-cnn")
    rows = [(FER_LABELS[code], image) for code, image, usage in fer_rows
            if usage == "Training" and FER_LABELS[code] in names]
    truth = [name for name, _ in rows]
    probs = clf.predict_pixels(np.stack([image for _, image in rows])[..., None])
    answer = [clf.labels[i] for i in probs.argmax(axis=1)]

    report = evaluate_classifier(clf, data)
    assert report.labels == clf.labels and report.n == len(rows) > 300
    expected = _by_hand(truth, answer, list(clf.labels))
    got = json.loads(report.to_json())
    assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert got["macro_f1"] == pytest.approx(expected["macro_f1"], abs=1e-6)
    for label in clf.labels:
        for key, value in expected["per_class"][label].items():
            assert got["per_class"][label][key] == pytest.approx(value, abs=1e-6), (label, key)
    assert got["confusion_matrix"] == [
        [sum(t == x and a == y for t, a in zip(truth, answer)) for y in clf.labels]
        for x in clf.labels]
    assert "NaN" not in report.to_json()
    assert got["per_class"]["disgust"]["support"] == 0  # no images: left out of macro-F1

    order = ["sad", "angry", "happy"]  # a subset, in another order again
    subset = evaluate_classifier(clf, data, labels=order)
    scored = [(t, order[int(np.argmax(p[[clf.labels.index(x) for x in order]]))])
              for t, p in zip(truth, probs) if t in order]
    expected = _by_hand([t for t, _ in scored], [a for _, a in scored], order)
    assert subset.labels == tuple(order) and subset.n == len(scored)
    assert subset.accuracy == pytest.approx(expected["accuracy"])
    assert subset.macro_f1 == pytest.approx(expected["macro_f1"])
    assert subset.f1.tolist() == pytest.approx([expected["per_class"][x]["f1"] for x in order])
