#!/usr/bin/env python3
"""Build the training/validation corpus from Debian packages and offline TTS.

Only the sources listed in ../shared/data-sources.md are used (see SOURCES below and
MODEL_CARD.md). Everything lands in models/train/cache/ (git-ignored):

  cache/debs/           downloaded .deb packages (apt-get download, nothing installed)
  cache/x/<pkg>/        their extracted contents
  cache/corpus/         the corpus the trainer reads:
      {train,val}_speech.ogg   48 kHz mono Ogg/Opus, clips concatenated
      train_speech_extra.ogg   the MBROLA voices (non-commercial; trained on only with
                               train.py --extra-speech)
      {train,val}_noise.ogg    48 kHz mono Ogg/Opus, clips concatenated
      {train,val}_rirs.npz     simulated room impulse responses, int8 mu-law [N, RIR_SAMPLES]
      index.json               clip boundaries, source, voice, bandwidth of each clip

Opus keeps the corpus small enough (tens of MB) to carry to a GPU machine; its coding
noise is far below the noise levels the model is trained to remove.

Usage: python build_corpus.py [--jobs 2]   (idempotent: finished steps are skipped)
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from mixer import load_rirs, mulaw_encode, save_rirs

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
DEBS = CACHE / "debs"
X = CACHE / "x"
OUT = CACHE / "corpus"
SR = 48000
SEED = 1234

SPEECH_PACKAGES = [
    "festvox-ru", "fillets-ng-data-cs", "tuxpaint-stamps-default",
    "asterisk-core-sounds-fr-g722", "asterisk-core-sounds-it-g722",
    "asterisk-core-sounds-ru-g722", "klettres-data", "ktuberling-data",
]
NOISE_PACKAGES = ["lincity-ng-data", "sonic-pi-samples", "scratch", "qabcs-data", "redeclipse-data",
                  "wesnoth-1.16-data", "widelands-data", "tuxpaint-data"]
# Which audio of each noise package is noise. Speech-like material (game voices, unit
# barks, announcers, vocal samples) is left out: the model must not learn to remove voices.
NOISE_GLOBS = {
    "lincity-ng-data": ["*.wav"],
    "sonic-pi-samples": ["*.flac"],
    "scratch": ["*.mp3"],
    "qabcs-data": ["usr/share/qabcs/abcs/all/noises/*.ogg", "usr/share/qabcs/abcs/all/sounds/*.ogg"],
    "redeclipse-data": ["usr/share/games/redeclipse/data/sounds/ambience/*.ogg",
                        "usr/share/games/redeclipse/data/sounds/music/*.ogg",
                        "usr/share/games/redeclipse/data/sounds/sfx/*.ogg",
                        "usr/share/games/redeclipse/data/sounds/player/*step*.ogg"],
    "wesnoth-1.16-data": ["usr/share/games/wesnoth/1.16/data/core/sounds/ambient/*.ogg"],
    "widelands-data": ["*.ogg"],
    "tuxpaint-data": ["*.wav"],
}
NOISE_EXCLUDE = ("/Vocals/", "/music/ingame", "/music/intro", "/music/menu")  # scratch vocals; widelands score
NOISE_FILE_MAX_S = 60.0  # long files (music tracks, loops) contribute their first minute
NOISE_CAP_MIN = 12.0  # per package and split, so no single game dominates the noise
# Per-source cap in minutes, so no single voice dominates.
CAP_MIN = 25.0
# Held-out voices (never trained on): asterisk ru (F), tuxpaint ca/be volunteers, flite slt.
VAL_TUXPAINT_LANGS = {"ca", "be"}
RIR_SAMPLES = 14400  # 300 ms at 48 kHz: enough for the early part and most of the tail


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def fetch_packages():
    DEBS.mkdir(parents=True, exist_ok=True)
    X.mkdir(parents=True, exist_ok=True)
    for pkg in SPEECH_PACKAGES + NOISE_PACKAGES:
        if (X / pkg).exists():
            continue
        if not list(DEBS.glob(f"{pkg}_*.deb")):
            print(f"downloading {pkg}", flush=True)
            sh(["apt-get", "download", pkg], cwd=DEBS)
        deb = sorted(DEBS.glob(f"{pkg}_*.deb"))[-1]
        tmp = X / (pkg + ".tmp")
        if pkg in NOISE_GLOBS:
            # only the audio members (some game data packages are ~1 GB unpacked)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            exts = sorted({"*" + Path(g).suffix for g in NOISE_GLOBS[pkg]})
            tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            sh(["tar", "-x", "-C", str(tmp), "--wildcards", *exts], stdin=tar.stdout)
            tar.wait()
        else:
            sh(["dpkg-deb", "-x", str(deb), str(tmp)])
        tmp.rename(X / pkg)


def decode(path):
    """Any audio file -> (float32 mono at 48 kHz, native rate)."""
    path = str(path)
    if path.endswith((".g722", ".mp3", ".gsm")):
        # raw G.722 and GSM 06.10 (telephony prompts) carry no header: say what they are
        pre = {".g722": ["-f", "g722"], ".gsm": ["-f", "gsm", "-ar", "8000"]}.get(Path(path).suffix, [])
        with tempfile.NamedTemporaryFile(suffix=".wav") as t:
            sh(["ffmpeg", "-loglevel", "error", "-y", *pre, "-i", path, "-ac", "1", t.name])
            x, sr = sf.read(t.name, dtype="float32", always_2d=True)
        if path.endswith(".g722"):
            sr = 16000
    else:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = np.gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return x, sr


def screen_speech(x):
    """Reject clipped or noisy recordings; trim long silences at the ends."""
    if len(x) < SR // 4:
        return None, "short"
    peak = np.max(np.abs(x))
    if peak < 1e-3:
        return None, "silent"
    if np.mean(np.abs(x) > 0.99) > 1e-4:
        return None, "clipped"
    frames = x[: len(x) // 480 * 480].reshape(-1, 480)
    e_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    floor_db = np.percentile(e_db, 10)
    if floor_db > np.max(e_db) - 35 and np.max(e_db) - floor_db < 35 and floor_db > -55:
        return None, "noisy"
    active = np.where(e_db > np.max(e_db) - 45)[0]
    a, b = max(active[0] - 10, 0), min(active[-1] + 10, len(e_db))
    return x[a * 480 : b * 480], "ok"


def speech_jobs():
    """(path, source, voice, split, band_hz) for every real speech file."""
    jobs = []
    for p in sorted((X / "festvox-ru").rglob("wav/*.wav")):
        jobs.append((p, "festvox-ru", "msu_nsh", "train", 8000))
    for p in sorted((X / "fillets-ng-data-cs").rglob("cs/*.ogg")):
        voice = p.stem.split("-")[1] if "-" in p.stem else "x"
        jobs.append((p, "fillets-ng-data-cs", voice, "train", 11025))
    for p in sorted((X / "tuxpaint-stamps-default").rglob("*_desc_*.ogg")):
        lang = p.stem.split("_desc_")[-1]
        if lang in ("es", "ml", "da.ogg"):
            continue  # Spanish is heavily clipped (data-sources.md)
        split = "val" if lang in VAL_TUXPAINT_LANGS else "train"
        jobs.append((p, "tuxpaint-stamps-default", lang, split, 22050))
    for lang in ("fr", "it", "ru"):
        pkg = f"asterisk-core-sounds-{lang}-g722"
        for p in sorted((X / pkg).rglob("*.g722")):
            jobs.append((p, pkg, lang, "val" if lang == "ru" else "train", 7000))
    for p in sorted((X / "klettres-data").rglob("*.ogg")):
        lang = p.parts[p.parts.index("klettres") + 1]
        jobs.append((p, "klettres-data", lang, "train", 22050))
    for p in sorted((X / "ktuberling-data").rglob("*.ogg")):
        # single words, one speaker per language, 8-48 kHz (the band is the file's own)
        lang = p.parent.name
        split = "val" if lang in VAL_TUXPAINT_LANGS else "train"  # ca stays held out
        jobs.append((p, "ktuberling-data", lang, split, 24000))
    return jobs


def noise_jobs():
    jobs = []
    files = []
    for pkg in NOISE_PACKAGES:
        for pattern in NOISE_GLOBS[pkg]:
            found = (X / pkg).glob(pattern) if "/" in pattern else (X / pkg).rglob(pattern)
            files += [p for p in sorted(found) if not any(e in str(p) for e in NOISE_EXCLUDE)]
    for p in files:
        h = int(hashlib.sha1(p.name.encode()).hexdigest(), 16)
        split = "val" if h % 6 == 0 else "train"
        jobs.append((p, p.parts[len(X.parts)], p.stem, split, 24000))
    return jobs


def _load_speech(job):
    p, src, voice, split, band = job
    try:
        x, sr = decode(p)
    except Exception as e:  # noqa: BLE001 - a broken file is skipped and counted
        return None, f"decode error {p}: {e}"
    x, why = screen_speech(x)
    if x is None:
        return None, why
    return (x, src, voice, split, min(band, sr // 2)), "ok"


def _load_noise(job):
    p, src, name, split, band = job
    try:
        x, sr = decode(p)
    except Exception as e:  # noqa: BLE001
        return None, f"decode error {p}: {e}"
    if len(x) < SR // 10 or np.max(np.abs(x)) < 1e-3:
        return None, "short/silent"
    x = x[: int(NOISE_FILE_MAX_S * SR)]
    x = x - np.mean(x)
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.5, src, name, split, sr // 2), "ok"


TEXT_SOURCES = ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0",
                "/usr/share/common-licenses/MPL-2.0", "/usr/share/common-licenses/LGPL-3"]


def sentences(rng, n):
    text = " ".join(Path(f).read_text(errors="ignore") for f in TEXT_SOURCES if Path(f).exists())
    sents = [re.sub(r"\s+", " ", s).strip() for s in re.split(r"[.;:!?]", text)]
    sents = [s for s in sents if 25 < len(s) < 160 and not re.search(r"[<>_=/]", s)]
    rng.shuffle(sents)
    return sents[:n]


def _tts(job):
    engine, voice, text, split, seed = job
    rng = random.Random(seed)
    with tempfile.NamedTemporaryFile(suffix=".wav") as t:
        try:
            if engine == "flite":
                sh(["flite", "-voice", voice, "-t", text, "-o", t.name,
                    "--setf", f"duration_stretch={rng.uniform(0.85, 1.25):.2f}",
                    "--setf", f"int_f0_target_mean={rng.uniform(85, 190):.0f}"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elif engine == "pico":
                # SVOX Pico takes its own markup for rate and pitch (percent of normal)
                marked = (f"<speed level='{rng.randint(80, 120)}'><pitch level='{rng.randint(85, 120)}'>"
                          f"{text}</pitch></speed>")
                sh(["pico2wave", "-l", voice, "-w", t.name, marked],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elif engine == "rhvoice":
                sh(["RHVoice-test", "-p", voice, "-r", str(rng.randint(80, 125)), "-t", str(rng.randint(85, 115)),
                    "-o", t.name], input=text.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:  # espeak-ng, with its own voices or an MBROLA diphone voice ("mb-de1")
                sh(["espeak-ng", "-v", voice, "-s", str(rng.randint(130, 190)),
                    "-p", str(rng.randint(25, 75)), "-w", t.name, text],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            x, sr = decode(t.name)
        except Exception as e:  # noqa: BLE001
            return None, f"tts error {engine}/{voice}: {e}"
    x, why = screen_speech(x)
    if x is None:
        return None, why
    return (x * rng.uniform(0.3, 0.9) / (np.max(np.abs(x)) + 1e-9), f"tts-{engine}", voice, split, sr // 2), "ok"


def tts_jobs(rng):
    jobs = []
    texts = sentences(rng, 2000)
    flite_voices = {"kal16": "train", "awb": "train", "rms": "train", "slt": "val"}
    espeak_voices = {"en+m3": "train", "en+f2": "train", "en-us+f4": "train", "en+m7": "val"}
    k = 0
    for v, split in flite_voices.items():
        for _ in range(150 if split == "train" else 60):
            jobs.append(("flite", v, texts[k % len(texts)], split, k)); k += 1
    for v, split in espeak_voices.items():
        for _ in range(40 if split == "train" else 20):
            jobs.append(("espeak", v, texts[k % len(texts)], split, k)); k += 1
    # SVOX Pico (non-free section, Apache-2.0 lingware): six female voices reading the
    # English text with their own language's phonology. RHVoice English voices under
    # LGPL-2.1+ only: alan, bdl, clb (slt is flite's held-out speaker; evgeniy-eng and
    # lyubov are CC-BY-NC-ND and not used).
    for v in ("en-US", "en-GB", "de-DE", "es-ES", "fr-FR", "it-IT"):
        for _ in range(50):
            jobs.append(("pico", v, texts[k % len(texts)], "train", k)); k += 1
    for v in ("alan", "bdl", "clb"):
        for _ in range(100):
            jobs.append(("rhvoice", v, texts[k % len(texts)], "train", k)); k += 1
    return jobs


# MBROLA diphone voices, spoken through espeak-ng (packages mbrola and mbrola-*, Debian's
# non-free section, installed by setup_venv; each voice's licence allows non-commercial,
# non-military use only: MODEL_CARD.md). Of the 75 voice packages espeak-ng maps 73 (25
# female, 48 male, ~33 languages), each reading the English sentences by its own language's
# rules. They go to the training split only, in a file of their own (train_speech_extra.ogg), so that adding them left the
# validation set and the first training file as they were. Training uses them only when
# asked (train.py --extra-speech), so that a model carries their licence only by choice.
MBROLA_CAP_MIN = 40.0
MBROLA_SENTENCES = 8  # per voice, before the cap


def mbrola_voices():
    """espeak-ng's MBROLA voices whose diphone database is installed."""
    out = subprocess.run(["espeak-ng", "--voices=mb"], capture_output=True, text=True).stdout
    # columns: Pty Language Age/Gender VoiceName File ("mb/mb-de1") ...
    names = sorted({Path(line.split()[4]).name for line in out.splitlines()[1:] if len(line.split()) > 4})
    return [v for v in names if v.startswith("mb-") and (Path("/usr/share/mbrola") / v[3:]).exists()]


