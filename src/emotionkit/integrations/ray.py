"""Faces and emotions over a Ray Data dataset of images (``pip install "emotionkit[ray]"``).

Each Ray actor builds one :class:`~emotionkit.EmotionRecognizer` and handles batches of
rows: every image of the batch is decoded and its faces found, then all faces of the batch
are classified in one batched call::

    import ray
    from emotionkit.integrations.ray import detect_dataset

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    out = detect_dataset(ds, detector="mediapipe", classifier="fer-cnn", concurrency=4)
    out.write_parquet("s3://bucket/emotions/")

Input rows need a ``bytes`` column (encoded image files, as ``read_binary_files`` gives)
or a ``path`` column (image files that every Ray node can read). Output rows keep the
input columns except ``bytes`` and add:

* ``faces``: a JSON string, the list of ``Face.to_dict()`` (box, score, emotions,
  top_emotion, landmarks);
* ``num_faces``: int;
* ``top_emotion``: the top emotion of the largest face, ``""`` if there is none;
* ``error``: ``""``, or why the image could not be read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EmotionPredictor", "detect_dataset"]


class EmotionPredictor:
    """A callable class for ``Dataset.map_batches``: one recognizer per actor.

    Args:
        detector: detector name, or a picklable detector object (Ray sends it to each
            actor; the built-in detectors are rebuilt there from their settings).
        classifier: classifier name, model path readable on every node, or ``hf://`` id.
        margin: face box margin; ``None`` uses the classifier's own.
    """

    def __init__(self, detector: str | Any = "mediapipe",
                 classifier: str | Path | Any = "fer-cnn", margin: float | None = None) -> None:
        from ..recognizer import EmotionRecognizer

        self.recognizer = EmotionRecognizer(detector=detector, classifier=classifier,
                                            margin=margin)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..batch import _decode_detect

        if "bytes" in batch:
            sources: list[Any] = [bytes(b) for b in batch["bytes"]]
        elif "path" in batch:
            sources = [str(p) for p in batch["path"]]
        else:
            raise KeyError(f"batch needs a 'bytes' or 'path' column, has {sorted(batch)}")
        rec = self.recognizer
        detected = [_decode_detect(src, rec.detector, rec.crop_margin, False) for src in sources]
        names = [str(p) for p in batch["path"]] if "path" in batch else None
        all_faces = rec._faces_for([d.detections for d in detected], [d.crops for d in detected])
        faces_json, counts, tops, errors = [], [], [], []
        for i, (d, faces) in enumerate(zip(detected, all_faces)):
            faces_json.append(json.dumps([f.to_dict() for f in faces]))
            counts.append(len(faces))
            largest = max(faces, key=lambda f: f.box[2] * f.box[3], default=None)
            tops.append("" if largest is None else largest.top_emotion)
            error = d.error or ""
            if error and names is not None and "bytes" in batch:
                error = error.replace("image bytes", names[i])
            errors.append(error)
        out = {k: v for k, v in batch.items() if k != "bytes"}
        out.update(faces=np.array(faces_json, dtype=object),
                   num_faces=np.array(counts, dtype=np.int64),
                   top_emotion=np.array(tops, dtype=object),
                   error=np.array(errors, dtype=object))
        return out


def detect_dataset(ds: Any, *, detector: str | Any = "mediapipe",
                   classifier: str | Path | Any = "fer-cnn", margin: float | None = None,
                   concurrency: int = 1, batch_size: int = 64,
                   num_cpus: float | None = None, num_gpus: float | None = None) -> Any:
    """``ds.map_batches`` with :class:`EmotionPredictor` on a pool of ``concurrency`` actors
    (``compute=ray.data.ActorPoolStrategy(size=concurrency)`` from Ray 2.51,
    ``concurrency=concurrency`` before): a lazy dataset of results.

    Args:
        ds: a ``ray.data.Dataset`` with a ``bytes`` or a ``path`` column.
        concurrency: number of actors (each loads its own detector and classifier).
        batch_size: rows per batch; their faces are classified together.
        num_cpus, num_gpus: resources per actor (Ray's defaults when ``None``).
    """
    import ray

    kwargs = _actor_pool(concurrency, ray.__version__)
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    return ds.map_batches(
        EmotionPredictor,
        fn_constructor_kwargs={"detector": detector, "classifier": classifier,
                               "margin": margin},
        batch_size=batch_size, batch_format="numpy", **kwargs)


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
