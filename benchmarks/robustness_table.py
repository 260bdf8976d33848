"""The README's robustness table from benchmarks/results/robustness/*.json.

    python benchmarks/robustness_table.py

Per model and test set: clean accuracy, then for each degradation the accuracy drop (points)
and the share of clips whose answer stayed the same. Goal (issue 13): drop ≤ 5 points and
agreement ≥ 90 % for each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "robustness"
SETS = {"ravdess_heldout": "RAVDESS, 4 held-out actors", "ravdess_folds": "RAVDESS, EmoBox test folds",
        "savee": "SAVEE (cross-corpus)"}


def main() -> int:
    docs = [(p, json.loads(p.read_text())) for p in sorted(RESULTS.glob("*.json"))]
    if not docs:
        return 0
    conditions = docs[0][1]["conditions"]
    print("| model | test set | clean acc. | " + " | ".join(conditions) + " |")
    print("|---|---|---|" + "---|" * len(conditions))
    for path, d in docs:
        for key, name in SETS.items():
            if key not in d:
                continue
            t = d[key]
            cells = [f"{t[c]['drop_points']:+.1f} / {100 * t[c]['agreement']:.0f} %" for c in conditions]
            name_ = d["name"] + (" (speaker-adaptive)" if d.get("speaker_adaptive") else " (per clip)")
            print(f"| {name_} | {name} | {100 * t['clean']['accuracy']:.1f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
