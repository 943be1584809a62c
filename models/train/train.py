#!/usr/bin/env python3
"""Train the VAE denoiser. Seeded and resumable: `--run DIR` holds `last.pt` (model,
optimiser, step, RNG state) and `log.jsonl`; running again continues from there.

  python train.py --run runs/v1 --minutes 60          # CPU, this machine
  python train.py --run runs/v1 --minutes 8 --batch 64 --device cuda   # a GPU, if lent

Loss: compressed-magnitude + compressed-complex spectral loss on the enhanced STFT,
a multi-resolution STFT loss on the resynthesised waveform, BCE on the speech
probability, and beta * KL(q(z|x) || N(0, I)) with beta annealed from 0.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import bandnet
import critic as critic_mod
import mixer
import pitch
import vae
from vae import HOP, N_FFT, VaeDenoiser, sqrt_hann

HERE = Path(__file__).resolve().parent
ASYM_WEIGHT = 1.0  # defaults of --asym-weight and --onset-weight
ONSET_WEIGHT = 4.0  # extra weight of speech removed in the first 50 ms of each word
PESQ_BAND_HZ = 8000  # --hf-weight scales the loss above this (PESQ-WB and STOI stop here)
PESQ_TOP_BAND = int((vae.band_centres_hz() < PESQ_BAND_HZ).sum())  # bands centred below 8 kHz (30 of 40)
P_RESET = 0.25  # share of batch rows whose recurrent state is reset between steps


def stft(x, win):
    # [B, L] -> [B, T, BINS] complex; unnormalised rfft of sqrt-Hann windowed frames, no
    # centre padding: the exact transform of src/dsp/stft.rs (frame t covers t*HOP .. t*HOP+N_FFT)
    return torch.stft(x, N_FFT, HOP, window=win, center=False, return_complex=True).transpose(1, 2)


def istft(X, win):
    # inverse with overlap-add; sqrt-Hann^2 at 50% hop sums to 1, so no normalisation
    frames = torch.fft.irfft(X, n=N_FFT, dim=-1) * win  # [B, T, N]
    B, T, _ = frames.shape
    return F.fold(frames.transpose(1, 2), (1, (T - 1) * HOP + N_FFT), (1, N_FFT), stride=(1, HOP)).reshape(B, -1)


def mag(Z, eps=1e-10):
    # |Z| with a finite gradient at 0 (torch's complex abs has a NaN gradient there,
    # and digital silence gives exact zeros)
    return torch.sqrt(Z.real.pow(2) + Z.imag.pow(2) + eps)


def onset_frames(S):
    """[B, T] 1.0 on the first 5 frames (50 ms) of speech after >= 100 ms without it, the
    definition evaluate.py's onset-loss metric uses."""
    e = 10 * torch.log10(S.abs().pow(2).sum(-1) + 1e-12)
    active = ((e > e.amax(dim=1, keepdim=True) - 30) & (e > -40)).float()
    prev = F.max_pool1d(F.pad(active[:, None], (10, 0)), 10, 1)[:, 0, :-1]  # any of t-10..t-1
    start = active * (1 - prev)
    return F.max_pool1d(F.pad(start[:, None], (4, 0)), 5, 1)[:, 0].clamp(max=1.0)


def freq_weights(bins, hf_weight, device):
    """[bins] loss weight per frequency bin, mean 1: 1 up to PESQ_BAND_HZ and hf_weight
    above, before normalising. The bins above 8 kHz are two thirds of a 48 kHz spectrum; with
    equal weights they take two thirds of the loss, though speech puts little there and the
    ear (and PESQ-WB) weighs it less. hf_weight 1 gives the plain mean."""
    f_hz = torch.linspace(0, mixer.SR / 2, bins, device=device)
    w = torch.where(f_hz <= PESQ_BAND_HZ, 1.0, hf_weight)
    return w / w.mean()


def spec_loss(Y, S, c=0.3, asym_weight=ASYM_WEIGHT, onset_weight=ONSET_WEIGHT, hf_weight=1.0, pause_weight=0.0,
              pause_bands=None):
    w = freq_weights(Y.shape[-1], hf_weight, Y.device)
    ym, sm = mag(Y), mag(S)
    ycm, scm = ym**c, sm**c
    l_mag = ((ycm - scm).pow(2) * w).mean()
    cplx = (torch.view_as_real(Y / ym * ycm - S / sm * scm).pow(2) * w[:, None]).mean()
    # asymmetric term: removing speech costs more than leaving noise (protects word onsets
    # and weak consonants, which a causal model otherwise learns to clip), and more again
    # in the first 50 ms of a word, where a causal model has the least evidence
    under = torch.relu(scm - ycm).pow(2) * w
    asym = under.mean()
    onset = (under.mean(-1) * onset_frames(S)).mean()
    loss = l_mag + cplx + asym_weight * asym + onset_weight * onset
    if pause_weight > 0:
        loss = loss + pause_weight * pause_residual(Y, S, c, w, pause_bands)
    return loss


