"""TransferTrainer and the transfer architectures: frozen/trainable blocks, the new head,
label subsets, the base's own preprocessing, base weights from a file, two-phase resume.

Everything runs with random or locally saved base weights (``--base-weights none`` or a
file) on small inputs: no ImageNet download.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from click.testing import CliRunner

import emotionkit
from conftest import killed_at_epoch
from emotionkit import EmotionRecognizer
from emotionkit.classifiers import ModelConfig, load_classifier
from emotionkit.classifiers.preprocess import faces_to_pixels
from emotionkit.cli import main
from emotionkit.training import (
    Fer2013Csv,
    TrainingError,
    TransferTrainer,
    build_model,
    get_architecture,
)
from emotionkit.training.applications import base_of, set_trainable_blocks
from emotionkit.training.trainer import oversample_index
from test_datasets import _fer_line, face_crops

SMALL = {"size": 32, "head": [16, 16], "dropout": 0.1}


def _gray48(crops: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.resize(c, (48, 48)), cv2.COLOR_BGR2GRAY) for c in crops]


@pytest.fixture(scope="module")
def fer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FER2013-layout csv of real faces with three labels: angry (astronaut, flipped),
    happy (astronaut), sad (cameraman); a training split of 24 per label."""
    path = tmp_path_factory.mktemp("fer") / "fer.csv"
    astronaut, camera = _gray48(face_crops(40, 5)), _gray48(face_crops(40, 6, "camera"))
    lines = ["emotion,pixels,Usage\n"]
    for i in range(40):
        usage = "Training" if i < 24 else "PublicTest" if i < 32 else "PrivateTest"
        lines += [_fer_line(0, astronaut[i][:, ::-1], usage), _fer_line(3, astronaut[i], usage),
                  _fer_line(4, camera[i], usage)]
    path.write_text("".join(lines))
    return path


def _base_trainable(model) -> list[str]:
    return [layer.name for layer in base_of(model).layers if layer.trainable and layer.weights]


def test_vgg19_head_and_trainable_blocks() -> None:
    model = build_model("vgg19", num_classes=3, size=32)
    assert tuple(model.input_shape) == (None, 48, 48, 1)
    assert tuple(model.output_shape) == (None, 3)
    base = base_of(model)
    names = {layer.name for layer in base.layers}
    assert not names & {"fc1", "fc2", "predictions", "flatten"}  # the 4096-unit top is gone
    heads = [model.get_layer(f"head{i}") for i in (1, 2)]
    assert [h.units for h in heads] == [128, 128]
    assert all(h.kernel_regularizer is not None for h in heads)
    assert model.get_layer("head1_drop").rate == 0.5
    assert _base_trainable(model) == [f"block5_conv{i}" for i in range(1, 5)]
    set_trainable_blocks(base, 0)
    assert _base_trainable(model) == [] and not base.trainable
    set_trainable_blocks(base, 2)
    assert _base_trainable(model) == [f"block{b}_conv{i}" for b in (4, 5) for i in range(1, 5)]
    set_trainable_blocks(base, -1)
    assert len(_base_trainable(model)) == 16


