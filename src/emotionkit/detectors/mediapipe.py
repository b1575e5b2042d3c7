"""MediaPipe BlazeFace (short range) face detector (``detector="mediapipe"``).

Uses the MediaPipe Tasks API (``mediapipe.tasks.python.vision.FaceDetector``) with the
bundled ``blazeface_short_range.tflite``: mediapipe >= 0.10.30 ships neither the model
nor the legacy ``solutions`` API. The short-range model is tuned for faces within about
2 m of the camera (selfies, webcams, portraits); small faces in wide shots may be missed.

MediaPipe aborts the whole process on an image with a side of 32767 px or more. An image
whose longer side exceeds :data:`MAX_SIDE` is therefore detected on a copy downscaled to
fit it; the boxes and keypoints are given in the original image's pixels. The model sees
a 128x128 input, so this loses nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmotionKitError, ModelLoadError
from ..io import clip_box
from ..results import Detection
from .base import _number_option, _path_setting, _reduce, bundled_model_path, detector_input

__all__ = ["MediaPipeDetector"]

log = logging.getLogger("emotionkit")

_DEFAULT_MODEL = "blazeface_short_range.tflite"
# BlazeFace keypoint order; "right"/"left" are the subject's own sides.
_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
MAX_SIDE = 8192
"""Longest image side (pixels) passed to MediaPipe; larger images are downscaled first."""


class MediaPipeDetector:
    """BlazeFace detector via MediaPipe Tasks.

    Args:
        model_path: ``.tflite`` face detection model; defaults to the bundled BlazeFace
            short-range model.
        min_confidence: detections scoring below this (in ``[0, 1]``) are dropped.
        min_suppression_threshold: IoU (in ``[0, 1]``) above which overlapping detections
            are merged.

    Call :meth:`close` (or use it as a context manager) to free the native graph early;
    it is also freed when the object is garbage-collected or at interpreter exit.

    Threads: one detector can be shared. Its native calls run one at a time (a lock; the
    image conversions around them run in parallel); :meth:`close` waits for a ``detect``
    in progress, and later calls raise :class:`~emotionkit.errors.EmotionKitError`.

    Processes: a pickled detector is rebuilt from its settings (model path, thresholds)
    where it is unpickled. A detector inherited through ``fork()`` cannot run in the child
    (MediaPipe's threads are not copied): ``detect`` there raises
    :class:`~emotionkit.errors.EmotionKitError` instead of hanging.

    Raises:
        ValueError: ``min_confidence`` or ``min_suppression_threshold`` is not in ``[0, 1]``.
        ModelLoadError: the model file is missing or not a face detection model.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        min_confidence: float = 0.5,
        min_suppression_threshold: float = 0.3,
    ) -> None:
        self.model_path = Path(model_path) if model_path else bundled_model_path(_DEFAULT_MODEL)
        self.min_confidence = _unit_option("min_confidence", min_confidence)
        self.min_suppression_threshold = _unit_option(
            "min_suppression_threshold", min_suppression_threshold)
        self._task = _create_task(
            self.model_path, self.min_confidence, self.min_suppression_threshold
        )
        self._lock = threading.Lock()  # one native call at a time; close waits for it
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _close_task, self._task, self._lock,
                                           self._pid)
        _track_for_exit(self)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR image, highest score first.

        Grayscale and BGRA arrays, float in ``[0, 1]`` and 16-bit are converted as
        :func:`emotionkit.load_image` converts them; other input raises
        :class:`~emotionkit.errors.ImageLoadError`. Raises
        :class:`~emotionkit.errors.EmotionKitError` after :meth:`close` and in a process
        that inherited the detector through ``fork()``.
        """
        import mediapipe as mp

        if self._pid != os.getpid():  # before the lock: a fork may have copied it held
            raise EmotionKitError(
                f"MediaPipeDetector.detect(): this detector was made in process {self._pid} "
                "and inherited through fork(), where MediaPipe cannot run; create the "
                "detector in this process (e.g. in a pool initializer) or start workers "
                "with the 'spawn' or 'forkserver' method"
            )
        image = detector_input(image_bgr, "MediaPipeDetector")
        h, w = image.shape[:2]
        small = _fit(image, MAX_SIDE)
        sx, sy = w / small.shape[1], h / small.shape[0]  # small -> original pixels
        rgb = np.ascontiguousarray(small[:, :, ::-1]) if small.ndim == 3 else (
            np.ascontiguousarray(np.repeat(small[:, :, None], 3, axis=2))
        )
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        with self._lock:
            if not self._finalizer.alive:
                raise EmotionKitError("MediaPipeDetector.detect(): the detector is " + (
                    "closed: the interpreter is exiting" if _exiting else
                    "closed; create a new MediaPipeDetector (or call detect() inside its "
                    "`with` block)"))
            result = self._task.detect(mp_image)
        found = []
        for det in result.detections:
            bb = det.bounding_box
            box = clip_box((bb.origin_x * sx, bb.origin_y * sy, bb.width * sx, bb.height * sy),
                           w, h)
            if box[2] <= 0 or box[3] <= 0:
                continue
            score = float(det.categories[0].score) if det.categories else None
            landmarks = {  # keypoints are relative to the image size
                name: (float(kp.x) * w, float(kp.y) * h)
                for name, kp in zip(_KEYPOINTS, det.keypoints or [])
            }
            found.append(Detection(box=box, score=score, landmarks=landmarks))
        found.sort(key=lambda d: d.score or 0.0, reverse=True)
        return found

    def close(self) -> None:
        """Release the MediaPipe graph; the detector cannot be used afterwards.

        Safe while other threads are in :meth:`detect`: it waits for a call in progress.
        """
        self._finalizer()

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the settings: unpickling builds a new, open detector (with that
        process's bundled model when this one uses the bundled model)."""
        return _reduce(self, MediaPipeDetector,
                       (_path_setting(self.model_path, _DEFAULT_MODEL), self.min_confidence,
                        self.min_suppression_threshold), _MEDIAPIPE_ATTRIBUTES)

    def __repr__(self) -> str:
        return f"MediaPipeDetector(min_confidence={self.min_confidence})"


