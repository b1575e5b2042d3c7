"""Third-party detectors and classifiers: entry points of an installed distribution, and
registration by a Python call."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import emotionkit
from emotionkit import EmotionRecognizer, register_classifier, register_detector

_LIGHT_DARK_CLASSIFIER = '''

class BrightnessClassifier:
    """'light' vs 'dark' from the mean pixel value of the crop."""

    labels = ("light", "dark")
    input_size = (48, 48)
    crop_margin = 0.0

    def predict(self, faces):
        import numpy as np
        light = np.array([f.mean() / 255.0 for f in faces])
        return np.stack([light, 1.0 - light], axis=1)
'''
"""The classifier of both test plugin distributions (module source text)."""

PLUGIN_SOURCE = '''
"""A tiny emotionkit plugin distribution used by the test-suite."""
from emotionkit import Detection


class CenterDetector:
    """Reports the central half of the image as the face."""

    def detect(self, image_bgr):
        h, w = image_bgr.shape[:2]
        return [Detection(box=(w // 4, h // 4, w // 2, h // 2), score=1.0)]

''' + _LIGHT_DARK_CLASSIFIER


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_plugin_wheel(directory: Path) -> Path:
    """Write a real wheel of the distribution ``emotionkit-tiny-plugin``."""
    files = {
        "tiny_plugin.py": PLUGIN_SOURCE.encode(),
        "emotionkit_tiny_plugin-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: emotionkit-tiny-plugin\nVersion: 1.0\n"),
        "emotionkit_tiny_plugin-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: emotionkit-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"),
        "emotionkit_tiny_plugin-1.0.dist-info/entry_points.txt": (
            b"[emotionkit.detectors]\ncenter = tiny_plugin:CenterDetector\n\n"
            b"[emotionkit.classifiers]\nbrightness = tiny_plugin:BrightnessClassifier\n"),
    }
    wheel = directory / "emotionkit_tiny_plugin-1.0-py3-none-any.whl"
    record = "emotionkit_tiny_plugin-1.0.dist-info/RECORD"
    with zipfile.ZipFile(wheel, "w") as zf:
        lines = []
        for name, data in files.items():
            zf.writestr(name, data)
            lines.append(_record_line(name, data))
        lines.append(f"{record},,")
        zf.writestr(record, "\n".join(lines) + "\n")
    return wheel


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin wheel installed by pip into its own site directory."""
    root = tmp_path_factory.mktemp("plugin")
    wheel = build_plugin_wheel(root)
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(site), str(wheel)],
        check=True,
    )
    assert (site / "emotionkit_tiny_plugin-1.0.dist-info" / "entry_points.txt").is_file()
    return site


def test_installed_plugin_is_used_by_name(plugin_site: Path, astronaut_bgr, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    assert "center" in emotionkit.list_detectors()
    assert "brightness" in emotionkit.list_classifiers()
    rec = EmotionRecognizer(detector="center", classifier="brightness")
    faces = rec.detect(astronaut_bgr)
    assert [f.box for f in faces] == [(128, 128, 256, 256)]
    assert rec.labels == ("light", "dark")
    expected = astronaut_bgr[128:384, 128:384].mean() / 255.0
    assert faces[0].emotions["light"] == pytest.approx(expected)


def test_installed_plugin_works_from_the_cli(plugin_site: Path, tmp_path: Path) -> None:
    import cv2

    image = tmp_path / "white.png"
    cv2.imwrite(str(image), np.full((100, 100, 3), 255, np.uint8))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "emotionkit", "detect", str(image), "--detector", "center",
         "--classifier", "brightness", "--format", "json"],
        capture_output=True, text=True, env=env, check=True,
    )
    result = json.loads(out.stdout)
    assert result[0]["faces"][0]["box"] == [25, 25, 50, 50]
    assert result[0]["faces"][0]["top_emotion"] == "light"


class _Constant:
    labels = ("calm", "excited")
    input_size = (48, 48)
    crop_margin = 0.0

    def predict(self, faces):
        return np.tile([0.25, 0.75], (len(faces), 1))


