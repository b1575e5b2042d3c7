"""Knowledge distillation: a trained classifier's soft labels as training targets.

A *teacher* (any classifier: a registered name, a model directory or file, an ``hf://``
spec) classifies every training image once, before training; the student then learns
from ``(1 - weight) * one_hot(label) + weight * teacher(image) ** (1 / T)`` (renormalised)
instead of the one-hot labels alone. This is "offline" distillation: the teacher sees the
images without the student's augmentation.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .datasets import DatasetError, ImageData
from .evaluation import _pixels_to_bgr

__all__ = ["distillation_targets", "soft_labels"]

log = logging.getLogger("emotionkit.training")


def soft_labels(teacher: Any, data: ImageData, temperature: float = 1.0,
                tta: bool = True, batch_size: int = 256) -> np.ndarray:
    """The teacher's probabilities for every image of ``data``, ``(N, len(data.labels))``.

    Columns follow ``data.labels`` (matched by name; the teacher may know more labels, whose
    probability is dropped before renormalising). ``temperature`` > 1 softens them:
    ``p ** (1 / T)``, renormalised. ``tta``: average with the mirrored image where the
    teacher supports it.

    Raises:
        DatasetError: the teacher lacks one of ``data``'s labels.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    teacher_labels = tuple(teacher.labels)
    missing = [x for x in data.labels if x not in teacher_labels]
    if missing:
        raise DatasetError(
            f"the teacher has no label {', '.join(map(repr, missing))}; its labels: "
            f"{', '.join(teacher_labels)}"
        )
    columns = [teacher_labels.index(x) for x in data.labels]
    direct = _takes_pixels(teacher, data)
    chunks = []
    for i in range(0, len(data), batch_size):
        pixels = data.pixels[i : i + batch_size]
        if direct:
            probs = teacher.predict_pixels(pixels, tta=tta)
        else:
            probs = teacher.predict(list(_pixels_to_bgr(pixels, data.color_order)))
        chunks.append(np.asarray(probs, dtype=np.float64)[:, columns])
    probs = np.concatenate(chunks) if chunks else np.zeros((0, len(columns)))
    probs = np.clip(probs, 1e-12, None) ** (1.0 / temperature)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def distillation_targets(data: ImageData, soft: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * one_hot(data.targets) + weight * soft``, ``(N, len(data.labels))``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    one_hot = np.eye(len(data.labels), dtype=np.float32)[data.targets]
    agree = float((soft.argmax(axis=1) == data.targets).mean()) if len(data) else 0.0
    log.info("teacher agrees with %.1f%% of the training labels", 100 * agree)
    return ((1.0 - weight) * one_hot + weight * soft).astype(np.float32)


def _takes_pixels(teacher: Any, data: ImageData) -> bool:
    """Whether ``data.pixels`` already have the teacher's input size, channels and order."""
    config = getattr(teacher, "config", None)
    if config is None or not hasattr(teacher, "predict_pixels"):
        return False
    _, height, width, channels = data.pixels.shape
    return (tuple(config.input_size) == (height, width) and config.channels == channels
            and (channels == 1 or config.color_order == data.color_order))
