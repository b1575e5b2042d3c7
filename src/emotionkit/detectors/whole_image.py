"""The ``none`` detector: the whole image is one face (for pre-cropped face datasets)."""

from __future__ import annotations

import numpy as np

from ..results import Detection
from .base import detector_input

__all__ = ["WholeImageDetector"]


class WholeImageDetector:
    """Returns one detection covering the whole image, with ``score=None``."""

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """One box ``(0, 0, W, H)`` for any image :func:`emotionkit.load_image` takes as an
        array; :class:`~emotionkit.errors.ImageLoadError` for other input (empty included)."""
        h, w = detector_input(image_bgr, "WholeImageDetector").shape[:2]
        return [Detection(box=(0, 0, int(w), int(h)), score=None)]

    def __repr__(self) -> str:
        return "WholeImageDetector()"