def test_register_by_python_call(astronaut_bgr) -> None:
    class TopLeft:
        def detect(self, image_bgr):
            return [emotionkit.Detection(box=(0, 0, 10, 10))]

    register_detector("top-left", TopLeft)
    register_classifier("constant", _Constant)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_detector("top-left", TopLeft)
        faces = EmotionRecognizer(detector="top-left", classifier="constant").detect(
            astronaut_bgr)
        assert faces[0].box == (0, 0, 10, 10) and faces[0].top_emotion == "excited"
    finally:
        from emotionkit.registry import _classifiers, _detectors

        _detectors.unregister("top-left")
        _classifiers.unregister("constant")
    assert "top-left" not in emotionkit.list_detectors()


# --- precedence: run-time registrations, then entry points, then built-ins ------------------

@pytest.fixture
def restore_registries():
    """Put the run-time registrations back as they were (the API has no public unregister)."""
    from emotionkit.registry import _classifiers, _detectors

    saved = dict(_detectors._registered), dict(_classifiers._registered)
    yield
    _detectors._registered.clear()
    _detectors._registered.update(saved[0])
    _classifiers._registered.clear()
    _classifiers._registered.update(saved[1])


def test_registered_detector_shadows_a_builtin_until_unregistered(
    astronaut_bgr, brightness_model_dir: Path, restore_registries
) -> None:
    """``overwrite`` guards earlier run-time registrations only: a built-in name can be
    taken without it, and the registration wins over the built-in (docs/plugins.md)."""
    from emotionkit import create_detector, list_detectors
    from emotionkit.detectors import HaarDetector, MediaPipeDetector, WholeImageDetector
    from emotionkit.registry import _detectors

    assert isinstance(create_detector("haar"), HaarDetector)
    register_detector("haar", MediaPipeDetector)  # a built-in name: no overwrite needed
    assert list_detectors().count("haar") == 1 and list_detectors() == sorted(list_detectors())
    shadow = create_detector("haar", min_confidence=0.7)  # options go to the factory
    assert isinstance(shadow, MediaPipeDetector) and shadow.min_confidence == 0.7
    faces = EmotionRecognizer(detector="haar", classifier=brightness_model_dir).detect(
        astronaut_bgr)
    assert len(faces) == 1 and faces[0].score is not None  # Haar gives no score
    assert set(faces[0].landmarks) >= {"right_eye", "left_eye"}

    with pytest.raises(ValueError, match="'haar' is already registered; pass overwrite=True"):
        register_detector("haar", WholeImageDetector)
    assert isinstance(create_detector("haar"), MediaPipeDetector)  # the refusal changed nothing
    register_detector("haar", WholeImageDetector, overwrite=True)
    assert [d.box for d in create_detector("haar").detect(astronaut_bgr)] == [(0, 0, 512, 512)]

    _detectors.unregister("haar")
    builtin = create_detector("haar")
    assert isinstance(builtin, HaarDetector)
    (found,) = builtin.detect(astronaut_bgr)
    assert found.score is None and "haar" in list_detectors()


def test_registered_classifier_shadows_the_default_until_unregistered(
    astronaut_bgr, brightness_model_dir: Path, restore_registries
) -> None:
    from emotionkit import FER_LABELS, list_classifiers, resolve_classifier
    from emotionkit.classifiers.keras_model import load_classifier
    from emotionkit.registry import _classifiers

    register_classifier("fer-cnn", lambda: load_classifier(brightness_model_dir))
    register_classifier("brightness-test", lambda: load_classifier(brightness_model_dir))
    names = list_classifiers()
    assert names.count("fer-cnn") == 1 and "brightness-test" in names
    rec = EmotionRecognizer()  # classifier="fer-cnn", the default: the registered one
    assert rec.labels == ("bright", "dark")
    (face,) = rec.detect(astronaut_bgr)
    assert face.top_emotion in ("bright", "dark")
    assert resolve_classifier("brightness-test").labels == ("bright", "dark")

    _classifiers.unregister("fer-cnn")
    _classifiers.unregister("brightness-test")
    assert "brightness-test" not in list_classifiers() and "fer-cnn" in list_classifiers()
    with pytest.raises(emotionkit.UnknownPluginError, match="brightness-test"):
        resolve_classifier("brightness-test")
    assert resolve_classifier("fer-cnn").labels == FER_LABELS  # the bundled model again


SHADOW_PLUGIN = '''
"""A plugin distribution whose entry points take built-in names."""
from emotionkit import Detection


class LeftHalfDetector:
    """Reports the left half of the image as the face."""

    def detect(self, image_bgr):
        h, w = image_bgr.shape[:2]
        return [Detection(box=(0, 0, w // 2, h), score=0.5)]

''' + _LIGHT_DARK_CLASSIFIER


