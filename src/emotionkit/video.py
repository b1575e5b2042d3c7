"""Video input and output: frames from a file or camera, per-frame tracked faces, and
annotated video files.

Frames are BGR ``uint8`` arrays (the ``cv2.VideoCapture`` convention); times are seconds
from the start of the video; boxes are ``(x, y, w, h)`` pixels.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .errors import EmotionKitError
from .tracking import IoUTracker, TrackedFace

if TYPE_CHECKING:
    from .recognizer import EmotionRecognizer

__all__ = ["VIDEO_SUFFIXES", "AnnotatedVideoWriter", "VideoError", "VideoFrame", "VideoInfo",
           "check_video_output", "detect_video", "is_video_source", "read_frames", "video_info"]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
"""File name endings treated as videos by the CLI."""

VideoSource = str | Path | int
"""A video file path, or a camera index (``0`` is the default camera)."""

_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
_MAX_SIDE = {"mp4v": 8191, "MJPG": 65500}  # pixels a side each codec can encode
_OTHER_TYPES = {"mp4v": ".avi or .mkv", "MJPG": ".mp4"}  # what to try when one fails


class VideoError(EmotionKitError, OSError):
    """A video could not be opened, or decoding stopped early (truncated or corrupt file)."""


@dataclass(frozen=True)
class VideoFrame:
    """The faces found in one video frame.

    Attributes:
        index: frame number in the video, from 0 (skipped frames are counted too).
        time: seconds since the video's first frame (from the file's timestamps; for a
            camera, the time since capture started).
        faces: the faces with their track ids (:class:`~emotionkit.tracking.TrackedFace`).
        image: the decoded BGR frame. Not compared by ``==``: two frames are equal when
            their index, time and faces are.
    """

    index: int
    time: float
    faces: list[TrackedFace]
    image: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate (frames/s; 0 if unknown), frame count (0 if unknown or a camera) and
    frame size in pixels of a video."""

    fps: float
    frame_count: int
    width: int
    height: int


def is_video_source(source: Any) -> bool:
    """True for an ``int`` camera index, a digit string like ``"0"`` that is not an
    existing file, or a path ending in one of :data:`VIDEO_SUFFIXES`."""
    if isinstance(source, int):
        return True
    text = str(source)
    return _is_camera(text) or Path(text).suffix.lower() in VIDEO_SUFFIXES


def _is_camera(text: str) -> bool:
    """A digit string is a camera index unless a file of that name exists."""
    return text.isdigit() and not Path(text).exists()


def _camera_index(source: VideoSource) -> int | None:
    """The camera ``source`` names (an ``int``, or a digit string that is not a file)."""
    if isinstance(source, int):
        return source
    return int(source) if isinstance(source, str) and _is_camera(source) else None


