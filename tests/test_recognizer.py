"""EmotionRecognizer end to end: real photos, real trained model files."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import FER_CSV, ROOT, needs_shared
from emotionkit import EmotionRecognizer, Face, UnknownPluginError
from emotionkit.classifiers import FER_LABELS


@pytest.fixture(scope="module")
def rec(brightness_model_dir: Path) -> EmotionRecognizer:
    return EmotionRecognizer(detector="mediapipe", classifier=brightness_model_dir)


def scaled(image: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def test_trained_model_classifies_the_detected_face(rec, astronaut_bgr) -> None:
    # The model only ever saw face crops: right answers mean the crop and preprocessing
    # at inference match training.
    bright = rec.detect(scaled(astronaut_bgr, 1.6))
    dark = rec.detect(scaled(astronaut_bgr, 0.5))
    assert len(bright) == len(dark) == 1
    assert bright[0].top_emotion == "bright"
    assert dark[0].top_emotion == "dark"
    assert bright[0].emotions["bright"] > 0.8


def test_all_input_types_give_the_same_faces(rec, astronaut_bgr, tmp_path: Path) -> None:
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut_bgr)
    inputs = [path, str(path), path.read_bytes(), astronaut_bgr,
              Image.fromarray(astronaut_bgr[:, :, ::-1])]
    results = [rec.detect(x) for x in inputs]
    for faces in results[1:]:
        assert faces[0].box == results[0][0].box
        np.testing.assert_allclose(list(faces[0].emotions.values()),
                                   list(results[0][0].emotions.values()), atol=1e-5)


def test_face_fields_and_json(rec, astronaut_bgr) -> None:
    face = rec.detect(astronaut_bgr)[0]
    assert isinstance(face, Face)
    assert rec.labels == ("bright", "dark")
    assert set(face.emotions) == set(rec.labels)
    assert abs(sum(face.emotions.values()) - 1) < 1e-5
    assert 0 <= face.score <= 1
    data = json.loads(json.dumps(face.to_dict()))
    assert data["box"] == list(face.box) and data["top_emotion"] == face.top_emotion


def test_no_face_gives_empty_list(rec) -> None:
    from skimage import data

    assert rec.detect(np.ascontiguousarray(data.coffee()[:, :, ::-1])) == []


def test_batch_matches_single_calls(rec, astronaut_bgr) -> None:
    from skimage import data

    images = [astronaut_bgr, np.ascontiguousarray(data.coffee()[:, :, ::-1]),
              scaled(astronaut_bgr, 0.5)]
    batch = rec.detect_batch(images)
    assert [len(b) for b in batch] == [1, 0, 1]
    with pytest.raises(TypeError, match=r"list of images.*use detect\(\)"):
        rec.detect_batch("photo.jpg")  # one path: not a batch of one-character names
    with pytest.raises(TypeError, match=r"not one array of shape \(512, 512, 3\)"):
        rec.detect_batch(astronaut_bgr)  # one image: not a batch of 512 one-row images
    stacked = rec.detect_batch(np.stack([astronaut_bgr, astronaut_bgr]))  # (N, H, W, C)
    assert [len(faces) for faces in stacked] == [1, 1]
    for image, faces in zip(images, batch):
        single = rec.detect(image)
        for a, b in zip(single, faces):
            assert a.box == b.box
            np.testing.assert_allclose(list(a.emotions.values()), list(b.emotions.values()),
                                       atol=1e-5)


def test_classify_precropped_faces(rec, astronaut_bgr) -> None:
    crop = astronaut_bgr[82:178, 177:273]
    probs = rec.classify([scaled(crop, 1.6), scaled(crop, 0.5)])
    assert probs.shape == (2, 2)
    assert probs[0].argmax() == 0 and probs[1].argmax() == 1


def test_detector_none_treats_image_as_face(brightness_model_dir, astronaut_bgr) -> None:
    rec = EmotionRecognizer(detector="none", classifier=brightness_model_dir)
    crop = scaled(astronaut_bgr[82:178, 177:273], 0.5)
    faces = rec.detect(crop)
    assert [f.box for f in faces] == [(0, 0, 96, 96)]
    assert faces[0].top_emotion == "dark" and faces[0].score is None


def test_plugin_instances_are_accepted(brightness_model_dir, astronaut_bgr) -> None:
    from emotionkit.classifiers import load_classifier
    from emotionkit.detectors import HaarDetector

    rec = EmotionRecognizer(detector=HaarDetector(), classifier=load_classifier(
        brightness_model_dir))
    assert len(rec.detect(astronaut_bgr)) == 1


def test_incomplete_classifier_objects_and_bad_batch_size_are_refused(
    brightness_model_dir,
) -> None:
    class LabelsAndPredictOnly:
        labels = ("a", "b")

        def predict(self, faces):
            return np.full((len(faces), 2), 0.5)

    with pytest.raises(TypeError, match="lacks input_size, crop_margin"):
        EmotionRecognizer(detector="none", classifier=LabelsAndPredictOnly())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EmotionRecognizer(detector="none", classifier=brightness_model_dir, batch_size=0)


def test_unknown_names_are_clear_errors(brightness_model_dir) -> None:
    with pytest.raises(UnknownPluginError, match="unknown detector 'nope'; available: haar"):
        EmotionRecognizer(detector="nope", classifier=brightness_model_dir)
    with pytest.raises(UnknownPluginError, match="unknown classifier 'nope.keras'"):
        EmotionRecognizer(detector="none", classifier="nope.keras")


def test_bundled_default_reads_a_real_photo_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """``EmotionRecognizer()`` with no arguments: the bundled detector and ``fer-cnn``,
    loaded from package data with the hub forced offline."""
    from emotionkit.classifiers.bundled import bundled_fer_cnn_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (bundled_fer_cnn_dir() / "model.keras").stat().st_size <= 10 * 1024 * 1024
    rec = EmotionRecognizer()
    assert rec.labels == FER_LABELS
    faces = rec.detect(str(ROOT / "examples" / "astronaut.jpg"))
    assert len(faces) == 1
    assert faces[0].top_emotion == "happy"  # Eileen Collins smiles in this NASA portrait


def _card_privatetest_figures() -> dict:
    """The PrivateTest figures docs/models/fer-cnn.md states for the bundled model, as
    printed there: accuracy (%), macro-F1, the per-class table and the confusion matrix."""
    text = (ROOT / "docs" / "models" / "fer-cnn.md").read_text(encoding="utf-8")
    headline = re.search(r"^\| \*\*fer-cnn\*\* \| \*\*(\d+\.\d+)%\*\* \| "
                         r"\*\*(\d\.\d+)\*\* \|$", text, re.MULTILINE)
    assert headline is not None, "the card's headline row is gone"
    per_class_section = text.split("Per class (PrivateTest, no TTA):", 1)[1].split(
        "Confusion matrix", 1)[0]
    per_class = {
        m[0]: m[1:] for m in re.findall(
            r"^\| (\w+) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d+) \|$",
            per_class_section, re.MULTILINE)
    }
    block = text.split("Confusion matrix (rows: true label", 1)[1].split("```text\n", 1)[1]
    rows = block.split("```", 1)[0].strip().splitlines()[1:]
    confusion = {row.split()[0]: [int(v) for v in row.split()[1:]] for row in rows}
    return {"accuracy": headline.group(1), "macro_f1": headline.group(2),
            "per_class": per_class, "confusion": confusion}


@pytest.fixture(scope="module")
def privatetest_report() -> dict:
    """``emotionkit evaluate FER2013 --classifier fer-cnn --split PrivateTest --format json``
    on the real ../shared csv (all 3,571 PrivateTest rows), run as a user runs it."""
    if not FER_CSV.is_file():
        pytest.skip(f"FER2013 not found at {FER_CSV}")
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    res = subprocess.run(
        [sys.executable, "-m", "emotionkit", "evaluate", str(FER_CSV), "--classifier",
         "fer-cnn", "--split", "PrivateTest", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    report: dict = json.loads(res.stdout)
    return report


@needs_shared
def test_model_card_figures_are_what_evaluate_reports(privatetest_report) -> None:
    """docs/models/fer-cnn.md's PrivateTest results, to the precision printed there, are
    exactly what ``emotionkit evaluate`` gives for the bundled model on the real split."""
    report = privatetest_report
    card = _card_privatetest_figures()
    assert report["n"] == 3571 and report["labels"] == list(FER_LABELS)
    assert f"{100 * report['accuracy']:.2f}" == card["accuracy"]  # 67.40 (%)
    assert f"{report['macro_f1']:.4f}" == card["macro_f1"]  # 0.6633
    assert sorted(card["per_class"]) == sorted(FER_LABELS)
    for label, (precision, recall, f1, support) in card["per_class"].items():
        got = report["per_class"][label]
        assert [f"{got[k]:.3f}" for k in ("precision", "recall", "f1")] == [
            precision, recall, f1], label
        assert got["support"] == int(support), label
    assert list(card["confusion"]) == list(FER_LABELS)  # rows: true label, in label order
    assert list(card["confusion"].values()) == report["confusion_matrix"]


@needs_shared
def test_recognizer_scores_real_rows_as_evaluate_does() -> None:
    """The first 600 PrivateTest rows of FER2013 (never seen in training or selection),
    given to ``EmotionRecognizer(detector="none")`` as plain 48x48 grayscale crops: the
    probabilities are the ones ``emotionkit evaluate`` scores for the same images (the
    classifier's ``predict_pixels`` on the dataset's pixels)."""
    pixels = []
    with gzip.open(FER_CSV, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"] == "PrivateTest":
                pixels.append(np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48))
                if len(pixels) == 600:
                    break
    rec = EmotionRecognizer(detector="none")
    probs = rec.classify(pixels)
    assert probs.shape == (600, len(FER_LABELS))
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    # evaluate's dataset rows: (N, 48, 48, 1) uint8 pixels as in the csv
    expected = rec.classifier.predict_pixels(np.stack(pixels)[..., None])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    # both run the classifier's batch-norm-folded copy: it gives the saved model's outputs
    scaled = np.stack(pixels)[..., None].astype(np.float32) * rec.classifier.config.pixel_scale
    original = np.asarray(rec.classifier.model(scaled, training=False))
    np.testing.assert_allclose(probs, original, atol=1e-5)


def test_classify_refuses_one_crop_and_crops_that_are_not_images(rec, astronaut_bgr) -> None:
    """One crop is not a batch of pixel rows; crops of 2 or 5 channels and non-arrays are
    one clear error naming the crop."""
    from emotionkit import ImageLoadError

    crop = astronaut_bgr[82:178, 177:273]
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    gray_alpha = np.dstack([gray, np.full_like(gray, 255)])  # np.asarray of a PIL "LA" image
    for one in (crop, gray, gray_alpha):
        with pytest.raises(TypeError, match=r"classify takes a list of face crops, not one "
                                            r"array of shape \(96, 96.*pass \[crop\]"):
            rec.classify(one)
    assert rec.classify(np.stack([crop, crop])).shape == (2, 2)  # (N, H, W, C): a batch
    # (N, H, W): a stack of grayscale crops (FER2013-style pixel arrays), as before
    stack = np.stack([gray, gray[::-1], gray])
    np.testing.assert_allclose(rec.classify(stack), rec.classify(list(stack)), atol=1e-6)
    np.testing.assert_allclose(rec.classify([gray[:, :, None]]), rec.classify([gray]),
                               atol=1e-6)
    for bad, shape in ((crop[:, :, :2], r"\(96, 96, 2\)"),
                       (np.dstack([crop, crop[:, :, :2]]), r"\(96, 96, 5\)")):
        with pytest.raises(ImageLoadError, match=rf"face crop 1 is empty or has shape {shape}"):
            rec.classify([crop, bad])
    with pytest.raises(ImageLoadError, match=r"face crop 0 is a list, not a numpy image"):
        rec.classify([[1, 2, 3]])


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"batch_size": "3"}, TypeError, r"batch_size must be an int >= 1, got '3' \(str\)"),
    ({"batch_size": 2.5}, TypeError, r"batch_size must be an int >= 1, got 2\.5"),
    ({"batch_size": True}, TypeError, r"batch_size must be an int"),
    ({"margin": -0.6}, ValueError, r"margin must be a finite number >= 0.*got -0\.6"),
    ({"margin": float("nan")}, ValueError, r"margin must be a finite number >= 0.*got nan"),
    ({"margin": float("inf")}, ValueError, r"margin must be a finite number >= 0"),
    ({"margin": "x"}, TypeError, r"margin must be a number >= 0 .* or None, got 'x'"),
], ids=["batch-str", "batch-float", "batch-bool", "margin-negative", "margin-nan",
        "margin-inf", "margin-str"])
def test_bad_margin_and_batch_size_are_refused_when_made(
    brightness_model_dir, kwargs, error, message,
) -> None:
    with pytest.raises(error, match=message):
        EmotionRecognizer(detector="none", classifier=brightness_model_dir, **kwargs)


def test_valid_margins_and_batch_sizes_are_kept(brightness_model_dir, astronaut_bgr) -> None:
    crop = astronaut_bgr[82:178, 177:273]
    for margin, batch_size in ((0, 1), (0.25, np.int64(3)), (np.float32(1.5), 256)):
        rec = EmotionRecognizer(detector="none", classifier=brightness_model_dir,
                                margin=margin, batch_size=batch_size)
        assert rec.crop_margin == float(margin) and rec.batch_size == int(batch_size)
        assert rec.classify([crop] * 4).shape == (4, 2)


def test_empty_classifier_name_is_refused(brightness_model_dir) -> None:
    """"" is not the current directory (Path("") is ".")."""
    from emotionkit import resolve_classifier

    for name in ("", " "):
        with pytest.raises(UnknownPluginError, match=r"empty classifier name .*fer-cnn"):
            resolve_classifier(name)
    with pytest.raises(UnknownPluginError, match=r"empty classifier name ''"):
        EmotionRecognizer(detector="none", classifier="")


def test_close_and_with_block_free_what_the_recognizer_made(
    brightness_model_dir, astronaut_bgr,
) -> None:
    from emotionkit import EmotionKitError, create_detector

    with EmotionRecognizer(detector="mediapipe", classifier=brightness_model_dir) as made:
        assert len(made.detect(astronaut_bgr)) == 1
    with pytest.raises(EmotionKitError, match="closed"):  # its MediaPipe graph is freed
        made.detect(astronaut_bgr)
    made.close()  # again: nothing happens

    shared = create_detector("mediapipe")
    try:
        with EmotionRecognizer(detector=shared, classifier=brightness_model_dir) as rec:
            assert len(rec.detect(astronaut_bgr)) == 1
        assert len(shared.detect(astronaut_bgr)) == 1  # passed in: left to its owner
    finally:
        shared.close()


def test_type_hints_of_the_image_api_resolve() -> None:
    """typing.get_type_hints (pydantic, typeguard, sphinx) works on the image-taking API."""
    import typing

    from emotionkit import load_image

    for function in (load_image, EmotionRecognizer.detect, EmotionRecognizer.detect_batch,
                     EmotionRecognizer.classify):
        hints = typing.get_type_hints(function)
        assert "return" in hints
    assert Image.Image in typing.get_args(typing.get_type_hints(load_image)["source"])


def test_a_recognizer_pickles_as_its_settings(brightness_model_dir: Path, astronaut_bgr,
                                              tmp_path: Path) -> None:
    """A recognizer made from names and paths (or picklable detector objects) pickles as
    those settings: a copy -- here in a spawned worker process -- builds its own detector
    and classifier and gives the same faces."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from emotionkit.detectors import HaarDetector

    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), scaled(astronaut_bgr, 1.6))
    rec = EmotionRecognizer(detector=HaarDetector(min_neighbors=4),
                            classifier=brightness_model_dir, margin=0.1, batch_size=8)
    copy = pickle.loads(pickle.dumps(rec))
    assert (copy.margin, copy.batch_size) == (0.1, 8)
    assert type(copy.detector) is HaarDetector and copy.detector.min_neighbors == 4
    here = rec.detect(path)
    assert here and here[0].top_emotion == "bright"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(EmotionRecognizer.detect, rec, str(path)).result(timeout=300)
    assert [f.box for f in there] == [f.box for f in here]
    assert np.allclose([list(f.emotions.values()) for f in there],
                       [list(f.emotions.values()) for f in here], atol=1e-5)


