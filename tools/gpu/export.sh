#!/usr/bin/env bash
# On the GPU machine: pack WORK (default /root/gpu) into $OUT as 15 MB parts, without the
# checkpoints, the teachers' models and the VGG models (their metrics, history and config
# stay); the best vgg3-* model travels as float16 weights (fp16.py shrink -> vgg3-best.npz).
# Here: cat /work/.device/N/pack.tar.part* | tar -xf -, then fp16.py widen.
set -euo pipefail
work="${GPU_WORK:-/root/gpu}"
if compgen -G "$work/vgg3-*/" > /dev/null; then
    PYTHONPATH="/tmp/site:$PWD/src" KERAS_BACKEND="${KERAS_BACKEND:-jax}" \
        python3 tools/gpu/fp16.py shrink "$work"
fi
tar -C "$(dirname "$work")" -cf - --exclude=checkpoint --exclude='teacher-*/model.keras' \
    --exclude='vgg*/model.keras' "$(basename "$work")" | split -b 15M -d - "$OUT/pack.tar.part"
ls -la "$OUT"
tail -n 5 "$work/driver.log" || true
