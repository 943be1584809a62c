#!/usr/bin/env python3
"""Average the weights of several checkpoints of one lineage (tail averaging / a "model
soup"): with a small batch and a flat loss the weights wander around a minimum, and their
mean often sits closer to it than any single one. The result is a checkpoint that
export.py and `train.py --eval-only --init` take like any other.

With --weights the mean is weighted. The weights must sum to 1 (an affine combination, so
that the constant buffers every checkpoint shares, such as the band matrix, stay what they
are), and may be negative: 2 and -1 step from the second checkpoint through the first and
as far again beyond it (extrapolation along the line between two runs; session 25).

  python average.py --out runs/v6/avg.pt runs/v6/snap_*.pt
  python average.py --out runs/ext/model.pt runs/new/last.pt runs/old/last.pt --weights 1.5 -0.5
"""
import argparse
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--half", action="store_true",
                    help="store float16 weights (half the bytes; for a warm start that must travel, not for export)")
    ap.add_argument("--weights", type=float, nargs="+", default=None,
                    help="one weight per checkpoint, summing to 1, negative ones allowed (default: all equal)")
    args = ap.parse_args()
    weights = args.weights or [1.0 / len(args.ckpts)] * len(args.ckpts)
    if len(weights) != len(args.ckpts):
        raise SystemExit(f"--weights: {len(weights)} weights for {len(args.ckpts)} checkpoints")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise SystemExit(f"--weights must sum to 1 (an affine combination), not {sum(weights):.6g}")
    ckpts = [torch.load(p, map_location="cpu") for p in args.ckpts]
    states = [c["model"] for c in ckpts]
    keys = states[0].keys()
    for p, st in zip(args.ckpts, states):
        if st.keys() != keys or any(st[k].shape != states[0][k].shape for k in keys):
            raise SystemExit(f"{p}: not the same architecture as {args.ckpts[0]}")
    lookahead = {c.get("lookahead", 0) for c in ckpts}
    if len(lookahead) > 1:  # the same weights, but their gains belong to different frames
        raise SystemExit(f"the checkpoints were trained with different lookahead: {sorted(lookahead)}")
    avg = {k: sum(w * st[k].float() for w, st in zip(weights, states)) for k in keys}
    avg = {k: v.to(torch.float16 if args.half and v.is_floating_point() else states[0][k].dtype)
           for k, v in avg.items()}
    # step and training time of the latest member: what the export's metadata reports
    step = max(c.get("step", 0) for c in ckpts)
    used_s = max(c.get("used_s", 0.0) for c in ckpts)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(model=avg, step=step, used_s=used_s, averaged=list(args.ckpts), weights=weights,
                    lookahead=lookahead.pop()), args.out)
    print(f"averaged {len(states)} checkpoints into {args.out}")


if __name__ == "__main__":
    main()
