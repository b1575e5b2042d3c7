"""On the GPU machine: rebuild a FER2013 csv from what pack.py wrote (the ``Training`` and
``PublicTest`` rows only, in their original order, so the data fingerprints in config.json
and soft-label files equal those of runs made here).

    python3 tools/gpu/unpack.py [OUT]    # default .gpu/fer2013.csv.gz, from the repository root
"""

from __future__ import annotations

import gzip
import io
import lzma
import sys
from pathlib import Path

import numpy as np

PACKED = Path(".gpu/fer-trainval.npz.xz")


def unpack(packed: Path, out: Path) -> Path:
    """Write the rows of ``packed`` (pack.py's ``.npz.xz``) to ``out`` as a gzip csv."""
    with np.load(io.BytesIO(lzma.decompress(packed.read_bytes()))) as d:
        pixels, emotion, usage = d["pixels"], d["emotion"], d["usage"]
        # packs made before pack.py stored the split names hold these two
        splits = [str(s) for s in d["splits"]] if "splits" in d else ["Training", "PublicTest"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", compresslevel=1) as f:
        f.write("emotion,pixels,Usage\n")
        for row, code, split in zip(pixels, emotion, usage):
            f.write(f"{code},{' '.join(map(str, row.tolist()))},{splits[split]}\n")
    print(f"{out}: {len(emotion)} rows")
    return out


def main() -> None:
    unpack(PACKED, Path(sys.argv[1] if len(sys.argv) > 1 else ".gpu/fer2013.csv.gz"))


if __name__ == "__main__":
    main()
