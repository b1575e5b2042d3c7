"""Per-face summaries of video results: how long each tracked face was seen, the share of
its frames in which each emotion was the top one, its mean probabilities, and a timeline
plot.

A :class:`FaceTimeline` holds one face of one video; make them from
:meth:`EmotionRecognizer.detect_video <emotionkit.EmotionRecognizer.detect_video>`'s frames
with :func:`timelines_from_frames`, or from the CSV that ``emotionkit detect VIDEO --format
csv`` writes with :func:`read_timelines`. Times are seconds from the start of the video.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._plotting import figure
from .errors import EmotionKitError

if TYPE_CHECKING:
    from .video import VideoFrame

__all__ = ["FaceTimeline", "ResultsFileError", "plot_timelines", "read_timelines",
           "timelines_from_frames"]

_KEY_COLUMNS = ("path", "frame", "time", "face_id", "top_emotion")


class ResultsFileError(EmotionKitError, ValueError):
    """A results CSV could not be read, or is not ``detect``'s video CSV."""


@dataclass
class FaceTimeline:
    """One tracked face of one video, frame by frame.

    Attributes:
        path: the video (as written in the results).
        face_id: the tracker's id of the face (an int; a string where a CSV had another
            value).
        labels: the emotion labels, in the order of each ``probs`` row.
        times: per processed frame the face was seen in, its time in seconds.
        tops: per frame, the top emotion.
        probs: per frame, the probability of each label.
    """

    path: str
    face_id: int | str
    labels: tuple[str, ...]
    times: list[float] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    probs: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, time: float, top: str, probs: Sequence[float]) -> None:
        """Append one frame: its time (seconds), top emotion and probabilities (``labels``
        order)."""
        self.times.append(float(time))
        self.tops.append(top)
        self.probs.append(tuple(float(p) for p in probs))

    def summary(self) -> dict[str, Any]:
        """``path``, ``face_id``, ``frames`` (count), ``start`` and ``end`` (seconds),
        ``share`` (label -> fraction of frames it was the top emotion) and ``mean`` (label ->
        mean probability); numbers rounded to 4 decimals."""
        n = len(self.times)
        if n == 0:
            raise ValueError(f"{self.path}: face {self.face_id} has no frames")
        return {
            "path": self.path,
            "face_id": self.face_id,
            "frames": n,
            "start": round(min(self.times), 4),
            "end": round(max(self.times), 4),
            "share": {k: round(self.tops.count(k) / n, 4) for k in self.labels},
            "mean": {k: round(sum(p[i] for p in self.probs) / n, 4)
                     for i, k in enumerate(self.labels)},
        }


def timelines_from_frames(frames: Iterable[VideoFrame], path: str = "") -> list[FaceTimeline]:
    """One timeline per face id of ``frames`` (from ``detect_video``), in order of first
    appearance; ``path`` names the video in the results. Probabilities are the faces'
    ``emotions`` (smoothed where the video was read with smoothing)."""
    timelines: dict[int, FaceTimeline] = {}
    for frame in frames:
        for face in frame.faces:
            timeline = timelines.get(face.face_id)
            if timeline is None:
                timeline = timelines[face.face_id] = FaceTimeline(
                    path, face.face_id, tuple(face.emotions))
            timeline.add(frame.time, face.top_emotion,
                         [face.emotions[k] for k in timeline.labels])
    return list(timelines.values())


def read_timelines(path: str | Path) -> list[FaceTimeline]:
    """The timelines in a CSV written by ``emotionkit detect VIDEO --format csv``, one per
    (video, face id), in order of first appearance. A UTF-8 byte-order mark and spaces
    around the column names and values (a spreadsheet's re-save) are ignored, and so is the
    order of the rows (e.g. sorted by face id).

    A video given twice to one ``detect`` run has its rows twice: where a row repeats the
    first (face id, frame) of its video, a second run of that video starts, and its faces
    get timelines of their own (same path and face id, after the first run's).

    Raises:
        ResultsFileError: the file cannot be read, is not a video results CSV (e.g. no
            probability columns after ``top_emotion``), has a malformed row (cut off by a
            killed run; a frame that is not a whole number >= 0; a time that is not a
            number of seconds >= 0; a top emotion that is not one of the label columns; a
            probability outside 0..1; the same video, face id and frame twice in one run),
            or holds no face rows. The message names the file and the line.
    """
    path = Path(path)
    try:
        # surrogateescape: video names that are not UTF-8, as detect writes them
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            labels = _labels(path, header)
            runs = _Runs(labels)
            for row in reader:
                try:
                    runs.add(row, reader.line_num)
                except _RowError as exc:
                    raise ResultsFileError(f"{path}: malformed results csv (line "
                                           f"{reader.line_num}: {exc})") from None
    except ResultsFileError:
        raise  # ours, raised above (a ValueError too)
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror})") from exc
    except (ValueError, csv.Error) as exc:
        raise ResultsFileError(f"{path}: malformed results csv ({exc})") from exc
    if not runs.timelines:
        raise ResultsFileError(f"{path}: holds no face rows")
    return list(runs.timelines.values())


