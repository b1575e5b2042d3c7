"""OpenCV Haar cascade face detector (``detector="haar"``)."""

from __future__ import annotations

import math
import operator
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelLoadError
from ..io import clip_box
from ..results import Detection
from .base import _number_option, _path_setting, _reduce, bundled_model_path, detector_input

__all__ = ["HaarDetector"]

_DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


_HAAR_ATTRIBUTES = frozenset({"cascade_path", "scale_factor", "min_neighbors", "min_size",
                              "_per_thread"})
"""What ``HaarDetector.__init__`` makes (rebuilt, not copied, when unpickled)."""


class HaarDetector:
    """Viola-Jones frontal face detector from OpenCV (``cv2.CascadeClassifier``).

    Fast and dependency-light, but frontal-only and with more false positives than
    MediaPipe. It gives no confidence: :attr:`Detection.score` is ``None``.

    Threads: one detector can be shared. ``cv2.CascadeClassifier`` is not thread-safe
    (a shared one gives wrong boxes), so each thread that calls :meth:`detect` loads its
    own copy of the cascade on its first call (about 10 ms; calls run in parallel).

    Processes: a pickled detector is rebuilt from its settings where it is unpickled.

    Args:
        cascade_path: cascade XML; defaults to the bundled
            ``haarcascade_frontalface_default.xml``.
        scale_factor: image pyramid step (> 1).
        min_neighbors: overlapping hits needed to keep a face (higher: fewer, surer faces).
        min_size: smallest face, ``(width, height)`` in pixels (each >= 1).

    Raises:
        ValueError: ``scale_factor`` is not > 1, ``min_neighbors`` is not an int >= 0, or
            ``min_size`` is not two ints >= 1.
        ModelLoadError: the cascade file is missing or not a Haar cascade.
    """

    def __init__(
        self,
        cascade_path: str | Path | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: tuple[int, int] = (30, 30),
    ) -> None:
        self.cascade_path = Path(cascade_path) if cascade_path else bundled_model_path(
            _DEFAULT_CASCADE
        )
        self.scale_factor = _number_option(
            "HaarDetector", "scale_factor", scale_factor, lambda v: 1.0 < v < math.inf,
            "a number > 1 (e.g. 1.1)")
        self.min_neighbors = _check_int("min_neighbors", min_neighbors, minimum=0)
        self.min_size = _check_min_size(min_size)
        self._per_thread = threading.local()  # .cascade: this thread's classifier
        self._per_thread.cascade = _load_cascade(self.cascade_path)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR image, largest first.

        Grayscale and BGRA arrays, float in ``[0, 1]`` and 16-bit are converted as
        :func:`emotionkit.load_image` converts them; other input raises
        :class:`~emotionkit.errors.ImageLoadError`.
        """
        gray = detector_input(image_bgr, "HaarDetector", gray=True)
        rects = self._cascade().detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=self.min_size,
        )
        h, w = gray.shape[:2]
        boxes = [clip_box(tuple(float(v) for v in r), w, h) for r in rects]  # type: ignore[arg-type]
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return [Detection(box=b, score=None) for b in boxes if b[2] > 0 and b[3] > 0]

    def _cascade(self) -> Any:
        """This thread's ``cv2.CascadeClassifier``, loaded on the thread's first call."""
        cascade = getattr(self._per_thread, "cascade", None)
        if cascade is None:
            cascade = self._per_thread.cascade = _load_cascade(self.cascade_path)
        return cascade

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the settings: unpickling loads the cascade anew (that process's
        bundled file when this detector uses the bundled cascade)."""
        return _reduce(self, HaarDetector,
                       (_path_setting(self.cascade_path, _DEFAULT_CASCADE), self.scale_factor,
                        self.min_neighbors, self.min_size), _HAAR_ATTRIBUTES)

    def __repr__(self) -> str:
        return (
            f"HaarDetector(scale_factor={self.scale_factor}, "
            f"min_neighbors={self.min_neighbors}, min_size={self.min_size})"
        )


def _load_cascade(path: Path) -> Any:
    """A ``cv2.CascadeClassifier`` from ``path``; :class:`ModelLoadError` if it cannot be
    loaded."""
    if not hasattr(cv2, "CascadeClassifier"):
        raise ModelLoadError(
            "this OpenCV build has no CascadeClassifier; install opencv-contrib-python "
            "(and uninstall other OpenCV distributions)"
        )
    if not path.is_file():
        raise ModelLoadError(f"{path}: Haar cascade file not found")
    try:
        cascade = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError) as exc:
        raise ModelLoadError(f"{path}: not a loadable Haar cascade XML file") from exc
    if cascade.empty():
        raise ModelLoadError(f"{path}: not a loadable Haar cascade XML file")
    return cascade


def _check_int(name: str, value: Any, minimum: int) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = minimum - 1
    if number < minimum:
        raise ValueError(f"HaarDetector: {name} must be an int >= {minimum}, got {value!r}")
    return number


def _check_min_size(value: Any) -> tuple[int, int]:
    try:
        width, height = value
    except (TypeError, ValueError):
        raise ValueError(
            f"HaarDetector: min_size must be (width, height) in pixels, got {value!r}"
        ) from None
    return (_check_int("min_size width", width, minimum=1),
            _check_int("min_size height", height, minimum=1))
