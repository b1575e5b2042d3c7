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
    around the column names, face ids and top emotions (a spreadsheet's re-save) are
    ignored.

    Raises:
        ResultsFileError: the file cannot be read, is not a video results CSV, has a
            malformed row (e.g. cut off by a killed run), or holds no face rows.
    """
    path = Path(path)
    try:
        # surrogateescape: video names that are not UTF-8, as detect writes them
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in _KEY_COLUMNS if c not in header]
            if missing:
                raise ResultsFileError(
                    f"{path}: not a video results csv (no column {', '.join(missing)}); "
                    "write one with `emotionkit detect VIDEO --format csv`")
            labels = tuple(header[header.index("top_emotion") + 1:])
            timelines: dict[tuple[str, str], FaceTimeline] = {}
            for row in reader:
                if None in row.values():  # cut off, e.g. by a killed run
                    given = sum(value is not None for value in row.values())
                    raise ResultsFileError(f"{path}: malformed results csv (line "
                                           f"{reader.line_num} has {given} of {len(header)} "
                                           "values)")
                key = (row["path"], row["face_id"].strip())
                timeline = timelines.get(key)
                if timeline is None:
                    face_id = int(key[1]) if key[1].isdigit() else key[1]
                    timeline = timelines[key] = FaceTimeline(key[0], face_id, labels)
                timeline.add(float(row["time"]), row["top_emotion"].strip(),
                             [float(row[k]) for k in labels])
    except ResultsFileError:
        raise  # ours, raised above (a ValueError too)
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError, csv.Error) as exc:
        raise ResultsFileError(f"{path}: malformed results csv ({exc})") from exc
    if not timelines:
        raise ResultsFileError(f"{path}: holds no face rows")
    return list(timelines.values())


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
