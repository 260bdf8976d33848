"""The "bins" normalisation and its reference statistics: per clip and per speaker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovox.features import FeatureConfig, FeatureExtractor, Stats, extract
from emovox.pipeline import ClipClassifier, Preprocessing, predict_clips, reference_stats
from emovox.models.registry import build_model


def images(n=3, bins=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(bins, 100 + 20 * i, generator=g) * 10 - 40 for i in range(n)]


def test_stats_of_a_range_equals_the_slice():
    db = images(1)[0]
    s = Stats.of(db, 10, 70)
    part = db[:, 10:70]
    assert torch.allclose(s.mean, part.mean(-1), atol=1e-4)
    assert torch.allclose(s.std, (part - part.mean(-1, keepdim=True)).square().mean().sqrt(), atol=1e-4)


def test_pooled_stats_equal_the_concatenation():
    imgs = images(3)
    bounds = [(5, 80), (0, 120), (20, 130)]
    pooled = Stats.pool(imgs, bounds)
    cat = torch.cat([im[:, a:b] for im, (a, b) in zip(imgs, bounds)], dim=-1)
    assert torch.allclose(pooled.mean, Stats.of(cat).mean, atol=1e-4)
    assert torch.allclose(pooled.std, Stats.of(cat).std, atol=1e-4)


def test_bins_mode_removes_a_fixed_colouring():
    """A microphone's fixed EQ (a constant per bin in dB) leaves the normalised image unchanged."""
    ex = FeatureExtractor(FeatureConfig(normalize="bins"))
    db = images(1)[0]
    eq = torch.linspace(-12, 6, db.shape[0])[:, None]
    a = ex.finish(db[None], Stats.of(db).expand(1))
    b = ex.finish((db + eq)[None], Stats.of(db + eq).expand(1))
    assert torch.allclose(a, b, atol=1e-4)


def test_finish_is_batch_consistent_with_per_window_references():
    ex = FeatureExtractor(FeatureConfig(normalize="bins", deltas=True))
    windows = torch.randn(4, 64, 50) * 8 - 30
    refs = [Stats.of(w) for w in windows]
    batch = ex.finish(windows, Stats(torch.stack([r.mean for r in refs]), torch.stack([r.std for r in refs])))
    one = torch.cat([ex.finish(w[None], Stats(r.mean[None], r.std[None])) for w, r in zip(windows, refs)])
    assert torch.allclose(batch, one, atol=1e-5)
    assert torch.allclose(ex.finish(windows), batch, atol=1e-5)  # no reference given: each window its own


def test_functional_and_module_forms_agree_in_bins_mode():
    cfg = FeatureConfig(normalize="bins")
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    assert torch.allclose(extract(wave, cfg), FeatureExtractor(cfg)(wave), atol=1e-5)


def test_normalize_accepts_the_old_booleans_and_rejects_others():
    assert FeatureConfig(normalize=True).normalize == "window"
    assert FeatureConfig(normalize=False).normalize == "none"
    assert FeatureConfig.from_dict({"normalize": True}).normalize == "window"
    with pytest.raises(ValueError, match="unknown normalize"):
        FeatureConfig(normalize="speaker")


def test_stats_round_trip_through_a_dict():
    s = Stats.of(images(1)[0])
    back = Stats.from_dict(s.to_dict())
    assert torch.allclose(back.mean, s.mean) and torch.isclose(back.std, s.std)


@pytest.fixture
def bins_classifier():
    torch.manual_seed(0)
    pipe = Preprocessing(features=FeatureConfig(normalize="bins"))
    model = build_model("resnet18", num_classes=8, in_channels=1, width=8).eval()
    return ClipClassifier(model, pipe).eval()


def test_clip_classifier_equals_batched_path_in_bins_mode(bins_classifier):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.05 for n in (20000, 52000)]
    analysed = [bins_classifier.analyse(w) for w in waves]
    batched = predict_clips(bins_classifier, [a[0] for a in analysed], [a[1] for a in analysed])
    with torch.no_grad():
        single = np.stack([bins_classifier(torch.from_numpy(w)).numpy() for w in waves])
    assert np.allclose(batched, single, atol=1e-5)


