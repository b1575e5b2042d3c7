#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry [".gpu", ".whl"]): install the carried
# Keras wheels, check that Keras and JAX import, rebuild the FER2013 csv from .gpu/ (as
# .gpu/fer2013.csv.gz: nothing is written outside the repository copy), start crossfit.py in
# the background (its own process session, so it outlives this call) and write its process
# id to WORK/pid. Arguments go to crossfit.py run.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" KERAS_BACKEND="${KERAS_BACKEND:-jax}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # the driver labels on the GPU too: no 75% grab
python3 -c "import jax, keras, emotionkit.cli.train, emotionkit.training.distill
print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())"
python3 tools/gpu/unpack.py .gpu/fer2013.csv.gz
work="${GPU_WORK:-/root/gpu}"
mkdir -p "$work"
setsid nohup python3 tools/gpu/crossfit.py run --work "$work" --csv .gpu/fer2013.csv.gz "$@" \
    > "$work/driver.log" 2>&1 < /dev/null &
echo $! > "$work/pid"
echo "crossfit.py started (pid $(cat "$work/pid")); log: $work/driver.log"