def pause_residual(Y, S, c, w, bands=None):
    """Compressed magnitude left in the frames without speech (vad_labels: more than 40 dB
    under the example's peak, as evaluate.py's noise reduction counts them), per frame and
    bin. l_mag already counts it once; --pause-weight counts it again. Why: a learned PESQ-WB
    critic hardly weighs the pauses or the band below 300 Hz, and under it cpu_v36 left about
    0.4 dB more noise below 300 Hz in the pauses than cpu_v35 (compare.py's bands; EXPERIMENTS.md,
    session 21).
    With `bands` ([bins, n_bands], columns sum-normalised: the model's ERB bands) it is taken
    per band, on each band's mean power, so that every band counts the same. Per bin, the 6
    bins below 300 Hz are 1 % of the term, though that is where most of a rumble's energy
    is and where cpu_v36 and cpu_v38 lost noise reduction; per band, they are 7 bands of 40.
    --hf-weight's w does not apply per band."""
    pause = 1.0 - vad_labels(S)  # [B, T]
    if bands is not None:
        return banded_power(Y, bands, c).mean(-1).mul(pause).mean()
    return ((mag(Y) ** c).pow(2) * w).mean(-1).mul(pause).mean()


def banded_power(Z, bands, c=0.3):
    """[B, T, bands]: each ERB band's mean power (bands: [bins, n_bands], columns
    sum-normalised), compressed by the power c: the units of the per-band pause and onset terms."""
    return (Z.real.pow(2) + Z.imag.pow(2)).matmul(bands).add(1e-10).pow(c)


def mrstft_loss(y, s, hf_weight=1.0):
    loss = 0.0
    for n, h in ((256, 64), (512, 128), (2048, 512)):
        win = torch.hann_window(n, device=y.device)
        fw = freq_weights(n // 2 + 1, hf_weight, y.device)[:, None]  # stft is [B, F, T]
        Y = mag(torch.stft(y, n, h, window=win, return_complex=True))
        S = mag(torch.stft(s, n, h, window=win, return_complex=True))
        loss = loss + ((Y**0.3 - S**0.3).abs() * fw).mean()
    return loss / 3


def aligned_band_powers(Y, S, bands, top_band):
    """Band powers of the enhanced and clean spectra in the bands below 8 kHz, each example
    scaled to the mean band power of its clean speech (PESQ aligns levels), with the frames
    that hold speech [B, T] and the examples that hold any [B]. An example without speech
    has no level to align to: it gets 1, so that nothing infinite reaches the gradient
    (the losses leave such examples out; critic.PesqCritic.features does the same)."""
    py = (Y.real.pow(2) + Y.imag.pow(2)) @ bands[:, :top_band]
    ps = (S.real.pow(2) + S.imag.pow(2)) @ bands[:, :top_band]
    active = vad_labels(S)  # [B, T]
    has_speech = active.sum(1) > 0  # [B]
    ref = (ps.mean(-1) * active).sum(1) / active.sum(1).clamp(min=1.0)  # [B]
    ref = torch.where(has_speech, ref.clamp(min=1e-10), torch.ones_like(ref))[:, None, None]
    return py / ref, ps / ref, active, has_speech


def perceptual_loss(Y, S, bands, top_band):
    """A PESQ-like disturbance (after PMSQE, Martin-Donas et al. 2018), as a loss: PESQ-WB
    scores loudness differences per Bark-like band in the speech frames, and counts added
    energy (residual noise) far more than removed energy. Here: band powers of the bands
    below 8 kHz, each example scaled to the mean band power of its clean speech (PESQ aligns
    levels), loudness = power^0.23; per frame, the symmetric disturbance is the norm of the
    loudness difference, the asymmetric one that difference weighted by the ratio of
    enhanced to clean power ((Py + c) / (Ps + c))^1.2, counted only where it exceeds 3 and
    capped at 12, as in PESQ; both averaged over the frames that hold speech, with PESQ's
    weights 0.1 and 0.0309."""
    py, ps, active, _ = aligned_band_powers(Y, S, bands, top_band)
    d = (py + 1e-6).pow(0.23) - (ps + 1e-6).pow(0.23)
    d_sym = d.pow(2).mean(-1).add(1e-12).sqrt()
    ratio = ((py + 0.05) / (ps + 0.05)).pow(1.2)
    asym = torch.where(ratio < 3.0, torch.zeros_like(ratio), ratio.clamp(max=12.0))
    d_asym = (d.abs() * asym).mean(-1)
    per_frame = 0.1 * d_sym + 0.0309 * d_asym
    return (per_frame * active).sum() / active.sum().clamp(min=1.0)


P862_THRESHOLD = 1e-6  # hearing threshold per band, relative to the clean speech's mean band power (-60 dB)
P862_WINDOW = 32  # frames (320 ms): PESQ's split-second interval of 20 frames of 16 ms


def perceptual_loss_p862(Y, S, bands, top_band):
    """The PESQ disturbance model followed more closely than perceptual_loss does (train.py
    --pesq-form p862; ITU-T P.862, section 10.2): PESQ forgives small loudness errors and
    weighs the worst ones, and perceptual_loss averages them all. Here, after the same level
    alignment: Zwicker loudness with a hearing threshold, so that inaudibly quiet residue
    counts nothing; the disturbance of each band is |Ly - Ls| less a dead zone of a quarter
    of the smaller loudness (PESQ's masking step); per frame the symmetric disturbance is the
    L3 norm over the bands and the asymmetric one the L1 norm of the disturbance times the
    ratio factor of perceptual_loss; over time the L6 norm within 320 ms windows, then the
    L2 norm over the windows. All frames count, pauses too, as in PESQ; examples without
    speech do not (PESQ cannot score them). Returns the MOS
    drop 0.1 * d_sym + 0.0309 * d_asym that PESQ subtracts from 4.5 (before its mapping)."""
    # examples without speech (the mixer's noise-only ones) are left out: PESQ does not score them
    py, ps, _, has_speech = aligned_band_powers(Y, S, bands, top_band)
    p0 = P862_THRESHOLD

    def loudness(p):  # Zwicker's law above the threshold p0 (0 at and below it)
        return torch.relu((0.5 + 0.5 * p / p0).pow(0.23) - 1.0) * (p0 / 0.5) ** 0.23

    ly, ls = loudness(py), loudness(ps)
    d = ly - ls
    d = torch.relu(d.abs() - 0.25 * torch.minimum(ly, ls))  # PESQ's masking: a dead zone
    d_sym = (d.pow(3).mean(-1) + 1e-12).pow(1 / 3)  # the epsilons: ~1.4e-5 in all when nothing is wrong
    ratio = ((py + 0.05) / (ps + 0.05)).pow(1.2)
    asym = torch.where(ratio < 3.0, torch.zeros_like(ratio), ratio.clamp(max=12.0))
    d_asym = (d * asym).mean(-1)

    def over_time(f):  # [B, T] -> [B]: L6 within windows, L2 over the windows
        T = f.shape[1] // P862_WINDOW * P862_WINDOW
        w = f[:, :T].reshape(f.shape[0], -1, P862_WINDOW)
        per_window = (w.pow(6).mean(-1) + 1e-24).pow(1 / 6)
        return (per_window.pow(2).mean(-1) + 1e-12).sqrt()

    per_example = 0.1 * over_time(d_sym) + 0.0309 * over_time(d_asym)
    return (per_example * has_speech).sum() / has_speech.sum().clamp(min=1)


def pause_excess(Y, Y_ref, S, bands, c=0.3):
    """How much more the student leaves than a reference model in the frames without speech
    (train.py --anchor-weight, with --teacher as the reference): per ERB band, on each band's
    mean power compressed as in pause_residual, only where the student's is the higher.
    Why: pause_residual pushes the pauses towards silence, and at weights that won the noise
    back (cpu_v39, cpu_v42) the word onsets paid for it. A bound stops pulling once the
    student removes as much as the reference did, so it can hold a shipped model's noise
    reduction while the critic moves the speech frames, without asking for more."""
    pause = 1.0 - vad_labels(S)  # [B, T]
    return torch.relu(banded_power(Y, bands, c) - banded_power(Y_ref, bands, c)).mean(-1).mul(pause).mean()


def onset_shortfall(Y, Y_ref, S, bands, c=0.3):
    """How much less of a word's start the student keeps than a reference model (train.py
    --onset-anchor-weight, with --teacher as the reference): in the first 50 ms of each word
    (onset_frames), per ERB band, what the student's output falls short of the smaller of
    the reference's output and the clean speech, on each band's mean power compressed as in
    pause_excess. Why the smaller: where the reference kept noise at an onset, keeping more
    than the clean speech is not what the bound asks for. With pause_residual it lets the
    pauses be pushed down while the word starts stay where the shipped model had them."""
    onset = onset_frames(S)  # [B, T]
    floor = torch.minimum(banded_power(Y_ref, bands, c), banded_power(S, bands, c))
    return torch.relu(floor - banded_power(Y, bands, c)).mean(-1).mul(onset).mean()


def si_sdr(est, ref):
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + 1e-9)
    t = a * ref
    return 10 * torch.log10(t.pow(2).sum(-1) / ((est - t).pow(2).sum(-1) + 1e-9) + 1e-9)


