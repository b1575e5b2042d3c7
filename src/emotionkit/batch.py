"""Large collections of images: decode and detect in a process pool, classify in batches.

:func:`iter_detect_paths` is what ``emotionkit detect DIR --workers N`` runs::

    from emotionkit.batch import iter_detect_paths

    for result in iter_detect_paths(paths, detector="mediapipe", classifier="fer-cnn",
                                    workers=2):
        if result.error:
            print(result.path, "failed:", result.error)
        else:
            print(result.path, [face.top_emotion for face in result.faces])

With ``workers=1`` everything runs in this process. With ``workers=N > 1``, N worker
processes (``spawn`` start method) each build their own detector once, then decode images,
detect faces and cut the face crops; this process classifies the crops of ``chunk_size``
images at a time with one classifier. Results come back in input order and are the same
for any number of workers.
"""

from __future__ import annotations

import collections
import multiprocessing
import pickle
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .io import crop, load_image
from .results import Detection, Face

__all__ = ["PathResult", "iter_detect_paths"]


@dataclass(frozen=True)
class PathResult:
    """Faces found in one input image, or why it failed.

    Attributes:
        path: the input, as given.
        faces: the faces with their emotions (``[]`` for none, and on error).
        error: a one-line message when the image could not be loaded or processed, else
            ``None``.
        image: the decoded BGR image when ``keep_images=True`` was asked for, else ``None``;
            not compared by ``==`` (results are equal when path, faces and error are).
    """

    path: Any
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    image: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _Detected:
    """A worker's answer for one path: detections and crops, or an error."""

    detections: list[Detection]
    crops: list[np.ndarray]
    error: str | None = None
    image: np.ndarray | None = None


# The detector of this worker process, built once by :func:`_init_worker`.
_worker_state: dict[str, Any] = {}


def _init_worker(detector: Any, margin: float, keep_images: bool) -> None:
    from .registry import resolve_detector

    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # N workers share the cores: OpenCV's own thread pool in each would oversubscribe them.
    import cv2

    cv2.setNumThreads(1)
    _worker_state.update(detector=resolve_detector(detector), margin=margin,
                         keep_images=keep_images)


def _worker_detect(sources: list[Any]) -> list[_Detected]:
    return [_decode_detect(source, _worker_state["detector"], _worker_state["margin"],
                           _worker_state["keep_images"]) for source in sources]


def _decode_detect(source: Any, detector: Any, margin: float, keep_images: bool) -> _Detected:
    """Load one image, find its faces and cut the crops; any failure becomes an error."""
    from .errors import EmotionKitError

    try:
        image = load_image(source)
        detections = list(detector.detect(image))
        crops = [np.ascontiguousarray(crop(image, d.box, margin)) for d in detections]
    except EmotionKitError as exc:
        return _Detected([], [], str(exc))
    except Exception as exc:  # a detector failing on one image must not end a long run
        return _Detected([], [], f"{source}: {type(exc).__name__}: {exc}")
    return _Detected(detections, crops, None, image if keep_images else None)


