"""Trimming, windows and the one-module inference path (ClipClassifier = batched engine)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from emovox import audio
from emovox.models import resnet18
from emovox.pipeline import (ClipClassifier, Preprocessing, clip_windows, predict_clips, random_window, voiced_bounds,
                             window_plan)

from .conftest import SPEECH


def test_voiced_bounds_trims_quiet_ends_with_margin():
    energy = torch.tensor([-90.0] * 5 + [-10.0, 0.0, -20.0] + [-95.0] * 4)
    first, end = voiced_bounds(energy, trim_db=30, margin=1)
    assert (int(first), int(end)) == (4, 9)
    assert [int(v) for v in voiced_bounds(energy, None, 1)] == [0, 12]
    flat = torch.full((7,), -100.0)  # silence throughout: nothing to cut
    assert [int(v) for v in voiced_bounds(flat, 30, 0)] == [0, 7]


def test_voiced_bounds_agree_with_librosa_trim_on_real_speech():
    wave = audio.load(SPEECH / "Actor_01" / "03-01-05-02-01-01-01.flac")
    pipe = Preprocessing(margin_seconds=0.0)
    _, (first, end) = pipe.analyse(wave)
    _, (a, b) = librosa.effects.trim(wave, top_db=30, frame_length=512, hop_length=256)
    hop = pipe.features.hop_length
    assert abs(first * hop - a) <= 3 * hop and abs(end * hop - b) <= 3 * hop
    assert first * hop > 0.3 * 16_000  # RAVDESS clips start with silence


@pytest.mark.parametrize("first, end, n", [(10, 40, 60), (0, 157, 157), (5, 400, 420), (30, 190, 200), (0, 3, 3)])
def test_window_plan_covers_the_voiced_part_once(first, end, n):
    clip, hop = 157, 78
    starts, weights = window_plan(torch.tensor(first), torch.tensor(end), n, clip, hop)
    used = starts[weights > 0].tolist()
    assert len(used) == len(set(used)) >= 1
    covered = set()
    for s in used:
        assert s >= 0
        covered |= set(range(s, s + clip))
    assert set(range(first, end)) <= covered
    if end - first > clip:
        assert min(used) == first and max(used) == end - clip  # inside the voiced part, last one end-aligned
        assert all(b - a <= hop for a, b in zip(sorted(used), sorted(used)[1:]))
    else:
        assert len(used) == 1


def test_random_window_stays_on_the_voice():
    rng = np.random.default_rng(0)
    db = torch.arange(300.0).repeat(4, 1)
    for _ in range(50):
        w = random_window(db, 40, 260, 100, rng)  # long voiced part: window inside it
        assert w.shape == (4, 100) and 40 <= w[0, 0] and w[0, -1] < 260
        w = random_window(db, 120, 180, 100, rng)  # short one: window contains it
        assert w[0, 0] <= 120 and w[0, -1] >= 179
    short = random_window(db[:, :30], 0, 30, 100, rng)  # clip shorter than a window: padded
    assert short.shape == (4, 100) and short[0, 30:].eq(0).all()


def test_clip_classifier_equals_batched_engine():
    torch.manual_seed(0)
    pipe = Preprocessing()
    clf = ClipClassifier(resnet18(width=8), pipe).eval()
    rng = np.random.default_rng(0)
    waves = [audio.load(SPEECH / "Actor_02" / "03-01-06-02-01-01-02.flac"),
             (0.1 * rng.standard_normal(9000)).astype(np.float32),   # shorter than one window
             np.tile(audio.load(SPEECH / "Actor_03" / "03-01-07-01-01-01-03.flac"), 3)]  # several windows
    analysed = [pipe.analyse(w, clf.extractor) for w in waves]
    batched = predict_clips(clf, [a[0] for a in analysed], [a[1] for a in analysed], batch_size=3)
    with torch.no_grad():
        single = np.stack([clf(torch.from_numpy(w)).numpy() for w in waves])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(batched.sum(1), 1, atol=1e-5)
    w = clip_windows(analysed[2][0], *analysed[2][1], pipe)
    assert int(w.weights.sum()) >= 3 and w.windows.shape[1:] == (64, pipe.clip_frames)


def test_padding_is_silence_for_each_kind():
    from emovox.pipeline import pad_for_windows

    db = torch.tensor([[5.0, -80.0, 3.0], [1.0, -70.0, 2.0]])  # frame 1 is the quiet one
    assert pad_for_windows(db, 2, "mel")[:, 3:].eq(-80.0).all()
    mfcc = pad_for_windows(db, 2, "mfcc")  # row 0 is c0: the quietest frame is copied whole
    assert mfcc[:, 3:].tolist() == [[-80.0, -80.0], [-70.0, -70.0]]


@pytest.mark.parametrize("kind, normalize, deltas, trim_db", [("mel", "window", True, 30), ("mfcc", "bins", False, 30),
                                                         ("spectrogram", "window", False, None)])
def test_equal_length_clips_in_one_pass_are_each_judged_alone(kind, normalize, deltas, trim_db):
    """ClipClassifier on ``[batch, samples]`` (a timeline's windows, the ONNX graph's input)
    gives every row what that clip gets alone: its own trimming, windows and normalisation."""
    from emovox.features import FeatureConfig

    torch.manual_seed(0)
    pipe = Preprocessing(features=FeatureConfig(kind=kind, normalize=normalize, deltas=deltas), trim_db=trim_db)
    clf = ClipClassifier(resnet18(width=8, in_channels=3 if deltas else 1), pipe).eval()
    rng = np.random.default_rng(1)
    n = 56_000  # 3.5 s: longer than a window, so each clip has two candidate windows
    speech = audio.load(SPEECH / "Actor_02" / "03-01-06-02-01-01-02.flac")[:n]
    quiet_start = np.concatenate([np.zeros(n // 2, np.float32), speech[:n - n // 2]])
    noise = (0.05 * rng.standard_normal(n)).astype(np.float32)
    waves = np.stack([speech, quiet_start, noise, np.zeros(n, np.float32)])
    with torch.no_grad():
        together = clf(torch.from_numpy(waves))
    assert together.shape == (4, 8)
    analysed = [pipe.analyse(w, clf.extractor) for w in waves]  # the per-clip path of training and predict
    alone = predict_clips(clf, [a[0] for a in analysed], [a[1] for a in analysed])
    np.testing.assert_allclose(together.numpy(), alone, atol=1e-5, rtol=1e-5)
    assert np.abs(alone[0] - alone[2]).max() > 1e-4  # the rows differ: not one answer broadcast


def test_padding_copies_each_clips_own_quietest_frame():
    from emovox.pipeline import gather_windows, pad_for_windows

    db = torch.tensor([[[5.0, -80.0, 3.0], [1.0, -70.0, 2.0]], [[-9.0, 4.0, 6.0], [7.0, 8.0, 9.0]]])
    assert pad_for_windows(db, 2, "mfcc")[..., 3:].tolist() == [[[-80.0] * 2, [-70.0] * 2], [[-9.0] * 2, [7.0] * 2]]
    starts = torch.tensor([[0, 1], [2, 0]])
    windows = gather_windows(db, starts, 1)  # [batch, K, bins, 1]
    assert windows.shape == (2, 2, 2, 1) and windows[1, 0, :, 0].tolist() == [6.0, 9.0]
    assert torch.equal(gather_windows(db[0], starts[0], 2), torch.stack([db[0][:, 0:2], db[0][:, 1:3]]))
