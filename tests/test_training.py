"""Trainer: output directory, loading the result, resume after a crash, determinism, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import FER_CSV, killed_at_epoch, needs_shared
from emotionkit import EmotionRecognizer
from emotionkit.classifiers import ModelConfig, load_classifier
from emotionkit.cli import main
from emotionkit.cli.train import train as train_command
from emotionkit.recognizer import resolve_classifier
from emotionkit.training import (
    DatasetError,
    Fer2013Csv,
    FolderDataset,
    ImageData,
    Trainer,
    TrainingError,
    build_model,
    evaluate_classifier,
    list_architectures,
)
from emotionkit.training import trainer as trainer_module
from test_datasets import face_crops, write_face_folders


def _runner() -> CliRunner:
    """In-process CLI runs (fd 2 is left alone so the runner captures error lines)."""
    return CliRunner()


# a fast fer-cnn variant for tiny data
TINY = {"widths": (8, 16), "dropout": 0.1, "head_dropout": 0.1, "bn_momentum": 0.7}


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory):
    root = write_face_folders(tmp_path_factory.mktemp("faces"), n=24)
    ds = FolderDataset(root, val_fraction=0.25)
    return root, ds.load("train"), ds.load("val")


def _trainer(out: Path, **kw) -> Trainer:
    options = {"arch_options": TINY, "epochs": 5, "batch_size": 8, "learning_rate": 3e-3,
               "progress": False, "seed": 1, **kw}
    return Trainer(out, **options)


def test_registry_builds_fer_cnn() -> None:
    assert "fer-cnn" in list_architectures()
    model = build_model("fer-cnn", num_classes=5)
    assert tuple(model.input_shape) == (None, 48, 48, 1)
    assert tuple(model.output_shape) == (None, 5)
    assert model.count_params() < 2_500_000


def test_fit_writes_a_loadable_model_dir(faces, tmp_path: Path) -> None:
    _, train, val = faces
    metrics = _trainer(tmp_path / "run").fit(train, val)
    out = tmp_path / "run"
    for name in ("model.keras", "config.json", "metrics.json", "history.csv", "history.png",
                 "confusion_matrix.png"):
        assert (out / name).is_file(), name
    config = ModelConfig.read(out / "config.json")
    assert config.labels == ("happy", "sad") and config.architecture == "fer-cnn"
    assert config.extra["training"]["epochs"] == 5
    assert config.extra["data"]["train"]["fingerprint"] == train.fingerprint()
    assert config.extra["emotionkit_version"]
    assert metrics["epochs_run"] == 5 and len(metrics["history"]["val_accuracy"]) == 5
    assert json.loads((out / "metrics.json").read_text())["val"]["n"] == len(val)
    # two very different real faces: the model must have learnt something
    assert metrics["val"]["accuracy"] >= 0.75
    clf = load_classifier(out)
    rec = EmotionRecognizer(detector="none", classifier=out)
    probs = rec.classify(face_crops(4, 99))
    assert probs.shape == (4, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert clf.labels == rec.labels


def test_resume_after_crash_continues_at_next_epoch(
    faces, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, train, val = faces
    out = tmp_path / "run"
    # (event, epoch index, the inference model's weights, optimizer step) at each epoch's
    # begin and end, recorded by the run's own per-epoch callback
    events: list[tuple[str, int, list[np.ndarray], int]] = []
    run_state = trainer_module._RunState
    begin, end = run_state.on_epoch_begin, run_state.on_epoch_end

    def record(event: str, callback, epoch: int) -> None:
        events.append((event, epoch, [w.copy() for w in callback.inner.get_weights()],
                       int(callback.model.optimizer.iterations)))

    def on_epoch_begin(self, epoch, logs=None):
        record("begin", self, epoch)
        begin(self, epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        end(self, epoch, logs)
        record("end", self, epoch)

    monkeypatch.setattr(run_state, "on_epoch_begin", on_epoch_begin)
    monkeypatch.setattr(run_state, "on_epoch_end", on_epoch_end)
    with killed_at_epoch(3), pytest.raises(KeyboardInterrupt):
        _trainer(out, epochs=4).fit(train, val)
    assert [(e[0], e[1]) for e in events] == [("begin", 0), ("end", 0), ("begin", 1),
                                             ("end", 1)]
    initial, after_epoch_2, steps_done = events[0][2], events[-1][2], events[-1][3]
    assert steps_done == 2 * -(-len(train) // 8)
    # training moved the weights, so "the same as after epoch 2" below says something
    assert not all(np.array_equal(a, b) for a, b in zip(initial, after_epoch_2))
    events.clear()
    before = json.loads((out / "checkpoint" / "state.json").read_text())
    assert before["epoch"] == 2
    assert _trainer(out).epochs_done == 2 and _trainer(tmp_path / "none").epochs_done == 0
    best = max(before["history"]["val_accuracy"])
    assert _trainer(out).best_score == pytest.approx(best) and 0 < best <= 1
    assert _trainer(tmp_path / "none").best_score is None
    assert not (out / "metrics.json").exists()
    # stopped part-way: fit has epochs to train, or at least outputs to write
    assert not _trainer(out, epochs=2, resume=True).finished_for(train, val)
    assert not _trainer(tmp_path / "none", resume=True).finished_for(train, val)

    with pytest.raises(TrainingError, match="already holds a training run"):
        _trainer(out, epochs=4).fit(train, val)
    with pytest.raises(TrainingError, match="data differ"):
        _trainer(out, epochs=4, resume=True).fit(train.subset(range(1, len(train))), val)
    metrics = _trainer(out, epochs=4, resume=True).fit(train, val)
    history = metrics["history"]
    assert metrics["epochs_run"] == 4 and len(history["loss"]) == 4
    assert history["loss"][:2] == before["history"]["loss"]
    # the resumed epochs start from the checkpoint, not from scratch
    assert history["accuracy"][2] >= history["accuracy"][0] - 0.05
    # ... exactly: epoch 3 begins with the weights and optimizer step epoch 2 ended with
    assert [(e[0], e[1]) for e in events] == [("begin", 2), ("end", 2), ("begin", 3),
                                             ("end", 3)]
    resumed, resumed_step = events[0][2], events[0][3]
    assert len(resumed) == len(after_epoch_2)
    for restored, saved in zip(resumed, after_epoch_2):
        np.testing.assert_array_equal(restored, saved)
    assert resumed_step == steps_done


def test_early_stopped_run_continues_only_with_more_epochs(faces, tmp_path: Path) -> None:
    _, train, val = faces
    out = tmp_path / "run"
    # a learning rate too small to learn anything: validation accuracy soon stops rising,
    # and patience 1 ends the run at the first epoch without a gain
    stalled = {"learning_rate": 1e-12, "patience": 1}
    first = _trainer(out, epochs=10, **stalled).fit(train, val)
    n = first["epochs_run"]
    assert first["stopped_early"] and n < 10
    # what cross-fitting asks before it calls fit: nothing to train, outputs written
    assert _trainer(out, epochs=10, resume=True, **stalled).finished_for(train, val)
    assert _trainer(out, epochs=n, resume=True, **stalled).finished_for(train, val)
    for trainer, data in ((_trainer(out, epochs=10, **stalled), train),  # no resume
                          (_trainer(out, epochs=14, resume=True, **stalled), train),  # more
                          (_trainer(out, epochs=10, resume=True, seed=2, **stalled), train),
                          (_trainer(out, epochs=10, resume=True, **stalled), val)):
        assert not trainer.finished_for(data, val)
    model_file = (out / "model.keras").stat()
    again = _trainer(out, epochs=10, resume=True, **stalled).fit(train, val)
    assert again["epochs_run"] == n  # the same command: the run is finished
    now = (out / "model.keras").stat()  # and its model file was not rewritten
    assert (now.st_ino, now.st_mtime_ns) == (model_file.st_ino, model_file.st_mtime_ns)
    more = _trainer(out, epochs=14, resume=True, **stalled).fit(train, val)
    assert more["epochs_run"] > n  # more epochs than it started with: it continues
    assert len(more["history"]["loss"]) == more["epochs_run"]


def test_mixed_bfloat16_run_saves_float32_and_resumes_in_float32(
    faces, tmp_path: Path
) -> None:
    _, train, val = faces
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="precision must be one of"):
        _trainer(out, precision="float16")
    first = _trainer(out, epochs=2, precision="mixed_bfloat16").fit(train, val)
    assert np.isfinite(first["history"]["loss"]).all()
    assert ModelConfig.read(out / "config.json").extra["training"]["precision"] == (
        "mixed_bfloat16")
    # epoch 1 is always saved (the first best): the file holds the bfloat16 model's weights
    model = keras.saving.load_model(out / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    # a resumed run may change the precision: it continues from the bfloat16 checkpoint
    metrics = _trainer(out, epochs=8, resume=True).fit(train, val)
    assert metrics["epochs_run"] == 8
    assert metrics["history"]["loss"][:2] == first["history"]["loss"]
    assert metrics["val"]["accuracy"] >= 0.75


def test_train_cli_choices_are_the_trainers_own() -> None:
    """The CLI names the choices by hand (importing the trainer imports Keras, too slow for
    --help): they must be exactly what the trainer accepts."""
    choices = {p.name: list(p.type.choices) for p in train_command.params
               if p.name in ("class_weight", "precision")}
    assert choices == {"class_weight": list(trainer_module.CLASS_WEIGHTING),
                       "precision": list(trainer_module.PRECISIONS)}


def test_same_seed_same_result(faces, tmp_path: Path) -> None:
    _, train, val = faces
    a = _trainer(tmp_path / "a", epochs=1).fit(train, val)["history"]
    b = _trainer(tmp_path / "b", epochs=1).fit(train, val)["history"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_cli_train_and_evaluate_on_folder(faces, tmp_path: Path) -> None:
    root, _, _ = faces
    out = tmp_path / "cli"
    runner = _runner()
    result = runner.invoke(main, ["train", str(root), "--out", str(out), "--epochs", "1",
                                  "--batch-size", "16", "--quiet", "--val-fraction", "0.25",
                                  "--arch-option", "widths=[8, 16]"])
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.output
    assert ModelConfig.read(out / "config.json").extra["training"]["arch_options"]["widths"] \
        == [8, 16]
    again = runner.invoke(main, ["train", str(root), "--out", str(out), "--epochs", "1"])
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert again.output == (f"error: --out {out}: already holds a training run; add --resume "
                            "to continue it, or choose another --out directory\n")
    result = runner.invoke(main, ["evaluate", str(root), "--classifier", str(out),
                                  "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["labels"] == ["happy", "sad"] and report["n"] == 48


def test_cli_label_subset_of_a_folder_is_recorded(tmp_path: Path) -> None:
    """``--labels`` on a folder dataset records which folder label each output is, as it
    does on a FER csv (it recorded ``None``)."""
    root = write_face_folders(tmp_path / "faces", n=8)
    for i, crop in enumerate(face_crops(4, seed=9)):  # a third folder, left out by --labels
        (root / "Neutral").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "Neutral" / f"{i}.jpg"), crop)
    out = tmp_path / "model"
    result = _runner().invoke(main, ["train", str(root), "--out", str(out), "--epochs", "1",
                                     "--batch-size", "8", "--quiet", "--labels", "sadness,happy",
                                     "--arch-option", "widths=[8, 16]"])
    assert result.exit_code == 0, result.output
    config = ModelConfig.read(out / "config.json")
    assert config.labels == ("sad", "happy")
    assert config.extra["label_subset"] == {"source_labels": ["happy", "sad", "neutral"],
                                            "source_index": [1, 0]}


def test_one_label_is_an_error_not_a_perfect_score(faces, tmp_path: Path) -> None:
    root, train, val = faces
    with pytest.raises(TrainingError, match="only one label"):
        _trainer(tmp_path / "one").fit(train.select_labels(["happy"]),
                                       val.select_labels(["happy"]))
    assert not (tmp_path / "one" / "model.keras").exists()
    with pytest.raises(DatasetError, match="one label"):
        evaluate_classifier(resolve_classifier("fer-cnn"), val.select_labels(["happy"]),
                            labels=["happy"])
    for command in (["train", str(root), "--out", str(tmp_path / "o")], ["evaluate", str(root)]):
        result = _runner().invoke(main, [*command, "--labels", "happy,"])
        assert result.exit_code == 2  # a usage error, like any bad option value
        assert result.output == ("error: --labels happy,: give two or more labels, "
                                 "comma-separated (with one, every answer is that label)\n")
    # a folder dataset with one label folder: the trainer's error, one line
    shutil.copytree(root / "Happy", tmp_path / "one-folder" / "Happy")
    result = _runner().invoke(main, ["train", str(tmp_path / "one-folder"), "--out",
                                     str(tmp_path / "o"), "--epochs", "1", "--quiet"])
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 1 and len(errors) == 1 and "only one label" in errors[0]


def test_label_without_training_images_is_an_error(faces, tmp_path: Path) -> None:
    root, _, _ = faces
    ds = FolderDataset(root, labels=["happy", "sad", "angry"], val_fraction=0.25)
    train, val = ds.load("train"), ds.load("val")
    assert train.class_counts().tolist()[2] == 0
    with pytest.raises(TrainingError, match="no training images for angry"):
        _trainer(tmp_path / "run").fit(train, val)
    result = _runner().invoke(main, ["train", str(root), "--out", str(tmp_path / "cli"),
                                     "--labels", "happy,angry,sad", "--epochs", "1", "--quiet"])
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    # a label without a folder: a usage error, found before the images are read
    assert result.exit_code == 2 and len(errors) == 1 and "angry" in errors[0]


def test_unwritable_out_and_bad_option_values_are_one_line_errors(faces,
                                                                  tmp_path: Path) -> None:
    root, train, val = faces
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(TrainingError, match="cannot create the output directory"):
        _trainer(tmp_path / "afile" / "run").fit(train, val)
    for command, message in [
        (["train", str(root), "--out", str(tmp_path / "afile" / "m"), "--epochs", "1"],
         "cannot create the output directory"),
        (["evaluate", str(root), "--out", str(tmp_path / "afile" / "report")],
         "cannot write the report there"),
    ]:
        result = _runner().invoke(main, [*command, "--quiet"] if command[0] == "train"
                                  else command)
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert result.exit_code == 1 and len(errors) == 1 and message in errors[0], \
            result.output
        assert "Traceback" not in result.output


def test_cli_train_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _runner().invoke(main, ["train", str(tmp_path / "empty"), "--out",
                                       str(tmp_path / "o")])
    assert result.exit_code == 1 and result.output.startswith("error: ")


@pytest.mark.parametrize(("options", "message"), [
    (["--arch", "nope"], "unknown architecture 'nope'"),
    (["--arch-option", "widht=3"], "unknown option(s) widht"),
    (["--arch-option", "widths"], "--arch-option 'widths': expected KEY=VALUE"),
    (["--arch-option", 'widths="oops"'], "cannot be built with options {'widths': 'oops'}"),
    (["--lr", "0"], "--lr"),
    (["--label-smoothing", "1"], "--label-smoothing"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--labels", "happy"], "give two or more labels"),
    (["--train-split", "tarin"], "no split 'tarin'"),
])
def test_cli_train_usage_errors_exit_2_before_training(faces, tmp_path: Path,
                                                        options: list[str],
                                                        message: str) -> None:
    """docs/cli.md: a wrong option value is exit code 2 (an unknown --arch, a malformed
    --arch-option and a one-label --labels were 1), one line, and nothing is trained."""
    root, _, _ = faces
    out = tmp_path / "o"
    result = _runner().invoke(main, ["train", str(root), "--out", str(out), "--epochs", "1",
                                     "--quiet", *options])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and message in result.output
    assert not (out / "model.keras").exists()
    if result.output.startswith("error: "):  # ours (click's own errors have a usage line)
        assert len(result.output.splitlines()) == 1
        assert "training fer-cnn on" not in result.output  # found before the data was read


def _write_tiny_fer(path: Path, n: int = 300) -> None:
    """The first ``n`` real FER2013 rows, re-split 80/10/10 so every split is present."""
    import gzip

    with gzip.open(FER_CSV, "rt") as src, open(path, "w") as dst:
        dst.write(next(src))
        for i, line in zip(range(n), src):
            code, pixels, _ = line.rstrip("\n").split(",")
            usage = "Training" if i % 10 < 8 else ("PublicTest" if i % 10 == 8 else "PrivateTest")
            dst.write(f"{code},{pixels},{usage}\n")


@needs_shared
def test_fer2013_train_then_evaluate_cli(tmp_path: Path) -> None:
    csv = tmp_path / "fer_tiny.csv"
    _write_tiny_fer(csv)
    out = tmp_path / "model"
    runner = _runner()
    result = runner.invoke(main, ["train", str(csv), "--out", str(out), "--epochs", "1",
                                  "--batch-size", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["evaluate", str(csv), "--classifier", str(out), "--split",
                                  "PrivateTest", "--tta", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "confusion matrix" in result.output
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()


@needs_shared
@pytest.mark.slow
def test_killed_cli_run_resumes(tmp_path: Path) -> None:
    """A real ``emotionkit train`` process killed (SIGKILL) after its first checkpoint."""
    csv = tmp_path / "fer_tiny.csv"
    _write_tiny_fer(csv, n=600)
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "emotionkit", "train", str(csv), "--out", str(out),
           "--batch-size", "16", "--quiet", "--patience", "0"]
    proc = subprocess.Popen([*cmd, "--epochs", "50"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    meta = out / "checkpoint" / "training_metadata.json"
    deadline = time.time() + 300
    while not meta.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(meta.read_text())["epoch"]
    assert 1 <= done < 50
    target = done + 2
    result = subprocess.run([*cmd, "--epochs", str(target), "--resume"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == target and len(metrics["history"]["loss"]) == target


def _backup_arrays(out: Path) -> dict[str, np.ndarray]:
    """Every array of a run's last weights backup (model and optimizer), by path."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    with h5py.File(out / "checkpoint" / "latest.weights.h5") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


