"""Keras emotion classifiers: load a ``.keras`` file or a model directory and predict.

Keras is imported here and only here (lazily), so ``import emotionkit`` stays fast.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmotionKitError, ModelLoadError
from ._fold import fold_batch_norms
from .base import FER_LABELS
from .config import CONFIG_NAME, ModelConfig
from .preprocess import faces_to_pixels, pixels_to_input

__all__ = ["KerasClassifier", "load_classifier"]

_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


class KerasClassifier:
    """An emotion classifier backed by a Keras 3 model.

    Args:
        model: a loaded ``keras.Model`` whose input is ``(None, H, W, C)`` and whose output
            is ``(None, len(labels))`` probabilities (softmax is applied if the outputs
            are not already probabilities).
        config: how to preprocess inputs and name outputs.
        batch_size: largest batch sent to the model in one call.

    Use :func:`load_classifier` to build one from a file or directory. Predictions run on
    an inference function made here from ``model``'s weights: for a functional model, a
    compiled copy in which each batch normalisation right after a float32 ``Conv2D`` of its
    own (not inside a nested model, such as a transfer model's base) is folded into it
    (same probabilities up to float rounding, ~20% faster on a CPU); other models are
    compiled as they are. :attr:`model` is the model as given, for inspection only (see
    there).

    A classifier cannot be used in a process that inherited it through ``fork()``
    (TensorFlow's and JAX's threads are not copied, and the child would hang): build it in
    each worker process, or start workers with ``spawn`` / ``forkserver``.

    Raises:
        ModelLoadError: the model gives non-finite outputs (NaN or infinity) on a check
            batch of random faces.
    """

    def __init__(self, model: Any, config: ModelConfig, batch_size: int = 256) -> None:
        self._pid = os.getpid()
        self._model = model
        self.config = config
        self.batch_size = batch_size
        check = _check_batch(config)
        self._predict_fn, self._pads_batches = _compile_predict(
            fold_batch_norms(model, check), config)
        if not np.all(np.isfinite(self._outputs(check))):
            raise ModelLoadError(f"model {model.name!r} {_NON_FINITE} on random faces")

    def __copy__(self) -> KerasClassifier:
        """A shallow copy in this process (sharing the model), as before pickling was
        refused."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce__(self) -> Any:
        raise TypeError(
            "KerasClassifier cannot be pickled (its compiled model belongs to this process); "
            "to send a recognizer or a classifier to other processes, give it the "
            "classifier's name or path (EmotionRecognizer(classifier='fer-cnn' or a path)) "
            "and build it there")

    @property
    def model(self) -> Any:
        """The Keras model as given, for inspection; treat it as read-only. Predictions run
        on the inference function made from its weights when this classifier was created
        and need not follow later changes to them (a folded copy or a JAX compilation
        does not): after changing them, build a new ``KerasClassifier(model, config)``."""
        return self._model

    @property
    def labels(self) -> tuple[str, ...]:
        """Output labels, in the order of the probability columns."""
        return self.config.labels

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels that face crops are resized to."""
        return self.config.input_size

    @property
    def crop_margin(self) -> float:
        """Fraction of the face box added on each side before cropping."""
        return self.config.crop_margin

    def predict(self, faces: Sequence[np.ndarray], tta: bool = False) -> np.ndarray:
        """Probabilities ``(N, len(labels))`` for BGR ``uint8`` face crops of any size.

        With ``tta=True`` each face is also classified mirrored left-right and the two
        probability rows are averaged. Raises :class:`EmotionKitError` in a process that
        inherited this classifier through ``fork()``.
        """
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        pixels = faces_to_pixels(
            faces, self.config.input_size, self.config.channels, self.config.color_order
        )
        return self.predict_pixels(pixels, tta=tta)

    def predict_pixels(self, pixels: np.ndarray, tta: bool = False) -> np.ndarray:
        """Probabilities ``(N, len(labels))`` for pixels already in the model's format:
        ``(N, H, W, C)`` ``uint8`` (0..255) at ``input_size``, 1 channel (gray) or 3 in the
        config's ``color_order`` (``"rgb"`` unless stated: not the BGR that
        :meth:`predict` takes). ``tta`` as for :meth:`predict`."""
        x = pixels_to_input(pixels, self.config)
        probs = self._run(x)
        if tta:
            probs = (probs + self._run(x[:, :, ::-1, :])) / 2.0
        return probs

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for model inputs ``x``, run in chunks of ``batch_size``.

        Raises :class:`EmotionKitError` if the model gives NaN or infinite outputs, or in a
        process that inherited this classifier through ``fork()`` (where it would hang)."""
        if self._pid != os.getpid():
            raise EmotionKitError(
                f"KerasClassifier.predict(): this classifier was made in process {self._pid} "
                "and inherited through fork(), where TensorFlow and JAX hang; create the "
                "classifier (or recognizer) in this process (e.g. in a pool initializer) or "
                "start workers with the 'spawn' or 'forkserver' method")
        chunks = []
        for i in range(0, len(x), self.batch_size):
            out = self._outputs(x[i : i + self.batch_size])
            if not np.all(np.isfinite(out)):
                raise EmotionKitError(f"the model {_NON_FINITE} for some of these faces")
            chunks.append(_as_probabilities(out))
        return np.concatenate(chunks, axis=0)

    def _outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's raw ``float32`` outputs for one chunk of inputs ``x``.

        On JAX, where each new batch size compiles the model again (hundreds of ms), the
        chunk is padded with zero rows to the next power of two (at most ``batch_size``),
        which bounds the compilations to about log2(``batch_size``); the padding's outputs
        are cut off. Rows do not affect each other at inference, so the results are those
        of the unpadded chunk."""
        n = len(x)
        if self._pads_batches:
            size = max(n, min(1 << (n - 1).bit_length(), self.batch_size))
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        return np.asarray(self._predict_fn(x), dtype=np.float32)[:n]

    def __repr__(self) -> str:
        return f"KerasClassifier(labels={self.labels}, input_size={self.input_size})"


def load_classifier(path: str | Path, batch_size: int = 256) -> KerasClassifier:
    """Load a classifier from a model directory or a Keras model file.

    ``path`` is either a directory holding ``config.json`` and the model file it names
    (as written by ``emotionkit train``), or a ``.keras``/``.h5`` file. For a bare file, a
    ``config.json`` beside it that names this file is used; otherwise the input size comes
    from the model, a 7-output model gets the FER2013 labels, and the model is fed pixels
    / 255 (0..1, RGB for 3 channels), or 0..255 where it scales them itself (an integer
    input, or a ``Rescaling`` by about 1/255 before its first layer with weights).

    Models are loaded with Keras ``safe_mode=True``: a file that would run arbitrary code
    (e.g. a ``Lambda`` layer) is refused.

    Raises:
        ModelLoadError: missing path, invalid model file, or inconsistent config (also:
            an integer-input model whose config scales pixels to fractions).
    """
    path = Path(path)
    config: ModelConfig | None
    if path.is_dir():
        config = ModelConfig.read(path / CONFIG_NAME)
        model_path = path / config.model_file
    elif path.is_file():
        config, model_path = _sidecar_config(path), path
    else:
        raise ModelLoadError(f"{path}: no such model file or directory")
    model = _load_keras_model(model_path)
    _check_one_image_in_one_row_out(model, model_path)
    config = config or _infer_config(model, model_path)
    _check_shapes(model, config, model_path)
    try:
        return KerasClassifier(model, config, batch_size=batch_size)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{model_path}: {exc}") from exc


def _import_keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ INFO lines
    import keras

    return keras


def _load_keras_model(model_path: Path) -> Any:
    if not model_path.is_file():
        raise ModelLoadError(f"{model_path}: model file not found")
    if model_path.suffix.lower() not in _MODEL_SUFFIXES:
        expected = ", ".join(_MODEL_SUFFIXES)
        raise ModelLoadError(
            f"{model_path}: unsupported model file type; expected one of {expected}"
        )
    if model_path.suffix.lower() == ".keras" and not zipfile.is_zipfile(model_path):
        raise ModelLoadError(
            f"{model_path}: not a loadable Keras model (a .keras file is a zip archive and "
            f"this one is not: truncated or not a model); download or save it again"
        )
    keras = _import_keras()
    from . import _keras_layers  # noqa: F401 - registers emotionkit's layers for loading

    try:
        return keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{model_path}: not a loadable Keras model ({reason})") from exc


def _sidecar_config(model_path: Path) -> ModelConfig | None:
    """The ``config.json`` beside ``model_path`` if it is an emotionkit config naming that
    file; another program's ``config.json`` (a JSON object without ``labels``) is ignored."""
    sidecar = model_path.parent / CONFIG_NAME
    if not sidecar.is_file():
        return None
    try:
        foreign = "labels" not in json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        foreign = False  # unreadable: ModelConfig.read says why
    if foreign:
        return None
    config = ModelConfig.read(sidecar)
    return config if config.model_file == model_path.name else None


