"""Helpers shared by CLI commands: one-line errors and building a recognizer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ..errors import EmotionKitError

__all__ = ["fail", "report", "run_or_fail"]


class CLIError(click.ClickException):
    """A one-line ``error: ...`` on stderr and exit status 1, no traceback."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class CLIUsageError(CLIError):
    """Like :class:`CLIError`, exit status 2: bad options, unknown names, unusable models."""

    exit_code = 2


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Stop the command with ``error: message`` on stderr and ``exit_code`` (1 or 2)."""
    raise (CLIUsageError if exit_code == 2 else CLIError)(message)


def report(message: str) -> None:
    """Print a one-line ``error: ...`` on stderr and carry on."""
    click.echo(f"error: {message}", err=True)
    sys.stderr.flush()


def run_or_fail(func: Any, *args: Any, exit_code: int = 1, **kwargs: Any) -> Any:
    """Call ``func``; an :class:`EmotionKitError` becomes a one-line CLI error."""
    try:
        return func(*args, **kwargs)
    except EmotionKitError as exc:
        fail(str(exc), exit_code)


def open_dataset_or_fail(data: str | Path, **options: Any) -> Any:
    """``open_dataset(data, **options)``; a ``labels`` choice the dataset cannot give is a
    usage error about ``--labels`` (exit status 2), other dataset errors exit 1."""
    from ..training.datasets import _LabelChoiceError, open_dataset

    try:
        return open_dataset(data, **options)
    except _LabelChoiceError as exc:
        fail(f"--labels: {exc}", 2)
    except EmotionKitError as exc:
        fail(str(exc))


def parse_labels(labels: str | None) -> list[str] | None:
    """``--labels a,b,c`` as a list (``None`` when not given); one label is a usage error
    (exit status 2)."""
    if not labels:
        return None
    names = [x.strip() for x in labels.split(",") if x.strip()]
    if len(names) < 2:
        fail(f"--labels {labels}: give two or more labels, comma-separated (with one, every "
             "answer is that label)", 2)
    return names


def check_split(dataset: Any, split: str | None) -> None:
    """A ``split`` option (``None``: not given) that names none of the dataset's splits is
    a usage error (exit status 2) with the dataset's own message; checked before any image
    is decoded. A split the dataset has but cannot read fails later, when it is loaded
    (exit status 1), as does a default split the dataset lacks."""
    if split is None or run_or_fail(dataset.split_name, split) is not None:
        return
    try:
        dataset.load(split)  # no such split: its error comes at once, nothing is decoded
    except EmotionKitError as exc:
        fail(str(exc), 2)
