"""The :class:`Trainer`: fit an architecture on a dataset and write a model directory.

The output directory holds everything ``load_classifier`` / ``EmotionRecognizer`` need
plus the training record::

    OUT/model.keras              best epoch (highest validation accuracy)
    OUT/config.json              labels, preprocessing, architecture, training arguments,
                                 library version, data fingerprints
    OUT/metrics.json             validation report of the best model + history
    OUT/history.csv              one row per epoch
    OUT/history.png              loss/accuracy curves
    OUT/confusion_matrix.png     validation confusion matrix
    OUT/checkpoint/              last epoch's weights + optimizer state (for resume=True)

A stopped or killed run continues from ``OUT/checkpoint`` with ``resume=True``
(Keras ``BackupAndRestore``); the per-epoch history, best score and early-stopping
counter are kept in ``OUT/checkpoint/state.json``, and a distillation run's soft labels
in ``OUT/checkpoint/teacher_soft_labels.npz`` (a resume does not run the teachers again).
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import inspect
import io
import json
import logging
import math
import os
import shutil
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._text import reason
from .._version import __version__
from ..classifiers.config import CHECKPOINT_DIR, CONFIG_NAME, ModelConfig
from ..classifiers.preprocess import pixels_to_input
from ..errors import EmotionKitError
from .architectures import Architecture, get_architecture
from .datasets import ImageData
from .evaluation import EvaluationReport, evaluate_classifier, save_history_png

__all__ = [
    "CLASS_WEIGHTING", "PRECISIONS", "Trainer", "TrainingError", "class_weights",
    "oversample_index",
]

log = logging.getLogger("emotionkit.training")

CLASS_WEIGHTING = ("none", "sqrt", "balanced", "oversample")
"""Class balancing modes: none, loss weights 1/sqrt(frequency) or 1/frequency, or
oversampling rare classes (each copy augmented differently) to the largest class's count."""

PRECISIONS = ("float32", "mixed_bfloat16")
"""Training precisions: float32, or Keras mixed precision with bfloat16 computation and
float32 weights (faster on hardware with bfloat16 instructions, e.g. AVX512-BF16)."""

MAX_SEED = 2**32 - 1
"""The largest ``seed`` (the backends' and NumPy's seeds are 32-bit)."""

MODEL_FILE = "model.keras"
_METRICS_FILE = "metrics.json"
_STATE_FILE = "state.json"
_SOFT_LABELS = "teacher_soft_labels.npz"  # a distillation run's targets, kept for resume
_BACKUP_META = "training_metadata.json"  # the epoch of the weights backup (_Backup)
_BEST_FILE = "best-{epoch}.keras"  # checkpoint copy of the best epoch's model
_MONITOR = "val_accuracy"
_SEED_STRIDE = 2**20
"""Random draws set aside per epoch for each dropout/augmentation seed generator: epoch
``e`` (0-based) draws from counter ``e * _SEED_STRIDE`` on (see :func:`_seed_epoch`)."""
_RESUME_MUST_MATCH: tuple[str, ...] = (
    "arch", "arch_options", "batch_size", "seed", "label_smoothing", "class_weight", "augment",
    "teacher", "init_from",
)


class TrainingError(EmotionKitError, RuntimeError):
    """Training cannot start or continue (bad arguments, mismatched resume, ...)."""


def class_weights(targets: np.ndarray, num_classes: int, mode: str = "sqrt") -> np.ndarray:
    """Per-class loss weights ``(num_classes,)`` with mean weight 1 over the samples.

    ``balanced`` weights each class by ``1 / frequency``, ``sqrt`` by
    ``1 / sqrt(frequency)`` (milder: rare classes such as FER2013's *disgust*, 1.5% of the
    data, get ~3x instead of ~10x), ``none`` and ``oversample`` (which balances the data
    instead, see :func:`oversample_index`) give every class 1. Absent classes get 0.
    """
    if mode not in CLASS_WEIGHTING:
        raise TrainingError(f"class_weight must be one of {', '.join(CLASS_WEIGHTING)}")
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    if mode in ("none", "oversample"):
        weights = (counts > 0).astype(np.float64)
    else:
        power = 1.0 if mode == "balanced" else 0.5
        weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1) ** power, 0.0)
    mean = float((weights * counts).sum() / counts.sum())
    return weights / mean


