#!/usr/bin/env python3
"""Diagnostics on the cached evaluation set (cache/eval, built by evaluate.py).

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
  python diagnose.py gain-variants --model ../denoiser.onnx
      the model's own gains, then changed after the fact and scored: pooled into the 40
      bands (is there per-bin detail in them?), smoothed over time, gated by the speech
      probability (more suppression where the model hears no speech) or floored by it (less
      where it hears speech), after RNNoise's pitch filter, and with the model run on the
      input 15 dB quieter or louder (does its level matter?).
  python diagnose.py timeline --model ../denoiser.onnx --item 053.wav --band-hz 700 2300
      one item over time in one frequency range: clean, noisy, our output and RNNoise's.
  python diagnose.py speech-errors --model ../denoiser.onnx
      where the model loses against the ideal 40-band gains: the ideal gains spliced in
      only where the clean reference holds speech, or only in its pauses, and within the
      speech frames only the speech-dominated or only the noise-dominated bands brought to
      the ideal level (the speech the model cuts against the noise it leaves); then, in the
      bands (below 8 kHz) that speech dominates (ideal band gain >= -3 dB), how far the
      model's band gain falls below the ideal one, weighted by the speech energy there, and
      the share of that energy taken away by more than 6 dB, by noise family, input SNR and
      time since the word's onset.
  python diagnose.py deep-filter --model runs/NAME/model.onnx
      a deep-filter model (train.py --deep-filter) scored with and without its taps, the
      mean tap magnitude per delay, and the taps' share of the output in the low bins.
  python diagnose.py pitch-corr --model ../denoiser.onnx
      how much RNNoise's per-band pitch correlation (the noisy frame against the window one
      pitch period earlier, the input its network gets and ours does not) tells about
      which bands speech dominates, beyond the model's own band gains and beyond the
      frame-local inputs (band level, flatness, level above the noise floor): the area
      under the ROC curve of small logistic fits, on half of the items, scored on the rest.
  python diagnose.py score /tmp/once /tmp/twice [--worst 14]
      folders of outputs of the set's noisy items (e.g. `denoised clean cache/eval/noisy -o
      /tmp/once` with some option, or run twice) scored like evaluate.py beside RNNoise; with
      --worst N also the N items where the first folder trails RNNoise most.
  python diagnose.py onset-profile cache/eval/out_compare_a cache/eval/out_compare_b
      where inside the word onsets the energy goes: at every onset of evaluate.py's onset
      loss (the first 10 ms frame within 30 dB of the item's loudest after >= 100 ms
      below), output / clean energy of each of the 5 frames it measures and of the 3
      before, summed over the set's onsets, in dB, beside RNNoise; then the spread of the
      per-onset losses (whose mean is the onset loss) and that mean by how loud the onset
      is against the item's loudest frame.
  python diagnose.py by-voice --model ../denoiser.onnx
      PESQ-WB and STOI of the noisy input, the model (through `denoised clean`) and RNNoise
      per held-out voice: which voice each item's speech came from is found by matching its
      energy envelope against the validation split's speech (see voice_of_items).
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly, stft

import evaluate as ev

EDGES_HZ = [0, 150, 300, 600, 1200, 2400, 4000, 6000, 8000, 12000, 24000]
LIMIT_FLOOR = 10 ** (-30 / 20)  # denoised's default attenuation limit, as a gain


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


def _gate(prob, p_lo=0.2, p_hi=0.5, hold_frames=10, depth_db=10.0):
    """Per-frame extra gain from the speech probability: 1 above p_hi, 10^(-depth/20) below
    p_lo; opens at once, holds 100 ms, then closes over 10 frames (a NoiseTorch-like gate
    with soft edges, so word onsets are not cut)."""
    s = np.clip((prob - p_lo) / (p_hi - p_lo), 0.0, 1.0)
    out, level, hold = np.empty_like(s), 0.0, 0
    for t, v in enumerate(s):
        if v >= level:
            level, hold = v, hold_frames
        elif hold > 0:
            hold -= 1
        else:
            level = max(v, level - 0.1)
        out[t] = level
    floor = 10 ** (-depth_db / 20)
    return floor + (1 - floor) * out


def _pitch_frames(x, lag_min=96, lag_max=768):
    """For every frame of analyse(x): the spectrum of the same window one pitch period
    earlier (zeros before the start). The period is the lag of 2-16 ms (500-62.5 Hz) with the
    highest normalised correlation between the frame and the signal that lag before it:
    causal, like RNNoise's pitch search, without its downsampling and octave checks."""
    from vae import HOP, N_FFT, sqrt_hann
    win = sqrt_hann().numpy()
    n_hops = -(-(len(x) + N_FFT - HOP) // HOP)
    front = lag_max + N_FFT - HOP  # frame t of analyse() starts at xp[lag_max + t * HOP]
    xp = np.concatenate([np.zeros(front, np.float32), x, np.zeros(n_hops * HOP - len(x), np.float32)])
    lags = np.arange(lag_min, lag_max + 1)
    fft_n = 1 << int(np.ceil(np.log2(lag_max + 2 * N_FFT)))
    out = np.empty((n_hops, N_FFT // 2 + 1), np.complex128)
    for t in range(n_hops):
        start = lag_max + t * HOP
        cur, past = xp[start:start + N_FFT], xp[start - lag_max:start + N_FFT]
        corr = np.fft.irfft(np.fft.rfft(past, fft_n) * np.conj(np.fft.rfft(cur, fft_n)), fft_n)
        energy = np.concatenate([[0.0], np.cumsum(past.astype(np.float64) ** 2)])
        j = lag_max - lags  # past[j:j+N_FFT] is the window `lag` samples back
        score = corr[j] / np.sqrt((cur @ cur) * (energy[j + N_FFT] - energy[j]) + 1e-18)
        lag = lags[np.argmax(score)]
        out[t] = np.fft.rfft(xp[start - lag:start - lag + N_FFT] * win)
    return out


def _pitch_filtered(X, P, g, bands, spread, max_hz=None, strength=1.0):
    """RNNoise's pitch filter as its paper describes it, on our bands: X + r P per band,
    r from the band's pitch correlation and the model's band gain (full where the correlation
    exceeds the gain), then each band scaled back to its own energy; the gains are applied
    after it."""
    ex, ep = (np.abs(X) ** 2) @ bands + 1e-12, (np.abs(P) ** 2) @ bands + 1e-12
    corr = np.clip(np.real(X * np.conj(P)) @ bands / np.sqrt(ex * ep), 0.0, 0.999)
    gb = np.clip(_band_gains(g, X, bands), 1e-3, 0.999)
    r2 = np.where(corr > gb, 1.0, strength * corr**2 * (1 - gb**2) / (1e-3 + gb**2 * (1 - corr**2)))
    if max_hz is not None:  # the filter only in the bands centred below max_hz
        from vae import band_centres_hz
        r2 = r2 * (band_centres_hz(bands) < max_hz)[None, :]
    Xf = X + (np.sqrt(np.clip(r2, 0.0, 1.0) * ex / ep) @ spread) * P
    return Xf * (np.sqrt(ex / ((np.abs(Xf) ** 2) @ bands + 1e-12)) @ spread)


def gain_variants(model, only=None):
    from vae import band_matrix
    bands = band_matrix()
    spread = bands.T / (bands.T.sum(axis=0, keepdims=True) + 1e-12)  # [40, bins]

    def smoothed(g, a=0.3):  # one-pole over time, causal
        out, prev = np.empty_like(g), g[0]
        for t in range(len(g)):
            prev = a * prev + (1 - a) * g[t]
            out[t] = prev
        return out

    def speech_floor(g, p, db):  # at least -db where the model hears speech (p 0.5 -> 0.9: 0 -> full)
        return np.maximum(g, np.clip((p[:, None] - 0.5) / 0.4, 0.0, 1.0) * 10 ** (db / 20))

    def post_filter(g, beta):  # PercepNet's / DeepFilterNet's: low gains pushed lower, g = 1 kept
        w = g * np.sin(np.pi / 2 * g)
        return (1 + beta) * g / (1 + beta * (g / np.maximum(w, 1e-12)) ** 2)

    # each variant: (gains, spectrum) -> the spectrum to resynthesise
    variants = {
        "post-filter beta 0.02": lambda g, X, p, P: X * post_filter(g, 0.02),
        "post-filter beta 0.05": lambda g, X, p, P: X * post_filter(g, 0.05),
        "post-filter beta 0.1": lambda g, X, p, P: X * post_filter(g, 0.1),
        "gains ** 1.5": lambda g, X, p, P: X * g**1.5,
        "plain": lambda g, X, p, P: X * g,
        "40-band pooled": lambda g, X, p, P: X * (_band_gains(g, X, bands) @ spread),
        "smoothed over time (a=0.3)": lambda g, X, p, P: X * smoothed(g),
        "speech-probability gate (-10 dB)": lambda g, X, p, P: X * g * _gate(p)[:, None],
        "speech-probability floor -6 dB": lambda g, X, p, P: X * speech_floor(g, p, -6),
        "speech-probability floor -15 dB": lambda g, X, p, P: X * speech_floor(g, p, -15),
        "RNNoise-style pitch filter": lambda g, X, p, P: _pitch_filtered(X, P, g, bands, spread) * g,
        "pitch filter below 4 kHz": lambda g, X, p, P: _pitch_filtered(X, P, g, bands, spread, max_hz=4000) * g,
        "pitch filter below 8 kHz": lambda g, X, p, P: _pitch_filtered(X, P, g, bands, spread, max_hz=8000) * g,
        "pitch filter, r^2 x 3": lambda g, X, p, P: _pitch_filtered(X, P, g, bands, spread, strength=3.0) * g,
        "input 15 dB quieter": None, "input 15 dB louder": None,  # the model run on a scaled input
    }
    if only:  # variants whose name holds one of these words, and "plain"
        variants = {k: v for k, v in variants.items() if k == "plain" or any(w in k for w in only)}
    sess = ev.gains_session(model)
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    floor = LIMIT_FLOOR
    rows = {k: [] for k in variants}

    def gains_of(X):
        out = ev.model_outputs(sess, np.stack([X.real, X.imag], -1)[None])
        return np.clip(out["gains"][0], floor, 1.0), out["speech_prob"][0]

    for it in meta:
        c, _ = sf.read(ev.EVAL / "clean" / it["file"], dtype="float32")
        x, _ = sf.read(ev.EVAL / "noisy" / it["file"], dtype="float32")
        X = ev.analyse(x)
        g0, p = gains_of(X)
        P = _pitch_frames(x)
        for name, fn in variants.items():  # after the limit: the gate may go below it
            if fn is None:
                k = 10 ** ((15 if "louder" in name else -15) / 20)
                Y = X * gains_of(X * k)[0]  # gains from the scaled input, on the item as it is
            else:
                Y = fn(g0, X, p, P)
            rows[name].append(ev.metrics(ev.synthesise(Y, len(x)).astype(np.float32), c, x))
    for name, r in rows.items():
        s = ev.summarize({name: r}, meta)[name]["overall"]
        print(f"{name:34s} PESQ-WB {s['pesq_wb']:.2f}, STOI {s['stoi']:.3f}, SI-SDR {s['si_sdr']:.1f} dB, "
              f"onset loss {s['onset_loss_db']:.1f} dB, noise reduction {s['noise_reduction_db']:.1f} dB")


def _band_gains(g, X, bands):
    """[T, 40] the band gain a per-bin gain g applies to X's energy in each band."""
    p = np.abs(X) ** 2
    return np.sqrt(((g**2 * p) @ bands) / (p @ bands + 1e-12))


def speech_errors(model, outputs=None, wrong_db=-6.0, speech_dominated_db=-3.0):
    """outputs: a folder of another system's outputs (e.g. cache/eval/out_rnnoise): its band
    gains are then read back from its output (output / input energy per band, at most 1)
    and the spliced rows are left out."""
    import collections

    from vae import band_centres_hz, band_matrix
    bands = band_matrix()
    spread = bands.T / (bands.T.sum(axis=0, keepdims=True) + 1e-12)  # [40, bins]
    centre_hz = band_centres_hz(bands)
    top_band = int(np.sum(centre_hz < 8000))  # PESQ-WB's and STOI's range
    groups = {"band 0-500 Hz": centre_hz[:top_band] < 500,
              "band 500-2000 Hz": (centre_hz[:top_band] >= 500) & (centre_hz[:top_band] < 2000),
              "band 2000-8000 Hz": centre_hz[:top_band] >= 2000}
    sess = None if outputs else ev.gains_session(model)
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    floor = LIMIT_FLOOR  # on every variant, the ideal gains too (so not oracle()'s 2.57)
    names = ("model", "ideal band gains in speech frames", "ideal band gains in pauses", "ideal band gains everywhere",
             "speech frames, speech-dominated bands at the ideal level", "speech frames, noise-dominated bands at the ideal level")
    rows = {k: [] for k in (names[:1] if outputs else names)}
    errs, weights, excess = [], [], []
    wrong, total = collections.defaultdict(float), collections.defaultdict(float)
    for it in meta:
        c, _ = sf.read(ev.EVAL / "clean" / it["file"], dtype="float32")
        x, _ = sf.read(ev.EVAL / "noisy" / it["file"], dtype="float32")
        X, S = ev.analyse(x), ev.analyse(c)
        ideal = np.clip(np.abs(S) / (np.abs(X) + 1e-12), floor, 1.0)
        ib = _band_gains(ideal, X, bands)
        if outputs:
            y, _ = sf.read(Path(outputs) / it["file"], dtype="float32")
            Y = ev.analyse(y[:len(x)])
            # a gate's digital silence: counted as -80 dB, so the mean stays finite
            gb = np.sqrt(np.clip(((np.abs(Y) ** 2) @ bands) / ((np.abs(X) ** 2) @ bands + 1e-12), 1e-8, 1.0))
            g = Y / np.where(np.abs(X) > 0, X, 1.0)  # only for the "model" row below
        else:
            g = np.clip(ev.model_outputs(sess, np.stack([X.real, X.imag], -1)[None])["gains"][0], floor, 1.0)
            gb = _band_gains(g, X, bands)
        e = (np.abs(S) ** 2).sum(1)
        speech = e > e.max() * 1e-4  # within 40 dB of the item's loudest frame
        ideal_bins = np.clip(ib @ spread, floor, 1.0)
        # the two sides of the speech frames apart: the model's per-bin gains rescaled so that
        # its band levels equal the ideal ones only in the bands where speech dominates (the
        # speech it cuts), or only in the others (the noise it leaves)
        dom_all = 20 * np.log10(ib) >= speech_dominated_db
        def at_ideal(where):
            r = np.where(speech[:, None] & where, ib / np.maximum(gb, 1e-6), 1.0)
            return np.clip(g * (r @ spread), floor, 1.0)
        variants = (g,) if outputs else (g, np.where(speech[:, None], ideal_bins, g), np.where(speech[:, None], g, ideal_bins),
                                         ideal_bins, at_ideal(dom_all), at_ideal(~dom_all))
        for name, gain in zip(rows, variants):
            rows[name].append(ev.metrics(ev.synthesise(X * gain, len(x)).astype(np.float32), c, x))
        # band errors where speech dominates (below 8 kHz)
        w = ((np.abs(S) ** 2) @ bands)[:, :top_band]
        w = w / w.sum()
        err = 20 * np.log10(gb[:, :top_band] / ib[:, :top_band])
        dom = 20 * np.log10(ib[:, :top_band]) >= speech_dominated_db
        errs.append(err[dom]), weights.append(w[dom])
        # the other side: noise left inside the words, where the noise dominates a band
        # (ideal gain below -10 dB), weighted by the noisy energy there
        noisy_dom = speech[:, None] & (20 * np.log10(ib[:, :top_band]) < -10)
        ex = ((np.abs(X) ** 2) @ bands)[:, :top_band]
        excess.append((np.sum(err[noisy_dom] * ex[noisy_dom]), np.sum(ex[noisy_dom])))
        active, age = e > e.max() * 1e-3, 0
        for t in range(len(e)):
            age = age + 1 if active[t] else 0
            since = "pause" if age == 0 else "1-5 frames" if age <= 5 else "6-20 frames" if age <= 20 else "> 20 frames"
            for key in (f"noise {it['noise']}", f"SNR {it['snr_db']:+d} dB", f"since onset {since}"):
                wrong[key] += w[t][dom[t] & (err[t] < wrong_db)].sum()
                total[key] += w[t][dom[t]].sum()
        for key, in_group in groups.items():
            wrong[key] += w[:, in_group][dom[:, in_group] & (err[:, in_group] < wrong_db)].sum()
            total[key] += w[:, in_group][dom[:, in_group]].sum()
    for name, r in rows.items():
        s = ev.summarize({name: r}, meta)[name]["overall"]
        print(f"{name:34s} PESQ-WB {s['pesq_wb']:.2f}, STOI {s['stoi']:.3f}, SI-SDR {s['si_sdr']:.1f} dB, "
              f"onset loss {s['onset_loss_db']:.1f} dB, noise reduction {s['noise_reduction_db']:.1f} dB")
    d, w = np.concatenate(errs), np.concatenate(weights)
    order = np.argsort(d)
    cum = np.cumsum(w[order]) / w.sum()
    pct = {q: d[order][np.searchsorted(cum, q)] for q in (0.05, 0.1, 0.25, 0.5)}
    print(f"model band gain - ideal band gain where speech dominates (ideal >= {speech_dominated_db:g} dB, bands below "
          f"8 kHz), weighted by speech energy: mean {np.sum(d * w) / w.sum():.2f} dB; "
          + ", ".join(f"{int(q * 100)}th percentile {v:.1f} dB" for q, v in pct.items()))
    ex_sum = np.sum(excess, axis=0)
    print(f"model band gain - ideal band gain where the noise dominates in speech frames (ideal < -10 dB), weighted "
          f"by the noisy energy: mean {ex_sum[0] / ex_sum[1]:+.2f} dB (positive: noise left inside the words)")
    print(f"share of that speech energy taken away by more than {-wrong_db:g} dB beyond the ideal gain:")
    def order(key):  # by group, then by number where the key has one
        num = re.search(r"[+-]?\d+", key.split(" ", 1)[1])
        return key.split()[0], float(num.group()) if num else -1.0, key
    for key in sorted(total, key=order):
        if total[key] > 0:
            print(f"  {key:26s} {wrong[key] / total[key]:.3f}")


def timeline(model, item, lo_hz, hi_hz, step_frames=5):
    """One item, every step_frames hops: the energy (dB) of the clean speech, the noisy input,
    our output and RNNoise's (cache/eval/out_rnnoise) between lo_hz and hi_hz, with our mean
    gain there and our speech probability."""
    sess = ev.gains_session(model)
    c, _ = sf.read(ev.EVAL / "clean" / item, dtype="float32")
    x, _ = sf.read(ev.EVAL / "noisy" / item, dtype="float32")
    rn, _ = sf.read(ev.EVAL / "out_rnnoise" / item, dtype="float32")
    X = ev.analyse(x)
    out = ev.model_outputs(sess, np.stack([X.real, X.imag], -1)[None])
    g = np.clip(out["gains"][0], LIMIT_FLOOR, 1.0)
    y = ev.synthesise(X * g, len(x))
    band = slice(int(lo_hz / 50), int(hi_hz / 50))  # 50 Hz per bin
    level = lambda s: 10 * np.log10((np.abs(ev.analyse(s)[:, band]) ** 2).sum(1) + 1e-9)  # noqa: E731
    lc, lx, ly, lr = level(c), level(x), level(y), level(rn[:len(x)])
    print(f"{item}, {lo_hz}-{hi_hz} Hz: energy in dB (arbitrary reference)")
    for t in range(0, len(lc), step_frames):
        print(f"{t * 10:6d} ms  clean {lc[t]:6.1f}  noisy {lx[t]:6.1f}  ours {ly[t]:6.1f}  RNNoise {lr[t]:6.1f}  "
              f"our mean gain {20 * np.log10(g[t, band].mean()):6.1f} dB  speech prob {out['speech_prob'][0][t]:.2f}")


def _deep_filter_np(X, df):
    """vae.apply_deep_filter in numpy: X [T, BINS] complex, df [T, DF_BINS, DF_ORDER, 2]."""
    from vae import DF_BINS, DF_ORDER
    c = df[..., 0] + 1j * df[..., 1]
    out = np.zeros((X.shape[0], DF_BINS), np.complex64)
    for i in range(DF_ORDER):
        out[i:] += c[i:, :, i] * X[: X.shape[0] - i, :DF_BINS]
    return out


def deep_filter(model, against=None):
    """How much a deep-filter model's taps do: the model's output scored with and without
    them (gains alone; no pitch filter either way), the mean tap magnitude per delay, and
    the taps' output energy relative to the gains' output in the filtered bins, in frames
    with and without speech. against: a folder of `denoised clean --pitch-filter=false`
    outputs of the same model on cache/eval/noisy; the worst item's SNR of this Python
    reference against it is printed (does src/dsp/deep_filter.rs do what training does?)."""
    import onnxruntime as ort
    from vae import DF_BINS
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    if not any(o.name == "df_coefs" for o in sess.get_outputs()):
        sys.exit(f"{model}: no deep-filter taps (df_coefs)")
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    rows = {"gains and taps": [], "gains alone": []}
    taps, ratio, agree = [], {True: [], False: []}, []
    for it in meta:
        c, _ = sf.read(ev.EVAL / "clean" / it["file"], dtype="float32")
        x, _ = sf.read(ev.EVAL / "noisy" / it["file"], dtype="float32")
        X = ev.analyse(x)
        out = ev.model_outputs(sess, np.stack([X.real, X.imag], -1)[None])
        g = np.clip(out["gains"][0], LIMIT_FLOOR, 1.0)
        G = X * g
        D = g[:, :DF_BINS] * _deep_filter_np(X, out["df_coefs"][0])  # the taps' output, after the gains
        Y = G.copy()
        Y[:, :DF_BINS] += D
        low = np.abs(X[:, :DF_BINS])  # the attenuation limit, as denoised holds it
        lvl = np.abs(Y[:, :DF_BINS])
        Y[:, :DF_BINS] *= np.where(lvl < LIMIT_FLOOR * low, LIMIT_FLOOR * low / np.maximum(lvl, 1e-12), 1.0)
        y = ev.synthesise(Y, len(x)).astype(np.float32)
        rows["gains and taps"].append(ev.metrics(y, c, x))
        if against:
            r, _ = sf.read(Path(against) / it["file"], dtype="float32")
            agree.append(10 * np.log10((y ** 2).sum() / ((y - r) ** 2).sum() + 1e-20))
        rows["gains alone"].append(ev.metrics(ev.synthesise(G, len(x)).astype(np.float32), c, x))
        taps.append(np.sqrt((out["df_coefs"][0] ** 2).sum(-1)).mean(axis=(0, 1)))
        C = ev.analyse(c)
        e = (np.abs(C) ** 2).sum(-1)
        speech = e > max(e.max() * 1e-4, 1e-12)  # frames within 40 dB of the item's peak
        for flag in (True, False):
            if (speech == flag).any():
                num = (np.abs(D[speech == flag]) ** 2).sum()
                den = (np.abs(G[speech == flag, :DF_BINS]) ** 2).sum() + 1e-12
                ratio[flag].append(10 * np.log10(num / den + 1e-12))
    for name, r in rows.items():
        s = ev.summarize({name: r}, meta)[name]["overall"]
        print(f"{name:16s} PESQ-WB {s['pesq_wb']:.3f}, STOI {s['stoi']:.3f}, SI-SDR {s['si_sdr']:.2f} dB, "
              f"onset loss {s['onset_loss_db']:.2f} dB, noise reduction {s['noise_reduction_db']:.2f} dB")
    print("mean |tap| by delay (frames 0..):", " ".join(f"{v:.4f}" for v in np.mean(taps, axis=0)))
    for flag, name in ((True, "speech frames"), (False, "frames without speech")):
        if ratio[flag]:
            print(f"taps' output / gains' output below {DF_BINS * 50} Hz, {name}: {np.mean(ratio[flag]):.1f} dB (mean over items)")
    if agree:
        print(f"this reference against {against}: SNR {min(agree):.1f} dB on the worst item, {np.median(agree):.1f} dB median")


def _auc(score, label):
    """Area under the ROC curve (the rank statistic; ties are rare with float scores)."""
    order = np.argsort(score)
    rank = np.empty(len(score))
    rank[order] = np.arange(len(score))
    n1 = label.sum()
    n0 = len(label) - n1
    return float((rank[label == 1].sum() - n1 * (n1 - 1) / 2) / (n1 * n0))


def _logistic_auc(f_fit, y_fit, f_test, y_test):
    """AUC on the test rows of a logistic fit with squares and pairwise products of the
    standardised columns (so a non-monotone use of a feature is allowed)."""
    import torch

    def expand(f):
        z = (f - mu) / sd
        pairs = [z[:, i:i + 1] * z[:, j:j + 1] for i in range(z.shape[1]) for j in range(i + 1, z.shape[1])]
        return np.concatenate([z, z**2] + pairs, axis=1)
    mu, sd = f_fit.mean(0), f_fit.std(0) + 1e-6
    a_fit = expand(f_fit)
    m2, s2 = a_fit.mean(0), a_fit.std(0) + 1e-6
    a = torch.tensor((a_fit - m2) / s2, dtype=torch.float32)
    y = torch.tensor(y_fit, dtype=torch.float32)
    w = torch.zeros(a.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + b, y)
        loss.backward()
        return loss
    opt.step(closure)
    test = torch.tensor((expand(f_test) - m2) / s2, dtype=torch.float32)
    return _auc((test @ w + b).detach().numpy(), y_test)


def pitch_corr(model):
    """See the module docstring. Label: the band's clean energy exceeds its noise energy, in
    frames where the clean reference is within 40 dB of its peak; bands below 8 kHz."""
    import torch
    from vae import N_BANDS, NOISE_WIN, band_centres_hz, band_matrix, noise_floor_snr
    bands = band_matrix()
    centres = band_centres_hz(bands)
    nb = int((centres < 8000).sum())
    sess = ev.gains_session(model)
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    feats, gains, labels = [], [], []
    for it in meta:
        c, _ = sf.read(ev.EVAL / "clean" / it["file"], dtype="float32")
        x, _ = sf.read(ev.EVAL / "noisy" / it["file"], dtype="float32")
        X, S = ev.analyse(x), ev.analyse(c)
        P = _pitch_frames(x)
        px = np.abs(X) ** 2
        ex, ep = px @ bands + 1e-12, (np.abs(P) ** 2) @ bands + 1e-12
        es, en = (np.abs(S) ** 2) @ bands, (np.abs(X - S) ** 2) @ bands + 1e-12
        corr = np.clip(np.real(X * np.conj(P)) @ bands / np.sqrt(ex * ep), -1.0, 1.0)
        flat = np.log(px + 1e-9) @ bands - np.log(ex + 1e-9)
        level = np.log10(ex)
        above_floor = noise_floor_snr(torch.from_numpy(level).float()[None],  # the model's own tracker
                                      torch.zeros(1, N_BANDS, NOISE_WIN - 1))[0][0].numpy()
        g = ev.model_outputs(sess, np.stack([X.real, X.imag], -1)[None])["gains"][0]
        s_db = 10 * np.log10(es.sum(1) + 1e-12)
        act = s_db > s_db.max() - 40
        feats.append(np.stack([level, flat, above_floor, corr], -1)[act][:, :nb])
        gains.append(_band_gains(np.clip(g, LIMIT_FLOOR, 1.0), X, bands)[act][:, :nb])
        labels.append((es > en)[act][:, :nb].astype(np.float32))
    fit = [i % 2 == 0 for i in range(len(meta))]
    groups = {"below 1 kHz": centres[:nb] < 1000, "1-4 kHz": (centres[:nb] >= 1000) & (centres[:nb] < 4000),
              "4-8 kHz": centres[:nb] >= 4000}
    print("AUC of 'speech dominates the band' (fit on the even items, scored on the odd ones)")
    for name, sel in groups.items():
        def rows(cols, want_fit):
            f = [np.concatenate([feats[i][..., cols], np.log(gains[i] / (1 - np.minimum(gains[i], 0.999)))[..., None]],
                                -1)[:, sel].reshape(-1, len(cols) + 1) for i in range(len(meta)) if fit[i] == want_fit]
            y = [labels[i][:, sel].reshape(-1) for i in range(len(meta)) if fit[i] == want_fit]
            return np.concatenate(f), np.concatenate(y)
        out = []
        for label, cols, with_gain in (("level, flatness, floor", [0, 1, 2], False), ("the same + pitch corr", [0, 1, 2, 3], False),
                                       ("model gain", [], True), ("model gain + pitch corr", [3], True)):
            f_fit, y_fit = rows(cols, True)
            f_test, y_test = rows(cols, False)
            keep = slice(None) if with_gain else slice(0, len(cols))
            out.append(f"{label} {_logistic_auc(f_fit[:, keep], y_fit, f_test[:, keep], y_test):.3f}")
        print(f"  {name:12s} (n={len(y_test)}, speech-dominated {y_test.mean():.2f}): " + ", ".join(out))


def _log_envelope(x, hop=480):
    """log energy of each 10 ms frame, floored 80 dB below the loudest."""
    e = np.add.reduceat(x.astype(np.float64) ** 2, np.arange(0, len(x) - hop + 1, hop))[: len(x) // hop]
    return np.log10(np.maximum(e, e.max() * 1e-8 + 1e-20))


def voice_of_items(meta):
    """'source/voice' of each eval item's speech, found by matching the item's clean energy
    envelope (10 ms frames, its active stretch) against the validation split's speech: the
    offset with the highest normalised correlation names the clip. (The set was drawn from
    the corpus of its time, session 2, so replaying its draws from today's corpus does not
    work; its held-out voices are still in today's validation split.) Items whose best
    correlation is under 0.9 are 'unmatched'."""
    from scipy.signal import fftconvolve
    audio, _ = sf.read(ev.HERE / "cache" / "corpus" / "val_speech.ogg", dtype="float32")
    clips = json.loads((ev.HERE / "cache" / "corpus" / "index.json").read_text())["val_speech"]
    long = _log_envelope(audio)
    starts = np.array([c["start"] // 480 for c in clips])
    voices = []
    for it in meta:
        clean, _ = sf.read(ev.EVAL / "clean" / it["file"], dtype="float32")
        env = _log_envelope(clean)
        act = np.where(env > env.max() - 4.0)[0]  # within 40 dB of the item's loudest frame
        seg = env[act[0]:act[-1] + 1]
        seg = (seg - seg.mean()) / (seg.std() + 1e-9)
        n = len(seg)
        dot = fftconvolve(long, seg[::-1], mode="valid")  # sum over the window of long * seg
        ones = np.ones(n)
        mean = fftconvolve(long, ones, mode="valid") / n
        var = np.maximum(fftconvolve(long**2, ones, mode="valid") / n - mean**2, 1e-12)
        corr = dot / (n * np.sqrt(var))
        best = int(np.argmax(corr))
        k = int(np.searchsorted(starts, best, side="right") - 1)
        voices.append(f"{clips[k]['source']}/{clips[k]['voice']}" if corr[best] >= 0.9 else "unmatched")
    return voices


def by_voice(model):
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    voices = voice_of_items(meta)
    out = Path("/tmp/denoised_diag_by_voice")
    ev.run_denoised(ev.EVAL / "noisy", out, ["--model", str(Path(model).resolve())])  # the product's defaults
    rows = {}
    for it, voice in zip(meta, voices):
        c, _ = sf.read(ev.EVAL / "clean" / it["file"], dtype="float32")
        x, _ = sf.read(ev.EVAL / "noisy" / it["file"], dtype="float32")
        ours, _ = sf.read(out / it["file"], dtype="float32")
        rn, _ = sf.read(ev.EVAL / "out_rnnoise" / it["file"], dtype="float32")
        m = [ev.metrics(y, c, x) for y in (x, ours, rn)]
        rows.setdefault(voice, []).append([v["pesq_wb"] for v in m] + [v["stoi"] for v in m])
    print("voice                                   items  PESQ-WB noisy / ours / RNNoise (ours - RNNoise)   STOI noisy / ours / RNNoise")
    for voice, r in sorted(rows.items()):
        r = np.array(r)
        print(f"{voice:40s} {len(r):3d}   {r[:, 0].mean():.2f} / {r[:, 1].mean():.2f} / {r[:, 2].mean():.2f} "
              f"({np.mean(r[:, 1] - r[:, 2]):+.2f})   {r[:, 3].mean():.3f} / {r[:, 4].mean():.3f} / {r[:, 5].mean():.3f}")


def score(folders, worst=0):
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    dirs = {Path(f).name: Path(f) for f in folders}
    dirs["rnnoise"] = ev.EVAL / "out_rnnoise"
    results = {name: ev.score_dir(d, meta, ev.EVAL) for name, d in dirs.items()}
    print(ev.table(ev.summarize(results, meta)))
    if worst:
        first = next(iter(dirs))
        gaps = sorted(range(len(meta)), key=lambda i: results[first][i]["pesq_wb"] - results["rnnoise"][i]["pesq_wb"])
        print(f"\nitems where {first} trails RNNoise most (PESQ-WB / noise reduction dB / SI-SDR dB):")
        for i in gaps[:worst]:
            m = meta[i]
            cells = "  ".join(f"{n} {r[i]['pesq_wb']:.2f} / {r[i]['nr_db']:.1f} / {r[i]['si_sdr']:.1f}" for n, r in results.items())
            print(f"{m['file']} {m.get('voice', '?')} {m['snr_db']:+d} dB {m['noise']}: {cells}")


def onset_profile(folders, before=3, after=5):
    meta = json.loads((ev.EVAL / "meta.json").read_text())
    dirs = {Path(f).name: Path(f) for f in folders}
    dirs["rnnoise"] = ev.EVAL / "out_rnnoise"
    offsets = list(range(-before, after))
    sums = {n: np.zeros((len(offsets), 2)) for n in dirs}  # (clean, output) energy per offset
    losses = {n: [] for n in dirs}  # per onset: (loss dB, onset level below the item's peak dB)
    n_onsets = 0
    for m in meta:
        ref, _ = sf.read(ev.EVAL / "clean" / m["file"], dtype="float32")
        e_ref = ev.frame_energy(ref)
        db = 10 * np.log10(e_ref + 1e-12)
        active = db > db.max() - 30
        # evaluate.onset_loss_db's onsets
        onsets = [t for t in range(10, len(active) - 5) if active[t] and not active[t - 10:t].any()]
        n_onsets += len(onsets)
        for name, d in dirs.items():
            est, _ = sf.read(d / m["file"], dtype="float32")
            e_est = ev.frame_energy(est)
            for t in onsets:
                for i, o in enumerate(offsets):
                    sums[name][i] += (e_ref[t + o], e_est[t + o])
                r, e = e_ref[t:t + 5].sum(), e_est[t:t + 5].sum()
                level = 10 * np.log10(e_ref[t:t + 5].max() + 1e-12) - db.max()
                losses[name].append((10 * np.log10((r + 1e-12) / (e + 1e-12)), level))
    print(f"{n_onsets} onsets; output / clean energy per 10 ms frame around them, dB "
          f"(frame 0 = the onset; the onset loss measures frames 0-4)")
    print(f"{'frame':>6s} " + " ".join(f"{n:>22s}" for n in dirs))
    for i, o in enumerate(offsets):
        print(f"{o:>6d} " + " ".join(f"{10 * np.log10(sums[n][i, 1] / sums[n][i, 0]):>22.2f}" for n in dirs))
    print("\nper-onset loss, dB (positive = weaker than clean)")
    rows = [("mean (the onset loss)", lambda v, lv: v.mean()), ("median", lambda v, lv: np.median(v)),
            ("90th percentile", lambda v, lv: np.percentile(v, 90)), ("share > 6 dB", lambda v, lv: np.mean(v > 6)),
            ("mean, onsets within 10 dB of the peak", lambda v, lv: v[lv > -10].mean()),
            ("mean, onsets 10-20 dB below", lambda v, lv: v[(lv <= -10) & (lv > -20)].mean()),
            ("mean, onsets > 20 dB below", lambda v, lv: v[lv <= -20].mean())]
    lv = np.array([x[1] for x in next(iter(losses.values()))])
    print(f"{'':40s} " + " ".join(f"{n:>22s}" for n in dirs) +
          f"   (onsets: {np.sum(lv > -10)} / {np.sum((lv <= -10) & (lv > -20))} / {np.sum(lv <= -20)} by level)")
    for label, f in rows:
        print(f"{label:40s} " + " ".join(f"{f(np.array([x[0] for x in losses[n]]), lv):>22.2f}" for n in dirs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("clean-through")
    a.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    b = sub.add_parser("band-levels")
    b.add_argument("--systems", nargs="+", default=["out_denoised", "out_rnnoise"])
    sub.add_parser("oracle")
    g = sub.add_parser("gain-variants")
    g.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    g.add_argument("--only", nargs="+", help="run only the variants whose name holds one of these words")
    tl = sub.add_parser("timeline")
    tl.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    tl.add_argument("--item", default="053.wav")
    tl.add_argument("--band-hz", type=float, nargs=2, default=[700.0, 2300.0])
    e = sub.add_parser("speech-errors")
    e.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    e.add_argument("--outputs", default=None, help="score another system's output folder instead of --model")
    e.add_argument("--split", choices=["val", "train"], default="val",
                   help="the held-out set (cache/eval) or the one of training voices and noises (cache/eval_train)")
    d = sub.add_parser("deep-filter")
    d.add_argument("--model", required=True, help="an ONNX model with deep-filter taps (train.py --deep-filter)")
    d.add_argument("--against", default=None, help="a folder of `denoised clean --pitch-filter=false` outputs of --model")
    pc = sub.add_parser("pitch-corr")
    pc.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    sc = sub.add_parser("score")
    sc.add_argument("folders", nargs="+", help="folders of outputs, one file per item of the set")
    sc.add_argument("--worst", type=int, default=0)
    op = sub.add_parser("onset-profile")
    op.add_argument("folders", nargs="+", help="folders of outputs, one file per item of the set")
    bv = sub.add_parser("by-voice")
    bv.add_argument("--model", default=str(ev.ROOT / "models" / "denoiser.onnx"))
    args = ap.parse_args()
    if getattr(args, "split", "val") == "train":
        ev.EVAL = ev.HERE / "cache" / "eval_train"
    if args.cmd == "clean-through":
        clean_through(args.model)
    elif args.cmd == "gain-variants":
        gain_variants(args.model, args.only)
    elif args.cmd == "timeline":
        timeline(args.model, args.item, *args.band_hz)
    elif args.cmd == "speech-errors":
        speech_errors(args.model, args.outputs)
    elif args.cmd == "deep-filter":
        deep_filter(args.model, args.against)
    elif args.cmd == "pitch-corr":
        pitch_corr(args.model)
    elif args.cmd == "by-voice":
        by_voice(args.model)
    elif args.cmd == "onset-profile":
        onset_profile(args.folders)
    elif args.cmd == "score":
        score(args.folders, args.worst)
    elif args.cmd == "oracle":
        oracle()
    else:
        band_levels(args.systems)


if __name__ == "__main__":
    sys.exit(main())
