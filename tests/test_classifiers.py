"""Loading Keras classifiers from files and model directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import save_model_dir, small_cnn
from emotionkit import FER_LABELS, ModelLoadError
from emotionkit.classifiers import EmotionClassifier, ModelConfig, load_classifier


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