@needs_shared
def test_resumed_epoch_trains_and_logs_like_an_uninterrupted_run(tmp_path: Path) -> None:
    """An epoch after a resume draws the random numbers (dropout masks, augmentation, the
    JAX backend's shuffling) an uninterrupted run draws: it used to replay epoch 1's, which
    trained differently and logged a far too good training loss and accuracy."""
    csv = tmp_path / "fer_tiny.csv"
    _write_tiny_fer(csv, n=300)
    data = Fer2013Csv(csv)
    train, val = data.load("train"), data.load("val")
    options = {"arch_options": {"widths": [8, 16], "dropout": 0.3, "head_dropout": 0.5},
               "epochs": 3, "batch_size": 32, "class_weight": "none", "augment": True,
               "patience": 0, "progress": False, "seed": 3}
    whole = Trainer(tmp_path / "whole", **options).fit(train, val)["history"]
    with killed_at_epoch(2), pytest.raises(KeyboardInterrupt):
        Trainer(tmp_path / "resumed", **options).fit(train, val)
    resumed = Trainer(tmp_path / "resumed", resume=True, **options).fit(train, val)["history"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-6), key
    a, b = _backup_arrays(tmp_path / "whole"), _backup_arrays(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_arch_options_are_recorded_in_full_and_checked(tmp_path: Path) -> None:
    trainer = Trainer(tmp_path / "x", arch_options={"widths": [16, 32]})
    options = trainer.args["arch_options"]
    assert options["widths"] == [16, 32] and options["convs_per_block"] == 2
    with pytest.raises(TrainingError, match="unknown option"):
        Trainer(tmp_path / "x", arch_options={"width": 3})


@pytest.mark.parametrize("option", [{"label_smoothing": 2.0}, {"label_smoothing": -0.1},
                                    {"weight_decay": -1.0}])
def test_out_of_range_options_are_refused(option, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"label_smoothing must be in \[0, 1\)"):
        Trainer(tmp_path / "run", **option)


def test_model_file_matches_the_best_epoch_after_a_kill_before_the_backup(
    faces, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after epoch 3 (a new best) saved the model and state but before its weights
    backup: the resume drops epoch 3, and model.keras must be the kept best epoch's."""
    _, train, val = faces
    out = tmp_path / "run"
    weights: dict[int, list[np.ndarray]] = {}
    run_state_end = trainer_module._RunState.on_epoch_end
    backup_end = keras.callbacks.BackupAndRestore.on_epoch_end

    def record(self, epoch, logs=None):
        weights[epoch + 1] = [w.copy() for w in self.inner.get_weights()]
        if epoch == 2:  # epoch 3 is the best so far
            logs = {**(logs or {}), "val_accuracy": 2.0}
        run_state_end(self, epoch, logs)

    def killed_at_third(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill before the backup")
        backup_end(self, epoch, logs)

    monkeypatch.setattr(trainer_module._RunState, "on_epoch_end", record)
    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", killed_at_third)
    with pytest.raises(KeyboardInterrupt):
        _trainer(out, epochs=3).fit(train, val)
    monkeypatch.undo()
    assert _trainer(out).epochs_done == 2
    metrics = _trainer(out, epochs=2, resume=True).fit(train, val)
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] in (1, 2)
    saved = load_classifier(out).model.get_weights()
    for kept, now in zip(weights[metrics["best_epoch"]], saved):
        np.testing.assert_allclose(now, kept, rtol=1e-6, atol=1e-7)
    assert list((out / "checkpoint").glob("best-*.keras")) == [
        out / "checkpoint" / f"best-{metrics['best_epoch']}.keras"]


@pytest.mark.parametrize("option", [
    {"learning_rate": float("nan")}, {"learning_rate": float("inf")},
    {"weight_decay": float("nan")}, {"weight_decay": float("inf")},
    {"teacher_temperature": float("nan")},
])
def test_non_finite_options_are_refused(option, tmp_path: Path) -> None:
    """``nan`` passes every ``<= 0`` check: it used to train an all-nan model."""
    name, value = next(iter(option.items()))
    with pytest.raises(TrainingError, match=rf"^{name} must be a finite number, got {value}$"):
        Trainer(tmp_path / "run", **option)


def test_transfer_head_lr_must_be_finite(tmp_path: Path) -> None:
    from emotionkit.training import TransferTrainer

    with pytest.raises(TrainingError, match="head_learning_rate must be a finite number"):
        TransferTrainer(tmp_path / "run", "vgg19", head_learning_rate=float("nan"))


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range_is_refused(seed: int, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=rf"seed must be in 0\.\.4294967295, got {seed}"):
        Trainer(tmp_path / "run", seed=seed)


def test_cli_non_finite_lr_and_bad_seed_are_errors_without_traceback(faces,
                                                                       tmp_path: Path) -> None:
    root, _, _ = faces
    out = tmp_path / "o"
    for option, value in (("--lr", "nan"), ("--lr", "inf"), ("--weight-decay", "nan")):
        result = _runner().invoke(main, ["train", str(root), "--out", str(out), option, value,
                                         "--epochs", "1", "--quiet"])
        assert result.exit_code == 2, result.output  # a bad option value: a usage error
        assert result.output.splitlines() == [
            f"error: {'learning_rate' if option == '--lr' else 'weight_decay'} must be a "
            f"finite number, got {value}"]
    for seed in ("-1", "99999999999"):
        result = _runner().invoke(main, ["train", str(root), "--out", str(out), "--seed", seed])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"Invalid value for '--seed': {seed} is not in the range 0<=x<=4294967295" \
            in result.output
    assert not out.exists()


@needs_shared
def test_diverging_run_is_an_error_not_a_nan_model(tmp_path: Path) -> None:
    """A far too large learning rate on real FER2013 rows: the loss becomes nan in the
    first epoch; the run stops with one error line and leaves no model."""
    csv = tmp_path / "fer_tiny.csv"
    _write_tiny_fer(csv)
    out = tmp_path / "model"
    command = ["train", str(csv), "--out", str(out), "--epochs", "2", "--batch-size", "32",
               "--quiet", "--arch-option", "widths=[8, 16]"]
    result = _runner().invoke(main, [*command, "--lr", "1e8"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "error: training diverged in epoch 1: the loss became nan; no model was saved; run "
        "again with a lower learning rate (--lr)")
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    assert not Trainer(out).has_run  # so the same command with a sane --lr runs as is
    result = _runner().invoke(main, [*command, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    # a good epoch 1, then a resume at a diverging rate: model.keras keeps epoch 1
    kept = load_classifier(out).model.get_weights()
    result = _runner().invoke(main, [*command, "--resume", "--lr", "1e8"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"error: training diverged in epoch 2: the loss became nan; {out / 'model.keras'} "
        "holds epoch 1, the best so far; --resume with a lower learning rate (--lr) goes on "
        "after epoch 1, the last completed one")
    for now, before in zip(load_classifier(out).model.get_weights(), kept):
        np.testing.assert_array_equal(now, before)
    assert Trainer(out).epochs_done == 1


def test_training_batches_change_order_every_epoch_reproducibly() -> None:
    """Keras's shuffle=True on TensorFlow with a seed fed the same batch order in every
    epoch; the trainer's batches take a new order each epoch, a function of the seed and
    the epoch alone (so a resumed run, which starts counting at its first epoch, sees the
    orders an uninterrupted run sees)."""
    import keras

    from emotionkit.training.trainer import _shuffled_batches

    x = np.arange(40, dtype=np.float32)[:, None]  # each row holds its own index
    y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
    w = np.ones(40, dtype=np.float32)

    def orders(first_epoch: int, epochs: int) -> list[list[int]]:
        batches = _shuffled_batches(keras, x, y, w, 8, seed=5, first_epoch=first_epoch)
        passes = []
        for _ in range(epochs):  # as Keras asks for them: batch 0, 1, ... in each epoch
            passes.append([int(v) for i in range(len(batches)) for v in batches[i][0][:, 0]])
        return passes

    first, second, third = orders(0, 3)
    assert sorted(first) == list(range(40)) and first != second != third
    assert orders(0, 3) == [first, second, third]  # reproducible
    assert orders(1, 2) == [second, third]  # resumed after one epoch
    # through Keras's fit: one pass per epoch, in order (plus its first look at the
    # shapes, which every run makes alike)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    batches = _shuffled_batches(keras, x, y, w, 8, seed=5, first_epoch=0)
    model.fit(batches, epochs=3, shuffle=False, verbose=0)
    assert batches._epoch == 3  # three epochs, after the look at the first batches


def test_a_model_directory_without_a_run_is_not_overwritten(faces, tmp_path: Path) -> None:
    """A finished run whose checkpoint/ was deleted (which the docs allow), like any model
    directory, holds no run: a new run into it rewrote its config.json at once (a failing
    run left it describing another model) and its model.keras after an epoch, with or
    without --resume."""
    root, train, val = faces
    out = tmp_path / "run"
    _trainer(out, epochs=1).fit(train, val)
    shutil.rmtree(out / "checkpoint")
    kept = {name: (out / name).read_bytes() for name in ("model.keras", "config.json")}
    message = (f"{out} holds a model (model.keras) but no training run to resume (no "
               "checkpoint/); choose another output directory, or delete the model")
    for resume in (False, True):
        with pytest.raises(TrainingError) as error:
            _trainer(out, epochs=1, seed=2, resume=resume).fit(train, val)
        assert str(error.value) == message
    for resume in ([], ["--resume"]):  # the command says so before it loads the data
        result = _runner().invoke(main, ["train", str(root), "--out", str(out), "--epochs",
                                         "1", "--quiet", *resume])
        assert result.exit_code == 2 and result.output == f"error: --out {message}\n"
    assert {name: (out / name).read_bytes() for name in kept} == kept
    (tmp_path / "afile").write_text("not a folder")
    result = _runner().invoke(main, ["train", str(root), "--out", str(tmp_path / "afile"),
                                     "--quiet"])
    assert result.exit_code == 2 and result.output == (
        f"error: --out {tmp_path / 'afile'}: not a directory; choose another output "
        "directory\n")
    # a run that failed before its first epoch holds no model: the corrected command runs
    failed = tmp_path / "failed"
    with pytest.raises(TrainingError, match="cannot be built"):
        _trainer(failed, arch_options={**TINY, "widths": "oops"}).fit(train, val)
    assert (failed / "config.json").is_file()
    assert _trainer(failed, epochs=1).fit(train, val)["epochs_run"] == 1


def test_cli_resume_reports_and_records_only_the_changes_it_uses(faces, tmp_path: Path) -> None:
    """Changed options of a resume are warnings (--quiet showed none). A finished run
    trains no further, so its other options change nothing: config.json used to record
    them as the run's, and the log to say the run resumed with them."""
    root, _, _ = faces
    out = tmp_path / "run"
    command = ["train", str(root), "--out", str(out), "--batch-size", "16", "--quiet",
               "--val-fraction", "0.25", "--arch-option", "widths=[8, 16]", "--seed", "1"]
    assert _runner().invoke(main, [*command, "--epochs", "1"]).exit_code == 0

    def training() -> dict:
        return ModelConfig.read(out / "config.json").extra["training"]

    result = _runner().invoke(main, [*command, "--epochs", "1", "--resume", "--lr", "1e-4",
                                     "--patience", "3"])
    assert result.exit_code == 0, result.output
    notes = [line.split(" ", 1)[1] for line in result.output.splitlines() if "not used" in line]
    assert notes == [f"{out}: the run is finished (epoch 1 of 1): {name} not used (the run used "
                     f"{used})" for name, used in (("learning_rate 0.0001", "0.001"),
                                                   ("patience 3", "12"))]
    assert (training()["learning_rate"], training()["patience"]) == (1e-3, 12)
    result = _runner().invoke(main, [*command, "--epochs", "2", "--resume", "--lr", "1e-4"])
    assert result.exit_code == 0, result.output
    assert f"{out}: resuming with learning_rate 0.0001 (the run so far used 0.001)" \
        in result.output
    assert (training()["learning_rate"], training()["epochs"]) == (1e-4, 2)


def test_progress_bar_leaves_no_fragments_in_a_log(faces, tmp_path: Path) -> None:
    """With stderr not a terminal (a log file, CI), every epoch left a 0% bar and the
    carriage returns that erased it in the log; an epoch under a minute now shows none."""
    root, _, _ = faces
    result = _runner().invoke(main, ["train", str(root), "--out", str(tmp_path / "run"),
                                     "--epochs", "2", "--batch-size", "16",
                                     "--arch-option", "widths=[8, 16]"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "batch/s" not in result.output
    assert sum(": loss " in line for line in result.output.splitlines()) == 2  # epoch lines


def test_cli_evaluate_does_not_overwrite_a_training_runs_report(faces, tmp_path: Path) -> None:
    """``evaluate --out RUN`` replaced the run's metrics.json (its history) and plot."""
    root, train, val = faces
    out = tmp_path / "run"
    _trainer(out, epochs=1).fit(train, val)
    kept = {name: (out / name).read_bytes() for name in ("metrics.json",
                                                         "confusion_matrix.png")}
    result = _runner().invoke(main, ["evaluate", str(root), "--classifier", str(out),
                                     "--out", str(out), "--format", "json"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"error: --out {out}: holds a training run's metrics.json (its validation report "
        "and history); choose another --out")
    assert {name: (out / name).read_bytes() for name in kept} == kept
    result = _runner().invoke(main, ["evaluate", str(root), "--classifier", str(out),
                                     "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    again = _runner().invoke(main, ["evaluate", str(root), "--classifier", str(out),
                                    "--out", str(tmp_path / "report")])
    assert again.exit_code == 0, again.output  # its own report it may replace


def _limited_file_size(limit: int):
    """A ``preexec_fn``: files the child writes may grow to ``limit`` bytes (as on a full
    disk, writing past it fails)."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
def test_a_write_error_is_one_line_and_leaves_the_run_resumable(faces, tmp_path: Path) -> None:
    """Disk full while saving: a traceback and a partial temporary file in the run; a
    failed config.json write left it cut short (model directory unloadable)."""
    root, _, _ = faces
    out = tmp_path / "run"
    command = [sys.executable, "-m", "emotionkit", "train", str(root), "--out", str(out),
               "--epochs", "1", "--batch-size", "16", "--quiet", "--arch-option",
               "widths=[8, 16]"]
    # the model file (about 85 kB) cannot be written
    result = subprocess.run(command, preexec_fn=_limited_file_size(50_000),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: {out}: training stopped: cannot write its files (File too large); once "
        "there is room and write access, continue with resume=True (--resume)")
    assert not [p for p in out.rglob("*") if "tmp" in p.name]
    assert _runner().invoke(main, [*command[3:], "--resume"]).exit_code == 0
    config = (out / "config.json").read_text()
    # finishing the finished run again cannot rewrite config.json (2 kB): it stays whole
    result = subprocess.run([*command, "--resume"], preexec_fn=_limited_file_size(1000),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert (out / "config.json").read_text() == config
    assert load_classifier(out).labels == ("happy", "sad")


def test_cli_train_refuses_an_output_directory_inside_a_folder_dataset(
        faces, tmp_path: Path) -> None:
    """``--out`` inside the dataset's image folders put the run's plots (PNG images) into
    the data: a resume then failed ("data differ") and evaluate saw a new label. Refused
    before the images are decoded (exit 2), the dataset left as it was; beside the split
    folders of a split dataset (left out of the data) it is allowed."""
    root, _, _ = faces
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for out in (root / "run", root / "happy" / "run"):
        result = _runner().invoke(main, ["train", str(root), "--out", str(out),
                                         "--epochs", "1"])
        assert result.exit_code == 2, result.output
        assert result.output.splitlines()[-1] == (
            f"error: --out {out}: is inside the dataset's image folders in {root}, where the "
            "run's plots would become images of the data; choose a directory outside them")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    split = tmp_path / "split"
    shutil.copytree(root, split / "train")
    shutil.copytree(root, split / "val")
    assert FolderDataset(split).reads_from(split / "val" / "run")
    assert not FolderDataset(split).reads_from(split / "runs" / "r1")
    for becomes_a_split in ("test", "Testing", "test/run"):  # a new split folder
        assert FolderDataset(split).reads_from(split / becomes_a_split)


def test_a_damaged_checkpoint_is_not_reported_as_a_full_disk(faces, tmp_path: Path) -> None:
    """A checkpoint file cut short read "cannot write its files ...; continue with
    --resume", advice that gives the same error again."""
    from emotionkit.training import TrainingError

    _, train, val = faces
    out = tmp_path / "run"
    _trainer(out, epochs=1).fit(train, val)
    (weights,) = (out / "checkpoint").glob("**/*.weights.h5")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(TrainingError) as err:
        _trainer(out, epochs=2, resume=True).fit(train, val)
    message = str(err.value)
    assert "cannot read" in message and "damaged" in message and "cannot write" not in message


def test_cli_train_names_a_label_without_a_folder_before_reading_images(
        faces, tmp_path: Path) -> None:
    """``--labels happy,sda`` (a typo) on a folder dataset was reported only after every
    image had been decoded ("no training images for sda")."""
    root, _, _ = faces
    result = _runner().invoke(main, ["train", str(root), "--out", str(tmp_path / "run"),
                                     "--labels", "happy,sda", "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"error: --labels: no label folder in {root} for sda (its labels: happy, sad)")
    assert "images" not in result.output  # nothing was read
    assert FolderDataset(root, labels=["sad", "Happy"]).labels_without_folder == ()


def test_cli_split_options_are_checked_before_decoding_and_defaults_are_not_usage_errors(
        faces, tmp_path: Path) -> None:
    """A mistyped --val-split was found only after the training images were decoded (or
    their error came first); a dataset lacking the default split was exit 2 though no
    option was wrong (a dataset that cannot be used is exit 1)."""
    root, _, _ = faces
    broken = tmp_path / "broken"
    shutil.copytree(root, broken / "val")
    for label in ("happy", "sad"):
        (broken / "train" / label).mkdir(parents=True)
        (broken / "train" / label / "x.png").write_bytes(b"not a png")
    result = _runner().invoke(main, ["train", str(broken), "--out", str(tmp_path / "r1"),
                                     "--val-split", "tarin", "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith(f"error: {broken}: no split 'tarin'")
    only_test = tmp_path / "only-test"
    shutil.copytree(root, only_test / "test")
    result = _runner().invoke(main, ["train", str(only_test), "--out", str(tmp_path / "r2"),
                                     "--epochs", "1"])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1].startswith(f"error: {only_test}: no split 'train'")
    assert FolderDataset(only_test).split_name("Testing") == "test"


def test_a_run_killed_while_saving_its_weights_backup_resumes(
        faces, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras writes the weights backup over the last one in place: a run killed while
    saving it (seconds, for a large model) left a damaged backup, and its resume stopped
    with "a checkpoint file may be damaged ...: start a new run". The backup of the last
    complete epoch must survive, and the resume continue after it."""
    _, train, val = faces
    out = tmp_path / "run"
    save_weights = keras.Model.save_weights
    saves: list[Path] = []

    def killed_while_saving_the_third(self, filepath, *args, **kwargs):
        save_weights(self, filepath, *args, **kwargs)
        saves.append(Path(filepath))
        if len(saves) == 3:  # the kill: the file is left half-written
            Path(filepath).write_bytes(Path(filepath).read_bytes()[:2000])
            raise KeyboardInterrupt("simulated kill while saving the backup")

    monkeypatch.setattr(keras.Model, "save_weights", killed_while_saving_the_third)
    with pytest.raises(KeyboardInterrupt):
        _trainer(out, epochs=3).fit(train, val)
    monkeypatch.undo()
    assert _trainer(out).epochs_done == 2
    before = json.loads((out / "checkpoint" / "state.json").read_text())["history"]
    metrics = _trainer(out, epochs=3, resume=True).fit(train, val)
    assert metrics["epochs_run"] == 3
    assert metrics["history"]["loss"][:2] == before["loss"][:2]


def test_negative_patience_is_refused(tmp_path: Path) -> None:
    """``patience=-1`` (the CLI refuses it) stopped every run after its first epoch."""
    with pytest.raises(TrainingError, match=r"^patience must be >= 0 \(0: never stop early\), "
                                            r"got -1$"):
        Trainer(tmp_path / "run", patience=-1)


def test_the_largest_seed_trains(faces, tmp_path: Path) -> None:
    """``seed=MAX_SEED`` is allowed, but the augmentation layers were seeded with up to
    ``seed + 4``: on the JAX backend (32-bit seeds) an OverflowError traceback."""
    _, train, val = faces
    metrics = _trainer(tmp_path / "run", epochs=1, seed=trainer_module.MAX_SEED).fit(train, val)
    assert metrics["epochs_run"] == 1 and np.isfinite(metrics["history"]["loss"]).all()


def test_data_errors_name_unnamed_data(faces, tmp_path: Path) -> None:
    """``ImageData`` made in Python has no name by default: errors read ": no images"."""
    _, train, _ = faces
    plain = ImageData(train.pixels, train.targets, train.labels)
    happy = np.flatnonzero(plain.targets == 0)
    one = ImageData(plain.pixels[happy], plain.targets[happy], ("happy",))
    with pytest.raises(TrainingError, match=r"^the training data: only one label \(happy\)"):
        _trainer(tmp_path / "a").fit(one, one)
    empty = plain.subset(np.arange(0))
    with pytest.raises(TrainingError, match=r"^the validation data: no images$"):
        _trainer(tmp_path / "b").fit(plain, empty)
