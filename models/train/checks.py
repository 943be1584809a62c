#!/usr/bin/env python3
"""Invariants of the training code that the Rust test suite cannot see (it has no torch).
Run after changing vae.py; exits non-zero on the first failure.

  python checks.py

- vae.widen_weights: a model grown from a smaller checkpoint (wider GRUs, wider conv
  features, the flatness or noise-floor inputs, the peak-emphasis head) computes the same gains, speech
  probability and uncertainty as the checkpoint, and its new units are alive (their state
  moves), so training can use them.
- VaeDenoiser.for_weights: rebuilds the shape of every variant from its weights alone.
- vae.noise_floor_snr: 0 on steady noise, a loud stretch does not lift the floor, the floor
  follows a rise in noise within NOISE_WIN frames, and frame by frame equals batch.
- streaming equals batch in PyTorch: 210 frames at once (longer than the noise-floor window)
  equal 210 calls of one frame with the state carried (the property the ONNX parity test in
  export.py relies on).
- train.perceptual_loss and perceptual_loss_p862: zero for the clean speech itself,
  independent of the level (each example is scaled to its clean speech), and they grow with
  added noise, more for noise added than for the same energy taken away (PESQ's asymmetry);
  the P.862 form also has its dead zone, its hearing threshold, and counts a burst of noise
  more than the same energy spread over the whole example.
- critic.py (train.py --critic-weight): PESQ-WB of a signal against itself maps to
  PESQ_CLEAN, a row without speech has no score, added noise lowers it; fitting the critic
  moves its weights, and the model's term sends a gradient to the enhanced spectrum only,
  never to the critic.
- pitch.py (training with the pitch filter): the lag search finds the period of a pulse
  train, and the pitch window and the filtered spectrum equal diagnose.py's numpy reference
  (the one measured on the evaluation set), and the gains' gradient flows through it, finite
  over digital silence too.
- import_onnx: an exported model with every optional part reads back weight for weight
  (by its probe export and by a saved element map),
  and the shipped models/denoiser.onnx reads back into a model that reproduces the file.
- train.losses with lookahead (--lookahead): the target is the clean signal delayed by
  whole hops, and the gains the model gives with frame t land on frame t - L: an energy
  gate cuts a tone burst's last hop with L = 2 and keeps its start, as the Rust fixture
  test (tests/model.rs, gate_la2) finds for `denoised`.
- vae.narrow_weights (narrow.py): cutting GRU units whose readers are zeroed, or whose output
  is constant (its mean folded into the readers' biases), leaves the outputs unchanged; a
  student distilled from itself (train.py --teacher) has no distillation loss.
- build_independent.median_f0_hz (the independent set's male-voice screen): pulse trains at
  95-260 Hz come back at their F0, and white noise is not voiced.
- mixer.Corpus with the MBROLA voices (train_speech_extra.ogg): each clip of either file
  reads back unchanged through the joined buffer when asked for; the file is left out by
  default and when it did not travel.
- evaluate.py --draw: the standing draw rebuilt in another folder holds the standing set's
  items sample for sample (so a fresh draw differs from it by its seed alone), another seed
  gives other mixtures, and each draw has its own folder (needs the built corpus and set).
- bandnet.BandVae (train.py --arch band): streaming equals batch, bandnet.for_weights
  rebuilds it (and a VaeDenoiser) from weights alone, train.losses runs it with the state
  carried between steps (train.carry_state), and its ONNX export passes export.py's parity
  check with the heads' shapes [1, T, ...] the Rust loader asks for.
"""
import math
import sys
from pathlib import Path

import numpy as np
import torch

import mixer
import vae

TOL = 1e-5
HERE = Path(__file__).resolve().parent


def random_model(**kw):
    m = vae.VaeDenoiser(**kw)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m.eval()


def outputs(model, spec):
    with torch.no_grad():
        return model(spec, *model.initial_state(spec.shape[0]))


def check_widen(spec):
    small = random_model(hidden=256, conv_ch=128)
    for kw in (dict(hidden=256, conv_ch=128), dict(hidden=384, conv_ch=128), dict(hidden=448, conv_ch=192),
               dict(hidden=384, conv_ch=128, flatness=True), dict(hidden=384, conv_ch=128, peak_emphasis=True),
               dict(hidden=384, conv_ch=128, noise_floor=True), dict(hidden=384, conv_ch=128, flatness=True, noise_floor=True),
               dict(hidden=384, conv_ch=128, flatness=True, noise_floor=True, deep_filter=True),
               dict(hidden=384, conv_ch=128, flatness=True, noise_floor=True, deep_filter=True, phase=True),
               dict(hidden=384, conv_ch=128, flatness=True, noise_floor=True, dec_layers=2)):
        big = vae.VaeDenoiser(**kw).eval()
        big.load_state_dict(vae.widen_weights(small.state_dict(), big))
        a, b = outputs(small, spec), outputs(big, spec)
        diff = max((a[i] - b[i]).abs().max().item() for i in range(3))
        assert diff < TOL, f"widen {kw}: outputs differ by {diff}"
        if kw["hidden"] > 256:
            new_units = b[5][2][..., 256:].abs().max().item()
            assert new_units > 1e-3, f"widen {kw}: the new GRU units stay at zero"
        rebuilt = vae.VaeDenoiser.for_weights(big.state_dict())
        shape = (rebuilt.hidden, rebuilt.conv_ch, rebuilt.flatness, rebuilt.peak_emphasis, rebuilt.noise_floor,
                 rebuilt.deep_filter, rebuilt.phase, rebuilt.dec_layers)
        want = (kw["hidden"], kw["conv_ch"], kw.get("flatness", False), kw.get("peak_emphasis", False),
                kw.get("noise_floor", False), kw.get("deep_filter", False), kw.get("phase", False),
                kw.get("dec_layers", 1))
        if kw.get("deep_filter"):  # the new head starts at zero: the same enhanced spectrum
            X = torch.complex(spec[..., 0], spec[..., 1])
            diff = max(diff, (vae.enhance(X, a[0], a[6]) - vae.enhance(X, b[0], b[6])).abs().max().item())
            assert diff < TOL and b[6].abs().max().item() == 0.0, f"widen {kw}: the deep filter is not silent"
        assert shape == want, f"for_weights {kw}: got {shape}"
        print(f"ok  widen 256/128 -> {kw}: max difference {diff:.1e}")


