"""The command line as README.md and docs/cli.md describe it: every option documented, no
documented option or default that the commands lack, the README's example output, and
the promises of docs/cli.md's opening section (exit codes, output encoding, native logs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from emotionkit.cli import _COMMANDS, _SHORT_HELP, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_MD = (DOCS / "cli.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")

# where each command's options are described: docs/cli.md, and the page it sends the
# reader to for the long option lists of train, evaluate and models
OPTION_DOCS = {"": ["cli.md"], "detect": ["cli.md"], "summary": ["cli.md"],
               "train": ["cli.md", "training.md"], "evaluate": ["cli.md", "training.md"],
               "models": ["cli.md", "hub.md"]}
# options in README.md that are not emotionkit's: nox's benchmark session takes this one
NOT_EMOTIONKIT_OPTIONS = {"--with-fer"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMOTIONKIT_NATIVE_LOGS", "PYTHONIOENCODING", "PYTHONUTF8")}
    return {**env, **extra}


def _commands(command: click.Command = main,
              path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and subcommand with its path (``()`` is ``emotionkit`` itself)."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from _commands(sub, (*path, name))


def _option_names(command: click.Command) -> set[str]:
    return {name for param in command.params if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_every_option_in_help_is_documented() -> None:
    missing = []
    for path, command in _commands():
        pages = OPTION_DOCS[path[0] if path else ""]
        text = "\n".join((DOCS / page).read_text(encoding="utf-8") for page in pages)
        missing += [f"emotionkit {' '.join(path)} {name} (not in {', '.join(pages)})"
                    for name in sorted(_option_names(command)) if not _mentions(text, name)]
    assert missing == []


def test_options_in_readme_and_cli_md_exist() -> None:
    known = {name for _, command in _commands() for name in _option_names(command)}
    known |= {"--help", "-h"}
    for text in (README, CLI_MD):
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
        assert named - known - NOT_EMOTIONKIT_OPTIONS == set()


def test_command_lines_in_readme_and_cli_md_use_their_commands_options() -> None:
    """``emotionkit CMD ... --option`` in a code span or block: CMD has that option."""
    options = {path: _option_names(command) | {"--help", "-h"} for path, command in _commands()}
    spans = re.findall(r"`([^`\n]+)`", README + CLI_MD)
    spans += [line for block in re.findall(r"```console\n(.*?)```", README + CLI_MD, re.S)
              for line in block.splitlines()]
    wrong = []
    for span in spans:
        for match in re.finditer(r"emotionkit((?: [a-z][a-z-]*)*)(.*)", span):
            words = match.group(1).split()
            path: tuple[str, ...] = ()
            for word in words:  # the longest command path the words name
                if (*path, word) in options:
                    path = (*path, word)
            used = re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", match.group(2))
            wrong += [f"{span}: {name}" for name in used if name not in options[path]]
    assert wrong == []


def _cli_md_defaults() -> Iterator[tuple[str, str, str]]:
    """(command, option, default cell) of each option row of docs/cli.md's tables; the
    command is the one its section's heading names, else ``detect`` (whose sections on
    videos and large collections name none). Rows about one value of an option
    (``--format jsonl``) are left out."""
    command = "detect"
    for line in CLI_MD.splitlines():
        if line.startswith("#"):
            named = re.search(r"`emotionkit ([a-z-]+)", line)
            command = named.group(1) if named else "detect"
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        option = re.match(r"`(--[a-z][a-z0-9-]*)( [a-z]\w*)?", cells[0])
        if option and len(cells) >= 3 and not option.group(2):
            yield command, option.group(1), cells[1]


def test_defaults_in_cli_md_are_the_commands_defaults() -> None:
    ctx = click.Context(main)
    rows = list(_cli_md_defaults())
    assert len(rows) >= 10
    for name, option, cell in rows:
        command = main.get_command(ctx, name)
        assert command is not None, name
        default = next(p for p in command.params if option in p.opts).default
        if cell in ("", "stdout"):  # not given: no value (stdout for --output); click 8.3
            # marks "no default" with a sentinel object of its own
            assert default in (None, False) or not isinstance(default, (str, int, float)), \
                (name, option, default)
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            assert float(cell.strip("`")) == default, (name, option, cell)
        else:
            assert cell.strip("`") == default, (name, option, cell)


def test_readme_command_table_lists_the_commands() -> None:
    ctx = click.Context(main)
    in_help = set(main.list_commands(ctx))
    in_readme = set(re.findall(r"^\| `emotionkit ([a-z-]+)", README, re.M))
    assert in_readme == in_help == set(_COMMANDS) == set(_SHORT_HELP)
    models = main.get_command(ctx, "models")
    assert isinstance(models, click.Group)
    listed = re.search(r"`emotionkit models ([a-z|\\-]+)`", README)
    assert listed is not None
    assert set(listed.group(1).replace("\\", "").split("|")) == set(models.list_commands(ctx))
    for name in sorted(in_help):
        # emotionkit --help shows _SHORT_HELP (no import); a command's own short help, where
        # it has one, must say the same
        command = main.get_command(ctx, name)
        assert command is not None
        assert command.short_help in (None, _SHORT_HELP[name]), name


def test_usage_errors_and_bad_inputs_have_the_documented_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["--no-such-option"], ["no-such-command"], ["detect"],
                 ["detect", "x.jpg", "--format", "xml"], ["summary"],
                 ["evaluate", str(tmp_path / "missing")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and "Error: " in result.output
    not_results = tmp_path / "notes.csv"
    not_results.write_text("a,b\n1,2\n")
    result = runner.invoke(main, ["summary", str(not_results)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {not_results}: not a video results csv")


def test_readme_example_prints_what_the_readme_shows() -> None:
    shown = re.search(r"^`(examples/astronaut\.jpg: face 0 .*)`\.$", README, re.M)
    assert shown is not None
    res = subprocess.run([sys.executable, "-m", "emotionkit", "detect", "examples/astronaut.jpg"],
                         cwd=ROOT, capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout == shown.group(1) + "\n"


def test_names_stdout_cannot_encode_are_escaped_not_a_traceback(tmp_path: Path) -> None:
    """Output redirected to a file on Windows is in the ANSI code page (cp1252): a Japanese
    file name in the table or csv stopped the run with a UnicodeEncodeError traceback."""
    photo = tmp_path / "宇宙飛行士.jpg"
    shutil.copy(ROOT / "examples" / "astronaut.jpg", photo)
    for fmt in ("table", "csv"):
        res = subprocess.run([sys.executable, "-m", "emotionkit", "detect", "--format", fmt,
                              str(photo)], capture_output=True, env=_env(PYTHONIOENCODING="cp1252"))
        assert res.returncode == 0, res.stderr.decode("utf-8", "replace")
        out = res.stdout.decode("cp1252")
        escaped = str(photo).encode("cp1252", "backslashreplace").decode("cp1252")
        assert escaped.endswith(r"\u5b87\u5b99\u98db\u884c\u58eb.jpg")
        assert (f"{escaped}: face 0 at (177, 82, 96, 96)" if fmt == "table"
                else f"{escaped},0,177,82,96,96,") in out


@pytest.mark.parametrize(("value", "shown"), [("1", True), ("yes", True), ("0", False),
                                              ("", False), ("false", False)])
def test_native_logs_shown_only_when_asked_for(value: str, shown: bool) -> None:
    """docs/cli.md: EMOTIONKIT_NATIVE_LOGS=1 shows the C++ logs written to file descriptor
    2; any other value (0 included) showed them too."""
    code = ("import os, sys\n"
            "from emotionkit.cli import run\n"
            "sys.argv = ['emotionkit', '--version']\n"
            "try:\n    run()\n"
            "except SystemExit:\n    pass\n"
            "os.write(2, b'a native log line\\n')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(EMOTIONKIT_NATIVE_LOGS=value), check=True)
    assert res.stdout.startswith("emotionkit, version")
    assert ("a native log line" in res.stderr) is shown


def test_draw_faces_colours_are_the_documented_ones() -> None:
    """draw_faces' docstring: green boxes (BGR (0, 200, 0)) with the label on a green band
    above the box, white text; the input is left as it was."""
    import cv2
    import numpy as np

    from emotionkit import Face
    from emotionkit.annotate import draw_faces

    photo = cv2.imread(str(ROOT / "examples" / "astronaut.jpg"))
    before = photo.copy()
    face = Face((177, 82, 96, 96), 0.92, {"happy": 0.91, "neutral": 0.09})
    out = draw_faces(photo, [face])
    assert np.array_equal(photo, before) and out.shape == photo.shape
    assert out[82 + 48, 177].tolist() == [0, 200, 0]  # the box's left edge
    band = out[60:80, 180:200].reshape(-1, 3).tolist()  # the label above the box
    assert [0, 200, 0] in band and [255, 255, 255] in band


def test_every_option_has_help_and_short_help_is_whole() -> None:
    """``--batch-size``, ``--weight-decay``, ``--label-smoothing`` and ``--seed`` of
    ``train`` had no help text, and ``emotionkit models --help`` cut ``download``'s line
    to "Download NAME..."."""
    bare = [f"emotionkit {' '.join(path)} {param.opts[0]}" for path, command in _commands()
            for param in command.params
            if isinstance(param, click.Option) and not param.help and not param.hidden
            and param.opts[0] not in ("--help", "--version")]
    assert bare == []
    cut = [" ".join(path) for path, command in _commands() if path
           and command.get_short_help_str(limit=200).endswith("...")]
    assert cut == []


def test_quiet_and_classifier_have_the_same_short_names_everywhere() -> None:
    """``detect`` has ``-q`` and ``-c``; ``train --quiet`` and ``evaluate --classifier``
    lacked them."""
    short = {"--quiet": "-q", "--classifier": "-c"}
    missing = [f"emotionkit {' '.join(path)} {long}" for path, command in _commands()
               for param in command.params if isinstance(param, click.Option)
               for long, name in short.items() if long in param.opts and name not in param.opts]
    assert missing == []
