#!/usr/bin/env bash
# One prepared training run on a lent GPU machine (see the device tool's README). Prepare
# here first with ./gpu_prepare, which fetches the soundfile wheels into .whl/ and prints
# the `carry` list: the training files of the corpus and the wheels travel with the working
# tree (64 MiB in all, so the validation split stays here). The checkpoint and log come
# back under $OUT/run; validate them here with `train.py --eval-only --init .../last.pt`.
# Nothing depends on it: the same train.py runs on CPU and resumes from the checkpoint.
#   env: MINUTES (8), LR (1.5e-3), INIT (checkpoint to warm-start from), EVAL_EVERY (400),
#        STATEFUL (1: carry the recurrent state, see train.py), DEVICE (cuda; cpu for a smoke test)
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -c "import soundfile" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ../../.whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 train.py --run "$OUT/run" --corpus cache/corpus --device "$DEVICE" --batch "${BATCH:-64}" --lr "${LR:-1.5e-3}" \
  ${INIT:+--init "$INIT"} ${STATEFUL:+--stateful} --no-val \
  --minutes "${MINUTES:-8}" --eval-every "${EVAL_EVERY:-400}" --threads 8 2>&1 | tee "$OUT/train.log"
