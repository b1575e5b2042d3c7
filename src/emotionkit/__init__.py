"""emotionkit: facial emotion recognition with pluggable detectors and classifiers.

>>> from emotionkit import EmotionRecognizer
>>> rec = EmotionRecognizer(detector="mediapipe", classifier="fer-cnn")
>>> faces = rec.detect("photo.jpg")          # doctest: +SKIP
>>> faces[0].top_emotion                     # doctest: +SKIP
'happy'

Importing this package imports nothing heavy: each public name below loads its module
(NumPy, OpenCV, Pillow) on first use, and TensorFlow or MediaPipe load only when a
classifier or detector that needs them is created. So ``emotionkit --help`` starts fast
and Ctrl-C at start-up is handled by the command line like Ctrl-C later.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .classifiers.base import FER_LABELS
    from .errors import EmotionKitError, ImageLoadError, ModelLoadError, UnknownPluginError
    from .io import load_image
    from .recognizer import EmotionRecognizer, resolve_classifier, resolve_detector
    from .registry import (
        create_classifier,
        create_detector,
        list_classifiers,
        list_detectors,
        register_classifier,
        register_detector,
    )
    from .results import Detection, Face

# public name -> the module (relative to this package) that defines it
_LAZY = {
    "FER_LABELS": ".classifiers.base",
    "Detection": ".results",
    "EmotionKitError": ".errors",
    "EmotionRecognizer": ".recognizer",
    "Face": ".results",
    "ImageLoadError": ".errors",
    "ModelLoadError": ".errors",
    "UnknownPluginError": ".errors",
    "create_classifier": ".registry",
    "create_detector": ".registry",
    "list_classifiers": ".registry",
    "list_detectors": ".registry",
    "load_image": ".io",
    "register_classifier": ".registry",
    "register_detector": ".registry",
    "resolve_classifier": ".recognizer",
    "resolve_detector": ".recognizer",
}

__all__ = [
    "FER_LABELS",
    "Detection",
    "EmotionKitError",
    "EmotionRecognizer",
    "Face",
    "ImageLoadError",
    "ModelLoadError",
    "UnknownPluginError",
    "__version__",
    "create_classifier",
    "create_detector",
    "list_classifiers",
    "list_detectors",
    "load_image",
    "register_classifier",
    "register_detector",
    "resolve_classifier",
    "resolve_detector",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