def check_noise_floor():
    W = vae.NOISE_WIN
    level = torch.full((1, 3 * W, vae.N_BANDS), -3.0)
    level[:, 100:150] = 2.0  # a loud stretch: far above the floor, and it must not raise it
    level[:, 2 * W:] = -1.0  # the noise gets 20 dB louder: the floor must follow within the window
    state = torch.zeros(1, vae.N_BANDS, W - 1)
    snr, _ = vae.noise_floor_snr(level, state)
    frames, st = [], state
    for t in range(level.shape[1]):
        out, st = vae.noise_floor_snr(level[:, t:t + 1], st)
        frames.append(out)
    stream_diff = (torch.cat(frames, dim=1) - snr).abs().max().item()
    assert stream_diff < TOL, f"noise floor: streaming differs from batch by {stream_diff}"
    at = lambda t: snr[0, t, 0].item()  # noqa: E731
    assert abs(at(99)) < 1e-5 and abs(at(120) - 5.0) < 1e-5 and abs(at(160)) < 1e-5, (at(99), at(120), at(160))
    assert abs(at(2 * W) - 2.0) < 1e-5 and abs(at(3 * W - 1)) < 1e-5, (at(2 * W), at(3 * W - 1))
    print(f"ok  noise floor: 0 on steady noise, +5 over a loud stretch that leaves it alone, follows a 20 dB rise "
          f"within {W} frames; streaming equals batch ({stream_diff:.1e})")


def streamed(model, spec, index):
    """Output `index` of the model run one frame at a time (state carried) over spec[:1]."""
    state, frames = model.initial_state(1), []
    with torch.no_grad():
        for t in range(spec.shape[1]):
            out = model(spec[:1, t:t + 1], *state)
            frames.append(out[index])
            state = list(out[5])
    return torch.cat(frames, dim=1)


def check_streaming(spec):
    model = random_model(hidden=384, conv_ch=128, flatness=True, noise_floor=True, dec_layers=2)
    batch = outputs(model, spec[:1])[0]
    diff = (streamed(model, spec, 0) - batch).abs().max().item()
    assert diff < TOL, f"streaming differs from batch by {diff}"
    print(f"ok  streaming T=1 equals batch: max difference {diff:.1e}")


def check_deep_filter(spec):
    """apply_deep_filter against a plain loop over taps and frames; a single tap of 1 at
    delay i is X delayed by i frames; streaming T=1 gives the batch taps."""
    X = torch.complex(spec[..., 0], spec[..., 1])
    B, T = X.shape[:2]
    df = torch.randn(B, T, vae.DF_BINS, vae.DF_ORDER, 2)
    got = vae.apply_deep_filter(X, df)
    want = torch.zeros_like(got)
    for t in range(T):
        for i in range(vae.DF_ORDER):
            if t - i >= 0:
                want[:, t] += torch.complex(df[:, t, :, i, 0], df[:, t, :, i, 1]) * X[:, t - i, :vae.DF_BINS]
    diff = (got - want).abs().max().item() / want.abs().max().item()
    assert diff < TOL, f"deep filter differs from the loop by {diff}"
    one = torch.zeros_like(df)
    one[..., 2, 0] = 1.0
    delayed = vae.apply_deep_filter(X, one)
    assert torch.equal(delayed[:, 2:], X[:, :-2, :vae.DF_BINS]) and delayed[:, :2].abs().max() == 0
    model = random_model(hidden=384, conv_ch=128, flatness=True, noise_floor=True, deep_filter=True, phase=True)
    batch = outputs(model, spec[:1])[6]
    stream = (streamed(model, spec, 6) - batch).abs().max().item()
    # the phase input: a steady tone (here 515 Hz, in bin 10) turns by 2 pi f * HOP / SR per frame
    f_hz = 10.3 * vae.SR / vae.N_FFT
    t = torch.arange(vae.N_FFT + 9 * vae.HOP) / vae.SR
    X = torch.stft(torch.sin(2 * math.pi * f_hz * t), vae.N_FFT, vae.HOP, window=vae.sqrt_hann(), center=False,
                   return_complex=True).T[None]
    u, _ = vae.phase_advance(torch.view_as_real(X), torch.zeros(1, vae.DF_BINS, 2))
    turn = torch.atan2(u[0, 1:, vae.DF_BINS + 10], u[0, 1:, 10])
    want_turn = math.remainder(2 * math.pi * f_hz * vae.HOP / vae.SR, 2 * math.pi)
    assert (turn - want_turn).abs().max() < 1e-3 and u[0, 0].abs().max() == 0, (turn, want_turn)
    assert stream < TOL, f"deep-filter taps: streaming differs from batch by {stream}"
    print(f"ok  deep filter: equals the tap loop ({diff:.1e} relative), a unit tap at delay 2 delays by 2 frames, "
          f"streaming taps equal batch ({stream:.1e}); the phase input turns as a tone does")


