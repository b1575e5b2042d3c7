"""Loading Keras classifiers from files and model directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import save_model_dir, small_cnn
from emotionkit import FER_LABELS, ModelLoadError
from emotionkit.classifiers import EmotionClassifier, ModelConfig, load_classifier
from emotionkit.classifiers.preprocess import faces_to_pixels, pixels_to_input


def test_model_directory_loads_with_its_labels(brightness_model_dir: Path) -> None:
    clf = load_classifier(brightness_model_dir)
    assert isinstance(clf, EmotionClassifier)
    assert clf.labels == ("bright", "dark")
    assert clf.input_size == (48, 48)


def test_bare_keras_file_with_seven_outputs_gets_fer_labels(tmp_path: Path) -> None:
    small_cnn(7).save(tmp_path / "m.keras")
    clf = load_classifier(tmp_path / "m.keras")
    assert clf.labels == FER_LABELS


def test_bare_file_with_other_output_count_needs_a_config(tmp_path: Path) -> None:
    small_cnn(3).save(tmp_path / "m.keras")
    with pytest.raises(ModelLoadError, match=r"3 outputs.*config\.json"):
        load_classifier(tmp_path / "m.keras")


def test_foreign_config_json_beside_a_bare_file_is_ignored(tmp_path: Path) -> None:
    small_cnn(7).save(tmp_path / "m.keras")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "hidden": 8}))
    assert load_classifier(tmp_path / "m.keras").labels == FER_LABELS


def test_bare_file_with_a_variable_input_size_needs_a_config(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    outputs = keras.layers.Dense(7, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(tmp_path / "fcn.keras")
    with pytest.raises(ModelLoadError, match=r"no fixed height, width and channels"):
        load_classifier(tmp_path / "fcn.keras")


def test_crops_of_any_dtype_classify_like_uint8(brightness_model_dir: Path,
                                               astronaut_bgr: np.ndarray) -> None:
    clf = load_classifier(brightness_model_dir)
    face = astronaut_bgr[82:178, 177:273]
    expected = clf.predict([face])
    for crop in (face.astype(np.float32) / 255, face.astype(np.float64) / 255,
                 face.astype(np.uint16) * 257):
        np.testing.assert_allclose(clf.predict([crop]), expected, atol=0.02)


def test_probabilities_rows_sum_to_one_for_any_crop_size(fer7_model_dir: Path,
                                                          astronaut_bgr: np.ndarray) -> None:
    clf = load_classifier(fer7_model_dir)
    crops = [astronaut_bgr[82:178, 177:273], astronaut_bgr[:30, :50], astronaut_bgr[:, :, 0]]
    probs = clf.predict(crops)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert clf.predict([]).shape == (0, 7)


def test_tta_averages_the_mirrored_face(fer7_model_dir: Path, astronaut_bgr: np.ndarray) -> None:
    clf = load_classifier(fer7_model_dir)
    face = astronaut_bgr[82:178, 177:273]
    mirrored = np.ascontiguousarray(face[:, ::-1])
    expected = (clf.predict([face]) + clf.predict([mirrored])) / 2
    np.testing.assert_allclose(clf.predict([face], tta=True), expected, atol=1e-5)


def test_logit_models_are_softmaxed(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(7)(x))
    model.save(tmp_path / "logits.keras")
    probs = load_classifier(tmp_path / "logits.keras").predict([np.full((48, 48), 200, np.uint8)])
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)
    assert (probs > 0).all()


def test_config_mismatches_are_reported(tmp_path: Path) -> None:
    save_model_dir(tmp_path, small_cnn(7), FER_LABELS)
    data = json.loads((tmp_path / "config.json").read_text())
    data["labels"] = ["a", "b"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="7 outputs but config names 2"):
        load_classifier(tmp_path)
    # a string is not a label list (it used to become one label per character), and the
    # message names the file
    data["labels"] = "angry"
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=r"config\.json: labels must be a list"):
        load_classifier(tmp_path)


def test_invalid_files_give_clear_errors(tmp_path: Path) -> None:
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model")
    with pytest.raises(ModelLoadError, match="fake.keras: not a loadable Keras model") as err:
        load_classifier(fake)
    assert "not found" not in str(err.value)  # the file exists: say what is wrong with it
    assert "zip archive" in str(err.value)
    with pytest.raises(ModelLoadError, match="no such model"):
        load_classifier(tmp_path / "missing.keras")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ModelLoadError, match="config not found"):
        load_classifier(tmp_path / "dir")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ModelLoadError, match="unsupported model file type"):
        load_classifier(tmp_path / "weights.bin")


def test_lambda_layers_are_refused_by_safe_mode(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x)).save(
        tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match="lambda.keras"):
        load_classifier(tmp_path / "lambda.keras")


def test_config_round_trip_keeps_extra_fields(tmp_path: Path) -> None:
    cfg = ModelConfig(labels=("a", "b"), extra={"metrics": {"accuracy": 0.5}})
    cfg.write(tmp_path)
    again = ModelConfig.read(tmp_path / "config.json")
    assert again == cfg


def _layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_bundled_model_predicts_through_a_folded_copy(astronaut_bgr: np.ndarray) -> None:
    """The bundled fer-cnn (real batch-norm statistics): the inference copy has no batch
    normalisation left and gives the original model's probabilities on real face crops;
    the classifier's ``model`` is the original."""
    from emotionkit.classifiers._fold import fold_batch_norms
    from emotionkit.classifiers.bundled import bundled_fer_cnn_dir
    from emotionkit.classifiers.preprocess import faces_to_pixels, pixels_to_input

    clf = load_classifier(bundled_fer_cnn_dir())
    faces = [astronaut_bgr[y:y + 200, x:x + 200] for y in (20, 60, 100) for x in (120, 160)]
    x = pixels_to_input(faces_to_pixels(faces, clf.input_size, clf.config.channels,
                                        clf.config.color_order), clf.config)
    folded = fold_batch_norms(clf.model, x[:2])
    assert "BatchNormalization" in _layer_types(clf.model)
    assert "BatchNormalization" not in _layer_types(folded)
    assert len(folded.weights) < len(clf.model.weights)
    original = np.asarray(clf.model(x, training=False))
    np.testing.assert_allclose(np.asarray(folded(x, training=False)), original, atol=1e-5)
    np.testing.assert_allclose(clf.predict(faces), original, atol=1e-5)


