"""Classification metrics (numpy only) and their text/PNG rendering.

:func:`evaluate_predictions` turns true and predicted label indices into an
:class:`EvaluationReport`: accuracy, macro-F1, per-class precision/recall/F1/support and
the confusion matrix (rows = true label, columns = predicted label).
:func:`evaluate_classifier` runs a classifier over an :class:`~.datasets.ImageData`.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._plotting import figure as _figure
from ..errors import EmotionKitError
from .datasets import DatasetError, ImageData, _match_label

__all__ = ["EvaluationReport", "evaluate_classifier", "evaluate_predictions", "supports_tta"]

log = logging.getLogger("emotionkit.training")


@dataclass
class EvaluationReport:
    """Metrics of one evaluation.

    Attributes:
        labels: class names, in the order of the confusion matrix.
        confusion: ``int64`` ``(K, K)``; ``confusion[i, j]`` = images of true label ``i``
            predicted as ``j``.
        name: what was evaluated (dataset and split).
    """

    labels: tuple[str, ...]
    confusion: np.ndarray
    name: str = ""

    @property
    def n(self) -> int:
        """Number of evaluated images."""
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        """Share of images whose predicted label is the true one (0..1)."""
        return float(np.trace(self.confusion) / max(self.n, 1))

    @property
    def support(self) -> np.ndarray:
        """Images per true label, in :attr:`labels` order."""
        return self.confusion.sum(axis=1)

    @property
    def precision(self) -> np.ndarray:
        """Per label: correct predictions of it / all predictions of it (0 if none)."""
        return _safe_div(np.diag(self.confusion), self.confusion.sum(axis=0))

    @property
    def recall(self) -> np.ndarray:
        """Per label: correct predictions of it / its images (0 if none)."""
        return _safe_div(np.diag(self.confusion), self.support)

    @property
    def f1(self) -> np.ndarray:
        """Per label: harmonic mean of precision and recall (0 where both are 0)."""
        p, r = self.precision, self.recall
        return _safe_div(2 * p * r, p + r)

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes that occur in the data (support > 0)."""
        present = self.support > 0
        return float(self.f1[present].mean()) if present.any() else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metrics."""
        return {
            "name": self.name,
            "n": self.n,
            "accuracy": round(self.accuracy, 6),
            "macro_f1": round(self.macro_f1, 6),
            "per_class": {
                label: {
                    "precision": round(float(self.precision[i]), 6),
                    "recall": round(float(self.recall[i]), 6),
                    "f1": round(float(self.f1[i]), 6),
                    "support": int(self.support[i]),
                }
                for i, label in enumerate(self.labels)
            },
            "labels": list(self.labels),
            "confusion_matrix": self.confusion.tolist(),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON text (what ``evaluate --format json`` prints)."""
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """A plain-text report: summary, per-class table and confusion matrix."""
        width = max(9, *(len(label) for label in self.labels))
        lines = [
            f"{self.name}: {self.n} images" if self.name else f"{self.n} images",
            f"accuracy  {self.accuracy:.4f}",
            f"macro-F1  {self.macro_f1:.4f}",
            "",
            f"{'label':<{width}}  precision  recall     f1  support",
        ]
        for i, label in enumerate(self.labels):
            lines.append(
                f"{label:<{width}}  {self.precision[i]:9.4f}  {self.recall[i]:6.4f}  "
                f"{self.f1[i]:.4f}  {int(self.support[i]):7d}"
            )
        cell = max(6, len(str(int(self.confusion.max(initial=0)))) + 1)
        lines += ["", "confusion matrix (rows: true, columns: predicted)"]
        lines.append(" " * width + "".join(f"{label[:cell - 1]:>{cell}}" for label in self.labels))
        for i, label in enumerate(self.labels):
            lines.append(f"{label:<{width}}" + "".join(f"{v:>{cell}d}" for v in self.confusion[i]))
        return "\n".join(lines)

    def save_confusion_png(self, path: str | Path, normalize: bool = True) -> Path:
        """Write the confusion matrix as a PNG (row-normalised colours, counts in cells)."""
        path = Path(path)
        counts = self.confusion
        shown = _safe_div(counts, counts.sum(axis=1, keepdims=True)) if normalize else counts
        k = len(self.labels)
        fig = _figure(figsize=(1.0 + 0.8 * k, 0.8 + 0.7 * k))
        ax = fig.subplots()
        ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        ax.set_xticks(range(k), self.labels, rotation=45, ha="right")
        ax.set_yticks(range(k), self.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > 0.5 * shown.max() else "black")
        fig.tight_layout()
        fig.savefig(path)
        return path


