"""A short fuzzing run (benchmarks/fuzz.py): malformed audio, corpus names, manifests and model
folders give their documented errors; no crash, no hang over 5 s. The full run is
``python benchmarks/fuzz.py --runs 10000`` (see the README)."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

FUZZ = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"


def _harness():
    # imported by name from its folder: the worker processes (spawned) import it the same way
    if str(FUZZ.parent) not in sys.path:
        sys.path.insert(0, str(FUZZ.parent))
    return importlib.import_module("fuzz")


def test_seed_corpus_is_small_and_decodes():
    from emovox import audio

    seeds = Path(__file__).parent / "fuzz_seeds"
    assert sum(p.stat().st_size for p in seeds.iterdir()) < 16_000
    for name in _harness().AUDIO_SEEDS:
        assert len(audio.load(seeds / name)) > 0, name


def test_a_short_fuzzing_run_has_no_crash_and_no_hang():
    start = time.monotonic()
    summary = _harness().fuzz(200, seed=12, progress=lambda m: None)
    assert summary["inputs"] == 200
    assert summary["crashes"] == 0 and summary["hangs"] == 0, summary["failures"]
    assert set(summary["outcomes"]) == {"audio", "names", "corpus", "manifest", "model"}
    assert time.monotonic() - start < 60  # about 10 s on 2 busy cores (torch's import included)
