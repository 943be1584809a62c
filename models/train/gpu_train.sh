#!/usr/bin/env bash
# One prepared training run on a lent GPU machine: gpu_sweep.sh with a single setting named
# `run` (same environment variables, and EXTRA: more train.py arguments). Prepare here
# first with ./gpu_prepare, which prints the `carry` list. The weights come back as
# $OUT/run/model.pt and the log as $OUT/run/train.log; validate here with
# `train.py --eval-only --init .../model.pt`.
# Nothing depends on it: the same train.py runs on CPU.
exec "$(dirname "$0")/gpu_sweep.sh" "run:${EXTRA:-}"
