"""The ``fer-cnn`` classifier bundled with the package (loaded offline from package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["bundled_fer_cnn_dir", "load_fer_cnn"]


def bundled_fer_cnn_dir() -> Path:
    """Directory of the bundled ``fer-cnn`` model (``config.json`` + model file)."""
    return Path(str(resources.files("emotionkit") / "data" / "models" / "fer-cnn"))


def load_fer_cnn(**kwargs: Any) -> Any:
    """Load the bundled ``fer-cnn`` classifier; ``kwargs`` go to :class:`KerasClassifier`."""
    directory = bundled_fer_cnn_dir()
    if not (directory / "config.json").is_file():
        raise ModelLoadError(
            "the bundled 'fer-cnn' model is not part of this emotionkit version yet; "
            "pass a Keras model file or model directory instead (--classifier PATH)"
        )
    from .keras_model import load_classifier

    return load_classifier(directory, **kwargs)