def check_perceptual_loss():
    import train
    bands = torch.from_numpy(vae.band_matrix())
    t = torch.arange(60)[None, :, None]
    # a harmonic "speech" spectrum (well above the -40 dB activity threshold), 60 frames
    S = torch.complex(torch.ones(1, 60, vae.BINS) * (torch.arange(vae.BINS) % 4 == 0) * (1 + 0.1 * torch.sin(t / 3.0)),
                      torch.zeros(1, 60, vae.BINS))
    N = torch.complex(torch.randn(1, 60, vae.BINS), torch.randn(1, 60, vae.BINS)) * 0.3
    for name, form in (("pmsqe", train.perceptual_loss), ("p862", train.perceptual_loss_p862)):
        loss = lambda y, s: form(y, s, bands, train.PESQ_TOP_BAND).item()  # noqa: E731
        same, scaled = loss(S, S), loss(S * 100, S * 100)
        assert same < 2e-5 and scaled < 2e-5, f"{name}: clean against itself: {same}, {scaled}"  # the norms' epsilons
        a, b, c = loss(S + 0.5 * N, S), loss(S + N, S), loss((S + N) * 100, S * 100)
        assert 0 < a < b and abs(b - c) < 1e-3 * b, f"{name}: added noise: {a}, {b}, louder {c}"
        added, removed = loss(S * 2, S), loss(S / 2, S)  # power x4: past the asymmetry threshold
        # loudness compression alone makes added cost ~1.4x removed; PESQ's asymmetry factor, 3x and more
        assert added > 2 * removed, f"{name}: added energy {added} should cost far more than removed {removed}"
        print(f"ok  perceptual loss ({name}): 0 on clean, noise {a:.4f} < {b:.4f} (level-independent), "
              f"added {added:.4f} > removed {removed:.4f}")
    # what the P.862 form adds: a dead zone (10 % more amplitude, ~4.5 % more loudness, is
    # within a quarter of the loudness and costs nothing), a hearing threshold (noise 80 dB
    # under the speech costs nothing, 20 dB under it does), and one bad stretch costs more
    # than the same disturbance spread thin (the L6 norm within 320 ms)
    loss = lambda y, s: train.perceptual_loss_p862(y, s, bands, train.PESQ_TOP_BAND).item()  # noqa: E731
    S2 = S.repeat(1, 2, 1)  # 120 frames: windows of 32
    N2 = torch.complex(torch.randn(1, 120, vae.BINS), torch.randn(1, 120, vae.BINS))
    zero = loss(S2, S2)  # the norms' epsilons
    level, quiet, heard = loss(S2 * 1.1, S2), loss(S2 + 1e-4 * N2, S2), loss(S2 + 0.1 * N2, S2)
    assert level == zero and quiet == zero and heard > 100 * zero, f"dead zone / threshold: {level}, {quiet}, {heard}"
    burst = torch.zeros(1, 120, 1)
    burst[:, 40:48] = 1.0
    spread = torch.full((1, 120, 1), 8 / 120)
    one, thin = loss(S2 + 0.6 * N2 * burst, S2), loss(S2 + 0.6 * N2 * spread.sqrt(), S2)
    assert one > thin, f"a burst ({one}) should cost more than the same noise energy spread thin ({thin})"
    print(f"ok  perceptual loss (p862): a 10 % level change and noise 80 dB down cost 0, noise 20 dB down "
          f"{heard:.4f}; a burst {one:.4f} > the same energy spread {thin:.4f}")


def check_pause_residual():
    import train
    w = torch.ones(vae.BINS)
    # 60 frames: speech in the first 30, nothing in the last 30
    S = torch.zeros(1, 60, vae.BINS, dtype=torch.complex64)
    S[:, :30] = 1.0
    g = torch.Generator().manual_seed(0)  # its own seed: the same figures alone or within main()
    N = torch.complex(torch.randn(1, 60, vae.BINS, generator=g), torch.randn(1, 60, vae.BINS, generator=g)) * 0.1
    speech_only, in_pause = N.clone(), N.clone()
    speech_only[:, 30:] = 0
    in_pause[:, :30] = 0
    loss = lambda y: train.pause_residual(y, S, 0.3, w).item()  # noqa: E731
    clean, noise_in_speech, noise_in_pause = loss(S), loss(S + speech_only), loss(S + in_pause)
    # mag()'s epsilon leaves a constant floor (about 5e-4 here), with no gradient
    assert clean < 1e-3 and abs(noise_in_speech - clean) < 1e-7, f"speech frames must not count: {clean}, {noise_in_speech}"
    assert noise_in_pause > clean + 1e-2, f"noise left in the pauses must count: {noise_in_pause} (clean {clean})"
    base = train.spec_loss(S + in_pause, S).item()
    more = train.spec_loss(S + in_pause, S, pause_weight=2.0).item()
    assert abs(more - base - 2.0 * noise_in_pause) < 1e-4 * more, (base, more, noise_in_pause)
    # per band: a rumble below 300 Hz counts far more than per bin, a hiss above 8 kHz less
    bands = torch.from_numpy(vae.band_matrix())
    f_hz = torch.linspace(0, 24000, vae.BINS)
    rumble, hiss = in_pause * (f_hz < 300), in_pause * (f_hz >= 8000)
    by_band = lambda y: train.pause_residual(y, S, 0.3, w, bands).item() - train.pause_residual(S, S, 0.3, w, bands).item()  # noqa: E731
    by_bin = lambda y: loss(y) - clean  # noqa: E731
    assert by_band(S + in_pause) > 1e-2 and by_band(S + speech_only) < 1e-6, "per band: pauses only"
    ratio_band, ratio_bin = by_band(S + rumble) / by_band(S + hiss), by_bin(S + rumble) / by_bin(S + hiss)
    assert ratio_band > 5 * ratio_bin, f"rumble / hiss per band {ratio_band:.3f}, per bin {ratio_bin:.3f}"
    print(f"ok  pause residual: 0 for noise in speech frames, {noise_in_pause:.4f} for noise in the pauses, "
          f"added to spec_loss with its weight; rumble / hiss {ratio_bin:.3f} per bin, {ratio_band:.3f} per band")