def _open(source: VideoSource) -> cv2.VideoCapture:
    camera = _camera_index(source)
    if camera is not None:
        cap = cv2.VideoCapture(camera)
        if not cap.isOpened():
            raise VideoError(f"camera {camera}: cannot open it; check the camera index")
        return cap
    path = Path(str(source))  # not a camera: a file path
    if not path.is_file():
        raise VideoError(f"{path}: no such video file; check the path")
    _check_utf8_name(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: not a readable video (unknown format, truncated or corrupt)")
    return cap


def _info(cap: cv2.VideoCapture, source: VideoSource) -> VideoInfo:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = 0 if _camera_index(source) is not None else max(
        0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    return VideoInfo(fps if fps > 0 else 0.0, count, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))


def video_info(source: VideoSource) -> VideoInfo:
    """Frame rate, frame count and size of a video file or camera (opens and closes it).

    Raises :class:`VideoError` if it cannot be opened."""
    cap = _open(source)
    try:
        return _info(cap, source)
    finally:
        cap.release()


def read_frames(source: VideoSource, every_n: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, time in seconds, BGR frame)`` for every ``every_n``-th frame of a video.

    The time of a file's frame is its timestamp in the file (for a constant frame rate,
    ``index / fps``; variable-rate files, e.g. phone or browser recordings, keep their
    real times); a camera's is the time since reading started. Skipped frames are grabbed
    but not decoded. Raises :class:`VideoError` at the call when the video cannot be
    opened, or -- after yielding the frames it could read -- when a file stops decoding
    well before the end its header gives, or when the video gives no frame at all. The
    video is released when the frames run out or the iterator is closed.

    Raises:
        TypeError: ``every_n`` is not an int.
        ValueError: ``every_n`` is below 1.
    """
    try:
        every_n = operator.index(every_n)
    except TypeError:
        raise TypeError(f"every_n must be an int, got {every_n!r}") from None
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    return _frames(_open(source), source, every_n)


def _frames(cap: cv2.VideoCapture, source: VideoSource,
            every_n: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """:func:`read_frames`'s frames from the opened ``cap``, released at the end."""
    camera = _camera_index(source) is not None
    start = time.monotonic()
    try:
        info = _info(cap, source)
        index, last, offset = 0, 0.0, 0.0
        while True:
            if index % every_n:
                ok, frame = cap.grab(), None
            else:
                ok, frame = cap.read()
            if not ok:
                break
            last = time.monotonic() - start if camera else _frame_time(cap, index, info.fps)
            if index == 0 and not camera:
                offset = _start_offset(cap, info.fps)
            if frame is not None:
                yield index, last, frame
            index += 1
        if not camera and _stopped_early(index, offset + last, info):
            raise VideoError(f"{source}: decoding stopped after {index} of {info.frame_count} "
                             "frames (file truncated or corrupt)")
        if index == 0 and camera:
            raise VideoError(f"camera {source}: gave no frame; check that no other program "
                             "uses it")
        if index == 0:
            raise VideoError(f"{source}: holds no video frames (an empty recording); check "
                             "the file")
    finally:
        cap.release()


def _frame_time(cap: cv2.VideoCapture, index: int, fps: float) -> float:
    """The timestamp of the frame just read (seconds), else ``index / fps``."""
    msec = float(cap.get(cv2.CAP_PROP_POS_MSEC))
    if msec > 0 or index == 0 or fps <= 0:
        return max(msec, 0.0) / 1000.0
    return index / fps


def _start_offset(cap: cv2.VideoCapture, fps: float) -> float:
    """Seconds from the container's time 0 to the first frame (e.g. a clip cut out of a
    longer ``.mkv`` without re-timing): OpenCV's ``CAP_PROP_PTS`` of the first frame, which
    FFmpeg gives in frame intervals; 0 where the backend does not report it. Frame times
    count from the first frame, the header's duration from time 0. OpenCV 4.10 and older
    have no ``CAP_PROP_PTS``: 0 there."""
    prop = getattr(cv2, "CAP_PROP_PTS", None)
    if prop is None:
        return 0.0
    pts = float(cap.get(prop))
    return pts / fps if pts > 0 and fps > 0 else 0.0


def _stopped_early(frames: int, last_time: float, info: VideoInfo) -> bool:
    """Whether a file ended well before its header's length. ``last_time`` is the last
    frame's time from the container's time 0 (seconds). The header's frame count is an
    estimate for variable-rate files (duration x nominal fps), so a file that decoded
    fewer frames still counts as whole if its last frame is within two frame intervals
    of the header's duration."""
    if not info.frame_count or frames >= info.frame_count:
        return False
    if info.fps <= 0:
        return True
    return last_time < (info.frame_count - 2) / info.fps


def detect_video(recognizer: EmotionRecognizer, source: VideoSource, *, every_n: int = 1,
                 smoothing: float = 0.0, iou_threshold: float = 0.3,
                 max_age: int = 5) -> Iterator[VideoFrame]:
    """Tracked faces with emotions in every ``every_n``-th frame of ``source``.

    See :meth:`emotionkit.EmotionRecognizer.detect_video` for the arguments; bad
    arguments and a video that cannot be opened raise at the call.
    """
    tracker = IoUTracker(iou_threshold=iou_threshold, max_age=max_age, smoothing=smoothing)
    return _tracked(recognizer, tracker, read_frames(source, every_n))


def _tracked(recognizer: EmotionRecognizer, tracker: IoUTracker,
             frames: Iterator[tuple[int, float, np.ndarray]]) -> Iterator[VideoFrame]:
    for index, seconds, frame in frames:
        faces = recognizer.detect_batch([frame])[0]
        yield VideoFrame(index, seconds, tracker.update(faces), frame)