@pytest.fixture
def shadow_site(tmp_path: Path, monkeypatch) -> Path:
    """An installed distribution (dist-info on sys.path) with entry points named ``none``
    (a built-in detector) and ``fer-cnn`` (the built-in classifier); off sys.path again by
    ``monkeypatch.undo()``."""
    site = tmp_path / "site"
    info = site / "emotionkit_shadow_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "shadow_plugin_for_tests.py").write_text(SHADOW_PLUGIN)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: emotionkit-shadow-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[emotionkit.detectors]\nnone = shadow_plugin_for_tests:LeftHalfDetector\n\n"
        "[emotionkit.classifiers]\nfer-cnn = shadow_plugin_for_tests:BrightnessClassifier\n")
    monkeypatch.delitem(sys.modules, "shadow_plugin_for_tests", raising=False)
    return site


def test_entry_point_shadows_the_builtin_classifier_and_registration_the_entry_point(
    shadow_site: Path, monkeypatch, restore_registries
) -> None:
    """docs/plugins.md: run-time registrations, then entry points, then built-ins; each
    falls back to the next when removed."""
    from emotionkit import FER_LABELS, create_classifier, list_classifiers
    from emotionkit.registry import _classifiers

    monkeypatch.syspath_prepend(str(shadow_site))
    assert list_classifiers().count("fer-cnn") == 1
    assert create_classifier("fer-cnn").labels == ("light", "dark")  # the entry point
    register_classifier("fer-cnn", _Constant)
    assert create_classifier("fer-cnn").labels == ("calm", "excited")  # the registration
    _classifiers.unregister("fer-cnn")
    assert create_classifier("fer-cnn").labels == ("light", "dark")  # the entry point again
    monkeypatch.undo()  # the distribution is off sys.path
    assert create_classifier("fer-cnn").labels == FER_LABELS  # the bundled model


def test_entry_point_shadows_a_builtin_detector(
    shadow_site: Path, astronaut_bgr, monkeypatch, restore_registries
) -> None:
    from emotionkit import create_detector, list_detectors
    from emotionkit.registry import _detectors

    def boxes() -> list[tuple[int, int, int, int]]:
        return [d.box for d in create_detector("none").detect(astronaut_bgr)]

    assert boxes() == [(0, 0, 512, 512)]  # the built-in: the whole image
    monkeypatch.syspath_prepend(str(shadow_site))
    assert list_detectors().count("none") == 1
    register_detector("none", _TopLeftQuarter)
    assert boxes() == [(0, 0, 256, 256)]  # the run-time registration
    _detectors.unregister("none")
    assert boxes() == [(0, 0, 256, 512)]  # the entry point
    monkeypatch.undo()
    assert boxes() == [(0, 0, 512, 512)]


class _TopLeftQuarter:
    def detect(self, image_bgr):
        h, w = image_bgr.shape[:2]
        return [emotionkit.Detection(box=(0, 0, w // 2, h // 2), score=None)]


def test_close_closes_the_plugins_the_recognizer_made_and_only_those(astronaut_bgr) -> None:
    """Plugins created from a name are the recognizer's: close() (and a `with` block) calls
    their close() once; plugin objects passed in are left to their owner."""

    class Closing(_Constant):
        def __init__(self) -> None:
            self.closed = 0

        def close(self) -> None:
            self.closed += 1

    class ClosingDetector:
        def __init__(self) -> None:
            self.closed = 0

        def detect(self, image_bgr):
            return [emotionkit.Detection(box=(0, 0, 10, 10))]

        def close(self) -> None:
            self.closed += 1

    register_detector("closing", ClosingDetector)
    register_classifier("closing", Closing)
    try:
        with EmotionRecognizer(detector="closing", classifier="closing") as rec:
            assert rec.detect(astronaut_bgr)[0].top_emotion == "excited"
        rec.close()
        assert (rec.detector.closed, rec.classifier.closed) == (1, 1)
        detector, classifier = ClosingDetector(), Closing()
        with EmotionRecognizer(detector=detector, classifier=classifier):
            pass
        assert (detector.closed, classifier.closed) == (0, 0)
    finally:
        from emotionkit.registry import _classifiers, _detectors

        _detectors.unregister("closing")
        _classifiers.unregister("closing")
