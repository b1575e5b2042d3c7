"""``emotionkit summary``: per-face emotion shares of a video's results, and a timeline plot."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from ._common import fail, run_or_fail

_MAX_PANELS = 30  # 220 pixels each; a long video's tracker can give hundreds of face ids


@click.command(short_help="Per-face emotion share over time of detect's video results.")
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG timeline: each emotion's probability over time, per face.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format on stdout.")
def summary(results: Path, plot: Path | None, fmt: str) -> None:
    """Summarise RESULTS.csv, written by `emotionkit detect VIDEO --format csv`.

    For each face id of each video: the number of frames it was seen in, its first and
    last time (seconds), the share of frames in which each emotion was the top one, and
    the mean probability of each emotion.

    \b
    Examples:
      emotionkit detect clip.mp4 --format csv > rows.csv
      emotionkit summary rows.csv --plot timeline.png
    """
    from ..summary import read_timelines

    timelines = run_or_fail(read_timelines, results)
    labels = timelines[0].labels
    stats = [t.summary() for t in timelines]
    if fmt == "json":
        click.echo(json.dumps(stats, indent=2))
    elif fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["path", "face_id", "frames", "start", "end",
                      *(f"share_{k}" for k in labels), *(f"mean_{k}" for k in labels)])
        for s in stats:
            out.writerow([s["path"], s["face_id"], s["frames"], s["start"], s["end"],
                          *s["share"].values(), *s["mean"].values()])
    else:
        for s in stats:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in
                               sorted(s["share"].items(), key=lambda kv: -kv[1]) if v > 0)
            click.echo(f"{s['path']}: face #{s['face_id']}: {s['frames']} frames, "
                       f"{s['start']:.2f}-{s['end']:.2f} s: {shares}")
    if plot is not None:
        _plot(timelines, plot)
        click.echo(f"wrote {plot}", err=True)


def _plot(timelines: list[Any], out: Path) -> None:
    """Plot ``timelines`` to ``out``: at most the ``_MAX_PANELS`` seen in the most frames
    (a note says so), in their order."""
    from ..summary import plot_timelines

    if len(timelines) > _MAX_PANELS:
        longest = sorted(range(len(timelines)), key=lambda i: -len(timelines[i].times))
        click.echo(f"note: plotted the {_MAX_PANELS} faces seen in the most frames, of "
                   f"{len(timelines)}", err=True)
        timelines = [timelines[i] for i in sorted(longest[:_MAX_PANELS])]
    try:
        plot_timelines(timelines, out)
    except (FileExistsError, NotADirectoryError):
        fail(f"{out}: cannot write the plot (a folder on its path is a file); choose "
             "another --plot path", 2)
    except OSError as exc:
        fail(f"{out}: cannot write the plot ({exc.strerror}); choose another --plot path", 2)
    except ValueError as exc:  # matplotlib: a file type it cannot write
        fail(f"{out}: cannot write the plot ({exc}); use a .png file name", 2)