def mbrola_jobs(rng, voices):
    texts = sentences(rng, 2000)
    jobs, k = [], 0
    for v in voices:
        for _ in range(MBROLA_SENTENCES):
            jobs.append(("mbrola", v, texts[k % len(texts)], "train", 100000 + k)); k += 1
    return jobs


def build_mbrola(index, jobs):
    voices = mbrola_voices()
    if not voices:
        raise SystemExit("no MBROLA voice installed: run ./setup_venv")
    tts, why = run_pool(_tts, mbrola_jobs(random.Random(SEED + 2), voices), jobs)
    print(f"mbrola ({len(voices)} voices):", why, flush=True)
    speech, minutes = cap(join_short(tts), random.Random(SEED + 2), MBROLA_CAP_MIN)
    print("mbrola minutes:", minutes, flush=True)
    write_split(speech, "train", "speech_extra", index)
    index["extra_voices"] = voices
    index["extra_speech_minutes"] = minutes


def run_pool(fn, jobs, workers):
    results, why = [], {}
    with ProcessPoolExecutor(workers) as ex:
        for r, w in ex.map(fn, jobs, chunksize=16):
            why[w if not w.startswith(("decode", "tts")) else "error"] = why.get(w, 0) + 1
            if r is not None:
                results.append(r)
    return results, why


