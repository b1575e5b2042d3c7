"""Face detectors.

Built in: ``haar`` (:class:`HaarDetector`), ``mediapipe`` (:class:`MediaPipeDetector`) and
``none`` (:class:`WholeImageDetector`, the whole image is one face). Any object with a
``detect(image_bgr) -> list[Detection]`` method is a detector (:class:`FaceDetector`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import FaceDetector

if TYPE_CHECKING:
    from .haar import HaarDetector
    from .mediapipe import MediaPipeDetector
    from .whole_image import WholeImageDetector

__all__ = ["FaceDetector", "HaarDetector", "MediaPipeDetector", "WholeImageDetector"]

_LAZY = {
    "HaarDetector": ".haar",
    "MediaPipeDetector": ".mediapipe",
    "WholeImageDetector": ".whole_image",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
