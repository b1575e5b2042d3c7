"""``emotionkit.batch`` (process pool) and ``emotionkit detect --output/--resume/--workers``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from emotionkit.batch import iter_detect_paths
from emotionkit.detectors import HaarDetector
from emotionkit.errors import UnknownPluginError


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONKIT_NATIVE_LOGS"}
    return subprocess.run([sys.executable, "-m", "emotionkit", *args], capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray) -> Path:
    """Real photos: the astronaut brightened, darkened, mirrored and scaled; a photo with
    no face (coffee); a broken file with an image extension."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    bright = np.clip(astronaut_bgr.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)
    dark = (astronaut_bgr.astype(np.float32) * 0.45).astype(np.uint8)
    cv2.imwrite(str(root / "a_bright.png"), bright)
    cv2.imwrite(str(root / "b_dark.jpg"), dark)
    cv2.imwrite(str(root / "c_mirror.png"), astronaut_bgr[:, ::-1])
    cv2.imwrite(str(root / "d_small.jpg"), cv2.resize(astronaut_bgr, (320, 320)))
    cv2.imwrite(str(root / "e_coffee.png"), np.ascontiguousarray(data.coffee()[:, :, ::-1]))
    (root / "f_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(root / "g_dark_mirror.png"), dark[:, ::-1])
    return root


def _summary(results) -> list[tuple[str, list, str | None]]:
    return [(Path(r.path).name, [f.to_dict() for f in r.faces], r.error) for r in results]


def test_workers_give_the_same_results_in_order(photo_dir: Path,
                                                brightness_model_dir: Path) -> None:
    paths = sorted(photo_dir.iterdir())
    one = _summary(iter_detect_paths(paths, detector="mediapipe",
                                     classifier=brightness_model_dir, chunk_size=3))
    two = _summary(iter_detect_paths(paths, detector="mediapipe",
                                     classifier=brightness_model_dir, workers=2, chunk_size=3))
    assert one == two
    assert [name for name, _, _ in one] == [p.name for p in paths]
    by_name = {name: (faces, error) for name, faces, error in one}
    assert [f["top_emotion"] for f in by_name["a_bright.png"][0]] == ["bright"]
    assert [f["top_emotion"] for f in by_name["b_dark.jpg"][0]] == ["dark"]
    assert [f["top_emotion"] for f in by_name["g_dark_mirror.png"][0]] == ["dark"]
    assert by_name["e_coffee.png"] == ([], None)
    assert by_name["f_broken.jpg"][0] == [] and "not a readable image" in by_name["f_broken.jpg"][1]


def test_keep_images_and_bad_arguments(photo_dir: Path, brightness_model_dir: Path) -> None:
    path = photo_dir / "d_small.jpg"
    (result,) = iter_detect_paths([path], detector="haar", classifier=brightness_model_dir,
                                  keep_images=True)
    assert result.image is not None and result.image.shape == (320, 320, 3)
    # bad arguments and unknown names raise at the call, before anything is asked for
    with pytest.raises(ValueError, match="workers"):
        iter_detect_paths([path], classifier=brightness_model_dir, workers=0)
    for workers in (1, 2):
        with pytest.raises(UnknownPluginError, match="no-such-detector"):
            iter_detect_paths([path], detector="no-such-detector",
                              classifier=brightness_model_dir, workers=workers)


def test_a_configured_detector_object_works_with_workers(photo_dir: Path,
                                                        brightness_model_dir: Path) -> None:
    """A built-in detector object is pickled as its settings and rebuilt in each worker
    (HaarDetector used to fail: "cannot pickle 'cv2.CascadeClassifier' object")."""
    paths = sorted(photo_dir.iterdir())
    detector = HaarDetector(min_neighbors=1)  # more faces than the default 5 finds
    one = list(iter_detect_paths(paths, detector=detector, classifier=brightness_model_dir,
                                 chunk_size=3))
    two = list(iter_detect_paths(paths, detector=detector, classifier=brightness_model_dir,
                                 workers=2, chunk_size=3))
    assert _summary(one) == _summary(two)
    default = _summary(iter_detect_paths(paths, detector="haar",
                                         classifier=brightness_model_dir))
    assert sum(map(len, (r.faces for r in one))) > sum(len(faces) for _, faces, _ in default)


class _LockedDetector:
    """A detector holding a lock, which cannot be pickled; finds no face."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list:
        return []


def test_a_detector_object_that_cannot_be_pickled_is_refused_at_the_call(
        photo_dir: Path, brightness_model_dir: Path) -> None:
    """...with advice, instead of failing in the first next() once the workers started."""
    paths = sorted(photo_dir.iterdir())
    with pytest.raises(TypeError, match=r"cannot be pickled \(TypeError: .*_thread.lock.*; "
                                        r"pass a detector name"):
        iter_detect_paths(paths, detector=_LockedDetector(), classifier=brightness_model_dir,
                          workers=2)
    # in this process (workers=1) it needs no pickling
    assert len(list(iter_detect_paths(paths, detector=_LockedDetector(),
                                      classifier=brightness_model_dir))) == len(paths)


def test_results_holding_images_can_be_compared(photo_dir: Path,
                                               brightness_model_dir: Path) -> None:
    """PathResult == used to raise ValueError (numpy arrays compared) once it held an
    image: the image is left out of the comparison."""
    from emotionkit.batch import PathResult

    paths = [photo_dir / "d_small.jpg", photo_dir / "f_broken.jpg"]
    first, second = (list(iter_detect_paths(paths, detector="haar", keep_images=True,
                                            classifier=brightness_model_dir))
                     for _ in range(2))
    assert first[0].image is not None and first == second
    assert first[0] != PathResult(first[0].path, [], None, first[0].image)
    assert PathResult("x.jpg", [], None, first[0].image) == PathResult("x.jpg")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_same_records(got: list[dict], expected: list[dict]) -> None:
    """Equal records; probabilities to 1e-5 (a face classified in another batch gets
    results that differ in the 6th decimal on some backends, e.g. JAX on CPU)."""
    def without_probabilities(record: dict) -> dict:
        return {**record, "faces": [{**f, "emotions": None} for f in record["faces"]]}

    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert without_probabilities(a) == without_probabilities(b)
        for fa, fb in zip(a["faces"], b["faces"]):
            assert fa["emotions"] == pytest.approx(fb["emotions"], abs=1e-5)


def test_jsonl_output_and_resume_after_a_killed_run(photo_dir: Path, tmp_path: Path,
                                                    brightness_model_dir: Path) -> None:
    out = tmp_path / "faces.jsonl"
    model = str(brightness_model_dir)
    full = run_cli("detect", str(photo_dir), "-c", model, "--detector", "haar", "--format",
                   "jsonl", "-o", str(out), "-q")
    assert full.returncode == 1  # the broken file
    assert full.stdout == ""
    records = _jsonl(out)
    names = [Path(r["path"]).name for r in records]
    assert names == sorted(p.name for p in photo_dir.iterdir())
    assert set(records[0]) == {"path", "faces", "error"}
    broken = next(r for r in records if r["path"].endswith("f_broken.jpg"))
    assert broken["faces"] == [] and "not a readable image" in broken["error"]

    # A run killed while writing: three whole records and half of the fourth.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    resumed = run_cli("detect", str(photo_dir), "-c", model, "--detector", "haar",
                      "--format", "jsonl", "-o", str(out), "--resume", "-q")
    assert resumed.returncode == 1, resumed.stderr  # f_broken.jpg was not recorded yet
    assert "3 of 7 images already in" in resumed.stderr
    _assert_same_records(_jsonl(out), records)

    # Everything recorded: only the failed image is tried again (and fails again); its
    # record moves to the end, one record per image.
    again = run_cli("detect", str(photo_dir), "-c", model, "--detector", "haar",
                    "--format", "jsonl", "-o", str(out), "--resume", "-q")
    assert again.returncode == 1, again.stderr
    assert "resume: 1 record(s) of failed images removed" in again.stderr
    assert "6 of 7 images already" in again.stderr
    _assert_same_records(_jsonl(out), [r for r in records if r is not broken] + [broken])


def test_cli_workers_match_in_process(photo_dir: Path, tmp_path: Path,
                                      brightness_model_dir: Path) -> None:
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.jsonl"
        res = run_cli("detect", str(photo_dir), "-c", str(brightness_model_dir), "--format",
                      "jsonl", "-o", str(out), "--workers", workers, "-q")
        assert res.returncode == 1 and res.stderr.count("error:") == 1, res.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]


def test_option_errors(tmp_path: Path, brightness_model_dir: Path,
                       astronaut_bgr: np.ndarray) -> None:
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), astronaut_bgr)
    model = str(brightness_model_dir)
    res = run_cli("detect", str(image), "-c", model, "--resume", "--format", "jsonl")
    assert res.returncode == 2 and "--resume needs --output" in res.stderr
    res = run_cli("detect", str(image), "-c", model, "--resume", "-o",
                  str(tmp_path / "x.csv"), "--format", "csv")
    assert res.returncode == 2 and "--format jsonl" in res.stderr


def test_empty_directory_with_output(tmp_path: Path, brightness_model_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.jsonl"
    res = run_cli("detect", str(empty), "-c", str(brightness_model_dir), "--format", "jsonl",
                  "-o", str(out), "--workers", "2")
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: {empty}: directory holds no image files"
    assert out.read_text() == ""


# --- worker processes that die, fail to start, or are stopped early ------------------------

_MARKER_WIDTH = 333  # images this wide are the ones the detectors below trip on


class _DiesOnMarker(HaarDetector):
    """The real Haar detector, except that its process is killed (as the out-of-memory
    killer or a crash in native code would) on an image ``_MARKER_WIDTH`` pixels wide."""

    def detect(self, image: np.ndarray) -> list:
        if image.shape[1] == _MARKER_WIDTH:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().detect(image)


class _SlowOnMarker(HaarDetector):
    """The real Haar detector, taking a minute on an image ``_MARKER_WIDTH`` pixels wide."""

    def detect(self, image: np.ndarray) -> list:
        if image.shape[1] == _MARKER_WIDTH:
            time.sleep(60)
        return super().detect(image)


def _marker_image(path: Path, astronaut_bgr: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.resize(astronaut_bgr, (_MARKER_WIDTH, _MARKER_WIDTH)))
    return path


def test_a_worker_that_dies_costs_only_its_image(photo_dir: Path, tmp_path: Path,
                                                  astronaut_bgr: np.ndarray,
                                                  brightness_model_dir: Path) -> None:
    """A worker process killed on one image used to end the whole run (BrokenProcessPool):
    the images in flight are run again, each on its own in new workers, the one that kills
    its worker again gets an error, and the run goes on in input order."""
    paths = sorted(photo_dir.iterdir())
    paths.insert(3, _marker_image(tmp_path / "killer.png", astronaut_bgr))
    got = _summary(iter_detect_paths(paths, detector=_DiesOnMarker(),
                                     classifier=brightness_model_dir, workers=2,
                                     chunk_size=4))
    expected = _summary(iter_detect_paths(paths[:3] + paths[4:], detector="haar",
                                          classifier=brightness_model_dir))
    assert [name for name, _, _ in got] == [p.name for p in paths]
    _, faces, error = got.pop(3)
    assert faces == [] and error is not None
    assert error.startswith(f"{paths[3]}: the worker process died while handling this image")
    assert got == expected


_ONLY_3_11_RACES = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="only Python 3.11's executor marks itself broken without the lock that submit() "
    "holds")


def _killer_and_pool(tmp_path: Path, astronaut_bgr: np.ndarray, workers: int) -> Any:
    """An image that kills its worker, and a pool of ``workers`` running the real Haar
    detector that dies on it."""
    import pickle

    from emotionkit.batch import _Pool

    killer = _marker_image(tmp_path / "killer.png", astronaut_bgr)
    return killer, _Pool(workers, (pickle.dumps(_DiesOnMarker()), 0.0, False))


def _wait_for_the_death(handled: Any) -> None:
    """Wait (2 minutes at most) until ``handled()``: the executor has handled the death
    of its worker."""
    deadline = time.monotonic() + 120
    while not handled():
        assert time.monotonic() < deadline, "the worker did not die"
        time.sleep(0.01)


@_ONLY_3_11_RACES
def test_a_worker_death_handled_while_a_task_is_submitted_fails_only_that_task(
        tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """Seen in CI: a worker's death was handled by the executor while a task was being
    submitted; the new worker for that task got an already closed queue, and the run ended
    with ``OSError: handle is closed``. The task now fails with BrokenProcessPool, which
    the run recovers from like any worker death. The timing is forced here: the submit
    starts its worker only once the executor has handled the death."""
    from concurrent.futures.process import BrokenProcessPool

    killer, pool = _killer_and_pool(tmp_path, astronaut_bgr, 2)
    try:
        first = pool.submit([killer])
        executor: Any = pool._executor
        start_worker = executor._adjust_process_count

        def start_worker_after_the_death() -> None:
            _wait_for_the_death(
                lambda: executor._broken and executor._call_queue._reader.closed)
            start_worker()

        executor._adjust_process_count = start_worker_after_the_death
        second = pool.submit([killer])
        for task in (first, second):
            with pytest.raises(BrokenProcessPool):
                task.result(timeout=120)
    finally:
        pool.stop(now=True)


@_ONLY_3_11_RACES
def test_a_task_submitted_just_after_a_worker_death_is_not_left_waiting(
        tmp_path: Path, astronaut_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """In Python 3.11 a task could be added to the executor just after it had failed
    its tasks for a worker's death: nothing would ever end that task, and the run would
    wait forever. The timing is forced here: the task is added only once the executor has
    failed the others."""
    from concurrent.futures import process
    from concurrent.futures.process import BrokenProcessPool

    # one worker: the second task starts none (a new worker's start would fail instead)
    killer, pool = _killer_and_pool(tmp_path, astronaut_bgr, 1)
    try:
        first = pool.submit([killer])
        executor: Any = pool._executor
        make_item = process._WorkItem

        def work_item_after_the_death(*args: Any) -> Any:
            _wait_for_the_death(
                lambda: executor._broken and not executor._pending_work_items)
            return make_item(*args)

        monkeypatch.setattr(process, "_WorkItem", work_item_after_the_death, raising=True)
        second = pool.submit([killer])
        monkeypatch.undo()
        for task in (first, second):
            with pytest.raises(BrokenProcessPool):
                task.result(timeout=60)
    finally:
        pool.stop(now=True)


class _DiesOnMarkerTelling(_DiesOnMarker):
    """:class:`_DiesOnMarker`, writing the id of the process it kills to ``pid_file``."""

    def __init__(self, pid_file: Path) -> None:
        super().__init__()
        self.pid_file = pid_file

    def detect(self, image: np.ndarray) -> list:
        if image.shape[1] == _MARKER_WIDTH:
            self.pid_file.write_text(str(os.getpid()))
        return super().detect(image)


def _wait_until_gone(pid_file: Path) -> None:
    """Wait until the process named in ``pid_file`` has ended and been reaped (its pool has
    then marked itself broken), and a moment more."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid_file.read_text()), 0)
        except (FileNotFoundError, ValueError):
            pass  # not written yet
        except ProcessLookupError:
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise AssertionError("the worker given the marker image did not die")


def test_a_worker_dying_while_the_paths_are_read_costs_only_its_image(
        photo_dir: Path, tmp_path: Path, astronaut_bgr: np.ndarray,
        brightness_model_dir: Path) -> None:
    """A lazy ``paths`` (e.g. a slow directory walk) still being read when a worker dies:
    handing the next image to the broken pool raised BrokenProcessPool and ended the run."""
    paths = sorted(photo_dir.iterdir())
    killer = _marker_image(tmp_path / "killer.png", astronaut_bgr)
    pid_file = tmp_path / "killed.pid"

    def listing():
        yield paths[0]
        yield killer
        _wait_until_gone(pid_file)
        yield from paths[1:]

    got = _summary(iter_detect_paths(listing(), detector=_DiesOnMarkerTelling(pid_file),
                                     classifier=brightness_model_dir, workers=2,
                                     chunk_size=2))
    expected = _summary(iter_detect_paths(paths, detector="haar",
                                          classifier=brightness_model_dir))
    _, faces, error = got.pop(1)
    assert faces == [] and error is not None
    assert error.startswith(f"{killer}: the worker process died while handling this image")
    assert got == expected


def test_only_the_images_that_kill_workers_are_left_out(tmp_path: Path,
                                                         astronaut_bgr: np.ndarray,
                                                         brightness_model_dir: Path) -> None:
    """Two images that kill their worker among many: the images run again one at a time
    after the first death used to share the pool with newer tasks, so the second killer
    could end the worker of a healthy image, which was then left out in its place."""
    paths = []
    for i in range(36):
        side = 172 + 2 * i  # sizes at which Haar finds the face
        paths.append(tmp_path / f"img{i:02d}.png")
        cv2.imwrite(str(paths[-1]), cv2.resize(astronaut_bgr, (side, side)))
    killer = _marker_image(tmp_path / "killer.png", astronaut_bgr)
    with_killers = [*paths[:3], killer, *paths[3:11], killer, *paths[11:]]
    got = _summary(iter_detect_paths(with_killers, detector=_DiesOnMarker(),
                                     classifier=brightness_model_dir, workers=2,
                                     chunk_size=4))
    expected = _summary(iter_detect_paths(paths, detector="haar",
                                          classifier=brightness_model_dir))
    assert [got.pop(12)[0], got.pop(3)[0]] == ["killer.png", "killer.png"]
    assert got == expected
    assert [len(faces) for _, faces, _ in got] == [1] * len(paths)


def test_workers_dying_on_image_after_image_stop_the_run(tmp_path: Path,
                                                         astronaut_bgr: np.ndarray,
                                                         brightness_model_dir: Path) -> None:
    """Workers that die on every image (e.g. out of memory as they start) are not started
    again for each of thousands of images: three deaths in a row end the run."""
    from concurrent.futures.process import BrokenProcessPool

    killer = _marker_image(tmp_path / "killer.png", astronaut_bgr)
    results = iter_detect_paths([killer] * 5, detector=_DiesOnMarker(),
                                classifier=brightness_model_dir, workers=2, chunk_size=1)
    with pytest.raises(BrokenProcessPool, match="died on 3 images in a row"):
        list(results)


def test_a_detector_that_cannot_start_in_the_workers_raises_its_own_error(
        photo_dir: Path, tmp_path: Path, brightness_model_dir: Path) -> None:
    """A detector the workers cannot build (here its cascade file is gone by the time they
    start) raises that error, not BrokenProcessPool ("terminated abruptly")."""
    from emotionkit.detectors.base import bundled_model_path
    from emotionkit.errors import ModelLoadError

    cascade = tmp_path / "cascade.xml"
    cascade.write_bytes(bundled_model_path("haarcascade_frontalface_default.xml").read_bytes())
    results = iter_detect_paths(sorted(photo_dir.iterdir()),
                                detector=HaarDetector(cascade_path=cascade),
                                classifier=brightness_model_dir, workers=2)
    cascade.unlink()
    with pytest.raises(ModelLoadError, match="cascade.xml"):
        next(results)


def test_a_detector_registered_at_run_time_is_the_one_the_workers_use(
        photo_dir: Path, brightness_model_dir: Path) -> None:
    """A name registered in this process (here replacing "haar") is built here and sent to
    the workers; they used to build the installed detector of that name instead."""
    from emotionkit import register_detector
    from emotionkit.registry import _detectors

    paths = sorted(photo_dir.iterdir())
    register_detector("haar", lambda: HaarDetector(min_neighbors=1), overwrite=True)
    try:
        one = _summary(iter_detect_paths(paths, detector="haar",
                                         classifier=brightness_model_dir))
        two = _summary(iter_detect_paths(paths, detector="haar",
                                         classifier=brightness_model_dir, workers=2))
    finally:
        _detectors.unregister("haar")
    assert two == one
    loose = _summary(iter_detect_paths(paths, detector=HaarDetector(min_neighbors=1),
                                       classifier=brightness_model_dir))
    assert one == loose


def test_closing_early_stops_the_workers_at_once(photo_dir: Path, tmp_path: Path,
                                                 astronaut_bgr: np.ndarray,
                                                 brightness_model_dir: Path) -> None:
    """``break`` or Ctrl-C after the first result: the workers are stopped, not waited
    for (they used to finish the images in flight first, here a minute each)."""
    import multiprocessing

    slow = _marker_image(tmp_path / "slow.png", astronaut_bgr)
    before = set(multiprocessing.active_children())
    results = iter_detect_paths([photo_dir / "a_bright.png", slow, slow, slow],
                                detector=_SlowOnMarker(), classifier=brightness_model_dir,
                                workers=2, chunk_size=1)
    first = next(results)
    assert (first.error, len(first.faces)) == (None, 1)
    start = time.monotonic()
    results.close()
    assert time.monotonic() - start < 20
    assert set(multiprocessing.active_children()) - before == set()  # the workers are gone


def test_error_for_bytes_names_them_without_their_content() -> None:
    """A detector failing on an image given as bytes: the message says "image bytes"
    (it used to hold the repr of all the bytes)."""
    _, data = cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))

    class Failing:
        def detect(self, image: np.ndarray) -> list:
            raise RuntimeError("the detector broke")

    (result,) = iter_detect_paths([data.tobytes()], detector=Failing(), classifier="fer-cnn")
    assert result.error == "image bytes: RuntimeError: the detector broke"
