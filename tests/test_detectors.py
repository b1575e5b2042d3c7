"""Built-in face detectors on real photos."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from emotionkit import Detection, create_detector, list_detectors
from emotionkit.detectors import FaceDetector, HaarDetector
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


# --- options and order on real photos ----------------------------------------------------

def _two_heads(astronaut_bgr: np.ndarray, *, small_left: bool) -> tuple[np.ndarray, dict]:
    """A 640x480 canvas holding the astronaut's head twice: 240 px tall and 0.6 x that.
    Returns the canvas and the region ``(x, y, w, h)`` of each head, keys big/small."""
    import cv2

    head = astronaut_bgr[20:260, 120:340]  # 240 x 220
    small = cv2.resize(head, (132, 144), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    big_x, small_x = (410, 10) if small_left else (10, 498)
    canvas[120:360, big_x:big_x + 220] = head
    canvas[168:312, small_x:small_x + 132] = small
    return canvas, {"big": (big_x, 120, 220, 240), "small": (small_x, 168, 132, 144)}


def _inside(box, region) -> bool:
    x, y, w, h = box
    rx, ry, rw, rh = region
    return rx <= x + w / 2 <= rx + rw and ry <= y + h / 2 <= ry + rh


def test_haar_min_size_larger_than_the_face_finds_nothing(astronaut_bgr: np.ndarray) -> None:
    """The astronaut's face is about 95 px wide: a smallest size above that finds no face,
    one below it (and the default) still finds it."""
    (default,) = create_detector("haar").detect(astronaut_bgr)
    assert iou(default.box, ASTRONAUT_FACE) > 0.6
    (below,) = create_detector("haar", min_size=(80, 80)).detect(astronaut_bgr)
    assert iou(below.box, default.box) > 0.8
    assert create_detector("haar", min_size=(120, 120)).detect(astronaut_bgr) == []
    # min_size is (width, height): a tall narrow minimum larger than the face's height too
    assert create_detector("haar", min_size=(40, 130)).detect(astronaut_bgr) == []


def test_haar_more_min_neighbors_never_gives_more_faces(astronaut_bgr: np.ndarray) -> None:
    """Few neighbours keep the cascade's false positives on the astronaut photo (the flag,
    the suit); more neighbours drop them and keep the real face."""
    counts = [len(create_detector("haar", min_neighbors=n).detect(astronaut_bgr))
              for n in (0, 1, 3, 5, 10)]
    assert counts == sorted(counts, reverse=True), counts
    assert counts[0] > 10 and counts[1] >= 2 and counts[-1] == 1, counts
    (sure,) = create_detector("haar", min_neighbors=10).detect(astronaut_bgr)
    assert iou(sure.box, ASTRONAUT_FACE) > 0.6


def test_mediapipe_min_confidence_is_compared_with_the_score(astronaut_bgr: np.ndarray) -> None:
    """A face is kept when min_confidence is just below its score, dropped just above."""
    (face,) = create_detector("mediapipe").detect(astronaut_bgr)  # default 0.5
    assert face.score is not None and 0.55 < face.score < 0.97
    (kept,) = create_detector("mediapipe", min_confidence=face.score - 0.03).detect(
        astronaut_bgr)
    assert iou(kept.box, face.box) > 0.9 and kept.score == pytest.approx(face.score, abs=0.01)
    assert create_detector("mediapipe", min_confidence=face.score + 0.03).detect(
        astronaut_bgr) == []


@pytest.mark.parametrize("small_left", [True, False], ids=["small-left", "small-right"])
def test_haar_gives_the_largest_face_first(astronaut_bgr: np.ndarray, small_left: bool) -> None:
    canvas, heads = _two_heads(astronaut_bgr, small_left=small_left)
    found = create_detector("haar").detect(canvas)
    assert len(found) == 2, found
    areas = [d.box[2] * d.box[3] for d in found]
    assert areas[0] > areas[1]
    assert _inside(found[0].box, heads["big"]) and _inside(found[1].box, heads["small"])


@pytest.mark.parametrize("clean_left", [True, False], ids=["clean-left", "clean-right"])
def test_mediapipe_gives_the_surest_face_first(astronaut_bgr: np.ndarray,
                                               clean_left: bool) -> None:
    """Two heads of the same size, one under heavy noise: the clean one scores higher and
    comes first, wherever it is in the image."""
    import cv2

    head = cv2.resize(astronaut_bgr[20:260, 120:340], (205, 224), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).normal(0, 40, head.shape)
    noisy = np.clip(head + noise, 0, 255).astype(np.uint8)
    canvas = np.full((240, 480, 3), 90, np.uint8)
    left, right = (head, noisy) if clean_left else (noisy, head)
    canvas[8:232, 10:215] = left
    canvas[8:232, 265:470] = right
    clean_region = (10, 8, 205, 224) if clean_left else (265, 8, 205, 224)
    found = create_detector("mediapipe").detect(canvas)
    assert len(found) == 2, found
    assert found[0].score > found[1].score + 0.05, [d.score for d in found]
    assert _inside(found[0].box, clean_region) and not _inside(found[1].box, clean_region)


MEDIAPIPE_LANDMARKS = {"right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear",
                       "left_ear"}


def test_mediapipe_landmarks_are_named_and_placed_on_the_face(astronaut_bgr: np.ndarray) -> None:
    """docs/usage.md: MediaPipe gives right_eye, left_eye, nose_tip, mouth_center, right_ear,
    left_ear, the subject's own right and left (the subject's right is the image's left)."""
    (det,) = create_detector("mediapipe").detect(astronaut_bgr)
    points = det.landmarks
    assert set(points) == MEDIAPIPE_LANDMARKS
    x, y, w, h = det.box
    for name in ("right_eye", "left_eye", "nose_tip", "mouth_center"):
        px, py = points[name]
        assert x < px < x + w and y < py < y + h, (name, points[name], det.box)
    for name in ("right_ear", "left_ear"):  # ears lie on the box's sides (+-15 % of w)
        px, py = points[name]
        assert x - 0.15 * w < px < x + 1.15 * w and y < py < y + h, (name, points[name])
    eyes_y = max(points["right_eye"][1], points["left_eye"][1])
    assert eyes_y < points["nose_tip"][1] < points["mouth_center"][1]
    assert (points["right_ear"][0] < points["right_eye"][0] < points["nose_tip"][0]
            < points["left_eye"][0] < points["left_ear"][0])


