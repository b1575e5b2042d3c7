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
import os
import pickle
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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


# The detector of this worker process, built once by :func:`_init_worker` (or why it
# could not be built).
_worker_state: dict[str, Any] = {}


def _init_worker(detector: bytes, margin: float, keep_images: bool) -> None:
    """Build this worker's detector from ``detector`` (a name or a detector object,
    pickled). An error is kept and raised by each task, so that the caller gets it rather
    than a pool broken by a worker that could not start."""
    from .registry import resolve_detector

    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # N workers share the cores: OpenCV's own thread pool in each would oversubscribe them.
    import cv2

    cv2.setNumThreads(1)
    try:
        _worker_state.update(detector=resolve_detector(pickle.loads(detector)), margin=margin,
                             keep_images=keep_images)
    except Exception as exc:
        _worker_state["error"] = exc


def _worker_detect(sources: list[Any]) -> list[_Detected]:
    if "error" in _worker_state:
        raise _worker_state["error"]
    return [_decode_detect(source, _worker_state["detector"], _worker_state["margin"],
                           _worker_state["keep_images"]) for source in sources]


def _name(source: Any) -> str:
    """``source`` as error messages name it: a path as given, else its kind."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "image bytes"
    return f"{type(source).__name__} image"


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
        return _Detected([], [], f"{_name(source)}: {type(exc).__name__}: {exc}")
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
        detector: a detector name, or a detector object. With ``workers > 1`` each worker
            process builds a built-in or entry-point detector from its name; a detector
            object, or one made by a factory registered in this process with
            ``register_detector``, is pickled and sent to the workers, so it must pickle
            (the built-in detectors do: each worker rebuilds one from its settings).
        classifier: a classifier name, model path or classifier object (used in this
            process only).
        workers: 1 runs in this process; N > 1 decodes and detects in N worker processes.
        chunk_size: images whose crops are classified together; also sets how far the
            workers run ahead (``2 * chunk_size`` images at most in flight).
        margin: face box margin for the crops; ``None`` uses the classifier's own.
        keep_images: also return each decoded image (for annotating); with workers this
            copies every image back from the worker, so leave it off otherwise.

    An unreadable image gives a result with ``error`` set and the run goes on. A worker
    process that dies (out of memory, a crash in native code) costs only the image it
    was handling: new workers take over, the images in flight are run again one at a
    time in one more worker process, and the image that kills it gets an ``error``.
    Closing the generator early (``break``, Ctrl-C) ends the workers at once. Bad
    arguments and an unknown detector or classifier raise at the call, before any image
    is read; worker processes start with the first result asked for.

    Raises:
        ValueError: ``workers`` or ``chunk_size`` is below 1.
        TypeError: ``detector`` has no ``detect()`` method, or (``workers > 1``) it is an
            object that cannot be pickled for the worker processes.
        UnknownPluginError: an unknown detector or classifier name.
        Exception: (from the first result, ``workers > 1``) the error that stopped the
            workers from building the detector, e.g. ``ModelLoadError``.
        BrokenProcessPool: (``workers > 1``) workers died on 3 images in a row.
    """
    from .recognizer import EmotionRecognizer
    from .registry import _detector_to_send, resolve_detector

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if workers > 1:
        detector = _detector_to_send(detector)
    payload = _pickled(detector) if workers > 1 else b""
    # In pool mode this process only classifies: its recognizer gets the trivial detector.
    local_detector = resolve_detector(detector) if workers == 1 else "none"
    rec = EmotionRecognizer(detector=local_detector, classifier=classifier, margin=margin)
    return _results(rec, paths, payload, workers, chunk_size, keep_images)


def _pickled(detector: Any) -> bytes:
    """``detector`` (a name or an object) pickled for the worker processes; ``TypeError``
    if it cannot be."""
    try:
        return pickle.dumps(detector)
    except Exception as exc:
        raise TypeError(
            f"iter_detect_paths(workers > 1): the detector {detector!r} cannot be sent to "
            f"the worker processes, it cannot be pickled ({type(exc).__name__}: {exc}); "
            "pass a detector name (built-in or entry-point plugin) or a picklable detector "
            "object, or use workers=1"
        ) from exc


