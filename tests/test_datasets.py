"""Datasets: folder layouts, FER2013 csv parsing, skipping bad data, fingerprints."""

from __future__ import annotations

import csv
import gzip
import logging
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FER_CSV, FERPLUS_CSV, ROOT, needs_shared
from emotionkit import load_image
from emotionkit.classifiers import FER_LABELS
from emotionkit.classifiers.preprocess import faces_to_pixels
from emotionkit.training import (
    FERPLUS_LABELS,
    DatasetError,
    Fer2013Csv,
    FolderDataset,
    canonical_label,
    open_dataset,
)


def face_crops(n: int, seed: int, which: str = "astronaut") -> list[np.ndarray]:
    """Jittered, rescaled, re-lit crops of a real face from scikit-image photos (BGR)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    if which == "astronaut":
        image, (y, x, side) = np.ascontiguousarray(data.astronaut()[:, :, ::-1]), (82, 177, 96)
    else:  # the cameraman's head, a grayscale photo
        image, (y, x, side) = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR), (60, 210, 110)
    crops = []
    for _ in range(n):
        dy, dx = rng.integers(-8, 9, size=2)
        crop = image[y + dy : y + dy + side, x + dx : x + dx + side].astype(np.float32)
        crop = np.clip(crop * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        size = int(rng.integers(40, 140))
        crops.append(cv2.resize(crop, (size, size)))
    return crops


def write_face_folders(root: Path, n: int = 16, splits: tuple[str, ...] = ()) -> Path:
    """A FolderDataset of two classes made from real faces: ``Happy`` (the astronaut, colour
    JPEGs) and ``SADNESS`` (the cameraman, gray PNGs); ``splits`` adds split folders."""
    for s, split in enumerate(splits or ("",)):
        for folder, which, ext in (("Happy", "astronaut", ".jpg"), ("SADNESS", "camera", ".png")):
            target = root / split / folder
            target.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(face_crops(n, seed=s * 7 + len(folder), which=which)):
                if ext == ".png":
                    crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
                cv2.imwrite(str(target / f"{i:03d}{ext}"), crop)
    return root


def test_folder_labels_accept_emotion_synonyms(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=4)
    ds = FolderDataset(root, labels=["Sadness", "HAPPINESS"], val_fraction=0)
    assert ds.labels == ("sad", "happy")
    assert ds.load("train").class_counts().tolist() == [4, 4]
    with pytest.raises(DatasetError, match="unique"):
        FolderDataset(root, labels=["happy", "Happiness"])


def test_channels_and_color_order_are_checked(tmp_path: Path, astronaut_bgr) -> None:
    root = write_face_folders(tmp_path / "faces", n=2)
    with pytest.raises(DatasetError, match="channels must be 1 or 3"):
        FolderDataset(root, channels=2)
    with pytest.raises(DatasetError, match="color_order 'rgb' or 'bgr'"):
        FolderDataset(root, channels=3, color_order="rbg")
    rgb = FolderDataset(root, channels=3, color_order="RGB", val_fraction=0).load("train")
    bgr = FolderDataset(root, channels=3, color_order="bgr", val_fraction=0).load("train")
    assert rgb.color_order == "rgb" and np.array_equal(rgb.pixels, bgr.pixels[..., ::-1])
    with pytest.raises(ValueError, match="color_order"):
        faces_to_pixels([astronaut_bgr], (48, 48), 3, "RGB")


def test_folder_val_fraction_keeps_every_label_in_training(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=3)
    ds = FolderDataset(root, val_fraction=0.9)
    assert ds.load("train").class_counts().tolist() == [1, 1]
    assert ds.load("val").class_counts().tolist() == [2, 2]
    with pytest.raises(DatasetError, match=r"available: train; .*--val-fraction"):
        FolderDataset(root, val_fraction=0).load("val")
    with pytest.raises(DatasetError, match=r"add root/test/<label>/ folders"):
        ds.load("test")


def test_canonical_label_synonyms() -> None:
    assert canonical_label("Happiness") == "happy"
    assert canonical_label(" ANGER ") == "angry"
    assert canonical_label("contempt") == "contempt"
    assert canonical_label("cat") is None


def test_folder_flat_layout_maps_labels_and_splits(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=20)
    ds = FolderDataset(root, val_fraction=0.25, seed=3)
    assert ds.labels == ("happy", "sad")  # canonical names, FER order
    assert ds.splits == ("train", "val")
    train, val = ds.load("train"), ds.load("validation")
    assert (len(train), len(val)) == (30, 10)
    assert train.class_counts().tolist() == [15, 15] and val.class_counts().tolist() == [5, 5]
    assert train.pixels.dtype == np.uint8 and train.pixels.shape[1:] == (48, 48, 1)
    # every file in exactly one split, each image exactly what inference computes for its
    # file, with its folder's label
    files = {split: [path for path, _ in ds._files[split]] for split in ("train", "val")}
    assert sorted(files["train"] + files["val"]) == sorted(root.glob("*/*.*"))
    for split, data in (("train", train), ("val", val)):
        assert len(files[split]) == len(data)
        for path, pixels, target in zip(files[split], data.pixels, data.targets):
            expected = faces_to_pixels([load_image(path)], (48, 48), 1)[0]
            assert np.array_equal(pixels, expected), path
            assert data.labels[target] == {"Happy": "happy", "SADNESS": "sad"}[path.parent.name]
    assert FolderDataset(root, val_fraction=0.25, seed=3).load("val").fingerprint() \
        == val.fingerprint()
    assert FolderDataset(root, val_fraction=0.25, seed=4).load("val").fingerprint() \
        != val.fingerprint()


def test_folder_split_layout_colour_and_custom_labels(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=6, splits=("train", "Val", "test"))
    ds = FolderDataset(root, input_size=(64, 56), channels=3, color_order="bgr")
    assert ds.splits == ("train", "val", "test")
    test = ds.load("test")
    assert test.pixels.shape == (12, 64, 56, 3)
    custom = FolderDataset(root, labels=["SADNESS"])  # only that folder, canonical name
    assert custom.labels == ("sad",)
    assert custom.load("train").class_counts().tolist() == [6]


def test_folder_custom_label_set_sorted(tmp_path: Path) -> None:
    for name in ("dog", "Cat"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "a.png"), face_crops(1, 0)[0])
    assert FolderDataset(tmp_path, val_fraction=0).labels == ("Cat", "dog")


def test_folder_emotion_folders_map_beside_custom_ones(tmp_path: Path) -> None:
    """One custom folder (``Other``) leaves the emotion folders' mapping on: ``Happy`` and
    ``SADNESS`` are ``happy`` and ``sad``, in FER order, then the custom labels by name."""
    root = write_face_folders(tmp_path / "faces", n=4)
    for name in ("Other", "calm"):
        (root / name).mkdir()
        for i, crop in enumerate(face_crops(3, 9)):
            cv2.imwrite(str(root / name / f"{i}.png"), crop)
    data = FolderDataset(root, val_fraction=0).load("train")
    assert data.labels == ("happy", "sad", "Other", "calm")
    assert data.class_counts().tolist() == [4, 4, 3, 3]


def test_image_folders_beside_split_folders_are_named_in_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """They were left out in silence; a warning names them (not an error: a dataset may
    keep other images there, such as a training run's plots)."""
    root = write_face_folders(tmp_path / "faces", n=2, splits=("train", "val"))
    (root / "notes").mkdir()  # a folder without images beside the splits is fine
    (root / "notes" / "README.txt").write_text("where the faces come from")
    with caplog.at_level(logging.WARNING, logger="emotionkit.training"):
        assert FolderDataset(root).splits == ("train", "val")
    assert not caplog.records
    nested = root / "Angry" / "session1"  # label folders are read recursively: so is this
    nested.mkdir(parents=True)
    shutil.copy(next((root / "train").rglob("*.png")), nested / "a.png")
    with caplog.at_level(logging.WARNING, logger="emotionkit.training"):
        FolderDataset(root)
    assert "folders of images beside them (Angry)" in caplog.records[-1].getMessage()
    shutil.rmtree(root / "Angry")
    write_face_folders(root, n=2)  # and root/Happy, root/SADNESS: their images are not used
    with caplog.at_level(logging.WARNING, logger="emotionkit.training"):
        dataset = FolderDataset(root)
    assert dataset.splits == ("train", "val")
    assert caplog.records[-1].getMessage() == (
        f"{root}: has split folders (train, val) and folders of images beside them (Happy, "
        f"SADNESS), which are left out; move those into a split folder (e.g. "
        f"{root / 'train' / 'Happy'}) to use them")


def test_ferplus_with_a_folder_dataset_is_an_error(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n=2)
    with pytest.raises(DatasetError, match="FER\\+ labels \\(ferplus\\) apply to a FER2013 "
                       "csv only"):
        open_dataset(root, ferplus=tmp_path / "ferplus.csv")


def test_folder_bad_files_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_face_folders(tmp_path / "faces", n=4)
    (root / "Happy" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "Happy" / "empty.png").write_bytes(b"")
    (root / "Happy" / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.INFO, logger="emotionkit.training"):
        data = FolderDataset(root, val_fraction=0).load("train")
    assert len(data) == 8 and data.skipped == 2
    assert "2 skipped" in caplog.text and "broken.jpg" in caplog.text


def test_folder_without_usable_images_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no label folders"):
        FolderDataset(tmp_path)
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="no usable images"):
        FolderDataset(tmp_path, val_fraction=0).load("train")
    with pytest.raises(DatasetError, match="no split"):
        FolderDataset(tmp_path, val_fraction=0).load("test")
    with pytest.raises(DatasetError, match="not a dataset"):
        open_dataset(tmp_path / "missing")


