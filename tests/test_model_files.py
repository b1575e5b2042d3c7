"""Model files users bring: plain Keras models saved by their own code, not by
``emotionkit train`` (functional, Sequential; ``.keras`` and legacy ``.h5``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import save_model_dir, small_cnn


def _sequential(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((48, 48, 1)),
        keras.layers.Conv2D(8, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(7, activation="softmax"),
    ])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("build", [_sequential, lambda: small_cnn(7)],
                         ids=["sequential", "functional"])
def test_plain_model_files_load_and_classify_real_faces(
        build, suffix: str, tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """A Sequential model (the commonest way to write a small CNN) failed to load with a
    raw KeyError from the batch-norm folding step; the classifier must give the model's
    own probabilities."""
    from emotionkit import EmotionRecognizer

    model = build()
    path = tmp_path / f"model{suffix}"
    model.save(path)
    rec = EmotionRecognizer(detector="none", classifier=path)
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    crops = [cv2.resize(gray[y:y + 120, x:x + 120], (48, 48), interpolation=cv2.INTER_AREA)
             for y, x in ((60, 160), (70, 170), (40, 150), (200, 200))]  # the face, and not
    got = rec.classify(crops)
    # a bare model file is fed pixels / 255 (docs/models.md)
    x = np.stack(crops)[..., None].astype("float32") / 255.0
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert rec.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")



def _self_scaling(kind: str):
    """A 3-channel model that scales its own 0..255 pixels: ``Rescaling(1/255)`` first,
    ``Resizing`` then ``Rescaling(1/127.5, offset=-1)``, or a ``uint8`` input."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 3), dtype="uint8" if kind == "uint8" else "float32")
    x = inputs
    if kind == "resize+rescale":
        x = layers.Rescaling(1 / 127.5, offset=-1)(layers.Resizing(32, 32)(x))
    else:
        x = layers.Rescaling(1 / 255)(x)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(7, activation="softmax")(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("kind", ["rescale", "resize+rescale", "uint8"])
def test_bare_models_that_scale_their_own_pixels_get_0_to_255(
        kind: str, suffix: str, tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """A model with its own ``Rescaling`` layer (as Keras's tutorials write them) or a
    ``uint8`` input takes pixels 0..255; a bare file of one was fed pixels / 255 (scaled
    twice, or truncated to 0 and 1) and gave near-uniform probabilities for every face."""
    from emotionkit import EmotionRecognizer

    model = _self_scaling(kind)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    rec = EmotionRecognizer(detector="none", classifier=path)
    crops = [cv2.resize(astronaut_bgr[y:y + 120, x:x + 120], (48, 48),
                        interpolation=cv2.INTER_AREA)
             for y, x in ((60, 160), (70, 170), (40, 150), (200, 200))]
    got = rec.classify(crops)
    rgb = np.stack(crops)[..., ::-1]
    expected = np.asarray(model(rgb if kind == "uint8" else rgb.astype("float32"),
                                training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected, axis=1).min() > 0.01  # not the uniform rows of wrong input


def test_integer_input_with_a_config_scaling_pixels_is_refused(tmp_path: Path) -> None:
    """A ``uint8``-input model whose config.json scales pixels to 0..1 would see every
    input cut to 0 or 1: one ModelLoadError naming the file and the fix."""
    from emotionkit import FER_LABELS, ModelLoadError
    from emotionkit.classifiers import load_classifier

    save_model_dir(tmp_path, _self_scaling("uint8"), FER_LABELS)  # pixel_scale 1/255
    with pytest.raises(ModelLoadError, match=r"model\.keras: model input is uint8 .*"
                                             r"pixel_scale 1/255.*set pixel_scale"):
        load_classifier(tmp_path)
