"""RNNoise's pitch filter in PyTorch, the same as `src/dsp/pitch.rs` (which `denoised`
applies by default before the model's gains), for training with it in the loop
(`train.py --pitch-filter`): the model then learns gains for the filtered spectrum that the
product really resynthesises, instead of the raw one.

The pitch window P depends on the noisy input alone (no gradient): for every frame, the
960 samples one pitch period earlier, the period being the lag of 2-16 ms with the highest
normalised correlation between the frame and the input that lag before it. The filter
itself depends on the model's gains through each band's gain, so the loss's gradient flows
through it. `checks.py` holds this against the numpy reference in `diagnose.py`.
"""
import numpy as np
import torch

from vae import HOP, N_FFT, band_matrix

LAG_MIN, LAG_MAX = 96, 768  # 2-16 ms at 48 kHz, as dsp::pitch
CORR_FFT = 4096
MIN_GAIN = 10 ** (-30 / 20)  # denoised's default attenuation limit, as the filter sees the gains


def spread_matrix():
    """[bands, bins]: each bin's share of each band, summing to 1 over the bands of a bin."""
    s = band_matrix().T
    return s / (s.sum(axis=0, keepdims=True) + 1e-12)


@torch.no_grad()
def pitch_frames(x, win):
    """x [B, L] (the signal train.stft frames: frame t covers x[t*HOP : t*HOP + N_FFT]) ->
    [B, T, BINS] complex, the spectrum of each frame's window one pitch period earlier
    (zeros before the start)."""
    B = x.shape[0]
    xp = torch.nn.functional.pad(x, (LAG_MAX, 0))
    hist = xp.unfold(1, LAG_MAX + N_FFT, HOP)  # [B, T, 1728]: LAG_MAX samples before each frame, then it
    cur = hist[..., LAG_MAX:]
    corr = torch.fft.irfft(torch.fft.rfft(hist, CORR_FFT) * torch.conj(torch.fft.rfft(cur, CORR_FFT)), CORR_FFT)
    energy = torch.nn.functional.pad(torch.cumsum(hist.double() ** 2, -1), (1, 0))
    lags = torch.arange(LAG_MIN, LAG_MAX + 1, device=x.device)
    j = LAG_MAX - lags  # hist[..., j : j + N_FFT] is the window `lag` samples back
    past = energy[..., j + N_FFT] - energy[..., j]
    cur_e = (cur.double() ** 2).sum(-1, keepdim=True)
    score = corr[..., j].double() / torch.sqrt(cur_e * past + 1e-18)
    lag = lags[torch.argmax(score, dim=-1)]  # the first maximum: the shortest such lag
    idx = (LAG_MAX - lag).unsqueeze(-1) + torch.arange(N_FFT, device=x.device)
    return torch.fft.rfft(torch.gather(hist, 2, idx) * win, dim=-1)


def pitch_filtered(X, P, gains, bands, spread, min_gain=MIN_GAIN):
    """X, P [B, T, BINS] complex, gains [B, T, BINS]; bands [BINS, 40], spread [40, BINS].
    The filtered spectrum, before the gains (see dsp::pitch for the formula)."""
    eps = 1e-12
    px, pp = X.real ** 2 + X.imag ** 2, P.real ** 2 + P.imag ** 2
    ex, ep = px @ bands + eps, pp @ bands + eps
    corr = ((X * torch.conj(P)).real @ bands / torch.sqrt(ex * ep)).clamp(0.0, 0.999)
    g = gains.clamp(min_gain, 1.0)
    # (clamped inside the root: digital silence gives 0 and an infinite gradient there)
    gb = torch.sqrt((((g ** 2) * px) @ bands / ex).clamp_min(1e-12)).clamp(1e-3, 1.0)
    r2 = torch.where(corr > gb, torch.ones_like(gb),
                     corr ** 2 * (1 - gb ** 2) / (1e-3 + gb ** 2 * (1 - corr ** 2)))
    coef = torch.sqrt((r2.clamp(0.0, 1.0) * ex / ep).clamp_min(1e-20))
    Xf = X + (coef @ spread) * P
    ef = (Xf.real ** 2 + Xf.imag ** 2) @ bands + eps
    return Xf * (torch.sqrt(ex / ef) @ spread)


def torch_spread(device):
    return torch.from_numpy(spread_matrix().astype(np.float32)).to(device)
