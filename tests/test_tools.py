"""The developer scripts beside the package: ``benchmarks/bench.py`` and ``tools/gpu/``.

They are run as the developer runs them (``python SCRIPT ...`` in a subprocess, from a
temporary working directory); the GPU tools' data packing is checked on real FER2013
rows, and their argument checks on what they would otherwise start on a GPU machine.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import FER_CSV, ROOT, needs_shared

BENCH = ROOT / "benchmarks" / "bench.py"
GPU = ROOT / "tools" / "gpu"

needs_gpu_tools = pytest.mark.skipif(
    not GPU.is_dir(), reason=f"{GPU} not found (tools/ is in the repository, not the sdist)")


def run_script(script: Path, *args: str, cwd: Path,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def assert_one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2, no traceback, and a last stderr line naming ``words``."""
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, last


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_gpu_{name}", GPU / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- benchmarks/bench.py -----------------------------------------------------------------

@pytest.mark.parametrize(("args", "option"), [
    (["--runs", "0"], "--runs"),
    (["--workers", "1", "0"], "--workers"),
    (["--dir-images", "-3"], "--dir-images"),
])
def test_bench_rejects_bad_counts_before_measuring(tmp_path: Path, args: list[str],
                                                  option: str) -> None:
    res = run_script(BENCH, *args, cwd=tmp_path, timeout=120)
    assert_one_line_error(res, option)
    assert res.stdout == ""


def test_bench_unknown_classifier_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    res = run_script(BENCH, "--classifier", str(missing), "--dir-images", "0", cwd=tmp_path)
    assert_one_line_error(res, "--classifier", str(missing))


