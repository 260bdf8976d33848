"""scripts/bundle_model.py names every corpus a bundled network learned from, and each one's terms, on its card."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from emovox.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle_model():
    spec = importlib.util.spec_from_file_location("bundle_model", ROOT / "scripts" / "bundle_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ravdess_alone_keeps_the_cards_wording(bundle_model):
    corpora = bundle_model.training_corpora(load_config(ROOT / "configs" / "resnet18-mfcc-consistent.yaml"))
    assert [c["what"] for c in corpora] == ["RAVDESS speech, all 24 actors (1440 clips)"]
    member = {"provenance": {"corpora": corpora}}
    assert bundle_model._other_licences(member) == "" and bundle_model._other_voices(member) == ""
    # folders bundled before provenance named corpora read as RAVDESS speech
    assert bundle_model._corpora({"provenance": {"data": "RAVDESS speech, all 24 actors (1440 clips)"}})[0]["corpus"] == "ravdess"


def test_savee_in_training_makes_the_model_research_only(bundle_model):
    cfg = load_config(ROOT / "configs" / "resnet18-mfcc-consistent.yaml", ["data.corpus=[ravdess-all, savee]"])
    corpora = bundle_model.training_corpora(cfg)
    assert [c["what"] for c in corpora] == ["RAVDESS speech and song, all 24 actors (2452 clips)",
                                            "SAVEE, all 4 speakers (480 clips)"]
    member = {"provenance": {"corpora": corpora}}
    licences = bundle_model._other_licences(member)
    assert "SAVEE" in licences and "research use only" in licences and "**non-commercial research use only**" in licences
    assert bundle_model._other_voices(member) == ", and on SAVEE: 4 male British speakers, 7 emotions"
