#!/usr/bin/env python3
"""Build the independent evaluation corpus: speech and noise from Debian packages that are
*not* training sources (../shared/data-sources.md reserves the audio of every other package
for independent evaluation), so the model is measured on voices, recording chains and noises
it never heard, not even as held-out validation material of a training source.

  python build_independent.py        # then: python evaluate.py --split independent

Writes cache/independent/ (git-ignored) in the corpus layout that mixer.Corpus reads, with
"eval" as the split name: eval_speech.ogg, eval_noise.ogg, index.json (no rooms: the
evaluation mixtures have none). Packages are fetched with `apt-get download` into the
corpus build's cache/debs and unpacked into cache/x, nothing installed.

Speech (professional telephony prompts, screened and joined like the training speech):
  asterisk-core-sounds-en-g722   Allison, en-US (G.722, 7 kHz band)
  asterisk-core-sounds-es-g722   Allison, es-MX (the same speaker in Spanish)
  asterisk-prompt-it-menardi-wav Menardi, it-IT (8 kHz PCM: a telephone-band voice)
  asterisk-prompt-fr-armelle     Armelle, fr-FR (8 kHz GSM)
  asterisk-prompt-es-co          es-CO prompts (8 kHz GSM)
Male voices (the prompts above are all female; these are acted game voices, short lines
joined into utterances per unit like the training speech, kept only where the median F0 of a
unit's lines is below MALE_F0_MAX_HZ, which drops the female and falsetto ones; animals,
monsters and spirits are left out by name, NOT_HUMAN):
  megaglest-data  units' acknowledgement and selection lines ("*_ack*", "*_select*"), one
                  voice per faction and unit, identical files counted once
  0ad-data        civilians' male lines ("civ_male_*") in Latin, Persian and Meroitic
                  (Napatan), one voice per language; taken from the game's public.zip
Noise (real recordings; voice-like material left out):
  openarena-data        sound/world ambience: fire, wind, fans, drones, machinery, water
  extremetuxracer-data  sliding on snow, ice, grass, leaves, mud, rock
  frozen-bubble-data    typewriter, applause and other effects
  asterisk-moh-opsound-g722  music on hold (music as interference)
"""
import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

import build_corpus
from build_corpus import DEBS, SR, X, _load_noise, _load_speech, cap, join_short, run_pool

HERE = Path(__file__).resolve().parent
OUT = HERE / "cache" / "independent"
SPLIT = "eval"
VOICE_CAP_MIN = 6.0  # per voice, so the long prompt sets do not drown the short ones

# package -> (voice name, band of the recording in Hz)
SPEECH = {
    "asterisk-core-sounds-en-g722": ("allison-en", 7000),
    "asterisk-core-sounds-es-g722": ("allison-es", 7000),
    "asterisk-prompt-it-menardi-wav": ("menardi-it", 4000),
    "asterisk-prompt-fr-armelle": ("armelle-fr", 4000),
    "asterisk-prompt-es-co": ("co-es", 4000),
}
# acted male voices: (package, band Hz); each file's own rate limits the band further
MALE = {"megaglest-data": 24000, "0ad-data": 24000}
MALE_F0_MAX_HZ = 165.0  # a unit or language whose lines sit higher is not kept as a male voice
# megaglest units that are animals, monsters or spirits: not human speakers, though some of
# them sit low enough to pass the F0 screen (the daemons: 95-128 Hz)
NOT_HUMAN = ("daemon", "golem", "cow", "pig", "eagle", "behemoth", "ghost", "dragon", "chicken",
             "bull", "mummy", "thunderbird", "sheep", "wild_sow", "genie")
MALE_LINE = re.compile(r"_(ack|select)\d*\.(wav|ogg)$")
OAD_ZIP = "usr/share/games/0ad/mods/public/public.zip"
OAD_MALE = re.compile(r"^audio/voice/[^/]+/civ/civ_male_[^/]+\.ogg$")
NOISE = ["openarena-data", "extremetuxracer-data", "frozen-bubble-data", "asterisk-moh-opsound-g722"]
# voices, growls, moans, snoring and the like are speech-like: a denoiser must not learn to
# remove voices, and it should not be scored on removing them either
NOISE_EXCLUDE = ("moan", "growl", "snore", "chatted", "noh", "1shot_greg", "pickup")
OPENARENA_PAK = "usr/share/games/openarena/baseoa/pak0.pk3"