def _unit_option(name: str, value: Any) -> float:
    return _number_option("MediaPipeDetector", name, value, lambda v: 0.0 <= v <= 1.0,
                          "a number in [0, 1]")


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image``, or a copy downscaled (aspect ratio kept) so that no side exceeds
    ``max_side`` pixels."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _create_task(model_path: Path, min_confidence: float, nms: float) -> Any:
    """A MediaPipe ``FaceDetector`` task in image mode, its native calls made in the
    calling thread (:func:`_call_in_caller_thread`)."""
    base_options, vision = _import_tasks()
    if not model_path.is_file():
        raise ModelLoadError(f"{model_path}: face detection model file not found")
    options = vision.FaceDetectorOptions(
        base_options=base_options(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE,
        min_detection_confidence=min_confidence,
        min_suppression_threshold=nms,
    )
    try:
        task = vision.FaceDetector.create_from_options(options)
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"{model_path}: not a usable MediaPipe face detection model ({exc})"
        ) from exc
    try:
        _call_in_caller_thread(task)
    except Exception as exc:  # other MediaPipe internals: its own dispatcher stays
        log.debug("MediaPipe native calls stay on MediaPipe's dispatch thread (%s)", exc)
    return task


@functools.cache
def _import_tasks() -> tuple[Any, Any]:
    """``(BaseOptions, vision)`` from ``mediapipe.tasks.python``; imported (and cleaned,
    below) once per process.

    MediaPipe keeps, in module globals, the exception of its optional ``sounddevice``
    import (``audio_record.sd_error``: PortAudio not found, or not installed). That
    exception's traceback holds the frames of everything that was running when
    MediaPipe was first imported -- a detector's ``__init__``, a recognizer's, the
    caller's locals -- and would keep them alive for the life of the process. The
    tracebacks of such module-level exceptions are dropped here.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")  # silence MediaPipe's C++ INFO logging
    from mediapipe.tasks.python import BaseOptions, vision

    for name, module in list(sys.modules.items()):
        if name.startswith("mediapipe."):
            for value in list(getattr(module, "__dict__", {}).values()):
                if isinstance(value, BaseException):
                    _drop_tracebacks(value)
    return BaseOptions, vision


def _drop_tracebacks(error: BaseException | None) -> None:
    """Clear the traceback of ``error`` and of the errors it was raised from."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


