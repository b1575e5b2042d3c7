"""``emotionkit evaluate``: accuracy, macro-F1, per-class metrics and confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._common import check_split, fail, open_dataset_or_fail, parse_labels, run_or_fail
from .train import check_ferplus, setup_logging

__all__ = ["evaluate"]


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--classifier", "-c", "classifier_name", default="fer-cnn", show_default=True,
              help="Registered classifier name, model directory or file, or "
                   "hf://OWNER/REPO[@REV].")
@click.option("--split", default=None,
              help="Split to evaluate (FER2013: Training/PublicTest/PrivateTest; folders: "
              "train/val/test). Default: test, else val, else train. A split the dataset "
              "lacks is a usage error.")
@click.option("--tta", is_flag=True, help="Average with horizontally flipped faces (Keras "
              "classifiers; others: a usage error).")
@click.option("--format", "fmt", default="text", show_default=True,
              type=click.Choice(["text", "json"]),
              help="text: the report as a table on stdout; json: the same as one JSON object.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write metrics.json and confusion_matrix.png here.")
@click.option("--labels", default=None,
              help="Comma-separated labels: evaluate only images of these labels, counting "
              "the classifier's most probable of them as its answer (e.g. a 7-class model "
              "as an angry,happy,sad one).")
@click.option("--ferplus", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="FER2013 csv: evaluate against FER+ majority labels.")
def evaluate(data: Path, classifier_name: str, split: str | None, tta: bool, fmt: str,
             out_dir: Path | None, labels: str | None, ferplus: Path | None) -> None:
    """Evaluate a classifier on DATA (a folder dataset or a FER2013 csv(.gz))."""
    from ..registry import resolve_classifier
    from ..training.evaluation import evaluate_classifier, supports_tta

    setup_logging(quiet=fmt == "json")
    check_ferplus(data, ferplus)
    if out_dir is not None:
        _check_report_dir(out_dir)
    classifier = run_or_fail(resolve_classifier, classifier_name, exit_code=2)
    if tta and not supports_tta(classifier):
        fail(f"classifier {classifier_name!r} does not support --tta", 2)
    config = getattr(classifier, "config", None)
    options: dict[str, Any] = {
        "input_size": tuple(classifier.input_size),
        "channels": getattr(config, "channels", 3),
        "color_order": getattr(config, "color_order", "bgr"),
    }
    label_list = parse_labels(labels)
    dataset = open_dataset_or_fail(data, ferplus=ferplus, labels=label_list,
                                   val_fraction=0.0, **options)
    check_split(dataset, split)
    if split is None:
        available = run_or_fail(lambda: dataset.splits)
        split = next((s for s in (dataset.test_split, dataset.val_split, dataset.train_split)
                      if s in available), dataset.train_split)
    images = run_or_fail(dataset.load, split)
    # the dataset's names for them: canonical (--labels Anger,Happy -> angry, happy)
    report = run_or_fail(evaluate_classifier, classifier, images, tta=tta,
                         labels=list(images.labels) if label_list else None)
    if fmt == "json":
        click.echo(report.to_json())
    else:
        click.echo(report.to_text())
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "metrics.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
            report.save_confusion_png(out_dir / "confusion_matrix.png")
        except OSError as exc:
            fail(f"{out_dir}: cannot write the report there ({exc.strerror or exc}); choose "
                 "another --out")
        click.echo(f"wrote {out_dir / 'metrics.json'} and {out_dir / 'confusion_matrix.png'}",
                   err=True)


def _check_report_dir(out_dir: Path) -> None:
    """``--out`` must not be a training run's directory: its ``metrics.json`` (validation
    report and history) and plot would be replaced (an error, exit status 1)."""
    try:
        written = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none there (or not one of ours): nothing to keep
        return
    if isinstance(written, dict) and "history" in written:
        fail(f"--out {out_dir}: holds a training run's metrics.json (its validation report "
             "and history); choose another --out", 2)
