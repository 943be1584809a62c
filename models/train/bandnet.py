"""A band-wise streaming VAE (train.py --arch band; session 25): the same contract, inputs and
outputs as vae.VaeDenoiser, but most of its weights are shared across the 40 ERB bands.

Why: VaeDenoiser reads the whole frame through dense layers, so what it learns about a band
at 1 kHz teaches it nothing about the band at 2 kHz; every band's rules are learned from that
band's examples alone. Models that process the spectrum band by band with shared weights
(dual-path and band-split designs: DPCRN, GTCRN, DeepFilterNet's ERB encoder) are reported to
learn more from each example. The notebook's estimate (EXPERIMENTS.md, session 10) is that the
bar needs a model that learns more per example, not more steps of this one; this is the first
such model tried here, from scratch, beside VaeDenoiser from scratch as its control.

Measured (EXPERIMENTS.md, session 25, cpu_v75 against cpu_v74): this design did not learn
more per example over its first 1,000 steps (validation loss behind from step 300 on, PESQ-WB
level); it is kept as a working, tested starting point for other band-wise designs.

Signal path, per 10 ms hop:
  noisy spectrum -> per band (40 ERB bands): log energy, log spectral flatness, level above
  the tracked noise floor (vae.noise_floor_snr), and the mean height of the band's bins above
  the band's smooth envelope (how peaked, i.e. harmonic, it is) -> 4 numbers per band
  -> a shared Linear(4 -> C) plus a learned embedding per band (which band this is)
  -> causal conv over time x frequency (3 frames x 3 bands), then over time (3 frames)
  -> encoder: a GRU over time per band (weights shared by all bands, state per band)
     + a bidirectional GRU across the bands of the frame (residual): the bands talk
  -> posterior q(z|x) per band and frame: mean, log-variance (8-d each, 320 per frame)
  -> decoder: a GRU over time per band on [z, conv features] (a conditional VAE)
  -> per-bin gains: a two-layer head from all bands' decoder states to the 481 bins, plus, per band,
     a learned slope times each bin's height above the band envelope (a comb that follows the
     harmonics, which a band model cannot draw otherwise); speech probability from the mean
     over bands.

Every state is batch-first ([B, ...], zero at a stream's start), as train.carry_state expects.
"""
import torch
import torch.nn as nn

import vae
from vae import BINS, CONV_K, N_BANDS, NOISE_WIN

BAND_FEATS = 4
BAND_CH = 24  # per-band conv features
BAND_HIDDEN = 32  # per-band encoder / decoder GRU state
INTRA_HIDDEN = 16  # per direction, across the bands
BAND_LATENT = 8  # per band
OUT_HIDDEN = 192  # the gain head's bottleneck: a full Linear(40 x 32 -> 481) tripled the step time


