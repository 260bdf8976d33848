"""Training batches (waveform path, speaker references, balance), model label sets, and the
cross-corpus protocol end to end on tiny real corpora (RAVDESS → SAVEE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emovox.config import load_config
from emovox.corpora import Utterance
from emovox.training.batches import BatchMaker, speaker_stats
from emovox.training.crosscorpus import score_ways
from emovox.training.data import load_waves, model_labels
from emovox.training.data import load_dataset
from emovox.training.trainer import class_weights

SAVEE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "savee"
WAVE = {"speed": {"p": 0.5}, "noise": {"p": 0.5}, "band": {"p": 0.3}, "gain": {}, "clipping": {"p": 0.3}}


@pytest.fixture(scope="module")
def tiny_savee(tmp_path_factory) -> Path:
    """Two SAVEE speakers × (angry, happy, neutral, sad) × 2 clips, official layout, real files."""
    root = tmp_path_factory.mktemp("savee")
    for spk in ("DC", "KL"):
        for code in ("a", "h", "n", "sa"):
            for k in (1, 2):
                src = SAVEE / "AudioData" / spk / f"{code}{k:02d}.flac"
                dest = root / "AudioData" / spk / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dest)
    return root


def test_model_label_sets():
    utts = [Utterance(f"{c}-{e}.wav", e, "1", "male", c) for c, es in (("a", ("happy", "sad", "calm")), ("b", ("happy", "sad", "angry"))) for e in es]
    assert model_labels(utts, "intersection") == ("happy", "sad")
    assert model_labels(utts, "union") == ("calm", "happy", "sad", "angry")
    assert len(model_labels(utts, "all")) == 8
    with pytest.raises(ValueError, match="data.labels"):
        model_labels(utts, "some")


def test_batches_are_deterministic_on_both_paths(tiny_config):
    data = load_dataset(tiny_config, progress=False)
    pipe = tiny_config.preprocessing
    waves = load_waves(data.utterances, pipe.sample_rate, cache_dir=tiny_config.data.cache_dir, progress=False)
    from emovox.augment import chain_from_config

    for kwargs in ({}, {"waves": waves, "wave_augment": chain_from_config(WAVE)}):
        a = list(BatchMaker(data, pipe, 8, seed=3, **kwargs).epoch(2))
        b = list(BatchMaker(data, pipe, 8, seed=3, **kwargs).epoch(2))
        c = list(BatchMaker(data, pipe, 8, seed=3, **kwargs).epoch(3))
        assert len(a) == len(data) // 8
        assert all(torch.equal(x.windows, y.windows) and torch.equal(x.y, y.y) for x, y in zip(a, b))
        assert not all(torch.equal(x.windows, y.windows) for x, y in zip(a, c))
        assert a[0].windows.shape == (8, pipe.features.bins, pipe.clip_frames)


def test_augmented_path_sees_what_prediction_sees(tiny_config):
    """An augmentation that changes nothing gives the cached path's windows: the whole clip is
    featurised and trimmed as prediction does, so short utterances keep the recording's own
    silence around them rather than padding (to within a dB on average)."""
    data = load_dataset(tiny_config, progress=False)
    pipe = tiny_config.preprocessing
    waves = load_waves(data.utterances, pipe.sample_rate, cache_dir=tiny_config.data.cache_dir, progress=False)
    cached = list(BatchMaker(data, pipe, 8, seed=5).epoch(0))
    waved = list(BatchMaker(data, pipe, 8, seed=5, waves=waves, wave_augment=lambda w, rng: w).epoch(0))
    short = [i for i, (f, e) in enumerate(data.bounds) if e - f < pipe.clip_frames]
    assert short, "the fixture should hold utterances shorter than a window"
    for a, b in zip(cached, waved):
        assert torch.equal(a.y, b.y)
        # the int16 wave cache moves the quietest frames by a few dB; the first version's
        # padding differed by 11-21 dB on average per window
        assert (a.windows - b.windows).abs().mean(dim=(1, 2)).max() < 1.0


def test_speaker_references_replace_the_clips_own(tiny_config):
    cfg = load_config(None, [f"data.root={tiny_config.data.root}", f"data.cache_dir={tiny_config.data.cache_dir}",
                             "preprocessing.features.normalize=bins"])
    data = load_dataset(cfg, progress=False)
    pipe = cfg.preprocessing
    refs = speaker_stats(data)
    assert set(refs) == {"ravdess-speech:01", "ravdess-speech:02", "ravdess-speech:03"}
    maker = BatchMaker(data, pipe, 8, seed=0, speaker_p=1.0)
    batch = next(iter(maker.epoch(1)))
    means = {tuple(r.mean.round(decimals=3).tolist()) for r in refs.values()}
    assert all(tuple(m.round(decimals=3).tolist()) in means for m in batch.stats.mean)


def test_balance_by_sampling_and_by_loss_weights(tiny_config):
    data = load_dataset(tiny_config, progress=False)
    skewed = data.subset([i for i, u in enumerate(data.utterances) if u.emotion != "neutral" or u.speaker == "01"])
    counts = np.bincount(skewed.labels, minlength=8)
    w = class_weights(skewed, "loss", 8)
    assert torch.isclose((w * torch.tensor(counts, dtype=torch.float32)).sum() / counts.sum(), torch.tensor(1.0))
    assert w[0] > w[1]  # neutral is the rare class here
    assert class_weights(skewed, "none", 8) is None
    with pytest.raises(ValueError, match="training.balance"):
        class_weights(skewed, "oversample", 8)
    maker = BatchMaker(skewed, tiny_config.preprocessing, 4, seed=0, balance="sampler")
    drawn = np.bincount(np.concatenate([b.y.numpy() for e in range(30) for b in maker.epoch(e)]), minlength=8)
    assert drawn[0] / drawn.sum() > 1.5 * counts[0] / counts.sum()


def test_score_ways_own_restricted_and_folded():
    labels = ("neutral", "calm", "happy", "sad")
    truth = np.array([0, 0, 2, 3])
    probs = np.array([[0.1, 0.6, 0.2, 0.1],   # own: calm (wrong); restricted: happy (wrong)
                      [0.3, 0.5, 0.1, 0.1],   # own: calm (wrong); restricted: neutral (right)
                      [0.0, 0.1, 0.8, 0.1],
                      [0.1, 0.1, 0.2, 0.6]])
    res = score_ways(probs, truth, labels)
    assert res["test_labels"] == ["neutral", "happy", "sad"]
    assert res["own"]["wa"] == 0.5 and res["restricted"]["wa"] == 0.75
    assert res["own"]["predicted"]["calm"] == 2
    assert res["restricted"]["recall"] == {"neutral": 0.5, "happy": 1.0, "sad": 1.0}
    assert np.array(res["restricted"]["confusion"]).shape == (3, 3)
    # calm folded into neutral: the first clip's 0.1 + 0.6 beat happy's 0.2 (right now), the rest unchanged
    assert res["folded"]["wa"] == 1.0 and res["folded"]["predicted"]["neutral"] == 2


def test_fold_into_gives_calm_to_neutral_only_where_it_has_no_place():
    from emovox.labels import EMOTIONS, fold_into

    p = np.array([0.10, 0.40, 0.05, 0.15, 0.10, 0.10, 0.05, 0.05])  # neutral calm happy sad angry fearful disgust surprised
    four = fold_into(p, EMOTIONS, ["angry", "happy", "neutral", "sad"])
    np.testing.assert_allclose(four, np.array([0.10, 0.05, 0.50, 0.15]) / 0.80)  # fearful, disgust, surprised dropped
    np.testing.assert_allclose(fold_into(p, EMOTIONS, ["calm", "neutral"]), [0.8, 0.2])  # calm has its own place
    np.testing.assert_allclose(fold_into(p[None], EMOTIONS, ["sad", "happy"]), [[0.75, 0.25]])  # no neutral: calm dropped
    with pytest.raises(ValueError, match="unknown emotion 'bored'"):
        fold_into(p, EMOTIONS, ["bored", "sad"])
    only_dropped = np.array([0, 0, 0, 0, 0, 1.0, 0, 0])  # all on fearful: nothing said about the four
    np.testing.assert_allclose(fold_into(only_dropped, EMOTIONS, ["angry", "happy", "neutral", "sad"]), [0.25] * 4)
    np.testing.assert_allclose(fold_into(p, EMOTIONS, (e for e in ("sad", "happy"))), [0.75, 0.25])  # any iterable


def test_read_test_list_matches_any_extension(tmp_path, tiny_savee):
    from emovox.training.crosscorpus import test_utterances

    lst = tmp_path / "list.csv"
    lst.write_text("file,label\nAudioData/DC/a01.wav,angry\nAudioData/KL/sa02.flac,sad\n")
    utts = test_utterances(f"savee={tiny_savee}", lst)
    assert [u.key for u in utts] == ["savee/DC_a01", "savee/KL_sa02"]
    lst.write_text("file\nAudioData/JE/a01.wav\n")
    with pytest.raises(ValueError, match="not in the test corpus"):
        test_utterances(f"savee={tiny_savee}", lst)


def test_cross_corpus_cli_end_to_end(tiny_config, tiny_savee, tmp_path):
    from emovox.cli import main

    lst = tmp_path / "four.csv"
    lst.write_text("file,label,speaker\n" + "".join(f"AudioData/{s}/{c}01.flac,x,{s}\n" for s in ("DC", "KL") for c in ("a", "h", "n", "sa")))
    out = tmp_path / "x"
    args = ["evaluate", "--train", f"ravdess={tiny_config.data.root}", "--test", f"savee={tiny_savee}",
            "--test-list", str(lst), "--out", str(out), "--set", f"data.cache_dir={tiny_config.data.cache_dir}",
            "--set", "model.width=8", "--set", "training.epochs=1", "--set", "training.batch_size=8",
            "--set", "training.val_speakers=1", "--set", "training.max_lr=0.003",
            "--set", "preprocessing.features.normalize=bins", "--set", "training.speaker_p=0.5",
            "--set", "augment.wave={noise: {p: 0.5}, gain: {}}"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_test"] == 8 and res["intersection"] == ["neutral", "happy", "sad", "angry"]
    assert res["dropped_emotions"] == []
    for protocol in ("per-clip", "speaker-adaptive"):
        for way in ("own", "restricted"):
            assert 0.0 <= res[protocol][way]["wa"] <= 1.0
            assert sum(res[protocol][way]["predicted"].values()) == 8
    assert "speaker-adaptive" in (out / "results.md").read_text()
    assert (out / "confusion_per-clip.png").is_file() and (out / "confusion_speaker-adaptive.png").is_file()
    assert (out / "train" / "best" / "config.json").is_file()
    assert main(args) == 0  # a finished training is reused


def test_train_on_two_corpora_with_the_intersection_of_their_labels(tiny_config, tiny_savee, tmp_path):
    from emovox.cli import main
    from emovox.models.folder import load_bundle

    out = tmp_path / "two"
    assert main(["train", "--corpus", f"ravdess={tiny_config.data.root}", "--corpus", f"savee={tiny_savee}",
                 "--out", str(out), "--set", f"data.cache_dir={tiny_config.data.cache_dir}",
                 "--set", "data.labels=intersection", "--set", "training.balance=loss", "--set", "model.width=8",
                 "--set", "training.epochs=1", "--set", "training.batch_size=8", "--set", "training.val_speakers=1",
                 "--set", "training.max_lr=0.003"]) == 0
    bundle = load_bundle(out / "best")
    assert bundle.labels == ("neutral", "happy", "sad", "angry")  # what both corpora have, in emovox's order
    assert bundle.model.fc.out_features == 4