def fetch(pkg):
    if (X / pkg).exists():
        return X / pkg
    DEBS.mkdir(parents=True, exist_ok=True)
    if not list(DEBS.glob(f"{pkg}_*.deb")):
        print(f"downloading {pkg}", flush=True)
        subprocess.run(["apt-get", "download", pkg], cwd=DEBS, check=True)
    deb = sorted(DEBS.glob(f"{pkg}_*.deb"))[-1]
    tmp = X / (pkg + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    if pkg == "openarena-data":  # its sounds are inside a zip (Quake 3 .pk3)
        with zipfile.ZipFile(tmp / OPENARENA_PAK) as z:
            for n in z.namelist():
                if n.startswith("sound/world/") and n.lower().endswith((".wav", ".ogg")):
                    z.extract(n, tmp / "pk3")
        (tmp / OPENARENA_PAK).unlink()
    if pkg == "0ad-data":  # 3.2 GB of game data in one zip: keep the male voice lines only
        with zipfile.ZipFile(tmp / OAD_ZIP) as z:
            for n in z.namelist():
                if OAD_MALE.match(n):
                    z.extract(n, tmp / "voices")
        (tmp / OAD_ZIP).unlink()
    tmp.rename(X / pkg)
    return X / pkg


def speech_jobs():
    jobs = []
    for pkg, (voice, band) in SPEECH.items():
        d = fetch(pkg)
        for p in sorted(d.rglob("*")):
            if p.suffix in (".g722", ".wav", ".gsm") and p.is_file():
                jobs.append((p, pkg, voice, SPLIT, band))
    return jobs


def male_jobs():
    """(path, package, voice, split, band) for the acted male lines; the F0 screen comes
    after decoding (keep_male)."""
    jobs, seen = [], set()
    for pkg, band in MALE.items():
        d = fetch(pkg)
        for p in sorted(d.rglob("*")):
            if not p.is_file():
                continue
            if pkg == "megaglest-data":
                if not MALE_LINE.search(p.name):
                    continue
                # units/<unit>/sounds/<unit>_ack1.wav, or commondata/sounds/<unit>_ack1.wav
                faction = p.parts[-5] if p.parts[-4] == "units" else "common"
                voice = f"{faction}-{MALE_LINE.split(p.name)[0]}"
                if any(w in voice for w in NOT_HUMAN):
                    continue
            else:
                voice = p.parts[-3]  # audio/voice/<language>/civ/civ_male_*.ogg
            digest = hashlib.sha1(p.read_bytes()).hexdigest()
            if digest in seen:  # a unit's variants (the berserkers) share their lines
                continue
            seen.add(digest)
            jobs.append((p, pkg, voice, SPLIT, band))
    return jobs


def median_f0_hz(x, lo_hz=60.0, hi_hz=400.0):
    """Median F0 of the clearly voiced 40 ms frames of 48 kHz speech (normalised
    autocorrelation peak > 0.6 at 16 kHz, frames 10 ms apart), or 0 when none is voiced."""
    y = resample_poly(x, 1, 3)
    w, sr = 640, 16000
    if len(y) <= w:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(y, w)[::160]
    frames = frames - frames.mean(axis=1, keepdims=True)
    e = np.sum(frames**2, axis=1)
    frames = frames[e >= 1e-4 * w * np.max(np.abs(y)) ** 2]
    if not len(frames):
        return 0.0
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2048, axis=1)) ** 2, axis=1)
    lags = np.arange(int(sr / hi_hz), int(sr / lo_hz))
    k = lags[np.argmax(ac[:, lags], axis=1)]
    voiced = ac[np.arange(len(k)), k] / (ac[:, 0] + 1e-12) > 0.6
    return float(np.median(sr / k[voiced])) if voiced.any() else 0.0


def keep_male(items):
    """The male packages' voices whose median F0 is below MALE_F0_MAX_HZ (with the F0 of
    each of their voices, kept or not, for the log); the other packages' voices as they are."""
    groups = {}
    for it in items:
        groups.setdefault((it[1], it[2]), []).append(it)
    keep, f0s = [], {}
    for (src, voice), its in sorted(groups.items()):
        if src not in MALE:
            keep += its
            continue
        f0 = median_f0_hz(np.concatenate([it[0] for it in its]))
        f0s[f"{src}/{voice}"] = round(f0)
        if 0 < f0 < MALE_F0_MAX_HZ:
            keep += its
    return keep, f0s


def noise_jobs():
    jobs = []
    for pkg in NOISE:
        d = fetch(pkg)
        for p in sorted(d.rglob("*")):
            if p.suffix.lower() in (".wav", ".ogg", ".g722") and p.is_file() \
                    and not any(e in p.name.lower() for e in NOISE_EXCLUDE):
                jobs.append((p, pkg, p.stem, SPLIT, 24000))
    return jobs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if (OUT / "index.json").exists():
        print(f"{OUT} exists; remove it to rebuild")
        return 0
    rng = np.random.default_rng(build_corpus.SEED)
    speech, why = run_pool(_load_speech, speech_jobs() + male_jobs(), args.jobs)
    print("speech screening:", why, flush=True)
    speech, f0s = keep_male(speech)
    print(f"median F0 per voice (male packages kept below {MALE_F0_MAX_HZ:.0f} Hz):", f0s, flush=True)
    # build_corpus.cap caps each (source, split): one voice per prompt package; the male
    # packages' voices share their package's cap (they hold less than it)
    speech, minutes = cap(join_short(speech), rng, VOICE_CAP_MIN)
    print("speech minutes per voice:", minutes, flush=True)
    noise, why = run_pool(_load_noise, noise_jobs(), args.jobs)
    print("noise:", why, {p: round(sum(len(n[0]) for n in noise if n[1] == p) / SR / 60, 1) for p in NOISE}, flush=True)
    tmp = OUT.with_name(OUT.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    index = {}
    build_corpus.OUT = tmp  # write_split writes there
    build_corpus.write_split(sorted(speech, key=lambda it: (it[2], hashlib.sha1(it[0].tobytes()).hexdigest())),
                             SPLIT, "speech", index)
    build_corpus.write_split(noise, SPLIT, "noise", index)
    (tmp / "index.json").write_text(json.dumps(index))
    tmp.rename(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
