"""The README's cross-corpus table from benchmarks/results/cross/*.json.

    python benchmarks/cross_table.py > benchmarks/results/cross.md

One row per model and protocol: RAVDESS speech → SAVEE, all 480 clips (7 emotions) and EmoBox's
balanced 4-emotion list, each read two ways (the model's own answer over its 8 emotions; the
argmax over the test emotions). SAVEE is the development corpus: development figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "cross"


def pct(x):
    return f"{100 * x:.1f}"


def main() -> int:
    print("| model | protocol | SAVEE 4-emotion list, argmax over 4: WA | all 480, own answer: WA / UA | "
          "all 480, argmax over 7: WA / UA | RAVDESS validation UA | source |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        val = d.get("validation") or {}
        for protocol in ("per-clip", "speaker-adaptive"):
            if protocol not in d["all"]:
                continue
            four = d["emobox-4"][protocol]["restricted"]
            own, seven = d["all"][protocol]["own"], d["all"][protocol]["restricted"]
            print(f"| {d['name']} | {protocol} | {pct(four['wa'])} | {pct(own['wa'])} / {pct(own['ua'])} | "
                  f"{pct(seven['wa'])} / {pct(seven['ua'])} | {pct(val['val_ua']) if 'val_ua' in val else '—'} | "
                  f"`{path.relative_to(RESULTS.parents[1])}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
