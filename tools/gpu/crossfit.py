"""Cross-fitted distillation for ``fer-cnn`` on a GPU machine (see README.md beside this).

    python3 tools/gpu/crossfit.py run --work /root/gpu [options]

1. teachers: for each ``--teacher-arch``, ``--folds`` runs in parallel; run ``k`` trains on
   every fold of FER2013 ``Training`` but fold ``k`` (``emotionkit.training.distill.
   fold_index``), selecting on ``PublicTest``;
2. labels: each teacher classifies the fold it did not train on (``cross_fitted_soft_labels``;
   with several architectures their probabilities are averaged) -> ``WORK/cross-fitted.npz``;
3. students: ``emotionkit train`` with ``--teacher WORK/cross-fitted.npz``, one run per
   ``--student-weight``, in parallel.

With ``--vgg-epochs N`` (for ``vgg19-3emo``, docs/models/vgg19-3emo.md) phase 1 also trains
the 7-class VGG19-BN from random weights on all of ``Training`` (``WORK/vgg7``), phase 2
also writes the soft labels of the angry/happy/sad rows (``WORK/cross-fitted-3emo.npz``),
and phase 3 also fine-tunes ``WORK/vgg7`` on those three labels, one run per
``--vgg3-weight`` (``WORK/vgg3-wW``; weight 0: plain labels).

Every run trains with the library's own Trainer and CLI; runs still going at a phase's
deadline are stopped (each keeps its best epoch so far). ``WORK/DONE`` marks the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CSV = "../shared/data/fer2013/fer2013.csv.gz"

# teacher name -> (architecture, arch_options, extra trainer options)
THREE = ("angry", "happy", "sad")
VGG_OPTIONS = ["--arch", "vgg19", "--arch-option", "trainable_blocks=-1", "--arch-option",
               "size=48", "--arch-option", "batch_norm=true", "--arch-option", "dropout=0.0",
               "--class-weight", "sqrt", "--patience", "0", "--seed", "0"]

TEACHERS = {
    "fer-cnn": ("fer-cnn", {}, {}),
    # the 7-class VGG19-BN of docs/models/vgg19-3emo.md (gpu-vgg7: 67.77% on PublicTest)
    "vgg19bn": ("vgg19", {"trainable_blocks": -1, "size": 48, "batch_norm": True,
                          "dropout": 0.0}, {"base_weights": "none"}),
}


def _data(csv: str):
    from emotionkit.training import Fer2013Csv

    data = Fer2013Csv(csv)
    return data.load("Training"), data.load("PublicTest")


def _teacher(args: argparse.Namespace, name: str, k: int, epochs: int | None = None):
    from emotionkit.training import Trainer, TransferTrainer, get_architecture

    arch, options, extra = TEACHERS[name]
    trainer = TransferTrainer if get_architecture(arch).transfer else Trainer
    return trainer(Path(args.work) / f"teacher-{name}-{k}", arch, arch_options=options,
                   epochs=epochs or args.teacher_epochs, batch_size=args.batch_size,
                   learning_rate=args.lr, patience=0, seed=k, class_weight="sqrt",
                   precision=args.precision, resume=True, progress=False, **extra)


def train_teacher(args: argparse.Namespace) -> None:
    from emotionkit.training.distill import fold_index

    train, val = _data(args.csv)
    part = fold_index(train.targets, args.folds, args.seed)
    held_in = train.subset(np.flatnonzero(part != args.index))
    _teacher(args, args.arch, args.index).fit(held_in, val)


def label(args: argparse.Namespace) -> Path:
    from emotionkit.training.distill import cross_fitted_soft_labels, save_soft_labels

    train, val = _data(args.csv)
    work = Path(args.work)
    parts = []
    for arch in args.teacher_arch:
        done = [_teacher(args, arch, k).epochs_done for k in range(args.folds)]
        print(f"teachers {arch}: epochs run {done}", flush=True)
        if min(done) == 0:
            print(f"teachers {arch}: one has no epoch; left out", flush=True)
            continue
        parts.append(cross_fitted_soft_labels(
            lambda k, arch=arch, done=done: _teacher(args, arch, k, done[k]), train, val,
            args.folds, args.seed))
        save_soft_labels(work / f"cross-fitted-{arch}.npz", train, parts[-1])
    if not parts:
        raise SystemExit("no teacher finished an epoch")
    soft = np.mean(parts, axis=0)
    agree = float((soft.argmax(axis=1) == train.targets).mean())
    print(f"cross-fitted soft labels agree with {100 * agree:.1f}% of the training labels",
          flush=True)
    three = train.select_labels(THREE)
    columns = [train.labels.index(label) for label in three.labels]
    save_soft_labels(work / "cross-fitted-3emo.npz", three,
                     soft[np.isin(train.targets, columns)][:, columns])
    return save_soft_labels(work / "cross-fitted.npz", train, soft)


def _train_command(args: argparse.Namespace, out: Path, epochs: int, lr: float,
                   *options: str) -> list[str]:
    """``emotionkit train`` on the csv, resumable, with this run's batch size and precision."""
    return [sys.executable, "-m", "emotionkit", "train", args.csv, "--out", str(out),
            "--epochs", str(epochs), "--lr", str(lr), "--batch-size", str(args.batch_size),
            "--precision", args.precision, "--resume", *options]


