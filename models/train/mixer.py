"""On-the-fly noisy/clean mixtures, as batched torch ops (CPU or GPU).

Every batch is new: random speech segment, optional room (simulated RIR), optional
synthetic full-band extension of band-limited speech, one or two noises (real recordings
or one of eight synthetic families; with noise_aug, also sped-up or slowed-down, tilted
recordings and a ninth family, band hiss), SNR -5..25 dB, level -45..-10 dBFS, microphone
colouration and band limiting, plus noise-only and speech-only examples.

The training target is the speech with the direct path and early reflections (first
50 ms) of the room, so the model is asked to remove the late reverberation too (a partial
dereverberation, as in the DNS challenge's targets). With room_target="full" the target
keeps the whole room (pure noise removal, what RNNoise and NoiseTorch do).
"""
import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

SR = 48000
EARLY_SAMPLES = 2400  # 50 ms: direct path + early reflections kept in the target
MU = 255.0  # mu-law constant of the stored room impulse responses


def mulaw_encode(x):
    """Peak-normalised RIRs -> int8 mu-law: half the bytes of float16 (the corpus must fit a
    lent GPU machine), and the quiet reverberant tail keeps a fine step (about 4 % of a
    sample at -40 dB), far below any noise the model is trained with."""
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return np.round(np.clip(y, -1, 1) * 127).astype(np.int8)


def mulaw_decode(q):
    y = q.astype(np.float32) / 127
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU).astype(np.float32)


def save_rirs(corpus_dir, split, rirs_mulaw):
    # zip-compressed: the short rooms' silent tails code to 0 and pack well (5.8 -> 2.7 MB)
    np.savez_compressed(Path(corpus_dir) / f"{split}_rirs.npz", rirs=rirs_mulaw)


def load_rirs(corpus_dir, split):
    """[N, RIR_SAMPLES] float32: from {split}_rirs.npz (int8 mu-law), or from the
    {split}_rirs.npy of older corpora (int8 mu-law or float16)."""
    d = Path(corpus_dir)
    if (d / f"{split}_rirs.npz").exists():
        r = np.load(d / f"{split}_rirs.npz")["rirs"]
    else:
        r = np.load(d / f"{split}_rirs.npy")
    return mulaw_decode(r) if r.dtype == np.int8 else r.astype(np.float32)


class Corpus:
    def __init__(self, corpus_dir, split, device, extra_speech=False):
        d = Path(corpus_dir)
        index = json.loads((d / "index.json").read_text())
        self.device = device
        self.speech = self._load(d / f"{split}_speech.ogg")
        self.noise = self._load(d / f"{split}_noise.ogg")
        sc = index[f"{split}_speech"]
        extra = d / f"{split}_speech_extra.ogg"
        if extra_speech and f"{split}_speech_extra" in index and extra.exists():
            # the MBROLA voices (build_corpus.build_mbrola): appended, their clips shifted
            # past the first file (non-commercial voices: only when asked); a corpus carried
            # without the file trains without them
            base = len(self.speech)
            self.speech = torch.cat([self.speech, self._load(extra)])
            sc = sc + [dict(c, start=c["start"] + base) for c in index[f"{split}_speech_extra"]]
        nc = index[f"{split}_noise"]
        n_s, n_n = len(self.speech), len(self.noise)
        self.s_start = torch.tensor([min(c["start"], n_s - 1) for c in sc], device=device)
        self.s_len = torch.tensor([max(1, min(c["len"], n_s - c["start"])) for c in sc], device=device)
        self.s_band = torch.tensor([float(c["band_hz"]) for c in sc], device=device)
        self.n_start = torch.tensor([min(c["start"], n_n - 1) for c in nc], device=device)
        self.n_len = torch.tensor([max(1, min(c["len"], n_n - c["start"])) for c in nc], device=device)
        # the independent evaluation corpus (build_independent.py) has no rooms
        has_rirs = (d / f"{split}_rirs.npz").exists() or (d / f"{split}_rirs.npy").exists()
        self.rirs = torch.from_numpy(load_rirs(d, split)).to(device) if has_rirs else None
        self.s_voice = [f"{c['source']}/{c['voice']}" for c in sc]

    def _load(self, path):
        x, sr = sf.read(str(path), dtype="float32")
        assert sr == SR, f"{path}: {sr} Hz"
        return torch.from_numpy(x).to(self.device)