def _results(rec: Any, paths: Iterable[Any], detector: bytes, workers: int,
             chunk_size: int, keep_images: bool) -> Iterator[PathResult]:
    """:func:`iter_detect_paths`'s results, computed as they are asked for."""
    used_margin = rec.crop_margin
    if workers == 1:
        detected: Iterator[tuple[Any, _Detected]] = (
            (p, _decode_detect(p, rec.detector, used_margin, keep_images)) for p in paths
        )
        yield from _classify_chunks(rec, detected, chunk_size)
        return

    pool = _Workers(workers, (detector, used_margin, keep_images))
    try:
        task = max(1, min(8, chunk_size // workers))
        yield from _classify_chunks(rec, _pooled(pool, paths, 2 * chunk_size, task),
                                    chunk_size)
    except BaseException:  # closed early, Ctrl-C, an error: the work in flight is not wanted
        pool.stop(now=True)
        raise
    pool.stop(now=False)


_DEATHS_IN_A_ROW = 3
"""Images in a row on which a worker dies before the run stops (workers that die on every
image, e.g. out of memory as they start, would otherwise restart for each image)."""


class _Pool:
    """``count`` worker processes (``spawn``) running :func:`_worker_detect`, started with
    the first task and again after :meth:`restart`."""

    def __init__(self, count: int, initargs: tuple[Any, ...]) -> None:
        self._count, self._initargs = count, initargs
        self._executor: ProcessPoolExecutor | None = None
        self.generation = 0  # restarts so far

    def submit(self, sources: list[Any]) -> Future[list[_Detected]]:
        """A task for ``sources``. In a pool broken by a worker that died, the task fails
        (its future holds ``BrokenProcessPool``) rather than this call."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._count, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=self._initargs)
        failed: Future[list[_Detected]] = Future()
        try:
            task = self._executor.submit(_worker_detect, sources)
        except BrokenProcessPool as exc:
            failed.set_exception(exc)
        except OSError as exc:
            # In Python 3.11 a worker's death can be handled while this call starts a
            # new worker: the queue given to that worker is then closed already ("handle
            # is closed"). The pool is marked broken before the queue is closed.
            reason = getattr(self._executor, "_broken", False)
            if not reason:
                raise
            broken = BrokenProcessPool(reason)
            broken.__cause__ = exc
            failed.set_exception(broken)
        else:
            if not self._orphaned(task):
                return task
            failed.set_exception(BrokenProcessPool(self._executor._broken))
        return failed

    def _orphaned(self, task: Future[list[_Detected]]) -> bool:
        """Whether ``task``, just submitted, was added after the executor had failed the
        tasks of a pool broken by a worker's death (Python 3.11's executor marks itself
        broken without the lock that ``submit`` holds): nothing would ever end it.
        The executor is marked broken before it fails its tasks, so a task added after
        that sees the mark here."""
        if task.done() or not getattr(self._executor, "_broken", False):
            return False
        manager = getattr(self._executor, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(timeout=60)  # it fails the tasks it knows of, then ends
        return not task.done()

    def restart(self) -> None:
        """End the workers at once; new ones start with the next task."""
        self.stop(now=True)
        self._executor = None
        self.generation += 1

    def stop(self, *, now: bool) -> None:
        """Shut the pool down: ``now``, ending the workers at once (their work in flight
        is lost), else after they finished it."""
        if self._executor is None:
            return
        if not now:
            self._executor.shutdown(wait=True)
            return
        processes = list((getattr(self._executor, "_processes", None) or {}).values())
        manager = getattr(self._executor, "_executor_manager_thread", None)
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        if manager is not None:
            # It joins the processes too: one that it reaped first would otherwise still
            # be listed by multiprocessing.active_children() for a moment.
            manager.join(timeout=10)


class _Workers:
    """The worker processes: ``count`` for the tasks, a list of sources each, and one more
    that runs the images of a task again one at a time when a worker died on it."""

    def __init__(self, count: int, initargs: tuple[Any, ...]) -> None:
        self._pool = _Pool(count, initargs)
        # Alone in its pool, so that a death there can only come from the image it runs.
        self._solo = _Pool(1, initargs)
        self._deaths = 0  # images in a row on which a worker died

    def submit(self, sources: list[Any]) -> tuple[int, Future[list[_Detected]]]:
        return self._pool.generation, self._pool.submit(sources)

    def answers(self, sources: list[Any], task: tuple[int, Future[list[_Detected]]]
                ) -> list[_Detected]:
        """The answers of a task from :meth:`submit`. If a worker died meanwhile (the pool
        is then broken and every task in it fails), the pool is started anew and each
        source is run again on its own, so that the one that kills its worker again is
        known: it gets an error."""
        generation, future = task
        try:
            answers = future.result()
        except BrokenProcessPool:
            if generation == self._pool.generation:
                self._pool.restart()
            return [self._alone(source) for source in sources]
        self._deaths = 0
        return answers

    def _alone(self, source: Any) -> _Detected:
        try:
            (answer,) = self._solo.submit([source]).result()
        except BrokenProcessPool:
            self._deaths += 1
            if self._deaths == _DEATHS_IN_A_ROW:
                raise BrokenProcessPool(
                    f"worker processes died on {_DEATHS_IN_A_ROW} images in a row (the last: "
                    f"{_name(source)}); they may run out of memory, or the detector crashes: "
                    "try fewer workers") from None
            self._solo.restart()
            return _Detected([], [], f"{_name(source)}: the worker process died while "
                             "handling this image (out of memory, or a crash in native "
                             "code); the image is left out")
        self._deaths = 0
        return answer

    def stop(self, *, now: bool) -> None:
        """Shut the workers down: ``now``, ending them at once, else after their work."""
        self._pool.stop(now=now)
        self._solo.stop(now=now)


def _pooled(pool: _Workers, paths: Iterable[Any], ahead: int,
            task: int) -> Iterator[tuple[Any, _Detected]]:
    """Worker results in input order, ``task`` images per worker call, with at most about
    ``ahead`` images in flight."""
    pending: collections.deque[tuple[list[Any], tuple[int, Future[list[_Detected]]]]] = (
        collections.deque())
    in_flight = 0
    group: list[Any] = []

    def submit() -> None:
        nonlocal in_flight, group
        pending.append((group, pool.submit(group)))
        in_flight += len(group)
        group = []

    def take() -> Iterator[tuple[Any, _Detected]]:
        nonlocal in_flight
        done, submitted = pending.popleft()
        in_flight -= len(done)
        yield from zip(done, pool.answers(done, submitted))

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
