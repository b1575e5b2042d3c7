"""Emotion classifiers.

Any object with ``labels``, ``input_size``, ``crop_margin`` and ``predict(faces)`` is a
classifier (:class:`EmotionClassifier`). Built in: :class:`KerasClassifier`, which loads a
Keras model file or a model directory written by ``emotionkit train``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import FER_LABELS, EmotionClassifier
from .config import ModelConfig

if TYPE_CHECKING:
    from .keras_model import KerasClassifier, load_classifier

__all__ = ["FER_LABELS", "EmotionClassifier", "KerasClassifier", "ModelConfig", "load_classifier"]


def __getattr__(name: str) -> Any:
    if name in ("KerasClassifier", "load_classifier"):
        from . import keras_model

        return getattr(keras_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