def oversample_index(targets: np.ndarray, seed: int = 0) -> np.ndarray:
    """Row indices that repeat every class's rows up to the largest class's count.

    Each row appears at least once; the extra copies of a class are drawn at random
    (``seed``) without replacement where possible. With in-graph augmentation every copy
    is augmented differently (the seed's "balance by augmentation").
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(targets)
    target = int(counts.max())
    parts = []
    for label, count in enumerate(counts):
        rows = np.flatnonzero(targets == label)
        if count == 0:
            continue
        repeats, extra = divmod(target, int(count))
        parts += [np.tile(rows, repeats), rng.choice(rows, extra, replace=False)]
    return np.sort(np.concatenate(parts))


class Trainer:
    """Train an emotion classifier (sklearn style: options here, data in :meth:`fit`).

    Args:
        out_dir: output model directory (created).
        arch: a registered architecture name (see :func:`list_architectures`).
        arch_options: keyword options for the architecture builder.
        epochs: maximum number of epochs.
        batch_size: images per gradient step.
        learning_rate: peak learning rate (AdamW): a linear warm-up from a tenth of it over
            the first tenth of the run's steps (at most one epoch), then cosine decay to 1%
            of it at the last epoch.
        weight_decay: AdamW decoupled weight decay.
        label_smoothing: cross-entropy label smoothing (0 = off).
        class_weight: ``"sqrt"`` (default), ``"balanced"``, ``"none"`` (loss weights, see
            :func:`class_weights`) or ``"oversample"`` (see :func:`oversample_index`).
        augment: random horizontal flip, rotation (+-~14 degrees), shift (10%), zoom (10%)
            and brightness (+-20%) on training images, inside the training graph.
        patience: stop when validation accuracy has not improved for this many epochs
            (0 = never stop early).
        seed: seeds Python, NumPy and the backend (weights, shuffling, augmentation);
            0 to :data:`MAX_SEED`.
        resume: continue the run in ``out_dir`` from its last checkpoint.
        progress: show a progress bar per epoch (tqdm, on stderr; where stderr is not a
            terminal, such as a log file, only in an epoch that runs over a minute, updated
            once a minute).
        teacher: knowledge distillation: a classifier (registered name, model directory or
            file, ``hf://`` spec) or a soft-label ``.npz`` file made for the training
            images (:func:`~emotionkit.training.distill.save_soft_labels`), or a sequence
            of them (an ensemble: probabilities averaged), whose soft labels, computed once
            per run, are mixed into the targets (see :mod:`emotionkit.training.distill`);
            each must know every label of the training data. ``None`` or empty: one-hot
            labels only.
        teacher_weight: share of the teacher's soft labels in the targets (0..1).
        teacher_temperature: softens the teacher's probabilities (``p ** (1 / T)``).
        precision: ``"float32"`` or ``"mixed_bfloat16"`` (Keras mixed precision: layers
            compute in bfloat16, weights and the softmax stay float32; 22-29% more images/s
            measured on an AVX512-BF16 CPU; not measured on GPUs; expect it to be slower
            on CPUs without bfloat16 instructions). Saved models compute in float32 either
            way. A resumed run may change it.
        init_from: fine-tuning: start a new run from the weights of this trained
            classifier (registered name such as ``"fer-cnn"``, model directory or file)
            instead of random ones. It must have this run's architecture and
            ``arch_options``; output units are matched by label name (labels it lacks
            start untrained). ``None``: random initial weights.
    """

    resume_must_match: tuple[str, ...] = _RESUME_MUST_MATCH
    """Training arguments a resumed run must share with the stopped one."""

    resume_keeps: tuple[str, ...] = ()
    """Training arguments used only when a run starts: a resumed run keeps (and records)
    the stopped run's values."""

    def __init__(
        self,
        out_dir: str | Path,
        arch: str = "fer-cnn",
        *,
        arch_options: dict[str, Any] | None = None,
        epochs: int = 60,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.1,
        class_weight: str = "sqrt",
        augment: bool = True,
        patience: int = 12,
        seed: int = 0,
        resume: bool = False,
        progress: bool = True,
        teacher: str | Path | Sequence[str | Path] | None = None,
        teacher_weight: float = 0.5,
        teacher_temperature: float = 2.0,
        precision: str = "float32",
        init_from: str | Path | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.architecture = get_architecture(arch)
        _check_finite(learning_rate=learning_rate, weight_decay=weight_decay,
                      label_smoothing=label_smoothing, teacher_weight=teacher_weight,
                      teacher_temperature=teacher_temperature)
        if not 0 <= seed <= MAX_SEED:
            raise TrainingError(f"seed must be in 0..{MAX_SEED}, got {seed}")
        if epochs < 1 or batch_size < 1 or learning_rate <= 0:
            raise TrainingError("epochs, batch_size and learning_rate must be positive")
        if patience < 0:
            raise TrainingError(f"patience must be >= 0 (0: never stop early), got {patience}")
        if class_weight not in CLASS_WEIGHTING:
            raise TrainingError(f"class_weight must be one of {', '.join(CLASS_WEIGHTING)}")
        if not 0.0 <= teacher_weight <= 1.0 or teacher_temperature <= 0:
            raise TrainingError("teacher_weight must be in [0, 1] and teacher_temperature > 0")
        if not 0.0 <= label_smoothing < 1.0 or weight_decay < 0:
            raise TrainingError("label_smoothing must be in [0, 1) and weight_decay >= 0")
        if precision not in PRECISIONS:
            raise TrainingError(f"precision must be one of {', '.join(PRECISIONS)}")
        teachers = [str(teacher)] if isinstance(teacher, (str, Path)) else [
            str(t) for t in teacher or ()]
        self.args: dict[str, Any] = {
            "arch": arch,
            "arch_options": _resolve_options(self.architecture, arch_options or {}),
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "learning_rate": float(learning_rate),
            "weight_decay": float(weight_decay),
            "label_smoothing": float(label_smoothing),
            "class_weight": class_weight,
            "augment": bool(augment),
            "patience": int(patience),
            "seed": int(seed),
            "teacher": None if not teachers else {
                "models": teachers, "weight": float(teacher_weight),
                "temperature": float(teacher_temperature),
            },
            "precision": precision,
            "init_from": None if init_from is None else str(init_from),
        }
        # as stored in config.json (tuples become lists), so a resume compares like with like
        self.args = json.loads(json.dumps(self.args))
        self.resume = resume
        self.progress = progress
        self._soft_labels: dict[str, np.ndarray] = {}  # teacher outputs per data fingerprint
        self._float32_model: Any = None  # built by _save_model for a mixed-precision run

    @property
    def data_options(self) -> dict[str, Any]:
        """``input_size``/``channels``/``color_order`` to load datasets with for this
        architecture (pass as ``**trainer.data_options`` to a dataset)."""
        a = self.architecture
        return {"input_size": a.input_size, "channels": a.channels, "color_order": a.color_order}

    @property
    def checkpoint_dir(self) -> Path:
        """Where the run's per-epoch checkpoint lives (``out_dir/checkpoint``)."""
        return self.out_dir / CHECKPOINT_DIR

    @property
    def epochs_done(self) -> int:
        """Epochs of the run in ``out_dir`` that a resume continues after (0: no run).

        A run stopped part-way (killed, or a deadline) has its best epoch's model file but
        no ``metrics.json`` or plots; a ``Trainer`` with ``resume=True`` and
        ``epochs=epochs_done`` finishes it without training further.
        """
        state = self._saved_state()
        if state is None:
            return 0
        return min(int(state["epoch"]), self._backed_up_epochs(self.checkpoint_dir))

    @property
    def has_run(self) -> bool:
        """Whether ``out_dir`` holds a run that :meth:`fit` continues only with ``resume``
        (and refuses to overwrite without it). A run that failed before its first epoch
        (e.g. on bad base weights) holds nothing and does not count."""
        state = self._saved_state()
        return state is not None and (
            state["epoch"] > 0 or self._backed_up_epochs(self.checkpoint_dir) > 0)

    @property
    def best_score(self) -> float | None:
        """The best validation accuracy (0..1) of the run in ``out_dir`` so far: that of
        the epoch held in ``out_dir/model.keras``. ``None`` if there is no run there (or
        it has no validated epoch yet); unlike ``metrics.json`` it exists for a run
        stopped part-way."""
        best = (self._saved_state() or {}).get("best")
        return None if best is None else float(best)

    def finished_for(self, train: ImageData, val: ImageData) -> bool:
        """Whether :meth:`fit` ``(train, val)`` would train nothing and its results are
        written already: with ``resume``, ``out_dir`` holds a run on exactly these images
        (data fingerprints), labels and :attr:`resume_must_match` options that is finished
        for ``epochs`` (it ran them, or stopped early and no more epochs are asked for than
        it was started with), and its ``metrics.json`` is that of its last epoch. ``fit``
        would only score the best model again and write ``metrics.json``, the plots and
        ``config.json`` anew. Anything else (no run, other data or options, epochs left to
        train, an unreadable file) is ``False``: ``fit`` continues the run or raises its
        error. Reads files only (no data is classified)."""
        if not self.resume:
            return False
        try:
            if not self.has_run:
                return False
            state, _ = self._resume_point(train.labels, {"train": train.fingerprint(),
                                                         "val": val.fingerprint()})
            metrics = json.loads((self.out_dir / _METRICS_FILE).read_text(encoding="utf-8"))
            written = (metrics["epochs_run"], metrics["best_epoch"]) == (
                state["epoch"], state["best_epoch"])
            return written and state == self._read_state() and _finished(
                state, self.args["epochs"])
        except (OSError, ValueError, TypeError, KeyError, EmotionKitError):
            return False

    def fit(self, train: ImageData, val: ImageData) -> dict[str, Any]:
        """Train on ``train``, select the best epoch on ``val``, write the output directory.

        Returns the content of ``metrics.json``.

        Raises:
            TrainingError: fewer than two labels, mismatched labels or shapes, an
                ``out_dir`` it would not write to (see :meth:`check_out_dir`), a resume with
                different data or options, or a file that cannot be written (e.g. a full
                disk: the run keeps its last complete epoch for a resume).
        """
        self._check_data(train, val)
        keras = _import_keras()
        keras.utils.set_random_seed(self.args["seed"])
        config = self._model_config(train, val, keras)
        epochs = self.args["epochs"]  # as asked: a finished run's resume keeps its own
        try:
            state = self._prepare_out_dir(config)
            if not _finished(state, epochs):
                self._train(keras, config, train, val, state)
                state = self._read_state()
            return self._finish(config, val, state)
        except EmotionKitError:
            raise
        except OSError as exc:
            if exc.errno in _WRITE_ERRNOS:  # a full disk, a quota, permissions changed
                raise TrainingError(
                    f"{self.out_dir}: training stopped: cannot write its files "
                    f"({exc.strerror or exc}); once there is room and write access, "
                    "continue with resume=True (--resume)") from exc
            where = f" {exc.filename}" if exc.filename else ""
            why = reason(exc)
            if exc.errno is not None:  # the system's error: its cause may pass
                raise TrainingError(
                    f"{self.out_dir}: training stopped: a file operation failed{where} "
                    f"({why}); once its cause is fixed, continue with resume=True "
                    "(--resume)") from exc
            raise TrainingError(  # a file library's (h5py, zip) error: the content is bad
                f"{self.out_dir}: training stopped: cannot read{where} ({why}); "
                "a checkpoint file may be damaged (e.g. the run was killed while saving "
                "it): start a new run in another output directory") from exc

    def check_architecture(self, num_classes: int) -> None:
        """Build this run's untrained network once (no pretrained weights: a second or
        two), as :meth:`fit` will, and raise its :class:`TrainingError` if the
        architecture cannot be built with these ``arch_options``. Reads no data:
        ``emotionkit train`` calls it before loading the dataset."""
        a = self.architecture
        self._network((*a.input_size, a.channels), num_classes)

    def check_out_dir(self) -> None:
        """Raise :class:`TrainingError` where :meth:`fit` would not write to ``out_dir``:
        not a directory; a run there without ``resume``; or a model there that no run's
        checkpoint backs (a finished run whose ``checkpoint/`` was deleted, any other model
        directory), which a new run would overwrite. Reads no data: ``emotionkit train``
        calls it before loading the dataset."""
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise TrainingError(f"{out}: not a directory; choose another output directory")
        if self.has_run:
            if not self.resume:
                raise TrainingError(
                    f"{out} already holds a training run; pass resume=True (--resume) to "
                    "continue it or choose another output directory")
            return
        started = (self.checkpoint_dir / _STATE_FILE).is_file()  # a run that failed early
        found = [name for name in (MODEL_FILE, CONFIG_NAME) if (out / name).is_file()
                 and (name == MODEL_FILE or not started)]
        if found:
            why = "its checkpoint/ holds no epoch" if started else "no checkpoint/"
            raise TrainingError(
                f"{out} holds a model ({found[0]}) but no training run to resume ({why}); "
                "choose another output directory, or delete the model")

    # -- setup -----------------------------------------------------------------------

    def _check_data(self, train: ImageData, val: ImageData) -> None:
        train_name = train.name or "the training data"
        if tuple(train.labels) != tuple(val.labels):
            raise TrainingError(
                f"train and validation labels differ: {train.labels} vs {val.labels}"
            )
        if len(train.labels) < 2:
            raise TrainingError(
                f"{train_name}: only one label ({', '.join(train.labels)}); a classifier needs "
                "two or more to choose between"
            )
        empty = [label for label, n in zip(train.labels, train.class_counts()) if n == 0]
        if empty and len(train):
            raise TrainingError(
                f"{train_name}: no training images for {', '.join(empty)}; add some, or train "
                "on the other labels only (labels=... / --labels)"
            )
        expected = (*self.architecture.input_size, self.architecture.channels)
        for data, name in ((train, train_name), (val, val.name or "the validation data")):
            if len(data) == 0:
                raise TrainingError(f"{name}: no images")
            if tuple(data.pixels.shape[1:]) != expected:
                raise TrainingError(
                    f"{name}: images are {data.pixels.shape[1:]}, architecture "
                    f"{self.args['arch']!r} needs {expected}; load the dataset with "
                    "trainer.data_options"
                )

    def _model_config(self, train: ImageData, val: ImageData, keras: Any) -> ModelConfig:
        a = self.architecture
        data = {
            split: {"name": d.name, "images": len(d), "skipped": d.skipped,
                    "fingerprint": d.fingerprint(),
                    "class_counts": dict(zip(d.labels, d.class_counts().tolist()))}
            for split, d in (("train", train), ("val", val))
        }
        extra: dict[str, Any] = {}
        if train.source_labels:
            # model output i = dataset label source_labels[source_index[i]]
            extra["label_subset"] = {
                "source_labels": list(train.source_labels),
                "source_index": [train.source_labels.index(x) for x in train.labels],
            }
        return ModelConfig(
            labels=train.labels, input_size=a.input_size, channels=a.channels,
            color_order=a.color_order, pixel_scale=a.pixel_scale, pixel_offset=a.pixel_offset,
            model_file=MODEL_FILE, architecture=a.name,
            extra={
                "training": self.args,
                "data": data,
                "emotionkit_version": __version__,
                "keras_version": keras.__version__,
                "backend": keras.backend.backend(),
                **extra,
            },
        )

    def _prepare_out_dir(self, config: ModelConfig) -> dict[str, Any]:
        fresh: dict[str, Any] = {"epoch": 0, "history": {}, "best": None, "best_epoch": 0,
                                 "wait": 0}
        self.check_out_dir()
        has_run = self.has_run
        try:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"{self.out_dir}: cannot create the output directory "
                                f"({exc.strerror or exc}); choose another --out") from exc
        if not has_run:
            if self.resume:
                log.info("%s: no checkpoint to resume; starting a new run", self.out_dir)
            (self.checkpoint_dir / _SOFT_LABELS).unlink(missing_ok=True)
            self._drop_best_files(keep=())
            self._write_config(config)
            self._write_state(fresh)
            return fresh
        stored = self._read_state()
        state, old_args = self._resume_point(config.labels, {
            split: data["fingerprint"] for split, data in config.extra["data"].items()})
        if state != stored:
            self._write_state(state)
        self._publish_best(state["best_epoch"])  # model.keras may be a dropped epoch's
        self._drop_best_files(keep=(state["best_epoch"],))
        if stored.get("stopped_early") and not state.get("stopped_early") and (
                state["epoch"] == stored["epoch"]):  # goes past the stop (not a dropped epoch)
            log.info("%s: stopped early at epoch %d; continuing to %d epochs with the "
                     "early-stopping counter reset", self.out_dir, state["epoch"],
                     self.args["epochs"])
        self._settle_changed_args(old_args, state)
        self._write_config(config)
        log.info("%s: resuming after epoch %d", self.out_dir, state["epoch"])
        return state

    def _resume_point(self, labels: Sequence[str], fingerprints: dict[str, str],
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Where this trainer continues the run in ``out_dir``, and the run's training
        arguments (``arch_options`` in full). Reads only.

        The state is the checkpoint's, less the epochs its weights backup lacks (the backup
        is written after ``state.json``: a run killed in between); a run that stopped early
        goes on past the stop (not stopped, counter reset) where more epochs are asked for
        than it was started with.

        Raises:
            TrainingError: the data (``fingerprints`` of ``"train"`` and ``"val"``),
                ``labels`` or :attr:`resume_must_match` options differ from the run's.
        """
        old = ModelConfig.read(self.out_dir / CONFIG_NAME)
        for split, now in fingerprints.items():
            before = old.extra.get("data", {}).get(split, {}).get("fingerprint")
            if before != now:
                raise TrainingError(
                    f"cannot resume {self.out_dir}: the {split} data differ from the run's "
                    f"({before} vs {now})"
                )
        old_args = dict(old.extra.get("training", {}))
        old_args["arch_options"] = _resolve_options(
            self.architecture, old_args.get("arch_options") or {}
        )
        changed = [k for k in self.resume_must_match if old_args.get(k) != self.args[k]]
        if changed or tuple(old.labels) != tuple(labels):
            raise TrainingError(
                f"cannot resume {self.out_dir}: options differ from the run's "
                f"({', '.join(changed) or 'labels'})"
            )
        state = self._read_state()
        saved = self._backed_up_epochs(self.checkpoint_dir)
        if state["epoch"] > saved:
            state = _truncate_state(state, saved)
        if state.get("stopped_early") and self.args["epochs"] > int(old_args.get("epochs", 0)):
            state.update(stopped_early=False, wait=0)
        return state, old_args

    def _settle_changed_args(self, old_args: dict[str, Any], state: dict[str, Any]) -> None:
        """A resume's changed options (those not in :attr:`resume_must_match`): each that
        the run uses is a warning; each that it does not use keeps the run's own value in
        :attr:`args` (so ``config.json`` records what the run used), with a warning too.
        Unused: those of :attr:`resume_keeps` (used when a run starts), and for a finished
        run (nothing left to train) all of them, ``epochs`` unless it is the number of
        epochs run (a run stopped part-way, finished there)."""
        finished = _finished(state, self.args["epochs"])
        for key in sorted(set(self.args) - set(self.resume_must_match)):
            old, new = old_args.get(key), self.args[key]
            if key not in old_args or old == new:
                continue
            finishes_here = key == "epochs" and new == state["epoch"] and not state.get(
                "stopped_early")
            if key in self.resume_keeps:
                log.warning("%s: %s %s not used: a resumed run continues from its checkpoint "
                            "(the run started with %s)", self.out_dir, key, new, old)
            elif finished and not finishes_here:
                log.warning("%s: the run is finished (epoch %d of %d): %s %s not used (the "
                            "run used %s)", self.out_dir, state["epoch"], old_args["epochs"],
                            key, new, old)
            else:
                log.warning("%s: resuming with %s %s (the run so far used %s)", self.out_dir,
                            key, new, old)
                continue
            self.args[key] = old

    @staticmethod
    def _backed_up_epochs(directory: Path) -> int:
        """Epochs covered by the weights backups under ``directory`` (0 if none)."""
        return max((int(json.loads(meta.read_text())["epoch"])
                    for meta in directory.rglob(_BACKUP_META)), default=0)

    def _save_best(self, model: Any, epoch: int, previous: int) -> None:
        """Save ``model`` as the checkpoint's copy of best epoch ``epoch``; the copy of the
        ``previous`` best stays until the next one (a resume that drops ``epoch`` because
        its weights backup is missing goes back to it)."""
        with _replacing(self.checkpoint_dir / _BEST_FILE.format(epoch=epoch)) as tmp:
            self._save_model(model, tmp)
        self._drop_best_files(keep=(epoch, previous))

    def _publish_best(self, epoch: int) -> None:
        """Make ``model.keras`` the checkpoint's copy of best epoch ``epoch`` (if kept and
        not already the same bytes)."""
        best = self.checkpoint_dir / _BEST_FILE.format(epoch=epoch)
        model = self.out_dir / MODEL_FILE
        if best.is_file() and not (model.is_file() and filecmp.cmp(best, model, shallow=False)):
            with _replacing(model) as tmp:
                shutil.copyfile(best, tmp)

    def _drop_best_files(self, keep: Sequence[int]) -> None:
        names = {_BEST_FILE.format(epoch=e) for e in keep}
        for path in self.checkpoint_dir.glob(_BEST_FILE.format(epoch="*")):
            if path.name not in names:
                path.unlink(missing_ok=True)

    def _saved_state(self) -> dict[str, Any] | None:
        """The checkpoint's state, or ``None`` where ``out_dir`` holds no run."""
        return self._read_state() if (self.checkpoint_dir / _STATE_FILE).is_file() else None

    def _read_state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.checkpoint_dir / _STATE_FILE).read_text())
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        _atomic_write(self.checkpoint_dir / _STATE_FILE, json.dumps(state, indent=1))

    def _write_config(self, config: ModelConfig) -> None:
        """``config.json``, replaced at once (a failed write leaves the old one whole)."""
        _atomic_write(self.out_dir / CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")

    # -- training --------------------------------------------------------------------

    def _train(
        self, keras: Any, config: ModelConfig, train: ImageData, val: ImageData,
        state: dict[str, Any],
    ) -> None:
        with _dtype_policy(keras, self.args["precision"]):
            model = self._build_model(keras, config, len(train.labels),
                                      fresh=state["epoch"] == 0)
        train_model = self._training_model(keras, model, config)
        self._schedule(keras, config, model, train_model, train, val, state)

    def _schedule(
        self, keras: Any, config: ModelConfig, model: Any, train_model: Any, train: ImageData,
        val: ImageData, state: dict[str, Any],
    ) -> None:
        """Compile and fit ``train_model`` (``model`` behind augmentation): one phase."""
        args = self.args
        index = self._epoch_index(train)
        self._compile(keras, train_model, args["learning_rate"], len(index), args["epochs"])
        self._fit(keras, train_model, model, config, train, val, state, index,
                  epochs=args["epochs"], backup_dir=self.checkpoint_dir)

    def _build_model(self, keras: Any, config: ModelConfig, num_classes: int,
                     fresh: bool) -> Any:
        """The inference model before training. ``fresh`` (a new run, not a resume): with
        ``init_from``'s weights, else with :meth:`_default_weights`; a resumed run's
        weights come from its checkpoint."""
        model = self._network((*config.input_size, config.channels), num_classes)
        if fresh and self.args["init_from"] is not None:
            self._load_initial_weights(model, config)
        elif fresh:
            self._default_weights(keras, model)
        return model

    def _default_weights(self, keras: Any, model: Any) -> None:
        """A new run's starting weights without ``init_from``: the network's random ones
        here; subclasses load pretrained parts (e.g. a transfer base)."""

    def _load_initial_weights(self, model: Any, config: ModelConfig) -> None:
        """Copy ``init_from``'s weights into ``model`` (see :func:`_copy_weights`)."""
        from ..registry import resolve_classifier

        spec = self.args["init_from"]
        try:
            source = resolve_classifier(spec)
        except EmotionKitError as exc:
            raise TrainingError(f"init-from {exc}") from exc
        source_model = getattr(source, "model", None)
        if source_model is None or not hasattr(source_model, "layers"):
            raise TrainingError(f"init-from {spec}: not a Keras model; pass a model directory "
                                "or file written by emotionkit train, or a built-in name")
        _copy_weights(source_model, model, tuple(source.labels), config.labels, spec)

    def _network(self, input_shape: tuple[int, ...], num_classes: int) -> Any:
        """A new network of this run's architecture and ``--arch-option`` values."""
        options = self.args["arch_options"]
        try:
            return self.architecture.builder(input_shape, num_classes, **options)
        except (TypeError, ValueError) as exc:  # e.g. widths="oops"
            defaults = _resolve_options(self.architecture, {})
            given = {k: v for k, v in options.items() if v != defaults[k]}
            raise TrainingError(
                f"architecture {self.args['arch']!r} cannot be built with options {given} "
                f"({type(exc).__name__}: {exc}); check the --arch-option values"
            ) from exc

    def _save_model(self, model: Any, path: Path) -> None:
        """Save the inference ``model`` to ``path``; a mixed-precision run saves a float32
        copy (same weights), so that the file computes in float32 wherever it is loaded."""
        if self.args["precision"] != "float32":
            keras = _import_keras()
            if self._float32_model is None:
                with _dtype_policy(keras, "float32"):
                    self._float32_model = self._network(
                        tuple(model.input_shape[1:]), model.output_shape[-1])
            self._float32_model.set_weights(model.get_weights())
            model = self._float32_model
        model.save(path)

    def _compile(self, keras: Any, train_model: Any, learning_rate: float, epoch_images: int,
                 epochs: int) -> None:
        """AdamW with warm-up (a tenth of ``epochs``, at most one epoch) then cosine decay
        to 1% of ``learning_rate`` over ``epochs`` epochs of ``epoch_images``; smoothed
        cross-entropy."""
        args = self.args
        steps = math.ceil(epoch_images / args["batch_size"])
        warmup = min(steps, max(1, steps * epochs // 10))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate / 10,
            decay_steps=max(1, steps * epochs - warmup),
            alpha=0.01, warmup_target=learning_rate, warmup_steps=warmup,
        )
        train_model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=args["weight_decay"]),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=args["label_smoothing"]),
            metrics=["accuracy"],
            jit_compile=keras.backend.backend() != "tensorflow",
        )

    def _fit(
        self, keras: Any, train_model: Any, model: Any, config: ModelConfig, train: ImageData,
        val: ImageData, state: dict[str, Any], index: np.ndarray, *, epochs: int,
        backup_dir: Path, initial_epoch: int = 0, early_stopping: bool = True,
    ) -> None:
        """``train_model.fit`` on the rows ``index`` of ``train`` (see :meth:`_epoch_index`)
        from ``initial_epoch`` to ``epochs`` (absolute epoch numbers) with progress,
        per-epoch state and a weights backup in ``backup_dir``."""
        args = self.args
        num_classes = len(train.labels)
        weights = class_weights(train.targets, num_classes, args["class_weight"])
        log.info("class weights: %s", dict(zip(train.labels, np.round(weights, 3).tolist())))
        eye = np.eye(num_classes, dtype=np.float32)
        targets = train.targets[index]
        y = self._targets(train)[index]
        callbacks = [
            _Progress(math.ceil(len(index) / args["batch_size"]), args["epochs"],
                      enabled=self.progress),
            _RunState(self, model, state, len(index), early_stopping),
            _Backup(str(backup_dir), delete_checkpoint=False),
        ]
        # BackupAndRestore sets _initial_epoch when it restores a backup, and Keras's fit
        # prefers it to initial_epoch: clear one left by an earlier phase of this run
        train_model._initial_epoch = None
        batches = _shuffled_batches(
            keras, pixels_to_input(train.pixels[index], config), y,
            weights[targets].astype(np.float32), args["batch_size"], args["seed"],
            first_epoch=max(initial_epoch, self._backed_up_epochs(backup_dir)))
        train_model.fit(
            batches,
            validation_data=(pixels_to_input(val.pixels, config), eye[val.targets]),
            epochs=epochs, initial_epoch=initial_epoch, verbose=0, callbacks=callbacks,
            shuffle=False,  # the batches shuffle themselves; Keras would reorder them
        )

    def _targets(self, train: ImageData) -> np.ndarray:
        """Training targets ``(N, labels)``: one-hot, or mixed with the teacher's soft labels
        (the teacher classifies ``train`` once per run)."""
        teacher = self.args["teacher"]
        if teacher is None:
            return np.eye(len(train.labels), dtype=np.float32)[train.targets]
        from .distill import distillation_targets, load_teacher, soft_labels

        key = train.fingerprint()
        if key not in self._soft_labels:
            soft = self._stored_soft_labels(key)
            if soft is None:
                log.info("teacher %s: soft labels for %d images",
                         " + ".join(teacher["models"]), len(train))
                loaded = {name: load_teacher(name) for name in set(teacher["models"])}
                soft = soft_labels([loaded[name] for name in teacher["models"]], train,
                                   teacher["temperature"])
                self._store_soft_labels(key, soft)
            else:
                log.info("teacher soft labels for %d images from %s", len(train),
                         self.checkpoint_dir / _SOFT_LABELS)
            log.info("teacher agrees with %.1f%% of the training labels",
                     100 * float((soft.argmax(axis=1) == train.targets).mean()))
            self._soft_labels[key] = soft
        return distillation_targets(train, self._soft_labels[key], teacher["weight"])

    def _stored_soft_labels(self, key: str) -> np.ndarray | None:
        """The soft labels a resumed run computed before (same data and teachers), if any."""
        path = self.checkpoint_dir / _SOFT_LABELS
        if not path.is_file():
            return None
        try:
            with np.load(path) as stored:
                if str(stored["key"]) != self._soft_labels_key(key):
                    return None
                return np.asarray(stored["soft"], dtype=np.float32)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a cache: redo it
            log.warning("%s: unreadable (%s); asking the teachers again", path,
                        reason(exc))
            return None

    def _store_soft_labels(self, key: str, soft: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, key=np.array(self._soft_labels_key(key)), soft=soft)
        _atomic_write(self.checkpoint_dir / _SOFT_LABELS, buffer.getvalue())

    def _soft_labels_key(self, data_fingerprint: str) -> str:
        return json.dumps({"data": data_fingerprint, "teacher": self.args["teacher"]},
                          sort_keys=True)

    def _epoch_index(self, train: ImageData) -> np.ndarray:
        """Rows of ``train`` that make one epoch: all of them, or with
        ``class_weight="oversample"`` every class repeated up to the largest class's count."""
        if self.args["class_weight"] != "oversample":
            return np.arange(len(train))
        return oversample_index(train.targets, self.args["seed"])

    def _training_model(self, keras: Any, model: Any, config: ModelConfig) -> Any:
        """``model`` behind the augmentation layers (active only while training)."""
        if not self.args["augment"]:
            return model
        from keras import layers

        def seed(i: int) -> int:  # the backends' seeds are 32-bit
            return (self.args["seed"] + i) % (MAX_SEED + 1)

        low = config.pixel_offset
        high = 255.0 * config.pixel_scale + config.pixel_offset
        augment = keras.Sequential([
            layers.RandomFlip("horizontal", seed=seed(0)),
            layers.RandomRotation(0.04, fill_mode="nearest", seed=seed(1)),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed(2)),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed(3)),
            layers.RandomBrightness(0.2, value_range=(min(low, high), max(low, high)),
                                    seed=seed(4)),
        ], name="augment")
        if keras.backend.backend() == "jax":
            # Keras marks the affine layers jit-unsafe because of TensorFlow's XLA; their JAX
            # ops trace fine, and without jit a JAX train step runs op by op (slow on GPUs).
            for layer in augment.layers:
                layer.supports_jit = True
        inputs = keras.Input(shape=model.input_shape[1:], name="pixels")
        return keras.Model(inputs, model(augment(inputs)), name="training_model")

    # -- outputs ---------------------------------------------------------------------

    def _finish(self, config: ModelConfig, val: ImageData, state: dict[str, Any]) -> dict[str, Any]:
        from ..classifiers.keras_model import load_classifier

        classifier = load_classifier(self.out_dir)
        report: EvaluationReport = evaluate_classifier(classifier, val)
        history = state["history"]
        metrics = {
            "val": report.to_dict(),
            "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"],
            "stopped_early": bool(state.get("stopped_early", False)),
            "train_images_per_s": _median(history.get("images_per_s", [])),
            "history": history,
        }
        _atomic_write(self.out_dir / _METRICS_FILE, json.dumps(metrics, indent=2))
        with _replacing(self.out_dir / "confusion_matrix.png") as tmp:
            report.save_confusion_png(tmp)
        with _replacing(self.out_dir / "history.png") as tmp:
            save_history_png(history, tmp)
        config.extra["metrics"] = {
            "val_accuracy": round(report.accuracy, 6), "val_macro_f1": round(report.macro_f1, 6),
            "best_epoch": state["best_epoch"],
        }
        self._write_config(config)
        log.info("best epoch %d: val accuracy %.4f, macro-F1 %.4f", state["best_epoch"],
                 report.accuracy, report.macro_f1)
        return metrics


