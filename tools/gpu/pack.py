"""Pack what a GPU machine needs into .gpu/ and .whl/ (git-ignored; run here, not there).

    python tools/gpu/pack.py            # in the checkout the session started in

Writes ``.gpu/fer-trainval.npz.xz``: FER2013's ``Training`` and ``PublicTest`` rows from
``../shared/data/fer2013/fer2013.csv.gz`` (beside the repository) in file order (pixels
uint8, label codes, split), xz-compressed (~55 MB). ``PrivateTest`` never leaves this
machine. Then downloads the Keras wheels the device lacks into ``.whl/`` (pip download,
Python 3.12, manylinux x86-64), adds both folders to ``.git/info/exclude`` and sums what
a device call would carry (the repository's tracked and untracked-not-ignored files,
``.gpu/`` and ``.whl/``): over the 64 MiB a call takes, it says so here, not on the GPU
machine.
"""

from __future__ import annotations

import gzip
import io
import lzma
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"
SPLITS = ("Training", "PublicTest")
WHEELS = ("keras==3.15.1", "namex", "optree")
CARRY_LIMIT_MIB = 64


def pack_data(csv: Path, out: Path) -> int:
    """Write the ``SPLITS`` rows of FER2013 ``csv`` to ``out`` (xz-compressed ``.npz``:
    ``pixels`` (N, 2304) uint8, ``emotion`` codes, ``usage`` indices into ``splits``);
    returns the number of rows."""
    pixels, codes, usage = [], [], []
    with gzip.open(csv, "rt") as f:
        if next(f).strip() != "emotion,pixels,Usage":
            raise SystemExit(f"pack.py: {csv} is not a FER2013 csv (emotion,pixels,Usage)")
        for line in f:
            emotion, values, split = line.rstrip("\n").split(",")
            if split in SPLITS:
                pixels.append(np.array(values.split(), dtype=np.uint8))
                codes.append(int(emotion))
                usage.append(SPLITS.index(split))
    buffer = io.BytesIO()
    np.savez(buffer, pixels=np.stack(pixels), emotion=np.array(codes, dtype=np.int8),
             usage=np.array(usage, dtype=np.int8), splits=np.array(SPLITS))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(buffer.getvalue(), preset=9))
    print(f"{out}: {len(codes)} rows, {out.stat().st_size / 1e6:.1f} MB")
    return len(codes)


def download_wheels(folder: Path) -> None:
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    "--platform=manylinux2014_x86_64", *platforms, "-d", str(folder),
                    *WHEELS], check=True)


def travelling_bytes(root: Path, carried: Sequence[Path]) -> int:
    """Bytes a device call sends from the git checkout ``root``: its tracked and
    untracked-not-ignored files, a ``shared/`` folder in it, and the ``carried`` folders
    (links count as links)."""
    names = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, check=True).stdout
    paths = {root / name for name in names.decode("utf-8", "surrogateescape").split("\0")
             if name}
    for folder in (*carried, root / "shared"):
        if folder.is_dir():
            paths.update(folder.rglob("*"))
    total = 0
    for path in paths:
        try:
            info = path.lstat()
        except FileNotFoundError:  # tracked, deleted in the working tree
            continue
        if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            total += info.st_size
    return total


def check_travel_size(root: Path, carried: Sequence[Path]) -> str:
    """A line with what a device call would carry; ``SystemExit`` if it is over the limit."""
    mib = travelling_bytes(root, carried) / 2**20
    names = ", ".join(folder.name for folder in carried)
    if mib > CARRY_LIMIT_MIB:
        raise SystemExit(
            f"pack.py: a device call would carry {mib:.1f} MiB (the repository with {names}), "
            f"over the {CARRY_LIMIT_MIB} MiB it takes: delete or git-ignore large untracked "
            "files (git status) before calling run")
    return f"a device call carries {mib:.1f} of {CARRY_LIMIT_MIB} MiB (the repository with {names})"


def _git_exclude(root: Path) -> Path:
    """``.git/info/exclude`` of ``root`` (in a worktree: the main checkout's)."""
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--git-path", "info/exclude"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return root / out


def main() -> None:
    if not CSV.is_file():
        raise SystemExit(f"pack.py: FER2013 not found at {CSV} (../shared beside the "
                         "repository); run this in a checkout that has it")
    carried = [ROOT / ".gpu", ROOT / ".whl"]
    pack_data(CSV, carried[0] / "fer-trainval.npz.xz")
    download_wheels(carried[1])
    exclude = _git_exclude(ROOT)
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    with exclude.open("a") as f:
        for entry in ("/.gpu/", "/.whl/"):
            if entry not in lines:
                f.write(entry + "\n")
    print(check_travel_size(ROOT, carried))


if __name__ == "__main__":
    main()
