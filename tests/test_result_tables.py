"""The README's cross-corpus table labels each row from what its JSON recorded (benchmarks/cross_table.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cross_table.py"


@pytest.fixture(scope="module")
def cross_table():
    spec = importlib.util.spec_from_file_location("cross_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_rows_name_version_members_and_training(cross_table):
    ensemble = {"name": "bundled-v4", "model": "src/emovox/assets/model", "members": ["mel-deltas", "mfcc"],
                "config": None, "wave_augment": ["noise", "reverb"], "consistency": 12}
    member = {**ensemble, "name": "bundled-v4-mfcc", "model": "src/emovox/assets/model/mfcc", "members": ["mfcc"]}
    plain = {**ensemble, "name": "bundled-v2", "wave_augment": [], "consistency": None}
    assert cross_table.recipe(ensemble) == ("**bundled model v4**: ensemble of mel-deltas, mfcc, waveform augmentation, "
                                            "consistency training (weight 12) (24 actors)")
    assert cross_table.recipe(member) == ("bundled model v4, its mfcc member alone, waveform augmentation, "
                                          "consistency training (weight 12) (24 actors)")
    assert cross_table.recipe(plain) == "**bundled model v2**: ensemble of mel-deltas, mfcc (24 actors)"
    one = {**ensemble, "name": "bundled-v6", "members": ["model"], "features": ["mfcc"], "epochs": 60}
    assert cross_table.recipe(one) == ("**bundled model v6**: one network on mfcc, waveform augmentation, "
                                       "consistency training (weight 12), 60 epochs (24 actors)")


def test_v1_results_recorded_no_members(cross_table):
    """v1's JSONs predate the members list: the folder name is all there is."""
    old = {"name": "bundled-v1-mfcc", "model": "src/emovox/assets/model/mfcc", "config": None}
    assert cross_table.recipe(old) == "bundled model v1, its mfcc member alone (24 actors)"


def test_an_average_of_runs_models_names_each_run(cross_table):
    d = {"name": "two-seeds", "config": None, "members": ["best", "best"],
         "model": ["runs/bench/cross/mfcc-s0/train/best", "runs/bench/cross/mfcc-s1/train/best"]}
    assert cross_table.recipe(d) == "average of the `mfcc-s0`, `mfcc-s1` runs' models"
    d["model"] = ["src/emovox/assets/model", "mine"]  # not a run's model: named by its path
    assert cross_table.recipe(d) == "average of the `src/emovox/assets/model`, `mine` runs' models"


def test_rows_name_the_machine_kind(cross_table):
    from emovox.config import load_config

    cfg = load_config(SCRIPT.parents[1] / "configs" / "resnet18-mfcc.yaml").to_dict()
    zen5 = {"config": cfg, "machine": "AMD EPYC family 26 model 2 (avx2 avx512f avx512_bf16), 2 CPUs, torch 2.13.0+cpu"}
    amx = {"config": cfg, "machine": "Intel(R) Xeon(R) Processor family 6 model 143 (avx2 avx512f avx512_bf16 amx_bf16)"}
    zen4 = {"config": cfg, "machine": "AMD EPYC family 25 model 17 (avx2 avx512f avx512_bf16)"}
    assert cross_table.recipe(zen5).endswith("AMD Zen 5") and cross_table.recipe(amx).endswith("Intel AMX")
    assert cross_table.recipe(zen4).endswith("AMD Zen 4") and "AMX" not in cross_table.recipe(zen4)
    unnamed = {**zen4, "machine": "AMD EPYC (avx2 avx512f avx512_bf16)"}  # recorded before family / model were
    assert "Zen" not in cross_table.recipe(unnamed)
    narrow = {**zen4, "config": {**cfg, "model": {**cfg["model"], "width": 16}}}
    assert "**ResNet18 w16**" in cross_table.recipe(narrow) and "w16" not in cross_table.recipe(zen4)


def test_rows_name_the_pooling_the_intensity_head_and_mixstyle(cross_table):
    from emovox.config import load_config

    cfg = load_config(SCRIPT.parents[1] / "configs" / "resnet18-mfcc-consistent.yaml",
                      ["model.pooling=attention", "training.intensity_head=0.3", "training.mixstyle=0.5"]).to_dict()
    label = cross_table.recipe({"config": cfg, "machine": ""})
    assert "**MixStyle** (p=0.5 per batch, stages 1-2)" in label
    assert "**attention pooling** over time" in label and "**intensity head** (RAVDESS normal / strong, weight 0.3)" in label
    cfg["training"]["mixstyle_on"] = "bins"
    assert "**Freq-MixStyle** (p=0.5 per batch, input bins)" in cross_table.recipe({"config": cfg, "machine": ""})
    plain = load_config(SCRIPT.parents[1] / "configs" / "resnet18-mfcc-consistent.yaml").to_dict()
    assert "pooling" not in cross_table.recipe({"config": plain, "machine": ""})