def _segments(buf, starts, lens, n, L, gen, loop):
    """n segments of L samples from clips (start, len); short clips are looped (noise) or
    placed at a random offset in silence (speech)."""
    dev = buf.device
    k = torch.randint(len(starts), (n,), generator=gen, device=dev)
    st, ln = starts[k], lens[k]
    t = torch.arange(L, device=dev)[None, :]
    if loop:
        off = (torch.rand(n, generator=gen, device=dev) * ln).long()
        idx = st[:, None] + (off[:, None] + t) % ln[:, None]
        return buf[idx], k
    # speech: a random window of the clip; when the clip is shorter than L it sits at a
    # random place in silence (so the model sees speech onsets and offsets)
    span = (ln - L).clamp(min=0)
    off = (torch.rand(n, generator=gen, device=dev) * (span + 1)).long()
    pad = ((L - ln).clamp(min=0) * torch.rand(n, generator=gen, device=dev)).long()
    rel = t - pad[:, None] + off[:, None]
    valid = (rel >= 0) & (rel < ln[:, None])
    idx = st[:, None] + rel.clamp(min=0)
    idx = torch.minimum(idx, (st + ln - 1)[:, None])
    return buf[idx] * valid, k


def _fft_filter(x, gain_fn):
    X = torch.fft.rfft(x, dim=-1)
    f = torch.linspace(0, SR / 2, X.shape[-1], device=x.device)
    return torch.fft.irfft(X * gain_fn(f), n=x.shape[-1], dim=-1)


def _conv(x, h):
    n = x.shape[-1] + h.shape[-1] - 1
    nfft = 1 << (n - 1).bit_length()
    y = torch.fft.irfft(torch.fft.rfft(x, nfft) * torch.fft.rfft(h, nfft), nfft)
    return y[..., : x.shape[-1]]


def _rms(x):
    return torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-12)


def synth_noise(n, L, gen, dev, corpus, family=None, families=8, drop=()):
    """Synthetic noise, one family (random among the first `families`, or `family`) per
    row: eight families, nine with the hiss family of noise_aug. Each family is computed
    only for the rows that use it (this runs twice per training batch). drop: names from
    DROPPABLE, left out of the draw (see make_batch); empty, the draws are as they always were."""
    fams = list(_FAMILIES)
    if "babble" in drop:  # the babble-or-rumble family gives only rumble
        fams[_FAMILIES.index(_babble_or_rumble)] = lambda *a: _babble_or_rumble(*a, babble_share=0.0)
    if "music" in drop:
        allowed = torch.tensor([i for i in range(families) if _FAMILIES[i] is not _music], device=dev)
        kind = allowed[torch.randint(len(allowed), (n,), generator=gen, device=dev)]
    else:
        kind = torch.randint(families, (n,), generator=gen, device=dev)
    if family is not None:
        kind = torch.full_like(kind, family)
    out = torch.zeros(n, L, device=dev)
    for fam in range(len(fams)):
        rows = (kind == fam).nonzero()[:, 0]
        if len(rows):
            out[rows] = fams[fam](len(rows), L, gen, dev, corpus)
    return out / _rms(out)


def _power_law(expo):
    # 0 white, 0.5 pink, 1 brown
    def make(m, L, gen, dev, corpus):
        white = torch.randn(m, L, generator=gen, device=dev)
        return _fft_filter(white, lambda f: (f.clamp(min=20) / 1000) ** -expo)
    return make


def _hum(m, L, gen, dev, corpus):
    # mains hum with harmonics (50 or 60 Hz) on a little hiss
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    t = torch.arange(L, device=dev)[None, :] / SR
    f0 = torch.where(r(m, 1) < 0.5, 50.0, 60.0)
    hum = sum(torch.sin(2 * math.pi * f0 * h * t + r(m, 1) * 6.28) / h ** r(m, 1).add(0.5) for h in range(1, 12))
    return hum + 0.05 * torch.randn(m, L, generator=gen, device=dev)


def _fan(m, L, gen, dev, corpus):
    # fan / HVAC: low-passed noise, blade tone, slow modulation
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    t = torch.arange(L, device=dev)[None, :] / SR
    white = torch.randn(m, L, generator=gen, device=dev)
    fan = _fft_filter(white, lambda f: 1 / (1 + (f / 400) ** 2)) * (1 + 0.3 * torch.sin(2 * math.pi * r(m, 1) * 0.5 * t))
    return fan / _rms(fan) + 0.5 * torch.sin(2 * math.pi * (80 + 200 * r(m, 1)) * t)