def test_only_batch_norms_after_a_convolution_of_their_own_are_folded(
    astronaut_bgr: np.ndarray,
) -> None:
    """A convolution whose output is also read elsewhere, a batch norm after a dense
    layer, and a capped ReLU stay as they are; the rest folds; outputs are unchanged."""
    import keras

    from emotionkit.classifiers._fold import fold_batch_norms

    keras.utils.set_random_seed(3)
    inputs = keras.Input((48, 48, 1))
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    a = keras.layers.BatchNormalization(name="a_bn")(a)
    a = keras.layers.ReLU(name="a_relu")(a)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(a)  # read by b_bn and the add
    b_bn = keras.layers.BatchNormalization(name="b_bn")(b)
    x = keras.layers.Add(name="add")([b, b_bn])
    c = keras.layers.Conv2D(8, 3, padding="same", name="c")(x)
    c = keras.layers.BatchNormalization(name="c_bn")(c)
    c = keras.layers.ReLU(max_value=6.0, name="c_relu6")(c)
    x = keras.layers.GlobalAveragePooling2D()(c)
    x = keras.layers.Dense(4, name="d")(x)
    x = keras.layers.BatchNormalization(name="d_bn")(x)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # statistics as after training, not the initial 0 and 1
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 1, beta.shape),
                               rng.normal(0, 1, mean.shape), rng.uniform(0.2, 3, var.shape)])
    gray = astronaut_bgr[:, :, 1]
    x = np.stack([gray[y:y + 48, x:x + 48] for y in (30, 90) for x in (150, 200)])
    x = (x[..., None] / 255.0).astype(np.float32)
    folded = fold_batch_norms(model, x)
    kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
    assert [kinds[n] for n in ("a_bn", "a_relu", "b_bn", "c_bn", "c_relu6", "d_bn")] == [
        "Identity", "Identity", "BatchNormalization", "Identity", "ReLU",
        "BatchNormalization"]
    assert folded.get_layer("a").get_config()["activation"] == "relu"
    assert folded.get_layer("c").get_config()["activation"] == "linear"
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=1e-5)


