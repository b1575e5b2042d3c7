"""The emotion classifier protocol and the canonical FER2013 label set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["FER_LABELS", "EmotionClassifier"]

FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The seven FER2013 labels, in FER2013's label-code order (0 = angry ... 6 = neutral)."""


@runtime_checkable
class EmotionClassifier(Protocol):
    """Anything that turns face crops into emotion probabilities.

    Attributes:
        labels: the output labels, in the order of the probability columns.
        input_size: ``(height, width)`` in pixels the model sees after preprocessing.
        crop_margin: fraction of the detected box's size added on each side when the
            face is cut out of the image (0 = the detector's box as is).
    """

    labels: tuple[str, ...]
    input_size: tuple[int, int]
    crop_margin: float

    def predict(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``(len(faces), len(labels))`` for BGR ``uint8`` face crops of any
        size; each row sums to 1. The classifier does its own resizing and colour
        conversion."""
        ...
