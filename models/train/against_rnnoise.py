#!/usr/bin/env python3
"""Where RNNoise's PESQ-WB lead over our model sits, and whether the training losses can see
it (session 19). Both read the outputs evaluate.py left in cache/eval (out_denoised: the
model through `denoised clean`; out_rnnoise: RNNoise, aligned), so run evaluate.py first.

  python against_rnnoise.py splice
      our output with RNNoise's spliced in, one region at a time (the frames that hold
      speech, the pauses, five frequency ranges below 8 kHz; STFT frames of the model's own
      transform, overlap-added), and RNNoise's magnitudes under our phase: the PESQ-WB of
      each, averaged over the set. A region whose splice closes much of the gap holds it.
  python against_rnnoise.py loss-ranking [--systems noisy out_denoised out_rnnoise ...]
                                         [--critic runs/NAME/last.pt]
      for every pair of systems on the same item whose PESQ-WB differs by >= 0.05, whether
      each perceptual loss of train.py (perceptual_loss, perceptual_loss_p862) ranks the two
      as PESQ-WB does; over all pairs and over our model against RNNoise alone. A loss that
      cannot rank those two cannot teach the model what RNNoise does better. With --critic,
      also the learned critic (critic.py) saved in that run's checkpoint.
"""
import argparse
import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

import evaluate as ev
import train
import vae

RANGES_HZ = ((0, 300), (300, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
MIN_PESQ_DIFF = 0.05  # pairs closer than this are left out of the ranking (PESQ's own scatter)


def pesq_wb(ref, est):
    from pesq import pesq
    try:
        return pesq(16000, resample_poly(ref, 1, 3), resample_poly(est, 1, 3), "wb")
    except Exception:  # noqa: BLE001 - PESQ refuses some inputs (no utterance detected)
        return float("nan")


def _read(folder, name):
    x, _ = sf.read(ev.EVAL / folder / name, dtype="float32")
    return x


def _spec(x, win):
    return train.stft(torch.from_numpy(x)[None], win)


def _splice_item(name):
    win = vae.sqrt_hann()
    c, a, b = (_read(d, name) for d in ("clean", "out_denoised", "out_rnnoise"))
    S, A, B = (_spec(x, win) for x in (c, a, b))
    speech = train.vad_labels(S)[..., None].bool().expand_as(A)
    bin_hz = torch.arange(vae.BINS) * (vae.SR / vae.N_FFT)

    def synth(Y):
        y = train.istft(Y, win)[0].numpy()
        return np.pad(y, (0, max(0, len(c) - len(y))))[: len(c)]

    out = {"ours": pesq_wb(c, a), "RNNoise": pesq_wb(c, b), "ours, resynthesised": pesq_wb(c, synth(A)),
           "RNNoise in the speech frames": pesq_wb(c, synth(torch.where(speech, B, A))),
           "RNNoise in the pauses": pesq_wb(c, synth(torch.where(speech, A, B)))}
    for lo, hi in RANGES_HZ:
        band = ((bin_hz >= lo) & (bin_hz < hi))[None, None, :].expand_as(A)
        out[f"RNNoise at {lo}-{hi} Hz"] = pesq_wb(c, synth(torch.where(band, B, A)))
    out["RNNoise's magnitudes, our phase"] = pesq_wb(c, synth(B.abs() * torch.exp(1j * torch.angle(A))))
    return out


def splice(jobs):
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    with ProcessPoolExecutor(jobs) as ex:
        rows = list(ex.map(_splice_item, [m["file"] for m in meta]))
    print(f"PESQ-WB, mean over {len(rows)} items of {ev.EVAL}:")
    for k in rows[0]:
        print(f"  {k:34s} {np.nanmean([r[k] for r in rows]):.3f}")


def _load_critic(path):
    import critic as critic_mod
    c = critic_mod.PesqCritic(train.PESQ_TOP_BAND)
    c.load_state_dict(torch.load(path, map_location="cpu")["critic"]["critic"])
    return c.eval()


def _rank_item(args):
    """-> {system: (PESQ-WB, then each loss, lower = better)}"""
    name, systems, critic_path = args
    win = vae.sqrt_hann()
    bands = torch.from_numpy(vae.band_matrix())
    critic = _load_critic(critic_path) if critic_path else None
    c = _read("clean", name)
    S = _spec(c, win)
    rows = {}
    for s in systems:
        e = _read(s, name)
        Y = _spec(e, win)
        row = [pesq_wb(c, e), train.perceptual_loss(Y, S, bands, train.PESQ_TOP_BAND).item(),
               train.perceptual_loss_p862(Y, S, bands, train.PESQ_TOP_BAND).item()]
        if critic is not None:
            with torch.no_grad():  # the critic scores high for good output: its negative is a loss
                row.append(-critic(Y, S, bands[:, :train.PESQ_TOP_BAND]).item())
        rows[s] = tuple(row)
    return rows


def loss_ranking(systems, jobs, critic_path=None):
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    with ProcessPoolExecutor(jobs) as ex:
        items = list(ex.map(_rank_item, [(m["file"], systems, critic_path) for m in meta]))
    forms = ("perceptual_loss (pmsqe)", "perceptual_loss_p862") + (("the critic",) if critic_path else ())
    for label, only in (("all pairs of systems", None), ("our model against RNNoise", {"out_denoised", "out_rnnoise"})):
        agree, n = np.zeros(len(forms)), 0
        for rows in items:
            for a, b in itertools.combinations(systems, 2):
                if only is not None and {a, b} != only:
                    continue
                pa, pb = rows[a][0], rows[b][0]
                if not abs(pa - pb) >= MIN_PESQ_DIFF:  # also leaves out NaN
                    continue
                n += 1
                agree += [(pa > pb) == (rows[a][k + 1] < rows[b][k + 1]) for k in range(len(forms))]
        shares = ", ".join(f"{f} {x / max(n, 1):.3f}" for f, x in zip(forms, agree))
        print(f"{label}: {n} pairs whose PESQ-WB differs by >= {MIN_PESQ_DIFF}; the loss ranks them as PESQ-WB does: {shares}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("splice")
    sp.add_argument("--jobs", type=int, default=2)
    lr = sub.add_parser("loss-ranking")
    lr.add_argument("--systems", nargs="+", default=["noisy", "out_denoised", "out_rnnoise"])
    lr.add_argument("--jobs", type=int, default=2)
    lr.add_argument("--critic", default=None, help="a checkpoint of a run trained with --critic-weight")
    args = ap.parse_args()
    missing = [d for d in ("clean", "out_denoised", "out_rnnoise") if not (ev.EVAL / d).is_dir()]
    if missing:
        sys.exit(f"{ev.EVAL} lacks {', '.join(missing)}: run evaluate.py --systems noisy,rnnoise,denoised first")
    if args.cmd == "splice":
        splice(args.jobs)
    else:
        loss_ranking(args.systems, args.jobs, args.critic)


if __name__ == "__main__":
    main()