def _clicks(m, L, gen, dev, corpus):
    # clicks and impulsive transients (keyboard, taps)
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    clicks = (r(m, L) < (2 + 20 * r(m, 1)) / SR).float() * torch.randn(m, L, generator=gen, device=dev)
    decay = torch.exp(-torch.arange(480, device=dev) / (20 + 200 * r(m, 1)))
    clicks = _conv(clicks, decay * torch.randn(m, 480, generator=gen, device=dev))
    return clicks + 0.01 * torch.randn(m, L, generator=gen, device=dev)


def _music(m, L, gen, dev, corpus):
    # music-like tonal material: random notes with harmonics, changing every 0.2-0.6 s
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    note_len = (0.2 + 0.4 * r(m, 1)) * SR
    idx = (torch.arange(L, device=dev)[None, :] / note_len).long()
    freqs = 110 * 2 ** (torch.randint(0, 36, (m, 64), generator=gen, device=dev) / 12)
    f = torch.gather(freqs, 1, idx.clamp(max=63))
    phase = torch.cumsum(2 * math.pi * f / SR, dim=1)
    return sum(torch.sin(h * phase) / h for h in range(1, 6))


def _babble_or_rumble(m, L, gen, dev, corpus, babble_share=0.7):
    # babble: 5 other talkers summed (babble_share, 70 %), or modulated rumble
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    t = torch.arange(L, device=dev)[None, :] / SR
    babble = sum(_segments(corpus.speech, corpus.s_start, corpus.s_len, m, L, gen, loop=True)[0] for _ in range(5))
    white = torch.randn(m, L, generator=gen, device=dev)
    rumble = _fft_filter(white, lambda f: 1 / (1 + (f / 120) ** 4)) * (1 + 0.8 * torch.sin(2 * math.pi * 2 * r(m, 1) * t))
    return torch.where(r(m, 1) < babble_share, babble, rumble)


def _hiss(m, L, gen, dev, corpus):
    """Band noise in any register, steady, slowly swelling or in bursts: spray, steam, rain,
    wind gusts, rustle, a kettle. The other families put their broadband energy low (fan,
    rumble) or spread it evenly (white/pink/brown); held-out recordings with most of their
    energy at 2-8 kHz and an uneven envelope were left nearly untouched (evaluation of
    gpu_v3), and that is where fricatives live: the model must learn to tell them apart."""
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    centre_hz = 300 * 2 ** (5.5 * r(m, 1))  # 300 Hz .. 13.6 kHz
    width_oct = 0.3 + 2.7 * r(m, 1)
    white = torch.randn(m, L, generator=gen, device=dev)
    band = _fft_filter(white, lambda f: torch.exp(-0.5 * (torch.log2(f.clamp(min=20) / centre_hz) / (width_oct / 2)) ** 2))
    # envelope on a 10 ms grid: bursts (events with a random decay) or a slow swell
    frames = L // 480 + 2
    events = (r(m, frames) < (0.5 + 5.5 * r(m, 1)) / 100).float() * (0.2 + r(m, frames))
    decay = torch.exp(-torch.arange(100, device=dev)[None, :] / (3 + 50 * r(m, 1)))
    bursts = _conv(events, decay)
    swell = _conv(torch.randn(m, frames, generator=gen, device=dev), torch.hann_window(2 + int(40 * r(1).item()), device=dev)[None, :])
    swell = 1 + 0.9 * torch.tanh(swell / _rms(swell))
    kind = r(m, 1)
    env = torch.where(kind < 0.4, bursts + 0.02, torch.where(kind < 0.75, swell, torch.ones_like(swell)))
    env = F.interpolate(env[:, None], size=L, mode="linear", align_corners=False)[:, 0]
    return band / _rms(band) * env


_FAMILIES = [_power_law(0.0), _power_law(0.5), _power_law(1.0), _hum, _fan, _clicks, _music, _babble_or_rumble, _hiss]
N_BASE_FAMILIES = 8  # the corpus-era families; noise_aug adds _hiss
# families that make_batch(drop=...) can leave out: the harmonic ones, whose pitched,
# formant-free or speech-like sound teaches the model that a held voiced sound may be noise
DROPPABLE = ("music", "babble")


