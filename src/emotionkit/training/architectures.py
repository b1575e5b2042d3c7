"""A small registry of model architectures (``timm``-style): build a Keras model by name.

>>> from emotionkit.training import build_model, list_architectures
>>> list_architectures()
['fer-cnn', 'mobilenet-v3-small', 'resnet50', 'transfer', 'vgg16', 'vgg19']
>>> model = build_model("fer-cnn", input_shape=(48, 48, 1), num_classes=7)

Each architecture also names the input preprocessing it expects (input size, channels,
colour order, pixel scale/offset); the trainer copies it into the model's ``config.json``
so inference feeds the model exactly what training did. Models end with a softmax and
take ``float32`` input ``pixels * pixel_scale + pixel_offset`` (``pixels`` in ``0..255``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import EmotionKitError

__all__ = [
    "Architecture",
    "build_model",
    "get_architecture",
    "list_architectures",
    "register_architecture",
]


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Attributes:
        name: registry name (``--arch``).
        builder: ``builder(input_shape, num_classes, **kwargs) -> keras.Model``.
        input_size: default ``(height, width)`` in pixels.
        channels: default number of input channels (1 = gray, 3 = colour).
        color_order: ``"rgb"`` or ``"bgr"`` for 3-channel input.
        pixel_scale, pixel_offset: model input is ``pixels * pixel_scale + pixel_offset``.
        description: one line for ``list_architectures`` users.
        transfer: built on a pretrained ``keras.applications`` base; train it with
            :class:`~emotionkit.training.TransferTrainer` (which loads the base weights).
    """

    name: str
    builder: Callable[..., Any]
    input_size: tuple[int, int] = (48, 48)
    channels: int = 1
    color_order: str = "rgb"
    pixel_scale: float = 1.0 / 255.0
    pixel_offset: float = 0.0
    description: str = ""
    transfer: bool = False


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(arch: Architecture, overwrite: bool = False) -> Architecture:
    """Add ``arch`` to the registry (``overwrite=True`` replaces an existing name)."""
    if arch.name in _REGISTRY and not overwrite:
        raise EmotionKitError(f"architecture {arch.name!r} is already registered")
    _REGISTRY[arch.name] = arch
    return arch


def list_architectures() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def get_architecture(name: str) -> Architecture:
    """The registered :class:`Architecture` called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EmotionKitError(
            f"unknown architecture {name!r}; available: {', '.join(list_architectures())}"
        ) from None


def build_model(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int = 7,
    **kwargs: Any,
) -> Any:
    """Build an untrained ``keras.Model`` of architecture ``name``.

    Args:
        name: a name from :func:`list_architectures`.
        input_shape: ``(height, width, channels)``; default: the architecture's own.
        num_classes: number of softmax outputs.
        **kwargs: architecture-specific options (e.g. ``widths`` for ``fer-cnn``).
    """
    arch = get_architecture(name)
    if input_shape is None:
        input_shape = (*arch.input_size, arch.channels)
    return arch.builder(tuple(input_shape), int(num_classes), **kwargs)


def _fer_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    convs_per_block: int | tuple[int, ...] = 2,
    separable: bool | int = False,
    stem_stride: int = 1,
    dropout: float = 0.3,
    head_dropout: float = 0.5,
    bn_momentum: float = 0.99,
    name: str = "fer_cnn",
) -> Any:
    """``fer-cnn``: ``len(widths)`` blocks of (conv-BN-ReLU) x ``convs_per_block`` + max-pool
    + dropout, then global average pooling and a softmax layer.

    The first block uses plain 3x3 convolutions (on a 1- or 3-channel input a depthwise
    convolution saves nothing). ``separable=True`` makes the later blocks
    depthwise-separable (~8x fewer multiply-adds); an int ``k`` makes blocks ``k, k+1, ...``
    (0-based) separable; ``False`` keeps every block plain.

    ``bn_momentum`` is the batch-norm moving-average momentum (lower it for tiny datasets
    with few steps). ``convs_per_block`` is one count for every block or one count per block.
    """
    import keras
    from keras import layers

    if isinstance(convs_per_block, int):
        convs_per_block = (convs_per_block,) * len(widths)
    if len(convs_per_block) != len(widths):
        raise EmotionKitError("convs_per_block needs one count per block (len(widths))")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for b, width in enumerate(widths):
        for c in range(convs_per_block[b]):
            stride = stem_stride if (b == 0 and c == 0) else 1
            conv_name = f"block{b + 1}_conv{c + 1}"
            first_separable = 1 if separable is True else int(separable) or len(widths)
            if b >= max(1, first_separable):
                x = layers.SeparableConv2D(
                    width, 3, padding="same", use_bias=False, name=conv_name
                )(x)
            else:
                x = layers.Conv2D(
                    width, 3, strides=stride, padding="same", use_bias=False, name=conv_name
                )(x)
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{conv_name}_bn")(x)
            x = layers.ReLU(name=f"{conv_name}_relu")(x)
        if b < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
        x = layers.Dropout(dropout, name=f"block{b + 1}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(head_dropout, name="head_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


register_architecture(
    Architecture(
        name="fer-cnn",
        builder=_fer_cnn,
        description="small CNN for 48x48 grayscale faces (4 blocks, BN, dropout, GAP head)",
    )
)

# the transfer architectures register themselves (vgg19, resnet50, ...)
from . import applications  # noqa: E402, F401
