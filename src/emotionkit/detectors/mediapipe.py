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

import contextlib
import os
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmotionKitError, ModelLoadError
from ..io import clip_box
from ..results import Detection
from .base import _number_option, bundled_model_path, detector_input

__all__ = ["MediaPipeDetector"]

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
        self._detector = _create_detector(
            self.model_path, self.min_confidence, self.min_suppression_threshold
        )
        self._finalizer = weakref.finalize(self, _close_quietly, self._detector)
        _track_for_exit(self)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR image, highest score first.

        Grayscale and BGRA arrays, float in ``[0, 1]`` and 16-bit are converted as
        :func:`emotionkit.load_image` converts them; other input raises
        :class:`~emotionkit.errors.ImageLoadError`. Raises
        :class:`~emotionkit.errors.EmotionKitError` after :meth:`close`.
        """
        import mediapipe as mp

        if not self._finalizer.alive:
            raise EmotionKitError(
                "MediaPipeDetector.detect(): the detector is closed; create a new "
                "MediaPipeDetector (or call detect() inside its `with` block)"
            )
        image = detector_input(image_bgr, "MediaPipeDetector")
        h, w = image.shape[:2]
        small = _fit(image, MAX_SIDE)
        sx, sy = w / small.shape[1], h / small.shape[0]  # small -> original pixels
        rgb = np.ascontiguousarray(small[:, :, ::-1]) if small.ndim == 3 else (
            np.ascontiguousarray(np.repeat(small[:, :, None], 3, axis=2))
        )
        result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
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
        """Release the MediaPipe graph; the detector cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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


def _create_detector(model_path: Path, min_confidence: float, nms: float) -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")  # silence MediaPipe's C++ INFO logging
    from mediapipe.tasks.python import BaseOptions, vision

    if not model_path.is_file():
        raise ModelLoadError(f"{model_path}: face detection model file not found")
    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE,
        min_detection_confidence=min_confidence,
        min_suppression_threshold=nms,
    )
    try:
        return vision.FaceDetector.create_from_options(options)
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"{model_path}: not a usable MediaPipe face detection model ({exc})"
        ) from exc


_open_detectors: weakref.WeakSet[MediaPipeDetector] = weakref.WeakSet()
_exit_hook_registered = False


def _track_for_exit(detector: MediaPipeDetector) -> None:
    """Close ``detector`` at interpreter exit unless it is closed or collected first.

    MediaPipe's own ``__del__`` runs after its dispatch thread pool has shut down and then
    fails with a traceback. Threading-exit hooks run in reverse order of registration and
    before ``atexit``, so a hook registered after MediaPipe has started its pool (here,
    after the first detector exists) runs while the pool still accepts work.
    """
    global _exit_hook_registered
    _open_detectors.add(detector)
    if not _exit_hook_registered:
        getattr(threading, "_register_atexit", lambda fn: None)(_close_open_detectors)
        _exit_hook_registered = True


def _close_open_detectors() -> None:
    for detector in list(_open_detectors):
        detector.close()


def _close_quietly(detector: Any) -> None:
    with contextlib.suppress(Exception):  # already closed or interpreter shutting down
        detector.close()
