"""Average mel spectrum shape per corpus and emotion: why a RAVDESS model hears SAVEE as sad.

    python benchmarks/spectral_profile.py [ravdess savee]

For every clip: the mean dB of each mel band over its voiced frames, minus that clip's mean over
bands (so level and microphone gain drop out and only the shape remains); then the mean per
corpus and per emotion. Prints every 6th band from band 2 (about 60 Hz) up; writes
benchmarks/results/spectral_profile.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    from emovox.corpora import open_corpus
    from emovox.pipeline import Preprocessing
    from emovox.training.data import build_features
    from emovox.training.data import machine

    corpora = (argv or sys.argv[1:]) or ["ravdess", "savee"]
    pipe = Preprocessing()
    out = {"machine": machine(), "bands_shown": list(range(2, 64, 6)), "corpora": {}}
    for name in corpora:
        fs = build_features(open_corpus(name).utterances(), pipe, progress=False)
        by: dict[str, list] = {}
        voiced = []
        for img, (a, b), u in zip(fs.images, fs.bounds, fs.utterances):
            v = img[2:, a:b].mean(-1).numpy()
            by.setdefault(u.emotion, []).append(v - v.mean())
            voiced.append((b - a) * pipe.features.hop_length / pipe.sample_rate)
        profiles = {e: np.mean(v, 0) for e, v in by.items()}
        profiles["all"] = np.mean([p for v in by.values() for p in v], 0)
        out["corpora"][name] = {"voiced_seconds_mean": float(np.mean(voiced)),
                                "profile_db": {e: [round(float(x), 1) for x in p[::6]] for e, p in profiles.items()}}
        print(f"{name}: voiced part {np.mean(voiced):.2f} s on average")
        for e, p in profiles.items():
            print(f"  {e:10s}", " ".join(f"{x:+4.0f}" for x in p[::6]))
    path = Path(__file__).resolve().parent / "results" / "spectral_profile.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
