"""Test matrix and checks. ``nox`` alone runs lint, typecheck and tests on this Python.

Sessions:
    tests-3.10 ... tests-3.13   the test-suite (slow tests excluded; ``-- -m slow`` for them)
    tests_jax                   the test-suite on Keras's JAX backend (not in the default run)
    lint                        ruff (src, tests, benchmarks, tools, this file)
    typecheck                   mypy on src/
    bench                       latency/throughput table (benchmarks/bench.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"

nox.options.sessions = ["lint", "typecheck", f"tests-{CURRENT}"]
nox.options.error_on_missing_interpreters = True


def _add_pyenv_interpreters() -> None:
    """Put every pyenv-installed CPython's ``bin`` on PATH so nox finds ``python3.X``
    even where pyenv's shims only activate one version."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return
    bins = sorted(str(p) for p in Path(root, "versions").glob("3.*/bin") if p.is_dir())
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *bins])


_add_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Install the package (not editable) with its test and ray extras and run pytest."""
    session.install(".[test,ray]")
    session.run("pytest", *session.posargs)


@nox.session(python=CURRENT)
def tests_jax(session: nox.Session) -> None:
    """The test-suite with ``KERAS_BACKEND=jax`` (the backend of GPU training runs)."""
    session.install(".[test,jax]")
    session.run("pytest", *session.posargs, env={"KERAS_BACKEND": "jax"})


@nox.session(python=CURRENT)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks, the developer tools and this file."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "tools", "noxfile.py")


@nox.session(python=CURRENT)
def typecheck(session: nox.Session) -> None:
    """mypy over src/ (third-party packages without types are treated as Any)."""
    session.install("mypy>=1.10", "numpy", "click", "pillow", "types-tqdm")
    session.run("mypy")


@nox.session(python=CURRENT)
def bench(session: nox.Session) -> None:
    """Print the latency/throughput table; ``nox -s bench -- --with-fer`` also measures
    the ``fer`` package on the same frames where it can be installed."""
    session.install(".[test]")
    if "--with-fer" in session.posargs:
        session.install("fer")
    session.run("python", "benchmarks/bench.py", *[a for a in session.posargs
                                                     if a != "--with-fer"])