def test_a_speaker_reference_changes_the_answer_and_the_own_one_does_not(bins_classifier):
    rng = np.random.default_rng(1)
    wave = rng.standard_normal(30000).astype(np.float32) * 0.05
    db, (first, end) = bins_classifier.analyse(wave)
    own = reference_stats(db, first, end)
    base = predict_clips(bins_classifier, [db], [(first, end)])
    same = predict_clips(bins_classifier, [db], [(first, end)], speakers=[own])
    other = predict_clips(bins_classifier, [db], [(first, end)],
                          speakers=[Stats(own.mean + torch.linspace(-10, 10, len(own.mean)), own.std * 2)])
    assert np.allclose(base, same, atol=1e-6)
    assert not np.allclose(base, other, atol=1e-3)


@pytest.fixture(scope="module")
def bins_model_dir(tmp_path_factory):
    """An untrained bins-normalised model folder (the plumbing, not accuracy, is under test)."""
    from emovox.models.folder import new_bundle, save_bundle

    torch.manual_seed(0)
    bundle = new_bundle(Preprocessing(features=FeatureConfig(normalize="bins")), "resnet18", width=8)
    return save_bundle(bundle, tmp_path_factory.mktemp("bins") / "model")


def test_recognizer_speaker_adaptive_prediction(bins_model_dir, tiny_ravdess):
    from emovox import Recognizer

    rec = Recognizer.load(bins_model_dir, threads=1)
    files = sorted((tiny_ravdess / "Audio_Speech_Actors_01-24" / "Actor_01").glob("*.flac"))[:4]
    ref = rec.speaker_reference(files)
    alone = [rec.predict(f) for f in files]
    adapted = [rec.predict(f, speaker=ref) for f in files]
    grouped = dict(rec.predict_speakers({"01": files}))
    assert all(np.allclose(list(grouped[f].probabilities.values()), list(p.probabilities.values()), atol=1e-5)
               for f, p in zip(files, adapted))
    assert any(not np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
               for a, b in zip(alone, adapted))


def test_cli_predict_speaker_norm_per_folder(bins_model_dir, tiny_ravdess, tmp_path, capsys):
    import json

    from emovox.cli import main

    speech = tiny_ravdess / "Audio_Speech_Actors_01-24"
    assert main(["predict", str(speech), "--model", str(bins_model_dir), "--speaker-norm", "folder",
                 "--format", "json", "--threads", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24 and all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)


def test_timeline_with_the_recording_as_speaker_reference(bins_model_dir, tiny_ravdess):
    from emovox import Recognizer
    from emovox import audio

    rec = Recognizer.load(bins_model_dir, threads=1)
    files = sorted((tiny_ravdess / "Audio_Speech_Actors_01-24" / "Actor_02").glob("*.flac"))[:4]
    wave = np.concatenate([audio.load(f) for f in files])
    plain = rec.timeline(wave, sample_rate=16000)
    adapted = rec.timeline(wave, sample_rate=16000, speaker_norm=True)
    assert np.array_equal(plain.speech, adapted.speech)
    speech = plain.speech >= 0.25
    assert speech.any()
    assert not np.allclose(plain.probabilities[speech], adapted.probabilities[speech], atol=1e-4)


def test_remove_dc_makes_an_offset_invisible():
    wave = torch.randn(1, 16000, generator=torch.Generator().manual_seed(2)) * 0.05
    wave = wave - wave.mean()
    on = FeatureExtractor(FeatureConfig(remove_dc=True))
    off = FeatureExtractor(FeatureConfig())
    assert torch.allclose(on.power_db(wave + 0.03), on.power_db(wave), atol=1e-3)
    assert not torch.allclose(off.power_db(wave + 0.03), off.power_db(wave), atol=1.0)


@pytest.mark.parametrize("kind", ["mfcc", "mel"])
def test_relative_db_makes_the_model_input_gain_invariant(kind):
    wave = torch.randn(1, 24000, generator=torch.Generator().manual_seed(3)) * 0.1
    rel = FeatureExtractor(FeatureConfig(kind=kind, relative_db=True))
    assert torch.allclose(rel(wave * 0.1), rel(wave), atol=1e-3)
    if kind == "mfcc":  # the reason for the option: c0 keeps the level through window standardisation
        plain = FeatureExtractor(FeatureConfig(kind=kind))
        assert not torch.allclose(plain(wave * 0.1), plain(wave), atol=1e-2)