def evaluate_predictions(
    y_true: np.ndarray | Sequence[int],
    y_pred: np.ndarray | Sequence[int],
    labels: Sequence[str],
    name: str = "",
) -> EvaluationReport:
    """Metrics for integer label indices ``y_true`` and ``y_pred`` (both into ``labels``)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    k = len(labels)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= k or p.max() >= k):
        raise ValueError(f"label indices must be in 0..{k - 1}")
    confusion = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    return EvaluationReport(tuple(labels), confusion, name)


def evaluate_classifier(
    classifier: Any, data: ImageData, tta: bool = False, batch_size: int = 256,
    labels: Sequence[str] | None = None,
) -> EvaluationReport:
    """Classify every image of ``data`` and compare with its targets.

    ``data`` must already have the classifier's input size and channels (load it with the
    classifier's config). Labels are matched by name (exactly, case-insensitively or as the
    same emotion: ``Happy``, ``happiness`` and ``happy`` match): images whose label the
    classifier does not know are left out (logged); the report uses the classifier's
    labels.
    Classifiers with ``predict_pixels`` get the pixels directly (when ``data`` has their
    input format), others get BGR crops through ``predict``.

    ``tta``: also classify each face mirrored left-right and average the probabilities;
    for classifiers whose ``predict`` takes ``tta`` (Keras classifiers), an error for
    others.
    ``batch_size``: images per call of the classifier (memory, not results).

    ``labels``: score the classifier as one for these of its labels only (two or more):
    images of other labels are left out, and its answer is the most probable of these
    labels (e.g. a 7-class model scored on angry/happy/sad). The report then has these
    labels.
    """
    if tta and not supports_tta(classifier):
        raise DatasetError(f"{type(classifier).__name__} has no test-time augmentation (its "
                           "predict() takes no tta); evaluate it without tta (--tta)")
    model_labels = tuple(classifier.labels)
    columns: list[int] | slice = slice(None)  # the probability columns scored
    if labels is not None:
        if len(labels) == 1:
            raise DatasetError(f"scoring on one label ({labels[0]}) is always right; pass two "
                               "or more labels, or none to score on all of the classifier's")
        columns = _label_columns(model_labels, labels, "classifier")
        model_labels = tuple(labels)
    matches = [_match_label(model_labels, x) for x in data.labels]
    mapping = np.array([-1 if m is None else model_labels.index(m) for m in matches])
    y_true = mapping[data.targets]
    keep = y_true >= 0
    if not keep.any():
        raise DatasetError(
            f"{data.name}: none of the dataset labels {list(data.labels)} is a label of the "
            f"classifier {list(model_labels)}"
        )
    if not keep.all():
        # a label the classifier has but ``labels`` leaves out, or one it lacks
        all_labels = tuple(classifier.labels)
        chosen = np.array([_match_label(all_labels, x) is not None for x in data.labels])
        scored = f"outside the chosen labels ({', '.join(model_labels)})"
        for leave, reason in ((~keep & chosen[data.targets], scored),
                              (~keep & ~chosen[data.targets], "the classifier lacks")):
            if leave.any():
                names = sorted({data.labels[t] for t in data.targets[leave]})
                log.warning("%s: left out %d images with labels %s: %s",
                            data.name, int(leave.sum()), reason, ", ".join(names))
    preds = [probs[:, columns].argmax(axis=1) for probs in _probability_chunks(
        classifier, data.pixels[keep], data.color_order, tta, batch_size)]
    y_pred = np.concatenate(preds)
    return evaluate_predictions(y_true[keep], y_pred, model_labels, data.name)


def save_history_png(history: dict[str, list[float]], path: str | Path) -> Path:
    """Plot loss and accuracy per epoch (train and validation) to a PNG."""
    path = Path(path)
    fig = _figure(figsize=(10, 4))
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if history.get(key):
                epochs = range(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


def supports_tta(classifier: Any) -> bool:
    """Whether ``classifier.predict`` takes ``tta`` (test-time augmentation, as
    :class:`~emotionkit.classifiers.KerasClassifier`'s does)."""
    try:
        return "tta" in inspect.signature(classifier.predict).parameters
    except (AttributeError, TypeError, ValueError):  # no predict, or no signature to read
        return False


def _label_columns(known: Sequence[str], wanted: Sequence[str], who: str) -> list[int]:
    """Indices of ``wanted`` in ``known`` (a model's labels, matched like
    :func:`evaluate_classifier` does); a missing one, or two naming the same one of
    ``known`` (``happy``, ``Happy``), is an error."""
    matches = [_match_label(known, x) for x in wanted]
    missing = [x for x, m in zip(wanted, matches) if m is None]
    if missing or not wanted:
        raise DatasetError(
            f"the {who} has no label {', '.join(map(repr, missing)) or '(none given)'};"
            f" its labels: {', '.join(known)}"
        )
    twice = next((m for i, m in enumerate(matches) if m in matches[:i]), None)
    if twice is not None:
        raise DatasetError(f"labels {list(wanted)} name the {who}'s label {twice} more than "
                           "once; name each label once")
    return [list(known).index(m) for m in matches if m is not None]


def _probability_chunks(classifier: Any, pixels: np.ndarray, color_order: str, tta: bool,
                        batch_size: int) -> Iterator[np.ndarray]:
    """The classifier's probabilities for ``pixels``, ``batch_size`` rows at a time.

    Pixels that have the classifier's input size, channels and colour order (or any, for a
    classifier without a ``config``) go to ``predict_pixels``; others, and classifiers
    without it, get BGR crops through ``predict`` (which resizes), with ``tta`` when set.

    Raises:
        EmotionKitError: the classifier's answer for a batch is not one finite probability
            per label and image (NaN or infinity, or a column count other than its labels').
    """
    config = getattr(classifier, "config", None)
    _, height, width, channels = pixels.shape
    direct = hasattr(classifier, "predict_pixels") and (config is None or (
        tuple(config.input_size) == (height, width) and config.channels == channels
        and (channels == 1 or config.color_order == color_order)))
    for i in range(0, len(pixels), batch_size):
        chunk = pixels[i : i + batch_size]
        if direct:
            probs = np.asarray(classifier.predict_pixels(chunk, tta=tta))
        else:
            crops = list(_pixels_to_bgr(chunk, color_order))
            probs = np.asarray(classifier.predict(crops, tta=True) if tta else
                               classifier.predict(crops))
        yield _checked_probabilities(classifier, probs, len(chunk),
                                     f" (the batch from image {i + 1} of {len(pixels)})"
                                     if len(chunk) < len(pixels) else "")


def _checked_probabilities(classifier: Any, probs: np.ndarray, n: int, where: str) -> np.ndarray:
    """``probs``, the classifier's answer for ``n`` images, if it is ``(n, len(labels))``
    finite numbers; else an error naming the classifier (``where``: which images)."""
    name, labels = type(classifier).__name__, tuple(classifier.labels)
    if probs.ndim == 2 and probs.shape[0] == n and probs.shape[1] != len(labels):
        raise EmotionKitError(
            f"{name} answered {probs.shape[1]} probabilities per image for its {len(labels)} "
            f"labels ({', '.join(labels)}); its labels and its outputs disagree")
    if probs.shape != (n, len(labels)) or not np.issubdtype(probs.dtype, np.number):
        raise EmotionKitError(f"{name} answered an array of shape {probs.shape} "
                              f"({probs.dtype}) for {n} images; expected ({n}, {len(labels)}) "
                              "probabilities")
    bad = int((~np.isfinite(probs).all(axis=1)).sum())
    if bad:
        raise EmotionKitError(
            f"{name} gave non-finite probabilities (NaN or infinity) for {bad} of {n} "
            f"images{where}; it cannot be scored on them: fix the classifier, or leave those "
            "images out")
    return probs


def _pixels_to_bgr(pixels: np.ndarray, color_order: str) -> np.ndarray:
    if pixels.shape[3] == 1:
        return np.repeat(pixels, 3, axis=3)
    return pixels[..., ::-1] if color_order == "rgb" else pixels


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)
