"""Labelled face datasets for training and evaluation.

Every dataset yields :class:`ImageData`: ``uint8`` pixels of shape ``(N, H, W, C)``
produced by :func:`emotionkit.classifiers.preprocess.faces_to_pixels`, the same function
inference uses (grayscale for ``C == 1``, ``color_order`` for ``C == 3``), integer targets
and the label names. Two layouts are supported:

* :class:`FolderDataset`: ``root/<split>/<label>/*.jpg`` or ``root/<label>/*.jpg``.
* :class:`Fer2013Csv`: the Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``), optionally
  relabelled with FER+ majority votes from a row-aligned ``ferplus.csv``.

Rows or files that cannot be used are skipped, counted and logged (logger
``emotionkit.training``); a split without a single usable image raises
:class:`DatasetError`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._text import cut
from ..classifiers.base import FER_LABELS
from ..classifiers.preprocess import _check_pixel_format, faces_to_pixels
from ..errors import EmotionKitError, ImageLoadError
from ..io import IMAGE_SUFFIXES, load_image

__all__ = [
    "FERPLUS_LABELS",
    "DatasetError",
    "Fer2013Csv",
    "FolderDataset",
    "ImageData",
    "LabelledDataset",
    "canonical_label",
    "open_dataset",
]

log = logging.getLogger("emotionkit.training")

FERPLUS_LABELS: tuple[str, ...] = (*FER_LABELS, "contempt")
"""FER+ majority-vote labels: the seven FER2013 labels (same order) plus ``contempt``."""


_SYNONYMS = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
_MAX_LOGGED_SKIPS = 10
_MAX_QUOTED = 80  # characters of a file's content quoted in an error message


class DatasetError(EmotionKitError, ValueError):
    """A dataset is missing, malformed, or has no usable images."""


class _LabelChoiceError(DatasetError):
    """A chosen label set names a label the dataset does not have, or none, or one twice
    (the CLI reports it as a mistake in ``--labels``)."""


def canonical_label(name: str) -> str | None:
    """The canonical emotion name for a folder or column name (case-insensitive,
    common synonyms such as ``Happiness`` -> ``happy``), or ``None`` if it is not one."""
    return _SYNONYMS.get(name.strip().lower())


@dataclass
class ImageData:
    """One split of a dataset, ready for a model.

    Attributes:
        pixels: ``uint8`` ``(N, H, W, C)``; 1 channel = gray, 3 = ``color_order``.
        targets: ``int64`` ``(N,)`` indices into ``labels``.
        labels: label names, in target-index order.
        name: a human-readable description (path and split).
        skipped: number of rows/files of this split left out because they were unusable.
        color_order: channel order of 3-channel ``pixels`` (``"rgb"`` or ``"bgr"``).
        source_labels: after :meth:`select_labels` or a dataset's ``labels`` option, the
            labels of the data it was taken from (target index ``i`` is
            ``source_labels.index(labels[i])`` there); empty otherwise.
    """

    pixels: np.ndarray
    targets: np.ndarray
    labels: tuple[str, ...]
    name: str = ""
    skipped: int = 0
    color_order: str = "rgb"
    source_labels: tuple[str, ...] = ()
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.targets)

    def class_counts(self) -> np.ndarray:
        """Number of images per label, ``(len(labels),)``."""
        return np.bincount(self.targets, minlength=len(self.labels))

    def fingerprint(self) -> str:
        """``sha256:<hex>`` over labels, targets and pixels: equal data, equal fingerprint."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update("\n".join(self.labels).encode("utf-8"))
            h.update(str(self.pixels.shape).encode("ascii"))
            h.update(np.ascontiguousarray(self.targets, dtype="<i8").tobytes())
            h.update(np.ascontiguousarray(self.pixels).tobytes())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    def subset(self, index: np.ndarray | Sequence[int]) -> ImageData:
        """The images at ``index`` (a new :class:`ImageData`)."""
        index = np.asarray(index)
        return ImageData(self.pixels[index], self.targets[index], self.labels, self.name,
                         color_order=self.color_order, source_labels=self.source_labels)

    def select_labels(self, labels: Sequence[str]) -> ImageData:
        """Only the images of ``labels``, with targets renumbered in the order given.

        Names match :attr:`labels` exactly, case-insensitively or by emotion synonym
        (``Anger`` -> ``angry``). The result remembers the original label list in
        :attr:`source_labels`.

        Raises:
            DatasetError: an empty or repeated selection, or a name not in :attr:`labels`.
        """
        chosen = match_labels(self.labels, labels, self.name)
        lookup = np.full(len(self.labels), -1, dtype=np.int64)
        lookup[[self.labels.index(label) for label in chosen]] = np.arange(len(chosen))
        targets = lookup[self.targets]
        keep = targets >= 0
        return ImageData(
            self.pixels[keep], targets[keep], chosen, f"{self.name} {{{','.join(chosen)}}}",
            self.skipped, self.color_order, self.source_labels or self.labels,
        )


