"""``emotionkit detect DIR``: empty directories and non-image files among images."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    return subprocess.run([sys.executable, "-m", "emotionkit", *args], capture_output=True,
                          text=True, env=env)


def test_empty_directory_is_one_error(tmp_path: Path, brightness_model_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("detect", str(empty), "-c", str(brightness_model_dir), "--format", "json")
    assert res.returncode == 1
    assert json.loads(res.stdout) == []
    assert res.stderr.strip() == f"error: {empty}: directory holds no image files"


def test_non_image_files_among_images(tmp_path: Path, astronaut_bgr: np.ndarray,
                                      brightness_model_dir: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    for i in range(3):
        cv2.imwrite(str(root / f"face{i}.png"), astronaut_bgr)
    (root / "readme.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    res = run_cli("detect", str(root), "-c", str(brightness_model_dir), "--format", "csv",
                  "--detector", "haar")
    assert res.returncode == 1  # broken.jpg has an image extension: reported, others run
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert sorted(Path(r["path"]).name for r in rows) == ["face0.png", "face1.png", "face2.png"]
    assert "skipped 1 file(s)" in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0]


def test_annotate_must_be_a_directory_for_images(tmp_path: Path, astronaut_bgr: np.ndarray,
                                                 brightness_model_dir: Path) -> None:
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), astronaut_bgr)
    res = run_cli("detect", str(image), "-c", str(brightness_model_dir), "--annotate",
                  str(image))
    assert res.returncode == 2 and "names a directory" in res.stderr


def test_very_wide_image_does_not_end_the_batch(tmp_path: Path, astronaut_bgr: np.ndarray,
                                                brightness_model_dir: Path) -> None:
    """MediaPipe used to abort the process (a worker: BrokenProcessPool) on a side of
    32767 px or more."""
    root = tmp_path / "wide"
    root.mkdir()
    cv2.imwrite(str(root / "a_face.png"), astronaut_bgr)
    cv2.imwrite(str(root / "b_strip.png"), np.full((1, 200_000, 3), 90, np.uint8))
    cv2.imwrite(str(root / "c_face.png"), astronaut_bgr)
    res = run_cli("detect", str(root), "-c", str(brightness_model_dir), "--format", "json",
                  "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert [len(r["faces"]) for r in json.loads(res.stdout)] == [1, 0, 1]


def test_broken_symlink_in_a_directory_is_reported(tmp_path: Path, astronaut_bgr: np.ndarray,
                                                   brightness_model_dir: Path) -> None:
    root = tmp_path / "links"
    root.mkdir()
    cv2.imwrite(str(root / "face.png"), astronaut_bgr)
    (root / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    res = run_cli("detect", str(root), "-c", str(brightness_model_dir), "--format", "json")
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: {root / 'gone.jpg'}: no such file; check the path"
    results = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    assert len(results["face.png"]["faces"]) == 1 and results["gone.jpg"]["error"]


def test_resume_retries_the_images_that_failed(tmp_path: Path, astronaut_bgr: np.ndarray,
                                               brightness_model_dir: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    cv2.imwrite(str(root / "good.png"), astronaut_bgr)
    (root / "later.jpg").write_bytes(b"not yet downloaded")
    out = tmp_path / "r.jsonl"
    args = ("detect", str(root), "-c", str(brightness_model_dir), "--format", "jsonl",
            "-o", str(out))
    assert run_cli(*args).returncode == 1
    again = run_cli(*args, "--resume")  # still broken: tried again, still an error
    assert again.returncode == 1 and "resume: 1 record(s) of failed images removed" in again.stderr
    cv2.imwrite(str(root / "later.jpg"), astronaut_bgr)  # fixed: the next resume succeeds
    res = run_cli(*args, "--resume")
    assert res.returncode == 0, res.stderr
    assert "resume: 1 of 2 images already in" in res.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["path"]).name for r in records] == ["good.png", "later.jpg"]
    assert [(r["error"], len(r["faces"])) for r in records] == [(None, 1), (None, 1)]


_KILLER_MODULE = '''
import os
import signal

from emotionkit.detectors import HaarDetector


class DiesOnEveryImage(HaarDetector):
    def detect(self, image):
        os.kill(os.getpid(), signal.SIGKILL)
'''

_KILLER_MAIN = '''
import sys
import emotionkit
from killer import DiesOnEveryImage
emotionkit.register_detector("dies", DiesOnEveryImage)
from emotionkit.cli import run
sys.argv = ["emotionkit", *sys.argv[1:]]
run()
'''


def test_workers_that_keep_dying_end_the_cli_with_one_error_line(
        tmp_path: Path, astronaut_bgr: np.ndarray, brightness_model_dir: Path) -> None:
    """Worker processes dying on image after image stop the run; the CLI said so with a
    BrokenProcessPool traceback, now with one error line (exit 1)."""
    (tmp_path / "killer.py").write_text(_KILLER_MODULE)
    (tmp_path / "main.py").write_text(_KILLER_MAIN)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        cv2.imwrite(str(photos / f"face{i}.png"), astronaut_bgr)
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, str(tmp_path / "main.py"), "detect", str(photos),
                          "-c", str(brightness_model_dir), "--detector", "dies",
                          "--workers", "2", "--format", "jsonl"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: worker processes died on 3 images in a row"), lines