def iter_detect_paths(
    paths: Iterable[Any],
    *,
    detector: str | Any = "mediapipe",
    classifier: str | Path | Any = "fer-cnn",
    workers: int = 1,
    chunk_size: int = 64,
    margin: float | None = None,
    keep_images: bool = False,
) -> Iterator[PathResult]:
    """Faces and emotions for many images, one :class:`PathResult` per input, in order.

    Args:
        paths: image paths (or anything :func:`emotionkit.load_image` takes, such as
            bytes); read lazily, so a long generator is fine.
        detector: a detector name, or a detector object. With ``workers > 1`` it is sent
            to each worker process, so use a name (built-in or an entry-point plugin;
            detectors registered at run time with ``register_detector`` do not exist in
            the workers) or a picklable object (the built-in detectors are: each worker
            rebuilds one from its settings).
        classifier: a classifier name, model path or classifier object (used in this
            process only).
        workers: 1 runs in this process; N > 1 decodes and detects in N worker processes.
        chunk_size: images whose crops are classified together; also sets how far the
            workers run ahead (``2 * chunk_size`` images at most in flight).
        margin: face box margin for the crops; ``None`` uses the classifier's own.
        keep_images: also return each decoded image (for annotating); with workers this
            copies every image back from the worker, so leave it off otherwise.

    An unreadable image gives a result with ``error`` set and the run goes on. Closing
    the generator early (``break``, Ctrl-C) stops and joins the workers. Bad arguments
    and an unknown detector or classifier raise at the call, before any image is read;
    worker processes start with the first result asked for.

    Raises:
        ValueError: ``workers`` or ``chunk_size`` is below 1.
        TypeError: ``detector`` has no ``detect()`` method, or (``workers > 1``) it is an
            object that cannot be pickled for the worker processes.
        UnknownPluginError: an unknown detector or classifier name.
    """
    from .recognizer import EmotionRecognizer
    from .registry import _detectors, resolve_detector

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if workers > 1 and isinstance(detector, str):
        _detectors.check(detector)  # the workers create it; an unknown name fails here
    elif workers > 1:
        _check_picklable(resolve_detector(detector))
    # In pool mode this process only classifies: its recognizer gets the trivial detector.
    local_detector = resolve_detector(detector) if workers == 1 else "none"
    rec = EmotionRecognizer(detector=local_detector, classifier=classifier, margin=margin)
    return _results(rec, paths, detector, workers, chunk_size, keep_images)


def _check_picklable(detector: Any) -> None:
    """``TypeError`` if ``detector`` cannot be pickled, as sending it to the worker
    processes needs."""
    try:
        pickle.dumps(detector)
    except Exception as exc:
        raise TypeError(
            f"iter_detect_paths(workers > 1): the detector {detector!r} cannot be sent to "
            f"the worker processes, it cannot be pickled ({type(exc).__name__}: {exc}); "
            "pass a detector name (built-in or entry-point plugin) or a picklable detector "
            "object, or use workers=1"
        ) from exc


def _results(rec: Any, paths: Iterable[Any], detector: str | Any, workers: int,
             chunk_size: int, keep_images: bool) -> Iterator[PathResult]:
    """:func:`iter_detect_paths`'s results, computed as they are asked for."""
    used_margin = rec.crop_margin
    if workers == 1:
        detected: Iterator[tuple[Any, _Detected]] = (
            (p, _decode_detect(p, rec.detector, used_margin, keep_images)) for p in paths
        )
        yield from _classify_chunks(rec, detected, chunk_size)
        return

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(detector, used_margin, keep_images),
    )
    try:
        task = max(1, min(8, chunk_size // workers))
        yield from _classify_chunks(rec, _pooled(pool, paths, 2 * chunk_size, task),
                                    chunk_size)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pooled(pool: ProcessPoolExecutor, paths: Iterable[Any], ahead: int,
            task: int) -> Iterator[tuple[Any, _Detected]]:
    """Worker results in input order, ``task`` images per worker call, with at most about
    ``ahead`` images in flight."""
    pending: collections.deque[tuple[list[Any], Future[list[_Detected]]]] = collections.deque()
    in_flight = 0
    group: list[Any] = []

    def submit() -> None:
        nonlocal in_flight, group
        pending.append((group, pool.submit(_worker_detect, group)))
        in_flight += len(group)
        group = []

    def take() -> Iterator[tuple[Any, _Detected]]:
        nonlocal in_flight
        done, future = pending.popleft()
        in_flight -= len(done)
        yield from zip(done, future.result())

    for path in paths:
        group.append(path)
        if len(group) == task:
            submit()
        while in_flight >= ahead:
            yield from take()
    if group:
        submit()
    while pending:
        yield from take()


def _classify_chunks(rec: Any, detected: Iterator[tuple[Any, _Detected]],
                     chunk_size: int) -> Iterator[PathResult]:
    chunk: list[tuple[Any, _Detected]] = []

    def flush() -> Iterator[PathResult]:
        # A failed image has no detections, so it takes no probability rows.
        faces = rec._faces_for([d.detections for _, d in chunk], [d.crops for _, d in chunk])
        for (path, d), image_faces in zip(chunk, faces):
            if d.error is not None:
                yield PathResult(path, [], d.error, None)
            else:
                yield PathResult(path, image_faces, None, d.image)

    for item in detected:
        chunk.append(item)
        if len(chunk) == chunk_size:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()