def check_anchors():
    import train
    bands = torch.from_numpy(vae.band_matrix())
    S = torch.zeros(1, 60, vae.BINS, dtype=torch.complex64)
    S[:, :30] = 1.0  # speech in the first 30 frames, a pause in the last 30
    g = torch.Generator().manual_seed(1)
    N = torch.complex(torch.randn(1, 60, vae.BINS, generator=g), torch.randn(1, 60, vae.BINS, generator=g)) * 0.1
    in_pause, in_speech = N.clone(), N.clone()
    in_pause[:, :30] = 0
    in_speech[:, 30:] = 0
    ref = S + 0.5 * in_pause  # the reference leaves half the noise in the pause
    excess = lambda y: train.pause_excess(y, ref, S, bands).item()  # noqa: E731
    more, same, less = excess(S + in_pause), excess(ref), excess(S + 0.25 * in_pause)
    assert more > 1e-2, f"leaving more than the reference in the pauses must count: {more}"
    assert same == 0.0 and less == 0.0, f"leaving as much or less must cost nothing: {same}, {less}"
    assert excess(ref + in_speech) == 0.0, "speech frames must not count"
    # through losses(): a student equal to its reference (teacher) owes nothing
    model = random_model()
    x = torch.randn(2, 24000) * 0.1
    _, parts, _, _ = train.losses(model, x, x, vae.sqrt_hann(), 0.0, sample=False,
                                  weights=dict(distill_weight=0.0, anchor_weight=3.0, onset_anchor_weight=3.0),
                                  teacher=model)
    assert parts["anchor"] < 1e-9 and parts["onset_anchor"] < 1e-9, f"a student equal to its reference owes {parts}"
    # onsets: speech from frame 20 after silence; the reference keeps half of it
    S2 = torch.zeros(1, 60, vae.BINS, dtype=torch.complex64)
    S2[:, 20:] = 1.0
    short = lambda y, r: train.onset_shortfall(y, r, S2, bands).item()  # noqa: E731
    cut, kept = short(0.25 * S2, 0.5 * S2), short(0.5 * S2, 0.5 * S2)
    assert cut > 1e-2 and kept == 0.0 and short(S2, 0.5 * S2) == 0.0, f"onset shortfall: {cut}, {kept}"
    late = S2.clone()
    late[:, 20:25] *= 0.25  # the word's first 50 ms cut
    assert short(late, S2) > 1e-2, "cutting a word's first 50 ms must count"
    after = S2.clone()
    after[:, 30:] *= 0.25
    assert short(after, S2) == 0.0, "only the first 50 ms of a word count"
    noisy_ref = S2 + N  # a reference that kept noise at the onset: the floor is the clean speech
    assert short(S2, noisy_ref) == 0.0, "keeping the clean onset must meet the bound"
    print(f"ok  onset shortfall: {cut:.4f} when keeping a quarter of an onset against the reference's half, "
          f"0 for as much, for cuts after the first 50 ms, and for the clean onset against a noisy reference")
    print(f"ok  pause excess: {more:.4f} when leaving twice the reference's noise in the pauses, 0 for as much, "
          f"less, or noise in the speech frames; both bounds 0 through losses() against itself")


def check_critic():
    import critic
    import train
    torch.manual_seed(0)
    n = 3 * 48000
    t = torch.arange(n) / 48000.0
    # a voiced "speech" signal: harmonics of 150 Hz, syllables of 200 ms, a pause at the end
    env = (torch.sin(2 * math.pi * 2.5 * t).clamp(min=0) * (t < 2.4)).float()
    s = sum(torch.sin(2 * math.pi * 150 * k * t) / k for k in range(1, 20)) * env * 0.1
    s = s[None].repeat(3, 1)
    s[2] = 0.0  # a row without speech: PESQ cannot score it
    y = s + 0.01 * torch.randn_like(s)
    q = critic.pesq_batch(s, s)
    assert abs(q[0] - critic.PESQ_CLEAN) < 0.05 and torch.isnan(q[2]), f"PESQ of clean against itself: {q}"
    q_noisy = critic.pesq_batch(s, y)
    assert q_noisy[0] < q[0] - 0.1, f"added noise should lower PESQ-WB: {q_noisy} against {q}"
    # --critic-workers: the same scores from worker processes, the row without speech too
    pooled = critic.CriticTrainer(train.PESQ_TOP_BAND, torch.device("cpu"), workers=2)
    q_pool = critic.pesq_batch(s, y, pool=pooled.pool)
    pooled.pool.close()
    assert torch.equal(torch.isnan(q_pool), torch.isnan(q_noisy)), f"{q_pool} against {q_noisy}"
    assert torch.allclose(q_pool[:2], q_noisy[:2]), f"the workers score {q_pool}, this process {q_noisy}"
    win = vae.sqrt_hann()
    bands = torch.from_numpy(vae.band_matrix())[:, :train.PESQ_TOP_BAND]
    S, Y, X = train.stft(s, win), train.stft(y, win), train.stft(y, win)
    ct = critic.CriticTrainer(train.PESQ_TOP_BAND, torch.device("cpu"))
    before = [p.detach().clone() for p in ct.critic.parameters()]
    parts = ct.step(Y, S, X, y, s, y, bands)
    moved = any((a - b).abs().max() > 0 for a, b in zip(before, ct.critic.parameters()))
    assert moved and parts["critic"] > 0, "fitting the critic should move its weights"
    Yg = Y.clone().requires_grad_(True)
    after = [p.detach().clone() for p in ct.critic.parameters()]
    ct.opt.zero_grad(set_to_none=True)  # the fitting's own gradients
    ct.gen_loss(Yg, S, bands).backward()
    assert Yg.grad is not None and torch.isfinite(Yg.grad).all() and Yg.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in ct.critic.parameters()), "the model's term reached the critic"
    assert all((a - p).abs().max() == 0 for a, p in zip(after, ct.critic.parameters()))
    # --critic-replay: the history keeps the last scored rows (not the one without speech), at
    # most `replay`, and refitting from it changes the critic's step; without it, nothing is kept
    fits = []
    for replay in (0, 3):
        torch.manual_seed(1)
        rt = critic.CriticTrainer(train.PESQ_TOP_BAND, torch.device("cpu"), replay=replay, replay_rows=2)
        for k in range(3):
            rt.step(Y, S, X, y + 0.01 * k * torch.randn_like(y), s, y, bands)
            assert len(rt.history) == min(replay, 2 * (k + 1)), f"history of {len(rt.history)} rows after {k + 1} steps"
        fits.append([p.detach().clone() for p in rt.critic.parameters()])
    assert any((a - b).abs().max() > 0 for a, b in zip(*fits)), "replay should change the critic's fit"
    print(f"ok  critic: PESQ-WB of clean against itself {q[0] * 3.5 + 1:.2f}, with noise {q_noisy[0] * 3.5 + 1:.2f}, "
          "no score without speech, the same from worker processes; fitting moves the critic, the model's term leaves it alone; "
          "replay keeps the last scored rows and refits from them")