class _CallerThreadExecutor:
    """The part of :class:`concurrent.futures.Executor` that MediaPipe's dispatcher
    uses (``submit(...).result()``, ``shutdown()``), running each call at once in the
    thread that submits it."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller by future.result()
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        """Nothing to stop."""


class _CallerThreadLibrary:
    """MediaPipe's native functions ``signatures`` of ``lib``, called in the calling
    thread, with MediaPipe's own status checks."""

    def __init__(self, lib: Any, signatures: Any) -> None:
        executor = _CallerThreadExecutor()
        for signature in signatures:
            setattr(self, signature.func_name, signature.create_python_wrapper(lib, executor))

    def close(self) -> None:
        """Nothing to release (the library stays loaded)."""


def _call_in_caller_thread(task: Any) -> None:
    """Make ``task`` call its native functions in the calling thread.

    MediaPipe >= 0.10.30 sends each native call of a task to a
    ``concurrent.futures.ThreadPoolExecutor`` of its own (``SerialDispatcher``). Python
    stops all such executors at interpreter exit *before* it waits for non-daemon
    threads, so a non-daemon thread or a ``ThreadPoolExecutor`` job still detecting after
    the main thread's code has ended would fail ("cannot schedule new futures after
    shutdown"). :class:`MediaPipeDetector` makes its calls one at a time under its own
    lock instead. Other MediaPipe versions are left as they are.
    """
    from mediapipe.tasks.python.core import mediapipe_c_bindings, serial_dispatcher
    from mediapipe.tasks.python.vision import face_detector

    signatures = getattr(face_detector, "_CTYPES_SIGNATURES", None)
    dispatcher = getattr(task, "_lib", None)
    if signatures is None or not isinstance(dispatcher, serial_dispatcher.SerialDispatcher):
        return
    task._lib = _CallerThreadLibrary(mediapipe_c_bindings.load_raw_library(), signatures)
    dispatcher.close()  # stops its thread


_MEDIAPIPE_ATTRIBUTES = frozenset({"model_path", "min_confidence", "min_suppression_threshold",
                                   "_task", "_lock", "_pid", "_finalizer"})
"""What ``MediaPipeDetector.__init__`` makes (rebuilt, not copied, when unpickled)."""

_open_detectors: weakref.WeakSet[MediaPipeDetector] = weakref.WeakSet()
_exit_hook_registered = False
_exiting = False
_inherited_tasks: list[Any] = []
"""Tasks of detectors inherited through fork(): never closed in this process (closing
would wait for MediaPipe threads that were not copied); kept so that they are not
collected before interpreter exit, when MediaPipe skips the native close."""


def _track_for_exit(detector: MediaPipeDetector) -> None:
    """Close ``detector`` at interpreter exit unless it is closed or collected first.

    The hook is an ordinary :mod:`atexit` one, so it runs after Python has waited for
    non-daemon threads (and ``ThreadPoolExecutor`` jobs): their detections finish. A
    daemon thread still in ``detect`` is waited for by :meth:`MediaPipeDetector.close`;
    its later calls raise. It is registered after MediaPipe is imported, so it runs
    before MediaPipe's own exit hook, after which MediaPipe skips native calls.
    """
    global _exit_hook_registered
    _open_detectors.add(detector)
    if not _exit_hook_registered:
        atexit.register(_close_open_detectors)
        _exit_hook_registered = True


def _close_open_detectors() -> None:
    global _exiting
    _exiting = True
    for detector in list(_open_detectors):
        detector.close()


def _close_task(task: Any, lock: threading.Lock, pid: int) -> None:
    """Close a MediaPipe ``task`` once no ``detect`` is using it (``lock``); a task made
    in another process ``pid`` (inherited through fork) is kept, not closed."""
    if os.getpid() != pid:
        _inherited_tasks.append(task)
        return
    with lock, contextlib.suppress(Exception):  # already closed or interpreter shutting down
        task.close()
