#!/usr/bin/env bash
# One prepared training run on a lent GPU machine (see DEVELOPERS.md / the device tool):
# the corpus (models/train/cache/corpus) and the soundfile wheels (.whl) travel with the
# working tree; the checkpoint and log come back under $OUT/run. Nothing depends on it:
# the same train.py runs on CPU (`--device cpu`) and resumes from the checkpoint.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ../../.whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 train.py --run "$OUT/run" --corpus cache/corpus --device cuda --batch 64 --lr "${LR:-1.5e-3}" ${INIT:+--init "$INIT"} \
  --minutes "${MINUTES:-8}" --eval-every "${EVAL_EVERY:-400}" --threads 8 2>&1 | tee "$OUT/train.log"
