"""The ``none`` detector: the whole image is one face (for pre-cropped face datasets)."""

from __future__ import annotations

import numpy as np

from ..results import Detection

__all__ = ["WholeImageDetector"]


class WholeImageDetector:
    """Returns one detection covering the whole image, with ``score=None``."""

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """One box ``(0, 0, W, H)`` for any non-empty image."""
        h, w = image_bgr.shape[:2]
        if h == 0 or w == 0:
            return []
        return [Detection(box=(0, 0, int(w), int(h)), score=None)]

    def __repr__(self) -> str:
        return "WholeImageDetector()"
