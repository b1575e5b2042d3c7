"""emotionkit: facial emotion recognition with pluggable detectors and classifiers.

>>> from emotionkit import EmotionRecognizer
>>> rec = EmotionRecognizer(detector="mediapipe", classifier="fer-cnn")
>>> faces = rec.detect("photo.jpg")          # doctest: +SKIP
>>> faces[0].top_emotion                     # doctest: +SKIP
'happy'

Importing this package does not import TensorFlow or MediaPipe; they load when a
classifier or detector that needs them is created.
"""

from ._version import __version__
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