def _check_finite(**values: float) -> None:
    """A ``nan`` or infinite option is an error (``nan`` passes every ``<=`` check)."""
    for name, value in values.items():
        if not math.isfinite(value):
            raise TrainingError(f"{name} must be a finite number, got {value}")


def _import_keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


@contextlib.contextmanager
def _dtype_policy(keras: Any, name: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``name`` for the layers built in the block."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _keras_callback_base(name: str = "Callback") -> Any:
    """``keras.callbacks.<name>``, a base class for the trainer's callbacks."""
    return getattr(_import_keras().callbacks, name)


def _shuffled_batches(keras: Any, x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                      batch_size: int, seed: int, first_epoch: int) -> Any:
    """Training batches ``(x, y, sample weights)`` in a new order every epoch, the order of
    epoch ``e`` a function of ``seed`` and ``e`` alone (so a resumed run sees what an
    uninterrupted one would).

    Keras's own ``shuffle=True`` on the TensorFlow backend gives the same order in every
    epoch when a seed is set (its shuffle op restarts with each epoch's iterator). Keras
    asks for the next epoch's first batches before that epoch's callbacks run (the
    iterator is made, and prefetched, at the end of the previous epoch), so the epoch is
    counted here, by the passes over the batches (a pass starts at batch 0), from
    ``first_epoch`` (the epoch the fit starts at); TensorFlow's look at the first batches
    for their shapes counts as one pass too, the same in every run.
    """

    class ShuffledBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self._epoch = first_epoch - 1
            self._order: np.ndarray | None = None

        def __len__(self) -> int:
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if i == 0 or self._order is None:  # a new pass over the data
                self._epoch += 1
                self._order = np.random.default_rng([seed, self._epoch]).permutation(len(x))
            rows = self._order[i * batch_size:(i + 1) * batch_size]
            return x[rows], y[rows], weights[rows]

    return ShuffledBatches()


def _seed_epoch(model: Any, epoch: int) -> None:
    """Make the random draws of epoch ``epoch`` (0-based) a function of the run's seed and
    ``epoch`` alone: the counter of every seed generator in ``model`` (dropout masks,
    augmentation) is set to the epoch's own range. (The batch order is the epoch's already:
    :func:`_shuffled_batches`.)

    Keras's weights backup does not hold these counters, and a resumed run seeds everything
    anew: without this, the first epoch after a resume replays epoch 1's dropout masks and
    augmentations, so it trains differently from an uninterrupted run and logs a training
    loss and accuracy that are far too good (the network has fitted those exact forward
    passes).
    """
    counter = epoch * _SEED_STRIDE % 2**31
    for state in model.variables:
        if state.name == "seed_generator_state":  # a keras.random.SeedGenerator's [seed, draws]
            state.assign(np.array([np.asarray(state)[0], counter], dtype=state.dtype))


class _RunState(_keras_callback_base()):  # type: ignore[misc]
    """Per epoch: record history, save the best model, early stopping, write state.json.

    A loss that becomes ``nan`` or infinite (a diverging run, e.g. a far too large learning
    rate) ends the epoch at once (like ``keras.callbacks.TerminateOnNaN``, without its
    message on stdout), and the epoch's end raises :class:`TrainingError` before anything
    of that epoch (model, weights backup, history) is saved.
    """

    def __init__(self, trainer: Trainer, model: Any, state: dict[str, Any], n_train: int,
                 early_stopping: bool = True) -> None:
        super().__init__()
        self.trainer = trainer
        self.early_stopping = early_stopping
        self.inner = model
        self.state = state
        self.n_train = n_train
        self._t0 = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        _seed_epoch(self.model, epoch)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            self.model.stop_training = True  # on_epoch_end reports it

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        seconds = time.perf_counter() - self._t0
        logs = dict(logs or {})
        self._check_diverged(epoch, logs)
        row = {k: float(v) for k, v in logs.items() if np.ndim(v) == 0}
        row["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
        row["seconds"] = round(seconds, 2)
        row["images_per_s"] = round(self.n_train / max(seconds, 1e-9), 1)
        state = self.state
        for key, value in row.items():
            state["history"].setdefault(key, []).append(value)
        state["epoch"] = epoch + 1
        score = row.get(_MONITOR)
        improved = score is not None and (state["best"] is None or score > state["best"])
        if improved:
            # the copy first, then state.json, then model.keras: a run killed in between
            # resumes with model.keras matching state.json's best epoch
            self.trainer._save_best(self.inner, epoch + 1, previous=state["best_epoch"])
            state["best"], state["best_epoch"], state["wait"] = score, epoch + 1, 0
        else:
            state["wait"] += 1
        patience = self.trainer.args["patience"]
        if self.early_stopping and patience and state["wait"] >= patience:
            state["stopped_early"] = True
            self.model.stop_training = True
            log.info("early stop: no %s gain in %d epochs", _MONITOR, patience)
        self.trainer._write_state(state)
        if improved:
            self.trainer._publish_best(epoch + 1)
        _write_history_csv(state["history"], self.trainer.out_dir / "history.csv")
        log.info(
            "epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (best %.4f @ %d) "
            "%.0f img/s", epoch + 1, self.trainer.args["epochs"], row.get("loss", math.nan),
            row.get("accuracy", math.nan), row.get("val_loss", math.nan),
            row.get("val_accuracy", math.nan), state["best"] or math.nan, state["best_epoch"],
            row["images_per_s"],
        )

    def _check_diverged(self, epoch: int, logs: dict[str, Any]) -> None:
        """Raise :class:`TrainingError` if epoch ``epoch`` (0-based) ended with a ``nan`` or
        infinite training or validation loss."""
        names = {"loss": "loss", "val_loss": "validation loss"}
        bad = [(names[k], float(logs[k])) for k in names
               if k in logs and not math.isfinite(float(logs[k]))]
        if not bad:
            return
        best = self.state["best_epoch"]
        # a transfer run's head epochs train at --head-lr
        lr = "--head-lr" if epoch < self.trainer.args.get("head_epochs", 0) else "--lr"
        what = (f"{self.trainer.out_dir / MODEL_FILE} holds epoch {best}, the best so far; "
                f"--resume with a lower learning rate ({lr}) goes on after epoch {epoch}, the "
                "last completed one"
                if best else
                f"no model was saved; run again with a lower learning rate ({lr})")
        raise TrainingError(f"training diverged in epoch {epoch + 1}: the {bad[0][0]} became "
                            f"{bad[0][1]}; {what}")


class _Backup(_keras_callback_base("BackupAndRestore")):  # type: ignore[misc]
    """Keras's ``BackupAndRestore`` (the training model's weights and optimizer state, and
    the epoch count, restored when a resumed fit starts), each file written to a temporary
    name and then put in place. Keras writes over the last backup in place: a run killed
    while saving it (seconds, for a large model) or a disk that filled up left it damaged,
    and the run could not be resumed."""

    def _save_model(self) -> None:  # Keras's own (3.3 to 3.15), with atomic writes
        directory = Path(self.backup_dir)
        directory.mkdir(parents=True, exist_ok=True)
        with _replacing(Path(self._weights_path)) as tmp:
            self.model.save_weights(tmp, overwrite=True)
        _atomic_write(directory / _BACKUP_META, json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen}))


