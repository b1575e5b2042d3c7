"""Drawing detected faces and their top emotion onto an image."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import ImageLoadError
from .io import to_bgr
from .results import Face

__all__ = ["draw_faces"]

_BOX_BGR = (0, 200, 0)
_TEXT_BGR = (255, 255, 255)


def draw_faces(image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A BGR ``uint8`` copy of ``image_bgr`` with each face's box and ``"label 0.87"``
    (its top emotion and that emotion's probability) drawn on it.

    Boxes are green (BGR ``(0, 200, 0)``), at the face's ``box`` in pixels of the image
    (rounded, where a plugin detector gave floats); each label is white text on a green
    band above its box (below it where there is no room above; always inside the image).
    Line width and text size grow with the image.

    ``image_bgr`` is a BGR ``uint8`` array ``(H, W, 3)``, as :func:`emotionkit.load_image`
    returns and ``cv2.VideoCapture`` gives; other arrays ``load_image`` takes (grayscale,
    BGRA, float in ``[0, 1]``, 16-bit) are converted to BGR first, so the boxes keep their
    colour.

    Raises:
        ImageLoadError: ``image_bgr`` is not an image array (not a numpy array, empty, or
            an unsupported shape or dtype).
    """
    try:
        out = np.array(to_bgr(image_bgr), copy=True)
    except ImageLoadError as exc:
        raise ImageLoadError(f"draw_faces(): {exc}") from None
    thickness = max(1, round(min(out.shape[:2]) / 300))
    scale = max(0.4, min(out.shape[:2]) / 900)
    for face in faces:
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), _BOX_BGR, thickness)
        text = f"{face.top_emotion} {face.emotions[face.top_emotion]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        # above the box, else below it, else (a box as tall as the image) inside it; moved
        # left where it would run off the right edge
        ty = y - base - 2 if y - th - base - 2 >= 0 else y + h + th + 2
        ty = max(th + 2, min(ty, out.shape[0] - base - 1))
        tx = max(0, min(x, out.shape[1] - tw - 3))
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty + base), _BOX_BGR, cv2.FILLED)
        cv2.putText(out, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT_BGR,
                    thickness, cv2.LINE_AA)
    return out