def _resampled_segments(buf, starts, lens, n, L, gen, speed):
    """As _segments(loop=True), each row played `speed` times faster (pitch and spectrum
    shift with it), by linear interpolation between samples: an augmentation of noise
    recordings, where the small aliasing above 17 kHz a speed-up folds back is harmless."""
    dev = buf.device
    k = torch.randint(len(starts), (n,), generator=gen, device=dev)
    st, ln = starts[k], lens[k].float()
    pos = torch.rand(n, 1, generator=gen, device=dev) * ln[:, None] + torch.arange(L, device=dev)[None, :] * speed
    pos = torch.remainder(pos, ln[:, None])
    i0 = pos.floor()
    frac = pos - i0
    i1 = torch.remainder(i0 + 1, ln[:, None])
    return buf[st[:, None] + i0.long()] * (1 - frac) + buf[st[:, None] + i1.long()] * frac


def speed_change(x, speed):
    """Each row of x (n, L) played `speed` (n, 1) times faster: y[t] = x[t * speed], by
    4-point cubic (Catmull-Rom) interpolation, whose response stays within 1.5 dB up to
    12 kHz (checks.py) where linear interpolation loses up to 2 dB at 10 kHz. Beyond the
    row's end the output is silence. Pitch and formants move together, as in Kaldi's speed
    perturbation: the same talker with a shorter or longer vocal tract."""
    n, L = x.shape
    pos = torch.arange(L, device=x.device, dtype=x.dtype)[None, :] * speed
    i1 = pos.floor().long()
    u = pos - i1
    pad = F.pad(x, (1, 3))  # x[-1] and x[L..L+1] read as 0

    def at(k):
        return torch.gather(pad, 1, (i1 + k + 1).clamp(0, L + 3))

    p0, p1, p2, p3 = at(-1), at(0), at(1), at(2)
    y = p1 + 0.5 * u * (p2 - p0 + u * (2 * p0 - 5 * p1 + 4 * p2 - p3 + u * (3 * (p1 - p2) + p3 - p0)))
    return y * (pos < L - 1).to(x.dtype)


# the training range; the validation sets use -5, 0, 5, 10 and 20 dB (evaluate.SNRS)
SNR_DB_RANGE = (-5.0, 25.0)


