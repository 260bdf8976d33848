"""The utterance-functionals model: its statistics, its batch consistency, the speaker-adaptive
references, training it from the CLI and predicting with it everywhere a ResNet predicts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from emovox import Recognizer, audio
from emovox.cli import main
from emovox.features import deltas
from emovox.labels import EMOTIONS as LABELS
from emovox.models.folder import load_bundle
from emovox.models.functionals import N_PITCH, N_STATS, QUANTILES, Reference, functionals, pitch_functionals
from emovox.pipeline import ClipClassifier, clip_references, predict_clips, speaker_feature_probabilities

from .conftest import tiny_files


@pytest.fixture(scope="module")
def functionals_model(tiny_ravdess, tmp_path_factory):
    """The shipped functionals recipe fitted on two real actors (C chosen on the third)."""
    out = tmp_path_factory.mktemp("functionals") / "run"
    cache = tmp_path_factory.mktemp("cache")
    assert main(["train", "--config", "configs/functionals-mfcc.yaml", "--data", str(tiny_ravdess),
                 "--out", str(out), "--set", f"data.cache_dir={cache}", "--set", "training.val_speakers=1",
                 "--set", "threads=1"]) == 0
    return out / "best"


@pytest.fixture(scope="module")
def prosody_model(tiny_ravdess, tmp_path_factory):
    """The mel + MFCC + pitch recipe fitted the same way."""
    out = tmp_path_factory.mktemp("prosody") / "run"
    assert main(["train", "--config", "configs/functionals-prosody.yaml", "--data", str(tiny_ravdess),
                 "--out", str(out), "--set", f"data.cache_dir={tmp_path_factory.mktemp('cache')}",
                 "--set", "training.val_speakers=1", "--set", "threads=1"]) == 0
    return out / "best"


@pytest.fixture(scope="module", params=["mfcc", "prosody"])
def classifier(request):
    folder = request.getfixturevalue("functionals_model" if request.param == "mfcc" else "prosody_model")
    return ClipClassifier.from_bundle(load_bundle(folder)).eval()


def analysed(classifier, files):
    return [classifier.analyse(audio.load(f, classifier.pipeline.sample_rate)) for f in files]


# ---------------------------------------------------------------- the statistics


def test_the_statistics_of_a_known_image():
    g = torch.Generator().manual_seed(0)
    db = torch.randn(3, 50, generator=g) * 10 - 30
    f = functionals(db, 10, 40).reshape(N_STATS, 3)
    voiced = db[:, 10:40].double().numpy()
    np.testing.assert_allclose(f[0], voiced.mean(1), rtol=1e-5)
    np.testing.assert_allclose(f[1], voiced.std(1), rtol=1e-4)
    np.testing.assert_allclose(f[2], deltas(db[:, 10:40]).double().numpy().std(1), rtol=1e-4)  # edges of the part repeated
    np.testing.assert_allclose(f[3:], np.quantile(voiced, QUANTILES, axis=1), rtol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_the_masked_statistics_equal_those_of_the_slice(seed):
    """The exportable form (a mask over the whole image) gives what the voiced slice alone gives."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 200, (1,), generator=g))
    db = torch.randn(40, n, generator=g) * 20 - 40
    a = int(torch.randint(0, n - 1, (1,), generator=g))
    b = int(torch.randint(a + 1, n + 1, (1,), generator=g))
    torch.testing.assert_close(functionals(db, torch.tensor(a), torch.tensor(b)), functionals(db[:, a:b]),
                               rtol=1e-5, atol=1e-4)


def test_one_voiced_frame_has_no_spread():
    db = torch.arange(20.0).reshape(2, 10)
    f = functionals(db, 4, 5).reshape(N_STATS, 2)
    assert torch.equal(f[0], db[:, 4]) and torch.equal(f[1], torch.zeros(2)) and torch.equal(f[2], torch.zeros(2))
    assert torch.equal(f[3:], db[:, 4].expand(len(QUANTILES), 2))


