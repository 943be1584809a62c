"""A learned PESQ-WB critic for training (train.py --critic-weight; session 19), after
MetricGAN (Fu et al. 2019, 2021): a small network learns, from the real PESQ-WB of the
model's own outputs scored as it trains, to predict PESQ-WB from the clean and enhanced
spectra, and the model is then pulled towards outputs the critic scores high.

Why: train.py's hand-made PESQ-like losses (perceptual_loss, perceptual_loss_p862) rank
our outputs against RNNoise's no better than chance on the items where PESQ-WB tells them
apart (against_rnnoise.py loss-ranking), so they cannot teach the model what PESQ-WB holds
against it. A critic fitted to the real metric can, as far as it learns to rank.

The critic sees, per 10 ms frame, the loudness (power^0.23) of the 30 bands below 8 kHz of
the clean and of the enhanced signal, both scaled to the clean speech's level (PESQ aligns
levels), and their difference; three dilated causal-free convolutions over time (it judges
whole examples, as PESQ does), then the mean and the maximum over time. Its output is PESQ-WB
mapped to about 0..1: (pesq - 1) / 3.5. It runs only in training; nothing of it is exported.
"""
import multiprocessing

import numpy as np
import torch
import torch.nn as nn

PESQ_SR = 16000
PESQ_CLEAN = (4.64 - 1.0) / 3.5  # PESQ-WB of a signal against itself, mapped


def pesq_mapped(pesq_value):
    return (pesq_value - 1.0) / 3.5