def test_mediapipe_landmarks_follow_the_face_in_a_wide_frame(
    astronaut_bgr: np.ndarray, frame_640x480: np.ndarray, brightness_model_dir
) -> None:
    """In the 640x480 frame the astronaut's face sits 80 px right and 40 px down of where it
    is in the 512x512 photo: every landmark moves by that much (keypoints are scaled by the
    frame's own width and height; the model sees a different picture, so give or take
    10 px, 15 for the ears). A recognizer's Face carries the same landmarks."""
    from emotionkit import EmotionRecognizer

    (photo,) = create_detector("mediapipe").detect(astronaut_bgr)
    rec = EmotionRecognizer(detector="mediapipe", classifier=brightness_model_dir)
    (face,) = rec.detect(frame_640x480)
    assert set(face.landmarks) == MEDIAPIPE_LANDMARKS
    for name, (px, py) in photo.landmarks.items():
        fx, fy = face.landmarks[name]
        slack = 15 if name.endswith("_ear") else 10  # the ears move most between pictures
        assert fx - px == pytest.approx(80, abs=slack), (name, fx, px)
        assert fy - py == pytest.approx(40, abs=slack), (name, fy, py)
    as_json = face.to_dict()["landmarks"]
    assert as_json["mouth_center"] == [round(v, 2) for v in face.landmarks["mouth_center"]]


# --- threads, interpreter exit, processes --------------------------------------------------

def _run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (a crash or a hang there cannot take pytest
    down); ``pytest.fail`` if it does not end within ``timeout`` seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GLOG_minloglevel": "2"}
    prelude = ("import numpy as np\nfrom skimage import data\n"
               "img = np.ascontiguousarray(data.astronaut()[:, :, ::-1])\n")
    try:
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"no end after {timeout} s (hung); stdout: {exc.stdout!r}")


def _thread_test_images(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    """Real photos whose faces lie in different places: the astronaut, mirrored, smaller,
    and two heads on one canvas."""
    import cv2

    return [astronaut_bgr, np.ascontiguousarray(astronaut_bgr[:, ::-1]),
            cv2.resize(astronaut_bgr, (320, 320)), _two_heads(astronaut_bgr, small_left=True)[0]]


@pytest.mark.parametrize("name", ["haar", "mediapipe"])
def test_one_detector_shared_by_threads_gives_each_image_its_own_faces(
        name: str, astronaut_bgr: np.ndarray) -> None:
    """A shared cv2.CascadeClassifier gave the faces of another thread's image (or raised
    cv2.error): HaarDetector now has a cascade per thread. MediaPipe calls are
    serialized."""
    images = _thread_test_images(astronaut_bgr)
    detector = create_detector(name)
    expected = [[d.box for d in detector.detect(image)] for image in images]
    assert all(expected) and len({str(boxes) for boxes in expected}) == len(images)
    jobs = [i % len(images) for i in range(96)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: [d.box for d in detector.detect(images[i])], jobs))
    wrong = [i for i, boxes in zip(jobs, got) if boxes != expected[i]]
    assert wrong == [], f"{len(wrong)} of {len(jobs)} calls gave another image's boxes"


