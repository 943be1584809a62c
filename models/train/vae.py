"""The streaming causal VAE denoiser (PyTorch), written so that batch and T=1 streaming
run the same code: every layer that looks at the past takes its memory as an explicit
state tensor and returns the next one. That is also the ONNX contract (models/README.md).

Signal path, per 10 ms hop (481 STFT bins at 48 kHz):
  noisy spectrum -> features: 40 log band energies (whole band) + compressed magnitudes of
  the first 192 bins (0-9.6 kHz, the harmonic region) [+ optional: the 40 band
  flatnesses; the 40 band levels above a tracked noise floor, with its own state tensor;
  both are on in the shipped model since gpu_v5, off in gpu_v4 and before]
  -> 2 causal convs over time (kernel 3: 20 ms of past context)
  -> encoder GRU -> Gaussian posterior q(z|x): mean, log-variance (64-d)
  -> z (sampled while training, the mean at inference)
  -> decoder GRU (input: z and the conv features, a conditional VAE)
  [-> a second, residual decoder GRU (dec_layers=2, see VaeDenoiser): in the shipped model
  since cpu_v19, session 10]
  -> per-bin gains in [0, 1] (481) and a speech probability
  [+ optional, not in the shipped model: deep-filter taps for the first 96 bins (deep_filter, see
  VaeDenoiser), with a phase-advance input for them (phase, see phase_advance); session 9].

The gain of bin k is sigmoid(b_k + a_k * (log P_k - log E_k)): P_k is the noisy power of
bin k, E_k the smooth envelope of the same frame (its 40 band energies spread back over the
bins), so the last factor is how far bin k stands above or below its neighbourhood: a
harmonic peak or the valley between two. b (481 values) and a (40 bands, spread to the bins)
come from the decoder state. The decoder state is 256 numbers (384 since gpu_v4); without that term it must
redraw the fine harmonic pattern of every frame to put its gains between the harmonics
(where the noise is in voiced speech), with it the frame's own spectrum supplies the detail
and the decoder decides per band and frame how strongly to follow it (a learned comb filter,
the job RNNoise gives its pitch filter). The term is optional (VaeDenoiser(peak_emphasis=True),
train.py --peak-emphasis): measured in run cpu_v8 (models/MODEL_CARD.md), it did not raise
PESQ-WB, and the shipped model is built without it. The a-head starts at zero, so a
checkpoint trained without the term loads into a model with it as the same model.
"""
import math

import numpy as np
import torch
import torch.nn as nn

SR = 48000
N_FFT = 960
HOP = 480
BINS = N_FFT // 2 + 1
N_BANDS = 40
FINE_BINS = 192
CONV_CH = 128
HIDDEN = 384  # gpu_v4 (gpu_v3 and before: 256)
LATENT = 64
CONV_K = 3
NOISE_WIN = 150  # frames (1.5 s) of the noise-floor features' minimum tracker (see noise_floor_snr)
NOISE_OFFSET = 10.0  # log10 powers are stored as NOISE_OFFSET - log10(p) > 0, so a zero state is never the minimum
DF_BINS = 96  # deep filtering (see VaeDenoiser deep_filter): bins 0..95, 0-4.75 kHz, as in DeepFilterNet
DF_ORDER = 5  # taps: this frame and the 4 before it (40 ms of past, no lookahead)
DEC2_HIDDEN = 256  # the second decoder layer's width (dec_layers=2): 384 would put the file over 10 MB
SLOPE_SCALE = 10.0  # the peak-emphasis head's output is scaled up: Adam moves it 10x faster than the other weights


def band_matrix(n_bands=N_BANDS, bins=BINS, sr=SR):
    """Triangular bands on the ERB scale, [bins, n_bands], columns sum-normalised."""
    f = np.arange(bins) * sr / 2 / (bins - 1)
    erb = lambda hz: 21.4 * np.log10(1 + 0.00437 * hz)  # noqa: E731
    centers = np.linspace(erb(0), erb(sr / 2), n_bands)
    e = erb(f)
    width = centers[1] - centers[0]
    m = np.maximum(0.0, 1 - np.abs(e[:, None] - centers[None, :]) / width)
    m /= m.sum(axis=0, keepdims=True) + 1e-9
    return m.astype(np.float32)


def band_spread():
    """[n_bands, bins]: band_matrix's triangles as each bin's share of each band (per bin summing
    to 1), which spreads a per-band value back over the bins."""
    spread = band_matrix().T
    return (spread / (spread.sum(axis=0, keepdims=True) + 1e-9)).astype(np.float32)


