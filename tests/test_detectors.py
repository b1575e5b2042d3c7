"""Built-in face detectors on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from emotionkit import Detection, create_detector, list_detectors
from emotionkit.detectors import FaceDetector
from emotionkit.tracking import iou

# The astronaut's face in skimage.data.astronaut(), (x, y, w, h), checked by eye.
ASTRONAUT_FACE = (177, 75, 96, 100)


@pytest.fixture(scope="module", params=["haar", "mediapipe"])
def detector(request):
    return create_detector(request.param)


def test_builtins_are_listed() -> None:
    assert {"haar", "mediapipe", "none"} <= set(list_detectors())


def test_finds_the_one_real_face(detector, astronaut_bgr: np.ndarray) -> None:
    assert isinstance(detector, FaceDetector)
    found = detector.detect(astronaut_bgr)
    assert len(found) == 1
    det = found[0]
    assert isinstance(det, Detection)
    assert iou(det.box, ASTRONAUT_FACE) > 0.6
    assert all(isinstance(v, int) for v in det.box)


def test_grayscale_input_works(detector, astronaut_bgr: np.ndarray) -> None:
    import cv2

    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    found = detector.detect(gray)
    assert len(found) == 1 and iou(found[0].box, ASTRONAUT_FACE) > 0.6


def test_no_face_gives_empty_list(detector) -> None:
    from skimage import data

    coffee = np.ascontiguousarray(data.coffee()[:, :, ::-1])
    assert detector.detect(coffee) == []
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_boxes_are_clipped_to_the_image(detector, astronaut_bgr: np.ndarray) -> None:
    # Cut the image through the face so that the face touches the top-left corner.
    cut = np.ascontiguousarray(astronaut_bgr[100:, 190:])
    for det in detector.detect(cut):
        x, y, w, h = det.box
        assert x >= 0 and y >= 0 and x + w <= cut.shape[1] and y + h <= cut.shape[0]


def test_mediapipe_scores_and_eye_landmarks(astronaut_bgr: np.ndarray) -> None:
    det = create_detector("mediapipe").detect(astronaut_bgr)[0]
    assert det.score is not None and 0.5 < det.score <= 1.0
    x, y, w, h = det.box
    for name in ("right_eye", "left_eye"):
        ex, ey = det.landmarks[name]
        assert x < ex < x + w and y < ey < y + h / 2
    # The subject's right eye is on the image's left.
    assert det.landmarks["right_eye"][0] < det.landmarks["left_eye"][0]


def test_haar_has_no_score(astronaut_bgr: np.ndarray) -> None:
    assert create_detector("haar").detect(astronaut_bgr)[0].score is None


def test_min_confidence_filters(astronaut_bgr: np.ndarray) -> None:
    strict = create_detector("mediapipe", min_confidence=0.99)
    assert strict.detect(astronaut_bgr) == []


def test_whole_image_detector() -> None:
    det = create_detector("none").detect(np.zeros((48, 40, 3), np.uint8))
    assert [d.box for d in det] == [(0, 0, 40, 48)]


def test_bad_model_files_give_clear_errors(tmp_path) -> None:
    from emotionkit import ModelLoadError

    bogus = tmp_path / "bogus.xml"
    bogus.write_text("<nope/>")
    with pytest.raises(ModelLoadError, match="bogus.xml"):
        create_detector("haar", cascade_path=bogus)
    with pytest.raises(ModelLoadError, match="not found"):
        create_detector("mediapipe", model_path=tmp_path / "missing.tflite")


def test_mediapipe_finds_a_face_in_an_image_wider_than_it_can_take() -> None:
    """MediaPipe aborts the process on a side >= 32767 px: such an image is detected on a
    downscaled copy, and the box and keypoints come back in the original's pixels."""
    import cv2
    from skimage import data

    head = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[40:220, 140:310]
    k = 11000 / head.shape[0]  # the head fills the height of an 11000 x 33000 canvas
    canvas = np.full((11000, 33000), 90, np.uint8)
    x0 = 20000
    canvas[:, x0:x0 + round(head.shape[1] * k)] = cv2.resize(
        head, (round(head.shape[1] * k), 11000))
    (det,) = create_detector("mediapipe").detect(canvas)
    x, y, w, h = ASTRONAUT_FACE
    expected = (round(x0 + (x - 140) * k), round((y - 40) * k), round(w * k), round(h * k))
    assert iou(det.box, expected) > 0.6
    assert x0 < det.landmarks["right_eye"][0] < det.landmarks["left_eye"][0] < x0 + 170 * k
    assert create_detector("mediapipe").detect(np.full((1, 200_000, 3), 90, np.uint8)) == []
