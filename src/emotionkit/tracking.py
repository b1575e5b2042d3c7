"""Face tracking across video frames: :class:`IoUTracker` gives each face a stable id and
optionally smooths its emotion probabilities over time (exponential moving average)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .results import Box, Face

__all__ = ["IoUTracker", "TrackedFace", "iou"]


@dataclass(frozen=True)
class TrackedFace(Face):
    """A :class:`~emotionkit.results.Face` in a video, with the id of its track.

    Attributes:
        face_id: an int that stays the same while the tracker follows this face; ids start
            at 0 and are never reused within one video.
        raw_emotions: this frame's probabilities before smoothing (``emotions`` holds the
            smoothed ones; both are equal when smoothing is off).
    """

    face_id: int = 0
    raw_emotions: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Like :meth:`Face.to_dict`, with ``face_id`` first."""
        return {"face_id": self.face_id, **super().to_dict()}


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes in pixels (0 if disjoint)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    face_id: int
    box: Box
    emotions: dict[str, float]
    missed: int = 0


class IoUTracker:
    """Greedy IoU matching of each frame's faces to the faces of earlier frames.

    Args:
        iou_threshold: least IoU between a face's box and a track's last box for the face
            to continue that track.
        max_age: how many consecutive processed frames a track may go unmatched (the face
            missed by the detector or hidden) before it ends; a face seen again later gets
            a new id.
        smoothing: weight of the past in the exponential moving average of a track's
            probabilities, in ``[0, 1)``: ``smoothed = smoothing * previous + (1 -
            smoothing) * current``. 0 turns smoothing off; 0.5-0.8 stops labels from
            flickering between frames.

    Call :meth:`update` once per processed frame, in order.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 5,
                 smoothing: float = 0.0) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.smoothing = smoothing
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, faces: Sequence[Face]) -> list[TrackedFace]:
        """Match ``faces`` (one frame's detections) to tracks; returns them with ids, in the
        same order as ``faces``."""
        pairs = sorted(
            ((iou(t.box, f.box), ti, fi)
             for ti, t in enumerate(self._tracks) for fi, f in enumerate(faces)),
            reverse=True,
        )
        track_of: dict[int, _Track] = {}
        used: set[int] = set()
        for score, ti, fi in pairs:
            if score < self.iou_threshold:
                break
            if ti in used or fi in track_of:
                continue
            used.add(ti)
            track_of[fi] = self._tracks[ti]
        for ti, track in enumerate(self._tracks):
            track.missed = 0 if ti in used else track.missed + 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_age]
        return [self._follow(face, track_of.get(fi)) for fi, face in enumerate(faces)]

    def _follow(self, face: Face, track: _Track | None) -> TrackedFace:
        current = {k: float(v) for k, v in face.emotions.items()}
        if track is None:
            track = _Track(self._next_id, face.box, current)
            self._next_id += 1
            self._tracks.append(track)
        else:
            a = self.smoothing
            track.box = face.box
            track.emotions = {k: a * track.emotions.get(k, v) + (1 - a) * v
                              for k, v in current.items()}
        return TrackedFace(box=face.box, score=face.score, emotions=dict(track.emotions),
                           landmarks=face.landmarks, face_id=track.face_id,
                           raw_emotions=current)