def _check_one_image_in_one_row_out(model: Any, model_path: Path) -> None:
    """Raise :class:`ModelLoadError` unless ``model`` has one ``(N, H, W, C)`` input and one
    ``(N, K)`` output (a score per label)."""
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ModelLoadError(
            f"{model_path}: expected an image model with one input (N, H, W, C), got "
            f"{_shapes(inputs)}")
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ModelLoadError(
            f"{model_path}: expected one output (N, labels) with a score per label, got "
            f"{_shapes(outputs)}")


def _shapes(tensors: Sequence[Any]) -> str:
    """The shapes of ``tensors`` for a message: ``(None, 48, 48, 1), (None, 7)``."""
    return ", ".join(str(tuple(t.shape)) for t in tensors)


def _infer_config(model: Any, model_path: Path) -> ModelConfig:
    shape = tuple(model.input_shape)
    if None in shape[1:]:
        raise ModelLoadError(
            f"{model_path}: model input {shape} has no fixed height, width and channels; add "
            f"a {CONFIG_NAME} beside it with input_size and channels (see docs/models.md)"
        )
    out = int(model.output_shape[-1])
    if out != len(FER_LABELS):
        raise ModelLoadError(
            f"{model_path}: model has {out} outputs and no {CONFIG_NAME} beside it naming "
            f"its labels; add one (see docs/models.md)"
        )
    scale = 1.0 if _takes_0_to_255(model) else ModelConfig.pixel_scale
    try:
        return ModelConfig(labels=FER_LABELS, input_size=(shape[1], shape[2]),
                           channels=shape[3], pixel_scale=scale, model_file=model_path.name)
    except ValueError as exc:
        raise ModelLoadError(f"{model_path}: {exc}") from None


