"""The ``emotionkit`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import without_root_file_access


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    # surrogateescape: file names that are not UTF-8 come back as they were given
    return subprocess.run([sys.executable, "-m", "emotionkit", *args], capture_output=True,
                          encoding="utf-8", errors="surrogateescape", env=env, check=check)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray) -> Path:
    """A folder with two face photos, a photo without a face and a non-image file."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(root / "astronaut.jpg"), astronaut_bgr)
    (root / "sub").mkdir()
    cv2.imwrite(str(root / "sub" / "dark.png"), (astronaut_bgr * 0.5).astype(np.uint8))
    cv2.imwrite(str(root / "coffee.png"), np.ascontiguousarray(data.coffee()[:, :, ::-1]))
    (root / "notes.txt").write_text("not an image")
    return root


def test_help_is_fast_and_does_not_import_tensorflow() -> None:
    code = ("import sys; from click.testing import CliRunner; from emotionkit.cli import main;"
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
            "assert 'detect' in r.output;"
            "r = CliRunner().invoke(main, ['detect', '--help']); assert r.exit_code == 0;"
            "assert '--annotate' in r.output;"
            "print('tensorflow' in sys.modules, 'mediapipe' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]



def test_import_and_help_load_no_numpy_opencv_or_pillow() -> None:
    """``import emotionkit`` loaded NumPy, OpenCV and Pillow (~0.4 s): ``emotionkit --help``
    waited for them, and Ctrl-C meanwhile was a traceback, not the CLI's note."""
    code = ("import sys, emotionkit; from click.testing import CliRunner;"
            "from emotionkit.cli import main; r = CliRunner().invoke(main, ['--help']);"
            "assert r.exit_code == 0, r.output;"
            "print(*(m in sys.modules for m in ('numpy', 'cv2', 'PIL')));"
            "from emotionkit import EmotionRecognizer, FER_LABELS, load_image;"
            "print(EmotionRecognizer.__module__, len(FER_LABELS), 'Face' in dir(emotionkit),"
            "      all(hasattr(emotionkit, name) for name in emotionkit.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.splitlines() == ["False False False", "emotionkit.recognizer 7 True True"]


def test_ctrl_c_in_the_console_script_set_up_is_exit_code_130(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while the console script set up its streams and imported Pillow was a
    traceback."""
    from emotionkit import cli

    def interrupted() -> None:
        raise KeyboardInterrupt  # what SIGINT raises in the main thread meanwhile

    monkeypatch.setenv("EMOTIONKIT_NATIVE_LOGS", "1")  # leave this process's fd 2 alone
    monkeypatch.setattr(cli, "_set_stdout_errors", interrupted)
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"

TABLE_LINE = re.compile(r"^(?P<path>.+): face (?P<face>\d+) at \((?P<box>\d+(?:, \d+){3})\)"
                        r"(?: score (?P<score>\d\.\d\d))?: (?P<emotions>.+)$")


def test_table_output(photos: Path, brightness_model_dir: Path) -> None:
    res = run("detect", str(photos / "astronaut.jpg"), str(photos / "sub" / "dark.png"),
              "-c", str(brightness_model_dir))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res.stdout
    parsed = [TABLE_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [Path(m["path"]).name for m in parsed] == ["astronaut.jpg", "dark.png"]
    for m, expected in zip(parsed, ("bright", "dark")):
        assert m["face"] == "0" and 0 <= float(m["score"]) <= 1
        assert len(m["box"].split(", ")) == 4
        emotions = [(label, float(p)) for label, p in
                    (item.split(" ") for item in m["emotions"].split(", "))]
        # both labels of the model, most probable first: the top label is the first named
        assert sorted(label for label, _ in emotions) == ["bright", "dark"]
        assert emotions[0][0] == expected, m.group(0)
        assert emotions[0][1] >= emotions[1][1] and emotions[0][1] > 0.5
        assert sum(p for _, p in emotions) == pytest.approx(1, abs=0.011)


def test_json_output_over_a_directory(photos: Path, brightness_model_dir: Path) -> None:
    res = run("detect", str(photos), "-c", str(brightness_model_dir), "--format", "json")
    assert res.returncode == 0, res.stderr
    results = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    assert set(results) == {"astronaut.jpg", "dark.png", "coffee.png"}
    assert results["coffee.png"]["faces"] == []
    assert results["dark.png"]["faces"][0]["top_emotion"] == "dark"
    assert all(r["error"] is None for r in results.values())
    assert "skipped 1 file" in res.stderr


def test_csv_output_has_a_row_per_face(photos: Path, brightness_model_dir: Path) -> None:
    res = run("detect", str(photos / "astronaut.jpg"), str(photos / "sub" / "dark.png"),
              "-c", str(brightness_model_dir), "--format", "csv", "--detector", "haar")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["astronaut.jpg", "dark.png"]
    assert rows[0]["top_emotion"] == "bright" and rows[0]["score"] == ""
    assert float(rows[0]["bright"]) + float(rows[0]["dark"]) == pytest.approx(1, abs=1e-3)


def test_annotate_writes_copies(photos: Path, brightness_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated"
    res = run("detect", str(photos), "-c", str(brightness_model_dir), "--annotate", str(out))
    assert res.returncode == 0, res.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["astronaut.jpg", "coffee.png", "sub/dark.png"]
    original = cv2.imread(str(photos / "sub" / "dark.png"))
    annotated = cv2.imread(str(out / "sub" / "dark.png"))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)


def test_bad_files_are_reported_and_the_batch_continues(
    photos: Path, brightness_model_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    res = run("detect", str(tmp_path / "missing.jpg"), str(empty), str(photos / "notes.txt"),
              str(photos / "astronaut.jpg"), "-c", str(brightness_model_dir), "--format", "json")
    assert res.returncode == 1
    errors = res.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "missing.jpg: no such file" in errors[0]
    assert "empty.jpg: file is empty" in errors[1]
    assert "notes.txt: not a readable image" in errors[2]
    results = json.loads(res.stdout)
    assert [r["error"] is None for r in results] == [False, False, False, True]
    assert len(results[3]["faces"]) == 1
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--detector", "nope", "unknown detector 'nope'"),
     ("--classifier", "nope", "unknown classifier 'nope'")],
)
def test_unknown_plugins_are_one_line_errors(photos: Path, brightness_model_dir: Path,
                                             option: str, value: str, message: str) -> None:
    args = ["detect", str(photos / "astronaut.jpg"), "-c", str(brightness_model_dir),
            option, value]
    for extra in ([], ["--workers", "2"]):  # with workers, checked before they start
        res = run(*args, *extra)
        assert res.returncode == 2
        assert res.stderr.count("\n") == 1 and message in res.stderr
        assert res.stdout == ""


def test_invalid_model_file_is_a_one_line_error(photos: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.keras"
    fake.write_text("nope")
    res = run("detect", str(photos / "astronaut.jpg"), "-c", str(fake))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "fake.keras: not a loadable Keras model" in res.stderr


def test_empty_directory_is_reported(tmp_path: Path, brightness_model_dir: Path) -> None:
    res = run("detect", str(tmp_path), "-c", str(brightness_model_dir))
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: {tmp_path}: directory holds no image files"


def test_version() -> None:
    import emotionkit

    assert run("--version", check=True).stdout.strip().endswith(emotionkit.__version__)


def test_annotate_directory_that_cannot_be_created(photos: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("a regular file")
    res = run("detect", str(photos / "astronaut.jpg"), "--annotate", str(afile / "sub"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"error: --annotate {afile / 'sub'}: cannot create the directory "
                          "(Not a directory); choose another directory\n")


def test_annotate_goes_on_past_images_it_cannot_write(
    astronaut_bgr: np.ndarray, brightness_model_dir: Path, tmp_path: Path
) -> None:
    """One failed copy is reported and the batch goes on; a type OpenCV cannot write
    (.jfif) becomes .png; the same name from two folders gets a -1 suffix."""
    d1, d2, out = tmp_path / "d1", tmp_path / "d2", tmp_path / "ann"
    for folder in (d1 / "blocked", d2, out):
        folder.mkdir(parents=True)
    for image in (d1 / "blocked" / "y.png", d1 / "x.jpg", d2 / "x.jpg"):
        cv2.imwrite(str(image), astronaut_bgr)
    (d1 / "z.jfif").write_bytes(cv2.imencode(".jpg", astronaut_bgr)[1].tobytes())
    (out / "blocked").write_text("a file where the sub-folder should go")
    res = run("detect", str(d1), str(d2), "-c", str(brightness_model_dir), "--format", "json",
              "--annotate", str(out))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    results = json.loads(res.stdout)  # the list is closed
    assert [Path(r["path"]).name for r in results] == ["y.png", "x.jpg", "z.jfif", "x.jpg"]
    assert all(len(r["faces"]) == 1 for r in results)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "y.png: cannot write its annotated copy" in errors[0]
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    assert written == ["blocked", "x-1.jpg", "x.jpg", "z.png"]
    assert f"{d2 / 'x.jpg'}: annotated copy written as {out / 'x-1.jpg'}" in res.stderr
    assert cv2.imread(str(out / "z.png")).shape == astronaut_bgr.shape


def test_annotate_never_overwrites_an_input(astronaut_bgr: np.ndarray,
                                            brightness_model_dir: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    before = photo.read_bytes()
    for annotate in (tmp_path, tmp_path / "annotated"):  # the input folder, or inside it
        res = run("detect", str(tmp_path), "-c", str(brightness_model_dir), "--annotate",
                  str(annotate))
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr.strip() == (
            f"error: --annotate {annotate}: is inside the input directory {tmp_path}, where "
            "its copies would overwrite or join the inputs; choose a directory outside the "
            "inputs")
    # input files: the copy of x.jfif (written as .png) must not replace the input x.png
    other = tmp_path / "x.jfif"
    cv2.imwrite(str(tmp_path / "x.jpg"), astronaut_bgr)
    (tmp_path / "x.jpg").rename(other)
    res = run("detect", str(other), str(photo), "-c", str(brightness_model_dir),
              "--annotate", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert photo.read_bytes() == before and (tmp_path / "photo-1.png").is_file()
    assert (tmp_path / "x.png").is_file()


def test_output_that_is_an_input_is_refused(photos: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.jpg"
    victim.write_bytes((photos / "astronaut.jpg").read_bytes())
    before = victim.read_bytes()
    for inputs, output in (([victim], victim), ([tmp_path], victim),
                           ([photos / "astronaut.jpg", victim], tmp_path / "." / "victim.jpg")):
        res = run("detect", *map(str, inputs), "-o", str(output))
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr == (f"error: --output {output}: is one of the inputs, writing it "
                              "would destroy it; choose another file\n")
        assert victim.read_bytes() == before


def test_annotated_copy_of_a_pgm_is_written_as_png(astronaut_bgr: np.ndarray,
                                                   brightness_model_dir: Path,
                                                   tmp_path: Path) -> None:
    """OpenCV has a .pgm writer, but not for the colour drawing: the copy falls back to .png."""
    photos = tmp_path / "in"
    photos.mkdir()
    cv2.imwrite(str(photos / "gray.pgm"), cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY))
    res = run("detect", str(photos), "-c", str(brightness_model_dir), "--annotate",
              str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert cv2.imread(str(tmp_path / "out" / "gray.png")).shape == (512, 512, 3)


def test_non_utf8_file_names_are_annotated_or_refused_without_a_crash(
        astronaut_bgr: np.ndarray, brightness_model_dir: Path, tmp_path: Path) -> None:
    """A Latin-1 file name (not valid UTF-8) crashed the process in cv2.imwrite (exit
    139: no later image, no summary); OpenCV's video classes crash on such names too."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    jpeg = cv2.imencode(".jpg", astronaut_bgr)[1]
    (inputs / os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg.tobytes())
    (inputs / "z.jpg").write_bytes(jpeg.tobytes())
    out = tmp_path / "out"
    res = run("detect", str(inputs), "-c", str(brightness_model_dir), "--annotate", str(out),
              "--format", "csv")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 3  # header and one face per image
    written = sorted(os.fsencode(p.name) for p in out.iterdir())
    assert written == [b"caf\xe9.jpg", b"z.jpg"]
    assert cv2.imdecode(np.frombuffer((out / "z.jpg").read_bytes(), np.uint8),
                        cv2.IMREAD_COLOR).shape == astronaut_bgr.shape
    # results name such files as given, in a file (-o) and on a strict stdout (a UTF-8
    # locale whose stdout refuses undecodable names: en_US.UTF-8, unlike C.UTF-8)
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    env["PYTHONIOENCODING"] = "utf-8:strict"
    rows = tmp_path / "rows.csv"
    for extra in (["-o", str(rows)], []):
        res = subprocess.run([sys.executable, "-m", "emotionkit", "detect", str(inputs), "-c",
                              str(brightness_model_dir), "--format", "csv", *extra],
                             capture_output=True, env=env)
        assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]
        out = rows.read_bytes() if extra else res.stdout
        assert b"caf\xe9.jpg," in out and len(out.splitlines()) == 3
    # ... and so they read back: a video result csv naming such a file, for `summary`
    video_rows = tmp_path / "video-rows.csv"
    video_rows.write_bytes(b"path,frame,time,face_id,x,y,w,h,score,top_emotion,happy,sad\n"
                           b"clip\xe9.mp4,0,0.0,0,1,1,9,9,0.9,happy,0.9,0.1\n")
    res = subprocess.run([sys.executable, "-m", "emotionkit", "summary", str(video_rows)],
                         capture_output=True, env=env)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert res.stdout.startswith(b"clip\xe9.mp4: face #0: 1 frames")
    video = tmp_path / os.fsdecode(b"clip\xe9.avi")
    video.write_bytes(b"not decoded: the name is refused first")
    res = run("detect", str(video), "-c", str(brightness_model_dir))
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "file name is not valid UTF-8" in res.stderr
    res = run("detect", str(tmp_path / "clip.avi"), "-c", str(brightness_model_dir),
              "--annotate", str(tmp_path / os.fsdecode(b"\xe9.avi")))
    assert res.returncode == 2 and "not valid UTF-8" in res.stderr, res.stderr


def test_empty_input_name_is_refused(brightness_model_dir: Path, tmp_path: Path) -> None:
    """An unset shell variable ("$DIR") used to mean the current folder, walked at once."""
    (tmp_path / "x.jpg").write_bytes(b"")
    res = subprocess.run([sys.executable, "-m", "emotionkit", "detect", "", "-c",
                          str(brightness_model_dir)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: an input is an empty name"), res.stderr


def test_heic_and_other_formats_in_a_walk(astronaut_bgr: np.ndarray, brightness_model_dir: Path,
                                          tmp_path: Path) -> None:
    """Every type the decoders read is walked (.avif, .jpe were skipped as "without an image
    extension"); a HEIC photo, which needs a decoder Pillow lacks, is reported as such."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(astronaut_bgr[:, :, ::-1])).save(tmp_path / "a.avif")
    jpeg = cv2.imencode(".jpg", astronaut_bgr)[1]
    (tmp_path / "b.jpe").write_bytes(jpeg.tobytes())
    # the first bytes of an iPhone HEIC file: an ISO-BMFF "ftyp" box of brand "heic"
    (tmp_path / "c.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" +
                                      bytes(64))
    res = run("detect", str(tmp_path), "-c", str(brightness_model_dir), "--format", "jsonl")
    assert res.returncode == 1
    records = {Path(r["path"]).name: r for r in map(json.loads, res.stdout.splitlines())}
    assert len(records["a.avif"]["faces"]) == 1 and len(records["b.jpe"]["faces"]) == 1
    assert "a HEIC/HEIF photo, which needs a HEIF decoder" in records["c.HEIC"]["error"]
    assert "skipped" not in res.stderr


def test_unreadable_files_and_folders_are_reported_and_the_batch_continues(
        astronaut_bgr: np.ndarray, tmp_path: Path) -> None:
    """An unreadable file given by name stopped the whole batch (click's readable check,
    exit 2); an unreadable folder inside an input directory was skipped in silence."""
    prefix = without_root_file_access()
    root = tmp_path
    try:
        jpeg = cv2.imencode(".jpg", astronaut_bgr)[1]
        for name in ("ok.jpg", "secret.jpg", "walk/a.jpg", "walk/locked/b.jpg",
                     "walk/noentry/c.jpg"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(jpeg.tobytes())
        (root / "secret.jpg").chmod(0o000)
        (root / "walk" / "locked").chmod(0o000)
        (root / "walk" / "noentry").chmod(0o644)  # names listable, entries not reachable
        env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
        res = subprocess.run(
            [*prefix, sys.executable, "-m", "emotionkit", "detect", str(root / "secret.jpg"),
             str(root / "ok.jpg"), str(root / "walk"), "-d", "none", "--format", "jsonl"],
            capture_output=True, text=True, env=env)
        assert res.returncode == 1, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert any("secret.jpg: cannot read file (Permission denied)" in e for e in errors)
        assert any("locked: cannot read this folder (Permission denied)" in e for e in errors)
        assert any("noentry: cannot read this folder (Permission denied)" in e
                   for e in errors), res.stderr
        names = [Path(json.loads(line)["path"]).name for line in res.stdout.splitlines()]
        assert names == ["secret.jpg", "ok.jpg", "a.jpg"]
    finally:
        for path in (root / "secret.jpg", root / "walk" / "locked", root / "walk" / "noentry"):
            path.chmod(0o755)


def test_linked_folders_are_not_followed_and_a_note_says_so(
        astronaut_bgr: np.ndarray, brightness_model_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cv2.imwrite(str(elsewhere / "b.jpg"), astronaut_bgr)
    root = tmp_path / "root"
    root.mkdir()
    cv2.imwrite(str(root / "a.jpg"), astronaut_bgr)
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    res = run("detect", str(root), "-c", str(brightness_model_dir), "--format", "csv")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 2
    assert "did not follow 1 linked folder(s)" in res.stderr


def test_ctrl_c_while_starting_is_exit_code_130(monkeypatch: pytest.MonkeyPatch,
                                                 astronaut_bgr: np.ndarray,
                                                 tmp_path: Path) -> None:
    """Ctrl-C while the recognizer loads (TensorFlow's import takes seconds) gave click's
    "Aborted!" and exit code 1, unlike Ctrl-C later in the run (130)."""
    from click.testing import CliRunner

    from emotionkit import recognizer
    from emotionkit.cli import main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # what SIGINT raises in the main thread during the load

    monkeypatch.setattr(recognizer.EmotionRecognizer, "__init__", interrupted)
    cv2.imwrite(str(tmp_path / "a.jpg"), astronaut_bgr)
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "a.jpg")])
    assert result.exit_code == 130
    assert result.output == "interrupted\n" and "Aborted" not in result.output
