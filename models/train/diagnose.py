#!/usr/bin/env python3
"""Two diagnostics on the cached evaluation set (cache/eval, built by evaluate.py).

  python diagnose.py clean-through --model ../denoiser.onnx
      the clean references themselves through the model (Python reference of the Rust
      STFT): does it damage speech when there is no noise at all?
  python diagnose.py band-levels [--systems out_denoised out_rnnoise]
      output / clean energy per frequency band in the frames that hold speech, items at
      >= 10 dB SNR, per noise family: where a system takes speech away.
  python diagnose.py oracle
      the best any model of our output type could do: the ideal per-bin gain
      min(1, |clean| / |noisy|) in our STFT, scored like evaluate.py; also with the gains
      pooled into 40 bands (the resolution of a band-gain model such as RNNoise's).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly, stft

import evaluate as ev

EDGES_HZ = [0, 150, 300, 600, 1200, 2400, 4000, 6000, 8000, 12000, 24000]


def clean_through(model):
    from pesq import pesq
    src, dst = ev.EVAL / "clean", Path("/tmp/denoised_diag_clean")
    ev.run_reference(src, dst, model, alpha=0.0)
    ps, ss, lv = [], [], []
    for f in sorted(src.glob("*.wav")):
        c, _ = sf.read(f)
        y, _ = sf.read(dst / f.name)
        if np.sum(c**2) < 1e-8:
            continue
        ps.append(pesq(16000, resample_poly(c, 1, 3), resample_poly(y, 1, 3), "wb"))
        ss.append(ev.si_sdr(y, c))
        lv.append(10 * np.log10(np.sum(y**2) / np.sum(c**2)))
    print(f"clean speech through the model: PESQ-WB {np.mean(ps):.2f}, SI-SDR {np.mean(ss):.1f} dB, "
          f"level {np.mean(lv):+.2f} dB (n={len(ps)})")


def band_levels(systems):
    meta = json.loads((ev.EVAL / "meta.json").read_text())

    def power(x):
        f, _, Z = stft(x, ev.SR, nperseg=960, noverlap=480)
        return f, np.abs(Z) ** 2

    for name in systems:
        acc = {}
        for it in meta:
            if it["snr_db"] < 10:
                continue
            c, _ = sf.read(ev.EVAL / "clean" / it["file"])
            y, _ = sf.read(ev.EVAL / name / it["file"])
            n = min(len(c), len(y))
            f, pc = power(c[:n])
            _, py = power(y[:n])
            e = 10 * np.log10(pc.sum(0) + 1e-12)
            speech = e > e.max() - 30
            row = []
            for lo, hi in zip(EDGES_HZ[:-1], EDGES_HZ[1:]):
                b = (f >= lo) & (f < hi)
                row.append(10 * np.log10((py[b][:, speech].sum() + 1e-12) / (pc[b][:, speech].sum() + 1e-12)))
            acc.setdefault(it["noise"], []).append(row)
        print(f"{name}: output / clean energy (dB) in speech frames, SNR >= 10 dB, bands (Hz) {EDGES_HZ}")
        for k, v in acc.items():
            print(f"  {k:8s}", " ".join(f"{x:6.1f}" for x in np.mean(v, 0)))


def oracle():
    from vae import band_matrix
    bands = band_matrix()  # [bins, 40], columns sum to 1

    meta = json.loads((ev.EVAL / "meta.json").read_text())
    rows = {"per-bin ideal gain": [], "40-band ideal gain": []}
    for it in meta:
        c, _ = sf.read(ev.EVAL / "clean" / it["file"])
        x, _ = sf.read(ev.EVAL / "noisy" / it["file"])
        X, S = ev.analyse(x), ev.analyse(c)
        g = np.minimum(1.0, np.abs(S) / (np.abs(X) + 1e-12))
        # band gains: the ideal gain of each band's energy, spread back with the same triangles
        eb_s, eb_x = (np.abs(S) ** 2) @ bands, (np.abs(X) ** 2) @ bands
        gb = np.minimum(1.0, np.sqrt(eb_s / (eb_x + 1e-12)))
        g_band = gb @ (bands / (bands.sum(axis=1, keepdims=True) + 1e-12)).T
        for name, gain in (("per-bin ideal gain", g), ("40-band ideal gain", g_band)):
            rows[name].append(ev.metrics(ev.synthesise(X * gain, len(x)), c, x))
    for name, r in rows.items():
        ons = [o for m in r for o in m["onsets"]]
        print(f"{name}: PESQ-WB {np.nanmean([m['pesq_wb'] for m in r]):.2f}, STOI {np.mean([m['stoi'] for m in r]):.3f}, "
              f"SI-SDR {np.mean([m['si_sdr'] for m in r]):.1f} dB, onset loss {np.mean(ons):.1f} dB (n={len(r)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("clean-through")
    a.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    b = sub.add_parser("band-levels")
    b.add_argument("--systems", nargs="+", default=["out_denoised", "out_rnnoise"])
    sub.add_parser("oracle")
    args = ap.parse_args()
    if args.cmd == "clean-through":
        clean_through(args.model)
    elif args.cmd == "oracle":
        oracle()
    else:
        band_levels(args.systems)


if __name__ == "__main__":
    sys.exit(main())