def _fer_line(code: object, image: np.ndarray, usage: str) -> str:
    return f"{code},{' '.join(str(v) for v in image.ravel())},{usage}\n"


def write_fer_csv(path: Path, bad_rows: bool = True,
                  splits: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")) -> None:
    """A small FER2013-layout csv (gz if the name says so) of real 48x48 gray faces: per
    label 8 Training, 2 PublicTest and 2 PrivateTest rows, of ``splits`` only."""
    faces = [cv2.cvtColor(cv2.resize(c, (48, 48)), cv2.COLOR_BGR2GRAY)
             for c in face_crops(12, 1) + face_crops(12, 2, "camera")]
    codes = [3] * 12 + [4] * 12
    usages = (["Training"] * 8 + ["PublicTest"] * 2 + ["PrivateTest"] * 2) * 2
    lines = ["emotion,pixels,Usage\n"]
    lines += [_fer_line(c, f, u) for c, f, u in zip(codes, faces, usages) if u in splits]
    if bad_rows:
        lines += [
            _fer_line(9, faces[0], "Training"),               # label code out of range
            _fer_line(3, faces[0][:47], "Training"),          # wrong pixel count
            _fer_line(3, faces[0], "Holdout"),                # unknown split
            "x," + "1 " * 2304 + ",Training\n",               # non-numeric label
        ]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as f:
        f.writelines(lines)


@pytest.mark.parametrize("name", ["fer.csv", "fer.csv.gz"])
def test_fer2013_csv_splits_and_bad_rows(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / name
    write_fer_csv(path)
    with caplog.at_level(logging.WARNING, logger="emotionkit.training"):
        ds = open_dataset(path)
        assert isinstance(ds, Fer2013Csv)
        train = ds.load("Training")
    assert ds.labels == FER_LABELS and ds.skipped == 4
    assert "4 skipped" in caplog.text and "label code 9" in caplog.text
    assert len(train) == 16 and train.class_counts()[[3, 4]].tolist() == [8, 8]
    assert len(ds.load("val")) == 4 and len(ds.load("PrivateTest")) == 4
    assert ds.load("test").pixels.shape == (4, 48, 48, 1)


def test_fer2013_csv_splits_lists_only_splits_with_rows(tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False, splits=("Training", "PublicTest"))
    ds = Fer2013Csv(path)
    assert ds.splits == ("Training", "PublicTest")
    with pytest.raises(DatasetError, match="available: Training, PublicTest"):
        ds.load("test")


def test_fer2013_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="missing CSV column"):
        Fer2013Csv(tmp_path / "bad.csv").load("Training")
    (tmp_path / "none.csv").write_text("emotion,pixels,Usage\n7,1 2 3,Training\n")
    with pytest.raises(DatasetError, match="no usable rows"):
        Fer2013Csv(tmp_path / "none.csv").load("Training")


@pytest.mark.parametrize("bom, comma", [("\ufeff", ","), ("", ", "), ("\ufeff", " , ")])
@pytest.mark.parametrize("name", ["fer.csv", "fer.csv.gz"])
def test_fer2013_csv_with_bom_or_spaces_reads_like_the_plain_one(
    tmp_path: Path, bom: str, comma: str, name: str
) -> None:
    """A spreadsheet's re-save: a UTF-8 byte-order mark, spaces around the commas."""
    plain = tmp_path / "plain.csv"
    write_fer_csv(plain, bad_rows=False)
    lines = plain.read_text().splitlines()
    path = tmp_path / name
    with (gzip.open if name.endswith(".gz") else open)(path, "wt", encoding="utf-8") as f:
        f.write(bom + "".join(comma.join(line.split(",")) + "\n" for line in lines))
    for split in ("Training", "PublicTest", "PrivateTest"):
        got, expected = Fer2013Csv(path).load(split), Fer2013Csv(plain).load(split)
        assert len(got) == len(expected) == (16 if split == "Training" else 4)
        assert got.fingerprint() == expected.fingerprint()


def test_ferplus_csv_with_bom_and_spaces_is_read(tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)  # 12 happy, then 12 sad faces
    columns = ("Usage", "Image name", *Fer2013Csv._FERPLUS_COLUMNS, "unknown", "NF")
    rows = [", ".join(["Training", f"x{i}.png"] + ["7" if c == ("happiness" if i < 12 else
                                                                 "sadness") else "0"
                                                   for c in columns[2:]])
            for i in range(24)]
    ferplus = tmp_path / "ferplus.csv"
    ferplus.write_text("\ufeff" + ", ".join(columns) + "\n" + "\n".join(rows) + "\n",
                       encoding="utf-8")
    train = Fer2013Csv(path, ferplus=ferplus).load("train")
    counts = dict(zip(train.labels, train.class_counts().tolist()))
    assert counts["happy"] == counts["sad"] == 8 and len(train) == 16


def test_csv_without_a_header_line_is_a_short_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    headerless = tmp_path / "headerless.csv"
    headerless.write_text(path.read_text().split("\n", 1)[1])
    first_row = headerless.read_text().split("\n", 1)[0]
    with pytest.raises(DatasetError) as error:
        Fer2013Csv(headerless).load("train")
    assert str(error.value) == (
        f"{headerless}: the file seems to have no header line (its first line is "
        f"{first_row[:80] + '...'!r}); add the line 'emotion,pixels,Usage' at its top")
    # a header naming other columns is quoted as found
    (tmp_path / "other.csv").write_text("label,image,split\n3,1 2 3,Training\n")
    with pytest.raises(DatasetError, match=r"missing CSV column\(s\) emotion, pixels, Usage; "
                       "found label, image, split$"):
        Fer2013Csv(tmp_path / "other.csv").load("train")


def test_ferplus_majority_labels(tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt," \
             "unknown,NF\n"
    rows = []
    for i in range(24):
        votes = [0] * 10
        if i == 0:
            votes[7] = 6          # contempt
        elif i == 1:
            votes[0] = votes[1] = 4   # tie -> skipped
        elif i == 2:
            votes[9] = 10         # not a face -> skipped
        elif i == 3:
            votes[1] = votes[8] = 5   # happiness tied with unknown -> skipped
        else:
            votes[1 if i < 12 else 3] = 7  # happiness / sadness
        rows.append(f"Training,x{i}.png,{','.join(map(str, votes))}\n")
    (tmp_path / "ferplus.csv").write_text(header + "".join(rows))
    ds = Fer2013Csv(path, ferplus=tmp_path / "ferplus.csv")
    train = ds.load("train")
    assert ds.labels == FERPLUS_LABELS and ds.skipped == 3
    counts = dict(zip(ds.labels, train.class_counts().tolist()))
    assert counts["contempt"] == 1 and counts["happy"] == 4 and counts["sad"] == 8
    (tmp_path / "header.csv").write_text("emotion,pixels,Usage\n")
    with pytest.raises(DatasetError, match="has 24 rows but .*header.csv has 0"):
        Fer2013Csv(tmp_path / "header.csv", ferplus=tmp_path / "ferplus.csv").load("train")


def test_ferplus_soft_labels_follow_the_loaded_rows(tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    write_fer_csv(path)  # 24 faces (happy, then sad), then 4 bad rows that load() skips
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt," \
             "unknown,NF\n"
    votes = [[0] * 10 for _ in range(28)]
    votes[0][1], votes[0][3], votes[0][7] = 6, 2, 2   # happiness 6, sadness 2, contempt 2
    votes[1][8], votes[1][9] = 5, 5                     # unknown / not a face only
    votes[12][4], votes[12][3] = 5, 5                   # anger 5, sadness 5
    votes[13][0] = 10                                   # neutral
    ferplus = tmp_path / "ferplus.csv"
    ferplus.write_text(header + "".join(f"Training,x{i}.png,{','.join(map(str, v))}\n"
                                        for i, v in enumerate(votes)))
    ds = Fer2013Csv(path)
    train = ds.load("Training")
    soft = ds.ferplus_soft_labels("Training", ferplus)
    assert soft.shape == (len(train), 7) and np.allclose(soft.sum(axis=1), 1)
    col = {label: i for i, label in enumerate(train.labels)}
    # Training rows are csv rows 0-7 and 12-19, in that order
    assert soft[0, col["happy"]] == pytest.approx(0.75) and soft[0, col["sad"]] == pytest.approx(
        0.25)
    assert soft[1, col["happy"]] == 1.0 and train.targets[1] == col["happy"]  # no vote: own label
    assert soft[8, col["angry"]] == pytest.approx(0.5) == soft[8, col["sad"]]
    assert soft[9, col["neutral"]] == 1.0 and train.targets[9] == col["sad"]
    # a label selection keeps the rows and columns load() keeps, in its order
    two = Fer2013Csv(path, labels=["sad", "happy"])
    soft2 = two.ferplus_soft_labels("train", ferplus)
    assert soft2.shape == (len(two.load("train")), 2)
    assert soft2[0].tolist() == pytest.approx([0.25, 0.75]) and soft2[8].tolist() == [1.0, 0.0]
    (tmp_path / "short.csv").write_text(header + "Training,x.png,0,1,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DatasetError, match="row-aligned"):
        ds.ferplus_soft_labels("Training", tmp_path / "short.csv")
    (tmp_path / "long.csv").write_text(ferplus.read_text() + "Training,y.png,0,1,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DatasetError, match="has 29 rows but .* has 28; .*row-aligned"):
        ds.ferplus_soft_labels("Training", tmp_path / "long.csv")
    with pytest.raises(DatasetError, match="has 29 rows but .* has 28"):  # limit not reached
        Fer2013Csv(path, limit=1000).ferplus_soft_labels("Training", tmp_path / "long.csv")
    short_read = Fer2013Csv(path, limit=10)  # limit reached: a longer FER+ file is expected
    assert len(short_read.ferplus_soft_labels("Training", ferplus)) == 8
    with pytest.raises(DatasetError, match="without ferplus"):
        Fer2013Csv(path, ferplus=ferplus).ferplus_soft_labels("Training", ferplus)


@needs_shared
def test_real_fer2013_subset() -> None:
    ds = Fer2013Csv(FER_CSV, limit=300)
    train = ds.load("Training")
    assert len(train) + ds.skipped <= 300 and len(train) > 200
    assert train.pixels.shape[1:] == (48, 48, 1) and train.fingerprint().startswith("sha256:")
    # the rows themselves, read here with the csv module: labels are the csv's codes and
    # pixels the csv's pixel strings, row by row
    with gzip.open(FER_CSV, "rt", newline="") as f:
        rows = [row for _, row in zip(range(300), csv.DictReader(f))]
    assert all(row["Usage"] == "Training" for row in rows) and ds.skipped == 0
    assert train.targets.tolist() == [int(row["emotion"]) for row in rows]
    assert train.labels == FER_LABELS
    for i in (0, 1, 2, 150, 299):
        expected = np.array(rows[i]["pixels"].split(), dtype=np.uint8).reshape(48, 48)
        assert np.array_equal(train.pixels[i, :, :, 0], expected), i
    assert len({train.pixels[i].tobytes() for i in range(len(train))}) > 290  # not one image


# FER+ columns named as FER2013 labels, in FER2013 label order
_FERPLUS_AS_FER = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
_FERPLUS_ALL = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")


@pytest.fixture(scope="module")
def real_fer_and_ferplus() -> tuple[list[tuple[int, str]], np.ndarray, list[str]]:
    """The real ../shared FER2013 rows as (label code, Usage), read with the csv module,
    and the FER+ file's votes ``(N, 10)`` (columns ``_FERPLUS_ALL``) and Usage values."""
    if not (FER_CSV.is_file() and FERPLUS_CSV.is_file()):
        pytest.skip(f"FER2013 / FER+ not found at {FER_CSV.parent}")
    with gzip.open(FER_CSV, "rt", newline="") as f:
        fer = [(int(row["emotion"]), row["Usage"]) for row in csv.DictReader(f)]
    with gzip.open(FERPLUS_CSV, "rt", newline="") as f:
        plus = list(csv.DictReader(f))
    votes = np.array([[int(row[c]) for c in _FERPLUS_ALL] for row in plus], dtype=np.int64)
    return fer, votes, [row["Usage"] for row in plus]


def _card_agreement() -> dict[str, str]:
    """The FER+/FER2013 agreement figures the docs state (as printed, in %)."""
    card = (ROOT / "docs" / "models" / "fer-cnn.md").read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    m = re.search(r"only (\d+\.\d)% of the `PrivateTest` images \((\d+\.\d)% of `PublicTest`",
                  card)
    t = re.search(r"names FER2013's own label for (\d+\.\d)% of the `Training` images", guide)
    assert m is not None and t is not None, "the docs' FER+ agreement figures are gone"
    return {"PrivateTest": m.group(1), "PublicTest": m.group(2), "Training": t.group(1)}


@needs_shared
def test_real_ferplus_soft_labels_and_agreement(real_fer_and_ferplus) -> None:
    """``ferplus_soft_labels`` on the real files: rows aligned with FER2013's, each the
    annotators' vote shares over the seven labels, and the share of images whose top vote
    names FER2013's label is the one the docs state (64.2% PrivateTest, 63.8% PublicTest,
    64.5% Training)."""
    fer, votes, plus_usage = real_fer_and_ferplus
    assert len(fer) == len(votes) == 35666
    assert plus_usage == [usage for _, usage in fer]  # row-aligned: same split, row by row
    counts = {s: sum(u == s for _, u in fer) for s in ("Training", "PublicTest", "PrivateTest")}
    assert counts == {"Training": 28518, "PublicTest": 3577, "PrivateTest": 3571}
    seven = votes[:, [_FERPLUS_ALL.index(c) for c in _FERPLUS_AS_FER]]
    docs = _card_agreement()
    ds = Fer2013Csv(FER_CSV)
    for split in ("PrivateTest", "PublicTest", "Training"):
        rows = [i for i, (_, usage) in enumerate(fer) if usage == split]
        codes = np.array([fer[i][0] for i in rows])
        data = ds.load(split)
        soft = ds.ferplus_soft_labels(split, FERPLUS_CSV)
        assert len(data) == counts[split] and data.targets.tolist() == codes.tolist()
        assert soft.shape == (counts[split], 7) and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(axis=1), 1, atol=1e-6)
        # independently: vote shares over the seven labels; no such vote -> own label
        v = seven[rows].astype(np.float64)
        total = v.sum(axis=1, keepdims=True)
        expected = np.where(total > 0, v / np.maximum(total, 1), np.eye(7)[codes])
        np.testing.assert_allclose(soft, expected, atol=1e-6)
        # top vote (ties: the first in label order) against FER2013's label
        top = np.where(total[:, 0] > 0, v.argmax(axis=1), codes)
        agreement = float((top == codes).mean())
        assert float((soft.argmax(axis=1) == data.targets).mean()) == pytest.approx(agreement)
        assert f"{100 * agreement:.1f}" == docs[split], split


@needs_shared
def test_real_ferplus_majority_labels(real_fer_and_ferplus) -> None:
    """``Fer2013Csv(ferplus=...)`` on the real files: targets are the FER+ majority vote over
    the eight emotions; rows with a tie or an unknown / not-a-face top vote are left out."""
    fer, votes, _ = real_fer_and_ferplus
    top = votes.max(axis=1)
    emotions = votes[:, :8]
    clear = (top > 0) & ((emotions == top[:, None]).sum(axis=1) == 1) & (
        votes[:, 8:].max(axis=1) < top)
    label_of = [canonical_label(c) for c in _FERPLUS_ALL[:8]]
    ds = Fer2013Csv(FER_CSV, ferplus=FERPLUS_CSV)
    assert ds.labels == FERPLUS_LABELS
    for split in ("PrivateTest", "PublicTest"):
        rows = [i for i, (_, usage) in enumerate(fer) if usage == split and clear[i]]
        data = ds.load(split)
        assert len(data) == len(rows)
        expected = [FERPLUS_LABELS.index(label_of[int(emotions[i].argmax())]) for i in rows]
        assert data.targets.tolist() == expected
    assert ds.skipped == int((~clear).sum())
    assert len(ds.load("PrivateTest")) == 3373  # of 3,571: 198 without a clear majority


def test_an_empty_split_folder_or_a_val_fraction_rounding_to_none_is_named(
        tmp_path: Path) -> None:
    """The missing-split error used to advise adding the val/ folder that is there (empty)
    and a val_fraction > 0 that was given (rounding to no image)."""
    root = write_face_folders(tmp_path / "faces", n=4, splits=("train",))
    for label in ("happy", "sad"):
        (root / "val" / label).mkdir(parents=True)
    with pytest.raises(DatasetError) as error:
        FolderDataset(root).load("val")
    assert str(error.value) == (
        f"{root / 'val'}: no image files in it or its label folders; add the validation "
        "images there, or remove it to carve them out of the training images with "
        "val_fraction > 0 (--val-fraction)")
    flat = write_face_folders(tmp_path / "flat", n=4)
    with pytest.raises(DatasetError) as error:
        FolderDataset(flat, val_fraction=0.1).load("val")
    assert str(error.value) == (
        f"{flat}: no split 'val'; available: train; val_fraction 0.1 of each label's "
        "training images rounds to none (the largest label has 4); raise it "
        "(--val-fraction) or add root/val/<label>/ folders")


def test_val_carve_out_does_not_depend_on_the_label_order_or_subset(tmp_path: Path) -> None:
    """The same seed carves the same validation images out of a label's folder whatever
    ``labels`` order or subset the dataset is opened with (the choice followed the label
    order: re-opened as ``labels=["sad", "happy"]``, ``val`` held training images)."""
    root = write_face_folders(tmp_path / "faces", n=20)
    for name in ("Other", "calm"):  # custom labels too
        (root / name).mkdir()
        for i, crop in enumerate(face_crops(8, 9)):
            cv2.imwrite(str(root / name / f"{i}.png"), crop)

    def val_files(**options: object) -> set[Path]:
        ds = FolderDataset(root, val_fraction=0.25, seed=5, **options)  # type: ignore[arg-type]
        return {path for path, _ in ds._files["val"]}

    default = val_files()
    assert len(default) == 5 + 5 + 2 + 2
    assert val_files(labels=["calm", "sad", "Other", "happy"]) == default
    for subset in (["sad"], ["Sadness", "other"], ["calm", "Happy"]):
        assert val_files(labels=subset) == {
            p for p in default if _match_folder(p.parent.name, subset)}, subset


def _match_folder(folder: str, labels: list[str]) -> bool:
    """Whether the label folder ``folder`` is one of ``labels`` (case, emotion synonyms)."""
    return any((canonical_label(folder) or folder.lower())
               == (canonical_label(x) or x.lower()) for x in labels)


@pytest.mark.parametrize("split, usage", [
    ("publictest", "PublicTest"), ("validation", "PublicTest"), ("Val", "PublicTest"),
    ("training", "Training"), ("TRAIN", "Training"), ("privatetest", "PrivateTest"),
    ("Test", "PrivateTest")])
def test_fer2013_csv_split_names_any_case_and_folder_aliases(
        tmp_path: Path, split: str, usage: str) -> None:
    """``Fer2013Csv.split_name``'s docstring promised ``publictest``; it and the folder
    datasets' aliases (``validation``, ``training``) were 'no usable rows' errors."""
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    ds = Fer2013Csv(path)
    assert ds.split_name(split) == usage
    assert ds.load(split).fingerprint() == ds.load(usage).fingerprint()
    assert ds.split_name("holdout") is None


_FERPLUS_HEADER = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                   "contempt,unknown,NF\n")


def test_ferplus_vote_shares_are_not_truncated_to_whole_votes(tmp_path: Path) -> None:
    """A FER+ file of vote shares (0.7 happiness, 0.3 neutral) was read as whole votes
    (0 and 0): soft labels fell back to FER2013's one-hot labels in silence and every row
    lost its majority."""
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)  # 12 happy, then 12 sad faces
    rows = []
    for i in range(24):
        votes = [0.0] * 10
        votes[1 if i < 12 else 3], votes[0] = 0.7, 0.3  # happiness / sadness, neutral
        rows.append("Training,x.png," + ",".join(map(str, votes)) + "\n")
    shares = tmp_path / "shares.csv"
    shares.write_text(_FERPLUS_HEADER + "".join(rows))
    ds = Fer2013Csv(path)
    soft = ds.ferplus_soft_labels("train", shares)
    col = {label: i for i, label in enumerate(FER_LABELS)}
    assert soft[0, col["happy"]] == pytest.approx(0.7)
    assert soft[0, col["neutral"]] == pytest.approx(0.3)
    assert soft[8, col["sad"]] == pytest.approx(0.7)
    train = Fer2013Csv(path, ferplus=shares).load("train")
    counts = dict(zip(train.labels, train.class_counts().tolist()))
    assert counts["happy"] == counts["sad"] == 8 and len(train) == 16


@pytest.mark.parametrize("bad", ["inf", "nan", "-3", "many"])
def test_ferplus_rows_with_bad_votes_are_skipped_not_a_traceback(
        tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture) -> None:
    """``inf`` ended in OverflowError; a negative vote was counted as one."""
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    rows = [f"Training,x.png,{'0,' * 3}{bad if i == 0 else '0'},0,0,0,0,0,0\n"
            if i < 2 else "Training,x.png,0,9,0,1,0,0,0,0,0,0\n" for i in range(24)]
    ferplus = tmp_path / "ferplus.csv"
    ferplus.write_text(_FERPLUS_HEADER + "".join(rows))
    with caplog.at_level(logging.WARNING, logger="emotionkit.training"):
        ds = Fer2013Csv(path, ferplus=ferplus)
        train = ds.load("train")
    assert len(train) == 14 and ds.skipped == 2  # rows 0 (bad) and 1 (no vote)
    assert "skipped row 2: no FER+ votes for this row" in caplog.text
    with caplog.at_level(logging.WARNING, logger="emotionkit.training"):
        soft = Fer2013Csv(path).ferplus_soft_labels("train", ferplus)
    assert soft[0].tolist() == soft[1].tolist() == [0, 0, 0, 1, 0, 0, 0]  # own label
    assert "1 row without readable FER+ votes" in caplog.text


def test_fer2013_csv_skipped_counts_are_per_split(tmp_path: Path) -> None:
    """Every split's ``ImageData.skipped`` was the whole file's count (a trained model's
    config.json gave train and val the same, summed, number)."""
    path = tmp_path / "fer.csv"
    write_fer_csv(path)  # 4 bad rows: 3 Training, 1 with an unknown Usage
    with path.open("a") as f:
        f.write(_fer_line(3, np.zeros((47, 48), np.uint8), "PrivateTest"))
    ds = Fer2013Csv(path)
    assert ds.load("train").skipped == 3 and ds.load("val").skipped == 0
    assert ds.load("test").skipped == 1 and ds.skipped == 5
    assert Fer2013Csv(path, labels=["happy", "sad"]).load("train").skipped == 3


def test_ferplus_header_that_does_not_name_every_column_is_one_clear_error(
        tmp_path: Path) -> None:
    """A header-less FER+ file (Microsoft's layout: ``Usage,Image name,`` then 10 vote
    columns) was told to add a line of the 10 vote names; done so, every row was skipped
    as 'no FER+ votes' and the error was 'no usable rows'."""
    path = tmp_path / "fer.csv"
    write_fer_csv(path, bad_rows=False)
    rows = "".join(f"Training,fer{i:07d}.png,0,7,0,1,0,0,0,0,0,0\n" for i in range(24))
    headerless = tmp_path / "headerless.csv"
    headerless.write_text(rows)
    with pytest.raises(DatasetError) as error:
        Fer2013Csv(path, ferplus=headerless).load("train")
    assert str(error.value).endswith(
        f"add the line '{_FERPLUS_HEADER.strip()}' at its top")
    votes_only = tmp_path / "votes-only.csv"
    votes_only.write_text(_FERPLUS_HEADER.split(",", 2)[2] + rows)
    with pytest.raises(DatasetError) as error:
        Fer2013Csv(path, ferplus=votes_only).load("train")
    assert str(error.value) == (
        f"{votes_only}: row 2 has 12 values but the header line names 10 columns; name "
        f"every column (FER+'s own file: '{_FERPLUS_HEADER.strip()}')")
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(_FERPLUS_HEADER + rows)
    assert len(Fer2013Csv(path, ferplus=fixed).load("train")) == 16
