#!/usr/bin/env bash
# On the GPU machine: pack WORK (default /root/gpu) into $OUT as 15 MB parts, without the
# checkpoints, the teachers' models, the VGG models and half-written model files (their
# metrics, history and config stay); the best vgg3-* model travels as float16 weights
# (fp16.py shrink -> vgg3-best.npz). A device call brings back at most 8 files, 64 MiB.
# Safe while runs still train (an early export): shrink reads the model on the CPU and
# leaves the GPU to them.
# Here: mkdir -p runs && cat /work/.device/N/pack.tar.part* | tar -C runs -xf -
set -uo pipefail
work="${GPU_WORK:-/root/gpu}"
if compgen -G "$work/vgg3-*/" > /dev/null; then
    PYTHONPATH="/tmp/site:$PWD/src" KERAS_BACKEND="${KERAS_BACKEND:-jax}" JAX_PLATFORMS=cpu \
        python3 tools/gpu/fp16.py shrink "$work" || echo "fp16.py shrink failed: no VGG model"
fi
tar -C "$(dirname "$work")" -cf - --exclude=checkpoint --exclude='teacher-*/model.keras' \
    --exclude='vgg*/model.keras' --exclude='*.tmp.keras' "$(basename "$work")" \
    | split -b 15M -d - "$OUT/pack.tar.part"
ls -la "$OUT"
parts=$(ls "$OUT" | wc -l)
mib=$(( $(du -sb "$OUT" | cut -f1) / 1048576 ))
if [ "$parts" -gt 8 ] || [ "$mib" -gt 63 ]; then
    echo "WARNING: $parts parts, $mib MiB: over what one call brings back (8 files, 64 MiB)"
fi
tail -n 5 "$work/driver.log" || true
