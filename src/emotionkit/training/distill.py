"""Knowledge distillation: trained classifiers' soft labels as training targets.

A *teacher* (any classifier: a registered name, a model directory or file, an ``hf://``
spec) classifies every training image once, before training; the student then learns
from ``(1 - weight) * one_hot(label) + weight * teacher(image) ** (1 / T)`` (renormalised)
instead of the one-hot labels alone. Several teachers act as one ensemble: the mean of
their probabilities, then the temperature. This is "offline" distillation: the teachers
see the images without the student's augmentation.

A teacher may also be a *soft-label file* (``.npz``, written by :func:`save_soft_labels`):
probabilities computed beforehand for exactly the training images -- by teachers that
never saw the image they label (cross-fitting, docs/training.md), or from human votes
(:meth:`~emotionkit.training.Fer2013Csv.ferplus_soft_labels`).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from .datasets import DatasetError, ImageData
from .evaluation import _label_columns, _probability_chunks, supports_tta

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = [
    "SoftLabelFile", "cross_fitted_soft_labels", "distillation_targets", "fold_index",
    "load_teacher", "save_soft_labels", "soft_labels",
]

log = logging.getLogger("emotionkit.training")

SOFT_LABEL_SUFFIX = ".npz"
"""File name ending that makes a teacher spec a :class:`SoftLabelFile`."""

_SUM_TOLERANCE = 1e-3
"""How far from 1 a soft-label file's row may sum (float32 rounding, rounded shares)."""


def save_soft_labels(path: str | Path, data: ImageData, soft: np.ndarray) -> Path:
    """Write probabilities ``soft`` ``(N, len(data.labels))`` for the images of ``data``
    to ``path`` (``.npz``), for use as a teacher (``Trainer(teacher=path)``,
    ``emotionkit train --teacher FILE.npz``).

    The file holds ``labels``, ``soft`` (float32, rows renormalised to sum to 1) and the
    ``fingerprint`` of ``data`` (:meth:`ImageData.fingerprint`): a run accepts it only for
    exactly these images, labels and order.

    Raises:
        ValueError: ``soft`` has the wrong shape, a negative or non-finite value, or a row
            summing to 0.
    """
    soft = np.asarray(soft, dtype=np.float64)
    if soft.shape != (len(data), len(data.labels)):
        raise ValueError(f"soft labels are {soft.shape}, expected {(len(data), len(data.labels))}")
    sums = soft.sum(axis=1, keepdims=True)
    if not np.isfinite(soft).all() or (soft < 0).any() or (sums <= 0).any():
        raise ValueError("soft labels must be finite, non-negative, each row summing to > 0")
    path = Path(path)
    if path.suffix.lower() != SOFT_LABEL_SUFFIX:
        raise ValueError(f"{path}: a soft-label file name must end in {SOFT_LABEL_SUFFIX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, labels=np.array(data.labels), fingerprint=np.array(data.fingerprint()),
             soft=(soft / sums).astype(np.float32))
    return path


class SoftLabelFile:
    """A teacher whose probabilities were computed beforehand (see :func:`save_soft_labels`).

    Raises:
        DatasetError: ``path`` is missing or not a soft-label file, or its probabilities
            are not ``(N, labels)`` finite non-negative rows that sum to 1.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with np.load(self.path) as stored:
                labels = np.asarray(stored["labels"])
                self.fingerprint = str(stored["fingerprint"])
                soft = np.asarray(stored["soft"], dtype=np.float64)
        except FileNotFoundError:
            raise DatasetError(f"{self.path}: no such soft-label file") from None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DatasetError(
                f"{self.path}: not a soft-label file ({exc}); write one with "
                "emotionkit.training.distill.save_soft_labels"
            ) from None
        if labels.ndim != 1:
            self._refuse("its labels are not a list of names")
        self.labels: tuple[str, ...] = tuple(str(x) for x in labels)
        self._soft = self._checked(soft)

    def _checked(self, soft: np.ndarray) -> np.ndarray:
        """``soft`` if it holds a probability row per image for :attr:`labels`."""
        if soft.ndim != 2 or soft.shape[1] != len(self.labels):
            self._refuse(f"soft labels of shape {soft.shape}, not (images, "
                         f"{len(self.labels)}) for its labels {', '.join(self.labels)}")
        for bad, what in ((~np.isfinite(soft), "nan or infinite"), (soft < 0, "negative")):
            if bad.any():
                n = int(bad.sum())
                self._refuse(f"{n} soft label{' is' if n == 1 else 's are'} {what}")
        sums = soft.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOLERANCE)
        if len(off):
            self._refuse(f"{len(off)} of its {len(soft)} rows do not sum to 1 (row "
                         f"{off[0] + 1}: {sums[off[0]]:.4g})")
        return soft

    def _refuse(self, problem: str) -> NoReturn:
        raise DatasetError(
            f"{self.path}: {problem}; write the file with "
            "emotionkit.training.distill.save_soft_labels (one row of probabilities per "
            "training image, in the data's order)")

    def probabilities(self, data: ImageData) -> np.ndarray:
        """The stored probabilities ``(N, len(labels))``, if they were made for ``data``.

        Raises:
            DatasetError: the file was written for other images, labels or order, or
                (made by hand) holds another number of rows than ``data`` has images.
        """
        if self.fingerprint != data.fingerprint():
            raise DatasetError(
                f"{self.path}: soft labels for other images ({len(self._soft)} images, "
                f"{self.fingerprint[:19]}...) than {data.name or 'the training data'} "
                f"({len(data)} images, {data.fingerprint()[:19]}...); compute them on exactly "
                "the training images, labels and order"
            )
        if len(self._soft) != len(data):  # a file made by hand
            self._refuse(f"soft labels for {len(self._soft)} images, but "
                         f"{data.name or 'the training data'} has {len(data)}")
        return self._soft

    def __repr__(self) -> str:
        return f"SoftLabelFile({str(self.path)!r})"


def load_teacher(spec: str | Path) -> Any:
    """A teacher from its spec: a soft-label ``.npz`` file (:class:`SoftLabelFile`), or a
    classifier by registered name, model directory or file, or ``hf://`` spec."""
    if str(spec).lower().endswith(SOFT_LABEL_SUFFIX):
        return SoftLabelFile(spec)
    from ..registry import resolve_classifier

    return resolve_classifier(spec)


