#!/usr/bin/env python3
"""Evaluate denoisers on the held-out validation split (voices and noise recordings never
used in training): PESQ-WB, STOI, SI-SDR, and word-onset energy loss, overall, by input
SNR and by noise type.

  python evaluate.py                   # builds cache/eval/ once, then measures
  python evaluate.py --n 100 --seconds 6

Systems: the noisy input; RNNoise (pyrnnoise, 48 kHz); our model run through the Rust
binary `denoised clean` (target/release/denoised, shipped model); and our model with the
VAE's uncertainty used to soften suppression (Python/ONNX Runtime, an experiment); and
`denoised_after_5s`: the same binary with 5 s of the item's noise in front (measured on
the item only), the situation of a live stream that was running before the talker began;
and `denoised_stream`: all items back to back, three times over, as one 24-minute stream
(each item's last occurrence scored): a long call in miniature.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

import mixer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EVAL = HERE / "cache" / "eval"
SR = 48000
SNRS = [-5, 0, 5, 10, 20]
NOISE_KINDS = ["real", "white", "pink", "hum", "fan", "clicks", "music", "babble"]
DNSMOS_KEYS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
SYNTH_INDEX = {"white": 0, "pink": 1, "hum": 3, "fan": 4, "clicks": 5, "music": 6, "babble": 7}


STANDING_DRAW = 2024


def set_dir(split, speech_speed=1.0, draw=STANDING_DRAW):
    """Where evaluate.py keeps the set of a --split (compare.py reads it there); a set whose
    speech is speed-changed (--speech-speed), or a fresh draw of the same split (--draw),
    has its own folder."""
    name = "eval" if split == "val" else f"eval_{split}"
    if speech_speed != 1.0:
        name += f"_speed{speech_speed:g}"
    if draw != STANDING_DRAW:
        name += f"_draw{draw}"
    return HERE / "cache" / name


def build_set(n, seconds, seed=STANDING_DRAW, split="val", speech_speed=1.0):
    """Fixed mixtures from the validation split (or, to tell under-fitting from
    over-fitting, the training split; or the independent corpus of build_independent.py,
    whose noise is all real recordings): clean/NNN.wav, noisy/NNN.wav, meta.json (each
    item's SNR, noise family and voice). speech_speed != 1 plays each item's speech that
    many times faster (mixer.speed_change: pitch and formants move) before it is mixed, the
    same draws otherwise: the same talkers as new voices."""
    if (EVAL / "meta.json").exists():
        return json.loads((EVAL / "meta.json").read_text())
    if split == "independent":
        corpus = mixer.Corpus(HERE / "cache" / "independent", "eval", "cpu")
    else:
        corpus = mixer.Corpus(HERE / "cache" / "corpus", split, "cpu")
    (EVAL / "clean").mkdir(parents=True, exist_ok=True)
    (EVAL / "noisy").mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    L = int(seconds * SR)
    meta = []
    # the independent set draws a package first, then its clips: each package (a prompt
    # voice, or a game's male voices) gets its share of items, however much it holds
    clips_of = {}
    for c, v in enumerate(corpus.s_voice):
        clips_of.setdefault(v.split("/")[0], []).append(c)
    packages = [torch.tensor(clips_of[k]) for k in sorted(clips_of)]
    for i in range(n):
        snr = SNRS[i % len(SNRS)]
        kind = NOISE_KINDS[(i // len(SNRS)) % len(NOISE_KINDS)]
        # speech: the loudest of a few draws, so each item holds enough speech
        clips = torch.arange(len(corpus.s_start))
        if split == "independent":
            clips = packages[int(torch.randint(len(packages), (1,), generator=gen))]
        best = None
        for _ in range(4):
            s, k = mixer._segments(corpus.speech, corpus.s_start[clips], corpus.s_len[clips], 1, L, gen, loop=False)
            if best is None or s.pow(2).mean() > best.pow(2).mean():
                best, voice = s, corpus.s_voice[int(clips[int(k[0])])]
        s = best[0]
        if speech_speed != 1.0:
            s = mixer.speed_change(s[None, :], torch.full((1, 1), speech_speed))[0]
        if split == "independent":
            kind = "real"
        if kind == "real":
            nz, _ = mixer._segments(corpus.noise, corpus.n_start, corpus.n_len, 1, L, gen, loop=True)
        else:
            nz = mixer.synth_noise(1, L, gen, "cpu", corpus, family=SYNTH_INDEX[kind])
        nz = nz.reshape(-1)
        s_rms = s.pow(2).mean().sqrt()
        nz = nz / nz.pow(2).mean().sqrt() * s_rms * 10 ** (-snr / 20)
        level = 10 ** (np.random.default_rng(seed + i).uniform(-35, -20) / 20) / s_rms
        clean, noisy = (s * level).numpy(), ((s + nz) * level).numpy()
        peak = max(np.abs(noisy).max(), 1e-9)
        if peak > 0.99:
            clean, noisy = clean * 0.99 / peak, noisy * 0.99 / peak
        name = f"{i:03d}.wav"
        sf.write(EVAL / "clean" / name, clean, SR, subtype="FLOAT")
        sf.write(EVAL / "noisy" / name, noisy, SR, subtype="FLOAT")
        meta.append({"file": name, "snr_db": snr, "noise": kind, "voice": voice})
    (EVAL / "meta.json").write_text(json.dumps(meta))
    return meta


def si_sdr(est, ref):
    ref = ref - ref.mean()
    est = est - est.mean()
    a = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    t = a * ref
    return 10 * np.log10(np.dot(t, t) / (np.dot(est - t, est - t) + 1e-12) + 1e-12)


def frame_energy(x, hop=480):
    """Energy of each whole 10 ms frame."""
    return np.array([np.sum(x[i:i + hop] ** 2) for i in range(0, len(x) - hop, hop)])


def onset_loss_db(est, ref):
    """Energy of the first 50 ms after each speech onset, enhanced vs clean, in dB
    (positive = the enhanced onset is weaker: a clipped word start)."""
    e_ref, e_est = frame_energy(ref), frame_energy(est)
    db = 10 * np.log10(e_ref + 1e-12)
    thr = db.max() - 30
    active = db > thr
    losses = []
    for t in range(10, len(active) - 5):
        if active[t] and not active[t - 10:t].any():  # onset after >= 100 ms of silence
            r, e = e_ref[t:t + 5].sum(), e_est[t:t + 5].sum()
            losses.append(10 * np.log10((r + 1e-12) / (e + 1e-12)))
    return losses


def quiet_frames(ref):
    """The 10 ms frames of the clean reference more than 40 dB below its loudest: its pauses."""
    e_ref = frame_energy(ref)
    return 10 * np.log10(e_ref + 1e-12) < 10 * np.log10(e_ref.max() + 1e-12) - 40


def noise_reduction_db(est, ref, noisy):
    """How much quieter the output is than the input where the clean reference is silent
    (10 ms frames more than 40 dB below its loudest): the noise a system removed."""
    quiet = quiet_frames(ref)
    if not quiet.any():
        return float("nan")
    return float(10 * np.log10((frame_energy(noisy)[quiet].sum() + 1e-12) / (frame_energy(est)[quiet].sum() + 1e-12)))


NR_BANDS_HZ = (0, 300, 1000, 4000, 8000, 24000)


def band_noise_reduction_db(est, ref, noisy, edges_hz=NR_BANDS_HZ):
    """noise_reduction_db() per frequency band (edges_hz), from the same quiet 10 ms frames:
    each frame's spectrum is taken over 20 ms (Hann) from its start. Says where in the
    spectrum a system leaves noise in the pauses; a list of NaN if there are none."""
    quiet = quiet_frames(ref)
    n_win = 960
    starts = [i * 480 for i in np.flatnonzero(quiet) if i * 480 + n_win <= min(len(est), len(noisy))]
    if not starts:
        return [float("nan")] * (len(edges_hz) - 1)
    win = np.hanning(n_win)

    def power(x):
        return (np.abs(np.fft.rfft(np.stack([x[i:i + n_win] for i in starts]) * win, axis=-1)) ** 2).sum(0)

    f_hz = np.fft.rfftfreq(n_win, 1 / SR)
    p_noisy, p_est = power(noisy), power(est)
    out = []
    for lo, hi in zip(edges_hz[:-1], edges_hz[1:]):
        sel = (f_hz >= lo) & (f_hz < hi) if hi < SR / 2 else (f_hz >= lo)
        out.append(float(10 * np.log10((p_noisy[sel].sum() + 1e-12) / (p_est[sel].sum() + 1e-12))))
    return out


def metrics(est, ref, noisy):
    from pesq import pesq
    from pystoi import stoi
    n = min(len(est), len(ref))
    est, ref, noisy = est[:n], ref[:n], noisy[:n]
    r16, e16 = resample_poly(ref, 1, 3), resample_poly(est, 1, 3)
    try:
        p = pesq(16000, r16, e16, "wb")
    except Exception:  # noqa: BLE001 - PESQ refuses some inputs (no utterance detected)
        p = float("nan")
    return {"pesq_wb": p, "stoi": stoi(ref, est, SR, extended=False), "si_sdr": si_sdr(est, ref),
            "onsets": onset_loss_db(est, ref), "nr_db": noise_reduction_db(est, ref, noisy)}


def dnsmos_scores(est):
    """DNSMOS P.835 (Reddy et al. 2022; the ONNX models inside the `speechmos` wheel): a
    non-intrusive estimate of listeners' ratings of the speech (SIG), the background (BAK)
    and the whole (OVRL), 1-5, from the output alone at 16 kHz. Items shorter than the
    model's 9.01 s window are repeated to fill it, as speechmos does."""
    from speechmos import dnsmos
    r = dnsmos.run(np.clip(resample_poly(est, 1, 3), -1.0, 1.0).astype(np.float32), 16000)
    return {"dnsmos_sig": float(r["sig_mos"]), "dnsmos_bak": float(r["bak_mos"]), "dnsmos_ovrl": float(r["ovrl_mos"])}


def run_rnnoise(src, dst):
    from pyrnnoise import RNNoise
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.wav")):
        x, sr = sf.read(f, dtype="float32")
        den = RNNoise(sample_rate=sr)
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        out = []
        pcm = np.concatenate([pcm, np.zeros(2400, np.int16)])  # flush RNNoise's delay
        for _, frame in den.denoise_chunk(pcm[None, :], partial=True):
            out.append(np.asarray(frame).reshape(-1))
        y = np.concatenate(out).astype(np.float32) / 32767
        # RNNoise delays its output; find the lag (0..2000 samples) that best matches the input
        n = min(len(x), len(y)) - 2000
        lag = int(np.argmax([np.dot(x[:n], y[k:k + n]) for k in range(0, 2000, 1)]))
        y = y[lag:]
        y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
        sf.write(dst / f.name, y, sr, subtype="FLOAT")


def run_denoised(src, dst, extra=()):
    exe = ROOT / "target" / "release" / "denoised"
    cmd = [str(exe), "clean", str(src), "-o", str(dst), "-q", *extra]
    t = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t


CONTEXT_S = 5.0


def run_after_context(src, clean_dir, dst, model):
    """`denoised clean` on each item with 5 s of its own noise in front (a live stream that
    has been running before the talker starts), the output cropped back to the item. A
    causal recurrent model must not drift with the length of its history."""
    ctx_in, ctx_out = dst.parent / (dst.name + "_in"), dst.parent / (dst.name + "_raw")
    ctx_in.mkdir(parents=True, exist_ok=True)
    pre = int(CONTEXT_S * SR)
    for f in sorted(src.glob("*.wav")):
        x, sr = sf.read(f, dtype="float32")
        c, _ = sf.read(clean_dir / f.name, dtype="float32")
        noise = x - c
        sf.write(ctx_in / f.name, np.concatenate([np.resize(noise, pre), x]), sr, subtype="FLOAT")
    run_denoised(ctx_in, ctx_out, ["--model", model])
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(ctx_out.glob("*.wav")):
        y, sr = sf.read(f, dtype="float32")
        sf.write(dst / f.name, y[pre:], sr, subtype="FLOAT")


def run_as_one_stream(src, dst, model, meta, repeat=3):
    """All items back to back, the whole list `repeat` times (80 items x 6 s x 3 = 24 min),
    through one `denoised clean` call; each item's last occurrence is scored. Voices, noises
    and levels jump at every boundary and the recurrent state has run for over 20 minutes:
    a long live call in miniature."""
    work = dst.parent / (dst.name + "_work")
    (work / "in").mkdir(parents=True, exist_ok=True)
    xs = [sf.read(src / m["file"], dtype="float32")[0] for m in meta]
    sf.write(work / "in" / "stream.wav", np.concatenate(xs * repeat), SR, subtype="FLOAT")
    run_denoised(work / "in", work / "out", ["--model", model])
    y, _ = sf.read(work / "out" / "stream.wav", dtype="float32")
    dst.mkdir(parents=True, exist_ok=True)
    at = sum(len(x) for x in xs) * (repeat - 1)
    for m, x in zip(meta, xs):
        sf.write(dst / m["file"], y[at:at + len(x)], SR, subtype="FLOAT")
        at += len(x)


def gains_session(model_path):
    """An ONNX Runtime session for the Python reference paths (run_reference, diagnose.py),
    which apply the gains alone to the frame they came with: a model with deep-filter taps
    (`df_coefs`) or with lookahead (its gains belong to an earlier frame) is refused there,
    it is measured through `denoised clean` (the `denoised` systems, compare.py)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    how = "measure it through `denoised clean` (evaluate.py --systems denoised, compare.py)"
    if any(o.name == "df_coefs" for o in sess.get_outputs()):
        sys.exit(f"{model_path}: has deep-filter taps (df_coefs); the Python reference applies gains only: {how}")
    lookahead = int(sess.get_modelmeta().custom_metadata_map.get("lookahead_frames", "0"))
    if lookahead:
        sys.exit(f"{model_path}: has {lookahead} frames of lookahead; the Python reference applies each "
                 f"frame's gains to that frame: {how}")
    return sess


def model_outputs(sess, spec):
    """All outputs of one ONNX Runtime call over a whole [1, T, BINS, 2] spectrum from
    zero states, by name."""
    states = [np.zeros(i.shape, np.float32) for i in sess.get_inputs()[1:]]
    feeds = dict(zip([i.name for i in sess.get_inputs()], [spec.astype(np.float32)] + states))
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def uncertainty_range(model_path, n=32, seconds=6.0):
    """(5th, 95th) percentile of the model's per-frame uncertainty on fresh mixtures of the
    *training* split: fixed constants, so softening with them is causal (a live stream
    cannot scale by its own future)."""
    sess = gains_session(model_path)
    corpus = mixer.Corpus(HERE / "cache" / "corpus", "train", "cpu")
    gen = torch.Generator().manual_seed(77)
    from vae import HOP, N_FFT, sqrt_hann
    L = int(seconds * SR) // HOP * HOP + N_FFT - HOP
    with torch.no_grad():
        noisy, _, _ = mixer.make_batch(corpus, n, L, gen)
        X = torch.stft(noisy, N_FFT, HOP, window=sqrt_hann(), center=False, return_complex=True).transpose(1, 2)
    u = np.concatenate([model_outputs(sess, torch.view_as_real(X[b:b + 1]).numpy())["uncertainty"][0]
                        for b in range(n)])
    return float(np.percentile(u, 5)), float(np.percentile(u, 95))


def postfilter(g, beta):
    """The envelope post-filter of PercepNet/DeepFilterNet2, g' = (1+b) g / (1 + b / sin^2(pi g / 2)):
    leaves gains near 1 alone and pushes low gains (noise-dominated bins) further down."""
    s2 = np.sin(0.5 * np.pi * np.clip(g, 1e-6, 1.0)) ** 2
    return np.clip((1 + beta) * g / (1 + beta / s2), 0.0, 1.0)


def analyse(x):
    """The Rust STFT of a whole signal in numpy: [T, BINS] complex, with the stream's
    latency padding in front and enough at the end to flush every sample (see synthesise)."""
    from vae import HOP, N_FFT, sqrt_hann
    win = sqrt_hann().numpy()
    n_hops = -(-(len(x) + N_FFT - HOP) // HOP)
    xp = np.concatenate([np.zeros(N_FFT - HOP, np.float32), x, np.zeros(n_hops * HOP - len(x), np.float32)])
    return np.fft.rfft(np.stack([xp[t * HOP: t * HOP + N_FFT] * win for t in range(n_hops)]), axis=-1)


def synthesise(Y, length):
    """Overlap-add of analyse()'s frames, latency removed: synthesise(analyse(x), len(x)) == x."""
    from vae import HOP, N_FFT, sqrt_hann
    y = np.fft.irfft(Y, n=N_FFT, axis=-1) * sqrt_hann().numpy()
    out = np.zeros(len(Y) * HOP + N_FFT, np.float32)
    for t in range(len(Y)):
        out[t * HOP: t * HOP + N_FFT] += y[t]
    return out[N_FFT - HOP: N_FFT - HOP + length]


def run_reference(src, dst, model_path, alpha, limit_db=30.0, u_range=None, pf_beta=0.0, expand=0.0):
    """The Python reference of the Rust STFT path, with the gain experiments: softened where
    the posterior is unsure (alpha > 0): g' = g ** (1 - a*u_n),
    u_n = the frame's uncertainty scaled to [0, 1] over the file, or, with `u_range`, by
    fixed constants (causal); with `pf_beta` > 0, post-filtered first (see `postfilter`);
    with `expand` = k > 0, high gains raised: g' = g ** (1 - k g) (low gains barely move)."""
    dst.mkdir(parents=True, exist_ok=True)
    sess = gains_session(model_path)
    floor = 10 ** (-limit_db / 20)
    for f in sorted(src.glob("*.wav")):
        x, sr = sf.read(f, dtype="float32")
        X = analyse(x)
        outs = model_outputs(sess, np.stack([X.real, X.imag], -1)[None])
        g = outs["gains"][0]
        if pf_beta > 0:
            g = postfilter(g, pf_beta)
        if expand > 0:
            g = np.clip(g, 1e-6, 1.0) ** (1 - expand * g)
        u = outs["uncertainty"][0]
        lo, hi = u_range if u_range else (u.min(), u.max())
        un = np.clip((u - lo) / (hi - lo + 1e-9), 0.0, 1.0)
        g = np.clip(g, floor, 1.0) ** (1 - alpha * un[:, None])
        y = synthesise(X * g, len(x))
        sf.write(dst / f.name, y.astype(np.float32), sr, subtype="FLOAT")


def score_dir(out_dir, meta, eval_dir, dnsmos=False):
    """metrics() of every item of the set, with its output read from out_dir (and, with
    `dnsmos`, dnsmos_scores())."""
    rows = []
    for m in meta:
        ref, _ = sf.read(eval_dir / "clean" / m["file"], dtype="float32")
        est, _ = sf.read(out_dir / m["file"], dtype="float32")
        noisy, _ = sf.read(eval_dir / "noisy" / m["file"], dtype="float32")
        rows.append(metrics(est, ref, noisy))
        if dnsmos:
            rows[-1].update(dnsmos_scores(est))
    return rows


def summarize(results, meta):
    def agg(rows):
        p = [r["pesq_wb"] for r in rows if not np.isnan(r["pesq_wb"])]
        ons = [o for r in rows for o in r["onsets"]]
        return {"pesq_wb": float(np.mean(p)) if p else float("nan"), "stoi": float(np.mean([r["stoi"] for r in rows])),
                "si_sdr": float(np.mean([r["si_sdr"] for r in rows])),
                "onset_loss_db": float(np.mean(ons)) if ons else float("nan"),
                "noise_reduction_db": float(np.nanmean([r["nr_db"] for r in rows])), "n": len(rows),
                **{k: float(np.mean([r[k] for r in rows])) for k in DNSMOS_KEYS if rows and k in rows[0]}}
    # a package of several voices (the games' male units) also gets one row
    by_source = {}
    for m in meta:
        if "voice" in m:
            by_source.setdefault(m["voice"].split("/")[0], set()).add(m["voice"])
    packages = sorted(k for k, vs in by_source.items() if len(vs) > 1)
    out = {}
    for system, rows in results.items():
        s = {"overall": agg(rows)}
        for snr in SNRS:
            s[f"snr {snr:+d} dB"] = agg([r for r, m in zip(rows, meta) if m["snr_db"] == snr])
        for k in NOISE_KINDS:
            if any(m["noise"] == k for m in meta):
                s[f"noise {k}"] = agg([r for r, m in zip(rows, meta) if m["noise"] == k])
        for v in sorted({m["voice"] for m in meta if "voice" in m}):  # sets built before voices were recorded have none
            s[f"voice {v}"] = agg([r for r, m in zip(rows, meta) if m.get("voice") == v])
        for src in packages:
            s[f"source {src}"] = agg([r for r, m in zip(rows, meta) if m.get("voice", "").split("/")[0] == src])
        out[system] = s
    return out


def table(summary):
    systems = list(summary)
    mos = all(k in summary[systems[0]]["overall"] for k in DNSMOS_KEYS)
    head = "PESQ-WB / STOI / SI-SDR / onset loss / noise reduction" + (" / DNSMOS SIG BAK OVRL" if mos else "")
    lines = ["| subset | " + " | ".join(f"{s} {head}" for s in systems) + " |",
             "|---|" + "---|" * len(systems)]
    for key in summary[systems[0]]:
        cells = []
        for s in systems:
            m = summary[s][key]
            cells.append(f"{m['pesq_wb']:.2f} / {m['stoi']:.3f} / {m['si_sdr']:.1f} dB / {m['onset_loss_db']:.1f} dB"
                         f" / {m['noise_reduction_db']:.1f} dB"
                         + (f" / {m['dnsmos_sig']:.2f} {m['dnsmos_bak']:.2f} {m['dnsmos_ovrl']:.2f}" if mos else ""))
        lines.append(f"| {key} (n={summary[systems[0]][key]['n']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=80)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--model", default=str(ROOT / "models" / "denoiser.onnx"))
    ap.add_argument("--out", default=None, help="results file (default: results.json in the set's folder)")
    ap.add_argument("--split", choices=["val", "train", "independent"], default="val",
                    help="train: the same kind of set from training voices and noises, in cache/eval_train "
                         "(do the figures rise there? then the model over-fits; if not, it under-fits); "
                         "independent: voices and real noise from packages that are no training source "
                         "(build_independent.py first), in cache/eval_independent")
    ap.add_argument("--unc-limits", type=float, nargs="*", default=[12.0, 18.0, 24.0],
                    help="attenuation limits (dB) of the plain model the uncertainty experiment is compared with")
    ap.add_argument("--pf-betas", type=float, nargs="*", default=[0.02, 0.05, 0.1],
                    help="post-filter strengths of the denoised_postfilter experiment")
    ap.add_argument("--expand", type=float, nargs="*", default=[0.3, 0.6],
                    help="strengths k of the denoised_expand experiment, g' = g ** (1 - k g)")
    ap.add_argument("--clean-args", default="", help="extra arguments for `denoised clean`, e.g. '--attenuation-limit-db 20'")
    ap.add_argument("--systems", default="noisy,rnnoise,denoised,denoised_after_5s,denoised_stream,denoised_uncertainty")
    ap.add_argument("--speech-speed", type=float, default=1.0,
                    help="build (in its own folder) a set whose speech is played this many times faster, pitch and "
                         "formants with it: do the training talkers stay as well served as new voices?")
    ap.add_argument("--draw", type=int, default=STANDING_DRAW,
                    help="seed of the mixtures: the default is the standing set every figure in the card "
                         "uses; another seed builds a fresh draw of the same split in its own folder "
                         "(cache/eval_draw<SEED>), to confirm a choice made on the standing set where "
                         "that choice cannot have been fitted to its items")
    ap.add_argument("--dnsmos", action="store_true",
                    help="also score every output with DNSMOS P.835 (SIG, BAK, OVRL; see dnsmos_scores), and the "
                         "clean references as the system `clean`")
    args = ap.parse_args()
    global EVAL
    EVAL = set_dir(args.split, args.speech_speed, args.draw)
    args.out = args.out or str(EVAL / "results.json")
    meta = build_set(args.n, args.seconds, seed=args.draw, split=args.split, speech_speed=args.speech_speed)
    systems = args.systems.split(",")
    dirs = {"noisy": EVAL / "noisy"}
    timings = {}
    if "rnnoise" in systems:
        dirs["rnnoise"] = EVAL / "out_rnnoise"
        if not dirs["rnnoise"].exists():
            run_rnnoise(EVAL / "noisy", dirs["rnnoise"])
    if "denoised" in systems:
        dirs["denoised"] = EVAL / "out_denoised"
        timings["denoised_clean_s"] = run_denoised(EVAL / "noisy", dirs["denoised"],
                                                  ["--model", args.model, *args.clean_args.split()])
    if "denoised_after_5s" in systems:
        dirs["denoised_after_5s"] = EVAL / "out_denoised_ctx"
        run_after_context(EVAL / "noisy", EVAL / "clean", dirs["denoised_after_5s"], args.model)
    if "denoised_stream" in systems:
        dirs["denoised_stream"] = EVAL / "out_denoised_stream"
        run_as_one_stream(EVAL / "noisy", dirs["denoised_stream"], args.model, meta)
    if "denoised_uncertainty" in systems:
        dirs["denoised_uncertainty"] = EVAL / "out_denoised_unc"
        run_reference(EVAL / "noisy", dirs["denoised_uncertainty"], args.model, alpha=0.5)
        if "denoised_uncertainty_causal" in systems:
            rng = uncertainty_range(args.model)
            print(f"uncertainty range from training mixtures (5th, 95th percentile): {rng}")
            dirs["denoised_uncertainty_causal"] = EVAL / "out_denoised_unc_causal"
            run_reference(EVAL / "noisy", dirs["denoised_uncertainty_causal"], args.model, alpha=0.5,
                                      u_range=rng)
        # the same Python path without softening at several attenuation limits: softening
        # removes less noise, so it is judged against the plain model that removes as much
        for lim in args.unc_limits:
            dirs[f"plain_limit_{lim:g}dB"] = EVAL / f"out_plain_{lim:g}"
            run_reference(EVAL / "noisy", dirs[f"plain_limit_{lim:g}dB"], args.model, alpha=0.0,
                                      limit_db=lim)
    if "denoised_postfilter" in systems:
        for beta in args.pf_betas:
            dirs[f"postfilter_{beta:g}"] = EVAL / f"out_postfilter_{beta:g}"
            run_reference(EVAL / "noisy", dirs[f"postfilter_{beta:g}"], args.model, alpha=0.0,
                                      pf_beta=beta)
    if "denoised_expand" in systems:
        for k in args.expand:
            dirs[f"expand_{k:g}"] = EVAL / f"out_expand_{k:g}"
            run_reference(EVAL / "noisy", dirs[f"expand_{k:g}"], args.model, alpha=0.0, expand=k)
    if args.dnsmos:  # the references' own ratings: the ceiling the outputs are rated against
        dirs = {"clean": EVAL / "clean", **dirs}
    results = {name: score_dir(d, meta, EVAL, dnsmos=args.dnsmos) for name, d in dirs.items()}
    summary = summarize(results, meta)
    Path(args.out).write_text(json.dumps({"summary": summary, "timings": timings}, indent=1))
    print(table(summary))
    print("timings:", timings)


if __name__ == "__main__":
    sys.exit(main())
