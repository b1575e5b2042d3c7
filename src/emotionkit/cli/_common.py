"""Helpers shared by CLI commands: one-line errors and building a recognizer."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ..errors import EmotionKitError

__all__ = ["fail", "report", "run_or_fail"]


class CLIError(click.ClickException):
    """A one-line ``error: ...`` on stderr and a non-zero exit, no traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Stop the command with ``error: message`` on stderr."""
    raise CLIError(message, exit_code)


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