def test_the_pitch_statistics_of_a_known_contour():
    """F0 statistics over the periodic frames inside the bounds; steps over 3 semitones (octave
    errors) left out of the movement; voicing counted over the bounds."""
    semitones = torch.tensor([0.0, 10, 11, 12, 13, 25, 14, 50, 0])
    aperiodicity = torch.tensor([0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9])
    f = pitch_functionals(torch.stack([semitones, aperiodicity]), 1, 8)
    assert f.shape == (N_PITCH,)
    voiced = np.array([10, 11, 12, 13, 25, 14.0])
    np.testing.assert_allclose(f[0], voiced.mean(), rtol=1e-6)
    np.testing.assert_allclose(f[1], voiced.std(), rtol=1e-5)
    np.testing.assert_allclose(f[2:5], np.quantile(voiced, QUANTILES), rtol=1e-5)
    np.testing.assert_allclose(f[5], f[4] - f[2])
    np.testing.assert_allclose(f[6:8], [0.0, 1.0], atol=1e-6)  # steps 1, 1, 1: no spread, mean size 1
    np.testing.assert_allclose(f[8], 6 / 7, rtol=1e-6)  # voiced fraction of the 7 frames in bounds
    np.testing.assert_allclose(f[9], aperiodicity[1:8].mean(), rtol=1e-6)
    np.testing.assert_allclose(f[10], 0.0)  # the one voiced stretch starts at the bounds: no onset inside them


@pytest.mark.parametrize("seed", range(3))
def test_the_pitch_statistics_of_a_batch_equal_one_by_one_and_the_slice(seed):
    g = torch.Generator().manual_seed(seed)
    rows = torch.stack([torch.rand(4, 80, generator=g) * 30, torch.rand(4, 80, generator=g) * 0.5], dim=1)
    first, end = torch.tensor([0, 5, 20, 79]), torch.tensor([80, 60, 21, 80])
    together = pitch_functionals(rows, first, end)
    for i in range(4):
        a, b = int(first[i]), int(end[i])
        torch.testing.assert_close(together[i], pitch_functionals(rows[i], a, b))
        torch.testing.assert_close(together[i], pitch_functionals(rows[i, :, a:b]), rtol=1e-5, atol=1e-5)


def test_the_prosody_model_reads_every_row_of_its_image(prosody_model):
    bundle = load_bundle(prosody_model)
    feats = bundle.pipeline.features
    assert feats.bins == 64 + 40 + 2 and bundle.model_options == {"bins": 106, "pitch_rows": 2}
    assert bundle.model.head.in_features == 104 * N_STATS + N_PITCH


def test_pitch_rows_are_refused_for_a_network():
    from emovox.config import load_config

    with pytest.raises(ValueError, match="features.pitch adds rows"):
        load_config("configs/resnet18-mel.yaml", ["preprocessing.features.pitch=true"])
    with pytest.raises(ValueError, match="append_mfcc"):
        load_config("configs/functionals-mfcc.yaml", ["preprocessing.features.append_mfcc=true"])  # an mfcc image


def test_a_reference_needs_two_clips():
    with pytest.raises(ValueError, match="at least 2 clips"):
        Reference.of(torch.zeros(1, 6))
    ref = Reference.of(torch.tensor([[0.0, 2.0], [2.0, 6.0]]))
    assert torch.equal(ref.mean, torch.tensor([1.0, 4.0])) and torch.equal(ref.std, torch.tensor([1.0, 2.0]))
    assert torch.equal(Reference.from_dict(ref.to_dict()).std, ref.std)


# ---------------------------------------------------------------- a fitted model


def test_the_run_folder_and_its_report(functionals_model):
    run = functionals_model.parent
    assert (run / "config.yaml").is_file() and (functionals_model / "model.safetensors").is_file()
    report = (run / "report.md").read_text()
    assert "logistic regression" in report and "chosen" in report
    assert main(["train", "--config", "configs/functionals-mfcc.yaml", "--data", str(run),
                 "--out", str(run)]) != 0  # a finished run is not overwritten