def test_bench_short_run_measures_the_model_card_rows(tmp_path: Path) -> None:
    """A short configuration prints the rows the model card quotes (batch-256 faces/s,
    single-face ms, MediaPipe detect ms) and the Keras backend they were measured on."""
    res = run_script(BENCH, "--runs", "3", "--dir-images", "0", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "classifier: fer-cnn (bundled)" in out
    assert f"Keras backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}" in out
    for row in ("rec.detect 640x480, 1 face, mediapipe | median",
                "rec.classify batch 1 ", "rec.classify batch 256 "):
        assert row in out, out
    assert "faces/s" in out.split("rec.classify batch 256")[1].splitlines()[0]
    assert "detect DIR" not in out
    assert list(tmp_path.iterdir()) == []


# -- tools/gpu ---------------------------------------------------------------------------

@needs_gpu_tools
@pytest.mark.parametrize("args", [[], ["shrink"], ["widen", "only-one.npz"], ["grow", "x"]])
def test_fp16_bad_arguments_print_usage(tmp_path: Path, args: list[str]) -> None:
    res = run_script(GPU / "fp16.py", *args, cwd=tmp_path, timeout=60)
    assert_one_line_error(res)
    assert "usage:" in res.stderr


@needs_gpu_tools
@pytest.mark.parametrize(("args", "words"), [
    (["--folds", "1"], ["--folds"]),
    (["--teacher-minutes", "10", "--total-minutes", "8"], ["--total-minutes"]),
    (["--student-weight", "1.5"], ["--student-weight"]),
    (["--vgg-epochs", "2", "--vgg3-weight", "-0.1"], ["--vgg3-weight"]),
    (["--teacher-epochs", "0"], ["--teacher-epochs"]),
])
def test_crossfit_rejects_a_bad_plan_before_starting(tmp_path: Path, args: list[str],
                                                     words: list[str]) -> None:
    """Nothing is started (no work directory, no process) for a plan that would waste the
    GPU session; the csv given is real so that only the option is wrong."""
    csv = tmp_path / "fer.csv.gz"
    with gzip.open(csv, "wt") as f:
        f.write("emotion,pixels,Usage\n")
    work = tmp_path / "work"
    res = run_script(GPU / "crossfit.py", "run", "--work", str(work), "--csv", str(csv),
                     *args, cwd=tmp_path, timeout=120)
    assert_one_line_error(res, *words)
    assert not work.exists()


@needs_gpu_tools
def test_crossfit_missing_csv_starts_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    missing = tmp_path / "fer2013.csv.gz"
    res = run_script(GPU / "crossfit.py", "run", "--work", str(work), "--csv", str(missing),
                     "--folds", "2", cwd=tmp_path, timeout=120)
    assert_one_line_error(res, "--csv", str(missing))
    assert not work.exists()


@needs_gpu_tools
def test_pack_without_shared_data_is_one_line(tmp_path: Path) -> None:
    """pack.py in a checkout with no ../shared beside it: one line, nothing written."""
    repo = tmp_path / "repo"
    (repo / "tools" / "gpu").mkdir(parents=True)
    shutil.copy(GPU / "pack.py", repo / "tools" / "gpu" / "pack.py")
    res = run_script(repo / "tools" / "gpu" / "pack.py", cwd=repo, timeout=60)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert str(tmp_path / "shared" / "data" / "fer2013" / "fer2013.csv.gz") in last, last
    assert sorted(p.name for p in repo.iterdir()) == ["tools"]


@needs_gpu_tools
@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_travelling_tree_over_the_limit_is_refused(tmp_path: Path) -> None:
    """What a device call carries (git's tracked and untracked-not-ignored files plus the
    carried folders) is summed; over 64 MiB, pack.py says so instead of the first call."""
    pack = load_tool("pack")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("/.gpu/\n/ignored/\n")
    (repo / "tracked.txt").write_bytes(b"x" * 1000)
    (repo / "ignored").mkdir()
    with (repo / "ignored" / "big").open("wb") as f:  # sparse: ignored, so not counted
        f.truncate(100 * 2**20)
    (repo / ".gpu").mkdir()
    with (repo / ".gpu" / "data").open("wb") as f:
        f.truncate(60 * 2**20)
    size = pack.travelling_bytes(repo, [repo / ".gpu"])
    assert size == 60 * 2**20 + 1000 + len("/.gpu/\n/ignored/\n")
    assert "60.0 of 64 MiB" in pack.check_travel_size(repo, [repo / ".gpu"])
    with (repo / "untracked.bin").open("wb") as f:
        f.truncate(5 * 2**20)
    with pytest.raises(SystemExit, match=r"65\.0 MiB.*over the 64 MiB"):
        pack.check_travel_size(repo, [repo / ".gpu"])


@needs_gpu_tools
@needs_shared
def test_pack_unpack_keep_training_and_publictest_exactly(tmp_path: Path) -> None:
    """The csv rebuilt on the device gives the same Training and PublicTest data
    (fingerprints, as in config.json and soft-label files) and no PrivateTest rows."""
    from emotionkit.training import Fer2013Csv

    rows: dict[str, list[str]] = {"Training": [], "PublicTest": [], "PrivateTest": []}
    with gzip.open(FER_CSV, "rt") as src:
        header = next(src)
        for line in src:
            split = rows[line.rstrip("\n").rsplit(",", 1)[1]]
            if len(split) < 30:
                split.append(line)
            if all(len(r) == 30 for r in rows.values()):
                break
    csv = tmp_path / "fer.csv.gz"
    with gzip.open(csv, "wt") as dst:  # the three splits interleaved
        dst.write(header)
        dst.writelines(line for three in zip(*rows.values()) for line in three)
    pack, unpack = load_tool("pack"), load_tool("unpack")
    packed = tmp_path / "gpu" / "fer-trainval.npz.xz"
    assert pack.pack_data(csv, packed) == 60
    rebuilt = unpack.unpack(packed, tmp_path / "device" / "fer2013.csv.gz")
    before, after = Fer2013Csv(csv), Fer2013Csv(rebuilt)
    assert "PrivateTest" in before.splits
    assert after.splits == ("Training", "PublicTest")
    for split in ("Training", "PublicTest"):
        assert after.load(split).fingerprint() == before.load(split).fingerprint()
