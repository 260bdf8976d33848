"""A tiny real training run end to end: run folder, resume, LR range test, a protocol."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from emovox.config import load_config, parse_override
from emovox.training.data import load_dataset
from emovox.training.evaluate import evaluate
from emovox.training.metrics import scores
from emovox.training.trainer import train


def split(data, val="03"):
    tr = [i for i, u in enumerate(data.utterances) if u.speaker != val]
    va = [i for i, u in enumerate(data.utterances) if u.speaker == val]
    return data.subset(tr), data.subset(va)


def test_run_folder_holds_everything(tiny_model):
    run = tiny_model.parent
    for name in ("config.yaml", "metrics.csv", "training.png", "confusion_val.png", "report.md", "checkpoint.pt",
                 "best/config.json", "best/model.safetensors", "last/model.safetensors"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(0 <= float(r["val_ua"]) <= 1 for r in rows)
    assert "selected epoch" in (run / "report.md").read_text()


@pytest.mark.slow  # whole training runs: `python -m pytest -m slow`
@pytest.mark.parametrize("overrides", [[], ["training.speaker_adversary=0.1"]], ids=["plain", "speaker-adversary"])
def test_resume_gives_the_same_run(tiny_config, tmp_path, overrides):
    tiny_config = tiny_config.override(*overrides)  # the adversary's head and optimizer state resume too
    data = load_dataset(tiny_config, progress=False)
    tr, va = split(data)
    straight = train(tiny_config, tmp_path / "straight", tr, va, progress=False)

    def stop_after_first(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config, tmp_path / "cut", tr, va, progress=False, on_epoch_end=stop_after_first)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config, tmp_path / "cut", tr, va, progress=False)
    seen = []
    resumed = train(tiny_config, tmp_path / "cut", tr, va, resume=True, progress=False, on_epoch_end=seen.append)
    assert seen == [2, 3]  # it continued; it did not start over
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    last_a = load_last(tmp_path / "straight")
    last_b = load_last(tmp_path / "cut")
    for k in last_a:
        torch.testing.assert_close(last_a[k], last_b[k])


def load_last(run):
    from safetensors.torch import load_file

    return load_file(str(run / "last" / "model.safetensors"))


def test_lr_bounds_follow_the_loss_curve_and_ignore_divergence():
    from emovox.training.schedule import suggest_bounds

    lrs = np.logspace(-6, 0, 7)
    smoothed = np.array([2.0, 1.9, 1.5, 1.0, 1.2, np.nan, np.nan])  # lowest at 1e-3, then diverges
    assert suggest_bounds(lrs, smoothed) == pytest.approx((1e-5, 1e-4))
    with pytest.raises(ValueError, match="diverged"):
        suggest_bounds(lrs, np.full(7, np.nan))



def test_lr_find_bounds_set_the_one_cycle_of_runs_on_the_same_fold_only(tmp_path):
    from emovox.training.schedule import RangeTest, read_bounds

    rt = RangeTest([1e-5, 1e-4], [2.0, 1.0], [2.0, 1.5], lower=1e-4, upper=1e-3)
    assert rt.one_cycle() == pytest.approx((1e-3, 10.0))
    saved = rt.save(tmp_path, fold="emobox:1")
    assert saved == tmp_path / "lr_find.json" and (tmp_path / "lr_find.png").is_file()
    assert read_bounds(saved, "emobox:1") == pytest.approx((1e-3, 10.0))
    with pytest.raises(ValueError, match="measured on fold 'emobox:1', this run trains on 'all'"):
        read_bounds(saved, None)
    assert read_bounds(rt.save(tmp_path / "auto"), None) == pytest.approx((1e-3, 10.0))  # no fold: all actors

@pytest.mark.slow  # whole training runs: `python -m pytest -m slow`
def test_auto_lr_run_writes_its_range_test_and_resumes_with_the_same_schedule(tiny_config, tmp_path):
    cfg = tiny_config.override("training.max_lr=auto", "training.epochs=2")
    data = load_dataset(cfg, progress=False)
    tr, va = split(data)

    def stop(epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "auto", tr, va, progress=False, on_epoch_end=stop)
    bounds = json.loads((tmp_path / "auto" / "lr_find.json").read_text())
    assert 0 < bounds["lower"] < bounds["upper"] and (tmp_path / "auto" / "lr_find.png").is_file()
    result = train(cfg, tmp_path / "auto", tr, va, resume=True, progress=False)
    schedule = json.loads((result.run_dir / "best" / "config.json").read_text())["provenance"]["schedule"]
    assert schedule["max_lr"] == pytest.approx(bounds["upper"])
    with pytest.raises(ValueError, match="another config"):
        other = cfg.override("training.epochs=3")
        train(other, tmp_path / "auto", tr, va, resume=True, progress=False)


@pytest.mark.slow  # whole training runs: `python -m pytest -m slow`
def test_loso_protocol_writes_results(tiny_config, tmp_path):
    cfg = replace(load_config(None, []), **{k: getattr(tiny_config, k) for k in ("data", "model", "training", "lr_find")})
    cfg = cfg.override("training.epochs=1")
    res = evaluate(cfg, "loso", tmp_path / "eval", folds=["01"], progress=False)
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["protocol"] == "loso" and saved["features"] == "mel"
    (fold,) = saved["folds"]
    assert fold["fold"] == "loso-01" and fold["test_speakers"] == ["01"]
    assert fold["n_test"] == 8 and "01" not in fold["val_speakers"]
    for key in ("wa", "ua", "f1"):
        assert 0 <= fold[key] <= 1 and saved[key] == fold[key]
    assert np.array(saved["confusion"]).sum() == 8
    # calibration fitted on the validation actors, measured on the test actor
    cal = fold["calibration"]
    assert 0.05 <= cal["temperature"] <= 20 and 0 <= cal["test_ece_after"] <= 1
    assert saved["test_ece_before"] == cal["test_ece_before"] and 0 <= fold["selected_val_ua"] <= 1
    assert (tmp_path / "eval" / "results.md").read_text().count("loso-01") == 1
    # a second call reuses the finished fold instead of training again
    again = evaluate(cfg, "loso", tmp_path / "eval", folds=["01"], progress=False)
    assert again["folds"] == res["folds"]


def test_scores_known_values():
    s = scores([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 8)
    assert s["wa"] == pytest.approx(4 / 6)
    assert s["ua"] == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_config_overrides_and_unknown_keys():
    assert parse_override("training.epochs=5") == {"training": {"epochs": 5}}
    cfg = load_config(None, ["training.epochs=5", "preprocessing.features.kind=mfcc"])
    assert cfg.training.epochs == 5 and cfg.preprocessing.features.kind == "mfcc"
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["training.epoch=5"])
    with pytest.raises(ValueError, match="kind"):
        load_config(None, ["preprocessing.features.kind=chroma"])