class BandVae(nn.Module):
    """The band-wise model. Has the attributes train.py and export.py read from a VaeDenoiser
    (bands, deep_filter, initial_state, state_names) so that both drive either."""

    deep_filter = False
    phase = False
    STATE_NAMES = ["band_conv1", "band_conv2", "band_enc_gru", "band_dec_gru", "noise_floor"]

    def __init__(self, ch=BAND_CH, hidden=BAND_HIDDEN, intra=INTRA_HIDDEN, latent=BAND_LATENT):
        super().__init__()
        self.ch, self.hidden, self.intra, self.latent = ch, hidden, intra, latent
        self.register_buffer("bands", torch.from_numpy(vae.band_matrix()))
        self.register_buffer("spread", torch.from_numpy(vae.band_spread()))
        self.embed = nn.Linear(BAND_FEATS, ch)
        self.band_emb = nn.Parameter(torch.zeros(N_BANDS, ch))  # also marks the arch in a checkpoint
        self.conv1 = nn.Conv2d(ch, ch, (CONV_K, 3), padding=(0, 1))  # time x frequency
        self.conv2 = nn.Conv2d(ch, ch, (CONV_K, 1))  # time only
        self.enc = nn.GRU(ch, hidden, batch_first=True)
        self.across = nn.GRU(hidden, intra, batch_first=True, bidirectional=True)
        self.across_out = nn.Linear(2 * intra, hidden)
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec = nn.GRU(latent + ch, hidden, batch_first=True)
        self.gain_in = nn.Linear(N_BANDS * hidden, OUT_HIDDEN)
        self.gain = nn.Linear(OUT_HIDDEN, BINS)
        self.slope = nn.Linear(hidden, 1)
        self.vad = nn.Linear(hidden, 1)
        nn.init.constant_(self.gain.bias, 2.0)  # start near pass-through, as VaeDenoiser does
        nn.init.zeros_(self.slope.weight)
        nn.init.zeros_(self.slope.bias)

    @staticmethod
    def is_band(state_dict):
        return "band_emb" in state_dict

    @classmethod
    def for_weights(cls, state_dict):
        ch = state_dict["embed.weight"].shape[0]
        hidden = state_dict["enc.weight_hh_l0"].shape[1]
        intra = state_dict["across.weight_hh_l0"].shape[1]
        latent = state_dict["mu.weight"].shape[0]
        return cls(ch=ch, hidden=hidden, intra=intra, latent=latent)

    def state_names(self):
        return list(self.STATE_NAMES)

    def initial_state(self, batch=1, device="cpu"):
        z = lambda *s: torch.zeros(batch, *s, device=device)  # noqa: E731
        return [z(self.ch, (CONV_K - 1) * N_BANDS), z(self.ch, (CONV_K - 1) * N_BANDS),
                z(N_BANDS, self.hidden), z(N_BANDS, self.hidden), z(N_BANDS, NOISE_WIN - 1)]

    def count_macs_per_frame(self):
        c, h, i, nb = self.ch, self.hidden, self.intra, N_BANDS
        macs = 2 * BINS * nb  # band energies, flatness
        macs += nb * BAND_FEATS * c + nb * c * c * CONV_K * 3 + nb * c * c * CONV_K  # embedding, convs
        macs += nb * 3 * (c * h + h * h)  # encoder GRU
        macs += nb * 2 * 3 * (h * i + i * i) + nb * 2 * i * h  # across the bands, and back
        macs += nb * 2 * h * self.latent  # posterior
        macs += nb * 3 * ((self.latent + c) * h + h * h)  # decoder GRU
        macs += nb * h * OUT_HIDDEN + OUT_HIDDEN * BINS + nb * h * 2 + nb * BINS  # gains, slopes, speech prob., comb
        return macs

    def _conv(self, conv, x, state):
        """x [B, C, T, NB]; state [B, C, (K-1) * NB] the last K-1 frames -> (y, next state)."""
        B, C, T, NB = x.shape
        xp = torch.cat([state.reshape(B, C, CONV_K - 1, NB), x], dim=2)
        return conv(xp), xp[:, :, -(CONV_K - 1):].reshape(B, C, (CONV_K - 1) * NB)

    def _per_band_gru(self, gru, x, state):
        """x [B, T, NB, D], state [B, NB, H] -> ([B, T, NB, H], next state): one GRU over time
        for every band, the bands folded into the batch."""
        B, T, NB, D = x.shape
        y, n = gru(x.transpose(1, 2).reshape(B * NB, T, D), state.reshape(1, B * NB, -1))
        return y.reshape(B, NB, T, -1).transpose(1, 2), n.reshape(B, NB, -1)

    def forward(self, spec, *states, sample=False):
        """spec [B, T, BINS, 2]; states: initial_state()'s. Returns what VaeDenoiser.forward
        returns: gains [B, T, BINS], speech_prob [B, T], uncertainty [B, T], mu, logvar
        ([B, T, NB * latent]), the next states, and None (no deep filter)."""
        s_c1, s_c2, s_enc, s_dec, s_floor = states
        B, T = spec.shape[0], spec.shape[1]
        power = spec[..., 0] ** 2 + spec[..., 1] ** 2
        band_power = power @ self.bands
        band_db = torch.log10(band_power + 1e-9)
        flat = vae.band_flatness(power, band_power, self.bands)
        snr_db, n_floor = vae.noise_floor_snr(band_db, s_floor)
        peak = vae.peak_height(power, band_power, self.spread)  # the detail the gains follow
        peaked = torch.relu(peak) @ self.bands
        # level and level above the floor scaled as VaeDenoiser.features scales them
        feats = torch.stack([(band_db + 4.0) / 4.0, flat, snr_db / 2.0, peaked], dim=-1)  # [B, T, NB, 4]
        f = torch.relu(self.embed(feats) + self.band_emb).permute(0, 3, 1, 2)  # [B, C, T, NB]
        h, n_c1 = self._conv(self.conv1, f, s_c1)
        h, n_c2 = self._conv(self.conv2, torch.relu(h), s_c2)
        h = torch.relu(h).permute(0, 2, 3, 1)  # [B, T, NB, C]
        e, n_enc = self._per_band_gru(self.enc, h, s_enc)
        a, _ = self.across(e.reshape(B * T, N_BANDS, self.hidden))  # within the frame: no state
        e = e + self.across_out(a).reshape(B, T, N_BANDS, self.hidden)
        mu, logvar = self.mu(e), self.logvar(e).clamp(-12.0, 6.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        d, n_dec = self._per_band_gru(self.dec, torch.cat([z, h], dim=-1), s_dec)
        logits = self.gain(torch.relu(self.gain_in(d.reshape(B, T, N_BANDS * self.hidden))))
        logits = logits + (self.slope(d)[..., 0] @ self.spread) * peak * 4.0
        gains = torch.sigmoid(logits)
        speech_prob = torch.sigmoid(self.vad(d.mean(dim=2)))[..., 0]
        uncertainty = torch.exp(0.5 * logvar).mean(dim=(-1, -2))
        nxt = (n_c1, n_c2, n_enc, n_dec, n_floor)
        return (gains, speech_prob, uncertainty, mu.reshape(B, T, -1), logvar.reshape(B, T, -1), nxt, None)


def for_weights(state_dict):
    """The model (VaeDenoiser or BandVae, untrained) that a checkpoint's weights fit."""
    return BandVae.for_weights(state_dict) if BandVae.is_band(state_dict) else vae.VaeDenoiser.for_weights(state_dict)


def count_macs_per_frame(model):
    """Multiply-accumulates per 10 ms hop of either model (the export's metadata)."""
    return model.count_macs_per_frame() if isinstance(model, BandVae) else vae.count_macs_per_frame(model)
