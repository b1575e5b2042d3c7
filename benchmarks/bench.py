"""Latency and throughput of emotionkit on this machine (``nox -s bench``).

Prints one table:
* ``rec.detect`` median and p90 latency on a 640x480 BGR frame holding one real face
  (scikit-image's astronaut), for each built-in detector, classification included;
* ``rec.classify`` faces/second at batch sizes 1 and 256;
* ``emotionkit.batch.iter_detect_paths`` (what ``emotionkit detect DIR`` runs) images/second
  over a temporary directory of ``--dir-images`` real photos (JPEG and PNG, 320-640 px, one
  face each, mediapipe), with 1 and 2 worker processes (``--workers``); the time includes
  starting the workers (3-4 s here), shown as the time to the first result;
* where the ``fer`` package imports, its ``detect_emotions`` on the same frame and the
  latency ratio.

The classifier is ``--classifier`` (name or path), else the bundled ``fer-cnn``, else an
untrained network of the ``fer-cnn`` architecture (same compute, so the same speed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def frame_640x480() -> np.ndarray:
    from skimage import data

    face_photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    frame = np.full((480, 640, 3), 90, dtype=np.uint8)
    frame[40:440, 120:520] = face_photo[0:400, 40:440]
    return frame


def timings(fn: Callable[[], Any], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def make_classifier(spec: str | None) -> tuple[Any, str]:
    """The classifier to measure and its name for the table.

    Raises:
        EmotionKitError: ``spec`` names no classifier, or its model does not load.
    """
    from emotionkit import ModelLoadError, create_classifier
    from emotionkit.classifiers.keras_model import load_classifier

    if spec:
        from emotionkit.recognizer import resolve_classifier

        return resolve_classifier(spec), spec
    try:
        return create_classifier("fer-cnn"), "fer-cnn (bundled)"
    except ModelLoadError:
        pass
    import tempfile
    from pathlib import Path

    from emotionkit import FER_LABELS
    from emotionkit.classifiers import ModelConfig
    from emotionkit.training.architectures import build_model

    model = build_model("fer-cnn", input_shape=(48, 48, 1), num_classes=7)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        model.save(directory / "model.keras")
        ModelConfig(labels=FER_LABELS, architecture="fer-cnn").write(directory)
        return load_classifier(directory), "fer-cnn architecture, untrained (stand-in)"


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", help="classifier name or path")
    parser.add_argument("--runs", type=_count(1), default=200,
                        help="timed calls per detector (after 5 warm-up calls; "
                             "rec.classify: 4x as many at batch 1, at least 20 at batch 256)")
    parser.add_argument("--dir-images", type=_count(0), default=192,
                        help="images in the 'detect DIR' directory (0: skip that row)")
    parser.add_argument("--workers", type=_count(1), nargs="+", default=[1, 2],
                        help="worker processes of the 'detect DIR' rows, one row each")
    args = parser.parse_args()

    from emotionkit import EmotionKitError, EmotionRecognizer, create_detector

    frame = frame_640x480()
    try:
        classifier, clf_name = make_classifier(args.classifier)
    except EmotionKitError as exc:
        parser.error(f"--classifier {args.classifier}: {exc}")
    import keras

    rows: list[tuple[str, str]] = []
    detect_medians: dict[str, float] = {}
    for name in ("mediapipe", "haar"):
        rec = EmotionRecognizer(detector=create_detector(name), classifier=classifier)
        found = len(rec.detect(frame))
        if found != 1:
            raise SystemExit(f"bench.py: the {name} detector found {found} faces in the "
                             "astronaut frame instead of 1; its timing would not be comparable")
        t = timings(partial(rec.detect, frame), args.runs)
        detect_medians[name] = statistics.median(t)
        rows.append((f"rec.detect 640x480, 1 face, {name}",
                     f"median {statistics.median(t) * 1e3:.2f} ms, p90 {p90(t) * 1e3:.2f} ms"))

    rec = EmotionRecognizer(detector="none", classifier=classifier)
    face = frame[122:218, 257:353]
    for batch in (1, 256):
        crops = [face] * batch
        t = timings(partial(rec.classify, crops), max(20, args.runs // batch * 4))
        med = statistics.median(t)
        rows.append((f"rec.classify batch {batch}",
                     f"{batch / med:,.0f} faces/s ({med * 1e3:.2f} ms per call)"))

    if args.dir_images:
        rows.extend(dir_rows(classifier, args.dir_images, args.workers))
    rows.extend(fer_rows(frame, detect_medians.get("mediapipe"), args.runs))

    print(f"\nemotionkit benchmark -- {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"Keras backend {keras.backend.backend()}")
    print(f"classifier: {clf_name}\n")
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")


def write_photo_dir(directory: Any, n: int) -> list[Any]:
    """``n`` real photos (the astronaut, with varied size, brightness, mirroring, format)."""
    import cv2
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    paths = []
    for i in range(n):
        size = (320, 480, 512, 640)[i % 4]
        img = cv2.resize(photo, (size, size))
        img = np.clip(img.astype(np.float32) * (0.6 + 0.1 * (i % 8)), 0, 255).astype(np.uint8)
        if i % 2:
            img = np.ascontiguousarray(img[:, ::-1])
        path = directory / f"img{i:04d}.{'jpg' if i % 3 else 'png'}"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def dir_images_per_s(classifier: Any, paths: list[Any],
                     workers: int) -> tuple[float, float, int]:
    """Images/s over all ``paths``, seconds to the first result, faces found."""
    from emotionkit.batch import iter_detect_paths

    t0 = time.perf_counter()
    first = None
    faces = 0
    for result in iter_detect_paths(paths, detector="mediapipe", classifier=classifier,
                                    workers=workers):
        first = time.perf_counter() - t0 if first is None else first
        faces += len(result.faces)
    elapsed = time.perf_counter() - t0
    return len(paths) / elapsed, first or 0.0, faces


def dir_rows(classifier: Any, n: int, workers_list: list[int]) -> list[tuple[str, str]]:
    import tempfile
    from pathlib import Path

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_photo_dir(Path(tmp), n)
        for workers in workers_list:
            rate, first, faces = dir_images_per_s(classifier, paths, workers)
            rows.append((f"detect DIR, {n} images, workers {workers}",
                         f"{rate:.1f} images/s, first result after {first:.2f} s "
                         f"({faces} faces found)"))
    return rows


def fer_rows(frame: np.ndarray, ours: float | None, runs: int) -> list[tuple[str, str]]:
    try:
        from fer import FER

        detector = FER()
        detector.detect_emotions(frame)
    except Exception as exc:  # not installed, or broken with OpenCV 5 / no network
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        return [("fer package", f"not measured ({reason})")]
    t = timings(lambda: detector.detect_emotions(frame), max(20, runs // 4))
    med = statistics.median(t)
    ratio = f", {med / ours:.1f}x emotionkit mediapipe" if ours else ""
    return [("fer FER().detect_emotions 640x480",
             f"median {med * 1e3:.2f} ms, p90 {p90(t) * 1e3:.2f} ms{ratio}")]


if __name__ == "__main__":
    main()
