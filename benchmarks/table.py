"""Print the README's results table from benchmarks/results/*.json (one row per evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED = [  # EmoBox (Ma et al. 2024), same 6 RAVDESS folds, frozen SSL features + small head
    ("wav2vec2-base (frozen) + head", "55.4"), ("HuBERT-large (frozen) + head", "70.3"),
    ("WavLM-large (frozen) + head", "72.2"), ("Whisper-large-v3 (frozen) + head", "75.9"),
]


def pct(res: dict, key: str) -> str:
    if len(res["folds"]) == 1:  # one split: no spread to report
        return f"{100 * res[key]:.1f}"
    return f"{100 * res[key]:.1f} ± {100 * res[key + '_std']:.1f}"


def main() -> None:
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    rows = [r for r in rows if "protocol" in r and "folds" in r]
    print("| model | features | protocol | WA % | UA % | macro-F1 % | train min / fold, mean | command |")
    print("|---|---|---|---|---|---|---|---|")
    order = {"emobox": 0, "loso": 1, "random": 2}
    for r in sorted(rows, key=lambda r: (order[r["protocol"]], r["config"]["name"])):
        name = r["config"]["name"]
        proto = {"emobox": "EmoBox 6 folds, actor-disjoint", "loso": "leave one actor out",
                 "random": "random 80/20 files (not speaker-independent)"}[r["protocol"]]
        n = len(r["folds"])
        print(f"| {r['model']['name']} w{r['model'].get('width')} | {r['features']} | {proto}{' (1 split)' if n == 1 else ''} "
              f"| {pct(r, 'wa')} | {pct(r, 'ua')} | {pct(r, 'f1')} | {r['train_seconds'] / 60:.1f} "
              f"| `emovox evaluate --config configs/{name}.yaml --protocol {r['protocol']}` |")
    for name, wa in PUBLISHED:
        print(f"| {name} | — | EmoBox 6 folds, actor-disjoint (published) | {wa} | | | | EmoBox paper |")
    print("| seed recipe (ResNet18, one-cycle) | spectrogram / mel / MFCC images | random files (reported) | 76 | | | | seed write-up |")
    machines = sorted({r["machine"] for r in rows})
    if machines:
        print(f"\nMeasured on: {'; '.join(machines)}.")


if __name__ == "__main__":
    main()