def make_batch(corpus, n, L, gen, noise_aug=False, room_target="early", drop=(), real_share=0.55, speech_speed=0.0,
               snr_db_range=SNR_DB_RANGE):
    """noise_aug (train.py --noise-aug): real recordings played at 0.7-1.4x speed (half of
    them) with a random spectral tilt, and the hiss family among the synthetic noises.
    room_target (train.py --room-target): "early" keeps the first 50 ms of the room in the
    target, "full" all of it (the input always gets the full room).
    drop (train.py --drop-noise): synthetic families left out, names from DROPPABLE.
    real_share (train.py --real-noise-share): the share of examples whose main noise is a
    real recording rather than a synthetic family.
    speech_speed (train.py --speech-speed): half of the speech segments are played at a
    speed drawn log-uniformly within 1/(1 + s) .. 1 + s (speed_change): new voices from the
    training talkers, for voices the model never heard.
    snr_db_range (train.py --snr-db): the mixtures' SNR is drawn uniformly within it. The same
    number of random draws is made whatever the range, so two runs with one seed and different
    ranges see the same speech, noise, rooms and levels."""
    unknown = set(drop) - set(DROPPABLE)
    if unknown:
        raise ValueError(f"drop: unknown noise families {sorted(unknown)}, known: {DROPPABLE}")
    dev = corpus.speech.device
    r = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    speech, k = _segments(corpus.speech, corpus.s_start, corpus.s_len, n, L, gen, loop=False)
    band = corpus.s_band[k]
    if speech_speed > 0:
        log_s = math.log1p(speech_speed)
        speed = torch.where(r(n, 1) < 0.5, torch.exp((2 * r(n, 1) - 1) * log_s), torch.ones(n, 1, device=dev))
        speech = speed_change(speech, speed)
        band = band * speed[:, 0]  # a band-limited clip's edge moves with it
    # full-band extension of band-limited speech: rectifying creates harmonics up to
    # Nyquist; keep only the part above the source's band, with a falling tilt
    ext = (band < 16000) & (r(n) < 0.5)
    hf = _fft_filter(torch.abs(speech), lambda f: ((f[None, :] > band[:, None]).float() * (band[:, None] / f[None, :].clamp(min=1)) ** 1.5))
    hf_gain = 10 ** (-(10 + 15 * r(n, 1)) / 20) * _rms(speech) / _rms(hf)
    speech = torch.where(ext[:, None], speech + hf * hf_gain, speech)
    # room: full RIR on the input, direct path + early reflections in the target
    rir = corpus.rirs[torch.randint(len(corpus.rirs), (n,), generator=gen, device=dev)]
    if room_target not in ("early", "full"):
        raise ValueError(f"room_target must be 'early' or 'full', not {room_target!r}")
    early = rir if room_target == "full" else rir * (torch.arange(rir.shape[1], device=dev) < EARLY_SAMPLES).float()
    use_room = (r(n, 1) < 0.5).float()
    wet, dry = _conv(speech, rir), _conv(speech, early)
    speech_in = use_room * wet + (1 - use_room) * speech
    target = use_room * dry + (1 - use_room) * speech
    norm = _rms(target).clamp(min=1e-4)
    speech_in, target = speech_in / norm, target / norm
    # noise: real recording or synthetic, sometimes two
    families = len(_FAMILIES) if noise_aug else N_BASE_FAMILIES
    if noise_aug:
        speed = torch.where(r(n, 1) < 0.5, 2 ** (r(n, 1) - 0.5), torch.ones(n, 1, device=dev))
        real = _resampled_segments(corpus.noise, corpus.n_start, corpus.n_len, n, L, gen, speed)
        tilt = 0.8 * r(n, 1) - 0.4  # -2.4 .. +2.4 dB per octave around 1 kHz
        real = _fft_filter(real, lambda f: (f.clamp(min=50) / 1000) ** tilt)
    else:
        real, _ = _segments(corpus.noise, corpus.n_start, corpus.n_len, n, L, gen, loop=True)
    noise = torch.where(r(n, 1) < real_share, real / _rms(real), synth_noise(n, L, gen, dev, corpus, families=families, drop=drop))
    second = synth_noise(n, L, gen, dev, corpus, families=families, drop=drop)
    noise = noise + (r(n, 1) < 0.3).float() * second * 10 ** (-(6 * r(n, 1)) / 20)
    noise = noise / _rms(noise)
    snr_lo_db, snr_hi_db = snr_db_range
    snr_db = snr_lo_db + (snr_hi_db - snr_lo_db) * r(n, 1)
    noise = noise * 10 ** (-snr_db / 20)
    # noise that changes while the example runs (a fan switched on, a louder room): 15%
    # start silent and switch on, 15% step by -10..+10 dB at a random time. The model must
    # follow, not latch on to the first second it heard.
    tt = torch.arange(L, device=dev)[None, :]
    at = (r(n, 1) * L).long()
    change = r(n, 1)
    step_gain = torch.where(change < 0.15, 0.0, 10 ** ((r(n, 1) - 0.5) * 20 / 20))
    noise = torch.where((change < 0.3) & (tt < at), noise * step_gain, noise)
    kind = r(n, 1)
    noise = torch.where(kind < 0.08, noise * 0, noise)  # speech only
    speech_on = (kind < 0.08) | (kind >= 0.16)  # 8% noise only
    speech_in, target = speech_in * speech_on, target * speech_on
    mix = speech_in + noise
    # microphone colouration (smooth random EQ, +-6 dB) and band limiting, on both
    bumps = r(n, 4) * 20000
    gains_db = (r(n, 4) - 0.5) * 12
    width = 500 + 3000 * r(n, 4)
    lp = torch.where(r(n, 1) < 0.15, torch.where(r(n, 1) < 0.5, 4000.0, 8000.0), 30000.0)

    def eq(f):
        db = (gains_db[:, :, None] * torch.exp(-((f[None, None, :] - bumps[:, :, None]) / width[:, :, None]) ** 2)).sum(1)
        return 10 ** (db / 20) / (1 + (f[None, :] / lp) ** 8)

    mix, target = _fft_filter(mix, eq), _fft_filter(target, eq)
    # level -45..-10 dBFS, no clipping
    level = 10 ** ((-45 + 35 * r(n, 1)) / 20) / _rms(mix).clamp(min=1e-6)
    level = torch.minimum(level, 0.99 / mix.abs().amax(dim=-1, keepdim=True).clamp(min=1e-6))
    # 10%: the stream opens with digital silence (files, muted microphones)
    lead = torch.where(r(n, 1) < 0.1, (r(n, 1) * L * 0.5).long(), torch.zeros(n, 1, dtype=torch.long, device=dev))
    on = (tt >= lead).float()
    return mix * level * on, target * level * on, snr_db[:, 0]