def join_short(items, min_s=3.0, max_s=6.0):
    """Join short clips of one (source, voice) into 3-6 s utterances with 100-300 ms gaps."""
    groups, out = {}, []
    rng = np.random.default_rng(SEED)
    for x, src, voice, split, band in items:
        groups.setdefault((src, voice, split, band), []).append(x)
    for (src, voice, split, band), xs in groups.items():
        cur, cur_len = [], 0
        for x in xs:
            if len(x) >= min_s * SR and not cur:
                out.append((x[: int(12 * SR)], src, voice, split, band)); continue
            cur.append(x); cur.append(np.zeros(int(rng.uniform(0.1, 0.3) * SR), np.float32))
            cur_len += len(x)
            if cur_len >= min_s * SR or cur_len + len(x) > max_s * SR:
                out.append((np.concatenate(cur), src, voice, split, band)); cur, cur_len = [], 0
        if cur:
            out.append((np.concatenate(cur), src, voice, split, band))
    return out


def cap(items, rng, cap_min=CAP_MIN):
    """At most `cap_min` minutes per (source, split), from a shuffled order."""
    rng.shuffle(items)
    used, out = {}, []
    for it in items:
        key = (it[1], it[3])
        if used.get(key, 0) + len(it[0]) > cap_min * 60 * SR:
            continue
        used[key] = used.get(key, 0) + len(it[0])
        out.append(it)
    return out, {f"{k[0]}/{k[1]}": round(v / SR / 60, 1) for k, v in used.items()}