def _check_utf8_name(path: Path) -> None:
    """OpenCV's video classes crash the process on a file name that is not valid UTF-8
    (e.g. Latin-1 bytes from an old archive); refuse such a name with a clear error."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise VideoError(f"{path!s}: the file name is not valid UTF-8, which OpenCV cannot "
                         "open; rename the file") from None


def check_video_output(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path` if :class:`AnnotatedVideoWriter` can write a
    video there: a file name ending in ``.mp4``, ``.m4v``, ``.mov``, ``.avi`` or ``.mkv``
    that is not an existing directory. Raises :class:`VideoError` otherwise."""
    path = Path(path)
    _check_utf8_name(path)
    if path.is_dir():
        raise VideoError(f"{path}: is a directory; name the output video file instead, "
                         f"e.g. {path / 'annotated.mp4'}")
    if path.suffix.lower() not in _FOURCC:
        raise VideoError(f"{path}: cannot write this video type; use "
                         f"{', '.join(sorted(_FOURCC))}")
    return path


class AnnotatedVideoWriter:
    """Writes frames with each face's box, ``#id label probability`` drawn, to a video file.

    The codec follows the file name: ``.mp4``/``.m4v``/``.mov`` use ``mp4v``, ``.avi`` and
    ``.mkv`` use Motion JPEG. The folder is created at once (:class:`VideoError` if it
    cannot be); the writer opens on the first frame (its size sets the video
    size). Use it as a context manager, or call :meth:`close`: a closed file is playable
    even if the run was interrupted.

    Args:
        path: output video file.
        fps: frames per second of the output (the input's rate divided by ``every_n``).
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = check_video_output(path)
        suffix = self.path.suffix.lower()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoError(f"{self.path}: cannot create its folder {self.path.parent} "
                             f"({exc.strerror}); choose another output path") from exc
        self.fps = fps if fps > 0 else 25.0
        self._fourcc = _FOURCC[suffix]
        self._writer: cv2.VideoWriter | None = None
        self._size = (0, 0)  # (width, height) of the video, set by the first frame
        self.frames = 0

    def _open(self, width: int, height: int) -> cv2.VideoWriter:
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self._fourcc),
                                 self.fps, (width, height))
        if writer.isOpened():
            return writer
        if not os.access(self.path.parent, os.W_OK):
            raise VideoError(f"{self.path}: cannot write in {self.path.parent}; choose "
                             "another folder")
        cannot = (f"{self.path}: OpenCV cannot encode {width}x{height} frames as "
                  f"{self.path.suffix} ({self._fourcc})")
        limit = _MAX_SIDE[self._fourcc]
        if max(width, height) <= limit:
            raise VideoError(f"{cannot}; try {_OTHER_TYPES[self._fourcc]}, or frames of "
                             "another size")
        wider = (f".avi or .mkv (at most {_MAX_SIDE['MJPG']}), or "
                 if self._fourcc == "mp4v" else "")
        raise VideoError(f"{cannot}; it takes at most {limit} pixels a side: use {wider}a "
                         "smaller video")

    def write(self, frame_bgr: np.ndarray, faces: Sequence[TrackedFace]) -> None:
        """Draw ``faces`` onto a copy of ``frame_bgr`` and append it to the video.

        Raises:
            VideoError: the file cannot be written (at the first frame).
            ValueError: ``frame_bgr`` is not the size of the first frame.
        """
        from .annotate import draw_faces

        height, width = frame_bgr.shape[:2]
        if self._writer is None:
            self._writer = self._open(width, height)
            self._size = (width, height)
        elif (width, height) != self._size:
            raise ValueError(f"{self.path}: a frame of {width}x{height} pixels, but the video "
                             f"is {self._size[0]}x{self._size[1]}; write frames of one size")
        out = draw_faces(frame_bgr, faces)
        for face in faces:
            x, y, _, h = (round(v) for v in face.box)  # a plugin detector's may be floats
            cv2.putText(out, f"#{face.face_id}", (x + 2, y + h - 4), cv2.FONT_HERSHEY_SIMPLEX,
                        max(0.4, h / 200), (0, 200, 0), max(1, h // 100), cv2.LINE_AA)
        self._writer.write(out)
        self.frames += 1

    def close(self) -> None:
        """Finish the file (safe to call twice)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
