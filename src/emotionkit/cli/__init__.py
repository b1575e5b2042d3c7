"""The ``emotionkit`` command line (thin: each command parses options, calls the library
and prints). Subcommands are imported only when they run, so ``emotionkit --help`` does not
import TensorFlow."""

from __future__ import annotations

import codecs
import contextlib
import importlib
import os
import sys
import warnings
from typing import Any

import click

from .._version import __version__

__all__ = ["main", "run"]

# name -> "module:command" (relative to this package); loaded on first use.
_COMMANDS = {
    "detect": ".detect:detect",
    "evaluate": ".evaluate:evaluate",
    "models": ".models:models",
    "summary": ".summary:summary",
    "train": ".train:train",
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked (see click's docs,
    "Lazily Loading Subcommands")."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            module, _, attr = self.lazy_subcommands[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module, __name__), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; Ctrl-C before a command handles it itself (e.g. while TensorFlow
        loads) is a note and exit code 130, as for an interrupted run, not click's
        "Aborted!" and 1."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# Short help shown by ``emotionkit --help`` without importing each command's module.
_SHORT_HELP = {
    "detect": "Find faces in images or videos and classify their emotions.",
    "evaluate": "Accuracy, macro-F1 and confusion matrix of a classifier on a dataset.",
    "models": "List, download, inspect and publish hub models.",
    "summary": "Per-face emotion share over time of detect's video results.",
    "train": "Train an emotion classifier on a folder dataset or a FER2013 csv.",
}


@click.group(cls=_LazyGroup, lazy_subcommands=_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emotionkit")
def main() -> None:
    """Facial emotion recognition: detect faces, classify emotions, train and evaluate
    models.

    Native start-up logging of TensorFlow and MediaPipe is hidden; set
    EMOTIONKIT_NATIVE_LOGS=1 to see it.

    Exit codes: 0 done; 1 an input or the work failed (a batch goes on past a bad
    input); 2 a usage error, an unknown detector or classifier or an unloadable model;
    130 interrupted (Ctrl-C).
    """


def run() -> None:
    """Console-script entry point: hides native C++ logging and Pillow's warning for large
    photos, then runs :func:`main`.

    The redirect is done here, not in :func:`main`, so that calling ``main`` in-process
    (e.g. with click's ``CliRunner``) leaves the caller's stderr alone. Ctrl-C meanwhile
    is the note and exit code 130 that :func:`main` gives for Ctrl-C later.
    """
    try:
        if not _native_logs_wanted():
            _hide_native_stderr()
        _set_stdout_errors()
        from PIL import Image
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    # photos of 90-180 megapixels load (larger ones are refused with an error line): no
    # warning about them; the library leaves this to its callers' filters
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    main()


def _native_logs_wanted() -> bool:
    """Whether ``EMOTIONKIT_NATIVE_LOGS`` asks for the native logs: set, and not ``0``,
    ``false``, ``no`` or ``off``."""
    value = os.environ.get("EMOTIONKIT_NATIVE_LOGS", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _set_stdout_errors() -> None:
    """Results name files as given. On a UTF-8 stdout a name that is not UTF-8 is written
    back as its bytes; on another encoding (output redirected on Windows: the ANSI code
    page, e.g. cp1252) characters it cannot hold are written as ``\\uXXXX`` escapes rather
    than stopping the run with a ``UnicodeEncodeError``."""
    try:
        utf8 = codecs.lookup(sys.stdout.encoding).name == "utf-8"
    except (AttributeError, LookupError, TypeError):  # no stream, or an unknown encoding
        utf8 = False
    with contextlib.suppress(AttributeError, ValueError):  # not a reconfigurable stream
        sys.stdout.reconfigure(  # type: ignore[union-attr]
            errors="surrogateescape" if utf8 else "backslashreplace")


def _hide_native_stderr() -> None:
    """Send file descriptor 2 (where TensorFlow, MediaPipe and LiteRT write their C++ logs)
    to the null device, and keep Python's ``sys.stderr`` on the original stream."""
    try:
        sys.stderr.flush()
        original = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):  # no real fd 2 (e.g. some test runners)
        return