def band_flatness(power, band_power, bands):
    """[B, T, n_bands] the log spectral flatness of each band, scaled as the models take it:
    the band's mean log power minus the log of its mean power (both weighted by the band's
    triangle; <= 0 by Jensen). Noise sits near -0.58 (the value for exponentially distributed
    power), harmonics, hum and tones far below: a cue for voiced speech in every band."""
    log_flat = torch.log(power + 1e-9) @ bands - torch.log(band_power + 1e-9)
    return (log_flat + 0.58).clamp(min=-6.0) / 2.0


def peak_height(power, band_power, spread):
    """[B, T, bins] how far each bin stands above its band envelope (log10): a harmonic peak
    above 0, the valley between two below."""
    return torch.log10(power + 1e-9) - torch.log10(band_power @ spread + 1e-9)


def band_centres_hz(bands=None):
    """[n_bands] the centre frequency of each band of band_matrix() (its weighted mean)."""
    bands = band_matrix() if bands is None else bands
    return (np.arange(bands.shape[0]) * SR / 2 / (bands.shape[0] - 1)) @ bands


def sqrt_hann(n=N_FFT):
    # periodic Hann, square-rooted: with a 50% hop, window^2 sums to exactly 1 (perfect reconstruction)
    return torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n) / n))


class CausalConv(nn.Module):
    """Conv1d over time whose past (K-1 frames) is carried as state [1, C_in, K-1]."""

    def __init__(self, c_in, c_out, k=CONV_K):
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(c_in, c_out, k)

    def forward(self, x, state):  # x [B, C, T], state [B, C, K-1]
        xp = torch.cat([state, x], dim=2)
        return self.conv(xp), xp[:, :, -(self.k - 1):]


def noise_floor_snr(band_db, state):
    """Minimum statistics (Martin 2001), per band: the lowest 3-frame mean of the log band
    power over the last NOISE_WIN frames is the noise floor, and band_db minus it (a log
    a-posteriori SNR, 0 where the band sits at its floor) is what the model gets. A
    recurrent net must otherwise learn to carry 40 noise levels through its state; this
    hands it the classic estimate, the cue for how much of a band is noise in the middle of
    a word. band_db [B, T, N_BANDS] (log10 power), state [B, N_BANDS, NOISE_WIN - 1] (the
    past frames, stored as NOISE_OFFSET - log10 p, zero at the start of a stream: every real
    value is > 0, so zeros never count as a floor). Returns ([B, T, N_BANDS], next state);
    the same code runs a whole file and one frame at a time (ONNX: AveragePool, MaxPool)."""
    v = torch.cat([state, (NOISE_OFFSET - band_db).transpose(1, 2)], dim=2)  # [B, bands, W-1+T]
    smooth = torch.nn.functional.avg_pool1d(v, 3, stride=1)
    floor_db = NOISE_OFFSET - torch.nn.functional.max_pool1d(smooth, NOISE_WIN - 2, stride=1)  # [B, bands, T]
    return band_db - floor_db.transpose(1, 2), v[:, :, -(NOISE_WIN - 1):]