@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "mobilenet-v3-small"])
def test_other_keras_applications_use_the_same_code(arch: str) -> None:
    model = build_model(arch, num_classes=4, size=32, pooling="avg")
    assert tuple(model.output_shape) == (None, 4)
    base = base_of(model)
    trainable = _base_trainable(model)
    frozen = [layer.name for layer in base.layers if layer.weights and not layer.trainable]
    assert trainable and frozen
    assert base.layers.index(base.get_layer(trainable[0])) > base.layers.index(
        base.get_layer(frozen[-1])
    )
    probs = model.predict(np.zeros((2, 48, 48, 1), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_transfer_arch_option_picks_any_base() -> None:
    model = build_model("transfer", num_classes=2, base="DenseNet121", size=32, pooling="avg")
    assert base_of(model).name.startswith("densenet")


def test_inputs_get_the_bases_own_preprocessing(fer_csv: Path) -> None:
    pixels = Fer2013Csv(fer_csv).load("Training").pixels[:4].astype(np.float32)
    model = build_model("vgg19", num_classes=3, size=48)
    front = keras.Model(model.input, model.get_layer("base_preprocess").output)
    expected = keras.applications.vgg19.preprocess_input(np.repeat(pixels, 3, axis=-1))
    np.testing.assert_allclose(front.predict(pixels, verbose=0), expected, atol=1e-4)
    model = build_model("vgg19", num_classes=3, size=64)
    front = keras.Model(model.input, model.get_layer("base_preprocess").output)
    assert front.predict(pixels, verbose=0).shape == (4, 64, 64, 3)
    assert get_architecture("vgg19").pixel_scale == 1.0  # the model takes 0..255 pixels


def test_label_subsets_are_renumbered_and_recorded(fer_csv: Path, tmp_path: Path) -> None:
    ds = Fer2013Csv(fer_csv, labels=["Sadness", "angry"])
    train, val = ds.load("Training"), ds.load("PublicTest")
    assert train.labels == ("sad", "angry") and len(train) == 48
    assert train.class_counts().tolist() == [24, 24]
    full = Fer2013Csv(fer_csv).load("Training")
    np.testing.assert_array_equal(train.pixels[train.targets == 0], full.pixels[full.targets == 4])
    trainer = TransferTrainer(tmp_path / "run", arch_options=SMALL, base_weights="none",
                              epochs=1, batch_size=16, progress=False)
    trainer.fit(train, val)
    config = ModelConfig.read(tmp_path / "run" / "config.json")
    assert config.labels == ("sad", "angry")
    assert config.extra["label_subset"]["source_index"] == [4, 0]
    assert config.extra["label_subset"]["source_labels"][4] == "sad"
    with pytest.raises(Exception, match="no label 'contempt'"):
        Fer2013Csv(fer_csv, labels=["happy", "contempt"])


def test_offline_imagenet_error_names_the_argument_and_the_option(
        fer_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a network (and no cached download) the error names the Python argument as
    well as the CLI option: it named only ``--base-weights``."""
    import urllib.error

    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setattr(file_utils.config, "keras_home", lambda: str(tmp_path / "keras"))
    data = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    with pytest.raises(TrainingError) as info:
        TransferTrainer(tmp_path / "run", arch_options=SMALL, base_weights="imagenet",
                        epochs=1, batch_size=16, progress=False).fit(data.load("train"),
                                                                     data.load("val"))
    message = str(info.value)
    assert message.startswith("cannot get the ImageNet weights of VGG19 ("), message
    assert message.endswith(
        "offline, pass base_weights=PATH (--base-weights PATH: a local no-top weights file) "
        'or base_weights="none" (--base-weights none)'), message


def _saved_base_weights(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    keras.utils.set_random_seed(7)
    base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg19_notop.weights.h5"
    base.save_weights(path)
    return path, base.get_weights()


def test_two_phase_run_from_a_weights_file_resumes_between_phases(
    fer_csv: Path, tmp_path: Path
) -> None:
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    train, val = ds.load("train"), ds.load("val")
    weights_file, initial = _saved_base_weights(tmp_path)
    out = tmp_path / "run"
    options = {"arch_options": SMALL, "base_weights": weights_file, "head_epochs": 1,
               "batch_size": 16, "learning_rate": 1e-4, "progress": False, "patience": 0}
    # phase 1 only (the run "stops" after the head phase): the base must not move
    TransferTrainer(out, epochs=1, **options).fit(train, val)
    after_head = base_of(keras.saving.load_model(out / "model.keras")).get_weights()
    for before, now in zip(initial, after_head):
        np.testing.assert_array_equal(before, now)
    config = ModelConfig.read(out / "config.json")
    assert config.extra["training"]["base_weights_sha256"]
    # resume into phase 2: only block5 trains
    with pytest.raises(TrainingError, match="already holds"):
        TransferTrainer(out, epochs=2, **options).fit(train, val)
    metrics = TransferTrainer(out, epochs=2, resume=True, **options).fit(train, val)
    assert metrics["epochs_run"] == 2 and len(metrics["history"]["loss"]) == 2
    assert (out / "checkpoint" / "finetune" / "latest.weights.h5").is_file()
    # the last epoch's weights (the checkpoint), loaded into the same training graph
    trainer = TransferTrainer(out, epochs=2, resume=True, **options)
    model = build_model("vgg19", num_classes=3, **SMALL)
    config = ModelConfig.read(out / "config.json")
    trainer._training_model(keras, model, config).load_weights(
        out / "checkpoint" / "finetune" / "latest.weights.h5")
    base = base_of(model)
    moved = {layer.name for layer in base.layers if layer.weights and any(
        not np.array_equal(w, v)
        for w, v in zip(layer.get_weights(), _layer_weights(initial, base, layer.name)))}
    assert moved == {f"block5_conv{i}" for i in range(1, 5)}
    # a different schedule is not the same run
    with pytest.raises(TrainingError, match="head_epochs"):
        TransferTrainer(out, epochs=3, resume=True, **{**options, "head_epochs": 2}).fit(
            train, val)


def _layer_weights(flat: list[np.ndarray], base, name: str) -> list[np.ndarray]:
    """The entries of ``flat`` (``base.get_weights()`` order) that belong to layer ``name``."""
    i = 0
    for layer in base.layers:
        n = len(layer.get_weights())
        if layer.name == name:
            return flat[i:i + n]
        i += n
    raise KeyError(name)


def test_trained_transfer_model_loads_and_classifies(fer_csv: Path, tmp_path: Path) -> None:
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    out = tmp_path / "run"
    TransferTrainer(out, arch_options=SMALL, base_weights="none", epochs=1, batch_size=16,
                    progress=False).fit(ds.load("train"), ds.load("val"))
    clf = load_classifier(out)  # safe_mode: the preprocessing layer is a registered class
    assert clf.labels == ("angry", "happy", "sad")
    rec = EmotionRecognizer(detector="none", classifier=out)
    crops = face_crops(3, 11)
    probs = rec.classify(crops)
    assert probs.shape == (3, 3)
    # the raw Keras model on the same 48x48 gray pixels gives the same probabilities
    model = keras.saving.load_model(out / "model.keras")
    pixels = faces_to_pixels(crops, (48, 48), 1).astype(np.float32)
    np.testing.assert_allclose(probs, model.predict(pixels, verbose=0), atol=1e-4)
    assert np.ptp(probs, axis=0).max() > 1e-3  # a live model: different faces, different output


def test_mixed_precision_transfer_run_saves_its_trained_weights_in_float32(
    fer_csv: Path, tmp_path: Path
) -> None:
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    out = tmp_path / "run"
    TransferTrainer(out, arch_options={**SMALL, "batch_norm": True, "trainable_blocks": -1},
                    base_weights="none", epochs=1, batch_size=16, progress=False,
                    precision="mixed_bfloat16").fit(ds.load("train"), ds.load("val"))
    model = keras.saving.load_model(out / "model.keras")
    base = base_of(model)
    assert {layer.dtype_policy.name for layer in [*model.layers, *base.layers]} == {"float32"}
    # the trained weights, not those of a fresh model: batch norm has seen the data
    assert np.abs(base.get_layer("block1_conv1_bn").moving_mean.numpy()).max() > 1e-3
    probs = EmotionRecognizer(detector="none", classifier=out).classify(face_crops(3, 11))
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_cli_trains_a_transfer_model_with_a_label_subset(fer_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "vgg"
    runner = CliRunner()
    args = ["train", str(fer_csv), "--out", str(out), "--arch", "vgg19", "--arch-option",
            "size=32", "--arch-option", "head=[16,16]", "--base-weights", "none",
            "--labels", "angry,happy,sad", "--epochs", "1", "--batch-size", "16", "--quiet"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == ["angry", "happy", "sad"]
    assert config["training"]["class_weight"] == "oversample"
    assert config["training"]["learning_rate"] == 1e-5
    assert config["architecture"] == "vgg19" and config["pixel_scale"] == 1.0
    result = runner.invoke(main, ["evaluate", str(fer_csv), "--classifier", str(out),
                                  "--split", "PrivateTest"])
    assert result.exit_code == 0, result.output
    assert "angry" in result.output and "neutral" not in result.output
    bad = runner.invoke(main, [*args[:-1], "--base-weights", str(tmp_path / "missing.h5")])
    assert bad.exit_code == 2  # a bad option value
    assert "missing.h5: no such file" in bad.output and "Traceback" not in bad.output
    fer_cnn = Path(emotionkit.__file__).parent / "data" / "models" / "fer-cnn" / "model.keras"
    bad = runner.invoke(main, [*args[:2], "--out", str(tmp_path / "from-fer-cnn"), *args[4:-1],
                               "--base-weights", str(fer_cnn)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "no nested base model; pass a model trained with a transfer" in bad.output


def test_fer_cnn_is_not_a_transfer_architecture(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no pretrained base"):
        TransferTrainer(tmp_path, arch="fer-cnn")


def test_oversampling_balances_every_class() -> None:
    targets = np.array([0] * 10 + [1] * 3 + [2] * 7)
    index = oversample_index(targets, seed=0)
    assert np.bincount(targets[index]).tolist() == [10, 10, 10]
    assert set(index.tolist()) == set(range(len(targets)))


def test_batch_norm_option_makes_a_vgg_bn_that_loads_plain_weights(
    fer_csv: Path, tmp_path: Path
) -> None:
    model = build_model("vgg19", num_classes=3, size=32, batch_norm=True)
    names = [layer.name for layer in base_of(model).layers]
    i = names.index("block3_conv2")
    assert names[i:i + 3] == ["block3_conv2", "block3_conv2_bn", "block3_conv2_relu"]
    assert base_of(model).get_layer("block3_conv2").get_config()["activation"] == "linear"
    assert _base_trainable(model) == [f"block5_conv{i}{s}" for i in range(1, 5)
                                      for s in ("", "_bn")]
    with pytest.raises(ValueError, match="plain chain"):
        build_model("resnet50", num_classes=3, size=32, batch_norm=True)

    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    train, val = ds.load("train"), ds.load("val")
    # plain VGG19 weights go into the VGG19-BN by layer name; a frozen base stays as loaded
    weights_file, initial = _saved_base_weights(tmp_path)
    options = {"arch_options": {**SMALL, "batch_norm": True}, "batch_size": 16,
               "progress": False, "epochs": 1}
    TransferTrainer(tmp_path / "a", base_weights=weights_file, head_epochs=1,
                    **options).fit(train, val)
    base = base_of(keras.saving.load_model(tmp_path / "a" / "model.keras"))
    plain = keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3))
    for layer in (layer for layer in plain.layers if layer.weights):
        for saved, want in zip(base.get_layer(layer.name).get_weights(),
                               _layer_weights(initial, plain, layer.name)):
            np.testing.assert_array_equal(saved, want)
    # from scratch, the added batch norm layers train on batch statistics
    TransferTrainer(tmp_path / "b", base_weights="none",
                    **{**options, "arch_options": {**SMALL, "batch_norm": True,
                                                   "trainable_blocks": -1}}).fit(train, val)
    trained = base_of(keras.saving.load_model(tmp_path / "b" / "model.keras"))
    bn = trained.get_layer("block1_conv1_bn")
    assert np.abs(bn.moving_mean.numpy()).max() > 1e-3
    # that VGG-BN base, saved, is the starting point of another run (e.g. 7 classes -> 3)
    trained.save_weights(tmp_path / "vgg19_bn.weights.h5")
    TransferTrainer(tmp_path / "c", base_weights=tmp_path / "vgg19_bn.weights.h5",
                    head_epochs=1, **options).fit(train, val)
    reloaded = base_of(keras.saving.load_model(tmp_path / "c" / "model.keras"))
    for saved, want in zip(reloaded.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(saved, want)
    # or the trained model file itself: its base is taken
    TransferTrainer(tmp_path / "e", base_weights=tmp_path / "b" / "model.keras",
                    head_epochs=1, **options).fit(train, val)
    reloaded = base_of(keras.saving.load_model(tmp_path / "e" / "model.keras"))
    for saved, want in zip(reloaded.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(saved, want)
    # into a base without batch norm either would fill the convolutions only: refused
    # (twice into the same directory: a run that failed before its first epoch holds nothing)
    for source in (tmp_path / "vgg19_bn.weights.h5", tmp_path / "b" / "model.keras"):
        with pytest.raises(TrainingError, match="needs --arch-option batch_norm=true"):
            TransferTrainer(tmp_path / "d", base_weights=source, head_epochs=1,
                            **{**options, "arch_options": SMALL}).fit(train, val)


def test_run_killed_in_the_head_phase_resumes_with_the_right_epochs(
    fer_csv: Path, tmp_path: Path
) -> None:
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    train, val = ds.load("train"), ds.load("val")
    out = tmp_path / "run"
    options = {"arch_options": SMALL, "base_weights": "none", "head_epochs": 2, "epochs": 4,
               "batch_size": 16, "learning_rate": 1e-4, "progress": False, "patience": 0}
    with killed_at_epoch(2), pytest.raises(KeyboardInterrupt):
        TransferTrainer(out, **options).fit(train, val)
    metrics = TransferTrainer(out, resume=True, **options).fit(train, val)
    history = metrics["history"]
    # epoch 2 (head), then epochs 3-4 (phase 2): four rows, no epoch run twice
    assert metrics["epochs_run"] == 4 and len(history["loss"]) == 4
    assert history["learning_rate"][2] > history["learning_rate"][3]  # phase 2's own decay


def test_head_phase_does_not_use_up_phase_two_patience(fer_csv: Path, tmp_path: Path) -> None:
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    train, val = ds.load("train"), ds.load("val")
    # learning rates too small to change any prediction: no epoch after the first gains
    metrics = TransferTrainer(
        tmp_path / "run", arch_options=SMALL, base_weights="none", head_epochs=3, epochs=8,
        head_learning_rate=1e-12, learning_rate=1e-12, patience=2, batch_size=16,
        progress=False).fit(train, val)
    assert metrics["stopped_early"] and metrics["epochs_run"] == 5  # 3 head + 2 patience


def test_resume_keeps_the_base_weights_the_run_started_with(
    fer_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A resumed run continues from its checkpoint: other base weights are not used, and
    config.json used to record them (and their sha256) as the run's."""
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    train, val = ds.load("train"), ds.load("val")
    weights_file, _ = _saved_base_weights(tmp_path)
    out = tmp_path / "run"
    options = {"arch_options": SMALL, "batch_size": 16, "progress": False}
    TransferTrainer(out, base_weights=weights_file, epochs=1, **options).fit(train, val)
    started = ModelConfig.read(out / "config.json").extra["training"]
    assert started["base_weights"] == str(weights_file) and started["base_weights_sha256"]
    with caplog.at_level("WARNING", logger="emotionkit.training"):
        TransferTrainer(out, base_weights="none", epochs=2, resume=True, **options).fit(
            train, val)
    resumed = ModelConfig.read(out / "config.json").extra["training"]
    assert resumed["epochs"] == 2
    assert (resumed["base_weights"], resumed["base_weights_sha256"]) == (
        started["base_weights"], started["base_weights_sha256"])
    assert (f"{out}: base_weights none not used: a resumed run continues from its "
            f"checkpoint (the run started with {weights_file})") in caplog.text


@pytest.mark.parametrize(("base", "size", "last", "after"), [
    ("EfficientNetB0", 32, "block7", {"top_conv", "top_bn"}),  # no number of their own
    ("ResNet50V2", 32, "conv5", {"post_bn"}),
    ("InceptionV3", 75, None, set()),  # conv2d_N, batch_normalization_N: Keras's counts
])
def test_the_last_block_of_any_base_trains(base: str, size: int, last: str | None,
                                           after: set[str]) -> None:
    """``trainable_blocks=1`` trained only EfficientNet's ``top_bn``, ResNetV2's
    ``post_bn`` and one of InceptionV3's batch norms: a layer without a number of its own
    (or with a number Keras counted) was a block of its own."""
    model = build_model("transfer", num_classes=2, base=base, size=size, pooling="avg")
    layers = [layer for layer in base_of(model).layers if layer.weights]
    if last is None:  # InceptionV3: the 9 convolutions (and batch norms) of block mixed10
        names = [layer.name for layer in base_of(model).layers]
        mixed9 = base_of(model).get_layer("mixed9")
        expected = [layer.name for layer in layers
                    if names.index(layer.name) > names.index(mixed9.name)]
        assert sum(isinstance(base_of(model).get_layer(name), keras.layers.Conv2D)
                   for name in expected) == 9
    else:
        expected = [layer.name for layer in layers if layer.name.startswith(last)
                    or layer.name in after]
    assert _base_trainable(model) == expected


def test_base_weights_from_a_model_of_a_base_with_counted_layer_names(
    fer_csv: Path, tmp_path: Path
) -> None:
    """EfficientNet's Normalization layer has a name Keras counts (``normalization_3``):
    another instance of the base has another, so copying the base's weights by layer name
    stopped with "1 of its layers (normalization_3, ...) have no place in this run's
    base" (the ImageNet weights of such bases went the same way)."""
    options = {"base": "EfficientNetB0", "size": 32, "pooling": "avg", "head": [8]}
    keras.utils.set_random_seed(3)
    source = build_model("transfer", num_classes=7, **options)
    base_of(source).get_layer("block7a_project_conv").kernel.assign(
        np.full(base_of(source).get_layer("block7a_project_conv").kernel.shape, 0.01))
    source.save(tmp_path / "source.keras")
    ds = Fer2013Csv(fer_csv, labels=["angry", "happy", "sad"])
    out = tmp_path / "run"
    TransferTrainer(out, "transfer", arch_options=options, base_weights=tmp_path / "source.keras",
                    head_epochs=1, epochs=1, batch_size=16, progress=False).fit(
        ds.load("train"), ds.load("val"))
    trained = base_of(keras.saving.load_model(out / "model.keras"))
    for saved, want in zip(trained.get_weights(), base_of(source).get_weights()):
        np.testing.assert_array_equal(saved, want)  # the head phase leaves the base alone
