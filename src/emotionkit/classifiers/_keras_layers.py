"""Keras layers that emotionkit models contain; importing this module registers them so
``keras.saving.load_model(..., safe_mode=True)`` can rebuild those models."""

from __future__ import annotations

import importlib
from typing import Any

import keras

__all__ = ["ApplicationPreprocess", "application_constructor"]


def application_constructor(name: str) -> Any:
    """The ``keras.applications`` model constructor called ``name`` (case-insensitive:
    ``vgg19`` -> ``keras.applications.VGG19``)."""
    from ..errors import EmotionKitError

    names = {n.lower(): n for n in dir(keras.applications) if n[:1].isupper()}
    if name.lower() not in names:
        raise EmotionKitError(
            f"unknown Keras application {name!r}; available: {', '.join(sorted(names.values()))}"
        )
    return getattr(keras.applications, names[name.lower()])


@keras.saving.register_keras_serializable(package="emotionkit")
class ApplicationPreprocess(keras.layers.Layer):
    """The ``preprocess_input`` of a ``keras.applications`` model, as a layer.

    Input: RGB in ``0..255`` (float). Output: what that application's base expects (VGG:
    BGR minus the ImageNet mean; MobileNetV2/ResNetV2: ``[-1, 1]``; EfficientNet,
    MobileNetV3, ConvNeXt: unchanged, they rescale inside).
    """

    def __init__(self, application: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.application = application
        module = application_constructor(application).__module__.rsplit(".", 1)[-1]
        self._preprocess = importlib.import_module(f"keras.applications.{module}").preprocess_input

    def call(self, inputs: Any) -> Any:
        return self._preprocess(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "application": self.application}
