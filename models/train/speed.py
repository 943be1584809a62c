#!/usr/bin/env python3
"""Is model B faster than model A per streaming hop? A paired timing that this VM's swings cannot fake.

  python speed.py --a ../denoiser.onnx --b runs/NEW/model.onnx

`denoised bench` times one file at a time, and this build VM's speed drifts by a third
within minutes (see the README's "Speed"), so two files benched one after the other can
swap places from round to round. Here both files run in one process, each through ONNX
Runtime with one intra-op thread at T=1 with its state carried (as `denoised` runs them),
and the two files take turns of `--turn-hops` hops (a few milliseconds: a slow spell of
the VM lasts seconds to minutes, so it slows both alike). Printed: each file's p50 and p99
call time, and the ratio of B's p50 to A's in each of `--blocks` blocks of hops, with its
mean and 95 % interval (normal approximation over the blocks).

The turn length sets what is measured. With long turns (the default, 50 hops, the first 5
of each turn not timed) each file's weights stay in the CPU's caches, as in `denoised
bench`. With `--turn-hops 1` the files alternate every hop and each call finds the other
file's weights in the caches, closer to the live worker, which sleeps between hops. The
times include Python's own overhead per call, so compare them with each other, not with
`denoised bench`'s.
"""
import argparse
import time

import numpy as np
import onnxruntime as ort


class Stream:
    """One ONNX file run frame by frame with its state carried."""

    def __init__(self, path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ins = self.sess.get_inputs()
        self.state_names = [i.name for i in ins if i.name.startswith("state_in_")]
        self.out_names = [o.name for o in self.sess.get_outputs()]
        self.state_out = [self.out_names.index("state_out_" + n[len("state_in_"):]) for n in self.state_names]
        self.feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
                     for i in ins}

    def call(self, spec):
        """Runs one frame; returns the seconds the call took."""
        self.feed["spec"] = spec
        t0 = time.perf_counter()
        outs = self.sess.run(None, self.feed)
        dt = time.perf_counter() - t0
        for name, k in zip(self.state_names, self.state_out):
            self.feed[name] = outs[k]
        return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="ONNX model A (e.g. the shipped one)")
    ap.add_argument("--b", required=True, help="ONNX model B (the candidate)")
    ap.add_argument("--hops", type=int, default=6000, help="hops timed per file")
    ap.add_argument("--blocks", type=int, default=10, help="blocks of hops the ratio's interval is taken over")
    ap.add_argument("--turn-hops", type=int, default=50, help="hops each file runs before the other's turn")
    ap.add_argument("--warmup", type=int, default=200, help="hops run per file before timing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.hops < 2 * args.blocks or args.blocks < 2 or args.turn_hops < 1:
        raise SystemExit("--hops must be at least twice --blocks, --blocks at least 2, --turn-hops at least 1")
    rng = np.random.default_rng(args.seed)
    a, b = Stream(args.a), Stream(args.b)
    # a speech-like level range; the GRUs' cost does not depend on the values
    frames = (rng.standard_normal((64, 1, 1, 481, 2)) * rng.uniform(0.01, 30, (64, 1, 1, 1, 1))).astype(np.float32)
    for t in range(args.warmup):
        a.call(frames[t % 64])
        b.call(frames[t % 64])
    # a turn's first hops find the other file's weights in the caches: not timed, unless
    # that is what is asked for (one-hop turns)
    skip = 0 if args.turn_hops == 1 else min(5, args.turn_hops // 10)
    times = {id(a): [], id(b): []}
    turn = 0
    while min(len(v) for v in times.values()) < args.hops:
        order = (a, b) if turn % 2 == 0 else (b, a)  # neither always runs first
        for s in order:
            for k in range(args.turn_hops):
                dt = s.call(frames[(turn + k) % 64])
                if k >= skip:
                    times[id(s)].append(dt)
        turn += 1
    ta, tb = (np.array(times[id(s)][: args.hops]) * 1e6 for s in (a, b))
    for name, path, x in (("A", args.a, ta), ("B", args.b, tb)):
        print(f"{name} {path}: p50 {np.percentile(x, 50):.1f} us, p99 {np.percentile(x, 99):.1f} us "
              f"over {args.hops} hops in turns of {args.turn_hops}")
    ratios = np.array([np.median(y) / np.median(x) for x, y in
                       zip(np.array_split(ta, args.blocks), np.array_split(tb, args.blocks))])
    half = 1.96 * ratios.std(ddof=1) / np.sqrt(len(ratios))
    print(f"B / A p50 per block: {ratios.mean():.3f} +- {half:.3f} (95 %, {args.blocks} blocks; "
          f"range {ratios.min():.3f}..{ratios.max():.3f})")


if __name__ == "__main__":
    main()
