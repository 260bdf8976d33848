"""Run settings: typed sections, YAML in and out, overrides, the errors that name a bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emovox.config import RunConfig, differs_from_saved, load_config, save_config
from emovox.pipeline import Preprocessing

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_dataclasses_in_the_layout_run_folders_hold():
    d = RunConfig().to_dict()
    assert list(d) == ["name", "seed", "threads", "data", "preprocessing", "model", "training", "lr_find", "augment"]
    assert d["data"] == {"corpus": "ravdess", "root": None, "test_corpora": None, "cache_dir": None, "labels": "all"}
    assert d["preprocessing"] == Preprocessing().to_dict()  # one copy of the preprocessing defaults
    assert d["model"] == {"name": "resnet18", "width": 32, "dropout": 0.2, "pooling": "avg", "pretrained": None}
    assert list(d["training"]) == ["epochs", "batch_size", "max_lr", "div_factor", "final_div_factor", "pct_start",
                                   "weight_decay", "label_smoothing", "bf16", "channels_last", "val_speakers",
                                   "select_on", "balance", "speaker_p", "cv_folds", "c_grid", "copies", "distill",
                                   "speaker_groups", "speaker_adversary", "centred_weight", "intensity_head", "mixstyle", "mixstyle_on", "consistency"]
    assert d["lr_find"] == {"start_lr": 1e-6, "end_lr": 1.0, "steps": 100}
    assert d["augment"] == {"spec_augment": None, "mixup": None, "wave": None}
    assert load_config() == RunConfig() and RunConfig.from_dict(d) == RunConfig()


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_recipes_load_and_round_trip_through_yaml(recipe, tmp_path):
    cfg = load_config(recipe, ["training.epochs=3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg and not differs_from_saved(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == cfg.to_dict()


def test_overrides_merge_into_sections_and_are_checked():
    cfg = load_config(None, ["data.corpus=[ravdess, savee=/data/SAVEE]", "training.max_lr=auto",
                             "preprocessing.features.n_mels=80", "augment.wave={noise: {p: 0.5}}"])
    assert cfg.data.corpus == ["ravdess", "savee=/data/SAVEE"] and cfg.training.max_lr == "auto"
    assert cfg.preprocessing.features.n_mels == 80 and cfg.preprocessing.features.kind == "mel"
    assert cfg.training.epochs == 40  # the rest of the section keeps its values
    assert cfg.override("augment.wave.noise.p=0.2").augment.wave == {"noise": {"p": 0.2}}
    # a free-form mapping takes new entries and options; their consumer checks them
    grown = cfg.override("augment.wave.noise.snr_low=3", "augment.wave.codec={p: 0.1, fast: true}").check()
    assert grown.augment.wave == {"noise": {"p": 0.5, "snr_low": 3}, "codec": {"p": 0.1, "fast": True}}
    for bad, message in [("augment.wave.noise.loudness=3", "augment.wave.noise has no option 'loudness'"),
                         ("augment.wave.echo={p: 1}", "unknown waveform augmentation echo"),
                         ("augment.wave.babble.pool=3", "has no option 'pool'"),
                         ("augment.spec_augment={freq_width: 8, wide: 1}", "augment: .*wide")]:
        with pytest.raises(ValueError, match=message):
            cfg.override(bad).check()
    assert cfg.merged({"model": {"width": 8}}).model.options == {"width": 8, "dropout": 0.2}
    for bad, message in [("training.foo=1", "unknown config key 'training.foo'"),
                         ("foo=1", "unknown config key 'foo'"),
                         ("training=3", "config key 'training' must be a mapping"),
                         ("training.epochs=many", "'training.epochs' must be a number"),
                         ("training.bf16=1", "'training.bf16' must be true or false"),
                         ("preprocessing.features.n_bands=3", "unknown feature settings: n_bands"),
                         ("training.epochs", "must look like section.key=value")]:
        with pytest.raises(ValueError, match=message):
            cfg.override(bad)


def test_a_run_resumes_only_with_the_settings_it_saved(tmp_path):
    cfg = load_config(None, ["training.epochs=3"])
    saved = tmp_path / "config.yaml"
    save_config(cfg, saved)
    assert not differs_from_saved(cfg, saved) and differs_from_saved(cfg.override("training.epochs=4"), saved)
    older = yaml.safe_load(saved.read_text())
    del older["data"]["labels"], older["training"]["speaker_p"]  # saved before these settings existed
    saved.write_text(yaml.safe_dump(older, sort_keys=False))
    assert not differs_from_saved(cfg, saved)  # at their defaults they change nothing
    saved.write_text(yaml.safe_dump({**older, "retired": 1}, sort_keys=False))
    assert differs_from_saved(cfg, saved)