def _soft_teacher(path: Path | None, weight: float) -> list[str]:
    return [] if weight == 0 or path is None else [
        "--teacher", str(path), "--teacher-weight", str(weight), "--teacher-temperature", "1"]


def _spawn(command: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait(procs: list[subprocess.Popen], deadline: float) -> None:
    while any(p.poll() is None for p in procs):
        if time.time() > deadline:
            for p in procs:
                if p.poll() is None:
                    print(f"deadline: stopping pid {p.pid}", flush=True)
                    os.killpg(p.pid, signal.SIGTERM)
            time.sleep(10)
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            return
        time.sleep(5)


def run(args: argparse.Namespace) -> None:
    """All three phases; ``WORK/DONE`` is written at the end whatever happened (with the
    error, if one stopped the run), so that the export call never waits in vain."""
    start = time.time()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    status = "ok"
    try:
        _phases(args, work, start)
    except BaseException as exc:
        status = f"failed: {type(exc).__name__}: {exc}"
        raise
    finally:
        (work / "DONE").write_text(f"{(time.time() - start) / 60:.1f} min, {status}\n")
        print(f"done after {(time.time() - start) / 60:.1f} min, {status}", flush=True)


def _phases(args: argparse.Namespace, work: Path, start: float) -> None:
    me = [sys.executable, __file__]
    common = ["--work", args.work, "--csv", args.csv, "--folds", str(args.folds),
              "--seed", str(args.seed), "--teacher-epochs", str(args.teacher_epochs),
              "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--precision", args.precision]
    procs = [_spawn([*me, "teacher", *common, "--arch", arch, "--index", str(k)],
                    work / f"teacher-{arch}-{k}.log")
             for arch in args.teacher_arch for k in range(args.folds)]
    vgg7 = work / "vgg7"
    if args.vgg_epochs:
        procs.append(_spawn(_train_command(args, vgg7, args.vgg_epochs, args.lr, *VGG_OPTIONS,
                                           "--base-weights", "none"), work / "vgg7.log"))
    _wait(procs, start + 60 * args.teacher_minutes)
    print(f"teachers ended after {(time.time() - start) / 60:.1f} min", flush=True)
    try:
        soft: Path | None = label(args)
    except (Exception, SystemExit) as exc:  # no soft labels: the plain-label runs still go
        print(f"labels failed ({exc}); only runs with weight 0 start", flush=True)
        soft = None
    runs: list[tuple[str, list[str]]] = [
        (f"student-w{weight}",
         _train_command(args, work / f"student-w{weight}", args.student_epochs, args.lr,
                        "--arch", "fer-cnn", "--seed", "0", "--patience", "0",
                        *_soft_teacher(soft, weight)))
        for weight in args.student_weight if soft is not None or weight == 0]
    if args.vgg_epochs and not (vgg7 / "model.keras").is_file():
        print("vgg7 has no model.keras (no epoch finished): no vgg3 runs", flush=True)
    elif args.vgg_epochs:
        runs += [
            (f"vgg3-w{weight}",
             _train_command(args, work / f"vgg3-w{weight}", args.vgg3_epochs, args.vgg3_lr,
                            *VGG_OPTIONS, "--labels", ",".join(THREE), "--base-weights",
                            str(vgg7 / "model.keras"),
                            *_soft_teacher(work / "cross-fitted-3emo.npz", weight)))
            for weight in args.vgg3_weight if soft is not None or weight == 0]
    _wait([_spawn(command, work / f"{name}.log") for name, command in runs],
          start + 60 * args.total_minutes)


def _number(kind: type, low: float, high: float = float("inf")):
    """An argparse type: ``kind`` (int or float) in ``low..high``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{value} is outside {low:g}..{high:g}" if high < float("inf")
                else f"{value} is below {low:g}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    count, positive = _number(int, 1), _number(float, 1e-12)
    weight = _number(float, 0.0, 1.0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["run", "teacher", "label"])
    parser.add_argument("--work", default="/root/gpu")
    parser.add_argument("--csv", default=CSV)
    parser.add_argument("--folds", type=_number(int, 2), default=5)
    parser.add_argument("--seed", type=_number(int, 0), default=0, help="fold assignment")
    parser.add_argument("--teacher-arch", action="append", default=None,
                        choices=sorted(TEACHERS), help="repeatable; default fer-cnn")
    parser.add_argument("--teacher-epochs", type=count, default=100)
    parser.add_argument("--teacher-minutes", type=positive, default=9.0)
    parser.add_argument("--student-epochs", type=count, default=200)
    parser.add_argument("--student-weight", type=weight, action="append", default=None,
                        help="repeatable; default 0.5 and 0.8")
    parser.add_argument("--total-minutes", type=positive, default=22.0,
                        help="deadline of the students, from the start (> --teacher-minutes)")
    parser.add_argument("--vgg-epochs", type=_number(int, 0), default=0,
                        help="7-class VGG19-BN base for vgg19-3emo (0: none)")
    parser.add_argument("--vgg3-weight", type=weight, action="append", default=None,
                        help="repeatable; default 0 and 0.6")
    parser.add_argument("--vgg3-epochs", type=count, default=8)
    parser.add_argument("--vgg3-lr", type=positive, default=1e-4)
    parser.add_argument("--batch-size", type=count, default=64)
    parser.add_argument("--lr", type=positive, default=1e-3)
    parser.add_argument("--precision", default="mixed_bfloat16",
                        choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--arch", default="fer-cnn", choices=sorted(TEACHERS),
                        help="teacher phase: its architecture")
    parser.add_argument("--index", type=_number(int, 0), default=0,
                        help="teacher phase: its fold")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    # a plan that cannot work stops here, before any process starts on the GPU machine
    if args.total_minutes <= args.teacher_minutes:
        parser.error(f"--total-minutes {args.total_minutes:g} leaves the students no time "
                     f"after --teacher-minutes {args.teacher_minutes:g}")
    if args.index >= args.folds:
        parser.error(f"--index {args.index} is not a fold of --folds {args.folds}")
    if not Path(args.csv).is_file():
        parser.error(f"--csv {args.csv}: no such file (on the GPU machine setup.sh makes "
                     ".gpu/fer2013.csv.gz)")
    from emotionkit.cli.train import setup_logging

    setup_logging()  # the Trainer's per-epoch lines, to each process's log
    args.teacher_arch = args.teacher_arch or ["fer-cnn"]
    args.student_weight = args.student_weight or [0.5, 0.8]
    args.vgg3_weight = args.vgg3_weight or [0.0, 0.6]
    {"run": run, "teacher": train_teacher, "label": label}[args.phase](args)


if __name__ == "__main__":
    main()
