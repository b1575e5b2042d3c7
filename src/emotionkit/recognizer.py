""":class:`EmotionRecognizer`: a face detector plus an emotion classifier."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._text import cut
from .errors import EmotionKitError
from .io import ImageInput, crop, load_image
from .registry import resolve_classifier, resolve_detector
from .results import Detection, Face

if TYPE_CHECKING:
    from .video import VideoFrame

__all__ = ["EmotionRecognizer", "resolve_classifier", "resolve_detector"]


class EmotionRecognizer:
    """Find faces in images and classify their emotions.

    Args:
        detector: a registered detector name (``"mediapipe"``, ``"haar"``, ``"none"`` for
            images that are already face crops, or a plugin's name) or a detector object
            with ``detect(image_bgr) -> list[Detection]``.
        classifier: a registered classifier name (``"fer-cnn"``, the bundled default), a
            path to a Keras model file or a model directory written by ``emotionkit
            train``, or a classifier object (see
            :class:`~emotionkit.classifiers.EmotionClassifier`).
        margin: fraction of the face box added on every side before cropping, a finite
            number >= 0 (0.2 on a 100-pixel box: 20 pixels more on each side); ``None``
            uses the classifier's own ``crop_margin``.
        batch_size: most faces sent to the classifier in one call, an int >= 1.

    Raises:
        TypeError: ``margin`` is not a number or ``batch_size`` not an int.
        ValueError: ``margin`` is negative or not finite, or ``batch_size`` below 1.

    A recognizer pickles as its settings (the copy, in another process for example, builds
    its own detector and classifier), so it can be sent to ``spawn`` workers, provided the
    detector and classifier were given by name or path or as picklable objects (the
    built-in detectors are; a loaded Keras classifier is not). A name registered at run
    time with ``register_detector`` / ``register_classifier`` does not exist in ``spawn``
    workers; send such a detector as an object.

    :meth:`close` (or a ``with`` block) frees the native resources of the detector and
    classifier the recognizer created from names or paths; objects passed in are left to
    their owner. Example::

        with EmotionRecognizer() as rec:
            for face in rec.detect("photo.jpg"):
                print(face.box, face.top_emotion)
    """

    def __init__(
        self,
        detector: str | Any = "mediapipe",
        classifier: str | Path | Any = "fer-cnn",
        *,
        margin: float | None = None,
        batch_size: int = 256,
    ) -> None:
        self.margin = _checked_margin(margin)
        self.batch_size = _checked_batch_size(batch_size)
        self.classifier = resolve_classifier(classifier)
        self.detector = resolve_detector(detector)
        # the names or paths given, with what they made: pickled in their place
        self._made = ((detector, self.detector), (classifier, self.classifier))
        self._owned = [plugin for plugin, spec in ((self.detector, detector),
                                                    (self.classifier, classifier))
                       if plugin is not spec]  # made here from a name or path: ours to close

    def close(self) -> None:
        """Free the resources of the detector and classifier this recognizer created (the
        MediaPipe graph, ...) by calling their ``close()`` where they have one; detectors
        and classifiers passed in as objects are left open. Calling it again does nothing.
        A closed MediaPipe detector raises :class:`~emotionkit.errors.EmotionKitError` on
        :meth:`detect`."""
        owned, self._owned = self._owned, []
        for plugin in owned:
            close = getattr(plugin, "close", None)
            if callable(close):
                close()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as its settings: the detector and classifier as the names or paths they
        were made from (objects, or ones set later, as themselves), ``margin`` and
        ``batch_size``. The copy builds its own detector and classifier."""
        (detector_spec, made_detector), (classifier_spec, made_classifier) = self._made
        detector = detector_spec if self.detector is made_detector else self.detector
        classifier = classifier_spec if self.classifier is made_classifier else self.classifier
        return _rebuilt, (detector, classifier, self.margin, self.batch_size)

    def __copy__(self) -> EmotionRecognizer:
        """A shallow copy sharing the detector and classifier, which this recognizer
        alone closes (the copy's :meth:`close` does nothing)."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__, _owned=[])
        return twin

    def __enter__(self) -> EmotionRecognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def labels(self) -> tuple[str, ...]:
        """The classifier's labels, in the order of :meth:`classify`'s columns."""
        return tuple(self.classifier.labels)

    def detect(self, image: ImageInput) -> list[Face]:
        """Faces in one image with their emotions (``[]`` if there is none).

        ``image`` is a path, encoded bytes, a BGR numpy array (2-D: grayscale) or a PIL
        image; see :func:`emotionkit.io.load_image`.
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Iterable[ImageInput]) -> list[list[Face]]:
        """Faces of many images; all faces are classified together in batched calls.

        Raises :class:`~emotionkit.errors.ImageLoadError` for an unreadable image; load
        images with :func:`emotionkit.io.load_image` first to handle them one by one.
        ``images`` is a list (or other iterable) of images, or an ``(N, H, W, C)`` array;
        one path, bytes object or image array is a ``TypeError`` (use :meth:`detect`).
        """
        _refuse_one("detect_batch", "images", images, "use detect() for one image")
        arrays = [load_image(img) for img in images]
        detections = [self.detector.detect(arr) for arr in arrays]
        margin = self.crop_margin
        crops = [[crop(arr, d.box, margin) for d in dets]
                 for arr, dets in zip(arrays, detections)]
        return self._faces_for(detections, crops)

    @property
    def crop_margin(self) -> float:
        """The margin used to cut faces out: ``margin``, else the classifier's own."""
        return float(self.classifier.crop_margin if self.margin is None else self.margin)

    def _faces_for(self, detections: Sequence[Sequence[Detection]],
                   crops: Sequence[Sequence[np.ndarray]]) -> list[list[Face]]:
        """Classify the crops of many images in batched calls and pair each probability row
        with its detection; ``crops[i][j]`` is the crop of ``detections[i][j]``."""
        probs = iter(self.classify([c for per_image in crops for c in per_image]))
        return [[_to_face(det, self.labels, next(probs)) for det in dets]
                for dets in detections]

    def detect_video(self, source: str | Path | int, every_n: int = 1, *,
                     smoothing: float = 0.0, iou_threshold: float = 0.3,
                     max_age: int = 5) -> Iterator[VideoFrame]:
        """Faces with emotions in the frames of a video file or camera, tracked over time.

        Yields a :class:`~emotionkit.video.VideoFrame` (``index``, ``time`` in seconds,
        ``faces``, ``image``) for every ``every_n``-th frame. Each face is a
        :class:`~emotionkit.tracking.TrackedFace` whose ``face_id`` stays the same while
        its box overlaps its box in the last processed frame by ``iou_threshold`` (IoU) or
        more; a face unmatched for more than ``max_age`` processed frames ends its track.

        Args:
            source: a video file path, or a camera index (``0``).
            every_n: process every n-th frame only (an int >= 1; the others are skipped
                undecoded).
            smoothing: weight of the past in an exponential moving average of each face's
                probabilities, in ``[0, 1)``; 0 (default) is off, 0.5-0.8 stops labels from
                flickering. The unsmoothed values are in ``face.raw_emotions``.

        Raises :class:`~emotionkit.video.VideoError` at the call if the video cannot be
        opened, or, after the readable frames, if it stops decoding early (truncated file)
        or held no frame at all; ``ValueError`` / ``TypeError`` at the call for bad
        arguments.
        """
        from .video import detect_video

        return detect_video(self, source, every_n=every_n, smoothing=smoothing,
                            iou_threshold=iou_threshold, max_age=max_age)

    def classify(self, face_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Emotion probabilities ``(N, len(labels))`` for face crops.

        ``face_crops`` is a list of BGR ``uint8`` arrays (2-D: grayscale) of any size, or
        an ``(N, H, W, C)`` array; they are resized by the classifier. Rows sum to 1. One
        crop on its own is a ``TypeError``: pass ``[crop]``. A classifier that answers
        NaN or infinite probabilities is an :class:`~emotionkit.EmotionKitError`.
        """
        _refuse_one("classify", "face crops", face_crops, "pass [crop] for one crop")
        n_labels = len(self.labels)
        if len(face_crops) == 0:
            return np.zeros((0, n_labels), dtype=np.float32)
        chunks = [
            np.asarray(self.classifier.predict(face_crops[i : i + self.batch_size]))
            for i in range(0, len(face_crops), self.batch_size)
        ]
        probs = np.concatenate(chunks, axis=0)
        if probs.shape != (len(face_crops), n_labels):
            raise ValueError(
                f"classifier returned shape {probs.shape}, expected {(len(face_crops), n_labels)}"
            )
        bad = int((~np.isfinite(probs).all(axis=1)).sum())
        if bad:
            raise EmotionKitError(
                f"{type(self.classifier).__name__} gave non-finite probabilities (NaN or "
                f"infinity) for {bad} of {len(face_crops)} face crops; fix the classifier")
        return probs

    def __repr__(self) -> str:
        return f"EmotionRecognizer(detector={self.detector!r}, classifier={self.classifier!r})"


def _refuse_one(method: str, items: str, given: Any, advice: str) -> None:
    """Raise ``TypeError`` if ``given`` is one item (a path, bytes, or one image array:
    2-D, or 3-D with up to 4 channels) rather than a list of ``items``: iterating over
    it would give characters or pixel rows, and a silently wrong result. A 3-D array with
    a last axis above 4 is a stack of grayscale images ``(N, H, W)``."""
    if isinstance(given, (str, bytes, os.PathLike)) or (
            isinstance(given, np.ndarray) and (
                given.ndim < 3 or (given.ndim == 3 and given.shape[2] <= 4))):
        what = (f"array of shape {given.shape}" if isinstance(given, np.ndarray)
                else f"{type(given).__name__} ({cut(str(given))!r})")
        raise TypeError(f"{method} takes a list of {items}, not one {what}; {advice}")


def _rebuilt(detector: Any, classifier: Any, margin: float | None,
             batch_size: int) -> EmotionRecognizer:
    """An unpickled recognizer (see :meth:`EmotionRecognizer.__reduce__`)."""
    return EmotionRecognizer(detector, classifier, margin=margin, batch_size=batch_size)


def _checked_margin(margin: Any) -> float | None:
    """``margin`` as a float if it is ``None`` or a finite number >= 0; else ``TypeError``
    / ``ValueError`` naming it."""
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"margin must be a number >= 0 (a fraction of the face box) or None, "
                        f"got {margin!r} ({type(margin).__name__})")
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0 (a fraction of the face box), "
                         f"got {margin!r}")
    return float(margin)


def _checked_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an int if it is an int >= 1; else ``TypeError`` / ``ValueError``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be an int >= 1, got {batch_size!r} "
                        f"({type(batch_size).__name__})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _to_face(det: Detection, labels: tuple[str, ...], probs: np.ndarray) -> Face:
    emotions = {label: float(p) for label, p in zip(labels, probs)}
    return Face(box=det.box, score=det.score, emotions=emotions, landmarks=dict(det.landmarks))
