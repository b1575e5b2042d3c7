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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

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
    (video, face id): the videos in order of first appearance, each video's faces in order
    of first appearance, each face's frames in frame (time) order. A UTF-8 byte-order mark and
    spaces around the column names and values (a spreadsheet's re-save) are ignored, and so
    is the order of the rows (e.g. sorted by face id).

    A video given twice to one ``detect`` run has its rows twice, and its faces get
    timelines of their own per run (same path and face id, the first run's first). In
    detect's order a run starts where a row repeats the first (face id, frame) of its
    video; in another order, the n-th row of each face id and frame is in the n-th run.

    Raises:
        ResultsFileError: the file cannot be read, is not a video results CSV (e.g. no
            probability columns after ``top_emotion``), has a malformed row (cut off by a
            killed run; a frame that is not a whole number >= 0; a time that is not a
            number of seconds >= 0; a top emotion that is not one of the label columns; a
            probability outside 0..1; a video's face id and frame on more rows than its
            other face ids and frames, or, in rows that are not in detect's order, on
            fewer), or holds no face rows. The message names the file and the line.
    """
    path = Path(path)
    try:
        # surrogateescape: video names that are not UTF-8, as detect writes them
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            labels = _labels(path, header)
            rows = []
            for raw in reader:
                try:
                    rows.append(_row(raw, labels, reader.line_num))
                except _RowError as exc:
                    raise ResultsFileError(f"{path}: malformed results csv (line "
                                           f"{reader.line_num}: {exc})") from None
    except ResultsFileError:
        raise  # ours, raised above (a ValueError too)
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror})") from exc
    except (ValueError, csv.Error) as exc:
        raise ResultsFileError(f"{path}: malformed results csv ({exc})") from exc
    if not rows:
        raise ResultsFileError(f"{path}: holds no face rows")
    by_video: dict[str, list[_Row]] = {}
    for row in rows:
        by_video.setdefault(row.video, []).append(row)
    try:
        return [timeline for video_rows in by_video.values()
                for timeline in _video_timelines(video_rows, labels)]
    except _RowError as exc:
        raise ResultsFileError(f"{path}: malformed results csv (line {exc.line}: "
                               f"{exc})") from None


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
    """What is wrong with a row of a results CSV (the caller adds the file, and the line
    where ``line`` is 0)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


class _Row(NamedTuple):
    """One checked face row of a results CSV, read on ``line``."""

    line: int
    video: str
    face: str
    frame: int
    time: float
    top: str
    probs: tuple[float, ...]


def _row(row: dict[str | Any, Any], labels: tuple[str, ...], line: int) -> _Row:
    """One CSV row (read on ``line``) checked; :class:`_RowError` if malformed."""
    if None in row.values():  # cut off, e.g. by a killed run
        given = sum(value is not None for value in row.values())
        raise _RowError(f"{given} of {len(row)} values")
    if None in row:  # DictReader keeps cells beyond the header under the key None
        raise _RowError(f"{len(row) - 1 + len(row[None])} values, the header has "
                        f"{len(row) - 1}")
    face = row["face_id"].strip()
    if not face:
        raise _RowError("no face_id")
    frame = _whole(row["frame"], "frame")
    time = _number(row["time"], "time", "a number of seconds >= 0", 0.0, math.inf)
    top = row["top_emotion"].strip()
    if top not in labels:
        raise _RowError(f"top_emotion {top!r} is not one of the label columns "
                        f"({', '.join(labels)})")
    probs = tuple(_number(row[k], k, "a probability from 0 to 1", 0.0, 1.0) for k in labels)
    return _Row(line, row["path"], face, frame, time, top, probs)


def _video_timelines(rows: list[_Row], labels: tuple[str, ...]) -> list[FaceTimeline]:
    """The timelines of one video's ``rows`` (in file order): run by run, each run's faces
    in order of first appearance, each face's frames in frame (time) order."""
    runs = _runs_in_order(rows)
    counts = Counter((row.face, row.frame) for row in rows)
    tally = Counter(counts.values())
    # the times the video was given to detect: the usual count; a tie: the smaller, but
    # the larger where the rows are in detect's order (fewer because of a deleted row)
    given = max(tally, key=lambda n: (tally[n], n if runs is not None else -n))
    _check_repeats(rows, given)
    if runs is None:  # not in detect's order: the n-th row of a face and frame is run n
        short = next((row for row in rows if counts[row.face, row.frame] < given), None)
        if short is not None:
            raise _RowError(
                f"{_uneven(short, counts[short.face, short.frame], given)} (the video "
                f"given {given} times to detect, the rows re-ordered), so its runs cannot be "
                "told apart; keep the rows in detect's order or write them again with "
                "detect", short.line)
        seen: Counter[tuple[str, int]] = Counter()
        runs = []
        for row in rows:
            runs.append(seen[row.face, row.frame])
            seen[row.face, row.frame] += 1
    faces: dict[tuple[int, str], list[_Row]] = {}
    for run, row in sorted(zip(runs, rows), key=lambda pair: pair[0]):
        faces.setdefault((run, row.face), []).append(row)
    timelines = []
    for (_, face), face_rows in faces.items():
        timeline = FaceTimeline(rows[0].video, int(face) if face.isascii() and face.isdigit()
                                else face, labels)
        for row in sorted(face_rows, key=lambda r: r.frame):
            timeline.add(row.time, row.top, row.probs)
        timelines.append(timeline)
    return timelines


def _runs_in_order(rows: list[_Row]) -> list[int] | None:
    """The run of each of one video's ``rows`` where they are in detect's order (a run
    starts where the video's first face id and frame come again); ``None`` where a face
    id and frame comes twice within a run."""
    first = (rows[0].face, rows[0].frame)
    run, runs = 0, []
    seen: set[tuple[str, int]] = set()
    for row in rows:
        key = (row.face, row.frame)
        if key in seen:
            if key != first:
                return None
            run, seen = run + 1, set()
        seen.add(key)
        runs.append(run)
    return runs


def _check_repeats(rows: list[_Row], given: int) -> None:
    """:class:`_RowError` at the first row of one video's ``rows`` whose face id and frame
    comes more than ``given`` times (the times the video was given to detect)."""
    lines: dict[tuple[str, int], list[int]] = {}
    for row in rows:
        earlier = lines.setdefault((row.face, row.frame), [])
        if len(earlier) == given:
            if given == 1:
                raise _RowError(f"face {row.face} of {row.video} at frame {row.frame} again "
                                f"(first on line {earlier[0]}); remove the repeated row",
                                row.line)
            raise _RowError(_uneven(row, given + 1, given, earlier) + f" (the video given "
                            f"{given} times to detect); remove the repeated row", row.line)
        earlier.append(row.line)


def _uneven(row: _Row, count: int, given: int, earlier: list[int] | None = None) -> str:
    """That ``row``'s face id and frame is on ``count`` rows, its video's others on
    ``given`` each."""
    where = (f"also lines {', '.join(map(str, earlier))}" if earlier
             else f"line {row.line}")
    return (f"face {row.face} of {row.video} at frame {row.frame} on {count} "
            f"row{'s' if count != 1 else ''} ({where}), where its other rows are there "
            f"{given} times each")


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
    panel per timeline, 900 x 220 pixels: each emotion's probability over time. Missing
    folders of ``out`` are created. Names that are not UTF-8 are drawn with U+FFFD for the
    bytes that are not.

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
            ax.plot(timeline.times, [p[i] for p in timeline.probs], label=_shown(label),
                    linewidth=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(_shown(f"{Path(timeline.path).name}: face #{timeline.face_id}"),
                     fontsize=10)
    axes[-1, 0].set_xlabel("time (s)")
    # beside the first panel, not on it: the curves near 1.0 stay visible
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def _shown(text: str) -> str:
    """``text`` as matplotlib can draw it: bytes that were not UTF-8 (kept as surrogates
    when the CSV was read, e.g. a Latin-1 re-save) shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
