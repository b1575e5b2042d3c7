"""Faces and emotions over a Ray Data dataset of images (``pip install ".[ray]"`` in a
checkout of emotionkit).

Each Ray actor builds one :class:`~emotionkit.EmotionRecognizer` and handles batches of
rows: every image of the batch is decoded and its faces found, then all faces of the batch
are classified in one batched call::

    import ray
    from emotionkit.integrations.ray import detect_dataset

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    out = detect_dataset(ds, detector="mediapipe", classifier="fer-cnn", concurrency=4)
    out.write_parquet("s3://bucket/emotions/")

Input rows need a ``bytes`` column (encoded image files, as ``read_binary_files`` gives)
or a ``path`` column (image files that every Ray node can read); images are decoded as
:func:`emotionkit.load_image` decodes them. Output rows keep the input columns except
``bytes`` and add:

* ``faces``: a JSON string, the list of ``Face.to_dict()`` (box, score, emotions,
  top_emotion, landmarks);
* ``num_faces``: int;
* ``top_emotion``: the top emotion of the largest face, ``""`` if there is none;
* ``error``: ``""``, or why the image could not be read (a null ``bytes`` or ``path``
  value included); the row is kept and the job goes on.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..batch import _Detected

__all__ = ["EmotionPredictor", "detect_dataset"]


class EmotionPredictor:
    """A callable class for ``Dataset.map_batches``: one recognizer per actor.

    Args:
        detector: detector name, or a picklable detector object (Ray sends it to each
            actor; the built-in detectors are rebuilt there from their settings).
        classifier: classifier name, model path readable on every node, ``hf://`` id, or
            a picklable classifier object (a loaded Keras classifier is not: give its
            path).
        margin: face box margin, a fraction of the box's width and height added on every
            side; ``None`` uses the classifier's own.

    Calling it with a batch (a dict of numpy arrays, Ray's ``batch_format="numpy"``)
    returns the batch without ``bytes``, plus the ``faces``, ``num_faces``,
    ``top_emotion`` and ``error`` columns (see the module's description).
    """

    def __init__(self, detector: str | Any = "mediapipe",
                 classifier: str | Path | Any = "fer-cnn", margin: float | None = None) -> None:
        from ..recognizer import EmotionRecognizer

        self.recognizer = EmotionRecognizer(detector=detector, classifier=classifier,
                                            margin=margin)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "bytes" in batch:
            column = "bytes"
        elif "path" in batch:
            column = "path"
        else:
            raise KeyError(f"batch needs a 'bytes' or 'path' column, has {sorted(batch)}")
        paths = batch["path"] if "path" in batch else [None] * len(batch[column])
        detected = [self._detect_row(value, column, None if p is None else str(p))
                    for value, p in zip(batch[column], paths)]
        all_faces = self.recognizer._faces_for([d.detections for d in detected],
                                               [d.crops for d in detected])
        faces_json, counts, tops = [], [], []
        for faces in all_faces:
            faces_json.append(json.dumps([f.to_dict() for f in faces]))
            counts.append(len(faces))
            largest = max(faces, key=lambda f: f.box[2] * f.box[3], default=None)
            tops.append("" if largest is None else largest.top_emotion)
        errors = [d.error or "" for d in detected]
        out = {k: v for k, v in batch.items() if k != "bytes"}
        out.update(faces=np.array(faces_json, dtype=object),
                   num_faces=np.array(counts, dtype=np.int64),
                   top_emotion=np.array(tops, dtype=object),
                   error=np.array(errors, dtype=object))
        return out

    def _detect_row(self, value: Any, column: str, path: str | None) -> _Detected:
        """The faces found in one row's image (its ``column`` value), or why there are
        none: a null value, or an unreadable image, named by the row's ``path``."""
        from ..batch import _decode_detect, _Detected

        where = f"{path}: " if path else ""
        if value is None:
            return _Detected([], [], f"{where}no image (the row's {column!r} value is null)")
        source = bytes(value) if column == "bytes" else str(value)
        rec = self.recognizer
        found = _decode_detect(source, rec.detector, rec.crop_margin, False)
        if found.error and column == "bytes" and where:  # "image bytes: ..."
            found = dataclasses.replace(found, error=found.error.replace("image bytes: ",
                                                                         where, 1))
        return found


def detect_dataset(ds: Any, *, detector: str | Any = "mediapipe",
                   classifier: str | Path | Any = "fer-cnn", margin: float | None = None,
                   concurrency: int = 1, batch_size: int = 64,
                   num_cpus: float | None = None, num_gpus: float | None = None) -> Any:
    """``ds.map_batches`` with :class:`EmotionPredictor` on a pool of ``concurrency`` actors
    (``compute=ray.data.ActorPoolStrategy(size=concurrency)`` from Ray 2.51,
    ``concurrency=concurrency`` before): a lazy dataset of results.

    Args:
        ds: a ``ray.data.Dataset`` with a ``bytes`` or a ``path`` column.
        detector, classifier, margin: as for :class:`EmotionPredictor`. A detector name
            registered in this process only (``register_detector``) is sent to the actors
            as the detector it makes.
        concurrency: number of actors (each loads its own detector and classifier).
        batch_size: rows per batch; their faces are classified together.
        num_cpus, num_gpus: resources per actor (Ray's defaults when ``None``).

    Raises (at the call, not when the lazy dataset runs):
        UnknownPluginError: an unknown detector name.
        TypeError: the detector has no ``detect()`` method, or the detector or classifier
            is an object that cannot be pickled for the actors.
    """
    import ray

    settings = _actor_settings(detector, classifier, margin)
    kwargs = _actor_pool(concurrency, ray.__version__)
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    return ds.map_batches(
        EmotionPredictor,
        fn_constructor_kwargs=settings, batch_size=batch_size, batch_format="numpy", **kwargs)


def _actor_settings(detector: Any, classifier: Any, margin: float | None) -> dict[str, Any]:
    """:class:`EmotionPredictor`'s arguments as Ray sends them to each actor, checked
    here: when the lazy dataset runs, an unknown name fails in every actor's constructor
    and an object that does not pickle in Ray's serialiser, reported as a bug in Ray."""
    from ray import cloudpickle

    from ..registry import _detector_to_send

    detector = _detector_to_send(detector)
    for role, plugin, instead in (
        ("detector", detector, "a detector name (built-in or plugin)"),
        ("classifier", classifier, "the classifier's name or model path (on every node)"),
    ):
        try:
            cloudpickle.dumps(plugin)
        except Exception as exc:
            raise TypeError(
                f"detect_dataset: the {role} (a {type(plugin).__name__} object) cannot be "
                f"sent to the Ray actors, it cannot be pickled ({type(exc).__name__}: {exc}); "
                f"pass {instead} or a picklable object"
            ) from exc
    return {"detector": detector, "classifier": classifier, "margin": margin}


_COMPUTE_SINCE = (2, 51)
"""The Ray version whose ``map_batches`` takes an actor pool as ``compute=`` and deprecates
``concurrency=``; Ray 2.9 to 2.50 do the reverse."""


def _actor_pool(size: int, ray_version: str) -> dict[str, Any]:
    """The ``map_batches`` argument for a pool of ``size`` actors in Ray ``ray_version``,
    in the form that Ray does not warn about."""
    major_minor = re.match(r"(\d+)\.(\d+)", ray_version)
    if major_minor and tuple(map(int, major_minor.groups())) < _COMPUTE_SINCE:
        return {"concurrency": size}
    from ray.data import ActorPoolStrategy

    return {"compute": ActorPoolStrategy(size=size)}
