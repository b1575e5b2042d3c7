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

PLUGIN_SOURCE = '''
"""A tiny emotionkit plugin distribution used by the test-suite."""
from emotionkit import Detection


class CenterDetector:
    """Reports the central half of the image as the face."""

    def detect(self, image_bgr):
        h, w = image_bgr.shape[:2]
        return [Detection(box=(w // 4, h // 4, w // 2, h // 2), score=1.0)]


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


def test_register_by_python_call(astronaut_bgr) -> None:
    class TopLeft:
        def detect(self, image_bgr):
            return [emotionkit.Detection(box=(0, 0, 10, 10))]

    class Constant:
        labels = ("calm", "excited")
        input_size = (48, 48)
        crop_margin = 0.0

        def predict(self, faces):
            return np.tile([0.25, 0.75], (len(faces), 1))

    register_detector("top-left", TopLeft)
    register_classifier("constant", Constant)
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
