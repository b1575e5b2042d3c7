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
    # Cut the image just past the face's bottom-right: both detectors still find it, and
    # MediaPipe's own box (173, 72, 100, 100) reaches past the right and bottom edges.
    cut = np.ascontiguousarray(astronaut_bgr[:165, :265])
    found = detector.detect(cut)
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert x >= 0 and y >= 0 and x + w <= cut.shape[1] and y + h <= cut.shape[0]
    assert iou(found[0].box, ASTRONAUT_FACE) > 0.5


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


def _bgra(bgr: np.ndarray, alpha: int) -> np.ndarray:
    import cv2

    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = alpha
    return bgra


@pytest.mark.parametrize(
    "convert",
    [
        lambda bgr: _bgra(bgr, 255),
        lambda bgr: _bgra(bgr, 0),
        lambda bgr: bgr.astype(np.float64) / 255.0,
        lambda bgr: bgr.astype(np.float32),  # float in 0..255
        lambda bgr: bgr.astype(np.uint16) * 257,
        lambda bgr: bgr[:, :, :1],  # (H, W, 1): the blue channel as gray
    ],
    ids=["bgra-opaque", "bgra-transparent", "float64-unit", "float32-0-255", "uint16",
         "one-channel"],
)
def test_detectors_accept_what_the_recognizer_accepts(
    detector, astronaut_bgr: np.ndarray, convert
) -> None:
    """BGRA, float and 16-bit arrays are converted as load_image converts them: the face
    is found where it is in the BGR photo (MediaPipe used to read BGRA as garbled RGB)."""
    found = detector.detect(convert(astronaut_bgr))
    assert len(found) == 1 and iou(found[0].box, ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("name", ["haar", "mediapipe", "none"])
@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64, 2), np.uint8), r"shape \(64, 64, 2\)"),
        (np.zeros((0, 0, 3), np.uint8), "empty image"),
        (np.zeros((64, 0), np.uint8), "empty image"),
        (np.zeros((64, 64, 3), np.complex64), "dtype complex64"),
        ([[0, 0], [0, 0]], "numpy image array, got list"),
        ("photo.jpg", "got str; .*load_image"),
    ],
    ids=["two-channels", "0x0", "64x0-gray", "complex", "list", "path"],
)
def test_bad_arrays_give_one_clear_error(name: str, image, message: str) -> None:
    from emotionkit import ImageLoadError

    detector = create_detector(name)
    with pytest.raises(ImageLoadError, match=message) as err:
        detector.detect(image)
    assert str(err.value).startswith(f"{type(detector).__name__}.detect(): ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("haar", {"scale_factor": 1.0}, "scale_factor must be a number > 1"),
        ("haar", {"scale_factor": float("nan")}, "scale_factor"),
        ("haar", {"min_neighbors": -1}, "min_neighbors must be an int >= 0"),
        ("haar", {"min_neighbors": 2.5}, "min_neighbors"),
        ("haar", {"min_size": (0, 30)}, "min_size width must be an int >= 1"),
        ("haar", {"min_size": (30, -4)}, "min_size height"),
        ("haar", {"min_size": 30}, r"min_size must be \(width, height\)"),
        ("mediapipe", {"min_confidence": 2}, r"min_confidence must be a number in \[0, 1\]"),
        ("mediapipe", {"min_confidence": -0.1}, "min_confidence"),
        ("mediapipe", {"min_confidence": float("nan")}, "min_confidence"),
        ("mediapipe", {"min_suppression_threshold": 1.5}, "min_suppression_threshold"),
    ],
    ids=["haar-scale-1", "haar-scale-nan", "haar-neighbors-neg", "haar-neighbors-float",
         "haar-size-0", "haar-size-neg", "haar-size-int", "mp-conf-2", "mp-conf-neg",
         "mp-conf-nan", "mp-nms-1.5"],
)
def test_bad_options_are_refused_when_the_detector_is_made(
    name: str, options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_detector(name, **options)


def test_option_edge_values_work(astronaut_bgr: np.ndarray) -> None:
    found = create_detector("haar", min_neighbors=0, min_size=(1, 1)).detect(astronaut_bgr)
    assert len(found) >= 1
    assert create_detector("mediapipe", min_confidence=1.0).detect(astronaut_bgr) == []
    best = create_detector("mediapipe", min_confidence=0.0).detect(astronaut_bgr)[0]
    assert iou(best.box, ASTRONAUT_FACE) > 0.6


def test_mediapipe_detect_after_close_is_an_error(astronaut_bgr: np.ndarray) -> None:
    from emotionkit import EmotionKitError

    with create_detector("mediapipe") as detector:
        assert len(detector.detect(astronaut_bgr)) == 1
    with pytest.raises(EmotionKitError, match="detector is closed; create a new"):
        detector.detect(astronaut_bgr)
    detector.close()  # closing twice is harmless
    other = create_detector("mediapipe")
    other.close()
    with pytest.raises(EmotionKitError, match="closed"):
        other.detect(astronaut_bgr)
