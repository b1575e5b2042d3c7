"""``emotionkit summary``: per-face emotion shares of a video's results, and a timeline plot."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ._common import fail

_KEY_COLUMNS = ("path", "frame", "time", "face_id", "top_emotion")


@dataclass
class _Track:
    """One face of one video: its rows' times (seconds), top labels and probabilities."""

    path: str
    face_id: str
    times: list[float] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)


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
    labels, tracks = _read(results)
    stats = [_stats(t, labels) for t in tracks]
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
        _plot(tracks, labels, plot)
        click.echo(f"wrote {plot}", err=True)


def _read(path: Path) -> tuple[list[str], list[_Track]]:
    """Labels and the rows grouped by (video path, face id), in order of appearance."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            missing = [c for c in _KEY_COLUMNS if c not in header]
            if missing:
                fail(f"{path}: not a video results csv (no column {', '.join(missing)}); "
                     "write one with `emotionkit detect VIDEO --format csv`")
            labels = header[header.index("top_emotion") + 1:]
            tracks: dict[tuple[str, str], _Track] = {}
            for row in reader:
                key = (row["path"], row["face_id"])
                track = tracks.setdefault(key, _Track(*key))
                track.times.append(float(row["time"]))
                track.tops.append(row["top_emotion"])
                track.probs.append([float(row[k]) for k in labels])
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    except (ValueError, KeyError, TypeError, csv.Error) as exc:  # TypeError: a cut-off row
        fail(f"{path}: malformed results csv ({exc})")
    if not tracks:
        fail(f"{path}: holds no face rows")
    return labels, list(tracks.values())


def _stats(track: _Track, labels: list[str]) -> dict[str, Any]:
    n = len(track.times)
    return {
        "path": track.path,
        "face_id": int(track.face_id) if track.face_id.isdigit() else track.face_id,
        "frames": n,
        "start": round(min(track.times), 4),
        "end": round(max(track.times), 4),
        "share": {k: round(track.tops.count(k) / n, 4) for k in labels},
        "mean": {k: round(sum(p[i] for p in track.probs) / n, 4) for i, k in enumerate(labels)},
    }


def _plot(tracks: list[_Track], labels: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tracks), 1, figsize=(9, 2.2 * len(tracks) + 0.6),
                             sharex=True, squeeze=False)
    for ax, track in zip(axes[:, 0], tracks):
        for i, label in enumerate(labels):
            ax.plot(track.times, [p[i] for p in track.probs], label=label, linewidth=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"{Path(track.path).name}: face #{track.face_id}", fontsize=10)
    axes[-1, 0].set_xlabel("time (s)")
    # beside the first panel, not on it: the curves near 1.0 stay visible
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except (FileExistsError, NotADirectoryError):
        fail(f"{out}: cannot write the plot (a folder on its path is a file); choose "
             "another --plot path")
    except OSError as exc:
        fail(f"{out}: cannot write the plot ({exc.strerror}); choose another --plot path")
    except ValueError as exc:  # matplotlib: a file type it cannot write
        fail(f"{out}: cannot write the plot ({exc}); use a .png file name")
    finally:
        plt.close(fig)