def _integer_input(model: Any) -> str | None:
    """The name of ``model``'s input dtype if it is an integer type (``"uint8"``), else
    ``None``."""
    dtype = str(model.inputs[0].dtype)
    return dtype if dtype.startswith(("int", "uint")) else None


def _takes_0_to_255(model: Any) -> bool:
    """Whether ``model`` scales its own pixels (0..255): an integer input, or before its
    first layer with weights a ``Rescaling`` that divides by about 255 (``1/255``,
    ``1/127.5`` with offset -1, ImageNet's per-channel ``1/(std * 255)``) or emotionkit's
    ``ApplicationPreprocess``."""
    keras = _import_keras()
    from ._keras_layers import ApplicationPreprocess

    if _integer_input(model):
        return True
    for layer in model.layers:
        if isinstance(layer, ApplicationPreprocess):
            return True
        if isinstance(layer, keras.layers.Rescaling):
            return bool(np.all(np.abs(np.asarray(layer.scale, dtype=np.float64)) < 0.05))
        if layer.weights:
            return False
    return False


def _check_shapes(model: Any, config: ModelConfig, model_path: Path) -> None:
    shape = tuple(model.input_shape)
    expected = (*config.input_size, config.channels)
    if any(a is not None and a != b for a, b in zip(shape[1:], expected)):
        raise ModelLoadError(
            f"{model_path}: model input {shape[1:]} does not match config {expected}"
        )
    dtype = _integer_input(model)
    if dtype and not all(float(v).is_integer() for v in (config.pixel_scale,
                                                          config.pixel_offset)):
        raise ModelLoadError(
            f"{model_path}: model input is {dtype} (whole pixel values) but {CONFIG_NAME} "
            f"has pixel_scale {_fraction(config.pixel_scale)} and pixel_offset "
            f"{config.pixel_offset:g}, which give fractions; set pixel_scale 1 and "
            f"pixel_offset 0 (the model scales its pixels itself)"
        )
    out = model.output_shape[-1]
    if out != len(config.labels):
        raise ModelLoadError(
            f"{model_path}: model has {out} outputs but config names {len(config.labels)} labels"
        )


def _fraction(value: float) -> str:
    """``value`` as ``1/N`` when it is one over a whole number (``1/255``), else ``%g``."""
    inverse = 1.0 / value
    return f"1/{inverse:g}" if abs(inverse - round(inverse)) < 1e-6 else f"{value:g}"


def _compile_predict(
    model: Any, config: ModelConfig,
) -> tuple[Callable[[np.ndarray], Any], bool]:
    """A compiled inference function -- graph mode on TensorFlow, ``jit`` on JAX -- and
    whether batches should be padded to a few fixed sizes for it (JAX, which compiles once
    per input shape; TensorFlow's function is traced once for any batch size).

    A compiled call avoids the per-call overhead of ``model.predict`` (milliseconds),
    which dominates for single faces.
    """
    keras = _import_keras()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, *config.input_size, config.channels), tf.float32)
        return tf.function(lambda x: _one_output(model, x), input_signature=[spec],
                           autograph=False), False
    if backend == "jax":
        import jax

        return jax.jit(lambda x: _one_output(model, x)), True
    return lambda x: _one_output(model, x), False


def _one_output(model: Any, x: Any) -> Any:
    """``model``'s one output for inputs ``x`` at inference (unwrapped when the model
    gives it in a list or by name: ``{"probs": ...}``)."""
    return _import_keras().tree.flatten(model(x, training=False))[0]


def _check_batch(config: ModelConfig) -> np.ndarray:
    """Two fixed random faces as the model is fed them (``config``'s size, channels and
    pixel scaling), to check an inference copy against the model."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, *config.input_size, config.channels), dtype=np.uint8)
    return pixels_to_input(pixels, config)


_NON_FINITE = (
    "gives non-finite outputs (NaN or infinity): its weights are broken, typically by "
    "training with a learning rate that diverged; retrain it (a lower learning rate) or "
    "use another model"
)


def _as_probabilities(out: np.ndarray) -> np.ndarray:
    out = out.astype(np.float32)
    sums = out.sum(axis=1, keepdims=True)
    if np.all(out >= 0) and np.allclose(sums, 1.0, atol=1e-3):
        return out / sums
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
