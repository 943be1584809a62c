#!/usr/bin/env python3
"""Average the weights of several checkpoints of one lineage (tail averaging / a "model
soup"): with a small batch and a flat loss the weights wander around a minimum, and their
mean often sits closer to it than any single one. The result is a checkpoint that
export.py and `train.py --eval-only --init` take like any other.

  python average.py --out runs/v6/avg.pt runs/v6/snap_*.pt
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
    args = ap.parse_args()
    ckpts = [torch.load(p, map_location="cpu") for p in args.ckpts]
    states = [c["model"] for c in ckpts]
    keys = states[0].keys()
    for p, st in zip(args.ckpts, states):
        if st.keys() != keys or any(st[k].shape != states[0][k].shape for k in keys):
            raise SystemExit(f"{p}: not the same architecture as {args.ckpts[0]}")
    lookahead = {c.get("lookahead", 0) for c in ckpts}
    if len(lookahead) > 1:  # the same weights, but their gains belong to different frames
        raise SystemExit(f"the checkpoints were trained with different lookahead: {sorted(lookahead)}")
    avg = {k: sum(st[k].float() for st in states) / len(states) for k in keys}
    avg = {k: v.to(torch.float16 if args.half and v.is_floating_point() else states[0][k].dtype)
           for k, v in avg.items()}
    # step and training time of the latest member: what the export's metadata reports
    step = max(c.get("step", 0) for c in ckpts)
    used_s = max(c.get("used_s", 0.0) for c in ckpts)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(model=avg, step=step, used_s=used_s, averaged=list(args.ckpts), lookahead=lookahead.pop()),
               args.out)
    print(f"averaged {len(states)} checkpoints into {args.out}")


if __name__ == "__main__":
    main()