def match_labels(
    available: Sequence[str], names: Sequence[str], where: str = ""
) -> tuple[str, ...]:
    """``names`` as labels of ``available``: exact, case-insensitive or by emotion synonym
    (``Anger`` -> ``angry``).

    Raises:
        DatasetError: an empty or repeated selection, or a name not in ``available``.
    """
    chosen = []
    for name in map(str, names):
        match = _match_label(available, name)
        if match is None:
            raise _LabelChoiceError(
                f"{where}: no label {name!r}; labels: {', '.join(available)}")
        chosen.append(match)
    if not chosen or len(set(chosen)) != len(chosen):
        raise _LabelChoiceError(
            f"{where}: labels must be unique and non-empty, got {list(names)}")
    return tuple(chosen)


def _match_label(available: Sequence[str], name: str) -> str | None:
    """The label of ``available`` that ``name`` means (exact, case-insensitive or the same
    emotion by synonym: ``Anger``, ``angry``), or ``None``."""
    match = next((a for a in available if a == name), None)
    match = match or next((a for a in available if a.lower() == name.lower()), None)
    emotion = canonical_label(name)
    if match is None and emotion is not None:
        match = next((a for a in available if canonical_label(a) == emotion), None)
    return match


class LabelledDataset:
    """Base class: a dataset with named splits, loaded as :class:`ImageData`.

    Args:
        input_size: ``(height, width)`` in pixels of the output images.
        channels: 1 (grayscale) or 3 (colour in ``color_order``).
        color_order: ``"rgb"`` or ``"bgr"``, for 3 channels.
    """

    train_split = "train"
    val_split = "val"
    test_split = "test"

    def __init__(
        self, input_size: tuple[int, int] = (48, 48), channels: int = 1, color_order: str = "rgb"
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.channels = int(channels)
        self.color_order = str(color_order).lower()
        try:
            _check_pixel_format(self.channels, self.color_order)
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc

    @property
    def splits(self) -> tuple[str, ...]:
        """Names of the splits this dataset has."""
        raise NotImplementedError

    def load(self, split: str) -> ImageData:
        """Load ``split`` (a name from :attr:`splits`, or ``train``/``val``/``test``)."""
        raise NotImplementedError

    def split_name(self, split: str) -> str | None:
        """The name in :attr:`splits` that ``split`` stands for (case and the dataset's
        aliases ignored), or ``None`` when this dataset has no such split with data."""
        return next((s for s in self.splits if s.lower() == split.lower()), None)

    def _to_pixels(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        return faces_to_pixels(faces, self.input_size, self.channels, self.color_order)


class FolderDataset(LabelledDataset):
    """Images in label-named folders.

    Layouts (folder names are matched case-insensitively)::

        root/train/<label>/*.jpg   root/val/<label>/...   root/test/<label>/...
        root/<label>/*.jpg          (validation split carved out with val_fraction)

    Split folder names: ``train``/``training``, ``val``/``valid``/``validation``/``dev``,
    ``test``. Without a validation folder, ``val_fraction`` of every label's training
    images (chosen with ``seed``, stratified) form the ``val`` split; a label's choice
    depends on ``seed`` and its own files only, so ``labels`` in another order or a subset
    of them carve the same images.

    Label folders whose names are emotions (``Happy``, ``happiness``, ``ANGER`` ...) map to
    the canonical names of :data:`~emotionkit.classifiers.FER_LABELS` (plus ``contempt``)
    and come first, in that order; the other folders are custom labels that keep their
    names, after them, sorted by name (``Happy/ Other/ Sad/`` -> ``happy, sad, Other``).
    Pass ``labels`` to fix the label set and order (emotion names in it are mapped to the
    canonical ones too, ``Anger`` -> ``angry``); folders not in it are skipped (logged).
    Folders of images beside split folders (``root/train/...`` and ``root/happy/...``) are
    left out, with a warning that names them.

    Images of any size and colour are decoded with :func:`emotionkit.load_image` and
    converted/resized like inference does. Unreadable files are skipped and counted.

    Attributes:
        labels: the labels :meth:`load` gives, in output order.
        folder_labels: the labels the label folders give, in the default order (what
            ``labels`` is without the ``labels`` argument).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        labels: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        input_size: tuple[int, int] = (48, 48),
        channels: int = 1,
        color_order: str = "rgb",
    ) -> None:
        super().__init__(input_size, channels, color_order)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder")
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)
        split_dirs = {
            _SPLIT_ALIASES[d.name.lower()]: d
            for d in sorted(self.root.iterdir())
            if d.is_dir() and d.name.lower() in _SPLIT_ALIASES
        }
        if split_dirs:
            self._warn_of_images_beside_splits(split_dirs)
        self._split_dirs = split_dirs or {"train": self.root}
        folder_names = sorted(
            {d.name for split_dir in self._split_dirs.values() for d in _subdirs(split_dir)}
        )
        if not folder_names:
            raise DatasetError(
                f"{self.root}: no label folders found; expected root/<label>/*.jpg or "
                "root/<split>/<label>/*.jpg"
            )
        self.folder_labels = self._resolve_labels(folder_names, None)
        self.labels = self._resolve_labels(folder_names, labels)
        self.source_labels = self._source_labels(folder_names, labels)
        self._files = self._list_files()

    @property
    def labels_without_folder(self) -> tuple[str, ...]:
        """Those of :attr:`labels` that no label folder gives (matched as :attr:`labels`
        are: case, synonyms): an evaluation may name them, training cannot learn them."""
        return tuple(label for label in self.labels
                     if _match_label(self.folder_labels, label) is None)

    def reads_from(self, path: str | Path) -> bool:
        """Whether files put under ``path`` would be read as this dataset's images: ``path``
        is inside a split folder, or anywhere under the root of a dataset without split
        folders (where a new folder becomes a label), or is (or is under) a folder named as
        a split (``test``, ``Validation``...) in the root, which would become one."""
        where, root = Path(path).resolve(), self.root.resolve()
        if where.is_relative_to(root) and where != root and (
                where.relative_to(root).parts[0].lower() in _SPLIT_ALIASES):
            return True
        return any(where.is_relative_to(d.resolve()) for d in self._split_dirs.values())

    @property
    def splits(self) -> tuple[str, ...]:
        """Those of ``train``, ``val`` and ``test`` that have image files: the split folders
        found, and ``val`` carved out of ``train`` when there is no val folder and
        ``val_fraction`` > 0."""
        return tuple(s for s in ("train", "val", "test") if self._files.get(s))

    def split_name(self, split: str) -> str | None:
        """The name in :attr:`splits` that ``split`` (``validation``, ``Test``...) stands
        for, or ``None``."""
        key = _SPLIT_ALIASES.get(split.lower())
        return key if key in self.splits else None

    def load(self, split: str) -> ImageData:
        """Decode the images of ``split`` (``train``/``val``/``test`` or an alias such as
        ``validation``) at the dataset's input size, channels and colour order; unreadable
        files are skipped and counted (:attr:`ImageData.skipped`). With ``labels`` that
        leave folders out or reorder them, ``source_labels`` holds all the folders' labels.

        Raises:
            DatasetError: ``split`` is not one of :attr:`splits`, or none of its files can
                be read.
        """
        key = _SPLIT_ALIASES.get(split.lower())
        if key is None or not self._files.get(key):
            raise DatasetError(self._missing_split_message(split, key))
        faces: list[np.ndarray] = []
        targets: list[int] = []
        skipped = 0
        for path, target in self._files[key]:
            try:
                faces.append(load_image(path))
            except ImageLoadError as exc:
                skipped += 1
                if skipped <= _MAX_LOGGED_SKIPS:
                    log.warning("skipped unreadable image: %s", exc)
                continue
            targets.append(target)
        name = f"{self.root} [{key}]"
        _log_summary(name, len(targets), skipped)
        if not targets:
            raise DatasetError(f"{name}: no usable images ({skipped} unreadable files)")
        return ImageData(
            self._to_pixels(faces), np.asarray(targets, dtype=np.int64), self.labels, name,
            skipped, self.color_order, self.source_labels,
        )

    def _missing_split_message(self, split: str, key: str | None) -> str:
        """Why :meth:`load` has no images for ``split`` (``key``: its canonical name)."""
        if key in self._split_dirs and self._split_dirs[key] != self.root:
            carve = (", or remove it to carve them out of the training images with "
                     "val_fraction > 0 (--val-fraction)" if key == "val" else "")
            what = {"train": "training", "val": "validation", "test": "test"}[key]
            return (f"{self._split_dirs[key]}: no image files in it or its label folders; add "
                    f"the {what} images there{carve}")
        message = f"{self.root}: no split {split!r}; available: {', '.join(self.splits) or 'none'}"
        train = self._files.get("train")
        if key == "val" and self.val_fraction > 0 and train:
            largest = int(np.bincount([target for _, target in train]).max())
            return (f"{message}; val_fraction {self.val_fraction:g} of each label's training "
                    f"images rounds to none (the largest label has {largest}); raise it "
                    "(--val-fraction) or add root/val/<label>/ folders")
        hint = {
            "val": "; add root/val/<label>/ folders, or carve val out of the training images "
                   "with val_fraction > 0 (--val-fraction)",
            "test": "; add root/test/<label>/ folders",
        }.get(key or "", "")
        return message + hint

    def _resolve_labels(
        self, folder_names: list[str], labels: Sequence[str] | None
    ) -> tuple[str, ...]:
        if labels is not None:
            given = tuple(canonical_label(str(label)) or str(label) for label in labels)
            if len(set(given)) != len(given) or not given:
                raise DatasetError(f"labels must be unique and non-empty, got {given}")
            return given
        emotions = {canonical_label(n) for n in folder_names} - {None}
        custom = [n for n in folder_names if canonical_label(n) is None]
        return (*(label for label in FERPLUS_LABELS if label in emotions), *custom)

    def _source_labels(
        self, folder_names: list[str], labels: Sequence[str] | None
    ) -> tuple[str, ...]:
        """With ``labels`` that are not all the folders' labels in their default order,
        the default labels (each spelt as in ``labels`` where one matches it, a label without
        a folder added at the end): the ``ImageData.source_labels`` of what :meth:`load`
        gives, as :meth:`ImageData.select_labels` would set them. Otherwise ``()``."""
        if labels is None:
            return ()
        source = list(self.folder_labels)
        for i, label in enumerate(self.labels):
            match = _match_label(source, label)
            if match is None or match in self.labels[:i]:
                source.append(label)
            else:
                source[source.index(match)] = label
        return () if tuple(source) == self.labels else tuple(source)

    def _warn_of_images_beside_splits(self, split_dirs: dict[str, Path]) -> None:
        """Folders of images next to the split folders are left out: a warning (an error
        would stop datasets that keep other images there, e.g. a training run's plots)."""
        beside = [d.name for d in _subdirs(self.root)
                  if d.name.lower() not in _SPLIT_ALIASES and _holds_images(d)]
        if beside:
            splits = [d.name for d in split_dirs.values()]
            log.warning(
                "%s: has split folders (%s) and folders of images beside them (%s), which are "
                "left out; move those into a split folder (e.g. %s) to use them",
                self.root, ", ".join(splits), ", ".join(beside), self.root / splits[0] / beside[0])

    def _label_index(self, folder: str) -> int | None:
        label = _match_label(self.labels, folder)
        return None if label is None else self.labels.index(label)

    def _list_files(self) -> dict[str, list[tuple[Path, int]]]:
        files: dict[str, list[tuple[Path, int]]] = {}
        for split, split_dir in self._split_dirs.items():
            entries: list[tuple[Path, int]] = []
            for folder in _subdirs(split_dir):
                index = self._label_index(folder.name)
                if index is None:
                    log.warning("skipped folder %s: not one of the labels %s", folder,
                                list(self.labels))
                    continue
                entries += [
                    (p, index) for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                ]
            files[split] = entries
        if "val" not in files and self.val_fraction > 0 and files.get("train"):
            files["train"], files["val"] = _stratified_split(
                files["train"], self.val_fraction, self.seed, self.labels
            )
        return files


class Fer2013Csv(LabelledDataset):
    """The Kaggle FER2013 CSV (``emotion,pixels,Usage``), plain or gzip-compressed.

    Splits are the ``Usage`` values ``Training``, ``PublicTest`` (validation) and
    ``PrivateTest`` (test); they and the folder datasets' split names (``train``/``val``/
    ``validation``/``test``...) are accepted in any case. Labels are
    :data:`~emotionkit.classifiers.FER_LABELS` (codes 0..6).

    With ``ferplus`` (a row-aligned ``ferplus.csv``, plain or ``.gz``), targets become the
    FER+ majority vote over :data:`FERPLUS_LABELS`; rows whose top vote is ``unknown`` or
    ``NF`` (not a face), or is tied between emotions, are skipped. Votes may be counts or
    shares (``0.7``); a row with a vote that is not a number >= 0 is skipped.

    Both files need their header line; a UTF-8 byte-order mark and spaces around the
    commas (a spreadsheet's re-save) are ignored. Rows with a bad label code, a pixel count
    other than 48x48, non-numeric pixels or an unknown ``Usage`` are skipped and counted
    (:attr:`skipped`: the whole file; :attr:`ImageData.skipped`: the split's rows).
    ``limit`` reads only the first rows (quick experiments). ``labels`` keeps only the rows
    of those labels, renumbered in the order given (e.g. ``("angry", "happy", "sad")``; see
    :meth:`ImageData.select_labels`).
    """

    train_split = "Training"
    val_split = "PublicTest"
    test_split = "PrivateTest"
    _ALIASES: ClassVar[dict[str, str]] = {
        "train": "Training", "val": "PublicTest", "test": "PrivateTest"
    }
    _FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                        "fear", "contempt")
    _SIDE = 48

    def __init__(
        self,
        path: str | Path,
        *,
        ferplus: str | Path | None = None,
        labels: Sequence[str] | None = None,
        limit: int | None = None,
        input_size: tuple[int, int] = (48, 48),
        channels: int = 1,
        color_order: str = "rgb",
    ) -> None:
        super().__init__(input_size, channels, color_order)
        self.path = Path(path)
        self.ferplus = Path(ferplus) if ferplus is not None else None
        self.limit = limit
        self.source_labels = FERPLUS_LABELS if self.ferplus is not None else FER_LABELS
        self.labels = (match_labels(self.source_labels, labels, str(self.path))
                       if labels is not None else self.source_labels)
        # per split: faces, label codes, csv data rows (0-based) they came from
        self._rows: dict[str, tuple[list[np.ndarray], list[int], list[int]]] | None = None
        self._n_rows = 0  # csv data rows read by _parse
        self._limited = False
        self.skipped = 0
        self._split_skipped: dict[str, int] = {}  # per Usage value

    @property
    def splits(self) -> tuple[str, ...]:
        """The ``Usage`` values with at least one usable row, of ``Training``,
        ``PublicTest`` and ``PrivateTest`` in that order (reading the csv on first use)."""
        rows = self._parse()
        return tuple(s for s in (self.train_split, self.val_split, self.test_split)
                     if rows[s][0])

    def load(self, split: str) -> ImageData:
        """The usable rows of ``split`` (a ``Usage`` value, or ``train``/``val``/``test``)
        at the dataset's input size and channels; with ``labels``, only the rows of those
        labels, renumbered in that order (``source_labels`` holds the full label list).

        Raises:
            DatasetError: ``split`` is unknown or has no usable rows.
        """
        key, (faces, targets, _) = self._split_rows(split)
        data = ImageData(
            self._to_pixels(faces), np.asarray(targets, dtype=np.int64), self.source_labels,
            f"{self.path} [{key}]", self._split_skipped[key], self.color_order,
        )
        return data if self.labels == self.source_labels else data.select_labels(self.labels)

    def split_name(self, split: str) -> str | None:
        """The ``Usage`` value in :attr:`splits` that ``split`` (``train``, ``validation``,
        ``test``, ``publictest``...: any case) stands for, or ``None``."""
        key = self._usage(split)
        return key if key in self.splits else None

    def _usage(self, split: str) -> str:
        """The ``Usage`` value ``split`` names: a ``Usage`` value or a split alias of a
        folder dataset (``train``, ``validation``, ``test``...), in any case; else
        ``split`` itself."""
        alias = _SPLIT_ALIASES.get(split.strip().lower())
        if alias is not None:
            return self._ALIASES[alias]
        usages = (self.train_split, self.val_split, self.test_split)
        return next((u for u in usages if u.lower() == split.strip().lower()), split)

    def _split_rows(
        self, split: str
    ) -> tuple[str, tuple[list[np.ndarray], list[int], list[int]]]:
        """The ``Usage`` value ``split`` names (aliases resolved) and its parsed rows."""
        key = self._usage(split)
        rows = self._parse()
        if key not in rows or not rows[key][0]:
            raise DatasetError(
                f"{self.path} [{key}]: no usable rows for split {split!r}; available: "
                f"{', '.join(self.splits) or 'none'} ({self.skipped} rows skipped)"
            )
        return key, rows[key]

    def _parse(self) -> dict[str, tuple[list[np.ndarray], list[int], list[int]]]:
        if self._rows is not None:
            return self._rows
        rows: dict[str, tuple[list[np.ndarray], list[int], list[int]]] = {
            s: ([], [], []) for s in (self.train_split, self.val_split, self.test_split)
        }
        votes = _read_ferplus_votes(self.ferplus) if self.ferplus is not None else None
        split_skipped = dict.fromkeys(rows, 0)
        skipped = n_rows = 0
        self._limited = False  # whether limit stopped the reading before the end
        for i, record in enumerate(_read_csv(self.path, ("emotion", "pixels", "Usage"))):
            if self.limit is not None and i >= self.limit:
                self._limited = True
                break
            n_rows = i + 1
            reason, image, target = self._parse_row(record, votes, i)
            if reason is not None or image is None:
                skipped += 1
                usage = (record.get("Usage") or "").strip()
                if usage in split_skipped:
                    split_skipped[usage] += 1
                if skipped <= _MAX_LOGGED_SKIPS:
                    log.warning("%s: skipped row %d: %s", self.path, i + 2, reason)
                continue
            faces, targets, numbers = rows[record["Usage"].strip()]
            faces.append(image)
            targets.append(target)
            numbers.append(i)
        if votes is not None:
            self._check_aligned(self.ferplus, len(votes), n_rows)
        self._n_rows = n_rows
        self.skipped = skipped
        self._split_skipped = split_skipped
        total = sum(len(t) for _, t, _ in rows.values())
        _log_summary(str(self.path), total, skipped)
        if total == 0:
            raise DatasetError(f"{self.path}: no usable rows ({skipped} skipped)")
        self._rows = rows
        return rows

    def _check_aligned(self, ferplus: Path | None, n_votes: int, n_rows: int) -> None:
        """A FER+ file of ``n_votes`` rows must be row-aligned with the ``n_rows`` csv rows
        read (the whole file; when ``limit`` stopped the reading, at least those rows)."""
        if n_votes != n_rows and (not self._limited or n_votes < n_rows):
            raise DatasetError(
                f"{ferplus}: has {n_votes} rows but {self.path} has {n_rows}; "
                "the FER+ file must be row-aligned with the FER2013 csv"
            )

    def ferplus_soft_labels(self, split: str, ferplus: str | Path) -> np.ndarray:
        """FER+ vote shares ``(N, len(labels))`` for the images ``load(split)`` returns.

        ``ferplus``: the row-aligned FER+ csv (plain or ``.gz``). Each row is the share of
        the FER+ annotators' votes (10 per image) that went to each of this dataset's
        labels (``contempt``, ``unknown`` and ``NF`` votes are left out); an image with
        no vote for any of them, or whose FER+ row cannot be read (logged), gets its own
        FER2013 label (one-hot). Rows follow
        ``load(split)``, so ``save_soft_labels(path, ds.load(split), ds.ferplus_soft_labels(
        split, ferplus))`` writes a teacher file (human soft labels for distillation).
        Only for a dataset with the original labels (made without ``ferplus``).

        Raises:
            DatasetError: the dataset was made with ``ferplus``, the FER+ file is not
                row-aligned with the csv, or the split has no usable rows.
        """
        if self.ferplus is not None:
            raise DatasetError(f"{self.path}: FER+ soft labels are for the original FER2013 "
                               "labels; open the csv without ferplus")
        _, (_, codes, rows) = self._split_rows(split)
        votes = _read_ferplus_votes(Path(ferplus))
        self._check_aligned(Path(ferplus), len(votes), self._n_rows)
        # this dataset's labels as FER+ vote columns and as FER2013 label codes
        names = [canonical_label(c) for c in self._FERPLUS_COLUMNS]
        columns = [names.index(label) for label in self.labels]
        chosen = [FER_LABELS.index(label) for label in self.labels]
        # the rows load() keeps (all, unless labels were selected), in its target order
        kept = [(votes[row], chosen.index(code)) for row, code in zip(rows, codes)
                if code in chosen]
        unreadable = sum(v is None for v, _ in kept)
        if unreadable:
            log.warning("%s: %d row%s without readable FER+ votes (given their FER2013 label)",
                        ferplus, unreadable, "s" if unreadable != 1 else "")
        table = np.array([v[columns] if v is not None else np.zeros(len(columns))
                          for v, _ in kept], dtype=np.float64).reshape(len(kept), len(columns))
        hot = np.eye(len(chosen))[[target for _, target in kept]]
        sums = table.sum(axis=1, keepdims=True)
        return np.where(sums > 0, table / np.maximum(sums, 1), hot).astype(np.float32)

    def _parse_row(
        self, record: dict[str, str], votes: list[np.ndarray | None] | None, i: int
    ) -> tuple[str | None, np.ndarray | None, int]:
        usage = (record.get("Usage") or "").strip()
        if usage not in (self.train_split, self.val_split, self.test_split):
            return f"unknown Usage {usage!r}", None, -1
        try:
            values = np.array((record.get("pixels") or "").split(), dtype=np.int64)
        except ValueError:
            return "non-numeric pixels", None, -1
        if values.size != self._SIDE * self._SIDE or values.min() < 0 or values.max() > 255:
            return f"{values.size} pixel values, expected {self._SIDE * self._SIDE} in 0..255", \
                None, -1
        image = values.astype(np.uint8).reshape(self._SIDE, self._SIDE)
        if votes is not None:
            if i >= len(votes) or votes[i] is None:
                return "no FER+ votes for this row", None, -1
            row_votes = votes[i]
            assert row_votes is not None
            top = row_votes.max()
            if top <= 0 or int((row_votes[:8] == top).sum()) != 1 or row_votes[8:].max() == top:
                return "no FER+ majority emotion (tie, unknown or not a face)", None, -1
            column = self._FERPLUS_COLUMNS[int(np.argmax(row_votes[:8]))]
            label = canonical_label(column)
            assert label is not None
            return None, image, FERPLUS_LABELS.index(label)
        try:
            code = int((record.get("emotion") or "").strip())
        except ValueError:
            return f"label {record.get('emotion')!r} is not an integer", None, -1
        if not 0 <= code < len(FER_LABELS):
            return f"label code {code} outside 0..{len(FER_LABELS) - 1}", None, -1
        return None, image, code


def _read_ferplus_votes(path: Path) -> list[np.ndarray | None]:
    """Per row of a FER+ csv: votes ``(10,)`` (``float64``: counts, or vote shares) over the
    8 emotions of ``Fer2013Csv._FERPLUS_COLUMNS``, ``unknown``, ``NF``; an empty cell is
    0; None for a row with a vote that is not a finite number >= 0, or with more or fewer
    values than the header names.

    Raises:
        DatasetError: the file cannot be read, lacks a vote column, or its first row has
            more values than its header line names columns (a header of the vote columns
            only, on the file's ``Usage,Image name,...`` rows, would shift every vote).
    """
    columns = (*Fer2013Csv._FERPLUS_COLUMNS, "unknown", "NF")
    full = ("Usage", "Image name", *columns)  # the header of FER+'s own fer2013new.csv
    votes: list[np.ndarray | None] = []
    for i, record in enumerate(_read_csv(path, columns, full)):
        extra: list[str] = record.get(None, [])  # type: ignore[call-overload]
        if i == 0 and extra:
            named = len(record) - 1
            raise DatasetError(
                f"{path}: row 2 has {named + len(extra)} values but the header line names "
                f"{named} columns; name every column (FER+'s own file: {','.join(full)!r})")
        try:
            if extra or any(record[c] is None for c in columns):
                raise ValueError("more or fewer values than columns")
            row = np.array([float(record[c] or 0) for c in columns])
        except ValueError:
            row = None
        votes.append(row if row is not None and np.isfinite(row).all() and (row >= 0).all()
                     else None)
    return votes


def open_dataset(
    path: str | Path,
    *,
    ferplus: str | Path | None = None,
    labels: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    **image_options: Any,
) -> LabelledDataset:
    """A :class:`Fer2013Csv` for a ``.csv``/``.csv.gz`` file, else a :class:`FolderDataset`.

    ``image_options`` (``input_size``, ``channels``, ``color_order``) go to the dataset as
    described in :class:`LabelledDataset`; ``ferplus`` applies to a csv (with a folder it
    is an error), ``val_fraction`` and ``seed`` to a folder.
    """
    path = Path(path)
    if path.is_file() and (path.name.lower().endswith((".csv", ".csv.gz"))):
        return Fer2013Csv(path, ferplus=ferplus, labels=labels, **image_options)
    if path.is_dir() and ferplus is not None:
        raise DatasetError(f"{path}: FER+ labels (ferplus) apply to a FER2013 csv only, not "
                           "to a folder dataset")
    if path.is_dir():
        return FolderDataset(path, labels=labels, val_fraction=val_fraction, seed=seed,
                             **image_options)
    raise DatasetError(
        f"{path}: not a dataset; expected a folder of label folders or a FER2013 .csv(.gz)"
    )


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` or a folder under it holds an image file (a label folder's
    images are read from its sub-folders too); ``False`` where it cannot be read."""
    try:
        return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.rglob("*"))
    except OSError:
        return False


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _stratified_split(
    entries: list[tuple[Path, int]], fraction: float, seed: int, labels: Sequence[str]
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """``fraction`` of each label's ``(path, target)`` entries (at least one left to train
    on) for validation. Each label's choice depends only on ``seed``, the label's name (any
    case) and its files, not on the label order or the other labels chosen: re-opening a
    dataset with ``labels`` in another order, or a subset, carves the same images."""
    train: list[tuple[Path, int]] = []
    val: list[tuple[Path, int]] = []
    for target in sorted({t for _, t in entries}):
        group = [e for e in entries if e[1] == target]
        name = labels[target].lower().encode("utf-8")
        order = np.random.default_rng([seed, zlib.crc32(name)]).permutation(len(group))
        n_val = min(round(len(group) * fraction), len(group) - 1)  # keep one to train on
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


def _read_csv(
    path: Path, required: Sequence[str], full_header: Sequence[str] = ()
) -> Iterator[dict[str, str]]:
    """The rows of a csv (plain or ``.gz``) as dicts, after checking its header has the
    ``required`` columns. A UTF-8 byte-order mark (Excel) and spaces around the column
    names are ignored. ``full_header``: all the columns of the file's usual layout, which
    the error for a file without a header line suggests when its first line has as many
    values (default: ``required``)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as raw:
            reader = csv.DictReader(raw)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(_missing_columns_message(
                    path, required, missing, header, full_header))
            yield from reader
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, io.UnsupportedOperation) as exc:
        raise DatasetError(f"{path}: cannot read CSV ({exc})") from exc


def _missing_columns_message(
    path: Path, required: Sequence[str], missing: Sequence[str], header: Sequence[str],
    full_header: Sequence[str] = (),
) -> str:
    """Why a csv with the columns ``header`` will not do (quoting little of a long line)."""
    if any(_is_number(name) for name in header):  # a data row where the header should be
        line = full_header if len(full_header) == len(header) else required
        return (f"{path}: the file seems to have no header line (its first line is "
                f"{cut(','.join(header), _MAX_QUOTED)!r}); add the line {','.join(line)!r} at "
                "its top")
    return (f"{path}: missing CSV column(s) {', '.join(missing)}; "
            f"found {cut(', '.join(header), _MAX_QUOTED) or 'no header'}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _log_summary(name: str, used: int, skipped: int) -> None:
    if skipped:
        log.warning("%s: %d images used, %d skipped (see warnings above)", name, used, skipped)
    else:
        log.info("%s: %d images", name, used)
