"""``emotionkit.integrations.ray`` in a local Ray instance on a few real photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def local_ray():
    """A new Ray instance of this test's own: ``address="local"`` never attaches to a
    cluster named by RAY_ADDRESS or to another local instance already running (both would
    run the test somewhere else, with other CPUs and files); RAY_ADDRESS is also cleared
    so that no process of the instance finds it."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAY_ADDRESS", raising=False)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        try:
            yield ray
        finally:
            ray.shutdown()


def test_detect_dataset_from_bytes_and_paths(local_ray, tmp_path: Path,
                                             astronaut_bgr: np.ndarray,
                                             brightness_model_dir: Path) -> None:
    from skimage import data

    from emotionkit.integrations.ray import EmotionPredictor, detect_dataset

    bright = np.clip(astronaut_bgr.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)
    dark = (astronaut_bgr.astype(np.float32) * 0.45).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "bright.png"), bright)
    cv2.imwrite(str(tmp_path / "dark.jpg"), dark)
    cv2.imwrite(str(tmp_path / "coffee.png"), np.ascontiguousarray(data.coffee()[:, :, ::-1]))
    (tmp_path / "broken.png").write_bytes(b"not an image")

    ds = local_ray.data.read_binary_files(str(tmp_path), include_paths=True)
    rows = detect_dataset(ds, detector="haar", classifier=str(brightness_model_dir),
                          concurrency=1, batch_size=8).take_all()
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == ["bright.png", "broken.png", "coffee.png", "dark.jpg"]
    assert "bytes" not in rows[0]
    for name, label in (("bright.png", "bright"), ("dark.jpg", "dark")):
        assert (by_name[name]["num_faces"], by_name[name]["top_emotion"]) == (1, label)
    assert by_name["coffee.png"]["num_faces"] == 0 and by_name["coffee.png"]["error"] == ""
    assert "broken.png" in by_name["broken.png"]["error"]
    faces = json.loads(by_name["dark.jpg"]["faces"])
    assert faces[0]["top_emotion"] == "dark" and len(faces[0]["box"]) == 4

    # The same predictor on a batch of paths, called directly (what each actor runs).
    predictor = EmotionPredictor(detector="haar", classifier=str(brightness_model_dir))
    out = predictor({"path": np.array([str(tmp_path / "bright.png"), str(tmp_path / "x.png")])})
    assert list(out["num_faces"]) == [1, 0]
    assert json.loads(out["faces"][0]) == json.loads(by_name["bright.png"]["faces"])
    assert "no such file" in out["error"][1]


def test_detect_dataset_uses_no_deprecated_ray_argument(local_ray, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture,
                                                         brightness_model_dir: Path) -> None:
    """Ray logs a warning at every ``map_batches`` call with a deprecated argument:
    ``concurrency=`` from Ray 2.51, ``compute=`` in Ray 2.9 to 2.50. The actor pool is given
    in the form the installed Ray takes."""
    import logging

    from emotionkit.integrations.ray import detect_dataset

    ds = local_ray.data.from_items([{"path": str(tmp_path / "missing.png")}])
    with caplog.at_level(logging.WARNING):
        (row,) = detect_dataset(ds, detector="haar", classifier=str(brightness_model_dir),
                                concurrency=1).take_all()
    assert "no such file" in row["error"]
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == []


def test_an_empty_batch_keeps_the_column_types(brightness_model_dir: Path) -> None:
    """``num_faces`` of an empty batch was float64 (``np.array([])``), which does not
    merge with the int64 of the other batches into one table."""
    from emotionkit.integrations.ray import EmotionPredictor

    predictor = EmotionPredictor(detector="haar", classifier=str(brightness_model_dir))
    out = predictor({"path": np.array([], dtype=str)})
    assert out["num_faces"].dtype == np.int64 and len(out["faces"]) == 0


@pytest.mark.parametrize(("version", "argument"), [
    ("2.9.0", "concurrency"), ("2.50.1", "concurrency"), ("2.51.0", "compute"),
    ("2.60.0rc1", "compute"), ("3.0.0.dev0", "compute"), ("10.1.0", "compute")])
def test_the_actor_pool_argument_follows_the_ray_version(version: str, argument: str) -> None:
    """``compute=ActorPoolStrategy`` was passed to every Ray; Ray 2.9 to 2.50 (the extra
    takes ``ray[data]>=2.9``) deprecate it in favour of ``concurrency=``."""
    from emotionkit.integrations.ray import _actor_pool

    pool = _actor_pool(3, version)
    assert list(pool) == [argument]
    if argument == "compute":
        assert isinstance(pool["compute"], ray.data.ActorPoolStrategy)
        assert (pool["compute"].min_size, pool["compute"].max_size) == (3, 3)
    else:
        assert pool["concurrency"] == 3


def test_null_images_are_error_rows_not_fatal(tmp_path: Path, astronaut_bgr: np.ndarray,
                                               brightness_model_dir: Path) -> None:
    """A null in the ``bytes`` column (a Parquet table with a missing image) ended the whole
    job with ``TypeError: cannot convert 'NoneType' object to bytes``; a null path was read
    as a file named 'None'. Each is an error row; the other rows of the batch get their
    faces."""
    from emotionkit.integrations.ray import EmotionPredictor

    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut_bgr)
    predictor = EmotionPredictor(detector="haar", classifier=str(brightness_model_dir))
    out = predictor({"bytes": np.array([path.read_bytes(), None], dtype=object),
                     "path": np.array(["a.png", "gone.png"], dtype=object)})
    assert list(out["num_faces"]) == [1, 0] and out["error"][0] == ""
    assert out["error"][1] == "gone.png: no image (the row's 'bytes' value is null)"
    out = predictor({"path": np.array([None, str(path)], dtype=object)})
    assert list(out["num_faces"]) == [0, 1] and out["error"][1] == ""
    assert out["error"][0] == "no image (the row's 'path' value is null)"
    assert list(out["path"]) == [None, str(path)]


def test_detect_dataset_checks_the_detector_and_classifier_at_the_call(
    local_ray, tmp_path: Path, astronaut_bgr: np.ndarray, brightness_model_dir: Path,
) -> None:
    """An unknown detector name, or a detector or classifier that cannot be sent to the
    actors, raised only when the lazy dataset ran (Ray's ActorDiedError, or a serialisation
    error logged as a bug in Ray). Both raise at the call now, as in iter_detect_paths; a
    detector registered in this process only is sent to the actors as an object."""
    from emotionkit import UnknownPluginError
    from emotionkit.detectors.haar import HaarDetector
    from emotionkit.integrations.ray import detect_dataset
    from emotionkit.registry import _detectors, register_detector, resolve_classifier

    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut_bgr)
    ds = local_ray.data.from_items([{"path": str(path)}])
    keras_classifier = resolve_classifier(str(brightness_model_dir))
    with pytest.raises(TypeError, match=r"classifier .* cannot be sent to the Ray actors"
                                        r".*KerasClassifier cannot be pickled"):
        detect_dataset(ds, detector="haar", classifier=keras_classifier)
    with pytest.raises(UnknownPluginError, match="unknown detector 'no-such-detector'"):
        detect_dataset(ds, detector="no-such-detector", classifier=str(brightness_model_dir))

    register_detector("test-ray-haar", HaarDetector)
    try:
        (row,) = detect_dataset(ds, detector="test-ray-haar",
                                classifier=str(brightness_model_dir)).take_all()
    finally:
        _detectors.unregister("test-ray-haar")
    assert (row["num_faces"], row["error"]) == (1, "")
