"""``config.json``: the description stored next to every model file.

``emotionkit train`` writes it; :func:`~emotionkit.classifiers.load_classifier` reads it.
Fields not listed here (training arguments, metrics, data fingerprint) are kept in
:attr:`ModelConfig.extra` and written back unchanged.
"""

from __future__ import annotations

import json
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
            with ``pixels`` in ``0..255``.
        crop_margin: fraction of the face box added on each side before cropping.
        model_file: the model's file name, relative to the config's directory.
        architecture: name of the architecture that built the model, if known.
        extra: every other field of the JSON file.
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
            raise ModelLoadError(
                f"labels must be a list of label names such as [\"angry\", \"happy\"], "
                f"got {self.labels!r}"
            )
        self.labels = tuple(str(label) for label in self.labels)
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise ModelLoadError(f"labels must be unique and non-empty, got {self.labels}")
        if self.channels not in (1, 3):
            raise ModelLoadError(f"channels must be 1 or 3, got {self.channels}")
        if self.color_order not in ("rgb", "bgr"):
            raise ModelLoadError(f"color_order must be 'rgb' or 'bgr', got {self.color_order!r}")

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
        except (TypeError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"invalid model config: {exc}") from exc

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