def write_split(items, split, kind, index):
    xs = [it for it in items if it[3] == split]
    pos, clips = 0, []
    for x, src, voice, _, band in xs:
        clips.append({"start": pos, "len": len(x), "source": src, "voice": voice, "band_hz": band})
        pos += len(x)
    audio = np.concatenate([it[0] for it in xs]) if xs else np.zeros(1, np.float32)
    sf.write(OUT / f"{split}_{kind}.ogg", np.clip(audio, -1, 1), SR, format="OGG", subtype="OPUS",
             compression_level=0.92 if kind == "speech" else 0.9)
    index[f"{split}_{kind}"] = clips
    print(f"{split}_{kind}: {len(clips)} clips, {pos / SR / 60:.1f} min", flush=True)


def make_rirs(n, seed):
    import pyroomacoustics as pra
    rng = np.random.default_rng(seed)
    rirs, rt60s = [], []
    while len(rirs) < n:
        room_dim = rng.uniform([3, 3, 2.4], [10, 8, 3.5])
        rt60 = rng.uniform(0.15, 0.8)
        try:
            e_abs, max_order = pra.inverse_sabine(rt60, room_dim)
        except ValueError:
            continue
        room = pra.ShoeBox(room_dim, fs=SR, materials=pra.Material(e_abs), max_order=min(max_order, 12),
                           use_rand_ism=True, max_rand_disp=0.05)
        src = rng.uniform([0.5] * 3, room_dim - 0.5)
        mic = rng.uniform([0.5] * 3, room_dim - 0.5)
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        h = np.asarray(room.rir[0][0], np.float32)
        d = int(np.argmax(np.abs(h)))
        h = h[max(d - 48, 0):][:RIR_SAMPLES]
        h = np.pad(h, (0, RIR_SAMPLES - len(h)))
        rirs.append(h / (np.max(np.abs(h)) + 1e-9))
        rt60s.append(float(room.measure_rt60()[0, 0]))
    return mulaw_encode(np.stack(rirs)), rt60s


