"""Batch-norm folding on model files users bring: the classifier loads them and gives the
plain Keras model's own probabilities on real face crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotionkit import EmotionRecognizer


def _face_crops(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    """Four 48x48 gray crops of the astronaut photo: the face, near it, and off it."""
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    return [cv2.resize(gray[y:y + 120, x:x + 120], (48, 48), interpolation=cv2.INTER_AREA)
            for y, x in ((60, 160), (70, 170), (40, 150), (200, 200))]


def _trained_statistics(model) -> None:
    """Batch-norm statistics as after training (not the initial 0 and 1)."""
    import keras

    rng = np.random.default_rng(0)
    values = {"gamma": lambda s: rng.uniform(0.5, 2, s), "beta": lambda s: rng.normal(0, 1, s),
              "moving_mean": lambda s: rng.normal(0, 1, s),
              "moving_variance": lambda s: rng.uniform(0.2, 3, s)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([values[w.path.split("/")[-1]](w.shape) for w in layer.weights])


def _conv_bn_then_op():
    """Conv -> BN -> ``keras.activations.relu`` (a Keras op in the graph, not a layer),
    and a convolution read only by ``x * 0.5``."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.activations.relu(layers.BatchNormalization()(x))
    x = layers.Conv2D(8, 3, padding="same")(x) * 0.5
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(7, activation="softmax")(x))


def test_models_with_keras_ops_after_a_convolution_load_and_fold(
        tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """A model whose convolution or batch norm is read by a Keras op (``keras.ops.relu``,
    ``x * 0.5``) rather than a layer failed to load with a raw ``KeyError`` from the
    folding step; it loads, its batch norm is folded, and it gives its own probabilities
    (``.keras`` only: Keras cannot load such a model back from ``.h5``)."""
    from emotionkit.classifiers._fold import fold_batch_norms

    model = _conv_bn_then_op()
    _trained_statistics(model)
    model.save(tmp_path / "ops.keras")
    crops = _face_crops(astronaut_bgr)
    got = EmotionRecognizer(detector="none", classifier=tmp_path / "ops.keras").classify(crops)
    x = np.stack(crops)[..., None].astype("float32") / 255.0
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    folded = fold_batch_norms(model, x[:2])
    assert "BatchNormalization" not in [type(layer).__name__ for layer in folded.layers]