def _score_row(row):
    """PESQ-WB mapped of one (reference, estimate, rate) row, NaN where PESQ cannot score it.
    At module level so that a worker process can be handed it by name."""
    from pesq import pesq
    from scipy.signal import resample_poly
    r, e, sr = row
    if np.max(np.abs(r)) < 1e-4:
        return np.nan
    try:
        return pesq_mapped(pesq(PESQ_SR, resample_poly(r, 1, sr // PESQ_SR),
                                resample_poly(e, 1, sr // PESQ_SR), "wb"))
    except Exception:  # noqa: BLE001 - "no utterances detected" and the like
        return np.nan


def pesq_batch(ref, est, sr=48000, pool=None):
    """[B, L] tensors -> [B] PESQ-WB mapped, NaN where PESQ cannot score a row (no speech).
    With a multiprocessing pool the rows are scored in its workers: PESQ runs in C under the
    GIL, and a 3-s row takes 0.10 s here with its resampling (16 validation rows, session 20),
    so a GPU batch of 128 rows would otherwise wait about 13 s a step on it."""
    r = ref.detach().cpu().double().numpy()
    e = est.detach().cpu().double().numpy()
    rows = [(r[i], e[i], sr) for i in range(len(r))]
    scores = pool.map(_score_row, rows) if pool is not None else [_score_row(x) for x in rows]
    return torch.tensor(scores, dtype=torch.float32)


class PesqCritic(nn.Module):
    def __init__(self, n_bands, ch=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(3 * n_bands, ch, 5, padding=2), nn.LeakyReLU(0.2),
            nn.Conv1d(ch, ch, 5, padding=4, dilation=2), nn.LeakyReLU(0.2),
            nn.Conv1d(ch, ch, 5, padding=8, dilation=4), nn.LeakyReLU(0.2),
        )
        self.out = nn.Linear(2 * ch, 1)

    @staticmethod
    def features(Y, S, bands):
        """Y, S complex [B, T, BINS], bands [BINS, n] -> [B, 3n, T]. The level alignment and
        the speech frames are train.aligned_band_powers's, written again here because train.py
        imports this module."""
        py = (Y.real.pow(2) + Y.imag.pow(2)) @ bands
        ps = (S.real.pow(2) + S.imag.pow(2)) @ bands
        e = 10 * torch.log10(ps.sum(-1) + 1e-9)  # the clean speech's level, as vad_labels finds it
        active = ((e > e.amax(dim=1, keepdim=True) - 40) & (e > -40)).float()
        ref = (ps.mean(-1) * active).sum(1) / active.sum(1).clamp(min=1.0)
        ref = torch.where(active.sum(1) > 0, ref.clamp(min=1e-10), torch.ones_like(ref))[:, None, None]
        ly, ls = (py / ref + 1e-6).pow(0.23), (ps / ref + 1e-6).pow(0.23)
        return torch.cat([ls, ly, ly - ls], dim=-1).transpose(1, 2)

    def forward(self, Y, S, bands):
        return self.score(self.features(Y, S, bands))

    def score(self, feats):
        """[B, 3n, T] features -> [B] predicted PESQ-WB, mapped."""
        h = self.net(feats)
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=-1)).squeeze(-1)


class CriticTrainer:
    """Owns the critic and its optimiser. step() fits it to the real PESQ-WB of this batch's
    outputs (and to the clean speech against itself, and the noisy input on a few rows, so
    that it sees the whole range); gen_loss() is the model's term, (critic - 1)^2 over the
    rows with speech, with the critic's weights held still."""

    def __init__(self, n_bands, device, lr=5e-4, noisy_rows=4, workers=0, replay=0, replay_rows=16):
        self.critic = PesqCritic(n_bands).to(device)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.noisy_rows = noisy_rows
        # Replay (MetricGAN+'s history set; --critic-replay): the features and real PESQ-WB of
        # the last `replay` enhanced rows are kept, and each step the critic also refits
        # `replay_rows` of them drawn at random. A row's PESQ-WB costs 0.1 s to score and its
        # features almost nothing, so the critic sees several times more labelled rows a step
        # for no more scoring. Not saved: a resumed run starts with an empty history.
        self.replay, self.replay_rows = replay, replay_rows
        self.history = []  # (features [3n, T], label), oldest first
        self.rng = np.random.default_rng(0)
        # forkserver, not fork: the training process may hold a CUDA context, which a forked
        # child must not inherit; the workers only import this module and score
        self.pool = multiprocessing.get_context("forkserver").Pool(workers) if workers > 0 else None

    def step(self, Y, S, X, y, s, noisy, bands):
        q_enh = pesq_batch(s, y, pool=self.pool).to(Y.device)
        k = self.noisy_rows
        q_noisy = pesq_batch(s[:k], noisy[:k], pool=self.pool).to(Y.device)
        ok, ok_n = ~torch.isnan(q_enh), ~torch.isnan(q_noisy)
        if not ok.any():
            return {}
        Yd, Sd, Xd = Y.detach(), S.detach(), X.detach()
        f_enh = self.critic.features(Yd[ok], Sd[ok], bands)
        p_enh = self.critic.score(f_enh)
        p_clean = self.critic(Sd[ok], Sd[ok], bands)
        loss = (p_enh - q_enh[ok]).pow(2).mean() + (p_clean - PESQ_CLEAN).pow(2).mean()
        old = [h for h in self.history if h[0].shape == f_enh.shape[1:]]  # rows of this length
        if self.replay > 0 and old:
            pick = self.rng.choice(len(old), size=min(self.replay_rows, len(old)), replace=False)
            f_old = torch.stack([old[i][0] for i in pick])
            q_old = torch.stack([old[i][1] for i in pick])
            loss = loss + (self.critic.score(f_old) - q_old).pow(2).mean()
        if self.replay > 0:
            self.history.extend(zip(f_enh, q_enh[ok]))
            del self.history[:max(0, len(self.history) - self.replay)]
        if ok_n.any():
            loss = loss + (self.critic(Xd[:k][ok_n], Sd[:k][ok_n], bands) - q_noisy[ok_n]).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # how well it ranks this batch before the update: its error in PESQ-WB units
        err = (p_enh.detach() - q_enh[ok]).abs().mean().item() * 3.5
        return dict(critic=loss.item(), critic_err_pesq=err, pesq_batch=q_enh[ok].mean().item() * 3.5 + 1.0)

    def gen_loss(self, Y, S, bands):
        has = S.abs().pow(2).sum((1, 2)) > 0
        if not has.any():
            return Y.real.sum() * 0.0
        self.critic.requires_grad_(False)
        score = self.critic(Y[has], S[has], bands)
        self.critic.requires_grad_(True)
        return (score - 1.0).pow(2).mean()

    def state_dict(self):
        return dict(critic=self.critic.state_dict(), opt=self.opt.state_dict())

    def load_state_dict(self, st):
        self.critic.load_state_dict(st["critic"])
        self.opt.load_state_dict(st["opt"])
