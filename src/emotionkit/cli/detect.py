"""``emotionkit detect``: faces and emotions in images."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from ..io import IMAGE_SUFFIXES
from ._common import fail, report, run_or_fail

_CHUNK = 64  # images whose faces are classified together


@click.command(short_help="Find faces in images or videos and classify their emotions.")
@click.argument("names", metavar="INPUTS...", nargs=-1, required=True,
                type=click.Path(readable=False))  # an unreadable file is reported, not fatal
@click.option("--detector", "-d", default="mediapipe", show_default=True,
              help="Face detector: mediapipe, haar, none (whole image is one face), or a plugin.")
@click.option("--classifier", "-c", default="fer-cnn", show_default=True,
              help="Classifier name, or path to a Keras model file / model directory.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]),
              default="table", show_default=True,
              help="Output format. jsonl: one JSON object per line (images: one per image, "
                   "with its faces; videos: one per face per frame).")
@click.option("--output", "-o", "output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write results to this file (streamed as they come) instead of stdout.")
@click.option("--resume", is_flag=True,
              help="Images, with --output and --format jsonl: skip the images already in the "
                   "output file and append the others (a run that was stopped goes on); "
                   "images that failed before are tried again.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images: decode and detect in this many worker processes; faces are still "
                   "classified in batches in the main process. 1 = no worker processes.")
@click.option("--annotate", "annotate", type=click.Path(path_type=Path),
              help="Images: write a copy of each image with boxes and labels into this "
                   "directory (as .png where OpenCV cannot write the input's type; a name "
                   "taken earlier in the run gets a -1, -2... suffix). A video: write the "
                   "annotated video to this file (.mp4, .m4v, .mov, .avi, .mkv).")
@click.option("--every-n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos: process every n-th frame only.")
@click.option("--smoothing", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0,
              show_default=True,
              help="Videos: weight of the past in each face's moving average of probabilities "
                   "(0 = off; 0.5-0.8 stops labels from flickering).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def detect(names: tuple[str, ...], detector: str, classifier: str, fmt: str,
           output: Path | None, resume: bool, workers: int, annotate: Path | None,
           every_n: int, smoothing: float, quiet: bool) -> None:
    """Find faces in IMAGE_OR_DIR... or VIDEO... and print each face's box and emotions.

    Directories are walked recursively for image files. A bad file is reported on stderr
    and the others still run; the exit code is then 1.

    Large collections: --output FILE streams the results to FILE, --workers N decodes and
    detects in N processes, and with --format jsonl, --resume skips the images already in
    FILE (one record per image, zero-face and failed images included; failed images are
    tried again).

    Videos (.mp4, .avi, .mov, .mkv, .webm, .m4v, or a camera index such as 0) give one row
    per face per processed frame, with the frame number, time in seconds and a face id that
    follows the face across frames. Ctrl-C stops early and keeps what was written (exit
    code 130).

    \b
    Examples:
      emotionkit detect photo.jpg
      emotionkit detect photos/ --format csv > faces.csv
      emotionkit detect photos/ --format jsonl -o faces.jsonl --workers 2 --resume
      emotionkit detect photo.jpg --annotate annotated/
      emotionkit detect clip.mp4 --format csv --smoothing 0.6 --annotate clip-out.mp4 > rows.csv
    """
    from concurrent.futures.process import BrokenProcessPool

    from ..errors import EmotionKitError
    from ..recognizer import EmotionRecognizer
    from ..video import check_video_output, is_video_source

    if any(not name.strip() for name in names):  # Path("") would be the current folder
        fail("an input is an empty name (an unset shell variable?); name an image, "
             "folder or video", 2)
    inputs = tuple(Path(name) for name in names)
    videos = [is_video_source(str(item)) for item in inputs]
    if any(videos) and not all(videos):
        fail("cannot mix videos and images in one call; run detect once for each", 2)
    if all(videos) and annotate is not None and len(inputs) > 1:
        fail("--annotate with videos names one output video; give one input video", 2)
    if all(videos) and annotate is not None:
        run_or_fail(check_video_output, annotate, exit_code=2)
    if not all(videos) and annotate is not None and annotate.is_file():
        fail(f"--annotate {annotate}: is a file; for images it names a directory", 2)
    if resume and output is None:
        fail("--resume needs --output FILE: it skips the images already in that file", 2)
    if resume and (fmt != "jsonl" or all(videos)):
        fail("--resume works for images with --format jsonl (one record per image)", 2)
    if workers > 1 and all(videos):
        fail("--workers applies to images; a video is read in one process", 2)
    for option, target in (("--output", output),
                           ("--annotate", annotate if all(videos) else None)):
        if target is not None and _is_input(target, inputs):
            fail(f"{option} {target}: is one of the inputs, writing it would destroy it; "
                 "choose another file", 2)
    pool = workers > 1 and not all(videos)
    if pool:  # the registry's own check: the detector module is imported in the workers
        from ..registry import _detectors

        run_or_fail(_detectors.check, detector, exit_code=2)
    # with a worker pool the workers detect; this process only classifies
    rec = run_or_fail(EmotionRecognizer, detector="none" if pool else detector,
                      classifier=classifier, exit_code=2)
    if not all(videos) and annotate is not None:
        inside = _input_dir_holding(annotate, inputs)
        if inside is not None:
            fail(f"--annotate {annotate}: is inside the input directory {inside}, where its "
                 "copies would overwrite or join the inputs; choose a directory outside the "
                 "inputs", 2)
        try:
            annotate.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"--annotate {annotate}: cannot create the directory ({exc.strerror}); "
                 "choose another directory", 2)
    done: set[str] = set()
    if resume and output is not None and output.exists():
        done = _recorded_paths(output)
    try:
        stream = (sys.stdout if output is None
                  else open(output, "a" if resume else "w", encoding="utf-8",  # noqa: SIM115
                       errors="surrogateescape"))  # file names that are not UTF-8, as given
    except OSError as exc:
        fail(f"--output {output}: cannot open for writing ({exc.strerror})", 2)
    writer: _Writer = (_VideoRowWriter if all(videos) else _ImageWriter)(fmt, rec.labels,
                                                                         stream)
    problems: list[str] = []
    try:
        if all(videos):
            for item in inputs:
                _detect_video(rec, str(item), writer, problems, annotate=annotate,
                              every_n=every_n, smoothing=smoothing, quiet=quiet)
        else:
            _detect_images(rec, inputs, writer, problems, annotate, detector=detector,
                           workers=workers, done=done, output=output, quiet=quiet)
    except KeyboardInterrupt:
        writer.close()
        click.echo("interrupted: the results written so far are kept", err=True)
        sys.exit(130)
    except (EmotionKitError, BrokenProcessPool) as exc:  # the run itself, not one image
        writer.close()
        fail(str(exc))
    writer.close()
    if problems:
        sys.exit(1)


def _detect_images(rec: Any, inputs: tuple[Path, ...], writer: _Writer, problems: list[str],
                   annotate_dir: Path | None, *, detector: str, workers: int, done: set[str],
                   output: Path | None, quiet: bool) -> None:
    from tqdm import tqdm

    from ..batch import iter_detect_paths

    items = list(_expand(inputs, problems))
    if done:
        before = len(items)
        items = [(path, root) for path, root in items if str(path) not in done]
        click.echo(f"resume: {before - len(items)} of {before} images already in {output}",
                   err=True)
    if not items:
        return
    annotator = None if annotate_dir is None else _Annotator(annotate_dir, inputs)
    results = iter_detect_paths(
        [path for path, _ in items],
        detector=rec.detector if workers == 1 else detector,
        classifier=rec.classifier, margin=rec.margin, workers=workers, chunk_size=_CHUNK,
        keep_images=annotate_dir is not None)
    show = not quiet and output is not None and sys.stderr.isatty()
    with tqdm(total=len(items), unit="img", file=sys.stderr, disable=not show,
              dynamic_ncols=True) as bar:
        for (path, root), result in zip(items, results):
            bar.update(1)
            if result.error is not None:
                problems.append(result.error)
                report(result.error)
                writer.error(path, result.error)
                continue
            writer.faces(path, result.faces)
            error = None if annotator is None else annotator.write(path, root, result.image,
                                                                    result.faces)
            if error is not None:
                problems.append(error)
                report(error)


def _recorded_paths(output: Path) -> set[str]:
    """The ``path`` of every record in ``output`` without an error: the images done.

    The file is rewritten without the failed records (those images are tried again and
    get a new record) and without a last line cut short (a run killed while writing), so
    that appending goes on from whole lines and each image has one record."""
    lines = output.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    cut = bool(lines) and not lines[-1].endswith("\n")
    if cut:
        click.echo(f"resume: {output}: dropped a cut-off last line", err=True)
    done: set[str] = set()
    kept: list[str] = []
    retried = 0
    for number, line in enumerate(lines[:-1] if cut else lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            path, failed = str(record["path"]), record.get("error") is not None
        except (ValueError, KeyError, TypeError, AttributeError):
            fail(f"--resume: {output} line {number} is not an emotionkit jsonl record; "
                 "resume only the jsonl file of an earlier run", 2)
        if failed:
            retried += 1
        else:
            done.add(path)
            kept.append(line)
    if len(kept) < len(lines):
        if retried:
            click.echo(f"resume: {retried} record(s) of failed images removed from {output}; "
                       "those images, where still given as inputs, are tried again", err=True)
        partial = output.with_name(output.name + ".resume-tmp")
        partial.write_text("".join(kept), encoding="utf-8")
        os.replace(partial, output)
    return done


def _detect_video(rec: Any, source: str, writer: _Writer, problems: list[str], *,
                  annotate: Path | None, every_n: int, smoothing: float, quiet: bool) -> None:
    """Rows for one video; a video error is reported and added to ``problems``. The
    annotated video is closed (playable) however the loop ends."""
    from tqdm import tqdm

    from ..errors import EmotionKitError
    from ..video import AnnotatedVideoWriter, video_info

    out: AnnotatedVideoWriter | None = None
    try:
        info = video_info(source)
        if annotate is not None:
            out = AnnotatedVideoWriter(annotate, info.fps / every_n)
        with tqdm(total=info.frame_count or None, unit="frame", desc=Path(source).name,
                  file=sys.stderr, disable=quiet or not sys.stderr.isatty(),
                  dynamic_ncols=True) as bar:
            for frame in rec.detect_video(source, every_n=every_n, smoothing=smoothing):
                writer.frame(source, frame)
                if out is not None:
                    out.write(frame.image, frame.faces)
                bar.update(frame.index + 1 - bar.n)
    except EmotionKitError as exc:
        problems.append(str(exc))
        report(str(exc))
    finally:
        if out is not None:
            out.close()


def _expand(inputs: tuple[Path, ...], problems: list[str]) -> Iterator[tuple[Path, Path | None]]:
    """Each input file, and the image files under each input directory, with that root.

    A directory without image files, and a folder inside one that cannot be read, are
    reported and added to ``problems``; linked folders are not followed (a note says how
    many were left out)."""
    for item in inputs:
        if item.is_dir():
            files, linked, unreadable = _walk(item, problems)
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            skipped = len(files) - len(images)
            if skipped:
                click.echo(f"note: {item}: skipped {skipped} file(s) without an image extension",
                           err=True)
            if linked:
                click.echo(f"note: {item}: did not follow {linked} linked folder(s); give "
                           "them as inputs to include their images", err=True)
            if not images and not unreadable:
                problems.append(f"{item}: directory holds no image files")
                report(problems[-1])
            for p in images:
                yield p, item
        else:
            yield item, None


def _walk(root: Path, problems: list[str]) -> tuple[list[Path], int, bool]:
    """The files under ``root`` (names starting with "." left out; a broken link is listed:
    it is reported like any unreadable image), sorted; how many linked folders were not
    followed; whether a folder could not be read (each one is reported)."""
    files: list[Path] = []
    linked = 0
    unreadable = False

    def folder_error(exc: OSError, folder: str | None = None) -> None:
        nonlocal unreadable
        unreadable = True
        problems.append(f"{folder or exc.filename}: cannot read this folder ({exc.strerror}); "
                        "its images are left out")
        report(problems[-1])

    for folder, subfolders, names in os.walk(root, onerror=folder_error):
        linked += sum(os.path.islink(os.path.join(folder, name)) for name in subfolders)
        paths = [Path(folder, name) for name in names if not name.startswith(".")]
        try:  # not pipes and sockets, whose reading would block
            files.extend(p for p in paths
                         if p.is_file() or (p.is_symlink() and not p.exists()))
        except OSError as exc:  # listable, but its entries cannot be looked at (no x bit)
            folder_error(exc, folder)
    return sorted(files), linked, unreadable


def _is_input(target: Path, inputs: tuple[Path, ...]) -> bool:
    """Whether ``target`` is an existing input: one of ``inputs``, or an image file in an
    input directory."""
    if not target.exists():
        return False
    if target.suffix.lower() in IMAGE_SUFFIXES and _input_dir_holding(target, inputs):
        return True
    return any(item.is_file() and target.samefile(item) for item in inputs)


def _input_dir_holding(path: Path, inputs: tuple[Path, ...]) -> Path | None:
    """The input directory that ``path`` is (or lies inside), if any."""
    where = path.resolve()
    return next((item for item in inputs
                 if item.is_dir() and where.is_relative_to(item.resolve())), None)


class _Annotator:
    """Writes the annotated copy of each image into one directory, at the image's path
    relative to its input directory (or its bare name for an input file).

    A copy OpenCV cannot write under the input's type (``.jfif``, or ``.pgm`` for a colour
    drawing) is written as ``.png``; a name already written in this run (``d1/x.jpg`` and
    ``d2/x.jpg``) gets a ``-1``, ``-2``... suffix, with a note on stderr; a copy never
    replaces an input file."""

    def __init__(self, out_dir: Path, inputs: tuple[Path, ...]) -> None:
        self.out_dir = out_dir
        self._inputs = {item.resolve() for item in inputs if item.is_file()}
        self._taken: set[Path] = set()

    def _target(self, path: Path, root: Path | None, suffix: str | None = None) -> Path:
        target = self.out_dir / (path.relative_to(root) if root is not None else path.name)
        first = target if suffix is None else target.with_suffix(suffix)
        target, n = first, 0
        while target in self._taken or target.resolve() in self._inputs:
            n += 1
            target = first.with_name(f"{first.stem}-{n}{first.suffix}")
        self._taken.add(target)
        if n:
            click.echo(f"note: {path}: annotated copy written as {target} ({first.name} is "
                       "taken by another input)", err=True)
        return target

    def write(self, path: Path, root: Path | None, image: Any, faces: list[Any]) -> str | None:
        """Write one annotated copy; a one-line message if that failed, else ``None``."""
        from ..annotate import draw_faces

        drawn = draw_faces(image, faces)
        target = self._target(path, root)
        why = _write_image(target, drawn)
        if why is not None and target.suffix.lower() != ".png":
            target = self._target(path, root, ".png")
            why = _write_image(target, drawn)
        if why is None:
            return None
        return f"{path}: cannot write its annotated copy {target} ({why}); check --annotate"


def _write_image(target: Path, image: Any) -> str | None:
    """Write ``image`` to ``target`` (folders created); why it failed, else ``None``."""
    import cv2

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # encoded here and written by Python: cv2.imwrite crashes the process on a file
        # name that is not valid UTF-8 (e.g. Latin-1 names from an old archive)
        ok, data = cv2.imencode(target.suffix, image)
        if not ok:
            return "OpenCV could not write it"
        target.write_bytes(data.tobytes())
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    except cv2.error as exc:
        return str(exc).strip().splitlines()[-1]


class _Writer:
    """Streams results as a table, one JSON list, JSON lines or CSV rows to stdout or a
    file; subclasses choose the rows. Output is flushed after each image or frame, so an
    interrupted run keeps it."""

    def __init__(self, fmt: str, labels: tuple[str, ...], header: list[str],
                 out: TextIO) -> None:
        self.fmt = fmt
        self.labels = labels
        self.out = out
        self._first_json = True
        self._closed = False
        if fmt == "json":
            out.write("[")
        elif fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow([*header, "score", "top_emotion", *labels])

    def faces(self, path: Path, faces: list[Any]) -> None:
        raise NotImplementedError

    def frame(self, source: str, frame: Any) -> None:
        raise NotImplementedError

    def error(self, path: Path, message: str) -> None:
        if self.fmt in ("json", "jsonl"):
            self._json({"path": str(path), "faces": [], "error": message})
            self.out.flush()

    def close(self) -> None:
        """End the JSON list (once), flush, and close an output file."""
        if self._closed:
            return
        if self.fmt == "json":
            self.out.write("]\n")
        self._closed = True
        self.out.flush()
        if self.out is not sys.stdout:
            self.out.close()

    def _echo(self, line: str) -> None:
        click.echo(line, file=self.out)

    def _csv_row(self, first: list[Any], face: Any) -> None:
        score = "" if face.score is None else f"{face.score:.4f}"
        self._csv.writerow([*first, *face.box, score, face.top_emotion,
                            *(f"{face.emotions[k]:.4f}" for k in self.labels)])

    def _json(self, obj: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(obj) + "\n")
        else:
            self.out.write(("" if self._first_json else ",\n") + json.dumps(obj))
        self._first_json = False


def _top3(face: Any) -> str:
    top = sorted(face.emotions.items(), key=lambda kv: kv[1], reverse=True)[:3]
    score = "" if face.score is None else f" score {face.score:.2f}"
    return f"at {tuple(face.box)}{score}: " + ", ".join(f"{k} {v:.2f}" for k, v in top)


class _ImageWriter(_Writer):
    """One JSON object per image, or one CSV/table row per face."""

    def __init__(self, fmt: str, labels: tuple[str, ...], out: TextIO) -> None:
        super().__init__(fmt, labels, ["path", "face", "x", "y", "w", "h"], out)

    def faces(self, path: Path, faces: list[Any]) -> None:
        if self.fmt in ("json", "jsonl"):
            self._json({"path": str(path), "faces": [f.to_dict() for f in faces], "error": None})
        elif self.fmt == "csv":
            for i, face in enumerate(faces):
                self._csv_row([str(path), i], face)
        else:
            if not faces:
                self._echo(f"{path}: no faces")
            for i, face in enumerate(faces):
                self._echo(f"{path}: face {i} {_top3(face)}")
        self.out.flush()


class _VideoRowWriter(_Writer):
    """One row (CSV line, JSON object or table line) per face per processed frame."""

    def __init__(self, fmt: str, labels: tuple[str, ...], out: TextIO) -> None:
        super().__init__(fmt, labels, ["path", "frame", "time", "face_id", "x", "y", "w", "h"],
                         out)

    def frame(self, source: str, frame: Any) -> None:
        for face in frame.faces:
            if self.fmt in ("json", "jsonl"):
                self._json({"path": source, "frame": frame.index,
                            "time": round(frame.time, 4), **face.to_dict()})
            elif self.fmt == "csv":
                self._csv_row([source, frame.index, f"{frame.time:.4f}", face.face_id], face)
            else:
                self._echo(f"{source}: frame {frame.index} ({frame.time:.2f} s): "
                           f"face #{face.face_id} {_top3(face)}")
        self.out.flush()
