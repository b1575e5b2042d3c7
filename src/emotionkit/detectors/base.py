"""The face detector protocol and helpers shared by the built-in detectors."""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ImageLoadError
from ..io import to_bgr, to_gray
from ..results import Detection

__all__ = ["FaceDetector", "bundled_model_path", "detector_input"]


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an image.

    ``detect`` takes a BGR ``uint8`` array of shape ``(H, W, 3)`` and returns one
    :class:`~emotionkit.results.Detection` per face, boxes in pixels of that image.
    """

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR ``uint8`` image ``(H, W, 3)``; boxes are ``(x, y, w, h)`` pixels
        inside the image. Order is the detector's own (built-ins: largest or surest
        first); ``[]`` when there is no face."""
        ...


def bundled_model_path(filename: str) -> Path:
    """Path of a model file shipped in ``emotionkit/data/models``."""
    return Path(str(resources.files("emotionkit") / "data" / "models" / filename))


def detector_input(image: Any, detector: str, *, gray: bool = False) -> np.ndarray:
    """``image`` as the ``uint8`` array a built-in detector works on: ``(H, W)`` grayscale
    for a grayscale input or when ``gray`` is true, else contiguous BGR ``(H, W, 3)``.

    Takes what :func:`emotionkit.load_image` takes as an array -- grayscale, BGR or BGRA;
    ``uint8``, float in ``[0, 1]``, 16-bit -- converted the same way, so that a detector
    used on its own accepts the images an :class:`~emotionkit.EmotionRecognizer` does.

    Raises:
        ImageLoadError: not a numpy array, empty, or of an unsupported shape or dtype;
            the message starts with ``"<detector>.detect(): "``.
    """
    try:
        if gray or (isinstance(image, np.ndarray) and image.ndim == 2):
            return to_gray(image)
        return to_bgr(image)
    except ImageLoadError as exc:
        raise ImageLoadError(f"{detector}.detect(): {exc}") from None


def _number_option(detector: str, name: str, value: Any, ok: Callable[[float], bool],
                   expected: str) -> float:
    """A detector option ``value`` as a float; ``ValueError`` naming the detector, the
    option and ``expected`` if it is not a number or ``ok(number)`` is false (NaN never
    passes a comparison)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or not ok(number):
        raise ValueError(f"{detector}: {name} must be {expected}, got {value!r}")
    return number


def _path_setting(path: Path, bundled: str) -> Path | None:
    """``path`` as the model argument of a detector rebuilt in another process (pickling):
    ``None`` -- that process's own copy of the bundled file -- when ``path`` is the bundled
    model ``bundled``, which may live elsewhere there."""
    return None if path == bundled_model_path(bundled) else path


def _reduce(detector: Any, base: type, args: tuple[Any, ...],
            rebuilt: frozenset[str]) -> tuple[Any, ...]:
    """``detector.__reduce__()`` for a built-in detector class ``base``: unpickling calls
    ``base.__init__(*args)`` on a new object of ``detector``'s own class (a subclass stays
    a subclass) and restores the instance attributes that ``base.__init__`` does not make
    (a subclass's own). ``rebuilt``: the attributes ``base.__init__`` makes."""
    extra = {k: v for k, v in vars(detector).items() if k not in rebuilt}
    return (_rebuild, (type(detector), base, args, extra))


def _rebuild(cls: type, base: type, args: tuple[Any, ...], extra: dict[str, Any]) -> Any:
    obj: Any = object.__new__(cls)
    base.__init__(obj, *args)  # type: ignore[misc]
    obj.__dict__.update(extra)
    return obj