def check_pitch_filter():
    import numpy as np

    import diagnose
    import pitch
    from vae import HOP, band_matrix, sqrt_hann
    period, n = 250, 48000
    rng = np.random.default_rng(0)
    t = np.arange(n)
    x = (0.3 * np.exp(-12.0 * (t % period) / period) + rng.normal(0, 0.02, n)).astype(np.float32)
    x[: n // 8] = 0.0  # digital silence, as 10 % of the training examples open with
    ref_P = diagnose._pitch_frames(x)  # frames of evaluate.analyse: 480 zeros in front
    xt = torch.nn.functional.pad(torch.from_numpy(x), (HOP, 0))[None]
    P = pitch.pitch_frames(xt, sqrt_hann())[0]
    T = P.shape[0]
    diff_p = np.abs(P.numpy() - ref_P[:T]).max() / np.abs(ref_P[:T]).max()
    assert diff_p < 1e-4, f"pitch window differs from the reference: {diff_p:.1e}"
    X = torch.stft(xt, vae.N_FFT, HOP, window=sqrt_hann(), center=False, return_complex=True).transpose(1, 2)[0]
    g = torch.from_numpy(rng.uniform(0.05, 0.95, X.shape).astype(np.float32)).requires_grad_()
    bands = band_matrix()
    Xf = pitch.pitch_filtered(X[None], P[None], g[None], torch.from_numpy(bands), pitch.torch_spread("cpu"))[0]
    ref = diagnose._pitch_filtered(X.numpy().astype(np.complex128), ref_P[:T], g.detach().numpy().clip(pitch.MIN_GAIN, 1),
                                   bands, pitch.spread_matrix())
    diff_f = (np.abs(Xf.detach().numpy() - ref).max() / np.abs(ref).max())
    assert diff_f < 1e-3, f"filtered spectrum differs from the reference: {diff_f:.1e}"
    changed = (Xf - X).abs().max().item() / X.abs().max().item()
    assert changed > 1e-2, "the filter changes a voiced signal"
    (Xf.abs() ** 2).sum().backward()
    assert torch.isfinite(g.grad).all() and g.grad.abs().sum() > 0, "the gains' gradient flows through the filter"
    print(f"ok  pitch filter: pitch window {diff_p:.1e}, filtered spectrum {diff_f:.1e} from the numpy reference; "
          f"gradient finite")


def check_import_onnx():
    """import_onnx reads every weight of an exported model back: a random two-layer model
    with deep filter and phase input (every optional part), exported, imported, equal
    element for element, and the shipped file read back reproduces it (export.parity)."""
    import tempfile

    import export
    import import_onnx
    model = random_model(flatness=True, noise_floor=True, deep_filter=True, phase=True, dec_layers=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export.export(model, path, export.contract_meta())
        back, shape, _, ids = import_onnx.import_weights(path)
        # the same through a saved element map (the path a lent GPU machine takes)
        import_onnx.save_map(Path(tmp) / "map.npz", shape, ids)
        back_map, _, _, _ = import_onnx.import_weights(path, Path(tmp) / "map.npz")
    a = model.state_dict()
    for b in (back.state_dict(), back_map.state_dict()):
        assert a.keys() == b.keys(), "the imported model has the same tensors"
        worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert worst == 0.0, f"imported weights differ from the exported ones by {worst:.1e}"
    shipped = HERE.parent / "denoiser.onnx"
    model, _, _, _ = import_onnx.import_weights(shipped)
    d_tb, d_bs = export.parity(model, shipped)
    assert max(d_tb, d_bs) < 1e-4, f"the shipped model read back differs from its file: {d_tb:.1e} / {d_bs:.1e}"
    print(f"ok  import_onnx: a random model with every optional part comes back exactly, by probe and by a "
          f"saved map; the shipped "
          f"model read back matches its file within {d_tb:.1e}")


def check_narrow(spec):
    """vae.narrow_weights keeps the right rows and columns and folds a dropped unit's mean
    into the biases that read it: units whose readers are zeroed, and units whose output is
    a constant (their update gate shut, so h = n = tanh(bias) from the first frame), are cut
    without changing the model's outputs. train.losses with a teacher: a student that is
    its teacher has no distillation loss."""
    import train
    h = 48
    model = random_model(hidden=h, conv_ch=32, flatness=True, noise_floor=True, deep_filter=True, dec_layers=2)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    silent, const = [3, 17, 40], [5, 29]
    c = {}
    for gru in ("enc", "dec"):
        for j in const:  # z gate shut (bias -40): h_j = tanh(b_in + r * b_hn), the same every frame
            for name in ("weight_ih_l0", "weight_hh_l0"):
                sd[f"{gru}.{name}"][[j, h + j, 2 * h + j]] = 0.0
            sd[f"{gru}.bias_ih_l0"][h + j] = -40.0
            c[(gru, j)] = math.tanh(sd[f"{gru}.bias_ih_l0"][2 * h + j].item()
                                    + torch.sigmoid(sd[f"{gru}.bias_ih_l0"][j] + sd[f"{gru}.bias_hh_l0"][j]).item()
                                    * sd[f"{gru}.bias_hh_l0"][2 * h + j].item())
        sd[f"{gru}.weight_hh_l0"][:, silent] = 0.0
    for name in ("mu.weight", "logvar.weight"):
        sd[name][:, silent] = 0.0
    for name in ("gain.weight", "vad.weight", "df.weight", "dec2.weight_ih_l0"):
        sd[name][:, silent] = 0.0
    sd["dec2_out.weight"][const] = 0.0  # the residual stream of a constant unit stays constant
    sd["dec2_out.bias"][const] = 0.0
    model.load_state_dict(sd)
    keep = torch.tensor(sorted(set(range(h)) - set(silent) - set(const)))
    mean_enc, mean_dec = torch.full((h,), 0.37), torch.full((h,), -0.21)  # anything for the silent units
    for j in const:
        mean_enc[j], mean_dec[j] = c[("enc", j)], c[("dec", j)]
    small = vae.VaeDenoiser(hidden=len(keep), conv_ch=32, flatness=True, noise_floor=True, deep_filter=True,
                            dec_layers=2).eval()
    small.load_state_dict(vae.narrow_weights(sd, keep, keep, mean_enc, mean_dec, mean_dec))
    # the recurrence reads h(t - 1): the big model starts with its constant units already at
    # their constant (from a zero state, frame 0 would read 0 there instead of the mean)
    st = model.initial_state(spec.shape[0])
    for i, gru in ((2, "enc"), (3, "dec")):
        for j in const:
            st[i][..., j] = c[(gru, j)]
    st_small = [s[..., keep] if i in (2, 3) else s for i, s in enumerate(st)]
    with torch.no_grad():
        a, b = model(spec, *st), small(spec, *st_small)
    diff = max((a[i] - b[i]).abs().max().item() for i in (0, 1, 2, 6))
    assert diff < TOL, f"narrow: outputs differ by {diff}"
    x = torch.randn(2, 24000) * 0.1
    win = vae.sqrt_hann()
    _, parts, _, nxt = train.losses(model, x, x, win, 0.0, sample=False, weights=dict(distill_weight=1.0),
                                    teacher=model)
    assert parts["distill"] < 1e-10, f"distill: a student equal to its teacher has loss {parts['distill']}"
    assert len(nxt) == 2 * len(model.initial_state(1)), "distill: the teacher's state is not carried"
    print(f"ok  narrow {h} -> {len(keep)} units (silent and constant units cut): max difference {diff:.1e}; "
          f"distillation from itself {parts['distill']:.1e}")


def check_lookahead():
    import train
    from vae import HOP
    L, n = 2, 48000
    start, end = 20 * HOP, 60 * HOP
    t = torch.arange(n, dtype=torch.float32)
    x = torch.where((t >= start) & (t < end), 0.5 * torch.sin(2 * math.pi * 1000.0 * t / 48000), torch.zeros(n))[None]
    win = vae.sqrt_hann()

    def gate(model, X, sample, state=None):  # gains 1 on a frame with energy, else 0
        T = X.shape[1]
        g = ((X.abs() ** 2).sum(-1, keepdim=True) > 1.0).float().expand(1, T, vae.BINS)
        z = torch.zeros(1, T, 4)
        return g, torch.full((1, T), 0.5), z, z, None, None

    real = train.run_model
    train.run_model = gate
    try:
        outs = {la: train.losses(None, x, x, win, 0.0, sample=False, weights=dict(lookahead=la))[2] for la in (0, L)}
    finally:
        train.run_model = real
    (y0, s0), (y2, s2) = outs[0], outs[L]
    m = y0.shape[1]
    assert (s2[0, L * HOP : m] - x[0, : m - L * HOP]).abs().max() < 1e-4, "the target is the clean signal L hops late"
    assert (y0 - s0).abs().max() < 1e-4, "without lookahead the gate passes the burst whole"
    # in the delayed signal the burst ends at end + L * HOP; its last input hop is gone
    last = y2[0, end + (L - 1) * HOP : end + L * HOP]
    assert last.pow(2).sum() < 1e-6 * s2[0, end + (L - 1) * HOP : end + L * HOP].pow(2).sum(), "the last hop is cut"
    first = slice(start + L * HOP, start + (L + 1) * HOP)
    assert (y2[0, first] - s2[0, first]).abs().max() < 1e-4, "the burst's start is kept"
    print(f"ok  lookahead: target {L} hops late; a gate's gains land {L} frames back (the burst's last hop cut, "
          f"its start kept)")


def check_median_f0():
    """build_independent.median_f0_hz, which picks the independent set's male voices: a
    decaying pulse train at a known F0 comes back at that F0 (within a lag step), and white
    noise is not called voiced."""
    import build_independent

    rng = np.random.default_rng(0)
    sr = 48000
    for f0 in (95.0, 120.0, 150.0, 210.0, 260.0):
        x = np.zeros(2 * sr, np.float32)
        x[np.round(np.arange(0, len(x) - 1, sr / f0)).astype(int)] = 1.0
        x = np.convolve(x, np.exp(-np.arange(480) / 60.0))[: len(x)]  # a decaying pulse: harmonics fall off
        x += 1e-3 * rng.standard_normal(len(x))
        got = build_independent.median_f0_hz(x.astype(np.float32))
        step = got**2 / 16000  # one lag at 16 kHz, in Hz
        assert abs(got - f0) <= step + 1.0, f"median_f0_hz: {got:.1f} Hz for a {f0:.0f} Hz pulse train"
    noise = rng.standard_normal(2 * sr).astype(np.float32)
    assert build_independent.median_f0_hz(noise) == 0.0, "white noise has no F0"
    print("ok  median_f0_hz: pulse trains at 95-260 Hz come back within a lag step; white noise is unvoiced")


def check_speed_change():
    """mixer.speed_change moves a tone's frequency by the speed, keeps its level within
    1.5 dB up to 12 kHz, is the identity at speed 1 and leaves silence after the row's end."""
    sr, L = mixer.SR, mixer.SR
    t = torch.arange(L, dtype=torch.float64) / sr
    x = torch.stack([torch.sin(2 * math.pi * f * t) for f in (440.0, 3000.0, 12000.0)]).float()
    same = mixer.speed_change(x, torch.ones(3, 1))
    assert torch.allclose(same[:, : L - 1], x[:, : L - 1], atol=1e-6), "speed 1 is the identity"
    for speed in (0.87, 1.15):
        y = mixer.speed_change(x, torch.full((3, 1), speed))
        n = int((L - 2) / max(speed, 1.0))  # where the tone still plays
        spec = torch.fft.rfft(y[:, :n] * torch.hann_window(n, dtype=torch.float32), dim=-1).abs()
        ref = torch.fft.rfft(x[:, :n] * torch.hann_window(n, dtype=torch.float32), dim=-1).abs()
        for row, f in enumerate((440.0, 3000.0, 12000.0)):
            peak_hz = spec[row].argmax().item() * sr / n
            assert abs(peak_hz - f * speed) <= 2 * sr / n, f"speed {speed}: {f} Hz tone at {peak_hz:.0f} Hz"
            level_db = 20 * math.log10(spec[row].max().item() / ref[row].max().item())
            assert abs(level_db) < 1.5, f"speed {speed}: {f} Hz tone changed by {level_db:.2f} dB"
        if speed > 1:
            assert y[:, int(L / speed) + 1 :].abs().max() == 0, "silence after the row's end"
    print("ok  speed_change: tones move by the speed within 1.5 dB up to 12 kHz; speed 1 is the identity")

def check_extra_speech():
    """mixer.Corpus(extra_speech=True) appends train_speech_extra.ogg (the MBROLA voices) after
    the first file: every clip of either file reads the same samples through the joined buffer
    as from its own file; by default, or in a corpus carried without the file, it is left out."""
    import json
    import tempfile

    import soundfile as sf

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        base, extra = rng.uniform(-0.5, 0.5, 9000), rng.uniform(-0.5, 0.5, 5000)
        for name, x in (("train_speech", base), ("train_noise", base), ("train_speech_extra", extra)):
            sf.write(d / f"{name}.ogg", x.astype(np.float32), mixer.SR, format="OGG", subtype="VORBIS")
        clip = lambda start, n: {"start": start, "len": n, "source": "s", "voice": "v", "band_hz": 8000}
        index = {"train_speech": [clip(0, 4000), clip(4000, 5000)], "train_noise": [clip(0, 9000)],
                 "train_speech_extra": [clip(0, 3000), clip(3000, 2000)]}
        (d / "index.json").write_text(json.dumps(index))
        joined = mixer.Corpus(d, "train", "cpu", extra_speech=True)
        alone = mixer.Corpus(d, "train", "cpu")
        own = {"train_speech": alone.speech, "train_speech_extra": alone._load(d / "train_speech_extra.ogg")}
        assert len(joined.s_start) == 4 and len(alone.s_start) == 2, "clips of both files, or of the first alone"
        clips = [("train_speech", c) for c in index["train_speech"]] + [("train_speech_extra", c) for c in index["train_speech_extra"]]
        for k, (name, c) in enumerate(clips):
            got = joined.speech[joined.s_start[k] : joined.s_start[k] + joined.s_len[k]]
            assert torch.equal(got, own[name][c["start"] : c["start"] + c["len"]]), f"clip {k} of {name} moved"
        (d / "train_speech_extra.ogg").unlink()
        assert len(mixer.Corpus(d, "train", "cpu", extra_speech=True).s_start) == 2, "a corpus without the file trains without it"
    print("ok  extra speech: the MBROLA file's clips read back through the joined buffer; without it, left out")


def check_snr_range():
    """mixer.make_batch(snr_db_range=...): every mixture's SNR falls inside the range, and two
    ranges with one seed draw the same speech, rooms and noise (targets equal up to each row's
    level), so runs that differ only in --snr-db are paired."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(5)
    sr = mixer.SR
    rirs = torch.zeros(3, 2400)
    rirs[:, 0] = 1.0
    rirs[:, 100:] = 0.05 * torch.randn(3, 2300, generator=g) * torch.exp(-torch.arange(2300) / 600.0)
    corpus = SimpleNamespace(speech=torch.randn(8 * sr, generator=g) * 0.1, noise=torch.randn(8 * sr, generator=g) * 0.1,
                             s_start=torch.tensor([0, 4 * sr]), s_len=torch.tensor([4 * sr, 4 * sr]),
                             s_band=torch.tensor([24000.0, 8000.0]), n_start=torch.tensor([0]), n_len=torch.tensor([8 * sr]),
                             rirs=rirs)
    batches = {}
    for rng in ((-5.0, 25.0), (0.0, 3.0)):
        _, target, snr = mixer.make_batch(corpus, 12, sr, torch.Generator().manual_seed(9), drop=("music", "babble"),
                                          snr_db_range=rng)
        assert ((snr >= rng[0]) & (snr <= rng[1])).all(), f"SNR {snr.tolist()} outside {rng}"
        batches[rng] = target
    a, b = batches.values()
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-12)
    speech_rows = a.norm(dim=-1) > 0
    assert speech_rows.any() and (cos[speech_rows] > 0.999).all(), f"targets differ between ranges: {cos.tolist()}"
    print("ok  SNR range: mixtures inside --snr-db; one seed draws the same speech whatever the range")


def check_fresh_draw():
    """evaluate.build_set with the standing seed reproduces cache/eval item for item, and
    another seed (evaluate.py --draw) draws other mixtures into its own folder."""
    import tempfile

    import soundfile as sf

    import evaluate as E

    standing = E.set_dir("val")
    if not (standing / "meta.json").exists():
        print("SKIP fresh draw: build the corpus and the set first (build_corpus.py, evaluate.py)")
        return
    assert E.set_dir("val", draw=2025) != standing and E.set_dir("val", draw=E.STANDING_DRAW) == standing
    assert E.set_dir("independent", draw=7).name == "eval_independent_draw7"
    kept, n = E.EVAL, 5
    try:
        with tempfile.TemporaryDirectory() as d:
            metas = {}
            for seed in (E.STANDING_DRAW, 2025):
                E.EVAL = Path(d) / str(seed)
                metas[seed] = E.build_set(n, 6.0, seed=seed, split="val")
            for i in range(n):
                name = f"{i:03d}.wav"
                again, _ = sf.read(Path(d) / str(E.STANDING_DRAW) / "noisy" / name, dtype="float32")
                first, _ = sf.read(standing / "noisy" / name, dtype="float32")
                assert np.array_equal(again, first), f"the standing draw's item {name} is not reproduced"
                other, _ = sf.read(Path(d) / "2025" / "noisy" / name, dtype="float32")
                assert not np.array_equal(other, first), f"draw 2025 repeats the standing item {name}"
            same = sum(a["voice"] == b["voice"] for a, b in zip(metas[E.STANDING_DRAW], metas[2025]))
    finally:
        E.EVAL = kept
    print(f"ok  fresh draw: the standing seed rebuilds its {n} items sample for sample, seed 2025 mixes "
          f"other ones ({same} of {n} share a voice)")


def check_band_model(spec):
    import tempfile

    import onnx

    import bandnet
    import export
    import train
    torch.manual_seed(3)
    model = bandnet.BandVae().eval()
    with torch.no_grad():  # the zero-initialised heads would hide a broken path: wake them
        for p in (model.slope.weight, model.band_emb):
            p.normal_(0, 0.3)
    batch = outputs(model, spec[:1])
    diff = max((streamed(model, spec, i) - batch[i]).abs().max().item() for i in (0, 1, 2))
    assert diff < TOL, f"band model: streaming differs from batch by {diff}"
    rebuilt = bandnet.for_weights(model.state_dict())
    assert isinstance(rebuilt, bandnet.BandVae) and (rebuilt.ch, rebuilt.hidden, rebuilt.intra, rebuilt.latent) == \
        (model.ch, model.hidden, model.intra, model.latent), "band model: for_weights lost its shape"
    rebuilt.load_state_dict(model.state_dict())
    assert isinstance(bandnet.for_weights(vae.VaeDenoiser(hidden=32, conv_ch=16).state_dict()), vae.VaeDenoiser)
    # a training step's loss, then a second step from the carried state
    model.train()
    gen = torch.Generator().manual_seed(0)
    noisy, clean = torch.randn(2, 9600 + 480) * 0.1, torch.randn(2, 9600 + 480) * 0.1
    win = vae.sqrt_hann()
    loss, _, _, nxt = train.losses(model, noisy, clean, win, 1e-3, weights=dict(pesq_weight=1.0))
    loss.backward()
    assert torch.isfinite(loss) and model.embed.weight.grad.abs().sum() > 0, "band model: no gradient"
    state = train.carry_state(nxt, gen)
    assert [s.shape for s in state] == [s.shape for s in model.initial_state(2)], "band model: carried state's shapes"
    loss2, _, _, _ = train.losses(model, noisy, clean, win, 1e-3, state=state)
    assert torch.isfinite(loss2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "band.onnx"
        model.eval()
        export.export(model, path, export.contract_meta())
        d_tb, d_bs = export.parity(model, path, frames=60)
        heads = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]
                 for o in onnx.load(str(path)).graph.output if not o.name.startswith("state_out_")}
    assert max(d_tb, d_bs) < 1e-4, f"band model: ONNX parity {d_tb}, {d_bs}"
    assert heads["gains"] == [1, "T", vae.BINS] and heads["speech_prob"] == [1, "T"], heads
    print(f"ok  band model: streaming equals batch ({diff:.1e}), rebuilt from its weights, trains with the state "
          f"carried, ONNX parity {max(d_tb, d_bs):.1e} with heads {heads['gains']}")


def main():
    torch.manual_seed(0)
    spec = torch.randn(2, 50, vae.BINS, 2) * 3
    check_widen(spec)
    check_noise_floor()
    # long enough for the noise-floor window to slide, growing louder so that its floor moves
    frames = vae.NOISE_WIN + 60
    check_streaming(torch.randn(2, frames, vae.BINS, 2) * torch.linspace(0.1, 10, frames)[None, :, None, None])
    check_deep_filter(torch.randn(2, 40, vae.BINS, 2))
    check_perceptual_loss()
    check_pause_residual()
    check_anchors()
    check_critic()
    check_pitch_filter()
    check_import_onnx()
    check_lookahead()
    check_narrow(spec)
    check_median_f0()
    check_speed_change()
    check_extra_speech()
    check_fresh_draw()
    check_snr_range()
    check_band_model(torch.randn(2, vae.NOISE_WIN + 20, vae.BINS, 2) * torch.linspace(0.1, 10, vae.NOISE_WIN + 20)[None, :, None, None])
    return 0


if __name__ == "__main__":
    sys.exit(main())
