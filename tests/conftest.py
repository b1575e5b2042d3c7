"""Shared fixtures: real face images and the FER2013 data in ../shared (when present)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTIONKIT_SHARED", ROOT.parent / "shared"))
FER_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED / "data" / "fer2013" / "ferplus.csv.gz"

needs_shared = pytest.mark.skipif(
    not FER_CSV.is_file(),
    reason=f"FER2013 not found at {FER_CSV} (../shared is only in the project's CI and "
    "dev machines; set EMOTIONKIT_SHARED to its location)",
)


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut photo (one real frontal face), BGR uint8 512x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def frame_640x480(astronaut_bgr: np.ndarray) -> np.ndarray:
    """A 640x480 BGR frame holding the astronaut photo's face region once."""
    frame = np.full((480, 640, 3), 90, dtype=np.uint8)
    frame[40:440, 120:520] = astronaut_bgr[0:400, 40:440]
    return frame


@pytest.fixture(scope="session")
def fer_rows() -> list[tuple[int, np.ndarray, str]]:
    """The first 600 rows of ../shared FER2013 as (label code, 48x48 uint8, usage)."""
    if not FER_CSV.is_file():
        pytest.skip(f"FER2013 not found at {FER_CSV}")
    rows = []
    with gzip.open(FER_CSV, "rt") as f:
        next(f)
        for line in f:
            emotion, pixels, usage = line.rstrip("\n").split(",")
            img = np.array(pixels.split(), dtype=np.uint8).reshape(48, 48)
            rows.append((int(emotion), img, usage))
            if len(rows) == 600:
                break
    return rows
