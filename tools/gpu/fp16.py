"""Bring the best ``vgg3-*`` model back from the GPU machine in half the bytes.

    python3 tools/gpu/fp16.py shrink WORK           # there: WORK/vgg3-best.npz (float16)
    python tools/gpu/fp16.py widen WORK/vgg3-best.npz WORK   # here: RUN/model.keras again

A VGG19-BN model file is about 80 MB of float32 weights, more than one device call brings
back (64 MiB). ``shrink`` picks the ``vgg3-*`` run with the highest validation
(``PublicTest``) accuracy (``metrics.json``, or the checkpoint's best score for a run a
deadline stopped) and stores its weights as float16 (about 40 MB); ``widen`` rebuilds
that run's network from its ``config.json`` (architecture and ``arch_options``, as the
Trainer built it), loads the weights widened to float32 and saves ``RUN/model.keras``, so
the run directory loads like any other. Rounding to float16 changes
the weights by at most 2**-11 of their size; score the widened model with ``emotionkit
evaluate`` before using its figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _val_accuracy(run: Path) -> float:
    """The run's best validation accuracy: from ``metrics.json``, or for a run stopped at
    a deadline (no ``metrics.json`` yet) the best score in its checkpoint's state; -1 if
    it has no model file."""
    from emotionkit.training import Trainer

    metrics = run / "metrics.json"
    if not (run / "model.keras").is_file():
        return -1
    if metrics.is_file():
        return float(json.loads(metrics.read_text())["val"]["accuracy"])
    best = Trainer(run, "vgg19").best_score
    return -1 if best is None else best


def shrink(work: Path) -> Path | None:
    from emotionkit.classifiers import load_classifier

    runs = sorted((r for r in work.glob("vgg3-*") if r.is_dir()), key=_val_accuracy)
    if not runs or _val_accuracy(runs[-1]) < 0:
        print("no finished vgg3-* run")
        return None
    best = runs[-1]
    weights = load_classifier(best).model.get_weights()
    out = work / "vgg3-best.npz"
    np.savez(out, run=np.array(best.name),
             **{f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(weights)})
    print(f"{out}: {best.name} (val accuracy {_val_accuracy(best):.4f}), {len(weights)} arrays, "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return out


def widen(npz: Path, work: Path) -> Path:
    from emotionkit.classifiers import ModelConfig
    from emotionkit.training import build_model

    with np.load(npz) as f:
        run = work / str(f["run"])
        weights = [f[k].astype(np.float32) for k in sorted(f.files) if k.startswith("w")]
    config = ModelConfig.read(run / "config.json")
    model = build_model(config.architecture, (*config.input_size, config.channels),
                        len(config.labels), **config.extra["training"]["arch_options"])
    model.set_weights(weights)
    model.save(run / config.model_file)
    print(f"{run / config.model_file}: {len(weights)} arrays widened to float32")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{shrink,widen}")
    verbs.add_parser("shrink", help="there: WORK/vgg3-best.npz from the best vgg3-* run"
                     ).add_argument("work", type=Path)
    widen_parser = verbs.add_parser("widen", help="here: RUN/model.keras again, float32")
    widen_parser.add_argument("npz", type=Path)
    widen_parser.add_argument("work", type=Path)
    args = parser.parse_args()
    if args.verb == "shrink":
        shrink(args.work)
    elif not args.npz.is_file() or not args.work.is_dir():
        parser.error(f"widen {args.npz} {args.work}: needs the vgg3-best.npz file and the "
                     "unpacked WORK folder beside it (README.md)")
    else:
        widen(args.npz, args.work)


if __name__ == "__main__":
    main()
