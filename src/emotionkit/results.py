"""Result types: :class:`Detection` (what a detector finds) and :class:`Face` (with emotions)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Box = tuple[int, int, int, int]
"""``(x, y, w, h)`` in image pixel coordinates (origin top-left), clipped to the image."""

__all__ = ["Box", "Detection", "Face"]


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: ``(x, y, w, h)`` ints in pixels of the input image, clipped to it.
        score: detector confidence in ``[0, 1]``, or ``None`` if the detector has none.
        landmarks: optional named points, ``name -> (x, y)`` in pixels (e.g. ``"left_eye"``,
            the subject's left eye).
    """

    box: Box
    score: float | None = None
    landmarks: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Face:
    """A detected face with its emotion probabilities.

    Attributes:
        box: ``(x, y, w, h)`` ints in pixels of the input image, clipped to it.
        score: detector confidence in ``[0, 1]``, or ``None`` where the detector has none.
        emotions: ``label -> probability``; the probabilities sum to 1.
        landmarks: named points from the detector, ``name -> (x, y)`` pixels.
    """

    box: Box
    score: float | None
    emotions: Mapping[str, float]
    landmarks: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def top_emotion(self) -> str:
        """The label with the highest probability; a NaN probability (from a broken
        classifier) is never the highest."""
        return max(self.emotions, key=lambda k: (not math.isnan(self.emotions[k]),
                                                 self.emotions[k]))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``box`` (``[x, y, w, h]`` ints, pixels), ``score``
        (``None`` or rounded to 6 decimals), ``emotions`` (label -> probability, rounded to
        6 decimals), ``top_emotion`` and ``landmarks`` (name -> ``[x, y]`` pixels, rounded
        to 2 decimals)."""
        return {
            "box": [int(v) for v in self.box],
            "score": None if self.score is None else round(float(self.score), 6),
            "emotions": {k: round(float(v), 6) for k, v in self.emotions.items()},
            "top_emotion": self.top_emotion,
            "landmarks": {k: [round(float(x), 2), round(float(y), 2)]
                          for k, (x, y) in self.landmarks.items()},
        }
