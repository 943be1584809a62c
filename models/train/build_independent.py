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
Noise (real recordings; voice-like material left out):
  openarena-data        sound/world ambience: fire, wind, fans, drones, machinery, water
  extremetuxracer-data  sliding on snow, ice, grass, leaves, mud, rock
  frozen-bubble-data    typewriter, applause and other effects
  asterisk-moh-opsound-g722  music on hold (music as interference)
"""
import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

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
    speech, why = run_pool(_load_speech, speech_jobs(), args.jobs)
    print("speech screening:", why, flush=True)
    # one voice per package, so build_corpus.cap's cap per (source, split) is a cap per voice
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