class VaeDenoiser(nn.Module):
    """hidden / conv_ch: widths of the two GRUs and of the conv features (since gpu_v4: 384 /
    128; until gpu_v3 256 / 128). `size_of(state_dict)` reads them back from a checkpoint.
    flatness: 40 more input features, the spectral flatness of each band (see features();
    train.py --flatness; on in the shipped model since gpu_v5).
    noise_floor: 40 more, each band's level above its tracked noise floor (noise_floor_snr),
    with one more state tensor (train.py --noise-floor; on since gpu_v5).
    deep_filter: one more output head, complex filter taps for the low bins (deep filtering,
    Schroeter et al. 2020, the filter DeepFilterNet applies below 5 kHz): the enhanced bin is
    gain * (X(t) + sum_i c_i * X(t - i)), i < DF_ORDER, for the first DF_BINS bins (enhance).
    A gain can only scale a 50 Hz wide bin, and in voiced speech a bin often holds a harmonic
    and the noise beside it; taps over the past frames can predict the periodic part and
    cancel the rest, the job RNNoise's pitch filter does with one fixed comb. The taps filter
    before the gains, as the pitch filter does: where the gains cut, whatever the taps add is
    cut too. (Added after the gains, the first form tried, the taps' noisy early values
    filled the pauses with noise just below the gains' output: 0.017 PESQ-WB lost at step 400
    of cpu_v18a, session 9.) Their head starts at zero, so a checkpoint without it loads as
    the same model (train.py --deep-filter).
    dec_layers: 2 adds a second decoder GRU on top of the first, with its own state tensor,
    whose output joins the first's through a projection that starts at zero (a residual
    layer): a checkpoint with one layer loads as the same model, and the new layer gets a
    voice only as the optimiser gives it one (train.py --dec-layers 2). Depth, not width:
    widening 256 -> 448 units moved nothing (session 5), and DeepFilterNet and PercepNet
    stack their recurrent layers. It is DEC2_HIDDEN (256) units wide, which keeps the file under
    the 10 MB budget (384 units: 10.75 MB)."""

    def __init__(self, peak_emphasis=False, hidden=HIDDEN, conv_ch=CONV_CH, flatness=False, noise_floor=False,
                 deep_filter=False, phase=False, dec_layers=1):
        super().__init__()
        self.peak_emphasis, self.flatness, self.noise_floor = peak_emphasis, flatness, noise_floor
        self.deep_filter, self.phase = deep_filter, phase
        if dec_layers not in (1, 2):
            raise ValueError(f"dec_layers must be 1 or 2, not {dec_layers}")
        self.dec_layers = dec_layers
        if phase:  # marks the variant in a checkpoint (shape_of)
            self.register_buffer("phase_bins", torch.tensor(DF_BINS))
        self.hidden, self.conv_ch = hidden, conv_ch
        self.register_buffer("bands", torch.from_numpy(band_matrix()))
        if noise_floor:  # marks the variant in a checkpoint (shape_of): its width alone could be flatness
            self.register_buffer("noise_win", torch.tensor(NOISE_WIN))
        n_in = (N_BANDS + FINE_BINS + (N_BANDS if flatness else 0) + (N_BANDS if noise_floor else 0)
                + (2 * DF_BINS if phase else 0))
        self.inp = nn.Linear(n_in, conv_ch)
        self.conv1 = CausalConv(conv_ch, conv_ch)
        self.conv2 = CausalConv(conv_ch, conv_ch)
        self.enc = nn.GRU(conv_ch, hidden, batch_first=True)
        self.mu = nn.Linear(hidden, LATENT)
        self.logvar = nn.Linear(hidden, LATENT)
        # conditional VAE: the decoder sees the latent and the encoder's conv features
        self.dec = nn.GRU(LATENT + conv_ch, hidden, batch_first=True)
        self.gain = nn.Linear(hidden, BINS)
        self.vad = nn.Linear(hidden, 1)
        nn.init.constant_(self.gain.bias, 2.0)  # start near pass-through (sigmoid(2) = 0.88)
        if deep_filter:
            self.df = nn.Linear(hidden, DF_BINS * DF_ORDER * 2)
            nn.init.zeros_(self.df.weight)  # taps 0: the gains alone, as without the head
            nn.init.zeros_(self.df.bias)
        if dec_layers == 2:
            self.dec2 = nn.GRU(hidden, DEC2_HIDDEN, batch_first=True)
            self.dec2_out = nn.Linear(DEC2_HIDDEN, hidden)
            nn.init.zeros_(self.dec2_out.weight)  # the one-layer model's gains at the start
            nn.init.zeros_(self.dec2_out.bias)
        if peak_emphasis:
            self._add_peak_emphasis()

    def _add_peak_emphasis(self):
        # peak-emphasis term (see the module docstring): a slope per band and frame
        self.peak_slope = nn.Linear(self.hidden, N_BANDS)
        nn.init.zeros_(self.peak_slope.weight)
        nn.init.zeros_(self.peak_slope.bias)
        self.register_buffer("spread", torch.from_numpy(band_spread()))

    @staticmethod
    def size_of(state_dict):
        """(hidden, conv_ch) of the model a checkpoint's weights belong to."""
        return state_dict["enc.weight_hh_l0"].shape[1], state_dict["inp.weight"].shape[0]

    @classmethod
    def shape_of(cls, state_dict):
        """The constructor arguments of the model a checkpoint's weights belong to."""
        hidden, conv_ch = cls.size_of(state_dict)
        noise_floor, phase = "noise_win" in state_dict, "phase_bins" in state_dict
        n_in = state_dict["inp.weight"].shape[1] - (N_BANDS if noise_floor else 0) - (2 * DF_BINS if phase else 0)
        return dict(hidden=hidden, conv_ch=conv_ch, peak_emphasis="peak_slope.weight" in state_dict,
                    flatness=n_in > N_BANDS + FINE_BINS, noise_floor=noise_floor,
                    deep_filter="df.weight" in state_dict, phase=phase,
                    dec_layers=2 if "dec2.weight_hh_l0" in state_dict else 1)

    @classmethod
    def for_weights(cls, state_dict):
        """An untrained model of the shape (size, optional parts) that state_dict fits;
        a smaller checkpoint grows into a larger model with widen_weights instead."""
        return cls(**cls.shape_of(state_dict))

    def initial_state(self, batch=1, device="cpu"):
        return [
            torch.zeros(batch, self.conv_ch, CONV_K - 1, device=device),
            torch.zeros(batch, self.conv_ch, CONV_K - 1, device=device),
            torch.zeros(1, batch, self.hidden, device=device),
            torch.zeros(1, batch, self.hidden, device=device),
        ] + ([torch.zeros(batch, N_BANDS, NOISE_WIN - 1, device=device)] if self.noise_floor else []) \
          + ([torch.zeros(batch, DF_BINS, 2, device=device)] if self.phase else []) \
          + ([torch.zeros(1, batch, DEC2_HIDDEN, device=device)] if self.dec_layers == 2 else [])

    def features(self, power, band_power, noise_state=None):
        """power [B, T, BINS], band_power [B, T, N_BANDS] -> (features, next noise state or None)
        (without the phase features: see phase_advance)."""
        band_db = torch.log10(band_power + 1e-9)  # ~[-9, 3]
        fine = (power[..., :FINE_BINS] + 1e-12) ** 0.15  # |X|^0.3
        feats = [(band_db + 4.0) / 4.0, fine]
        if self.flatness:  # the fine magnitudes give the voicing cue only below 9.6 kHz, and only through a linear layer
            feats.append(band_flatness(power, band_power, self.bands))
        nxt = None
        if self.noise_floor:
            snr_db, nxt = noise_floor_snr(band_db, noise_state)
            feats.append(snr_db / 2.0)  # log10 units: 0 at the floor, 1 per 20 dB above it
        return torch.cat(feats, dim=-1), nxt

    def forward(self, spec, *states, sample=False):
        """spec [B, T, BINS, 2]; states: initial_state()'s tensors (4, then one each for noise_floor,
        phase and the second decoder layer, in that order, when the model has them).
        Returns gains [B, T, BINS], speech_prob [B, T], uncertainty [B, T], mu, logvar, the
        next states, and the deep-filter taps [B, T, DF_BINS, DF_ORDER, 2] (None without)."""
        s0, s1, s2, s3 = states[:4]
        power = spec[..., 0] ** 2 + spec[..., 1] ** 2
        band_power = power @ self.bands
        feats, n4 = self.features(power, band_power, states[4] if self.noise_floor else None)
        n5 = None
        if self.phase:
            u, n5 = phase_advance(spec, states[4 + int(self.noise_floor)])
            feats = torch.cat([feats, u], dim=-1)
        f = torch.relu(self.inp(feats)).transpose(1, 2)  # [B, C, T]
        h, n0 = self.conv1(f, s0)
        h = torch.relu(h)
        h, n1 = self.conv2(h, s1)
        h = torch.relu(h).transpose(1, 2)  # [B, T, C]
        e, n2 = self.enc(h, s2)
        mu, logvar = self.mu(e), self.logvar(e).clamp(-12.0, 6.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        d, n3 = self.dec(torch.cat([z, h], dim=-1), s3)
        n6 = None
        if self.dec_layers == 2:
            d2, n6 = self.dec2(d, states[4 + int(self.noise_floor) + int(self.phase)])
            d = d + self.dec2_out(d2)
        logits = self.gain(d)
        if self.peak_emphasis:
            peak = peak_height(power, band_power, self.spread)
            logits = logits + SLOPE_SCALE * (self.peak_slope(d) @ self.spread) * peak
        gains = torch.sigmoid(logits)
        speech_prob = torch.sigmoid(self.vad(d))[..., 0]
        # per-frame posterior uncertainty: mean posterior std over the latent dims
        uncertainty = torch.exp(0.5 * logvar).mean(dim=-1)
        nxt = (n0, n1, n2, n3) + ((n4,) if self.noise_floor else ()) + ((n5,) if self.phase else ()) \
            + ((n6,) if self.dec_layers == 2 else ())
        df = None
        if self.deep_filter:  # tanh: each tap's re and im in (-1, 1), a filter that cannot blow up
            df = torch.tanh(self.df(d)).reshape(d.shape[0], d.shape[1], DF_BINS, DF_ORDER, 2)
        return gains, speech_prob, uncertainty, mu, logvar, nxt, df


def phase_advance(spec, prev):
    """The deep filter's phase input: per low bin, how far the phase turned since the last
    frame, as a unit phasor X(t) conj(X(t-1)) / |X(t) X(t-1)| (re, im), 0 where either is
    silent. The magnitude features say nothing about phase, yet a tap that adds a harmonic
    from one frame back must turn it by exactly this much (for a steady harmonic it follows
    its frequency within the bin: 2 pi f * 10 ms), so without it the taps can only be right
    on average. spec [B, T, BINS, 2], prev [B, DF_BINS, 2] (the last frame's low bins, zero at
    the start of a stream) -> ([B, T, 2 * DF_BINS], next prev). Real arithmetic (ONNX)."""
    low = spec[..., :DF_BINS, :]
    before = torch.cat([prev[:, None], low[:, :-1]], dim=1)
    a, b, c, d = low[..., 0], low[..., 1], before[..., 0], before[..., 1]
    re, im = a * c + b * d, b * c - a * d
    norm = torch.sqrt((a * a + b * b) * (c * c + d * d)) + 1e-9
    return torch.cat([re / norm, im / norm], dim=-1), low[:, -1]


def apply_deep_filter(X, df):
    """sum_i df[t, f, i] * X[t - i, f] for f < DF_BINS (complex; frames before the first count
    as zero, as they do at the start of a stream in src/dsp/deep_filter.rs). X [B, T, BINS]
    complex, df [B, T, DF_BINS, DF_ORDER, 2] -> [B, T, DF_BINS] complex."""
    low = torch.nn.functional.pad(X[..., :DF_BINS].transpose(1, 2), (DF_ORDER - 1, 0))  # [B, F, T+O-1]
    past = low.unfold(2, DF_ORDER, 1).flip(-1).transpose(1, 2)  # [B, T, F, O]: tap i = frame t - i
    c = torch.complex(df[..., 0], df[..., 1])
    return (c * past).sum(-1)


def enhance(X, gains, df, base=None):
    """The enhanced spectrum the Rust side resynthesises: the gains on `base` (the noisy
    spectrum X, or its pitch-filtered version), plus, on the low bins of a model with a deep
    filter, the gains on the taps' output over the noisy spectrum's past."""
    Y = (X if base is None else base) * gains
    if df is None:
        return Y
    low = Y[..., :DF_BINS] + gains[..., :DF_BINS] * apply_deep_filter(X, df)
    return torch.cat([low, Y[..., DF_BINS:]], dim=-1)


def widen_weights(src, model):
    """The weights of a smaller model (src, a state dict) fitted into `model`, which is as
    wide or wider, so that it computes the same gains: the old weights keep their places
    (in each GRU gate block), the new units get `model`'s fresh random weights for their own
    inputs, and every path from a new unit into an old one (or into an output head) starts at
    zero. The new units so run from the first step and learn, but change nothing until the
    optimiser gives them a voice (Net2Net-style widening, with zeros instead of copies)."""
    ho, co = VaeDenoiser.size_of(src)
    fo = src["inp.weight"].shape[1]  # input features: the flatness features come last
    hn, cn = model.hidden, model.conv_ch
    kinds = {  # per dimension: which width it runs over (out, in)
        "H3": lambda: [g * hn + i for g in range(3) for i in range(ho)],
        "H": lambda: list(range(ho)),
        "C": lambda: list(range(co)),
        "DEC_IN": lambda: list(range(LATENT)) + [LATENT + i for i in range(co)],
        "FEAT": lambda: list(range(fo)),
    }
    layout = {
        "inp": ("C", "FEAT"), "conv1.conv": ("C", "C"), "conv2.conv": ("C", "C"),
        "enc": ("H3", None), "dec": ("H3", None), "mu": (None, "H"), "logvar": (None, "H"),
        "gain": (None, "H"), "vad": (None, "H"), "peak_slope": (None, "H"), "df": (None, "H"),
    }
    gru_in = {"enc.weight_ih_l0": "C", "enc.weight_hh_l0": "H", "dec.weight_ih_l0": "DEC_IN", "dec.weight_hh_l0": "H"}
    out = {k: v.clone() for k, v in model.state_dict().items()}
    for name, old in src.items():
        new, prefix = out[name], name.rsplit(".", 1)[0]
        if prefix not in layout:  # buffers (band matrices): fixed size
            out[name] = old.clone()
            continue
        o_kind, i_kind = layout[prefix]
        i_kind = gru_in.get(name, i_kind)
        rows = torch.tensor(kinds[o_kind]() if o_kind else range(new.shape[0]))
        if old.dim() == 1:
            new[rows] = old
            continue
        cols = torch.tensor(kinds[i_kind]() if i_kind else range(new.shape[1]))
        new[rows[:, None], cols[None, :]] = old
        fresh_cols = torch.tensor(sorted(set(range(new.shape[1])) - set(cols.tolist())), dtype=torch.long)
        if len(fresh_cols):
            new[rows[:, None], fresh_cols[None, :]] = 0.0
    return out


def narrow_weights(src, keep_enc, keep_dec, mean_enc, mean_dec, mean_res):
    """The weights of a model (src, a state dict) cut down to fewer GRU units: the encoder
    keeps the units `keep_enc`, the decoder (and the residual stream the heads read) the
    units `keep_dec` (sorted index tensors into the old width). A dropped unit is not simply
    lost: its mean output over some audio (mean_enc / mean_dec: the GRUs' outputs, mean_res:
    the decoder's output after the second layer's projection is added) is folded into the
    biases of every layer that read it, so each consumer sees what it saw on average
    (structured pruning with mean compensation). The counterpart of widen_weights; the
    narrowed model then needs training (narrow.py, then train.py --init)."""
    h = src["enc.weight_hh_l0"].shape[1]
    out = {k: v.clone() for k, v in src.items()}

    def dropped(keep):
        mask = torch.ones(h, dtype=torch.bool)
        mask[keep] = False
        return mask

    def gate_rows(keep):
        return torch.cat([g * h + keep for g in range(3)])

    def fold(weight, bias, mask, mean):
        """bias += weight's dropped columns times their mean input; weight keeps the rest."""
        out[bias] = out[bias] + out[weight][:, mask] @ mean[mask]
        out[weight] = out[weight][:, ~mask]

    for gru, keep, mean in (("enc", keep_enc, mean_enc), ("dec", keep_dec, mean_dec)):
        mask = dropped(keep)
        fold(f"{gru}.weight_hh_l0", f"{gru}.bias_hh_l0", mask, mean)  # inside r * (W h + b): exact for n too
        rows = gate_rows(keep)
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            out[f"{gru}.{name}"] = out[f"{gru}.{name}"][rows]
    mask_e, mask_d = dropped(keep_enc), dropped(keep_dec)
    for head in ("mu", "logvar"):
        fold(f"{head}.weight", f"{head}.bias", mask_e, mean_enc)
    for head in ("gain", "vad", "df", "peak_slope"):
        if f"{head}.weight" in out:
            fold(f"{head}.weight", f"{head}.bias", mask_d, mean_res)
    if "dec2.weight_ih_l0" in out:
        fold("dec2.weight_ih_l0", "dec2.bias_ih_l0", mask_d, mean_dec)
        out["dec2_out.weight"] = out["dec2_out.weight"][keep_dec]
        out["dec2_out.bias"] = out["dec2_out.bias"][keep_dec]
    return out


def count_macs_per_frame(model):
    """Multiply-accumulates per 10 ms hop (matrix products only)."""
    h, c = model.hidden, model.conv_ch
    macs = BINS * N_BANDS  # band energies
    macs += model.inp.in_features * c
    if model.flatness:
        macs += BINS * N_BANDS
    # noise_floor: comparisons and additions only (about N_BANDS * NOISE_WIN per frame), no MACs
    macs += 2 * c * c * CONV_K
    macs += 3 * (c * h + h * h)
    macs += 2 * h * LATENT
    macs += 3 * ((LATENT + c) * h + h * h)
    if model.dec_layers == 2:
        macs += 3 * (h * DEC2_HIDDEN + DEC2_HIDDEN**2) + DEC2_HIDDEN * h  # the second GRU and its projection
    macs += h * (BINS + 1)
    if model.peak_emphasis:
        macs += h * N_BANDS + 2 * N_BANDS * BINS
    if model.phase:
        macs += 4 * DF_BINS  # the phasors (their share of the input layer is in inp.in_features)
    if model.deep_filter:
        macs += h * DF_BINS * DF_ORDER * 2 + 4 * DF_BINS * DF_ORDER  # the head, the complex taps
    return macs
