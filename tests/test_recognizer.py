"""EmotionRecognizer end to end: real photos, real trained model files."""

from __future__ import annotations

import json
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


@needs_shared
def test_bundled_model_on_real_privatetest_rows() -> None:
    """The first 600 PrivateTest rows of FER2013 (never seen in training or selection)."""
    import gzip

    pixels, codes = [], []
    with gzip.open(FER_CSV, "rt") as f:
        next(f)
        for line in f:
            code, values, usage = line.rstrip("\n").split(",")
            if usage == "PrivateTest":
                pixels.append(np.array(values.split(), dtype=np.uint8).reshape(48, 48))
                codes.append(int(code))
                if len(codes) == 600:
                    break
    probs = EmotionRecognizer(detector="none").classify(pixels)
    accuracy = float((probs.argmax(axis=1) == np.array(codes)).mean())
    # 67.4% on the whole split (docs/models/fer-cnn.md); chance is 14%, "always happy" 25%
    assert accuracy > 0.6, accuracy