def test_mediapipe_close_while_threads_detect_is_safe() -> None:
    """close() waits for the detect() calls in progress (it used to free the graph under
    them: a segfault, or MediaPipe errors); later calls raise the 'closed' error."""
    res = _run_python("""
        import threading, time
        from emotionkit.detectors import MediaPipeDetector
        outcomes = set()
        def loop(det, stop):
            while not stop.is_set():
                try:
                    outcomes.add(f"{len(det.detect(img))} face")
                except Exception as exc:
                    closed = "the detector is closed; create a new" in str(exc)
                    outcomes.add("closed" if closed else repr(exc))
        for _ in range(5):
            det, stop = MediaPipeDetector(), threading.Event()
            threads = [threading.Thread(target=loop, args=(det, stop)) for _ in range(6)]
            for t in threads:
                t.start()
            time.sleep(0.15)
            det.close()
            time.sleep(0.05)
            stop.set()
            for t in threads:
                t.join()
        print(sorted(outcomes))
        """)
    assert res.returncode == 0, f"exit code {res.returncode}: {res.stderr[-1500:]}"
    assert res.stdout == "['1 face', 'closed']\n"


def test_detections_of_non_daemon_threads_and_executor_jobs_finish_at_exit() -> None:
    """Python waits for non-daemon threads and queued ThreadPoolExecutor jobs when the
    main thread's code ends; their MediaPipe detections used to fail then (the graph was
    closed, or MediaPipe's own executor stopped, before they ran)."""
    res = _run_python("""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from emotionkit.detectors import MediaPipeDetector
        det = MediaPipeDetector()
        faces, lock = [], threading.Lock()
        def job(i):
            n = len(det.detect(img))
            with lock:
                faces.append(n)
                if len(faces) == 90:
                    print("all", len(faces), "detections made, faces:", set(faces), flush=True)
        def worker():
            for i in range(30):
                job(i)
        threading.Thread(target=worker).start()
        pool = ThreadPoolExecutor(2)
        for i in range(60):
            pool.submit(job, i)
        print("main thread done", flush=True)
        """)
    assert res.returncode == 0, f"exit code {res.returncode}: {res.stderr[-1500:]}"
    assert res.stdout.splitlines() == ["main thread done",
                                       "all 90 detections made, faces: {1}"], res.stdout
    assert "Traceback" not in res.stderr, res.stderr[-2000:]


def test_mediapipe_calls_run_in_the_calling_thread_with_this_mediapipe() -> None:
    """The exit-safety of MediaPipeDetector rests on swapping MediaPipe's dispatcher for
    calls in the calling thread, through MediaPipe internals; where they differ the swap is
    skipped quietly, so this test says when an upgrade of mediapipe turns it off."""
    from emotionkit.detectors import MediaPipeDetector
    from emotionkit.detectors.mediapipe import _CallerThreadLibrary

    with MediaPipeDetector() as detector:
        assert isinstance(detector._task._lib, _CallerThreadLibrary)


def test_exit_while_daemon_threads_detect_does_not_crash() -> None:
    """At exit the graph is closed while daemon threads still call detect(): close waits
    for the calls in progress (no segfault: exit code 0). A daemon thread may be stopped by
    the interpreter before it reports anything; what one does report is the clear error."""
    res = _run_python("""
        import os, threading, time
        from emotionkit.detectors import MediaPipeDetector
        det = MediaPipeDetector()
        def loop():
            while True:
                det.detect(img)
        def report(e):  # one write call per line: lines of threads do not mix
            os.write(1, f"thread: {e.exc_value!r}\\n".encode())
        threading.excepthook = report
        for _ in range(4):
            threading.Thread(target=loop, daemon=True).start()
        time.sleep(0.3)
        print("main thread done", flush=True)
        """)
    assert res.returncode == 0, f"exit code {res.returncode}: {res.stderr[-1500:]}"
    main, *threads = res.stdout.splitlines()
    assert main == "main thread done"
    assert all(line.startswith("thread: EmotionKitError(") and "the interpreter is exiting"
               in line for line in threads), res.stdout


