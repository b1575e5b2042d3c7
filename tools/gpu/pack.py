"""Pack what a GPU machine needs into .gpu/ and .whl/ (git-ignored; run here, not there).

    python tools/gpu/pack.py            # from the repository root, ../shared beside it

Writes ``.gpu/fer-trainval.npz.xz``: FER2013's ``Training`` and ``PublicTest`` rows from
``../shared/data/fer2013/fer2013.csv.gz`` in file order (pixels uint8, label codes, split),
xz-compressed (~55 MB). ``PrivateTest`` never leaves this machine. Then downloads the Keras
wheels the device lacks into ``.whl/`` (pip download, Python 3.12, manylinux x86-64) and adds
both folders to ``.git/info/exclude``.
"""

from __future__ import annotations

import gzip
import io
import lzma
import subprocess
import sys
from pathlib import Path

import numpy as np

CSV = Path("../shared/data/fer2013/fer2013.csv.gz")
SPLITS = ("Training", "PublicTest")
WHEELS = ("keras==3.15.1", "namex", "optree")


def pack_data(out: Path) -> None:
    pixels, codes, usage = [], [], []
    with gzip.open(CSV, "rt") as f:
        assert next(f).strip() == "emotion,pixels,Usage"
        for line in f:
            emotion, values, split = line.rstrip("\n").split(",")
            if split in SPLITS:
                pixels.append(np.array(values.split(), dtype=np.uint8))
                codes.append(int(emotion))
                usage.append(SPLITS.index(split))
    buffer = io.BytesIO()
    np.savez(buffer, pixels=np.stack(pixels), emotion=np.array(codes, dtype=np.int8),
             usage=np.array(usage, dtype=np.int8))
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(lzma.compress(buffer.getvalue(), preset=9))
    print(f"{out}: {len(codes)} rows, {out.stat().st_size / 1e6:.1f} MB")


def download_wheels(folder: Path) -> None:
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    "--platform=manylinux2014_x86_64", *platforms, "-d", str(folder),
                    *WHEELS], check=True)


def main() -> None:
    pack_data(Path(".gpu/fer-trainval.npz.xz"))
    download_wheels(Path(".whl"))
    exclude = Path(".git/info/exclude")
    exclude.parent.mkdir(exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    with exclude.open("a") as f:
        for entry in ("/.gpu/", "/.whl/"):
            if entry not in lines:
                f.write(entry + "\n")


if __name__ == "__main__":
    main()