def vad_labels(S):
    # a frame holds speech when its clean energy is within 40 dB of the utterance peak
    e = 10 * torch.log10(S.abs().pow(2).sum(-1) + 1e-9)
    return (e > e.amax(dim=1, keepdim=True) - 40).float() * (e > -40).float()


def run_model(model, X, sample, state=None):
    spec = torch.view_as_real(X)
    st = state if state is not None else model.initial_state(X.shape[0], X.device)
    gains, prob, unc, mu, logvar, nxt, df = model(spec, *st, sample=sample)
    return gains, prob, mu, logvar, nxt, df


def carry_state(state, gen):
    """The next step's initial state: this step's final state, detached (truncated BPTT),
    with P_RESET of the rows started from zero. Each row so runs as an endless stream whose
    content (voice, noise, room, level) jumps every few seconds: the model learns to work
    after minutes of history and to follow changes, not only the first seconds of a file."""
    B = state[0].shape[0]
    keep = (torch.rand(B, generator=gen, device=state[0].device) >= P_RESET).float()
    out = []
    for s in state:
        k = keep.view(B, 1, 1) if s.shape[0] == B else keep.view(1, B, 1)
        out.append(s.detach() * k)
    return out


def delay(x, samples):
    """x [B, L] delayed by `samples` (zeros in front), the same length."""
    return F.pad(x, (samples, 0))[:, : x.shape[1]] if samples else x


