"""Knowledge distillation: trained classifiers' soft labels as training targets.

A *teacher* (any classifier: a registered name, a model directory or file, an ``hf://``
spec) classifies every training image once, before training; the student then learns
from ``(1 - weight) * one_hot(label) + weight * teacher(image) ** (1 / T)`` (renormalised)
instead of the one-hot labels alone. Several teachers act as one ensemble: the mean of
their probabilities, then the temperature. This is "offline" distillation: the teachers
see the images without the student's augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .datasets import ImageData
from .evaluation import _label_columns, _probability_chunks

__all__ = ["distillation_targets", "soft_labels"]


def soft_labels(teacher: Any | Sequence[Any], data: ImageData, temperature: float = 1.0,
                tta: bool = True, batch_size: int = 256) -> np.ndarray:
    """The teacher's probabilities for every image of ``data``, ``(N, len(data.labels))``.

    ``teacher``: one classifier, or a sequence of them (an ensemble: their probabilities
    are averaged). Columns follow ``data.labels`` (matched by name; a teacher may know
    more labels, whose probability is dropped before renormalising). ``temperature`` > 1
    softens them: ``p ** (1 / T)``, renormalised. ``tta``: average with the mirrored image
    where the teacher supports it.

    Raises:
        DatasetError: a teacher lacks one of ``data``'s labels.
        ValueError: ``temperature`` is not positive, or ``teacher`` is an empty sequence.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("no teacher given")
    once: dict[int, np.ndarray] = {}  # a teacher named twice (more weight) runs once
    for t in teachers:
        if id(t) not in once:
            once[id(t)] = _label_probabilities(t, data, tta, batch_size)
    probs = np.mean([once[id(t)] for t in teachers], axis=0)
    probs = np.clip(probs, 1e-12, None) ** (1.0 / temperature)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def _label_probabilities(teacher: Any, data: ImageData, tta: bool,
                         batch_size: int) -> np.ndarray:
    """One teacher's probabilities of ``data.labels`` (renormalised), ``(N, labels)``."""
    columns = _label_columns(tuple(teacher.labels), data.labels, "teacher")
    chunks = [probs[:, columns].astype(np.float64) for probs in _probability_chunks(
        teacher, data.pixels, data.color_order, tta, batch_size)]
    probs = np.concatenate(chunks) if chunks else np.zeros((0, len(columns)))
    probs = np.clip(probs, 1e-12, None)
    return probs / probs.sum(axis=1, keepdims=True)


def distillation_targets(data: ImageData, soft: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * one_hot(data.targets) + weight * soft``, ``(N, len(data.labels))``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    one_hot = np.eye(len(data.labels), dtype=np.float32)[data.targets]
    return ((1.0 - weight) * one_hot + weight * soft).astype(np.float32)

