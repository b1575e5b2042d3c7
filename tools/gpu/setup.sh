#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry [".gpu", ".whl"]): install the carried
# Keras wheels, rebuild the FER2013 csv from .gpu/, start crossfit.py in the background
# (its own process session, so it outlives this call). Arguments go to crossfit.py run.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" KERAS_BACKEND="${KERAS_BACKEND:-jax}" PYTHONUNBUFFERED=1
python3 tools/gpu/unpack.py
work="${GPU_WORK:-/root/gpu}"
mkdir -p "$work"
setsid nohup python3 tools/gpu/crossfit.py run --work "$work" "$@" > "$work/driver.log" 2>&1 \
    < /dev/null &
echo "crossfit.py started; log: $work/driver.log"