def soft_labels(teacher: Any | Sequence[Any], data: ImageData, temperature: float = 1.0,
                tta: bool = True, batch_size: int = 256) -> np.ndarray:
    """The teacher's probabilities for every image of ``data``, ``(N, len(data.labels))``.

    ``teacher``: one classifier or :class:`SoftLabelFile`, or a sequence of them (an
    ensemble: their probabilities are averaged). Columns follow ``data.labels`` (matched
    by name; a teacher may know more labels, whose probability is dropped before
    renormalising). ``temperature`` > 1 softens them: ``p ** (1 / T)``, renormalised.
    ``tta``: average with the mirrored image where the teacher supports it
    (:func:`~emotionkit.training.supports_tta`; others, and soft-label files, are used
    as they are).

    Raises:
        DatasetError: a teacher lacks one of ``data``'s labels, or a soft-label file was
            made for other images.
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
    if isinstance(teacher, SoftLabelFile):
        probs = teacher.probabilities(data)[:, columns]
    else:
        chunks = [probs[:, columns].astype(np.float64) for probs in _probability_chunks(
            teacher, data.pixels, data.color_order, tta and supports_tta(teacher), batch_size)]
        probs = np.concatenate(chunks) if chunks else np.zeros((0, len(columns)))
    probs = np.clip(probs, 1e-12, None)
    return probs / probs.sum(axis=1, keepdims=True)


def fold_index(targets: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number ``0..folds-1`` per row, ``(N,)``: each label's rows shuffled
    (``seed``) and dealt round-robin, so every fold holds about ``1/folds`` of each label."""
    if folds < 2:
        raise ValueError("folds must be at least 2")
    rng = np.random.default_rng(seed)
    index = np.zeros(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        rows = np.flatnonzero(targets == label)
        index[rng.permutation(rows)] = np.arange(len(rows)) % folds
    return index


def cross_fitted_soft_labels(
    trainer: Callable[[int], Trainer], train: ImageData, val: ImageData, folds: int = 5,
    seed: int = 0, tta: bool = True, batch_size: int = 256,
) -> np.ndarray:
    """Soft labels for every image of ``train`` from a teacher that did not train on it.

    The rows of ``train`` are dealt into ``folds`` parts (:func:`fold_index`); teacher
    ``k``, ``trainer(k).fit(...)``, trains on the other parts (selecting on ``val``) and
    classifies part ``k`` -- scikit-learn's ``cross_val_predict(..., method=
    "predict_proba")`` for teachers. A teacher that fits its own training images (most
    do) gives near one-hot soft labels on them; on images it never saw its probabilities
    carry what it learned. ``trainer(k)`` must write its own directory; with
    ``resume=True`` a stopped call continues, and a teacher that finished (its
    ``metrics.json`` written, for these images, options and epochs:
    :meth:`Trainer.finished_for <emotionkit.training.Trainer.finished_for>`) is used as
    it is, without training or scoring it again.

    Returns:
        ``(N, len(train.labels))`` probabilities (temperature 1, mirrored-image averaging
        with ``tta``), for :func:`save_soft_labels`.

    Raises:
        DatasetError: a label of ``train`` has a single image (the teacher of its fold
            would have none), checked before any teacher trains.
        TrainingError: as :meth:`Trainer.fit` raises it for a teacher.
    """
    from ..classifiers.keras_model import load_classifier

    single = [label for label, n in zip(train.labels, train.class_counts()) if n == 1]
    if single:
        raise DatasetError(
            f"{train.name or 'training data'}: 1 image of {', '.join(single)}: a teacher "
            "would have none to train on; add images, or leave the label out (labels=...)"
        )
    part = fold_index(train.targets, folds, seed)
    soft = np.zeros((len(train), len(train.labels)), dtype=np.float32)
    for k in range(folds):
        run = trainer(k)
        held_in = train.subset(np.flatnonzero(part != k))
        if run.finished_for(held_in, val):
            log.info("teacher %d/%d: finished in %s; used as it is", k + 1, folds, run.out_dir)
        else:
            log.info("teacher %d/%d: trains on %d images, labels %d", k + 1, folds,
                     len(held_in), int((part == k).sum()))
            run.fit(held_in, val)
        held_out = train.subset(np.flatnonzero(part == k))
        soft[part == k] = soft_labels(load_classifier(run.out_dir), held_out, 1.0, tta,
                                      batch_size)
    return soft


def distillation_targets(data: ImageData, soft: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * one_hot(data.targets) + weight * soft``, ``(N, len(data.labels))``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    one_hot = np.eye(len(data.labels), dtype=np.float32)[data.targets]
    return ((1.0 - weight) * one_hot + weight * soft).astype(np.float32)

