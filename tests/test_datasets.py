"""Datasets: folder layouts, FER2013 csv parsing, skipping bad data, fingerprints."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FER_CSV, needs_shared
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
    # exactly what inference computes for the same file
    first = sorted((root / "Happy").iterdir())[0]
    expected = faces_to_pixels([load_image(first)], (48, 48), 1)[0]
    index = [i for i, (p, _) in enumerate(ds._files["train"]) if p == first]
    if index:
        assert np.array_equal(train.pixels[index[0]], expected)
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
