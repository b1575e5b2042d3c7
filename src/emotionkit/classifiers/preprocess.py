"""Turning BGR face crops into model input tensors (shared by inference and training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..errors import ImageLoadError
from ..io import _to_uint8
from .config import ModelConfig

__all__ = ["faces_to_pixels", "pixels_to_input"]


def faces_to_pixels(
    faces: Sequence[np.ndarray],
    input_size: tuple[int, int],
    channels: int,
    color_order: str = "rgb",
) -> np.ndarray:
    """Resize BGR (or grayscale) crops to ``(N, H, W, channels)`` ``uint8``.

    Crops of another dtype are converted like :func:`emotionkit.load_image` converts
    arrays (float in ``[0, 1]`` scaled to 0..255, 16-bit to its top 8 bits).

    ``input_size`` is ``(height, width)``. One channel: grayscale; three: ``color_order``.

    Raises:
        ImageLoadError: a crop is not a numpy array, is empty, or is not ``(H, W)``,
            ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``.
    """
    _check_pixel_format(channels, color_order)
    h, w = input_size
    out = np.empty((len(faces), h, w, channels), dtype=np.uint8)
    for i, face in enumerate(faces):
        _check_crop(i, face)
        if face.dtype != np.uint8:  # float 0..1 (or 0..255), 16-bit ... as load_image does
            face = _to_uint8(face)
        if face.ndim == 3 and face.shape[2] == 4:
            face = cv2.cvtColor(face, cv2.COLOR_BGRA2BGR)
        interp = cv2.INTER_AREA if face.shape[0] > h or face.shape[1] > w else cv2.INTER_LINEAR
        resized = cv2.resize(face, (w, h), interpolation=interp)
        if channels == 1:
            gray = resized if resized.ndim == 2 else cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)
            out[i, :, :, 0] = gray
        else:
            bgr = resized if resized.ndim == 3 else cv2.cvtColor(resized, cv2.COLOR_GRAY2BGR)
            out[i] = bgr[:, :, ::-1] if color_order == "rgb" else bgr
    return out


def _check_crop(index: int, face: Any) -> None:
    """Raise :class:`ImageLoadError` naming crop ``index`` unless ``face`` is a non-empty
    gray ``(H, W)`` / ``(H, W, 1)``, BGR ``(H, W, 3)`` or BGRA ``(H, W, 4)`` array."""
    if not isinstance(face, np.ndarray):
        raise ImageLoadError(
            f"face crop {index} is a {type(face).__name__}, not a numpy image array; pass "
            "crops as arrays (numpy.asarray(crop))"
        )
    if face.size == 0 or face.ndim not in (2, 3) or (
            face.ndim == 3 and face.shape[2] not in (1, 3, 4)):
        raise ImageLoadError(
            f"face crop {index} is empty or has shape {face.shape}; expected (H, W) or "
            "(H, W, 1) gray, (H, W, 3) BGR or (H, W, 4) BGRA"
        )


def _check_pixel_format(channels: int, color_order: str) -> None:
    """Raise ``ValueError`` unless ``channels`` is 1 or 3 and ``color_order`` ``"rgb"`` or
    ``"bgr"``."""
    if channels not in (1, 3) or color_order not in ("rgb", "bgr"):
        raise ValueError(f"channels must be 1 or 3 and color_order 'rgb' or 'bgr', got "
                         f"{channels} and {color_order!r}")


def pixels_to_input(pixels: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Scale ``0..255`` pixels to the model's input range as ``float32``."""
    return pixels.astype(np.float32) * np.float32(config.pixel_scale) + np.float32(
        config.pixel_offset
    )
