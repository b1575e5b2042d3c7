"""Transfer-learning architectures: a ``keras.applications`` base with a new head.

Registered names: ``vgg19`` (the seed's model), ``vgg16``, ``resnet50``,
``mobilenet-v3-small``, and ``transfer`` (any application, chosen with the ``base``
option). Train them with :class:`~emotionkit.training.TransferTrainer`.

The model takes the same input as ``fer-cnn`` (48x48 gray faces, pixels ``0..255``) and
does the rest inside the graph, so inference code needs nothing special::

    pixels (48x48x1, 0..255) -> Resizing(size x size) -> gray to RGB
        -> ApplicationPreprocess (the base's own preprocess_input)
        -> base (include_top=False; its own batch norm in inference mode;
                 batch_norm=True adds trainable batch norm to a plain base such as VGG)
        -> flatten or global average pool
        -> Dense(head[i], ReLU, L2) + Dropout  for each head width
        -> Dense(num_classes, softmax)
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from .architectures import Architecture, register_architecture

__all__ = ["base_of", "set_trainable_blocks"]

_BLOCK_KEY = re.compile(r"^\D*\d+")


def _transfer_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    base: str = "VGG19",
    size: int = 48,
    pooling: str = "flatten",
    head: tuple[int, ...] = (128, 128),
    dropout: float = 0.5,
    l2: float = 1e-4,
    trainable_blocks: int = 1,
    batch_norm: bool = False,
    name: str = "transfer",
) -> Any:
    """A ``keras.applications`` ``base`` (random weights; the trainer loads pretrained
    ones) behind input upscaling to ``size`` x ``size`` pixels and gray-to-RGB, with a new
    head of ``head`` ReLU layers (L2 ``l2``, dropout ``dropout``) and a softmax.

    ``pooling`` is ``"flatten"`` (the seed's VGG head) or ``"avg"``. ``trainable_blocks``
    is how many of the base's last blocks train (see :func:`set_trainable_blocks`).
    ``batch_norm`` puts batch normalisation between each convolution of a plain base
    (VGG16/VGG19) and its ReLU, as in torchvision's ``vgg19_bn``, for training such a base
    from scratch (with ``dropout=0.0``: see docs/training.md). Those layers use batch
    statistics while training; the batch norm
    that a base has of its own (ResNet, MobileNet) always runs in inference mode.
    """
    import keras
    from keras import layers

    from ..classifiers._keras_layers import ApplicationPreprocess, application_constructor

    if pooling not in ("flatten", "avg"):
        raise ValueError(f"pooling must be 'flatten' or 'avg', got {pooling!r}")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    if tuple(input_shape[:2]) != (size, size):
        x = layers.Resizing(size, size, interpolation="bilinear", name="upscale")(x)
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = ApplicationPreprocess(base, name="base_preprocess")(x)
    base_model = application_constructor(base)(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    if batch_norm:
        base_model = _with_batch_norm(keras, base_model)
    set_trainable_blocks(base_model, trainable_blocks)
    x = base_model(x) if batch_norm else base_model(x, training=False)
    if pooling == "flatten":
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    for i, units in enumerate(head):
        x = layers.Dense(units, activation="relu", kernel_regularizer=keras.regularizers.L2(l2),
                         name=f"head{i + 1}")(x)
        x = layers.Dropout(dropout, name=f"head{i + 1}_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def _with_batch_norm(keras: Any, base: Any) -> Any:
    """A copy of the plain chain ``base`` with ``Conv2D -> BatchNormalization -> ReLU`` in
    place of each ReLU convolution (layer names kept, so pretrained weights still map)."""
    from keras import layers

    if any(isinstance(layer, layers.BatchNormalization) for layer in base.layers) or any(
            len(keras.tree.flatten(layer.input)) != 1 for layer in base.layers[1:]):
        raise ValueError(
            f"batch_norm=True needs a base that is a plain chain of layers without batch "
            f"norm (VGG16, VGG19); {base.name} is not"
        )
    inputs = keras.Input(shape=base.input_shape[1:], name=base.layers[0].name)
    x = inputs
    for layer in base.layers[1:]:
        config = layer.get_config()
        if isinstance(layer, layers.Conv2D) and config.get("activation") == "relu":
            x = layers.Conv2D.from_config({**config, "activation": "linear"})(x)
            x = layers.BatchNormalization(name=f"{layer.name}_bn")(x)
            x = layers.ReLU(name=f"{layer.name}_relu")(x)
        else:
            x = type(layer).from_config(config)(x)
    return keras.Model(inputs, x, name=f"{base.name}_bn")


def base_of(model: Any) -> Any:
    """The ``keras.applications`` base inside a transfer model."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"model {model.name!r} has no nested base model")


def set_trainable_blocks(base: Any, blocks: int) -> None:
    """Make the last ``blocks`` blocks of ``base`` trainable and freeze the rest.

    A block is a run of layers whose names share the prefix up to the first number
    (VGG ``block5_conv1`` -> ``block5``; ResNet ``conv5_block3_out`` -> ``conv5``;
    EfficientNet ``block7a_project_conv`` -> ``block7``). A layer without a number of its
    own -- an unnumbered name (EfficientNet ``top_conv``, DenseNet's last ``bn``) or one
    that Keras made up (``conv2d_93``, ``batch_normalization_4``: a count, not a block) --
    belongs to the block before it (before the first block: to the first). Only blocks
    with weights count. ``0`` freezes the whole base, a negative number or one larger than
    the block count trains all of it.
    """
    keys = _block_keys(base.layers)
    groups = list(dict.fromkeys(k for k, layer in zip(keys, base.layers) if layer.weights))
    chosen = set(groups if blocks < 0 else groups[max(0, len(groups) - blocks):] if blocks else [])
    base.trainable = bool(chosen)
    for key, layer in zip(keys, base.layers):
        layer.trainable = key in chosen


def _block_keys(layers: list[Any]) -> list[str]:
    """Each layer's block (see :func:`set_trainable_blocks`), in layer order."""
    own = [None if _auto_named(layer) else _BLOCK_KEY.match(layer.name) for layer in layers]
    keys = [match.group(0) if match else None for match in own]
    current = next((key for key in keys if key is not None), "")
    blocks = []
    for key in keys:
        current = key or current
        blocks.append(current)
    return blocks


def _auto_named(layer: Any) -> bool:
    """Whether ``layer`` has the name Keras gives a layer without one (its class name in
    snake case, with a count: ``conv2d_93``)."""
    cls = re.sub(r"\W+", "", type(layer).__name__)
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", cls)).lower()
    return re.fullmatch(rf"{re.escape(snake)}(_\d+)?", layer.name) is not None


def _register(name: str, base: str, description: str) -> None:
    # partial keeps _transfer_model's signature (with this base as the default of ``base``),
    # which the trainer reads to record every option in config.json
    register_architecture(Architecture(
        name=name, builder=partial(_transfer_model, base=base), pixel_scale=1.0,
        pixel_offset=0.0, transfer=True, description=description,
    ))


_register("vgg19", "VGG19", "VGG19 base, new 2x128 head (the seed's transfer model)")
_register("vgg16", "VGG16", "VGG16 base, new 2x128 head")
_register("resnet50", "ResNet50", "ResNet50 base, new 2x128 head")
_register("mobilenet-v3-small", "MobileNetV3Small", "MobileNetV3-Small base, new 2x128 head")
_register("transfer", "VGG19", "any keras.applications base (option base=NAME), new head")
