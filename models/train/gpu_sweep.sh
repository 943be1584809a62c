#!/usr/bin/env bash
# Several training runs at once on one lent GPU (see gpu_train.sh for the single run and the
# device tool's README for the limits). A lent machine is one short call per session, and one
# small GRU run leaves most of an H100 idle, so a call is better spent comparing a few
# settings than on one run; the winners are chosen here, with evaluate.py, not on the GPU.
#   ./gpu_sweep.sh "NAME:EXTRA TRAIN ARGS" ...   e.g. "base:" "hf03:--hf-weight 0.3"
#   env: MINUTES (8), LR (5e-4), INIT (checkpoint), BATCH (128), STATEFUL (set: carry the
#   recurrent state), EVAL_EVERY (400), DEVICE (cuda; cpu for a smoke test)
# Each run's weights come back as $OUT/NAME/model.pt (the optimiser state stays behind: the
# device returns at most 16 MiB a file), with its log as $OUT/NAME/train.log.
set -euo pipefail
cd "$(dirname "$0")"
# gpu_prepare's archive of the small files (corpus index, RIRs, warm-start weights); files
# already here (a smoke test on the build machine) are left alone
if [ -f ../../.gpu/pack.tar.xz ]; then tar --skip-old-files -xJf ../../.gpu/pack.tar.xz; fi
# (pesq, for the learned critic, comes as a wheel gpu_prepare built; without it a run with
# --critic-weight stops at its start; with it, the run's share of the cores scores PESQ-WB,
# which nothing else there uses while the GPU trains)
if ! python3 -c "import soundfile, pesq" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ../../.whl/*.whl
  export PYTHONPATH=/tmp/site
fi
# gpu_prepare --shipped: the warm start is the shipped model, read back from its file
if [ -f cache/init_map.npz ] && [ ! -f cache/init.pt ]; then
  python3 import_onnx.py --onnx ../denoiser.onnx --map cache/init_map.npz --out cache/init.pt
fi
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
threads=$(( $(nproc) / $# )); [ "$threads" -ge 1 ] || threads=1
pids=()
for spec in "$@"; do
  name=${spec%%:*} extra=${spec#*:}
  mkdir -p "$OUT/$name"
  # shellcheck disable=SC2086  # extra holds several arguments
  python3 train.py --run "/tmp/sweep/$name" --model-copy "$OUT/$name/model.pt" --corpus cache/corpus \
    --device "$DEVICE" --batch "${BATCH:-128}" --lr "${LR:-5e-4}" ${INIT:+--init "$INIT"} \
    ${STATEFUL:+--stateful} --no-val --minutes "${MINUTES:-8}" --eval-every "${EVAL_EVERY:-400}" \
    --threads "$threads" --critic-workers "$threads" $extra >"$OUT/$name/train.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for spec in "$@"; do name=${spec%%:*}; echo "== $name"; tail -n 3 "$OUT/$name/train.log"; done
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
exit $rc
