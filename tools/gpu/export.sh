#!/usr/bin/env bash
# On the GPU machine: pack WORK (default /root/gpu) into $OUT as 15 MB parts, without the
# checkpoints and without the teachers' models (their metrics, history and config stay).
# Here: cat /work/.device/N/pack.tar.part* | tar -xf -
set -euo pipefail
work="${GPU_WORK:-/root/gpu}"
tar -C "$(dirname "$work")" -cf - --exclude=checkpoint --exclude='teacher-*/model.keras' \
    "$(basename "$work")" | split -b 15M -d - "$OUT/pack.tar.part"
ls -la "$OUT"
tail -n 5 "$work/driver.log" || true
