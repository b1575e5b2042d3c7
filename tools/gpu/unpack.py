"""On the GPU machine: rebuild ../shared/data/fer2013/fer2013.csv.gz from .gpu/ (the
``Training`` and ``PublicTest`` rows only, in their original order, so the data
fingerprints in config.json equal those of runs made here)."""

from __future__ import annotations

import gzip
import io
import lzma
import sys
from pathlib import Path

import numpy as np

SPLITS = ("Training", "PublicTest")


def main() -> None:
    with np.load(io.BytesIO(lzma.decompress(Path(".gpu/fer-trainval.npz.xz").read_bytes()))) as d:
        pixels, emotion, usage = d["pixels"], d["emotion"], d["usage"]
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fer2013/fer2013.csv.gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", compresslevel=1) as f:
        f.write("emotion,pixels,Usage\n")
        for row, code, split in zip(pixels, emotion, usage):
            f.write(f"{code},{' '.join(map(str, row.tolist()))},{SPLITS[split]}\n")
    print(f"{out}: {len(emotion)} rows")


if __name__ == "__main__":
    main()