class _Progress(_keras_callback_base()):  # type: ignore[misc]
    """A tqdm bar per epoch (on stderr)."""

    def __init__(self, steps: int, epochs: int, enabled: bool) -> None:
        super().__init__()
        self.steps, self.epochs, self.enabled = steps, epochs, enabled
        self.bar: Any = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.enabled:
            import sys

            from tqdm.auto import tqdm

            # to a log file: nothing for an epoch under a minute (the epoch's log line says
            # it all), else an update a minute instead of a carriage-return stream
            interactive = sys.stderr.isatty()
            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", leave=False, file=sys.stderr,
                            mininterval=1.0 if interactive else 60.0,
                            delay=0.0 if interactive else 60.0, ascii=not interactive)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if logs and batch % 20 == 0:
                self.bar.set_postfix(loss=f"{float(logs.get('loss', 0)):.3f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _resolve_options(arch: Architecture, options: dict[str, Any]) -> dict[str, Any]:
    """The builder's keyword defaults updated with ``options`` (so config.json records the
    exact architecture even if defaults change later); unknown names are an error."""
    params = inspect.signature(arch.builder).parameters
    defaults = {
        name: p.default for name, p in params.items()
        if p.default is not inspect.Parameter.empty and name != "name"
    }
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TrainingError(
            f"unknown option(s) {', '.join(unknown)} for architecture {arch.name!r}; "
            f"known: {', '.join(sorted(defaults))}"
        )
    resolved: dict[str, Any] = json.loads(json.dumps({**defaults, **options}))
    return resolved


def _copy_weights(source: Any, target: Any, source_labels: tuple[str, ...],
                  labels: tuple[str, ...], spec: str) -> None:
    """Copy ``source``'s weights into ``target`` (same architecture), layer by layer.

    The output layer (the last with weights) is matched by label name: ``target``'s unit
    for a label ``source`` has gets that unit's weights; a label ``source`` lacks keeps its
    fresh initial weights. Any other difference in layers or shapes is an error.
    """
    src = [layer for layer in source.layers if layer.weights]
    dst = [layer for layer in target.layers if layer.weights]
    if len(src) != len(dst):
        raise TrainingError(
            f"init-from {spec}: it has {len(src)} layers with weights, this run's "
            f"architecture {len(dst)}; pass a model of the same --arch and --arch-option values"
        )
    for s, d in zip(src, dst):
        weights, fresh = s.get_weights(), d.get_weights()
        if d is dst[-1] and source_labels != labels:
            if len(weights) != 2 or weights[0].shape[:-1] != fresh[0].shape[:-1]:
                raise TrainingError(
                    f"init-from {spec}: its labels {list(source_labels)} differ from this "
                    f"run's {list(labels)} and its output layer {s.name} is not a dense layer "
                    "whose units can be matched by label"
                )
            shared = [(i, source_labels.index(x)) for i, x in enumerate(labels)
                      if x in source_labels]
            for i, j in shared:
                fresh[0][..., i], fresh[1][i] = weights[0][..., j], weights[1][j]
            weights = fresh
            log.info("init-from %s: output units for %s copied, %s new", spec,
                     ", ".join(labels[i] for i, _ in shared) or "no label",
                     ", ".join(x for x in labels if x not in source_labels) or "none")
        shapes = [w.shape for w in weights], [w.shape for w in fresh]
        if shapes[0] != shapes[1]:
            raise TrainingError(
                f"init-from {spec}: layer {s.name} has weights of shapes {shapes[0]}, this "
                f"run's {d.name} {shapes[1]}; pass a model of the same --arch and "
                "--arch-option values"
            )
        d.set_weights(weights)
    log.info("init-from %s: %d layers' weights copied", spec, len(dst))


def _truncate_state(state: dict[str, Any], epochs: int) -> dict[str, Any]:
    history = {k: v[:epochs] for k, v in state["history"].items()}
    scores = history.get(_MONITOR, [])
    best_epoch = int(np.argmax(scores)) + 1 if scores else 0
    return {
        "epoch": epochs, "history": history,
        "best": scores[best_epoch - 1] if scores else None, "best_epoch": best_epoch,
        "wait": epochs - best_epoch,
    }


def _write_history_csv(history: dict[str, list[float]], path: Path) -> None:
    keys = sorted(history)
    n = max((len(v) for v in history.values()), default=0)
    lines = [",".join(["epoch", *keys])]
    lines += [",".join([str(i + 1), *(f"{history[k][i]:.6g}" for k in keys)]) for i in range(n)]
    _atomic_write(path, "\n".join(lines) + "\n")


_WRITE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM")
    if hasattr(errno, name))
"""Errors of writing (a full disk, a quota, permissions) rather than of damaged files."""


def _finished(state: dict[str, Any], epochs: int) -> bool:
    """Whether a run in ``state`` has nothing left to train for ``epochs`` epochs."""
    return state["epoch"] >= epochs or bool(state.get("stopped_early", False))


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Inside: write the new ``path`` to the temporary file given (same folder, name
    ending as ``path``'s: Keras wants ``.keras`` and ``.weights.h5``); it then replaces
    ``path`` at once, so that a killed run or a failed write leaves the old file or the
    new one, never part of one. On an error it is removed."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, content: str | bytes) -> None:
    with _replacing(path) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content, encoding="utf-8")


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None