def _labels(path: Path, header: list[str]) -> tuple[str, ...]:
    """The label columns of a results CSV's ``header``: those after ``top_emotion``."""
    missing = [c for c in _KEY_COLUMNS if c not in header]
    if missing:
        raise ResultsFileError(
            f"{path}: not a video results csv (no column {', '.join(missing)}); "
            "write one with `emotionkit detect VIDEO --format csv`")
    labels = tuple(header[header.index("top_emotion") + 1:])
    if not labels or "" in labels or len(set(labels)) < len(labels):
        raise ResultsFileError(
            f"{path}: not a video results csv (the columns after top_emotion must be the "
            f"labels' probabilities, named once each; found {', '.join(labels) or 'none'}); "
            "write one with `emotionkit detect VIDEO --format csv`")
    return labels


class _RowError(ValueError):
    """What is wrong with one row of a results CSV (the caller adds file and line)."""


class _Runs:
    """Timelines of a results CSV's rows, by (video, run of that video, face id)."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.timelines: dict[tuple[str, int, str], FaceTimeline] = {}
        self._first: dict[str, tuple[str, int]] = {}  # video -> its first (face id, frame)
        self._run: dict[str, int] = {}  # video -> its current run
        self._seen: dict[tuple[str, int, str, int], int] = {}  # row key -> line

    def add(self, row: dict[str | Any, Any], line: int) -> None:
        """Add one CSV row (read on ``line``); raises :class:`_RowError` if malformed."""
        if None in row.values():  # cut off, e.g. by a killed run
            given = sum(value is not None for value in row.values())
            raise _RowError(f"{given} of {len(row)} values")
        if None in row:  # DictReader keeps cells beyond the header under the key None
            raise _RowError(f"{len(row) - 1 + len(row[None])} values, the header has "
                            f"{len(row) - 1}")
        video, face = row["path"], row["face_id"].strip()
        if not face:
            raise _RowError("no face_id")
        frame = _whole(row["frame"], "frame")
        time = _number(row["time"], "time", "a number of seconds >= 0", 0.0, math.inf)
        top = row["top_emotion"].strip()
        if top not in self.labels:
            raise _RowError(f"top_emotion {top!r} is not one of the label columns "
                            f"({', '.join(self.labels)})")
        probs = [_number(row[k], k, "a probability from 0 to 1", 0.0, 1.0)
                 for k in self.labels]
        run = self._run.setdefault(video, 0)
        if self._first.setdefault(video, (face, frame)) == (face, frame) and \
                (video, run, face, frame) in self._seen:
            run = self._run[video] = run + 1  # the video again, e.g. given twice to detect
        earlier = self._seen.setdefault((video, run, face, frame), line)
        if earlier != line:
            raise _RowError(f"face {face} of {video} at frame {frame} again (first on "
                            f"line {earlier}); remove the repeated row")
        timeline = self.timelines.get((video, run, face))
        if timeline is None:
            timeline = self.timelines[video, run, face] = FaceTimeline(
                video, int(face) if face.isascii() and face.isdigit() else face, self.labels)
        timeline.add(time, top, probs)


def _whole(text: str, column: str) -> int:
    """``text`` as a whole number >= 0; :class:`_RowError` naming ``column`` if not."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise _RowError(f"{column} {text!r} is not a whole number >= 0")
    return int(text)


def _number(text: str, column: str, what: str, low: float, high: float) -> float:
    """``text`` as a number from ``low`` to ``high``; :class:`_RowError` saying it should
    be ``what`` if not."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise _RowError(f"{column} {text.strip()!r} is not {what}")
    return value


def plot_timelines(timelines: Sequence[FaceTimeline], out: str | Path) -> None:
    """Write a plot (PNG, or another type matplotlib writes, by ``out``'s suffix) with one
    panel per timeline: each emotion's probability over time. Missing folders of ``out``
    are created.

    Raises:
        ValueError: ``timelines`` is empty, or matplotlib cannot write ``out``'s file type.
        OSError: ``out`` cannot be written.
    """
    if not timelines:
        raise ValueError("no timelines to plot")
    out = Path(out)
    fig = figure((9, 2.2 * len(timelines) + 0.6))
    axes = fig.subplots(len(timelines), 1, sharex=True, squeeze=False)
    for ax, timeline in zip(axes[:, 0], timelines):
        for i, label in enumerate(timeline.labels):
            ax.plot(timeline.times, [p[i] for p in timeline.probs], label=label,
                    linewidth=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"{Path(timeline.path).name}: face #{timeline.face_id}", fontsize=10)
    axes[-1, 0].set_xlabel("time (s)")
    # beside the first panel, not on it: the curves near 1.0 stay visible
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