def distill_loss(gains, prob, X, teacher, t_state):
    """How far the student's gains are from the teacher's on the same input (train.py
    --teacher): the compressed-magnitude error of the two enhanced spectra, the spec_loss
    term's units (|X|^0.3 * (g^0.3 - g_t^0.3), squared), plus the speech probability's
    KL divergence from the teacher's, at the 0.05 the task loss gives its VAD term. Returns
    (loss, teacher's next state, teacher's gains, teacher's deep-filter output)."""
    with torch.no_grad():
        t_gains, t_prob, _, _, t_nxt, t_df = run_model(teacher, X, False, t_state)
    xc = mag(X) ** 0.3
    l_gain = ((gains.clamp(min=1e-6) ** 0.3 - t_gains.clamp(min=1e-6) ** 0.3) * xc).pow(2).mean()
    p, q = prob.clamp(1e-6, 1 - 1e-6), t_prob.clamp(1e-6, 1 - 1e-6)
    l_prob = (q * torch.log(q / p) + (1 - q) * torch.log((1 - q) / (1 - p))).mean()  # binary KL: 0 when equal
    return l_gain + 0.05 * l_prob, t_nxt, t_gains, t_df


def losses(model, noisy, clean, win, beta, sample=True, state=None, weights=None, teacher=None, critic=None):
    """weights: dict(asym_weight, onset_weight, hf_weight, pause_weight, pause_bands: bool) for
    spec_loss (defaults if None),
    plus pesq_weight, pesq_form, pitch_filter, lookahead (frames, see --lookahead) and, with a teacher
    model (--teacher), distill_weight, task_weight, anchor_weight (pause_excess against the teacher)
    and onset_anchor_weight (onset_shortfall against the teacher).
    Returns (loss, parts, (enhanced, clean target), next state); with lookahead the target
    is the clean signal delayed by lookahead * HOP samples. With a teacher, `state` and the
    next state are the student's tensors followed by the teacher's. With a critic
    (critic.CriticTrainer, --critic-weight), the critic is first fitted to this batch's real
    PESQ-WB, then critic_weight times its term joins the loss (0 during the warm-up)."""
    weights = dict(weights or {})
    pesq_weight = weights.pop("pesq_weight", 0.0)
    pesq_form = weights.pop("pesq_form", "pmsqe")
    with_pitch = weights.pop("pitch_filter", False)
    lookahead = weights.pop("lookahead", 0)
    distill_weight = weights.pop("distill_weight", 0.0)
    critic_weight = weights.pop("critic_weight", 0.0)
    if weights.pop("pause_bands", False):
        weights["pause_bands"] = model.bands
    task_weight = weights.pop("task_weight", 1.0)
    anchor_weight = weights.pop("anchor_weight", 0.0)
    onset_anchor_weight = weights.pop("onset_anchor_weight", 0.0)
    t_state = None
    if teacher is not None and state is not None:
        n_own = len(model.initial_state(1))
        state, t_state = state[:n_own], state[n_own:]
    X_in = stft(noisy, win)
    gains, prob, mu, logvar, nxt, df = run_model(model, X_in, sample, state)
    # With lookahead the gains of frame t (the model has heard the input up to frame t) go
    # to frame t - lookahead: the input and the target delayed by whole hops, whose frames
    # are exactly the undelayed ones shifted (frame t covers t*HOP .. t*HOP + N_FFT). The
    # delayed input's first frames hold the previous example's end in a carried stream;
    # here they are zeros, as gains on zeros they cost nothing.
    noisy, clean = delay(noisy, lookahead * HOP), delay(clean, lookahead * HOP)
    X, S = stft(noisy, win), stft(clean, win)
    base = None
    if with_pitch:  # what denoised resynthesises by default: the gains on the pitch-filtered spectrum
        P = pitch.pitch_frames(noisy, win)
        base = pitch.pitch_filtered(X, P, gains, model.bands, pitch.torch_spread(X.device))
    Y = vae.enhance(X, gains, df, base)
    y = istft(Y, win)
    s = istft(S, win)
    l_spec = spec_loss(Y, S, **weights)
    l_mr = mrstft_loss(y, s, weights.get("hf_weight", 1.0))
    l_vad = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), vad_labels(S))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
    total = l_spec + l_mr + 0.05 * l_vad + beta * kl
    parts = dict(spec=l_spec.item(), mr=l_mr.item(), vad=l_vad.item(), kl=kl.item())
    if pesq_weight > 0:
        form = perceptual_loss_p862 if pesq_form == "p862" else perceptual_loss
        l_pesq = form(Y, S, model.bands, PESQ_TOP_BAND)
        total = total + pesq_weight * l_pesq
        parts["pesq"] = l_pesq.item()
    if critic is not None:
        pesq_bands = model.bands[:, :PESQ_TOP_BAND]
        parts.update(critic.step(Y, S, X, y, s, noisy, pesq_bands))
        if critic_weight > 0:
            l_critic = critic.gen_loss(Y, S, pesq_bands)
            total = total + critic_weight * l_critic
            parts["critic_gen"] = l_critic.item()
    if teacher is not None:
        l_distill, t_nxt, t_gains, t_df = distill_loss(gains, prob, X_in, teacher, t_state)
        if anchor_weight > 0 or onset_anchor_weight > 0:
            t_base = None if base is None else pitch.pitch_filtered(X, P, t_gains, model.bands,
                                                                    pitch.torch_spread(X.device))
            Y_t = vae.enhance(X, t_gains, t_df, t_base).detach()
        if anchor_weight > 0:
            l_anchor = pause_excess(Y, Y_t, S, model.bands)
            total = total + anchor_weight * l_anchor
            parts["anchor"] = l_anchor.item()
        if onset_anchor_weight > 0:
            l_onset_anchor = onset_shortfall(Y, Y_t, S, model.bands)
            total = total + onset_anchor_weight * l_onset_anchor
            parts["onset_anchor"] = l_onset_anchor.item()
        # the KL term keeps the student's latent a posterior whatever the task weight
        total = task_weight * (total - beta * kl) + beta * kl + distill_weight * l_distill
        parts["distill"] = l_distill.item()
        nxt = tuple(nxt) + tuple(t_nxt)
    return total, parts, (y, s), nxt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(HERE / "runs" / "v1"))
    ap.add_argument("--corpus", default=str(HERE / "cache" / "corpus"))
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this invocation")
    ap.add_argument("--total-minutes", type=float, default=None, help="length of the LR schedule (default: --minutes)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each training example")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=1e-3, help="final KL weight")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--val-seconds", type=float, default=4.0, help="length of validation examples (from a zero state)")
    ap.add_argument("--no-val", action="store_true",
                    help="load no validation split (a lent GPU machine gets only the training files; "
                         "validate the checkpoint here afterwards with --eval-only)")
    ap.add_argument("--stateful", action="store_true", help="carry the recurrent state between steps (see carry_state)")
    ap.add_argument("--eval-only", action="store_true", help="print the validation figures of --init or the run's checkpoint, train nothing")
    ap.add_argument("--asym-weight", type=float, default=ASYM_WEIGHT, help="weight of removed speech (see spec_loss)")
    ap.add_argument("--pause-weight", type=float, default=0.0,
                    help="extra weight of what is left in the frames without speech (see pause_residual)")
    ap.add_argument("--pause-bands", action="store_true", help="take --pause-weight's term per ERB band, not per bin")
    ap.add_argument("--onset-weight", type=float, default=ONSET_WEIGHT, help="extra weight of speech removed at word onsets")
    ap.add_argument("--hf-weight", type=float, default=1.0, help=f"loss weight above {PESQ_BAND_HZ} Hz relative to below (see freq_weights)")
    ap.add_argument("--pesq-weight", type=float, default=0.0,
                    help="weight of the PESQ-like perceptual loss (see perceptual_loss; 0 = off); validation leaves it out")
    ap.add_argument("--pesq-form", choices=("pmsqe", "p862"), default="pmsqe",
                    help="the perceptual loss's form: perceptual_loss (pmsqe, every run up to session 18) or "
                         "perceptual_loss_p862 (PESQ's dead zone, hearing threshold and Lp norms; session 19)")
    ap.add_argument("--critic-weight", type=float, default=0.0,
                    help="weight of the learned PESQ-WB critic's term (critic.py, MetricGAN-style; 0 = off): the "
                         "critic is fitted to the real PESQ-WB of every batch's outputs, and after --critic-warmup "
                         "steps the model is pulled towards outputs it scores high")
    ap.add_argument("--critic-warmup", type=int, default=100, help="steps the critic learns alone before its term counts")
    ap.add_argument("--critic-workers", type=int, default=0,
                    help="processes that score the critic's PESQ-WB (0: in this process; on a GPU, the CPU cores)")
    ap.add_argument("--critic-replay", type=int, default=0,
                    help="enhanced rows the critic keeps (features and real PESQ-WB) and refits from (0: none; "
                         "see critic.CriticTrainer)")
    ap.add_argument("--critic-replay-rows", type=int, default=16, help="rows drawn from --critic-replay's history each step")
    ap.add_argument("--critic-init", default=None,
                    help="start the critic from the one saved in this checkpoint (a new run only; a resumed run "
                         "keeps its own), so that a run warm-started with --init need not learn it again")
    ap.add_argument("--flatness", action="store_true", help="add the band-flatness input features (see vae.py; in the shipped model since gpu_v5)")
    ap.add_argument("--noise-floor", action="store_true",
                    help="add the noise-floor input features (see vae.noise_floor_snr; in the shipped model since gpu_v5)")
    ap.add_argument("--pitch-filter", action="store_true",
                    help="train on what denoised resynthesises by default: the gains applied to the pitch-filtered "
                         "spectrum (pitch.py, src/dsp/pitch.rs); validation leaves it out")
    ap.add_argument("--deep-filter", action="store_true",
                    help=f"add the deep-filter head: complex taps over {vae.DF_ORDER} frames on the first {vae.DF_BINS} bins "
                         "(see vae.VaeDenoiser; zero at the start, so --init's model is unchanged until it learns)")
    ap.add_argument("--df-lr-scale", type=float, default=1.0, help="learning rate of the deep-filter head relative to --lr")
    ap.add_argument("--dec2-lr-scale", type=float, default=1.0,
                    help="learning rate of the second decoder layer (--dec-layers 2) relative to --lr")
    ap.add_argument("--phase", action="store_true",
                    help=f"add the phase-advance input of the first {vae.DF_BINS} bins (see vae.phase_advance; for the deep filter)")
    ap.add_argument("--dec-layers", type=int, choices=(1, 2), default=1,
                    help="decoder GRU layers; 2 adds a residual second layer that starts silent (see vae.py)")
    ap.add_argument("--peak-emphasis", action="store_true", help="add the peak-emphasis gain term (see vae.py; not in the shipped model)")
    ap.add_argument("--noise-aug", action="store_true",
                    help="augment the training noise (mixer.make_batch: faster/slower real recordings, the hiss family); validation stays as it was")
    ap.add_argument("--room-target", choices=("early", "full"), default="early",
                    help="training target in a simulated room: direct path + first 50 ms (early) or the whole room (full: "
                         "no dereverberation asked); validation keeps early")
    ap.add_argument("--drop-noise", default="", help=f"comma-separated synthetic noise families to leave out of "
                    f"training, of {','.join(mixer.DROPPABLE)} (see mixer.DROPPABLE); validation keeps them")
    ap.add_argument("--real-noise-share", type=float, default=0.55,
                    help="share of training examples whose main noise is a real recording (mixer.make_batch); "
                         "validation keeps 0.55")
    ap.add_argument("--speech-speed", type=float, default=0.0,
                    help="speed perturbation of the training speech: half of the segments played at a speed within "
                         "1/(1+S) .. 1+S (mixer.speed_change; pitch and formants move together); 0 = off; validation keeps 0")
    ap.add_argument("--snr-db", type=float, nargs=2, default=list(mixer.SNR_DB_RANGE), metavar=("LO", "HI"),
                    help="training mixtures' SNR range in dB, drawn uniformly (mixer.make_batch); validation keeps its own")
    ap.add_argument("--lookahead", type=int, default=None,
                    help="frames of lookahead: the gains of frame t go to frame t - N (N x 10 ms more latency, "
                         "contract metadata lookahead_frames); default: --init's or the run's, else 0")
    ap.add_argument("--extra-speech", action="store_true",
                    help="also train on the corpus's 73 MBROLA voices (train_speech_extra.ogg, since session 18); "
                         "their licence is non-commercial, and a model trained on them carries it")
    ap.add_argument("--model-copy", default=None, help="also write the weights alone (no optimiser) here at every save")
    ap.add_argument("--teacher", default=None,
                    help="distil from this checkpoint: the student's gains and speech probability are also "
                         "pulled towards the teacher's on the same input (distill_loss), e.g. a narrowed copy "
                         "(narrow.py) learning to be its original again")
    ap.add_argument("--distill-weight", type=float, default=5.0, help="weight of the distillation term (with --teacher)")
    ap.add_argument("--anchor-weight", type=float, default=0.0,
                    help="with --teacher: weight of what the student leaves in the pauses beyond the teacher "
                         "(see pause_excess; --distill-weight 0 makes the teacher only this bound)")
    ap.add_argument("--onset-anchor-weight", type=float, default=0.0,
                    help="with --teacher: weight of what the student keeps less of than the teacher at word "
                         "onsets (see onset_shortfall)")
    ap.add_argument("--task-weight", type=float, default=1.0,
                    help="weight of the usual loss against the clean target (with --teacher; 0: the teacher alone)")
    ap.add_argument("--arch", choices=("vae", "band"), default="vae",
                    help="a new run's model: vae.VaeDenoiser (every shipped model) or bandnet.BandVae (weights "
                         "shared across the bands; session 25); a resumed run keeps its own")
    ap.add_argument("--init", default=None, help="warm-start from a checkpoint (a narrower model's weights are "
                    "widened to --hidden / --conv-ch / --flatness / --noise-floor, see vae.widen_weights)")
    ap.add_argument("--hidden", type=int, default=None, help=f"GRU width (default: --init's, else {vae.HIDDEN})")
    ap.add_argument("--conv-ch", type=int, default=None, help=f"conv feature width (default: --init's, else {vae.CONV_CH})")
    args = ap.parse_args()
    if not args.snr_db[0] < args.snr_db[1]:
        ap.error(f"--snr-db: LO must be below HI, got {args.snr_db[0]} {args.snr_db[1]}")
    drop = tuple(x for x in args.drop_noise.split(",") if x)
    if set(drop) - set(mixer.DROPPABLE):  # said now, not after the corpus has loaded
        ap.error(f"--drop-noise: unknown families {sorted(set(drop) - set(mixer.DROPPABLE))}, known: {','.join(mixer.DROPPABLE)}")
    if not 0.0 <= args.speech_speed <= 0.5:
        ap.error(f"--speech-speed must be within 0..0.5, not {args.speech_speed}")
    if not 0.0 <= args.real_noise_share <= 1.0:
        ap.error(f"--real-noise-share must be within 0..1, not {args.real_noise_share}")
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    ckpt = run / "last.pt"
    if ckpt.exists():  # a resumed run keeps its own shape
        model = bandnet.for_weights(torch.load(ckpt, map_location="cpu")["model"])
    elif args.arch == "band":  # from scratch only: nothing to widen it from
        if args.init:
            sys.exit("--arch band trains from scratch; --init takes a VaeDenoiser checkpoint")
        model = bandnet.BandVae()
        print("band-wise model (bandnet.BandVae), from scratch", flush=True)
    else:
        src = None
        if args.init:
            src = {k: v.float() for k, v in torch.load(args.init, map_location="cpu")["model"].items()}
        shape = VaeDenoiser.shape_of(src) if src else dict(hidden=vae.HIDDEN, conv_ch=vae.CONV_CH)
        model = VaeDenoiser(peak_emphasis=args.peak_emphasis or shape.get("peak_emphasis", False),
                            hidden=args.hidden or shape["hidden"], conv_ch=args.conv_ch or shape["conv_ch"],
                            flatness=args.flatness or shape.get("flatness", False),
                            noise_floor=args.noise_floor or shape.get("noise_floor", False),
                            deep_filter=args.deep_filter or shape.get("deep_filter", False),
                            phase=args.phase or shape.get("phase", False),
                            dec_layers=max(args.dec_layers, shape.get("dec_layers", 1)))
        if src is not None:
            # the same shape copies; a narrower one, or one without the optional parts,
            # grows into this model computing the same gains (vae.widen_weights)
            model.load_state_dict(vae.widen_weights(src, model))
            print(f"warm start from {args.init} {VaeDenoiser.size_of(src)} into {(model.hidden, model.conv_ch)}"
                  f"{' with flatness features' if model.flatness else ''}"
                  f"{' with noise-floor features' if model.noise_floor else ''}"
                  f"{' with the deep-filter head' if model.deep_filter else ''}"
                  f"{' with phase-advance features' if model.phase else ''}"
                  f"{' with a second decoder layer' if model.dec_layers == 2 else ''}", flush=True)
    model = model.to(dev)
    # --df-lr-scale / --dec2-lr-scale: a part that starts at zero (the deep-filter head, the
    # second decoder layer's projection) may learn faster than the rest. In the additive form
    # at 5x, Adam's first, sign-like steps swung the taps far enough to cost 2.5 dB of
    # validation SI-SDR within 10 steps (session 9); at 1x the second decoder layer's
    # projection grew to 0.001 rms in 400 steps (the body's weights: ~0.07), too little to
    # say anything within a CPU run (session 10). The defaults are 1.
    scales = {"df.": args.df_lr_scale, "dec2.": args.dec2_lr_scale, "dec2_out.": args.dec2_lr_scale}
    by_scale = {}
    for n, p in model.named_parameters():
        scale = next((v for k, v in scales.items() if n.startswith(k)), 1.0)
        by_scale.setdefault(scale, []).append(p)
    # one group when every scale is 1, as the checkpoints before the option hold
    groups = [dict(params=ps, scale=sc) for sc, ps in sorted(by_scale.items())]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    step, used_s = 0, 0.0
    lookahead = args.lookahead if args.lookahead is not None else \
        (torch.load(args.init, map_location="cpu").get("lookahead", 0) if args.init else 0)
    if not 0 <= lookahead <= 4:
        sys.exit(f"--lookahead must be within 0..4 frames, not {lookahead}")
    if ckpt.exists():
        st = torch.load(ckpt, map_location=dev)
        if args.lookahead is not None and args.lookahead != st.get("lookahead", 0):
            sys.exit(f"--lookahead {args.lookahead}: the run in {run} was trained with {st.get('lookahead', 0)}")
        lookahead = st.get("lookahead", 0)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, used_s = st["step"], st["used_s"]
        gen.manual_seed(args.seed + step)  # continue with a fresh, still reproducible stream
        print(f"resumed {ckpt} at step {step} ({used_s / 60:.1f} min trained)", flush=True)
    total_s = 60 * (args.total_minutes or (args.minutes + used_s / 60))
    win = sqrt_hann().to(dev)
    train = mixer.Corpus(args.corpus, "train", dev, extra_speech=args.extra_speech)
    vbatch = []
    if not args.no_val:
        val = mixer.Corpus(args.corpus, "val", dev)
        vgen = torch.Generator(device=dev)
        vgen.manual_seed(999)
        with torch.no_grad():
            vbatch = [mixer.make_batch(val, 16, int(args.val_seconds * mixer.SR), vgen) for _ in range(4)]
    L = int(args.seconds * mixer.SR) // HOP * HOP + N_FFT - HOP
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params}, device {dev}, batch {args.batch} x {args.seconds} s, SNR {args.snr_db[0]:g}..{args.snr_db[1]:g} dB", flush=True)
    if args.eval_only and not vbatch:
        sys.exit("--eval-only needs the validation split (drop --no-val)")
    if args.eval_only:
        vl, imp = validate(model, vbatch, win, args.beta, lookahead)
        print("VAL", json.dumps(dict(step=step, val_loss=vl, val_si_sdr_gain_db=imp)), flush=True)
        return
    weights = dict(asym_weight=args.asym_weight, onset_weight=args.onset_weight, hf_weight=args.hf_weight,
                   pause_weight=args.pause_weight, pause_bands=args.pause_bands,
                   pesq_weight=args.pesq_weight, pesq_form=args.pesq_form, pitch_filter=args.pitch_filter, lookahead=lookahead)
    critic = None
    if args.critic_weight > 0:
        critic = critic_mod.CriticTrainer(PESQ_TOP_BAND, dev, workers=args.critic_workers,
                                          replay=args.critic_replay, replay_rows=args.critic_replay_rows)
        source = ckpt if ckpt.exists() else (Path(args.critic_init) if args.critic_init else None)
        saved = torch.load(source, map_location=dev).get("critic") if source is not None else None
        if source is not None and not ckpt.exists() and saved is None:
            sys.exit(f"--critic-init {source}: that checkpoint holds no critic")
        if saved is not None:  # a resumed run keeps the critic it had learned; a new one may start from --critic-init's
            critic.load_state_dict(saved)
            print(f"critic loaded from {source}", flush=True)
        print(f"learned PESQ-WB critic: weight {args.critic_weight} after {args.critic_warmup} steps", flush=True)
    teacher = None
    if args.teacher:
        t_st = torch.load(args.teacher, map_location="cpu")
        if t_st.get("lookahead", 0) != lookahead:
            sys.exit(f"--teacher {args.teacher} has {t_st.get('lookahead', 0)} frames of lookahead, the student {lookahead}")
        teacher = bandnet.for_weights(t_st["model"])
        teacher.load_state_dict({k: v.float() for k, v in t_st["model"].items()})
        teacher = teacher.to(dev).eval().requires_grad_(False)
        weights.update(distill_weight=args.distill_weight, task_weight=args.task_weight, anchor_weight=args.anchor_weight,
                       onset_anchor_weight=args.onset_anchor_weight)
        print(f"distilling from {args.teacher} (weight {args.distill_weight}, task weight {args.task_weight}, "
              f"pause anchor {args.anchor_weight}, onset anchor {args.onset_anchor_weight})", flush=True)
    elif args.anchor_weight > 0 or args.onset_anchor_weight > 0:
        sys.exit("--anchor-weight and --onset-anchor-weight need --teacher (the model that bounds the student)")
    if lookahead:
        print(f"lookahead {lookahead} frames: the gains of frame t go to frame t - {lookahead}", flush=True)
    log = open(run / "log.jsonl", "a")
    t0 = time.time()
    state = None
    while time.time() - t0 < args.minutes * 60:
        frac = min(1.0, (used_s + time.time() - t0) / total_s)
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        beta = args.beta * min(1.0, frac / 0.3)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("scale", 1.0)
        model.train()
        with torch.no_grad():
            noisy, clean, _ = mixer.make_batch(train, args.batch, L, gen, noise_aug=args.noise_aug, room_target=args.room_target,
                                                drop=drop, real_share=args.real_noise_share,
                                                speech_speed=args.speech_speed, snr_db_range=tuple(args.snr_db))
        if critic is not None:
            weights["critic_weight"] = args.critic_weight if step >= args.critic_warmup else 0.0
        loss, parts, _, nxt = losses(model, noisy, clean, win, beta, state=state, weights=weights, teacher=teacher,
                                     critic=critic)
        if args.stateful:
            state = carry_state(nxt, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.4f} {parts} lr {lr:.2e} beta {beta:.1e} gn {gn:.2f} "
                  f"{(time.time() - t0) / 60:.1f} min", flush=True)
        if step % args.eval_every == 0:
            rec = dict(step=step, minutes=round((used_s + time.time() - t0) / 60, 2), **parts)
            if vbatch:
                vl, imp = validate(model, vbatch, win, beta, lookahead)
                rec.update(val_loss=vl, val_si_sdr_gain_db=imp)
                print("VAL", json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            save(model, opt, step, used_s + time.time() - t0, run, args.model_copy, lookahead, critic)
    save(model, opt, step, used_s + time.time() - t0, run, args.model_copy, lookahead, critic)
    print(f"done: step {step}", flush=True)


def validate(model, vbatch, win, beta, lookahead=0):
    """(validation loss, mean SI-SDR gain in dB over the examples that hold speech), every
    example run from a zero state."""
    model.eval()
    with torch.no_grad():
        vl, imp = 0.0, []
        for noisy, clean, _ in vbatch:
            loss, _, (y, s), _ = losses(model, noisy, clean, win, beta, sample=False,
                                        weights=dict(lookahead=lookahead))
            vl += loss.item() / len(vbatch)
            n = delay(noisy, lookahead * HOP)[:, : y.shape[1]]
            ok = s.pow(2).mean(-1) > 1e-10
            imp.append((si_sdr(y, s) - si_sdr(n, s))[ok])
    return vl, torch.cat(imp).mean().item()


def save(model, opt, step, used_s, run, model_copy=None, lookahead=0, critic=None):
    tmp = run / "last.pt.tmp"
    extra = dict(critic=critic.state_dict()) if critic is not None else {}
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, used_s=used_s,
                    lookahead=lookahead, **extra), tmp)
    os.replace(tmp, run / "last.pt")
    if model_copy:  # small enough to come back from a lent machine (its files are capped)
        tmp = Path(model_copy + ".tmp")
        torch.save(dict(model=model.state_dict(), step=step, used_s=used_s, lookahead=lookahead), tmp)
        os.replace(tmp, model_copy)


if __name__ == "__main__":
    main()
