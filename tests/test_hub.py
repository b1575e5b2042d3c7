"""The model hub against a local server that speaks the Hugging Face Hub protocol.

Real ``huggingface_hub`` calls (``hf_hub_download``, ``HfApi.create_repo`` /
``create_commit``) talk to :class:`hub_server.FakeHub` through ``HF_ENDPOINT``; the models
are real (tiny) Keras models.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import save_model_dir, small_cnn, without_root_file_access
from emotionkit import hub
from emotionkit.cli import main as cli
from emotionkit.errors import ModelLoadError
from hub_server import FakeHub


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _runner() -> CliRunner:
    return CliRunner()


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def model3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 3-class model directory (a second, different model)."""
    return save_model_dir(tmp_path_factory.mktemp("m3"), small_cnn(3, seed=3),
                          ("happy", "neutral", "sad"))


@pytest.fixture
def server():
    fake = FakeHub().start()
    yield fake
    fake.stop()


@pytest.fixture
def hub_env(server: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """HF_ENDPOINT at the local hub, an empty cache, online, no token."""
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    return server


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub retries 5xx and timeouts with 1..8 s waits; skip the waiting."""
    import huggingface_hub.file_download as file_download
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda s: None)
    monkeypatch.setattr(file_download.time, "sleep", lambda s: None)


@pytest.fixture
def pinned(hub_env: FakeHub, fer7_model_dir: Path):
    """``test-fer7``: a registered hub model pinned to a commit with sha256 of its files."""
    files = _files(fer7_model_dir)
    sha = hub_env.commit("emotionkit-test/fer7", files)
    model = hub.HubModel(
        name="test-fer7", repo_id="emotionkit-test/fer7", revision=sha,
        files={name: _sha256(files[name]) for name in ("config.json", "model.keras")},
        labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        size_bytes=sum(len(files[n]) for n in ("config.json", "model.keras")),
        description="test model",
    )
    hub.register_hub_model(model)
    yield model, files, hub_env
    hub.unregister_hub_model("test-fer7")


# -- specs and registry --------------------------------------------------------------------
def test_parse_spec() -> None:
    assert hub.parse_spec("hf://me/model") == ("me/model", None)
    assert hub.parse_spec("hf://me/model@v1.0") == ("me/model", "v1.0")
    for bad in ("hf://model", "hf://a/b/c", "hf://me/model@", "me/model", "hf:///x"):
        with pytest.raises(ModelLoadError, match="hf://OWNER/REPO|empty revision"):
            hub.parse_spec(bad)


def test_vgg19_3emo_has_no_pinned_version_yet() -> None:
    from emotionkit import EmotionRecognizer

    with pytest.raises(ModelLoadError, match="no published version is pinned") as err:
        EmotionRecognizer(detector="none", classifier="vgg19-3emo")
    assert "\n" not in str(err.value)


def test_import_does_not_load_tensorflow() -> None:
    code = ("import sys, emotionkit.hub, emotionkit.cli.models; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- download, cache, pinning --------------------------------------------------------------
def test_download_caches_and_reuses(hub_env: FakeHub, fer7_model_dir: Path) -> None:
    sha = hub_env.commit("me/fer7", _files(fer7_model_dir))
    directory = hub.download_model("hf://me/fer7")
    assert directory.parent.name == "snapshots" and directory.name == sha
    assert Path(hub.cache_dir()) in directory.parents
    assert (directory / "model.keras").read_bytes() == (fer7_model_dir / "model.keras").read_bytes()
    assert hub_env.hit_count("/_blobs/", "GET") == 1

    hub.download_model("hf://me/fer7")  # branch: metadata is checked, nothing downloaded
    assert hub_env.hit_count("/_blobs/", "GET") == 1
    before = sum(hub_env.hits.values())
    assert hub.download_model(f"hf://me/fer7@{sha}") == directory  # commit: no request
    assert sum(hub_env.hits.values()) == before
    assert hub.is_cached(f"hf://me/fer7@{sha}")


def test_revision_pin(hub_env: FakeHub, fer7_model_dir: Path, model3_dir: Path) -> None:
    from emotionkit.classifiers import load_classifier

    first = hub_env.commit("me/model", _files(fer7_model_dir))
    second = hub_env.commit("me/model", _files(model3_dir))
    assert load_classifier(hub.download_model(f"hf://me/model@{first}")).labels[0] == "angry"
    assert load_classifier(hub.download_model("hf://me/model")).labels == (
        "happy", "neutral", "sad")
    assert hub.download_model("hf://me/model").name == second
    assert hub.download_model("hf://me/model", revision=first).name == first


def test_registered_model_loads_by_name(pinned, fer7_model_dir: Path) -> None:
    from emotionkit import EmotionRecognizer

    model, _, _ = pinned
    rec = EmotionRecognizer(detector="none", classifier="test-fer7")
    assert rec.labels == model.labels
    faces = rec.detect(np.full((64, 64, 3), 128, dtype=np.uint8))
    assert len(faces) == 1 and abs(sum(faces[0].emotions.values()) - 1) < 1e-4


def test_recognizer_loads_hf_spec_with_revision(hub_env: FakeHub, fer7_model_dir: Path,
                                                model3_dir: Path) -> None:
    from emotionkit import EmotionRecognizer

    first = hub_env.commit("me/pinned", _files(fer7_model_dir))
    hub_env.commit("me/pinned", _files(model3_dir))
    rec = EmotionRecognizer(detector="none", classifier=f"hf://me/pinned@{first}")
    assert len(rec.labels) == 7
    assert rec.classify([np.zeros((48, 48, 3), np.uint8)]).shape == (1, 7)


def test_model_pinned_by_sha256_without_revision_follows_main_only_while_it_matches(
    hub_env: FakeHub, fer7_model_dir: Path, model3_dir: Path
) -> None:
    files = _files(fer7_model_dir)
    hub_env.commit("emotionkit-test/nocommit", files)
    model = hub.HubModel(
        name="test-nocommit", repo_id="emotionkit-test/nocommit",
        files={name: _sha256(files[name]) for name in ("config.json", "model.keras")},
    )
    assert model.published and model.revision is None
    hub.register_hub_model(model)
    try:
        assert (hub.download_model("test-nocommit") / "model.keras").read_bytes() == (
            files["model.keras"])
        listed = _runner().invoke(cli, ["models", "info", "test-nocommit"])
        assert "main, files pinned by sha256" in listed.output, listed.output
        hub_env.commit("emotionkit-test/nocommit", _files(model3_dir))  # main moves on
        with pytest.raises(ModelLoadError, match="not the version this emotionkit pins") as err:
            hub.download_model("test-nocommit")
        assert "config.json" in str(err.value) and "\n" not in str(err.value)
    finally:
        hub.unregister_hub_model("test-nocommit")


# -- verification --------------------------------------------------------------------------
def test_tampered_pinned_file_is_deleted(pinned) -> None:
    model, files, server = pinned
    server.tamper.add(model.files["model.keras"])
    with pytest.raises(ModelLoadError) as err:
        hub.download_model("test-fer7")
    message = str(err.value)
    assert "model.keras" in message and model.files["model.keras"] in message
    tampered = bytearray(files["model.keras"])
    tampered[0] ^= 0xFF
    assert _sha256(bytes(tampered)) in message and "deleted" in message and "\n" not in message
    blobs = hub.cache_dir() / "models--emotionkit-test--fer7" / "blobs"
    assert not (blobs / model.files["model.keras"]).exists()

    server.tamper.clear()  # the next try downloads a good copy
    assert (hub.download_model("test-fer7") / "model.keras").read_bytes() == files["model.keras"]


def test_tampered_file_of_unpinned_repo_fails_against_hub_etag(hub_env: FakeHub,
                                                               fer7_model_dir: Path) -> None:
    files = _files(fer7_model_dir)
    hub_env.commit("me/fer7", files)
    hub_env.tamper.add(_sha256(files["model.keras"]))
    with pytest.raises(ModelLoadError, match="sha256 mismatch, expected " +
                       _sha256(files["model.keras"])) as err:
        hub.download_model("hf://me/fer7")
    # nothing is pinned for an hf:// spec: the message must not talk of a pin
    assert "pins" not in str(err.value) and "not the one its hash names" in str(err.value)


def test_cache_without_symlinks_warns_that_hf_files_are_unchecked(
    hub_env: FakeHub, fer7_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows without developer mode: huggingface_hub copies files instead of linking
    them to hash-named blobs, so an unpinned file's hash is unknown: a warning says so."""
    import huggingface_hub.file_download as hf_download

    monkeypatch.setattr(hf_download, "are_symlinks_supported", lambda *args: False)
    hub_env.commit("me/fer7", _files(fer7_model_dir))
    with pytest.warns(UserWarning, match="not checked against the hub's hash"):
        directory = hub.download_model("hf://me/fer7")
    assert not (directory / "model.keras").is_symlink()


def test_changed_cached_file_is_detected(hub_env: FakeHub, fer7_model_dir: Path) -> None:
    hub_env.commit("me/fer7", _files(fer7_model_dir))
    directory = hub.download_model("hf://me/fer7")
    config = (directory / "config.json").resolve()
    config.chmod(0o644)
    config.write_text(config.read_text().replace("angry", "calm"))
    with pytest.raises(ModelLoadError, match="git blob sha1 mismatch"):
        hub.download_model("hf://me/fer7", local_files_only=True)


# -- failures ------------------------------------------------------------------------------
def test_missing_repo_revision_and_file(hub_env: FakeHub, fer7_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="repository not found"):
        hub.download_model("hf://me/missing")
    hub_env.commit("me/fer7", {"config.json": (fer7_model_dir / "config.json").read_bytes()})
    with pytest.raises(ModelLoadError, match="revision 'v9' not found"):
        hub.download_model("hf://me/fer7@v9")
    with pytest.raises(ModelLoadError, match="model.keras .*no such file in the repository"):
        hub.download_model("hf://me/fer7")


def test_server_error_is_one_line(hub_env: FakeHub, fer7_model_dir: Path, no_backoff) -> None:
    hub_env.commit("me/fer7", _files(fer7_model_dir))
    hub_env.fail["/resolve/"] = 500
    with pytest.raises(ModelLoadError, match="cannot download from http://127.0.0.1") as err:
        hub.download_model("hf://me/fer7")
    assert "not in the model cache" in str(err.value) and "\n" not in str(err.value)


def test_download_timeout(hub_env: FakeHub, fer7_model_dir: Path, no_backoff,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.2)
    hub_env.commit("me/fer7", _files(fer7_model_dir))
    hub_env.stall["/_blobs/"] = 1.0
    with pytest.raises(ModelLoadError, match="model.keras .*download from .* failed") as err:
        hub.download_model("hf://me/fer7")
    assert "\n" not in str(err.value)


def test_offline_uses_cache_and_explains_when_not_cached(
    hub_env: FakeHub, fer7_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hub_env.commit("me/fer7", _files(fer7_model_dir))
    online = hub.download_model("hf://me/fer7")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_env.fail["/"] = 500  # any request would fail
    requests = sum(hub_env.hits.values())
    assert hub.download_model("hf://me/fer7") == online
    assert hub.download_model(f"hf://me/fer7@{sha}") == online
    assert sum(hub_env.hits.values()) == requests
    with pytest.raises(ModelLoadError) as err:
        hub.download_model("hf://me/other")
    message = str(err.value)
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in message
    assert "emotionkit models download hf://me/other" in message and "\n" not in message


def test_offline_in_a_fresh_process(hub_env: FakeHub, fer7_model_dir: Path,
                                    tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1 set before huggingface_hub is imported (the usual way)."""
    hub_env.commit("me/fer7", _files(fer7_model_dir))
    hub.download_model("hf://me/fer7")
    hub_env.stop()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = ("from emotionkit.hub import download_model as d; "
            "print(d('hf://me/fer7')); d('hf://me/absent')")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout.strip().endswith(hub.download_model("hf://me/fer7").name)
    assert "offline mode is on" in proc.stderr


# -- loading is safe -----------------------------------------------------------------------
def test_non_model_file_gives_clear_error(hub_env: FakeHub, fer7_model_dir: Path) -> None:
    files = _files(fer7_model_dir)
    hub_env.commit("me/broken", {**files, "model.keras": b"<html>not a model</html>" * 40})
    with pytest.raises(ModelLoadError, match="model.keras: not a loadable Keras model"):
        hub.load_hub_classifier("hf://me/broken")


def test_lambda_layer_is_refused(hub_env: FakeHub, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    from emotionkit import FER_LABELS

    directory = save_model_dir(tmp_path / "lambda", keras.Model(inputs, outputs), FER_LABELS)
    hub_env.commit("me/lambda", _files(directory))
    with pytest.raises(ModelLoadError, match="not a loadable Keras model") as err:
        hub.load_hub_classifier("hf://me/lambda")
    assert "safe_mode" in str(err.value) or "Lambda" in str(err.value)


# -- push, then load on another machine ----------------------------------------------------
def test_push_then_load_on_another_machine(
    hub_env: FakeHub, fer7_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "trained"
    shutil.copytree(fer7_model_dir, directory)
    (directory / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.61234}}))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    result = _runner().invoke(cli, ["models", "push", str(directory), "--repo-id",
                                    "me/my-model", "--private"])
    assert result.exit_code == 0, result.output
    assert "hf://me/my-model@" in result.output

    repo = hub_env.repos["me/my-model"]
    assert repo.private
    tree = repo.commits[repo.refs["main"]]
    assert set(tree) == {"config.json", "model.keras", "metrics.json", "README.md"}
    assert tree["model.keras"] == (directory / "model.keras").read_bytes()
    card = tree["README.md"].decode()
    assert hub_env.cards == [card]  # the hub validated its YAML front matter
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "emotionkit"
    assert meta["tags"] == ["emotion-recognition", "keras"]
    assert meta["labels"] == list(json.loads(tree["config.json"])["labels"])
    assert meta["metrics"] == ["accuracy"]  # Hugging Face metric ids, not our key names
    assert "| test.accuracy | 0.6123 |" in card
    assert "Bearer hf_test_token" in {a for a in hub_env.auth if a}

    # Another machine: a fresh HF_HOME, the token in the environment, a new process.
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "HF_HUB_DISABLE_IMPLICIT_TOKEN")}
    env.update(HF_HOME=str(tmp_path / "other-machine"), HF_TOKEN="hf_test_token")
    code = ("import numpy as np; from emotionkit import EmotionRecognizer; "
            "rec = EmotionRecognizer(detector='none', classifier='hf://me/my-model'); "
            "print(rec.labels); print(len(rec.detect(np.zeros((60, 60, 3), np.uint8))))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'angry'" in proc.stdout and proc.stdout.strip().endswith("1")
    assert (tmp_path / "other-machine" / "hub" / "models--me--my-model").is_dir()


def test_push_refuses_a_directory_that_is_not_a_model(hub_env: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"labels": ["a", "b"]}))
    (tmp_path / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="not a loadable Keras model"):
        hub.push_model(tmp_path, "me/bad")
    assert "me/bad" not in hub_env.repos


# -- CLI -----------------------------------------------------------------------------------
def test_models_cli(pinned, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = _runner()
    model, _, _ = pinned

    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("test-fer7"))
    assert model.spec in row and row.rstrip().endswith("no") and "angry,disgust" in row
    assert "vgg19-3emo" in listed.output and "not published yet" in listed.output
    assert "bundled" in next(ln for ln in listed.output.splitlines() if ln.startswith("fer-cnn"))

    downloaded = runner.invoke(cli, ["models", "download", "test-fer7"])
    assert downloaded.exit_code == 0, downloaded.output
    assert model.revision in downloaded.output
    listed = runner.invoke(cli, ["models", "list"])
    row = next(line for line in listed.output.splitlines() if line.startswith("test-fer7"))
    assert row.rstrip().endswith("yes")

    info = runner.invoke(cli, ["models", "info", "test-fer7"])
    assert info.exit_code == 0, info.output
    assert model.files["model.keras"] in info.output and "local path" in info.output
    assert "48x48x1" in info.output

    assert runner.invoke(cli, ["models", "cache-dir"]).output.strip() == str(hub.cache_dir())
    assert "bundled" in runner.invoke(cli, ["models", "download", "fer-cnn"]).output

    failed = runner.invoke(cli, ["models", "download", "hf://me/missing", "test-fer7"])
    assert failed.exit_code == 1
    assert "error: me/missing: repository not found" in failed.stderr
    unknown = runner.invoke(cli, ["models", "info", "nope"])
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: unknown hub model 'nope'")
    assert len(unknown.output.splitlines()) == 1


def test_models_unknown_name_or_bad_spec_is_a_usage_error(pinned) -> None:
    """docs/cli.md: an unknown model name is exit code 2 (``models info`` and ``models
    download`` gave 1), one ``error:`` line; ``download`` fetches nothing then."""
    runner = _runner()
    for args in (["info", "nope"], ["info", "hf://model"], ["download", "nope"],
                 ["download", "test-fer7", "hf://a/b/c"]):
        result = runner.invoke(cli, ["models", *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
        assert result.stderr.startswith("error: ")
    assert not hub.is_cached("test-fer7")


def test_models_help_shows_whole_short_help() -> None:
    """``emotionkit models --help`` cut download's first line to "Download NAME...";
    each subcommand's short help is its own whole sentence."""
    result = _runner().invoke(cli, ["models", "--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1]
    assert "Download NAME..." not in listed and "..." not in listed
    assert "Download models into the cache" in listed


def test_train_push_and_load_elsewhere_end_to_end(
    hub_env: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's whole path: ``emotionkit train`` on real faces, ``models push``, then
    ``hf://`` in a fresh process with an empty cache gives the same probabilities."""
    from emotionkit.classifiers import load_classifier
    from test_datasets import face_crops, write_face_folders

    data = write_face_folders(tmp_path / "faces", n=16)
    out = tmp_path / "run"
    trained = _runner().invoke(cli, [
        "train", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "8",
        "--arch-option", "widths=[8,16]", "--quiet", "--seed", "3"])
    assert trained.exit_code == 0, trained.output
    pushed = _runner().invoke(cli, ["models", "push", str(out), "--repo-id", "me/faces"])
    assert pushed.exit_code == 0, pushed.output
    uploaded = set(hub_env.repos["me/faces"].commits[hub_env.repos["me/faces"].refs["main"]])
    assert {"model.keras", "config.json", "metrics.json", "README.md"} <= uploaded
    assert not any(name.startswith("checkpoint/") for name in uploaded)  # resume-only files
    assert f"pushed {len(uploaded)} files to me/faces" in pushed.output
    card = hub_env.repos["me/faces"].commits[hub_env.repos["me/faces"].refs["main"]][
        "README.md"].decode()
    assert yaml.safe_load(card.split("---\n")[1])["metrics"] == ["accuracy", "f1"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"on {metrics['val']['name']} ({metrics['val']['n']} images)" in card
    assert f"| val.accuracy | {round(metrics['val']['accuracy'], 4)} |" in card
    assert "| val.macro_f1 |" in card and "| best_epoch |" in card
    # sizes, supports and speeds are not scores; the dataset's name is not a table row
    assert not re.search(r"\| (val\.name|val\.n|.*support|train_images_per_s) \|", card)
    assert "pypi.org" not in card  # emotionkit is not on PyPI: no dead link

    crops = face_crops(3, 7)
    np.savez(tmp_path / "crops.npz", *crops)
    local = load_classifier(out).predict(crops)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    env["HF_HOME"] = str(tmp_path / "elsewhere")
    code = ("import numpy as np, sys; from emotionkit import EmotionRecognizer; "
            "rec = EmotionRecognizer(detector='none', classifier='hf://me/faces'); "
            "crops = np.load(sys.argv[1]); "
            "np.save(sys.argv[2], rec.classify([crops[k] for k in sorted(crops.files, "
            "key=lambda k: int(k.split('_')[1]))]))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "crops.npz"),
                           str(tmp_path / "remote.npy")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "remote.npy"), local, atol=1e-5)


def test_unreachable_hub_is_one_error_without_retry_warnings(
    hub_env: FakeHub, no_backoff, caplog: pytest.LogCaptureFixture
) -> None:
    """huggingface_hub logs a warning per retry (``Retrying in 1s [Retry 1/5]``, shown on
    stderr): only our one error is left."""
    import logging

    hub_env.stop()  # no network: nothing listens at HF_ENDPOINT
    level = logging.getLogger("huggingface_hub").level
    with pytest.raises(ModelLoadError, match="cannot download from http://127.0.0.1"):
        hub.download_model("hf://me/fer7")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("huggingface_hub")] == []
    assert logging.getLogger("huggingface_hub").level == level


def test_push_without_network_is_one_error_line(hub_env: FakeHub, fer7_model_dir: Path,
                                               no_backoff) -> None:
    """The HTTP client's connection error was not caught: a traceback, exit 1."""
    hub_env.stop()
    result = _runner().invoke(cli, ["models", "push", str(fer7_model_dir), "--repo-id",
                                    "me/offline"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("error: push to me/offline on http://127.0.0.1")
    assert result.output.count("\n") == 1 and "check the network" in result.output


def test_quieted_hub_warnings_are_only_the_downloading_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While thread A downloads (quiet), a hub warning logged by another thread is still
    shown, A's own is hidden, and after A leaves the same warning shows again; nested and
    overlapping quiet blocks work; no logger level changes."""
    import logging
    import threading

    from emotionkit.hub import _hub_warnings_hidden

    http = logging.getLogger("huggingface_hub.utils._http")  # where retries are logged
    levels = (logging.getLogger("huggingface_hub").level, http.level)
    a_inside, a_may_log, a_done = threading.Event(), threading.Event(), threading.Event()

    def download_a() -> None:
        with _hub_warnings_hidden(), _hub_warnings_hidden():
            a_inside.set()
            a_may_log.wait(10)
            http.warning("Retrying in 1s [Retry 1/5]. (thread A)")
            http.error("an error from A")
        a_done.set()

    caplog.set_level(logging.WARNING)
    a = threading.Thread(target=download_a)
    a.start()
    try:
        assert a_inside.wait(10)
        http.warning("warning of another thread")
        with _hub_warnings_hidden():  # overlapping download B in this thread
            http.warning("Retrying in 1s [Retry 1/5]. (thread B)")
            a_may_log.set()
            assert a_done.wait(10)
        http.warning("after the downloads")
    finally:
        a_may_log.set()
        a.join(10)
    shown = [r.getMessage() for r in caplog.records if r.name.startswith("huggingface_hub")]
    assert shown == ["warning of another thread", "an error from A", "after the downloads"]
    assert (logging.getLogger("huggingface_hub").level, http.level) == levels


def test_hub_registration_never_replaces_a_name_silently() -> None:
    from emotionkit.registry import _classifiers, list_classifiers, register_classifier

    model = hub.HubModel(name="test-taken", repo_id="me/taken", labels=("a", "b"))
    register_classifier("test-taken", lambda: "the user's own")
    try:
        with pytest.raises(ValueError, match="already a registered hub model or classifier"):
            hub.register_hub_model(model)
        assert _classifiers.create("test-taken") == "the user's own"
        with pytest.raises(ValueError, match="built in"):
            hub.register_hub_model(hub.HubModel(name="fer-cnn", repo_id="x/y", labels=("a",)),
                                   overwrite=True)
        with pytest.raises(ValueError, match="built in"):
            hub.unregister_hub_model("fer-cnn")
        assert "fer-cnn" in [m.name for m in hub.list_hub_models()]
        assert "fer-cnn" in list_classifiers()
    finally:
        _classifiers.unregister("test-taken")


# -- errors: what fails is named, programming errors are not hidden ------------------------
def test_programming_errors_are_not_reported_as_hub_failures(hub_env: FakeHub,
                                                             fer7_model_dir: Path) -> None:
    """``except Exception`` around the hub calls turned a caller's TypeError into
    "download failed" / "push failed" errors."""
    sha = hub_env.commit("me/fer7", _files(fer7_model_dir))
    with pytest.raises(TypeError):
        hub.download_model("hf://me/fer7", revision=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hub.push_model(fer7_model_dir, "me/pushed", commit_message=5,  # type: ignore[arg-type]
                       check=False)
    # the same calls with arguments of the right type work
    assert hub.download_model("hf://me/fer7", revision=sha).name == sha
    assert hub.push_model(fer7_model_dir, "me/pushed", commit_message="5", check=False).commit


def test_refused_token_is_named_in_the_error(hub_env: FakeHub, fer7_model_dir: Path) -> None:
    """A token the hub refuses (401) read "download/push failed (Client error '401
    Unauthorized' for url ...)", without the hub's reason."""
    hub_env.commit("me/fer7", _files(fer7_model_dir))
    hub_env.tokens.add("hf_good")
    runner = _runner()
    pushed = runner.invoke(cli, ["models", "push", str(fer7_model_dir), "--repo-id", "me/new",
                                 "--token", "hf_bad"])
    downloaded = runner.invoke(cli, ["models", "download", "hf://me/fer7", "--token", "hf_bad"])
    for result in (pushed, downloaded):
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert "refused the token (401: Invalid credentials in Authorization header)" in (
            result.stderr)
        assert "--token, HF_TOKEN or `hf auth login`" in result.stderr
    assert "me/new" not in hub_env.repos
    good = runner.invoke(cli, ["models", "push", str(fer7_model_dir), "--repo-id", "me/new",
                               "--token", "hf_good"])
    assert good.exit_code == 0, good.output


def test_malformed_hf_endpoint_is_one_clear_error(hub_env: FakeHub, fer7_model_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``HF_ENDPOINT=http://[::1`` was a ValueError traceback; ``localhost:8080`` (no
    scheme) read "download from localhost:8080 failed", not naming HF_ENDPOINT."""
    for endpoint in ("http://[::1", "localhost:8080", "http://", "ftp://hub.example.com",
                     "https://huggingface..co"):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        expected = re.escape(f"HF_ENDPOINT={endpoint!r} is not an http(s) URL")
        with pytest.raises(ModelLoadError, match=expected):
            hub.download_model("hf://me/fer7")
        with pytest.raises(ModelLoadError, match=expected):
            hub.push_model(fer7_model_dir, "me/fer7", check=False)
    # a new process: huggingface_hub itself fails on import (ValueError) with that one
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HF_HOME")}
    env["HF_ENDPOINT"] = "http://[::1"
    for command in (["download", "hf://me/fer7"], ["cache-dir"]):
        result = subprocess.run([sys.executable, "-m", "emotionkit", "models", *command],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert result.stderr == ("error: HF_ENDPOINT='http://[::1' is not an http(s) URL; set "
                                 "it to the hub or mirror's address (https://huggingface.co "
                                 "if unset)\n")


def test_empty_revision_does_not_bypass_the_pin(pinned) -> None:
    """``revision=""`` (``--revision ""``) went to the hub as a revision named "" for a
    registered name ("revision '' not found") and was dropped for an hf:// spec (main)."""
    with pytest.raises(ModelLoadError, match="empty revision"):
        hub.download_model("test-fer7", revision="")
    with pytest.raises(ModelLoadError, match="empty revision"):
        hub.download_model("hf://me/fer7", revision=" ")
    result = _runner().invoke(cli, ["models", "download", "test-fer7", "--revision", ""])
    assert result.exit_code == 1 and "empty revision" in result.stderr


def test_offline_hint_names_a_revision_given_apart(hub_env: FakeHub,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--revision`` the "download it first" hint named the spec without it, which
    downloads another revision."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=re.escape(
            "`emotionkit models download hf://me/other@v2` while online")):
        hub.download_model("hf://me/other", revision="v2")


def test_pins_must_cover_config_and_model_file(hub_env: FakeHub, fer7_model_dir: Path) -> None:
    """A HubModel with a commit but no file hashes said "no published version is pinned";
    one whose hashes left out the model file loaded that file unpinned."""
    with pytest.raises(ValueError, match="sha256 of config.json"):
        hub.HubModel(name="test-x", repo_id="me/x", revision="0" * 40)
    with pytest.raises(ValueError, match="sha256 of config.json"):
        hub.HubModel(name="test-x", repo_id="me/x", files={"model.keras": "0" * 64})
    files = _files(fer7_model_dir)
    sha = hub_env.commit("me/half", files)
    hub.register_hub_model(hub.HubModel(name="test-half", repo_id="me/half", revision=sha,
                                        files={"config.json": _sha256(files["config.json"])}))
    try:
        with pytest.raises(ModelLoadError, match="'model.keras', which has no pinned sha256"):
            hub.download_model("test-half")
    finally:
        hub.unregister_hub_model("test-half")


def _set_modes(root: Path, file_mode: int, dir_mode: int) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            if not (Path(folder) / name).is_symlink():
                (Path(folder) / name).chmod(file_mode)
        Path(folder).chmod(dir_mode)


def test_read_only_and_unreadable_caches_give_one_error_line(
    hub_env: FakeHub, fer7_model_dir: Path, tmp_path: Path
) -> None:
    """A cache that cannot be written read "download from ... failed (Permission
    denied)"; a damaged file in a read-only cache, or an unreadable cached file, was a
    PermissionError traceback (deleting it, or hashing it)."""
    prefix = without_root_file_access()
    hub_env.commit("me/fer7", _files(fer7_model_dir))

    def models(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, sys.executable, "-m", "emotionkit", "models", *args],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=120)

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    fresh = models("download", "hf://me/fer7", HF_HUB_CACHE=str(locked / "hub"))
    assert fresh.returncode == 1 and fresh.stderr.count("\n") == 1, fresh.stderr
    assert f"cannot write to the model cache {locked / 'hub'} (" in fresh.stderr
    assert "Permission denied" in fresh.stderr and "HF_HUB_CACHE" in fresh.stderr

    cache = hub.cache_dir()
    blob = (hub.download_model("hf://me/fer7") / "model.keras").resolve()
    damaged = bytearray(blob.read_bytes())
    damaged[100] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(damaged))
    _set_modes(cache, 0o444, 0o555)
    try:
        for command in (["download", "hf://me/fer7"], ["info", "hf://me/fer7"]):
            result = models(*command, HF_HUB_OFFLINE="1")
            assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0 and "not cached" in result.stdout  # info
        result = models("download", "hf://me/fer7", HF_HUB_OFFLINE="1")
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "sha256 mismatch" in result.stderr
        assert f"could not be deleted (Permission denied): delete {blob}" in result.stderr
        assert blob.exists()
        blob.chmod(0o000)
        result = models("download", "hf://me/fer7", HF_HUB_OFFLINE="1")
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert f"cannot read the cached file {blob} (" in result.stderr
    finally:
        _set_modes(cache, 0o644, 0o755)


def test_push_of_an_unreadable_file_is_one_error_line(hub_env: FakeHub, fer7_model_dir: Path,
                                                      tmp_path: Path) -> None:
    """A file of the model directory that cannot be read was a PermissionError traceback;
    a folder that cannot be read was left out of the upload without a word."""
    prefix = without_root_file_access()
    directory = tmp_path / "trained"
    shutil.copytree(fer7_model_dir, directory)
    notes = directory / "notes.txt"
    notes.write_text("trained on Tuesday")
    plots = directory / "plots"
    plots.mkdir()
    (plots / "loss.txt").write_text("0.5")
    try:
        for locked in (notes, plots):
            locked.chmod(0o000)
            result = subprocess.run(
                [*prefix, sys.executable, "-m", "emotionkit", "models", "push", str(directory),
                 "--repo-id", "me/unreadable"], capture_output=True, text=True, timeout=120)
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            assert errors == [  # stderr may hold TensorFlow's warnings from the model check
                f"error: cannot push {directory}: cannot read {locked} (Permission denied)"]
            assert "me/unreadable" not in hub_env.repos
            locked.chmod(0o755)
    finally:
        plots.chmod(0o755)


# -- the classifier registry ---------------------------------------------------------------
def test_broken_entry_point_is_one_clear_error(tmp_path: Path, astronaut_bgr: np.ndarray,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin whose module cannot be imported was a ModuleNotFoundError
    traceback, in ``create_classifier`` and in ``emotionkit detect``."""
    import cv2

    from emotionkit import create_classifier
    from emotionkit.errors import UnknownPluginError

    info = tmp_path / "site" / "emotionkit_broken_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: emotionkit-broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[emotionkit.classifiers]\nbroken = broken_plugin_not_installed:load\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    expected = ("classifier 'broken' (entry point broken_plugin_not_installed:load of "
                "emotionkit-broken-plugin 1.0) cannot be imported (ModuleNotFoundError: No "
                "module named 'broken_plugin_not_installed'); reinstall or uninstall "
                "emotionkit-broken-plugin")
    with pytest.raises(UnknownPluginError, match=re.escape(expected)):
        create_classifier("broken")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    result = _runner().invoke(cli, ["detect", str(photo), "--classifier", "broken"])
    assert result.exit_code == 2 and result.stderr == f"error: {expected}\n", result.output


def test_registration_refuses_names_and_factories_that_cannot_work() -> None:
    """A factory that is not callable failed only when the name was used; a name starting
    with hf:// (always read as a hub spec) or an empty one could never be used."""
    from emotionkit import list_classifiers, register_classifier, register_detector

    with pytest.raises(TypeError, match="factory for 'test-str' must be callable"):
        register_classifier("test-str", "my_package.models:load")  # type: ignore[arg-type]
    for name in ("hf://me/model", "", " "):
        with pytest.raises(ValueError, match="name"):
            register_classifier(name, lambda: None)
    with pytest.raises(ValueError, match="name"):
        register_detector("", lambda: None)
    with pytest.raises(ValueError, match="name"):
        hub.register_hub_model(hub.HubModel(name="hf://me/model", repo_id="me/model"))
    assert not {"test-str", "hf://me/model", "", " "} & set(list_classifiers())
    assert "hf://me/model" not in [model.name for model in hub.list_hub_models()]


def test_repo_ids_the_hub_refuses_are_refused_up_front(hub_env: FakeHub) -> None:
    """``hf://me/a--b`` passed emotionkit's check and failed inside huggingface_hub
    ("download from ... failed (Cannot have -- or .. in repo_id)")."""
    for repo_id in ("me/a--b", "me/a..b", "me/a-", "me/.a", "me/model.git", "me/" + "a" * 97):
        with pytest.raises(ModelLoadError, match=re.escape(f"invalid repository id {repo_id!r}")):
            hub.parse_spec(f"hf://{repo_id}")
    result = _runner().invoke(cli, ["models", "download", "hf://me/a--b"])
    assert result.exit_code == 2 and result.stderr.startswith(
        "error: 'hf://me/a--b': invalid repository id 'me/a--b' (OWNER/REPO:")
    assert hub.parse_spec("hf://me_2/a_b.c-d") == ("me_2/a_b.c-d", None)
