"""The face detector protocol and helpers shared by the built-in detectors."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..results import Detection

__all__ = ["FaceDetector", "bundled_model_path"]


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an image.

    ``detect`` takes a BGR ``uint8`` array of shape ``(H, W, 3)`` and returns one
    :class:`~emotionkit.results.Detection` per face, boxes in pixels of that image.
    """

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...


def bundled_model_path(filename: str) -> Path:
    """Path of a model file shipped in ``emotionkit/data/models``."""
    return Path(str(resources.files("emotionkit") / "data" / "models" / filename))
