"""scripts/bundle_model.py names every corpus a bundled network learned from, and each one's terms, on its card."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from emovox.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SAVEE = ROOT.parent / "shared" / "data" / "savee"
CONFIG = ROOT / "configs" / "resnet18-mfcc-consistent.yaml"


@pytest.fixture(scope="module")
def bundle_model():
    spec = importlib.util.spec_from_file_location("bundle_model", ROOT / "scripts" / "bundle_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_card_is_what_the_script_writes(bundle_model):
    """The card is generated from the model folder and the results it cites: a stale card is a defect."""
    assert bundle_model.card_text() == (bundle_model.ASSETS / "MODEL_CARD.md").read_text()


def test_ravdess_alone_keeps_the_cards_wording(bundle_model):
    corpora = bundle_model.training_corpora(load_config(CONFIG))
    assert [c["what"] for c in corpora] == ["RAVDESS speech, all 24 actors (1440 clips)"]
    assert bundle_model.licence_of(corpora) == "CC BY-NC-SA 4.0 (inherited from RAVDESS speech)"
    member = {"provenance": {"corpora": corpora}}
    assert bundle_model._other_licences(member) == "" and bundle_model._other_voices(member) == ""
    assert "SAVEE: 4 male British speakers it never heard" in bundle_model._cross_corpus(member)
    # folders bundled before provenance named corpora read as RAVDESS speech
    assert bundle_model._corpora({"provenance": {"data": "RAVDESS speech, all 24 actors (1440 clips)"}})[0]["corpus"] == "ravdess"


@pytest.mark.skipif(not SAVEE.is_dir(), reason=f"SAVEE not found at {SAVEE}")
def test_savee_in_training_makes_the_model_research_only(bundle_model):
    cfg = load_config(CONFIG, ["data.corpus=[ravdess, ravdess-song, savee]"])
    corpora = bundle_model.training_corpora(cfg)
    assert [c["what"] for c in corpora] == ["RAVDESS speech, all 24 actors (1440 clips)",
                                            "RAVDESS song, all 23 actors (1012 clips)",
                                            "SAVEE, all 4 speakers (480 clips)"]
    # one line per set of terms: RAVDESS's once for speech and song
    assert bundle_model.licence_of(corpora) == ("CC BY-NC-SA 4.0 (inherited from RAVDESS speech and RAVDESS song); "
                                                "research use only, as the University of Surrey gives it out free of "
                                                "charge (inherited from SAVEE)")
    member = {"provenance": {"corpora": corpora}}
    licences = bundle_model._other_licences(member)
    assert "SAVEE" in licences and "**non-commercial research use only**" in licences
    assert bundle_model._other_voices(member) == ", and on SAVEE: 4 male British speakers, 7 emotions"
    # SAVEE heard in training: the card quotes no SAVEE figure as "other voices"
    assert "never heard" not in bundle_model._cross_corpus(member) and "in its training data" in bundle_model._cross_corpus(member)


def test_a_no_derivatives_corpus_gets_a_warning(bundle_model):
    member = {"provenance": {"corpora": [{"corpus": "tess", "label": "TESS", "terms": "CC BY-NC-ND 4.0 (Pichora-Fuller & Dupuis 2020)",
                                          "what": "TESS, all 2 speakers (2800 clips)"}]}}
    assert "NoDerivatives" in bundle_model._other_licences(member)
