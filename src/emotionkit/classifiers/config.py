"""``config.json``: the description stored next to every model file.

``emotionkit train`` writes it; :func:`~emotionkit.classifiers.load_classifier` reads it.
Fields not listed here (training arguments, metrics, data fingerprint) are kept in
:attr:`ModelConfig.extra` and written back unchanged.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["CHECKPOINT_DIR", "CONFIG_NAME", "ModelConfig"]

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoint"
"""The training checkpoint folder inside a model directory (``emotionkit train`` writes it
for ``--resume``; ``emotionkit models push`` leaves it out)."""


@dataclass
class ModelConfig:
    """How to feed a model and read its output.

    Attributes:
        labels: output labels in column order.
        input_size: ``(height, width)`` in pixels.
        channels: 1 (grayscale) or 3 (colour, see ``color_order``).
        color_order: ``"rgb"`` or ``"bgr"`` for 3-channel models.
        pixel_scale, pixel_offset: the model input is ``pixels * pixel_scale + pixel_offset``
            with ``pixels`` in ``0..255``; finite numbers, ``pixel_scale`` not 0.
        crop_margin: fraction of the face box added on each side before cropping, a finite
            number >= 0.
        model_file: the model's file name, relative to the config's directory.
        architecture: name of the architecture that built the model, if known.
        extra: every other field of the JSON file.

    Raises:
        ValueError: a field has a wrong type or value (the message names the field);
            :meth:`read` and :meth:`from_dict` raise :class:`ModelLoadError` instead.
    """

    labels: tuple[str, ...]
    input_size: tuple[int, int] = (48, 48)
    channels: int = 1
    color_order: str = "rgb"
    pixel_scale: float = 1.0 / 255.0
    pixel_offset: float = 0.0
    crop_margin: float = 0.0
    model_file: str = "model.keras"
    architecture: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.labels, (str, bytes)) or not isinstance(self.labels, (list, tuple)):
            raise ValueError(
                f"labels must be a list of label names such as [\"angry\", \"happy\"], "
                f"got {_shown(self.labels)}"
            )
        if not self.labels or not all(
                (isinstance(x, str) and x) or _is_int(x) for x in self.labels):
            raise ValueError(
                f"labels must be a non-empty list of non-empty strings, got {_shown(self.labels)}")
        self.labels = tuple(str(x) for x in self.labels)  # numbers ([0, 1, 2]) as names
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {self.labels}")
        size = self.input_size
        if (isinstance(size, (str, bytes)) or not isinstance(size, (list, tuple))
                or len(size) != 2 or not all(_is_whole(v) and v >= 1 for v in size)):
            raise ValueError(
                f"input_size must be [height, width] in pixels (two ints >= 1), got "
                f"{_shown(size)}")
        self.input_size = (int(size[0]), int(size[1]))
        if not _is_whole(self.channels) or self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {_shown(self.channels)}")
        self.channels = int(self.channels)
        if self.color_order not in ("rgb", "bgr"):
            raise ValueError(
                f"color_order must be 'rgb' or 'bgr', got {_shown(self.color_order)}")
        self.pixel_scale = _finite("pixel_scale", self.pixel_scale)
        if self.pixel_scale == 0:
            raise ValueError("pixel_scale must not be 0 (every input would be the same)")
        self.pixel_offset = _finite("pixel_offset", self.pixel_offset)
        self.crop_margin = _finite("crop_margin", self.crop_margin)
        if self.crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0 (a fraction of the face box), got "
                                 f"{_shown(self.crop_margin)}")
        if not isinstance(self.model_file, str) or not self.model_file.strip():
            raise ValueError(f"model_file must be the model's file name, such as "
                                 f"\"model.keras\", got {_shown(self.model_file)}")
        if self.architecture is not None and not isinstance(self.architecture, str):
            raise ValueError(
                f"architecture must be a name or null, got {_shown(self.architecture)}")

    @classmethod
    def read(cls, path: str | Path) -> ModelConfig:
        """Read a ``config.json`` file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelLoadError(f"{path}: model config not found") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path}: not a valid JSON model config ({exc})") from exc
        if not isinstance(data, dict) or "labels" not in data:
            raise ModelLoadError(f"{path}: model config has no 'labels' list")
        try:
            return cls.from_dict(data)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """A config from a ``config.json`` mapping; unknown keys go to :attr:`extra`.

        Raises:
            ModelLoadError: a field has a wrong type or value.
        """
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            return cls(**kwargs, extra=extra)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping written to ``config.json`` (:attr:`extra` merged in)."""
        data = asdict(self)
        extra = data.pop("extra")
        data["labels"] = list(self.labels)
        data["input_size"] = list(self.input_size)
        return {**data, **extra}

    def write(self, directory: str | Path) -> Path:
        """Write ``config.json`` into ``directory``; returns its path."""
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    """An int, or a float with a whole value (``48.0``, as some JSON writers give ints)."""
    return _is_int(value) or (isinstance(value, float) and value.is_integer())


def _finite(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value):
        raise ValueError(f"{name} must be a finite number, got {_shown(value)}")
    return float(value)


def _shown(value: Any) -> str:
    """``value`` as written in JSON (``null``, ``"abc"``), for messages about config.json."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