def test_the_first_mediapipe_detector_of_a_process_is_freed() -> None:
    """MediaPipe keeps the error of its optional sounddevice import, whose traceback held
    the frames that first imported MediaPipe: the first detector and its caller's locals
    were never freed."""
    res = _run_python("""
        import gc, weakref
        from emotionkit.detectors import MediaPipeDetector
        class Request:
            pass
        def handle():
            request, detector = Request(), MediaPipeDetector()
            detector.detect(img)
            return weakref.ref(request), weakref.ref(detector), detector._finalizer
        request, detector, graph = handle()
        gc.collect()
        print(request() is None, detector() is None, not graph.alive)
        """)
    assert res.returncode == 0, f"exit code {res.returncode}: {res.stderr[-1500:]}"
    assert res.stdout.split() == ["True", "True", "True"]


def test_built_in_detectors_pickle_as_their_settings(tmp_path, astronaut_bgr: np.ndarray) -> None:
    import pickle
    import shutil

    from emotionkit.detectors import HaarDetector, MediaPipeDetector, WholeImageDetector
    from emotionkit.detectors.base import bundled_model_path

    haar = HaarDetector(scale_factor=1.2, min_neighbors=3, min_size=(40, 40))
    with MediaPipeDetector(min_confidence=0.3, min_suppression_threshold=0.4) as mediapipe:
        for detector in (haar, mediapipe, WholeImageDetector()):
            copy = pickle.loads(pickle.dumps(detector))
            assert type(copy) is type(detector) and copy is not detector
            assert vars(copy).keys() == vars(detector).keys()
            public = {k: v for k, v in vars(detector).items() if not k.startswith("_")}
            assert public == {k: v for k, v in vars(copy).items() if not k.startswith("_")}
            assert copy.detect(astronaut_bgr) == detector.detect(astronaut_bgr)
    # the bundled model goes as None (the unpickling process's own copy); others as paths
    assert haar.__reduce__()[1][2][0] is None
    cascade = shutil.copy(bundled_model_path("haarcascade_frontalface_default.xml"), tmp_path)
    moved = pickle.loads(pickle.dumps(HaarDetector(cascade_path=cascade)))
    assert moved.cascade_path == tmp_path / "haarcascade_frontalface_default.xml"


class _NoFaces(HaarDetector):
    """A user's subclass (at module level, so that pickle can name it)."""

    def detect(self, image_bgr: np.ndarray) -> list:
        return [] if self.silent else super().detect(image_bgr)


def test_subclasses_of_built_in_detectors_stay_subclasses_when_pickled(
        astronaut_bgr: np.ndarray) -> None:
    """__reduce__ rebuilt the base class: a subclass sent to worker processes silently
    became the plain detector there (its own detect() and attributes lost)."""
    import pickle

    detector = _NoFaces(min_neighbors=3)
    detector.silent = True
    copy = pickle.loads(pickle.dumps(detector))
    assert type(copy) is _NoFaces and copy.silent and copy.min_neighbors == 3
    assert copy.detect(astronaut_bgr) == [] and HaarDetector().detect(astronaut_bgr)


def test_a_mediapipe_detector_inherited_through_fork_fails_clearly() -> None:
    """MediaPipe cannot run in a fork()ed child (its threads are not copied): detect()
    there used to hang forever; now it raises, and the child exits normally."""
    res = _run_python("""
        import multiprocessing, os, sys
        from emotionkit.detectors import MediaPipeDetector
        det = MediaPipeDetector()
        det.detect(img)
        def count(_):
            return len(det.detect(img))
        if __name__ == "__main__":
            with multiprocessing.get_context("fork").Pool(1) as pool:
                try:
                    print("pool:", pool.map(count, [0], chunksize=1))
                except Exception as exc:
                    print(f"pool: {type(exc).__name__}: {exc}")
            pid = os.fork()
            if pid == 0:  # a plain fork whose child ends normally (exit hooks run)
                try:
                    count(0)
                except Exception as exc:
                    print("child:", type(exc).__name__, flush=True)
                det.close()
                sys.exit(3)
            print("child exit code:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            print("parent:", count(0))
        """, timeout=40)
    assert res.returncode == 0, f"exit code {res.returncode}: {res.stderr[-1500:]}"
    lines = res.stdout.splitlines()
    assert lines[0].startswith("pool: EmotionKitError: MediaPipeDetector.detect(): this "
                               "detector was made in process"), lines
    assert "inherited through fork()" in lines[0] and "'spawn'" in lines[0]
    assert lines[1:] == ["child: EmotionKitError", "child exit code: 3", "parent: 1"]


def test_errors_module_exports_only_its_errors() -> None:
    names: dict = {}
    exec("from emotionkit.errors import *", names)
    assert sorted(n for n in names if n != "__builtins__") == [
        "EmotionKitError", "ImageLoadError", "ModelLoadError", "UnknownPluginError"]