def test_a_recognizer_with_a_classifier_object_does_not_pickle(rec) -> None:
    """A Keras classifier object is bound to its process: pickling says so and what to
    pass instead (the obscure error was "Can't pickle local object ...<lambda>")."""
    import pickle

    with pytest.raises(TypeError, match=r"KerasClassifier cannot be pickled.*name or path"):
        pickle.dumps(rec.classifier)
    with pytest.raises(TypeError, match=r"KerasClassifier cannot be pickled"):
        pickle.dumps(EmotionRecognizer(detector="haar", classifier=rec.classifier))
    import copy

    twin = copy.copy(rec.classifier)
    assert np.array_equal(twin.predict([np.full((48, 48, 3), 200, np.uint8)]),
                          rec.classifier.predict([np.full((48, 48, 3), 200, np.uint8)]))


def test_pickling_and_copying_keep_attributes_changed_after_creation(
        brightness_model_dir: Path) -> None:
    """``margin``, ``batch_size``, ``detector`` are public attributes: a pickled copy had
    the values given at creation, and copy.copy reloaded the model and lost them too."""
    import copy
    import pickle

    from emotionkit.detectors import HaarDetector

    rec = EmotionRecognizer(detector="haar", classifier=brightness_model_dir)
    rec.margin, rec.batch_size = 0.3, 8
    rec.detector = HaarDetector(min_neighbors=1)
    back = pickle.loads(pickle.dumps(rec))
    assert (back.margin, back.batch_size, back.detector.min_neighbors) == (0.3, 8, 1)
    twin = copy.copy(rec)
    assert (twin.margin, twin.batch_size) == (0.3, 8)
    assert twin.classifier is rec.classifier and twin.detector is rec.detector


def test_a_plugin_classifier_answering_nan_is_an_error(astronaut_bgr) -> None:
    """A plugin classifier's NaN probabilities went through to the faces as they were (a
    wrong result: the top emotion of a NaN row is meaningless); KerasClassifier already
    refused them."""
    from emotionkit import EmotionKitError

    class NanForDarkFaces:
        labels = ("bright", "dark")
        input_size = (48, 48)
        crop_margin = 0.0

        def predict(self, faces):
            return np.array([[0.9, 0.1] if f.mean() > 60 else [np.nan, np.nan]
                             for f in faces])

    rec = EmotionRecognizer(detector="haar", classifier=NanForDarkFaces())
    bright = astronaut_bgr[82:178, 177:273]
    assert rec.classify([bright]).tolist() == [[0.9, 0.1]]
    with pytest.raises(EmotionKitError, match=r"NanForDarkFaces gave non-finite "
                       r"probabilities \(NaN or infinity\) for 1 of 2 face crops"):
        rec.classify([bright, bright // 10])
