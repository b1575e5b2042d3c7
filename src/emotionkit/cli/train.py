"""``emotionkit train``: train a classifier on a folder dataset or a FER2013 csv."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from .._text import cut
from ._common import check_split, fail, open_dataset_or_fail, parse_labels, run_or_fail

__all__ = ["check_classifier_spec", "check_ferplus", "setup_logging", "train"]


def setup_logging(quiet: bool = False) -> None:
    """Send ``emotionkit.training`` log lines (progress, skipped rows) to stderr."""
    logger = logging.getLogger("emotionkit.training")
    for old in [h for h in logger.handlers if getattr(h, "_emotionkit_cli", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)  # the current stream (set up by main())
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler._emotionkit_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output model directory (model.keras, config.json, metrics, plots).")
@click.option("--arch", default="fer-cnn", show_default=True,
              help="Architecture name: fer-cnn, or a transfer base (vgg19, vgg16, resnet50, "
              "mobilenet-v3-small, transfer) trained with TransferTrainer.")
@click.option("--arch-option", "arch_option", multiple=True, metavar="KEY=VALUE",
              help="Architecture option, VALUE as JSON (e.g. widths=[32,64,128,256], "
              "size=96, trainable_blocks=1); repeatable.")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Maximum epochs [default: 60; transfer: 30].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Images per training step (1 or more).")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate, warm-up then cosine decay [default: 1e-3; transfer: "
              "1e-5].")
@click.option("--weight-decay", default=1e-4, show_default=True,
              type=click.FloatRange(min=0), help="AdamW decoupled weight decay (0 or more; "
              "0 = off).")
@click.option("--label-smoothing", default=0.1, show_default=True,
              type=click.FloatRange(0, 1, max_open=True),
              help="Share of each one-hot target spread evenly over all labels, in [0, 1).")
@click.option("--class-weight", type=click.Choice(["none", "sqrt", "balanced", "oversample"]),
              help="Class balancing: loss weight 1/sqrt(frequency), 1/frequency, none, or "
              "oversampling rare classes [default: sqrt; transfer: oversample].")
@click.option("--no-augment", is_flag=True, help="Turn off data augmentation.")
@click.option("--patience", type=click.IntRange(min=0),
              help="Early stopping: epochs without validation gain, 0 = off [default: 12; "
              "transfer: 5].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="Random seed (0..4294967295) for weights, augmentation, shuffling and "
              "the validation carve-out: the same seed repeats a run.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--val-fraction", default=0.1, show_default=True,
              type=click.FloatRange(0, 1, max_open=True),
              help="Folder datasets without a val/ folder: share of images for validation.")
@click.option("--labels", default=None,
              help="Train on these labels only, in this order (comma-separated, e.g. "
              "angry,happy,sad); default: all of the dataset's labels.")
@click.option("--ferplus", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="FER2013 csv: train on FER+ majority labels from this row-aligned csv.")
@click.option("--train-split", default=None, help="Split to train on (default: the "
              "dataset's training split).")
@click.option("--val-split", default=None, help="Split to select on (default: validation).")
@click.option("--base-weights", default="imagenet", show_default=True,
              help="Transfer architectures: base weights, imagenet | none | PATH (a local "
              "no-top weights file, for machines without internet, or a .keras model "
              "trained here with a transfer architecture: its base).")
@click.option("--head-epochs", default=0, show_default=True, type=click.IntRange(min=0),
              help="Transfer architectures: first train only the new head for this many "
              "epochs, then the base's last blocks too (0 = one phase).")
@click.option("--head-lr", "head_learning_rate", default=1e-3, show_default=True, type=float,
              help="Transfer architectures: peak learning rate of the head phase.")
@click.option("--init-from", "init_from", metavar="NAME_OR_PATH",
              help="Fine-tune: start from this trained classifier's weights (a name such as "
              "fer-cnn, a model directory or file) instead of random ones; same --arch "
              "and --arch-option values, output units matched by label name.")
@click.option("--teacher", multiple=True, metavar="NAME_OR_PATH",
              help="Knowledge distillation: a classifier (name, model directory or file, "
              "hf:// spec) or a soft-label .npz file made for the training images, whose "
              "soft labels are mixed into the training targets; repeat for an ensemble "
              "(probabilities averaged).")
@click.option("--teacher-weight", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of the teacher's soft labels in the targets.")
@click.option("--teacher-temperature", default=2.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Softens the teacher's probabilities (p ** (1/T), renormalised).")
@click.option("--precision", default="float32", show_default=True,
              type=click.Choice(["float32", "mixed_bfloat16"]),
              help="mixed_bfloat16: compute in bfloat16 with float32 weights, faster on CPUs "
              "with bfloat16 instructions (~1.25x measured with AVX512-BF16), slower on "
              "other CPUs; saved models compute in float32 either way.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-epoch lines.")
def train(data: Path, out_dir: Path, arch: str, arch_option: tuple[str, ...],
          epochs: int | None, batch_size: int, learning_rate: float | None,
          weight_decay: float, label_smoothing: float, class_weight: str | None,
          no_augment: bool, patience: int | None, seed: int, resume: bool,
          val_fraction: float, labels: str | None, ferplus: Path | None,
          train_split: str | None, val_split: str | None, base_weights: str,
          head_epochs: int, head_learning_rate: float, teacher: tuple[str, ...],
          teacher_weight: float, teacher_temperature: float, precision: str,
          init_from: str | None, quiet: bool) -> None:
    """Train a classifier on DATA and write a model directory to --out.

    DATA is a folder dataset (root/<label>/*.jpg or root/train|val|test/<label>/*.jpg) or
    a FER2013 csv(.gz) (trains on Training, selects on PublicTest). A killed or stopped
    run continues with the same command plus --resume.
    """
    from ..errors import EmotionKitError
    from ..training.architectures import get_architecture
    from ..training.datasets import FolderDataset

    setup_logging(quiet)
    label_list = parse_labels(labels)
    options: dict[str, Any] = {
        "arch_options": _parse_options(arch_option), "batch_size": batch_size,
        "weight_decay": weight_decay, "label_smoothing": label_smoothing,
        "augment": not no_augment, "seed": seed, "resume": resume, "progress": not quiet,
        "teacher": list(teacher), "teacher_weight": teacher_weight,
        "teacher_temperature": teacher_temperature, "precision": precision,
        "init_from": init_from,
    }
    given = {"epochs": epochs, "learning_rate": learning_rate, "class_weight": class_weight,
             "patience": patience}
    options.update({k: v for k, v in given.items() if v is not None})
    from ..training.trainer import Trainer, TrainingError
    from ..training.transfer import TransferTrainer

    trainer_class: type[Trainer] = Trainer
    if run_or_fail(get_architecture, arch, exit_code=2).transfer:
        trainer_class = TransferTrainer
        options.update(base_weights=base_weights, head_epochs=head_epochs,
                       head_learning_rate=head_learning_rate)
    trainer = run_or_fail(trainer_class, out_dir, arch, exit_code=2, **options)
    if not resume and trainer.has_run:  # before loading the data, which can take a while
        fail(f"--out {out_dir}: already holds a training run; add --resume to continue it, or "
             "choose another --out directory", 2)
    try:
        trainer.check_out_dir()
    except TrainingError as exc:
        fail(f"--out {exc}", 2)
    check_ferplus(data, ferplus)
    if not trainer.has_run:  # a resume reuses the recorded teachers and architecture
        for spec in teacher:
            check_classifier_spec("--teacher", spec, soft_labels=True)
        if init_from is not None:
            check_classifier_spec("--init-from", init_from)
        try:
            trainer.check_architecture(len(label_list or ()) or 2)
        except EmotionKitError as exc:  # TrainingError, or a builder's own check
            fail(f"--arch-option: {exc}", 2)
    dataset = open_dataset_or_fail(data, ferplus=ferplus, labels=label_list,
                                   val_fraction=val_fraction, seed=seed, **trainer.data_options)
    if isinstance(dataset, FolderDataset):
        if dataset.labels_without_folder:
            fail(f"--labels: no label folder in {data} for "
                 f"{', '.join(dataset.labels_without_folder)} (its labels: "
                 f"{', '.join(dataset.folder_labels)})", 2)
        if dataset.reads_from(out_dir):
            fail(f"--out {out_dir}: is inside the dataset's image folders in {data}, where "
                 "the run's plots would become images of the data; choose a directory "
                 "outside them", 2)
    check_split(dataset, train_split)
    check_split(dataset, val_split)
    train_data = run_or_fail(dataset.load, train_split or dataset.train_split)
    val_data = run_or_fail(dataset.load, val_split or dataset.val_split)
    click.echo(f"training {arch} on {len(train_data)} images, validating on {len(val_data)}; "
               f"labels: {', '.join(train_data.labels)}", err=True)
    metrics = run_or_fail(trainer.fit, train_data, val_data)
    val = metrics["val"]
    click.echo(f"{out_dir}: best epoch {metrics['best_epoch']}/{metrics['epochs_run']}, "
               f"val accuracy {val['accuracy']:.4f}, macro-F1 {val['macro_f1']:.4f}")


def check_classifier_spec(option: str, spec: str, soft_labels: bool = False) -> None:
    """Before the data is loaded: ``spec`` must be an ``hf://`` spec, an existing path or a
    registered classifier name (with ``soft_labels``, also a soft-label ``.npz`` file);
    otherwise an error (exit status 2) worded as the library words it."""
    from ..errors import EmotionKitError
    from ..registry import list_classifiers, resolve_classifier
    from ..training.distill import load_teacher

    try:
        exists = Path(spec).exists()
    except (OSError, ValueError) as exc:  # a name too long for a file, ...
        fail(f"{option}: {cut(spec)}: not a classifier name "
             f"or a usable path ({getattr(exc, 'strerror', None) or exc})", 2)
    if spec.startswith("hf://") or (spec.strip() and (exists or spec in list_classifiers())):
        return
    try:  # neither a file nor a name: the loader raises its own error, without loading
        (load_teacher if soft_labels else resolve_classifier)(spec)
    except EmotionKitError as exc:
        fail(f"{option}: {exc}", 2)


def check_ferplus(data: Path, ferplus: Path | None) -> None:
    """``--ferplus`` with a DATA other than a FER2013 csv is an error (exit status 2)."""
    if ferplus is not None and not str(data).lower().endswith((".csv", ".csv.gz")):
        fail("--ferplus applies to a FER2013 csv only", 2)


def _parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--arch-option {item!r}: expected KEY=VALUE", 2)
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options