def test_one_clip_equals_the_batched_form(classifier):
    """ClipClassifier.forward (the exported path) and predict_clips agree clip by clip."""
    files = tiny_files()[:4]
    waves = [audio.load(f, classifier.pipeline.sample_rate) for f in files]
    batched = predict_clips(classifier, *zip(*[classifier.analyse(w) for w in waves]))
    with torch.inference_mode():
        single = np.stack([classifier(torch.from_numpy(w)).numpy() for w in waves])
    np.testing.assert_allclose(single, batched, atol=1e-5)
    np.testing.assert_allclose(batched.sum(1), 1.0, atol=1e-5)
    n = min(len(w) for w in waves)  # equal-length clips in one pass (the ONNX graph's batch)
    with torch.inference_mode():
        together = classifier(torch.from_numpy(np.stack([w[:n] for w in waves])))
        alone = torch.stack([classifier(torch.from_numpy(w[:n])) for w in waves])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_a_speaker_reference_replaces_the_training_clips_statistics(classifier):
    files = [f for f in tiny_files() if f.parent.name == "Actor_03"]
    images, bounds = zip(*analysed(classifier, files))
    ref = clip_references(classifier, list(images), list(bounds))
    with torch.inference_mode():
        f = classifier.model.functionals(list(images), list(bounds))
        logits = classifier.model.head((f - f.mean(0)) / f.std(0, unbiased=False).clamp_min(1e-6))
        # its own temperature, fitted on the validation actor's speaker-adaptive answers
        expected = torch.softmax(logits / classifier.speaker_temperature, -1)
    assert classifier.speaker_temperature != float(classifier.temperature)
    torch.testing.assert_close(ref.mean, f.mean(0))
    adaptive = predict_clips(classifier, list(images), list(bounds), speakers=[ref] * len(files))
    np.testing.assert_allclose(adaptive, expected.numpy(), atol=1e-5)
    assert not np.allclose(adaptive, predict_clips(classifier, list(images), list(bounds)), atol=1e-3)


def test_an_evaluation_standardises_each_speaker_with_their_own_clips(classifier):
    files = [f for f in tiny_files() if f.parent.name in ("Actor_01", "Actor_03")]
    images, bounds = map(list, zip(*analysed(classifier, files)))
    speakers = [f.parent.name for f in files]
    got = speaker_feature_probabilities(classifier, images, bounds, speakers)
    for actor in ("Actor_01", "Actor_03"):
        idx = [i for i, s in enumerate(speakers) if s == actor]
        mine = [images[i] for i in idx], [bounds[i] for i in idx]
        alone = predict_clips(classifier, *mine, speakers=[clip_references(classifier, *mine)] * len(idx))
        np.testing.assert_allclose(got[idx], alone, atol=1e-5)


def test_the_recognizer_predicts_per_clip_and_per_speaker(functionals_model):
    rec = Recognizer.load(functionals_model, threads=1)
    files = [f for f in tiny_files() if f.parent.name == "Actor_03"]
    one = rec.predict(files[0])
    assert one.answer in rec.labels and sum(one.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    grouped = dict(rec.predict_speakers({"03": files}))
    reference = rec.speaker_reference(files)
    again = rec.predict(files[0], speaker=reference)
    assert again.probabilities == pytest.approx(grouped[files[0]].probabilities, abs=1e-5)
    assert again.probabilities != pytest.approx(one.probabilities, abs=1e-4)


def test_the_cli_predicts_a_folder_speaker_adaptively(functionals_model, tiny_ravdess, tmp_path):
    out = tmp_path / "rows.csv"
    assert main(["predict", str(tiny_ravdess), "--model", str(functionals_model), "--speaker-norm", "folder",
                 "-o", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + len(tiny_files())


def test_a_timeline_with_the_functionals_model(functionals_model):
    rec = Recognizer.load(functionals_model, threads=1)
    wave = np.concatenate([audio.load(f, rec.sample_rate) for f in tiny_files()[:4]])
    for tl in (rec.timeline(wave, rec.sample_rate), rec.timeline(wave, rec.sample_rate, speaker_norm=True)):
        speech = [s for s in tl.segments if s.label in rec.labels]
        assert speech and tl.segments[-1].end == pytest.approx(len(wave) / rec.sample_rate, abs=0.6)


def test_the_model_standardises_its_own_statistics(tiny_ravdess, tmp_path, capsys):
    """A window-normalised functionals recipe is refused before any feature is computed."""
    from emovox.config import load_config

    with pytest.raises(ValueError, match="normalize: none"):
        load_config("configs/functionals-mfcc.yaml", ["preprocessing.features.normalize=window"])
    with pytest.raises(ValueError, match="training.copies"):  # not silently ignored
        load_config("configs/functionals-mfcc.yaml", ["augment.wave={noise: {p: 0.5}}"])
    with pytest.raises(ValueError, match="cv_folds"):
        load_config("configs/resnet18-mel.yaml", ["training.cv_folds=4"])
    assert main(["train", "--config", "configs/functionals-mfcc.yaml", "--data", str(tiny_ravdess),
                 "--out", str(tmp_path / "run"), "--set", "preprocessing.features.deltas=true"]) != 0
    err = capsys.readouterr().err
    assert "deltas: false" in err and "features:" not in err and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["functionals_model", "prosody_model"])
def test_the_onnx_export_answers_like_torch(name, request, tmp_path):
    """The exported graph, pitch tracker included, answers like torch."""
    from emovox.inference.export import export_onnx

    folder = request.getfixturevalue(name)
    onnx = export_onnx(folder, tmp_path / "f.onnx")
    a, b = Recognizer.load(folder, threads=1), Recognizer.load(onnx, threads=1)
    for f in tiny_files()[:3]:
        assert b.predict(f).probabilities == pytest.approx(a.predict(f).probabilities, abs=1e-5)


def test_c_chosen_by_cross_validation_over_the_training_speakers(tiny_ravdess, tmp_path):
    """``training.cv_folds``: every training speaker held out once; the report says how C was chosen."""
    from emovox.config import load_config
    from emovox.training.data import load_dataset
    from emovox.training.functionals import _speaker_folds

    cfg = load_config("configs/functionals-mfcc.yaml", [f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'c'}",
                                                        "training.val_speakers=0", "training.cv_folds=3", "threads=1"])
    data = load_dataset(cfg, progress=False)
    folds = _speaker_folds(data, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(data)))
    assert [len({data.utterances[i].speaker for i in f}) for f in folds] == [1, 1, 1]
    with pytest.raises(ValueError, match="cv_folds"):
        _speaker_folds(data, 4)
    from emovox.training.trainer import train

    train(cfg, tmp_path / "run", data, None, progress=False)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("C,cv_ua_speaker") and len(rows) == 1 + 5  # every C of the grid scored
    assert "3-fold cross-validation over the training speakers" in (tmp_path / "run" / "report.md").read_text()