def build_speech(index, rng, jobs):
    speech, why = run_pool(_load_speech, speech_jobs(), jobs)
    print("real speech screening:", why, flush=True)
    tts, why = run_pool(_tts, tts_jobs(rng), jobs)
    print("tts:", why, flush=True)
    speech = join_short(speech + tts)
    speech, minutes = cap(speech, rng)
    print("speech minutes per source/split:", json.dumps(minutes, indent=1), flush=True)
    for split in ("train", "val"):
        write_split(speech, split, "speech", index)
    index["speech_packages"] = SPEECH_PACKAGES
    index["speech_minutes"] = minutes


def build_noise(index, rng, jobs):
    noise, why = run_pool(_load_noise, noise_jobs(), jobs)
    print("noise:", why, flush=True)
    noise, minutes = cap(noise, rng, NOISE_CAP_MIN)
    print("noise minutes per source/split:", json.dumps(minutes, indent=1), flush=True)
    for split in ("train", "val"):
        write_split(noise, split, "noise", index)
    index["noise_packages"] = NOISE_PACKAGES
    index["noise_minutes"] = minutes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    args = ap.parse_args()
    fetch_packages()
    OUT.mkdir(parents=True, exist_ok=True)
    index = json.loads((OUT / "index.json").read_text()) if (OUT / "index.json").exists() else {}
    # Each part is rebuilt only when its sources changed (a corpus from before this was
    # recorded used the first packages of each list), each from its own seeded generator,
    # so a fresh build and an updated one give the same corpus.
    if index.get("speech_packages", SPEECH_PACKAGES[:7]) != SPEECH_PACKAGES or "train_speech" not in index:
        build_speech(index, random.Random(SEED), args.jobs)
        (OUT / "index.json").write_text(json.dumps(index))
    if index.get("noise_packages", NOISE_PACKAGES[:3]) != NOISE_PACKAGES or "train_noise" not in index:
        build_noise(index, random.Random(SEED), args.jobs)
        (OUT / "index.json").write_text(json.dumps(index))
    if "rir_rt60_s" not in index:
        rir_tr, rt_tr = make_rirs(400, SEED)
        rir_va, rt_va = make_rirs(60, SEED + 1)
        save_rirs(OUT, "train", rir_tr)
        save_rirs(OUT, "val", rir_va)
        index["rir_rt60_s"] = {"train": rt_tr, "val": rt_va}
        (OUT / "index.json").write_text(json.dumps(index))
    if "extra_voices" not in index:
        build_mbrola(index, args.jobs)
        (OUT / "index.json").write_text(json.dumps(index))
    for split in ("train", "val"):
        # older corpora stored the same rooms as .npy (float16): re-coded, not re-simulated
        old = OUT / f"{split}_rirs.npy"
        if old.exists():
            if not (OUT / f"{split}_rirs.npz").exists():
                save_rirs(OUT, split, mulaw_encode(load_rirs(OUT, split)))
            old.unlink()
    print("corpus ready in", OUT)


if __name__ == "__main__":
    sys.exit(main())
