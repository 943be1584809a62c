#!/usr/bin/env python3
"""Write the shipped demo sample and the golden-test pair from the held-out evaluation set
(validation voices and noises, never trained on): samples/noisy_speech.wav (the README's
quick start cleans it) and tests/fixtures/golden/clean_speech.wav (its clean reference).
48 kHz, 16-bit, mono. Run after evaluate.py has built cache/eval/.
"""
import json
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EVAL = HERE / "cache" / "eval"


def main():
    meta = json.loads((EVAL / "meta.json").read_text())
    # two held-out items at 5 dB SNR: a real noise recording and a fan, joined
    picks = [m for m in meta if m["snr_db"] == 5 and m["noise"] in ("real", "fan")][:2]
    clean = np.concatenate([sf.read(EVAL / "clean" / m["file"], dtype="float32")[0] for m in picks])
    noisy = np.concatenate([sf.read(EVAL / "noisy" / m["file"], dtype="float32")[0] for m in picks])
    g = 0.5 / max(np.abs(noisy).max(), 1e-9)
    (ROOT / "samples").mkdir(exist_ok=True)
    (ROOT / "tests" / "fixtures" / "golden").mkdir(parents=True, exist_ok=True)
    sf.write(ROOT / "samples" / "noisy_speech.wav", noisy * g, 48000, subtype="PCM_16")
    sf.write(ROOT / "tests" / "fixtures" / "golden" / "clean_speech.wav", clean * g, 48000, subtype="PCM_16")
    print("items:", picks)


if __name__ == "__main__":
    main()