def test_a_folded_copy_that_changes_the_outputs_is_not_used(
    astronaut_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The check batch catches a wrong fold (here: kernels 10% too large): the original
    model is used and a warning says so; a mixed-precision convolution is not folded."""
    import keras

    from emotionkit.classifiers import _fold
    from emotionkit.classifiers.bundled import bundled_fer_cnn_dir
    from emotionkit.classifiers.preprocess import faces_to_pixels, pixels_to_input

    clf = load_classifier(bundled_fer_cnn_dir())
    faces = [astronaut_bgr[60:260, 140:340], astronaut_bgr[100:300, 100:300]]
    x = pixels_to_input(faces_to_pixels(faces, (48, 48), 1, "rgb"), clf.config)
    right = _fold._folded_weights
    monkeypatch.setattr(_fold, "_folded_weights",
                        lambda conv, bn: [right(conv, bn)[0] * 1.1, right(conv, bn)[1]])
    with caplog.at_level("WARNING", logger="emotionkit"):
        assert _fold.fold_batch_norms(clf.model, x) is clf.model
    assert "batch-norm folding changed the outputs" in caplog.text
    monkeypatch.undo()

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((48, 48, 1))
        y = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        y = keras.layers.BatchNormalization(name="bn")(y)
        y = keras.layers.GlobalAveragePooling2D()(y)
        mixed = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(y))
    finally:
        keras.config.set_dtype_policy("float32")
    caplog.clear()
    with caplog.at_level("DEBUG", logger="emotionkit"):
        assert _fold.fold_batch_norms(mixed, x) is mixed
    assert caplog.text == ""  # skipped: not tried and rejected


@pytest.mark.parametrize(("field", "value", "message"), [
    ("model_file", None, r"model_file must be the model's file name.*got null"),
    ("model_file", 5, r"model_file must be the model's file name.*got 5"),
    ("model_file", "", r"model_file must be the model's file name"),
    ("pixel_scale", "x", r"pixel_scale must be a finite number, got \"x\""),
    ("pixel_scale", 0, r"pixel_scale must not be 0"),
    ("pixel_offset", None, r"pixel_offset must be a finite number, got null"),
    ("crop_margin", "abc", r"crop_margin must be a finite number, got \"abc\""),
    ("crop_margin", -0.6, r"crop_margin must be >= 0 .*got -0\.6"),
    ("input_size", ["a", "b"], r"input_size must be \[height, width\].*got \[\"a\", \"b\"\]"),
    ("input_size", 48, r"input_size must be \[height, width\].*got 48"),
    ("channels", True, r"channels must be 1 or 3, got true"),
    ("labels", [["a"], "b", "c", "d", "e", "f", "g"], r"labels must be a non-empty list of "
                                                        r"non-empty strings"),
    ("architecture", 3, r"architecture must be a name or null, got 3"),
], ids=["model_file-null", "model_file-int", "model_file-empty", "pixel_scale-str",
        "pixel_scale-0", "pixel_offset-null", "crop_margin-str", "crop_margin-negative",
        "input_size-str", "input_size-int", "channels-bool", "labels-nested",
        "architecture-int"])
def test_config_values_are_checked_when_read(fer7_model_dir: Path, tmp_path: Path, field: str,
                                             value: object, message: str) -> None:
    """A config.json field of the wrong type or range is one ModelLoadError naming the
    file and the field, when the model is loaded (not a traceback, or wrong outputs, later)."""
    import shutil

    data = json.loads((fer7_model_dir / "config.json").read_text())
    data[field] = value
    shutil.copy(fer7_model_dir / "model.keras", tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=rf"config\.json: {message}"):
        load_classifier(tmp_path)


def test_configs_that_loaded_before_still_load(fer7_model_dir: Path, tmp_path: Path) -> None:
    """Numbers as labels ([0, 1, ...], read as "0", "1", ...) and whole floats as sizes
    ([48.0, 48.0], as some JSON writers give ints) loaded before the checks; they still do."""
    import shutil

    data = json.loads((fer7_model_dir / "config.json").read_text())
    data.update(labels=list(range(7)), input_size=[48.0, 48.0], channels=1.0)
    shutil.copy(fer7_model_dir / "model.keras", tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps(data))
    classifier = load_classifier(tmp_path)
    assert classifier.labels == ("0", "1", "2", "3", "4", "5", "6")
    assert classifier.input_size == (48, 48) and classifier.config.channels == 1


def test_models_with_non_finite_outputs_are_refused(tmp_path: Path,
                                                    astronaut_bgr: np.ndarray) -> None:
    """A model whose weights are NaN (a diverged training run) is refused when loaded; a
    model that overflows on some faces only raises for those at predict time, instead of
    calling every face "angry" (the argmax of NaN)."""
    import keras

    from emotionkit import EmotionKitError
    from emotionkit.classifiers import KerasClassifier

    broken = small_cnn(7)  # what a run whose loss went to NaN saves
    broken.set_weights([np.full_like(w, np.nan) for w in broken.get_weights()])
    save_model_dir(tmp_path / "nan", broken, FER_LABELS)
    with pytest.raises(ModelLoadError, match=r"nan.model\.keras: model .* gives non-finite "
                                             r"outputs \(NaN or infinity\).*retrain"):
        load_classifier(tmp_path / "nan")

    # finite on the check batch (mean brightness ~0.5), infinite on a dark face (< 0.4)
    inputs = keras.Input((48, 48, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    darkness = keras.layers.Dense(1, activation="relu", name="darkness")(mean)
    logits = keras.layers.Dense(7, name="logits")(
        keras.layers.Dense(1, name="huge")(darkness))
    model = keras.Model(inputs, logits)
    model.get_layer("darkness").set_weights([np.array([[-1.0]]), np.array([0.4])])
    model.get_layer("huge").set_weights([np.array([[3e38]]), np.zeros(1)])
    model.get_layer("logits").set_weights([np.full((1, 7), 3e38), np.zeros(7)])
    clf = KerasClassifier(model, ModelConfig(labels=FER_LABELS))
    face = astronaut_bgr[82:178, 177:273]
    assert np.isfinite(clf.predict([face])).all()
    dark = (face * 0.2).astype(np.uint8)
    with pytest.raises(EmotionKitError, match=r"the model gives non-finite outputs .* for "
                                              r"some of these faces"):
        clf.predict([face, dark])


def test_the_model_attribute_is_read_only(fer7_model_dir: Path) -> None:
    """Predictions come from an inference function made when the classifier is built;
    putting another model in its place would silently change nothing."""
    clf = load_classifier(fer7_model_dir)
    assert clf.model.name
    with pytest.raises(AttributeError):
        clf.model = small_cnn(7)  # type: ignore[misc]


_JAX_BATCHES = """
import json, sys
import jax, keras, numpy as np
traced = []
jit = jax.jit
def counting_jit(fn, **kwargs):  # Python code in a jitted function runs once per compilation
    if fn.__module__ != "emotionkit.classifiers.keras_model":
        return jit(fn, **kwargs)
    def traced_fn(x):
        traced.append(int(x.shape[0]))
        return fn(x)
    return jit(traced_fn, **kwargs)
jax.jit = counting_jit
from skimage import data
from emotionkit.classifiers import load_classifier
from emotionkit.classifiers.preprocess import faces_to_pixels, pixels_to_input
clf = load_classifier(sys.argv[1], batch_size=16)
cfg = clf.config
image = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
faces = [image[y:y + 96, x:x + 96] for y in range(40, 240, 40) for x in range(140, 300, 40)]
worst = 0.0
for n in range(1, 21):
    probs = clf.predict(faces[:n])
    inputs = pixels_to_input(faces_to_pixels(faces[:n], cfg.input_size, cfg.channels), cfg)
    unpadded = np.asarray(clf.model(inputs, training=False))  # exactly these n faces
    assert probs.shape == unpadded.shape == (n, 7), (probs.shape, unpadded.shape)
    worst = max(worst, float(np.abs(probs - unpadded).max()))
print(json.dumps({"traced": traced, "worst": worst}))
"""


def test_jax_compiles_once_per_power_of_two_batch(fer7_model_dir: Path) -> None:
    """KERAS_BACKEND=jax compiles the model once per input shape: batches are padded to a
    power of two (at most batch_size), so 1..20 faces compile 5 variants, not 16, and give
    the probabilities of the model called on exactly those faces."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    res = subprocess.run([sys.executable, "-c", _JAX_BATCHES, str(fer7_model_dir)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(result["traced"]) == [1, 2, 4, 8, 16]
    assert result["worst"] < 1e-5


_FORKED_CLASSIFIER = """
import multiprocessing, sys
import numpy as np
from emotionkit.classifiers import load_classifier
clf = load_classifier(sys.argv[1])
faces = [np.full((48, 48, 3), 128, np.uint8)]
print("parent:", clf.predict(faces).shape, flush=True)
def classify(_):
    return clf.predict(faces).shape
if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(1) as pool:
        try:
            print("pool:", pool.map_async(classify, [0]).get(timeout=60))
        except Exception as exc:
            print(f"pool: {type(exc).__name__}: {exc}")
    print("parent again:", classify(0))
"""


def test_a_classifier_inherited_through_fork_fails_clearly(fer7_model_dir: Path) -> None:
    """A Keras classifier used in a fork()ed child hung there (TensorFlow's and JAX's
    threads are not copied); now predict() raises at once and the parent goes on."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    res = subprocess.run([sys.executable, "-c", _FORKED_CLASSIFIER, str(fer7_model_dir)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[0] == "parent: (1, 7)", lines
    assert lines[1].startswith("pool: EmotionKitError: KerasClassifier.predict(): this "
                               "classifier was made in process"), lines
    assert "inherited through fork()" in lines[1] and "'spawn'" in lines[1]
    assert lines[2] == "parent again: (1, 7)"


def test_model_config_arguments_from_python_raise_value_error() -> None:
    """Bad arguments from a calling program are ValueError, as for the rest of the API;
    a config.json read from a file with the same problem stays a ModelLoadError."""
    with pytest.raises(ValueError, match="labels must be a list") as err:
        ModelConfig(labels="angry")
    assert not isinstance(err.value, ModelLoadError)
    with pytest.raises(ValueError, match="crop_margin must be >= 0") as err:
        ModelConfig(labels=("a", "b"), crop_margin=-1)
    assert not isinstance(err.value, ModelLoadError)
    with pytest.raises(ModelLoadError, match="^crop_margin must be >= 0"):
        ModelConfig.from_dict({"labels": ["a", "b"], "crop_margin": -1})


def test_a_model_without_config_and_with_odd_channels_names_the_file(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((48, 48, 2))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "two.keras")
    with pytest.raises(ModelLoadError, match=r"two\.keras: channels must be 1 or 3, got 2"):
        load_classifier(tmp_path / "two.keras")


def _odd_io_models() -> dict[str, object]:
    """Models whose inputs or outputs are not one image in, one score row out."""
    import keras
    from keras import layers

    image, other = keras.Input((48, 48, 1)), keras.Input((48, 48, 1))
    flat = layers.Flatten()(image)
    return {
        "two outputs": keras.Model(image, [layers.Dense(7, activation="softmax")(flat),
                                           layers.Dense(7, activation="softmax")(flat)]),
        "a score map": keras.Model(image, layers.Conv2D(7, 3, activation="softmax")(image)),
        "two inputs": keras.Model([image, other], layers.Dense(7, activation="softmax")(
            layers.Flatten()(layers.Add()([image, other])))),
    }


@pytest.mark.parametrize("kind", ["two outputs", "a score map", "two inputs"])
@pytest.mark.parametrize("with_config", [False, True], ids=["bare", "directory"])
def test_models_without_one_image_input_and_one_score_row_are_refused(
        kind: str, with_config: bool, tmp_path: Path) -> None:
    """A model with two outputs (a TypeError traceback), one giving a score map (loaded,
    then (N, 46, 46, 7) "probabilities"), or two inputs (told to add a config.json, which
    cannot help) is one ModelLoadError naming the file and what is expected."""
    _odd_io_models()[kind].save(tmp_path / "model.keras")
    if with_config:
        ModelConfig(labels=FER_LABELS).write(tmp_path)  # 48x48 gray, as the model
    path = tmp_path if with_config else tmp_path / "model.keras"
    with pytest.raises(ModelLoadError, match=r"model\.keras: expected .*one (input|output)"):
        load_classifier(path)


def test_a_model_with_one_named_output_classifies(tmp_path: Path,
                                                   astronaut_bgr: np.ndarray) -> None:
    """A model whose one output is given by name (``{"probs": ...}``) failed to load with
    a TypeError; it gives that output's probabilities."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=2)(inputs))
    model = keras.Model(inputs, {"probs": keras.layers.Dense(7, activation="softmax")(x)})
    model.save(tmp_path / "named.keras")
    faces = [astronaut_bgr[82:178, 177:273], astronaut_bgr[200:300, 200:300]]
    clf = load_classifier(tmp_path / "named.keras")
    x = pixels_to_input(faces_to_pixels(faces, (48, 48), 1), clf.config)
    np.testing.assert_allclose(clf.predict(faces), np.asarray(model(x)["probs"]), atol=1e-5)