def test_without_validation_speakers_cross_validation_calibrates_both_answers(tiny_ravdess, tmp_path):
    """A final model (every speaker trained on, C by cross-validation) gets both temperatures from
    out-of-fold logits; those logits are what a model fitted without that fold's speakers answers."""
    import torch

    from emovox.config import load_config
    from emovox.pipeline import ClipClassifier, window_logits
    from emovox.training.data import load_dataset
    from emovox.training.functionals import _cross_validate, _speaker_folds, training_rows
    from emovox.training.trainer import train
    from sklearn.linear_model import LogisticRegression

    base = [f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'c'}", "training.val_speakers=0", "threads=1"]
    cfg = load_config("configs/functionals-mfcc.yaml", base + ["training.cv_folds=3"])
    data = load_dataset(cfg, progress=False)
    result = train(cfg, tmp_path / "run", data, None, progress=False)
    cal = result.best.extra["calibration"]
    assert "3-fold cross-validation" in cal["fitted_on"]
    assert cal["temperature"] > 0 and cal["speaker_temperature"] > 0 and cal["temperature"] != cal["speaker_temperature"]
    clf = ClipClassifier.from_bundle(result.best)
    assert (clf.temperature, clf.speaker_temperature) == (cal["temperature"], cal["speaker_temperature"])

    c = result.best.extra["provenance"]["C"]  # refit without one fold's speakers, at the chosen C
    folds = _speaker_folds(data, 3)
    rows = training_rows(cfg, clf, data, progress=False)
    x = rows.x
    lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    _, adaptive, per_clip = _cross_validate(lr, rows, folds, len(data.label_names))
    held, rest = folds[0], np.setdiff1d(np.arange(len(data)), folds[0])
    cfg_fixed = load_config("configs/functionals-mfcc.yaml", base + [f"training.c_grid=[{c}]"])
    fold_model = train(cfg_fixed, tmp_path / "fold", data.subset(rest), None, progress=False).best
    held_set = data.subset(held)
    logits, _, _ = window_logits(ClipClassifier.from_bundle(fold_model), held_set.images, held_set.bounds)
    trained = sorted(set(np.asarray(data.labels)[rest]))
    np.testing.assert_allclose(logits.numpy()[:, trained], per_clip[held][:, trained], atol=2e-3)
    with torch.inference_mode():
        head = fold_model.model.head(torch.as_tensor(x[held], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(head[:, trained], adaptive[held][:, trained], atol=2e-3)


def test_augmented_copies_degrade_each_speakers_clips_alike(tiny_ravdess, tmp_path):
    """``training.copies`` with ``augment.wave``: copy k of a speaker's clips all get one gain (one
    condition per session), other speakers and copies other ones; standardised per speaker and copy,
    a pure gain vanishes: the copies' rows equal the clean rows."""
    from emovox.config import load_config
    from emovox.training.data import load_dataset
    from emovox.training.batches import speaker_of
    from emovox.training.functionals import training_rows
    from emovox.training.trainer import train

    base = [f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'c'}", "threads=1"]
    with pytest.raises(ValueError, match="training.copies"):
        load_config("configs/functionals-mfcc.yaml", base + ["training.copies=2"])  # copies of what?
    with pytest.raises(ValueError, match="training.copies"):
        load_config("configs/resnet18-mel.yaml", base + ["training.copies=1"])
    with pytest.raises(ValueError, match="augment.spec_augment"):
        load_config("configs/functionals-mfcc.yaml", base + ["training.copies=1", "augment.spec_augment={p: 0.5}"])
    cfg = load_config("configs/functionals-mfcc.yaml", base + ["training.copies=2", "training.val_speakers=0",
                                                             "training.cv_folds=3",
                                                             "augment.wave={gain: {low: -6, high: 6, p: 1.0}}"])
    data = load_dataset(cfg, progress=False)
    from emovox.models.folder import new_bundle

    model = new_bundle(cfg.preprocessing, "functionals", data.label_names, bins=cfg.preprocessing.features.bins).model
    clf = ClipClassifier(model, cfg.preprocessing, labels=data.label_names)
    rows = training_rows(cfg, clf, data, progress=False)
    n = len(data)
    speakers = [speaker_of(u) for u in data.utterances]
    assert rows.f.shape[0] == 3 * n and rows.n_clean == n and rows.speakers == speakers * 3
    assert (rows.labels == np.tile(data.labels, 3)).all()
    shift = torch.stack([rows.f[k * n:(k + 1) * n, 0] - rows.f[:n, 0] for k in (1, 2)])
    speakers = np.array(speakers)
    per_session = {(k, s): shift[k, speakers == s] for k in range(2) for s in set(speakers)}
    for d in per_session.values():  # MFCC 0's mean moves by the gain: one value per speaker and copy
        assert float(d.max() - d.min()) < 0.01 * abs(float(d.mean()))  # (a few frames sit on the dB floor)
    assert len({round(float(d.mean()), 2) for d in per_session.values()}) == len(per_session)
    for k in (1, 2):  # equal but where a frame sits on the dB floor (top_db below the loudest) in one of them
        diff = np.abs(rows.x[k * n:(k + 1) * n] - rows.x[:n])
        assert np.median(diff) < 1e-4 and (diff < 1e-3).mean() > 0.9 and diff.max() < 0.25
    result = train(cfg, tmp_path / "run", data, None, progress=False)
    assert "2 augmented copies" in (tmp_path / "run" / "report.md").read_text()
    assert "calibration" in result.best.extra


def test_one_c_fixes_the_fit_and_a_grid_needs_something_to_choose_on(tiny_ravdess, tmp_path):
    """``training.c_grid``: one value is used as it is (a final model on every speaker); several
    values without validation speakers or cv_folds are refused, not silently replaced."""
    from emovox.config import load_config
    from emovox.training.data import load_dataset
    from emovox.training.trainer import train

    base = [f"data.root={tiny_ravdess}", f"data.cache_dir={tmp_path / 'c'}", "training.val_speakers=0", "threads=1"]
    for bad in ("training.c_grid=[]", "training.c_grid=[0.1, -1]", "training.c_grid=0.1"):
        with pytest.raises(ValueError, match="c_grid"):
            load_config("configs/functionals-mfcc.yaml", [bad])
    with pytest.raises(ValueError, match="c_grid"):
        load_config("configs/resnet18-mel.yaml", ["training.c_grid=[0.1]"])
    cfg = load_config("configs/functionals-mfcc.yaml", base + ["training.c_grid=[0.3]"])
    data = load_dataset(cfg, progress=False)
    result = train(cfg, tmp_path / "run", data, None, progress=False)
    assert result.best.extra["provenance"]["C"] == 0.3
    with pytest.raises(ValueError, match="nothing to choose C on"):
        train(load_config("configs/functionals-mfcc.yaml", base), tmp_path / "run2", data, None, progress=False)


def test_speaker_adaptive_loading_says_how_a_model_adapts(functionals_model):
    from emovox.inference.recognizer import BUNDLED_MODEL, BUNDLED_SPEAKER_MODEL

    loaded = Recognizer.load(functionals_model, threads=1, speaker_adaptive=True)
    assert loaded.adapts_to_speakers and loaded.speaker_adaptation == "features"
    # a per-clip network is adapted on its answers instead of refused
    assert Recognizer.load(BUNDLED_MODEL, threads=1, speaker_adaptive=True).speaker_adaptation == "answers"
    bundled = Recognizer.load(threads=1, speaker_adaptive=True)
    assert bundled.adapts_to_speakers  # the bundled one (the next tests check it is the folder shipped)


def test_without_a_bundled_speaker_model_the_error_says_what_to_pass(monkeypatch, tmp_path):
    import emovox.inference.recognizer as recognizer

    monkeypatch.setattr(recognizer, "BUNDLED_SPEAKER_MODEL", tmp_path / "speaker-model")
    with pytest.raises(FileNotFoundError, match="no bundled speaker-adaptive model"):
        Recognizer.load(threads=1, speaker_adaptive=True)


def test_the_bundled_speaker_model_and_its_card():
    """Trained on every actor: C and both temperatures from the cross-validation, the card says so."""
    import json

    from emovox.inference.recognizer import BUNDLED_SPEAKER_MODEL

    cfg = json.loads((BUNDLED_SPEAKER_MODEL / "config.json").read_text())
    assert cfg["model"]["name"] == "functionals" and cfg["provenance"]["fold"] == "all"
    cal = cfg["calibration"]
    assert "6-fold cross-validation" in cal["fitted_on"] and cal["speaker_temperature"] > 0
    card = (BUNDLED_SPEAKER_MODEL / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "all 24 actors" in card and str(cfg["provenance"]["C"]) in card


def test_the_cli_uses_the_bundled_speaker_model_for_speaker_norm(tiny_ravdess, tmp_path, capsys):
    """``--speaker-norm`` without ``--model``: the bundled speaker-adaptive model, each folder a speaker;
    its answers are the library's."""
    from emovox.cli import main
    from emovox.inference.recognizer import BUNDLED_SPEAKER_MODEL

    out = tmp_path / "out.csv"
    assert main(["predict", str(tiny_ravdess), "--speaker-norm", "folder", "--threads", "1", "-o", str(out)]) == 0
    assert "bundled speaker-adaptive model" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    files = sorted(Path(r["path"]) for r in rows)
    assert sorted(f.name for f in files) == sorted(f.name for f in tiny_files())
    assert all(r["label"] in LABELS for r in rows)
    rec = Recognizer.load(BUNDLED_SPEAKER_MODEL, threads=1)
    by_folder: dict = {}
    for f in files:
        by_folder.setdefault(f.parent, []).append(str(f))
    expected = {Path(f): p for f, p in rec.predict_speakers(by_folder)}
    for r in rows:
        assert r["label"] == expected[Path(r["path"])].label


def test_a_speaker_adaptive_timeline_takes_its_reference_from_the_windows_it_judges(functionals_model):
    from emovox.inference.recognizer import TooLittleSpeech

    rec = Recognizer.load(functionals_model, threads=1)
    wave = np.concatenate([audio.load(f, rec.sample_rate) for f in tiny_files()[:4]])
    collector = rec.stream(collect=True)
    collector.run([wave])
    windows = collector.collected
    assert len(windows) >= 2
    expected = rec.timeline(wave, rec.sample_rate, speaker=rec.backend.speaker_reference(windows))
    got = rec.timeline(wave, rec.sample_rate, speaker_norm=True)
    np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-6)
    with pytest.raises(TooLittleSpeech, match="at least 2 windows"):  # one window: no spread to standardise with
        rec.timeline(audio.load(tiny_files()[0], rec.sample_rate)[: int(1.5 * rec.sample_rate)], rec.sample_rate,
                     speaker_norm=True)
