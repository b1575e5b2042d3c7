"""``emotionkit detect``: faces and emotions in images."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ._common import fail, report, run_or_fail

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".jfif"}
_CHUNK = 64  # images loaded and classified together


@click.command(short_help="Find faces in images and classify their emotions.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--detector", "-d", default="mediapipe", show_default=True,
              help="Face detector: mediapipe, haar, none (whole image is one face), or a plugin.")
@click.option("--classifier", "-c", default="fer-cnn", show_default=True,
              help="Classifier name, or path to a Keras model file / model directory.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format on stdout.")
@click.option("--annotate", "annotate_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a copy of each image with boxes and labels into this directory.")
def detect(inputs: tuple[Path, ...], detector: str, classifier: str, fmt: str,
           annotate_dir: Path | None) -> None:
    """Find faces in IMAGE_OR_DIR... and print each face's box and emotions.

    Directories are walked recursively for image files. A bad file is reported on stderr
    and the others still run; the exit code is then 1.

    \b
    Examples:
      emotionkit detect photo.jpg
      emotionkit detect photos/ --format csv > faces.csv
      emotionkit detect photo.jpg --annotate annotated/
    """
    from ..errors import EmotionKitError
    from ..recognizer import EmotionRecognizer

    rec = run_or_fail(EmotionRecognizer, detector=detector, classifier=classifier, exit_code=2)
    writer = _Writer(fmt, rec.labels)
    problems: list[str] = []
    for chunk in _chunks(_expand(inputs, problems), _CHUNK):
        loaded = []
        for path, root in chunk:
            try:
                loaded.append((path, root, _load(path)))
            except EmotionKitError as exc:
                problems.append(str(exc))
                report(str(exc))
                writer.error(path, str(exc))
        if not loaded:
            continue
        results = rec.detect_batch([image for _, _, image in loaded])
        for (path, root, image), faces in zip(loaded, results):
            writer.faces(path, faces)
            if annotate_dir is not None:
                _write_annotated(annotate_dir, path, root, image, faces)
    writer.close()
    if problems:
        sys.exit(1)


def _load(path: Path) -> Any:
    from ..io import load_image

    return load_image(path)


def _expand(inputs: tuple[Path, ...], problems: list[str]) -> Iterator[tuple[Path, Path | None]]:
    """Each input file, and the image files under each input directory, with that root.

    A directory without image files is reported and added to ``problems``."""
    for item in inputs:
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and not p.name.startswith("."))
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            skipped = len(files) - len(images)
            if skipped:
                click.echo(f"note: {item}: skipped {skipped} file(s) without an image extension",
                           err=True)
            if not images:
                problems.append(f"{item}: directory holds no image files")
                report(problems[-1])
            for p in images:
                yield p, item
        else:
            yield item, None


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_annotated(out_dir: Path, path: Path, root: Path | None, image: Any,
                     faces: list[Any]) -> None:
    import cv2

    from ..annotate import draw_faces

    rel = path.relative_to(root) if root is not None else Path(path.name)
    target = out_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(target), draw_faces(image, faces)):
        target = target.with_suffix(".png")
        if not cv2.imwrite(str(target), draw_faces(image, faces)):
            fail(f"{target}: cannot write annotated image; check the --annotate directory")


class _Writer:
    """Streams results to stdout as a table, one JSON list, or CSV rows (one per face)."""

    def __init__(self, fmt: str, labels: tuple[str, ...]) -> None:
        self.fmt = fmt
        self.labels = labels
        self._first_json = True
        if fmt == "json":
            sys.stdout.write("[")
        elif fmt == "csv":
            self._csv = csv.writer(sys.stdout, lineterminator="\n")
            self._csv.writerow(["path", "face", "x", "y", "w", "h", "score", "top_emotion",
                                *labels])

    def faces(self, path: Path, faces: list[Any]) -> None:
        if self.fmt == "json":
            self._json({"path": str(path), "faces": [f.to_dict() for f in faces], "error": None})
        elif self.fmt == "csv":
            for i, face in enumerate(faces):
                score = "" if face.score is None else f"{face.score:.4f}"
                self._csv.writerow([str(path), i, *face.box, score, face.top_emotion,
                                    *(f"{face.emotions[k]:.4f}" for k in self.labels)])
        else:
            if not faces:
                click.echo(f"{path}: no faces")
            for i, face in enumerate(faces):
                top = sorted(face.emotions.items(), key=lambda kv: kv[1], reverse=True)[:3]
                shown = ", ".join(f"{k} {v:.2f}" for k, v in top)
                score = "" if face.score is None else f" score {face.score:.2f}"
                click.echo(f"{path}: face {i} at {tuple(face.box)}{score}: {shown}")

    def error(self, path: Path, message: str) -> None:
        if self.fmt == "json":
            self._json({"path": str(path), "faces": [], "error": message})

    def close(self) -> None:
        if self.fmt == "json":
            sys.stdout.write("]\n")
        sys.stdout.flush()

    def _json(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(("" if self._first_json else ",\n") + json.dumps(obj))
        self._first_json = False
