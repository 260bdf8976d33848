"""The no-speech decision on real speech and on non-speech signals (issue 13, "Non-speech").

Real speech must never be answered ``no_speech``: every SAVEE clip (480) and every RAVDESS
speech clip (1440), as recorded and 20 dB quieter (requantised to 16 bits, as a quiet file
would be), go through the Recognizer's own speech check
(``Recognizer.speech_seconds`` + ``is_speech``: silero VAD, the model itself is not needed).
Non-speech signals (silence, white and pink noise, tones, a 0.2 s click) must all be answered
``no_speech``, at 16 kHz and after resampling from 8 kHz and 44.1 kHz.

    python benchmarks/nospeech.py            # writes benchmarks/results/nospeech.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared" / "data"

from emovox import audio  # noqa: E402
from emovox.inference import Recognizer  # noqa: E402


def non_speech(rate: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The issue's non-speech signals (5 s; the click is 0.2 s inside 3 s of silence) and a few
    harder ones (harmonic buzzes, hum, a sweep, syllable-rate modulated noise)."""
    rng = np.random.default_rng(seed)
    n = 5 * rate
    t = np.arange(n) / rate
    out = {"silence": np.zeros(n)}
    for level in (0.01, 0.1, 0.3):
        out[f"white noise {level}"] = level * rng.standard_normal(n)
        out[f"pink noise {level}"] = level * pink(n, rng)
    for amp in (0.05, 0.5):
        for hz in (150, 440, 1000):
            out[f"tone {hz} Hz {amp}"] = amp * np.sin(2 * np.pi * hz * t)
    for kind in ("noise burst", "impulse", "tone burst"):
        x = np.zeros(3 * rate)
        s, m = int(1.4 * rate), int(0.2 * rate)
        k = np.arange(m)
        x[s:s + m] = {"noise burst": 0.5 * rng.standard_normal(m),
                      "impulse": 0.9 * np.exp(-k / (0.005 * rate)) * np.sign(rng.standard_normal(m)),
                      "tone burst": 0.5 * np.sin(2 * np.pi * 1000 * k / rate)}[kind]
        out[f"0.2 s click ({kind})"] = x
    out["sawtooth 120 Hz"] = 0.3 * (2 * ((t * 120) % 1) - 1)
    out["square 200 Hz"] = 0.3 * np.sign(np.sin(2 * np.pi * 200 * t))
    out["hum 50 Hz + harmonics"] = sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 10))
    out["sweep 100-4000 Hz"] = 0.5 * np.sin(2 * np.pi * (100 * t + 3900 / 10 * t ** 2))
    out["noise modulated at 4 Hz"] = 0.3 * rng.standard_normal(n) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return out


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f noise (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=float)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / x.std()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "nospeech.json"))
    ap.add_argument("--ravdess-every", type=int, default=1, help="every n-th RAVDESS speech clip")
    args = ap.parse_args()

    rec = Recognizer.load(backend="onnx", threads=1)
    result = {"min_speech_seconds": rec.min_speech_seconds, "vad_threshold": rec.vad_threshold,
              "signals": {}, "speech": {}}

    for rate in (16_000, 8_000, 44_100):
        for name, x in non_speech(rate).items():
            seconds = rec.speech_seconds(audio.from_array(x.astype(np.float32), rate, rec.sample_rate))
            result["signals"].setdefault(name, {})[str(rate)] = round(seconds, 3)
    wrong = {k: v for k, v in result["signals"].items() if any(rec.is_speech(s) for s in v.values())}
    print(f"non-speech signals answered as speech: {len(wrong)} of {len(result['signals'])} {wrong or ''}")

    corpora = {
        "savee": sorted((SHARED / "savee" / "AudioData").glob("*/*.flac")),
        "ravdess": sorted((SHARED / "ravdess" / "Audio_Speech_Actors_01-24").glob("*/*.flac"))[::args.ravdess_every],
    }
    for corpus, files in corpora.items():
        for gain_db in (0, -20):
            seconds = []
            for f in files:
                wave = audio.load(f, rec.sample_rate) * np.float32(10 ** (gain_db / 20))
                wave = np.round(wave * 32767) / np.float32(32767)  # a 16-bit file at that level
                seconds.append(rec.speech_seconds(wave))
            seconds = np.array(seconds)
            missed = [str(f.relative_to(SHARED)) for f, s in zip(files, seconds) if not rec.is_speech(s)]
            key = f"{corpus} {gain_db:+d} dB"
            result["speech"][key] = {"files": len(files), "no_speech": len(missed), "missed": missed,
                                     "speech_seconds_min": round(float(seconds.min()), 3),
                                     "speech_seconds_p01": round(float(np.quantile(seconds, 0.01)), 3),
                                     "speech_seconds_median": round(float(np.median(seconds)), 3)}
            r = result["speech"][key]
            print(f"{key:16s} {r['files']} files, {r['no_speech']} called no_speech; speech seconds "
                  f"min {r['speech_seconds_min']}, 1 % {r['speech_seconds_p01']}, median {r['speech_seconds_median']}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
