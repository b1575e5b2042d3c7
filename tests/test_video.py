"""Video: IoU tracking, smoothing, detect_video on a real face video, and ``detect VIDEO``."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotionkit.cli.detect import detect
from emotionkit.results import Face
from emotionkit.tracking import IoUTracker, iou
from emotionkit.video import _FOURCC

N_FRAMES = 24
FPS = 10.0


def _face(box: tuple[int, int, int, int], bright: float) -> Face:
    return Face(box=box, score=0.9, emotions={"bright": bright, "dark": 1 - bright})


def _frames(astronaut_bgr: np.ndarray, n: int) -> list[np.ndarray]:
    """A 640x480 canvas with the astronaut's head moving right 8 px a frame; the second
    half of the frames is darkened to 45 % brightness."""
    head = astronaut_bgr[20:260, 120:340]
    frames = []
    for i in range(n):
        frame = np.full((480, 640, 3), 90, dtype=np.uint8)
        x = 40 + 8 * (i % 40)
        frame[100:340, x:x + 220] = head
        if i >= n // 2:
            frame = (frame * 0.45).astype(np.uint8)
        frames.append(frame)
    return frames


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (640, 480))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def face_video(tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray) -> Path:
    """A real 24-frame 10 frames/s MJPEG .avi: a face moving across, bright then dark."""
    return _write_video(tmp_path_factory.mktemp("video") / "face.avi",
                        _frames(astronaut_bgr, N_FRAMES))


@pytest.fixture(scope="module")
def rec(brightness_model_dir: Path):
    from emotionkit import EmotionRecognizer

    return EmotionRecognizer(classifier=brightness_model_dir)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    return subprocess.run([sys.executable, "-m", "emotionkit", *args], capture_output=True,
                          text=True, env=env, cwd=cwd)


# --- tracking ------------------------------------------------------------------------------

def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_tracker_keeps_ids_and_starts_new_ones() -> None:
    tracker = IoUTracker(iou_threshold=0.3, max_age=1)
    a, b = tracker.update([_face((0, 0, 50, 50), 0.9), _face((200, 0, 50, 50), 0.9)])
    assert (a.face_id, b.face_id) == (0, 1)
    # listed in the other order and moved a little: ids follow the boxes
    b2, a2 = tracker.update([_face((205, 2, 50, 50), 0.9), _face((4, 3, 50, 50), 0.9)])
    assert (a2.face_id, b2.face_id) == (0, 1)
    assert tracker.update([]) == []  # both missed once: still within max_age
    (again,) = tracker.update([_face((6, 3, 50, 50), 0.9)])
    assert again.face_id == 0
    tracker.update([])
    tracker.update([])
    (new,) = tracker.update([_face((6, 3, 50, 50), 0.9)])
    assert new.face_id == 2  # track 0 expired; ids are not reused


def test_tracker_smoothing_is_an_exponential_moving_average() -> None:
    tracker = IoUTracker(smoothing=0.5)
    tracker.update([_face((0, 0, 50, 50), 1.0)])
    (f,) = tracker.update([_face((0, 0, 50, 50), 0.0)])
    assert f.emotions["bright"] == pytest.approx(0.5)
    assert f.raw_emotions["bright"] == 0.0
    (f,) = tracker.update([_face((0, 0, 50, 50), 0.0)])
    assert f.emotions["bright"] == pytest.approx(0.25)
    assert sum(f.emotions.values()) == pytest.approx(1.0)
    assert f.to_dict()["face_id"] == 0
    with pytest.raises(ValueError, match="smoothing"):
        IoUTracker(smoothing=1.0)


# --- detect_video ----------------------------------------------------------------------------

def test_detect_video_tracks_one_face_that_turns_dark(rec, face_video: Path) -> None:
    frames = list(rec.detect_video(face_video))
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert frames[3].time == pytest.approx(0.3)
    assert all(len(f.faces) == 1 for f in frames)
    assert {f.faces[0].face_id for f in frames} == {0}
    xs = [f.faces[0].box[0] for f in frames]
    assert xs[-1] - xs[0] > 100  # the box follows the moving face
    labels = [f.faces[0].top_emotion for f in frames]
    assert labels[: N_FRAMES // 2] == ["bright"] * (N_FRAMES // 2)
    assert labels[N_FRAMES // 2 :] == ["dark"] * (N_FRAMES // 2)


def test_every_n_and_smoothing(rec, face_video: Path) -> None:
    frames = list(rec.detect_video(str(face_video), every_n=3, smoothing=0.8))
    assert [f.index for f in frames] == list(range(0, N_FRAMES, 3))
    half = N_FRAMES // 2
    first_dark = next(f for f in frames if f.index >= half)
    face = first_dark.faces[0]
    # raw says dark at once; the smoothed probability lags behind
    assert face.raw_emotions["dark"] > 0.5 and face.top_emotion == "bright"
    assert frames[-1].faces[0].top_emotion == "dark"


def test_unreadable_and_truncated_videos(rec, face_video: Path, tmp_path: Path) -> None:
    from emotionkit.video import VideoError

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoError, match="not a readable video"):
        list(rec.detect_video(bad))
    with pytest.raises(VideoError, match="no such video file"):
        rec.detect_video(tmp_path / "missing.avi")  # at the call, not at the first frame
    with pytest.raises(ValueError, match="every_n"):
        rec.detect_video(face_video, every_n=0)
    with pytest.raises(ValueError, match="smoothing"):
        rec.detect_video(face_video, smoothing=1.0)
    data = face_video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    seen = []
    with pytest.raises(VideoError, match="truncated or corrupt"):
        for frame in rec.detect_video(cut):
            seen.append(frame.index)
    assert 0 < len(seen) < N_FRAMES


# --- CLI ---------------------------------------------------------------------------------

def test_cli_csv_rows_and_annotated_video(face_video: Path, brightness_model_dir: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "out" / "annotated.mp4"
    res = run_cli("detect", str(face_video), "-c", str(brightness_model_dir), "--format", "csv",
                  "--annotate", str(out), "--every-n", "2")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [int(r["frame"]) for r in rows] == list(range(0, N_FRAMES, 2))
    assert {r["face_id"] for r in rows} == {"0"}
    assert float(rows[1]["time"]) == pytest.approx(0.2)
    assert rows[0]["top_emotion"] == "bright" and rows[-1]["top_emotion"] == "dark"
    assert float(rows[0]["bright"]) + float(rows[0]["dark"]) == pytest.approx(1, abs=1e-3)
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES // 2
    ok, first = cap.read()
    assert ok and first.shape == (480, 640, 3)
    cap.release()


def test_cli_json_rows(face_video: Path, brightness_model_dir: Path) -> None:
    res = run_cli("detect", str(face_video), "-c", str(brightness_model_dir), "--format", "json",
                  "--every-n", "6", "--smoothing", "0.5")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["frame"] for r in rows] == [0, 6, 12, 18]
    assert rows[0]["face_id"] == 0 and len(rows[0]["box"]) == 4
    assert set(rows[0]["emotions"]) == {"bright", "dark"}


def test_cli_truncated_video_keeps_rows(face_video: Path, brightness_model_dir: Path,
                                        tmp_path: Path) -> None:
    data = face_video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    res = run_cli("detect", str(cut), "-c", str(brightness_model_dir), "--format", "json")
    assert res.returncode == 1
    assert len(json.loads(res.stdout)) > 0  # the list is closed and holds the rows read
    assert res.stderr.count("error:") == 1 and "truncated or corrupt" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_video_errors_are_one_line(face_video: Path, brightness_model_dir: Path,
                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 100)
    res = run_cli("detect", str(bad), "-c", str(brightness_model_dir))
    assert res.returncode == 1 and res.stderr.strip().startswith("error:")
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("detect", str(face_video), str(face_video.with_suffix(".jpg")), "-c",
                  str(brightness_model_dir))
    assert res.returncode == 2 and "cannot mix videos and images" in res.stderr


def test_cli_annotated_video_path_errors(face_video: Path, brightness_model_dir: Path,
                                         tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("a regular file")
    res = run_cli("detect", str(face_video), "-c", str(brightness_model_dir), "--annotate",
                  str(afile / "out.mp4"))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == (f"error: {afile / 'out.mp4'}: cannot create its folder {afile} "
                          "(File exists); choose another output path\n")
    before = face_video.read_bytes()
    res = run_cli("detect", str(face_video), "--annotate", str(face_video))
    assert res.returncode == 2 and "is one of the inputs" in res.stderr
    assert face_video.read_bytes() == before
    # a type the writer cannot make, or a directory: refused before the video is read
    (tmp_path / "vdir").mkdir()
    for target, message in ((tmp_path / "out.gif", "cannot write this video type; use .avi"),
                            (tmp_path / "vdir", "is a directory; name the output video file")):
        res = run_cli("detect", str(face_video), "-c", str(brightness_model_dir),
                      "--format", "csv", "--annotate", str(target))
        assert res.returncode == 2 and res.stdout == "", res.stderr
        assert res.stderr.count("\n") == 1 and message in res.stderr


def test_an_existing_file_named_like_a_camera_index_is_a_file(
    astronaut_bgr: np.ndarray, brightness_model_dir: Path, tmp_path: Path
) -> None:
    from emotionkit.video import is_video_source

    cv2.imwrite(str(tmp_path / "2024.png"), astronaut_bgr)
    (tmp_path / "2024.png").rename(tmp_path / "2024")
    res = run_cli("detect", "2024", "-c", str(brightness_model_dir), "--format", "json",
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (result,) = json.loads(res.stdout)
    assert result["path"] == "2024" and len(result["faces"]) == 1
    assert is_video_source("2025")  # no such file: still a camera index


def _read_from(fd: int, enough, deadline: float) -> bytes:
    """Bytes from pipe ``fd`` in small reads until ``enough(data)`` or end of file (a read
    that returns nothing); fails after ``deadline`` (``time.monotonic()``)."""
    import select
    import time

    data = b""
    while not enough(data):
        assert time.monotonic() < deadline, f"timed out; read so far: {data!r}"
        if select.select([fd], [], [], 1.0)[0]:
            chunk = os.read(fd, 512)
            if not chunk:
                break
            data += chunk
    return data


def test_ctrl_c_keeps_rows_written_so_far(astronaut_bgr: np.ndarray, brightness_model_dir: Path,
                                          tmp_path: Path) -> None:
    import time

    long_video = _write_video(tmp_path / "long.avi", _frames(astronaut_bgr, 400))
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    out = tmp_path / "ann.avi"
    # The rows go to a pipe that the test stops reading after the first three, shrunk to
    # one page where the OS allows it (Linux): the run blocks on its output a few dozen
    # frames in, so it cannot reach the last frame (400 rows of ~100 bytes) before SIGINT
    # arrives, however fast the machine.
    read_end, write_end = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    except (ImportError, AttributeError, OSError):
        pass
    with open(tmp_path / "stderr.txt", "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emotionkit", "detect", str(long_video), "-c",
             str(brightness_model_dir), "--format", "csv", "--annotate", str(out)],
            stdout=write_end, stderr=err_file, env=env)
    os.close(write_end)
    try:
        deadline = time.monotonic() + 120
        head = _read_from(read_end, lambda d: d.count(b"\n") >= 4, deadline)  # header + 3
        assert head.count(b"\n") >= 4, (head, (tmp_path / "stderr.txt").read_text())
        proc.send_signal(signal.SIGINT)
        rest = _read_from(read_end, lambda d: False, deadline)  # to the end of the output
        assert proc.wait(timeout=60) == 130, (tmp_path / "stderr.txt").read_text()
    finally:
        os.close(read_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (tmp_path / "stderr.txt").read_text()
    assert "interrupted" in err and "Traceback" not in err
    rows = list(csv.DictReader(io.StringIO((head + rest).decode())))
    assert 3 <= len(rows) < 400
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and cap.read()[0]  # the partial annotated video is playable
    cap.release()


def test_detect_help_lists_every_writable_video_type() -> None:
    """The --annotate help text names the video types by hand (the CLI cannot import
    emotionkit.video, which needs cv2, for --help): it must match what the writer takes."""
    (option,) = [p for p in detect.params if p.name == "annotate"]
    listed = re.search(r"\(((?:\.\w+(?:, )?)+)\)", option.help or "")
    assert listed is not None, option.help
    assert listed.group(1).split(", ") == list(_FOURCC)


def _write_vfr_video(path: Path, frames: list[np.ndarray], times: list[float]) -> Path:
    """A variable-frame-rate MPEG-4 .mkv (PyAV): frame i is shown at ``times[i]`` s, as
    phone and browser recordings do (the header's frame count is then an estimate)."""
    from fractions import Fraction

    av = pytest.importorskip("av", reason="PyAV writes the variable-rate test video")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for frame, t in zip(frames, times):
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
            picture.pts, picture.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_variable_frame_rate_video_keeps_its_times(
    rec, tmp_path: Path, astronaut_bgr: np.ndarray, brightness_model_dir: Path
) -> None:
    from emotionkit.video import video_info

    times = [0.0, 0.1, 0.2, 0.3, 1.3, 1.4, 1.5, 3.5, 3.6, 3.7]
    video = _write_vfr_video(tmp_path / "vfr.mkv", _frames(astronaut_bgr, 10), times)
    assert video_info(video).frame_count > len(times)  # the header's estimate
    frames = list(rec.detect_video(video))  # all 10 frames, no "truncated" error
    assert [f.time for f in frames] == pytest.approx(times, abs=0.002)
    res = run_cli("detect", str(video), "-c", str(brightness_model_dir), "--format", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [float(r["time"]) for r in rows] == pytest.approx(times, abs=0.002)


def test_opencv_without_cap_prop_pts_reads_videos(face_video: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV 4.10 and older (allowed by the requirements) have no CAP_PROP_PTS: a video
    is still read whole, times from the file, no start offset."""
    from emotionkit.video import read_frames

    monkeypatch.delattr(cv2, "CAP_PROP_PTS")
    times = [t for _, t, _ in read_frames(face_video)]
    assert times == pytest.approx([i / FPS for i in range(N_FRAMES)], abs=0.002)


def test_video_starting_after_time_zero_is_whole(
    rec, tmp_path: Path, astronaut_bgr: np.ndarray
) -> None:
    """A clip cut out of a longer recording without re-timing: its first frame is at
    2.0 s in the file. Every frame is read, times count from the first frame, and no
    "truncated" error (the header's duration counts from time 0); cut short, it is still
    reported as truncated."""
    from emotionkit.video import VideoError

    times = [2.0 + 0.1 * i for i in range(16)]
    video = _write_vfr_video(tmp_path / "late.mkv", _frames(astronaut_bgr, 16), times)
    frames = list(rec.detect_video(video))
    assert [f.time for f in frames] == pytest.approx([t - 2.0 for t in times], abs=0.002)
    data = video.read_bytes()
    cut = tmp_path / "late-cut.mkv"
    cut.write_bytes(data[: len(data) * 3 // 4])
    seen = []
    with pytest.raises(VideoError, match="decoding stopped after .* frames"):
        for frame in rec.detect_video(cut):
            seen.append(frame.index)
    assert 0 < len(seen) < len(times)


@pytest.mark.parametrize("box", [(0, 0, 512, 512), (470, 200, 40, 40)])
def test_annotation_label_stays_inside_the_image(box: tuple[int, int, int, int]) -> None:
    """A face as tall as the image (the ``none`` detector) or at the right edge: the whole
    label text is drawn inside the image (as many text pixels as for a face mid-image)."""
    from emotionkit.annotate import draw_faces

    def text_pixels(where: tuple[int, int, int, int]) -> int:
        face = Face(box=where, score=None, emotions={"happy": 0.87, "sad": 0.13})
        out = draw_faces(np.zeros((512, 512, 3), np.uint8), [face])
        return int(np.all(out == 255, axis=2).sum())  # white text on a black canvas

    assert text_pixels(box) >= text_pixels((200, 200, 40, 40)) > 50


# --- detect VIDEO: table, jsonl and json rows ----------------------------------------------

VIDEO_ROW_KEYS = {"path", "frame", "time", "face_id", "box", "score", "emotions",
                  "top_emotion", "landmarks"}
_TABLE_ROW = re.compile(
    r"(?P<path>.+): frame (?P<frame>\d+) \((?P<time>\d+\.\d\d) s\): face #(?P<face_id>\d+) "
    r"at \((?P<box>\d+, \d+, \d+, \d+)\) score (?P<score>[01]\.\d\d): "
    r"(?P<top>\w+) (?P<p1>[01]\.\d\d), (?P<second>\w+) (?P<p2>[01]\.\d\d)")


@pytest.fixture(scope="module")
def api_frames(rec, face_video: Path) -> dict:
    """The Python API's frames of ``face_video`` (every frame), by index."""
    return {frame.index: frame for frame in rec.detect_video(face_video)}


def _rows(fmt: str, stdout: str) -> list[dict]:
    """``detect VIDEO`` output as dicts: JSON rows as they are, table lines parsed."""
    if fmt == "json":
        rows = json.loads(stdout)  # the whole output is one JSON document: a list
        assert isinstance(rows, list)
        return rows
    lines = stdout.splitlines()
    if fmt == "jsonl":
        return [json.loads(line) for line in lines]
    rows = []
    for line in lines:
        match = _TABLE_ROW.fullmatch(line)
        assert match, line
        top, second = match["top"], match["second"]
        rows.append({"path": match["path"], "frame": int(match["frame"]),
                     "time": float(match["time"]), "face_id": int(match["face_id"]),
                     "box": [int(v) for v in match["box"].split(", ")],
                     "score": float(match["score"]), "top_emotion": top,
                     "emotions": {top: float(match["p1"]), second: float(match["p2"])}})
    return rows


@pytest.mark.parametrize(("fmt", "every_n"),
                         [("jsonl", 1), ("jsonl", 2), ("json", 2), ("table", 2)])
def test_cli_video_rows_per_face_per_frame(fmt: str, every_n: int, face_video: Path,
                                           brightness_model_dir: Path, api_frames) -> None:
    """One row per face per processed frame, with the frame's index in the video (not
    renumbered by --every-n), its time, the face id and the face the Python API finds in
    that frame (docs/video.md)."""
    from emotionkit.tracking import iou

    res = run_cli("detect", str(face_video), "-c", str(brightness_model_dir), "--format", fmt,
                  "--every-n", str(every_n))
    assert res.returncode == 0, res.stderr
    rows = _rows(fmt, res.stdout)
    assert len(rows) == N_FRAMES // every_n
    assert [r["frame"] for r in rows] == list(range(0, N_FRAMES, every_n))
    for row in rows:
        if fmt != "table":
            assert set(row) == VIDEO_ROW_KEYS, row
            assert set(row["landmarks"]) >= {"right_eye", "left_eye", "mouth_center"}
        frame = api_frames[row["frame"]]
        (face,) = frame.faces
        assert row["path"] == str(face_video) and row["face_id"] == 0
        assert row["time"] == pytest.approx(row["frame"] / FPS, abs=0.006)
        assert iou(tuple(row["box"]), face.box) > 0.9, (row, face.box)
        assert row["score"] == pytest.approx(face.score, abs=0.02)
        assert row["top_emotion"] == face.top_emotion
        for label, p in row["emotions"].items():
            assert p == pytest.approx(face.emotions[label], abs=0.03), (row, face.emotions)
    assert rows[0]["top_emotion"] == "bright" and rows[-1]["top_emotion"] == "dark"
    assert rows[-1]["box"][0] - rows[0]["box"][0] > 100  # the face moves right


# --- summary -------------------------------------------------------------------------------

def test_library_summary_of_frames_equals_cli_summary_of_the_csv(
        rec, face_video: Path, brightness_model_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from emotionkit.cli import main
    from emotionkit.summary import plot_timelines, read_timelines, timelines_from_frames

    (timeline,) = timelines_from_frames(rec.detect_video(face_video, every_n=2),
                                        path=str(face_video))
    ours = timeline.summary()
    assert ours["frames"] == N_FRAMES // 2 and ours["face_id"] == 0
    assert ours["share"] == {"bright": 0.5, "dark": 0.5}  # bright first half, dark second
    rows = tmp_path / "rows.csv"
    runner = CliRunner()
    res = runner.invoke(main, ["detect", str(face_video), "-c", str(brightness_model_dir),
                               "--format", "csv", "--every-n", "2", "-o", str(rows)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["summary", str(rows), "--format", "json"])
    assert res.exit_code == 0, res.output
    (theirs,) = json.loads(res.output)
    assert {k: theirs[k] for k in ("path", "face_id", "frames", "start", "end", "share")} == {
        k: ours[k] for k in ("path", "face_id", "frames", "start", "end", "share")}
    for label, mean in ours["mean"].items():  # the csv holds 4 decimals
        assert theirs["mean"][label] == pytest.approx(mean, abs=2e-4)
    assert read_timelines(rows)[0].tops == timeline.tops
    plot_timelines([timeline], tmp_path / "plots" / "t.png")
    image = cv2.imread(str(tmp_path / "plots" / "t.png"))
    assert image is not None and image.shape[0] > 100 and image.std() > 10


def test_read_timelines_errors_name_the_file(tmp_path: Path) -> None:
    from emotionkit.errors import EmotionKitError
    from emotionkit.summary import ResultsFileError, read_timelines

    images = tmp_path / "images.csv"
    images.write_text("path,face,x,y,w,h,score,top_emotion,happy\nphoto.jpg,0,1,1,9,9,,happy,1\n")
    with pytest.raises(ResultsFileError, match=r"images\.csv: not a video results csv") as err:
        read_timelines(images)
    assert isinstance(err.value, EmotionKitError)
    with pytest.raises(ResultsFileError, match="missing.csv: cannot read"):
        read_timelines(tmp_path / "missing.csv")


def test_video_frames_compare_by_index_time_and_faces_not_pixels(rec, face_video: Path) -> None:
    """``==`` on VideoFrames (a pickled copy, ``in``) compares index, time and faces; the
    image array is left out (comparing it raised "truth value of an array is ambiguous")."""
    import pickle

    frames = list(rec.detect_video(face_video))[:2]
    copy = pickle.loads(pickle.dumps(frames[0]))
    assert copy == frames[0] and copy in frames
    assert frames[0] != frames[1]
    np.testing.assert_array_equal(copy.image, frames[0].image)


# --- odd videos and writer misuse --------------------------------------------------------

def test_a_video_without_frames_is_an_error(rec, tmp_path: Path,
                                            brightness_model_dir: Path) -> None:
    """An .avi holding no frame (a recording stopped at once) used to give no rows and
    exit code 0, as if it had no faces."""
    from click.testing import CliRunner

    from emotionkit.cli import main
    from emotionkit.video import VideoError

    empty = _write_video(tmp_path / "empty.avi", [])
    with pytest.raises(VideoError, match=r"empty\.avi: holds no video frames"):
        list(rec.detect_video(empty))
    res = CliRunner().invoke(main, ["detect", str(empty), "-c", str(brightness_model_dir),
                                    "--format", "csv"])
    assert res.exit_code == 1 and res.stdout.count("\n") == 1  # the header only
    assert res.stderr.startswith(f"error: {empty}: holds no video frames")


def test_every_n_must_be_a_whole_number(face_video: Path) -> None:
    """``every_n=2.5`` used to process frames 0, 5, 10... (``index % 2.5``) silently."""
    from emotionkit.video import read_frames

    with pytest.raises(TypeError, match="every_n must be an int, got 2.5"):
        read_frames(face_video, every_n=2.5)  # type: ignore[arg-type]
    assert [i for i, _, _ in read_frames(face_video, every_n=np.int64(12))] == [0, 12]


def test_annotated_video_refuses_a_frame_of_another_size(tmp_path: Path,
                                                        astronaut_bgr: np.ndarray) -> None:
    """OpenCV drops a frame of another size than the video's without an error: the video
    came out short. The writer raises instead."""
    from emotionkit.video import AnnotatedVideoWriter

    out = tmp_path / "a.avi"
    with AnnotatedVideoWriter(out, 10) as writer:
        writer.write(astronaut_bgr, [])
        with pytest.raises(ValueError, match=r"512x256 pixels, but the video is 512x512"):
            writer.write(astronaut_bgr[:256], [])
        writer.write(astronaut_bgr, [])
    assert writer.frames == 2
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    cap.release()


def test_annotated_video_draws_float_boxes_rounded(tmp_path: Path,
                                                   astronaut_bgr: np.ndarray) -> None:
    """A plugin detector's float box (which cropping and ``draw_faces`` take) was an
    OpenCV 'Overload resolution failed' error when the face id was drawn."""
    from emotionkit.tracking import TrackedFace
    from emotionkit.video import AnnotatedVideoWriter

    emotions = {"happy": 0.7, "sad": 0.3}
    with AnnotatedVideoWriter(tmp_path / "a.avi", 10) as writer:
        writer.write(astronaut_bgr, [TrackedFace((176.6, 81.8, 96.4, 95.7), 0.9, emotions,
                                                 face_id=3)])
    assert writer.frames == 1


def test_annotated_video_too_wide_for_its_codec_says_so(tmp_path: Path) -> None:
    """MPEG-4 (.mp4) takes frames up to 8191 pixels a side: a wider one used to be "cannot
    write the video; check the directory", the wrong advice; Motion JPEG (.avi) takes it."""
    from emotionkit.video import AnnotatedVideoWriter, VideoError

    wide = np.full((64, 9000, 3), 90, np.uint8)
    with pytest.raises(VideoError,
                       match=r"cannot encode 9000x64 frames as \.mp4 \(mp4v\); .*: use \.avi"):
        AnnotatedVideoWriter(tmp_path / "wide.mp4", 10).write(wide, [])
    with AnnotatedVideoWriter(tmp_path / "wide.avi", 10) as writer:
        writer.write(wide, [])
    assert cv2.VideoCapture(str(tmp_path / "wide.avi")).read()[1].shape == wide.shape


def test_annotated_video_codec_limit_named_only_for_a_side_over_it(tmp_path: Path) -> None:
    """mp4v cannot encode a 1x1 frame either: the message used to blame its 8191-pixel
    limit for any frame it refused."""
    from emotionkit.video import AnnotatedVideoWriter, VideoError

    with pytest.raises(VideoError, match=r"cannot encode 1x1 frames as \.mp4 \(mp4v\)") as err:
        AnnotatedVideoWriter(tmp_path / "dot.mp4", 10).write(np.zeros((1, 1, 3), np.uint8), [])
    assert "8191" not in str(err.value) and "try .avi or .mkv" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
