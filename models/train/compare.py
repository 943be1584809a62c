#!/usr/bin/env python3
"""Is model B really better than model A? Paired comparison on the evaluation set.

  python compare.py --a ../denoiser.onnx --b runs/NEW/model.onnx
  python compare.py --a ../denoiser.onnx --b ../denoiser.onnx --b-args=--pitch-filter   # a setting
  python compare.py --a ../denoiser.onnx --b runs/NEW/model.onnx --draw 2025            # fresh items

Both models run through `denoised clean` (as evaluate.py's `denoised` system) into their
own folders; for every item the difference B - A of each metric is taken, and the mean
difference is printed with its 95 % confidence interval (normal approximation over the
items) and the share of items where B is better. On 80 items the spread of PESQ-WB
between two similar models is about +-0.04 at 95 %: a difference inside the interval is
not a reason to ship a new model (model card, "Choosing between runs").
"""
import argparse
import json
from pathlib import Path

import numpy as np

import evaluate as E

KEYS = [("pesq_wb", "PESQ-WB", +1), ("stoi", "STOI", +1), ("si_sdr", "SI-SDR dB", +1),
        ("onset", "onset loss dB", -1), ("nr_db", "noise reduction dB", +1)]


BAND_KEYS = [(f"nr_{lo}_{hi}", f"  {lo}-{hi} Hz", +1) for lo, hi in zip(E.NR_BANDS_HZ[:-1], E.NR_BANDS_HZ[1:])]


def item_metrics(out_dir, meta, eval_dir):
    """evaluate.py's per-item metrics, with each item's mean onset loss as one number, and
    the noise reduction in the pauses by band (evaluate.band_noise_reduction_db)."""
    rows = E.score_dir(out_dir, meta, eval_dir)
    for r, m in zip(rows, meta):
        r["onset"] = float(np.mean(r["onsets"])) if r["onsets"] else float("nan")
        ref = E.sf.read(eval_dir / "clean" / m["file"], dtype="float32")[0]
        est = E.sf.read(out_dir / m["file"], dtype="float32")[0]
        noisy = E.sf.read(eval_dir / "noisy" / m["file"], dtype="float32")[0]
        n = min(len(ref), len(est), len(noisy))
        for (key, _, _), v in zip(BAND_KEYS, E.band_noise_reduction_db(est[:n], ref[:n], noisy[:n])):
            r[key] = v
    return rows


def paired(a_rows, b_rows, subset, keys=KEYS):
    lines = []
    for key, label, sign in keys:
        d = np.array([b[key] - a[key] for a, b, keep in zip(a_rows, b_rows, subset) if keep], dtype=float)
        d = d[~np.isnan(d)]
        if len(d) < 2:
            continue
        ci = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
        better = np.mean(sign * d > 0) * 100
        verdict = "B better" if sign * d.mean() > ci else "A better" if -sign * d.mean() > ci else "no clear difference"
        lines.append(f"  {label:20s} B - A {d.mean():+.3f} +- {ci:.3f} (95 %), B better on {better:.0f} % of {len(d)}: {verdict}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="ONNX model A (e.g. the shipped one)")
    ap.add_argument("--b", required=True, help="ONNX model B (the candidate)")
    ap.add_argument("--a-args", default="", help="extra arguments for A's `denoised clean`")
    ap.add_argument("--b-args", default="", help="extra arguments for B's `denoised clean`")
    ap.add_argument("--split", choices=["val", "train", "independent"], default="val",
                    help="which of evaluate.py's sets (evaluate.py --split builds it)")
    ap.add_argument("--draw", type=int, default=E.STANDING_DRAW,
                    help="a fresh draw of the split (evaluate.py --draw SEED --systems noisy builds it): "
                         "the standing set chose the shipped model, so a new one's lead over it is "
                         "confirmed on items that took no part in that choice")
    args = ap.parse_args()
    eval_dir = E.set_dir(args.split, draw=args.draw)
    meta_file = eval_dir / "meta.json"
    if not meta_file.exists():
        raise SystemExit(f"{meta_file} is missing: run evaluate.py first with the same --split and --draw (it builds the set)")
    meta = json.loads(meta_file.read_text())
    rows = {}
    for name, model, extra in (("a", args.a, args.a_args), ("b", args.b, args.b_args)):
        out = eval_dir / f"out_compare_{name}"
        E.run_denoised(eval_dir / "noisy", out, ["--model", str(Path(model).resolve()), *extra.split()])
        rows[name] = item_metrics(out, meta, eval_dir)
    print(f"A = {args.a} {args.a_args}\nB = {args.b} {args.b_args}")
    print("overall:")
    print("\n".join(paired(rows["a"], rows["b"], [True] * len(meta))))
    print("noise reduction dB in the pauses, by band:")
    print("\n".join(paired(rows["a"], rows["b"], [True] * len(meta), BAND_KEYS)))
    print("input SNR 0 dB:")
    print("\n".join(paired(rows["a"], rows["b"], [m["snr_db"] == 0 for m in meta])))
    # one line per input SNR: where along the SNR axis a difference in PESQ-WB sits
    print("PESQ-WB by input SNR:")
    for snr in sorted({m["snr_db"] for m in meta}):
        key = [("pesq_wb", f"{snr:+3d} dB SNR", +1)]
        print("\n".join(paired(rows["a"], rows["b"], [m["snr_db"] == snr for m in meta], key)))


if __name__ == "__main__":
    main()
