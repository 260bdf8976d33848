"""Speaker adaptation of answers (emovox.adaptation): a speaker's constant push on every answer
is removed, each speaker is judged against their own clips, and every entry point (predict,
predict_speakers, the CLI, evaluations) gives the same answers."""

import numpy as np
import pytest

from emovox.adaptation import AnswerReference, answer_reference, centre_answers, centre_by_speaker


def _probs(rng, n, c=8):
    p = rng.dirichlet(np.ones(c), size=n)
    return p.astype(np.float32)


def test_a_constant_push_on_a_speakers_answers_is_removed():
    """A voice or a room that multiplies every answer's odds of some emotions the same way (here
    "sad" x 20) leaves the centred answers as they were: the push is what the reference measures."""
    rng = np.random.default_rng(0)
    clean = _probs(rng, 12)
    push = np.ones(8)
    push[3] = 20.0
    pushed = clean * push
    pushed /= pushed.sum(1, keepdims=True)
    assert (pushed.argmax(1) == 3).sum() > (clean.argmax(1) == 3).sum()
    np.testing.assert_allclose(centre_answers(pushed, answer_reference(pushed)),
                               centre_answers(clean, answer_reference(clean)), atol=1e-5)


def test_the_speakers_usual_answer_comes_out_uniform_and_answers_stay_probabilities():
    rng = np.random.default_rng(1)
    p = _probs(rng, 6)
    ref = answer_reference(p)
    assert isinstance(ref, AnswerReference) and ref.clips == 6 and ref.mean_log.shape == (8,)
    usual = np.exp(ref.mean_log)[None] / np.exp(ref.mean_log).sum()
    np.testing.assert_allclose(centre_answers(usual, ref), np.full((1, 8), 1 / 8), atol=1e-6)
    out = centre_answers(p, ref)
    assert out.dtype == np.float32 and np.allclose(out.sum(1), 1, atol=1e-5) and (out >= 0).all()
    # far tails are floored: a class at 1e-14 in one clip and 1e-9 in another is noise, not a signal
    p[:, 0] = 1e-14
    p[2, 0] = 1e-9
    out = centre_answers(p, answer_reference(p))
    assert np.isfinite(out).all() and out[2].argmax() != 0
    with pytest.raises(ValueError, match="8 classes for a model of 7"):
        centre_answers(p[:, :7], ref)


def test_each_speaker_is_judged_against_their_own_clips():
    rng = np.random.default_rng(2)
    a, b = _probs(rng, 5), _probs(rng, 7)
    speakers = ["b"] * 3 + ["a"] * 5 + ["b"] * 4
    mixed = np.concatenate([b[:3], a, b[3:]])
    out = centre_by_speaker(mixed, speakers)
    np.testing.assert_allclose(out[3:8], centre_answers(a, answer_reference(a)), atol=1e-6)
    np.testing.assert_allclose(np.concatenate([out[:3], out[8:]]), centre_answers(b, answer_reference(b)), atol=1e-6)
    with pytest.raises(ValueError, match="12 clips but 2 speakers"):
        centre_by_speaker(mixed, ["a", "b"])
    # one clip against itself would come out uniform: a reference needs two
    with pytest.raises(ValueError, match="at least 2 clips"):
        answer_reference(a[:1])


def test_a_per_clip_network_is_adapted_on_its_answers(tiny_model, tiny_ravdess):
    """A network that standardises each clip on its own takes the speaker's mean answer: the
    reference, predict(speaker=...) and predict_speakers agree with the arithmetic above."""
    from emovox import Recognizer

    rec = Recognizer.load(tiny_model, threads=1)
    assert not rec.adapts_to_speakers and rec.speaker_adaptation == "answers"
    files = sorted((tiny_ravdess / "Audio_Speech_Actors_01-24" / "Actor_01").glob("*.flac"))[:4]
    alone = np.array([list(rec.predict(f).probabilities.values()) for f in files])
    ref = rec.speaker_reference(files)
    assert isinstance(ref, AnswerReference) and ref.clips == 4
    np.testing.assert_allclose(ref.mean_log, answer_reference(alone).mean_log, atol=1e-4)
    adapted = np.array([list(rec.predict(f, speaker=ref).probabilities.values()) for f in files])
    np.testing.assert_allclose(adapted, centre_answers(alone, ref), atol=1e-5)
    grouped = dict(rec.predict_speakers({"01": files}))
    np.testing.assert_allclose([list(grouped[f].probabilities.values()) for f in files], adapted, atol=1e-5)
    # a reference made by a model with other emotions is refused, not misread
    with pytest.raises(ValueError, match="other emotions"):
        rec.predict(files[0], speaker=ref._replace(labels=("a",) * 8))


def test_a_speaker_with_one_clip_of_speech_is_judged_alone_and_said_so(tiny_model, tiny_ravdess, tmp_path):
    """No reference from one clip (it would cancel that clip's answer): its per-clip answer and a
    warning; silence neither enters a reference nor stops the others."""
    from emovox import Recognizer

    from .serve_util import write_wav

    rec = Recognizer.load(tiny_model, threads=1)
    files = sorted((tiny_ravdess / "Audio_Speech_Actors_01-24" / "Actor_01").glob("*.flac"))[:3]
    silent = write_wav(tmp_path / "silent.wav", np.zeros(32_000))
    with pytest.warns(UserWarning, match="'solo': 1 clip of speech"):
        got = dict(rec.predict_speakers({"solo": [files[0], silent], "pair": files[1:]}))
    assert got[files[0]].probabilities == rec.predict(files[0]).probabilities
    assert got[silent].answer == "no_speech"
    ref = rec.speaker_reference([files[1], silent, files[2]])  # the silent file is left out
    assert ref.clips == 2
    np.testing.assert_allclose(list(got[files[1]].probabilities.values()),
                               list(rec.predict(files[1], speaker=ref).probabilities.values()), atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 clips"):
        rec.speaker_reference([files[0], silent])


def test_onnx_adapts_the_bundled_model_on_its_answers(tiny_ravdess):
    """onnxruntime takes no feature statistics: `speaker_adaptive` there is the bundled model judged
    against each speaker's mean answer, on the same arithmetic as torch."""
    from emovox import Recognizer

    rec = Recognizer.load(backend="onnx", threads=1, speaker_adaptive=True)
    assert rec.backend.name == "onnx" and rec.speaker_adaptation == "answers"
    files = sorted((tiny_ravdess / "Audio_Speech_Actors_01-24" / "Actor_02").glob("*.flac"))[:3]
    alone = np.array([list(rec.predict(f).probabilities.values()) for f in files])
    grouped = dict(rec.predict_speakers({"02": files}))
    np.testing.assert_allclose([list(grouped[f].probabilities.values()) for f in files],
                               centre_answers(alone, answer_reference(alone)), atol=1e-5)


def test_the_cli_adapts_a_per_clip_model_per_folder_and_resumes_alike(tiny_model, tiny_ravdess, tmp_path, capsys):
    import json
    from pathlib import Path

    from emovox.cli import main

    speech = tiny_ravdess / "Audio_Speech_Actors_01-24"
    common = ["--model", str(tiny_model), "--threads", "1", "-q"]
    assert main(["predict", str(speech), *common, "--speaker-norm", "folder", "--format", "json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    assert main(["predict", str(speech), *common, "--format", "json"]) == 0
    plain = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == len(plain) == 24
    folders: dict = {}
    for path in sorted(plain):
        folders.setdefault(Path(path).parent, []).append(path)
    for paths in folders.values():
        expected = centre_by_speaker(np.array([list(plain[p]["probabilities"].values()) for p in paths]),
                                     [0] * len(paths))
        np.testing.assert_allclose([list(rows[p]["probabilities"].values()) for p in paths], expected, atol=2e-4)
    # an interrupted run resumed: the remaining files are still judged against their whole folder
    out = tmp_path / "rows.jsonl"
    first = sorted(plain)[0]
    out.write_text(json.dumps(rows[first]) + "\n")
    assert main(["predict", str(speech), *common, "--speaker-norm", "folder", "-o", str(out), "--resume"]) == 0
    resumed = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(resumed) == 24
    for path, r in resumed.items():
        assert r["probabilities"] == pytest.approx(rows[path]["probabilities"], abs=2e-4)


def test_evaluations_score_a_per_clip_network_speaker_adaptively(tiny_model, tiny_config):
    """The speaker-adaptive protocol of `evaluate` and of cross-corpus evaluations: each speaker's
    clips against that speaker's mean answer, the same arithmetic the recognizer uses."""
    from emovox.models.folder import load_bundle
    from emovox.pipeline import ClipClassifier, predict_clips
    from emovox.training.batches import speaker_of
    from emovox.training.crosscorpus import evaluate_test_set, test_predictions
    from emovox.training.data import load_dataset
    from emovox.training.evaluate import speaker_adaptive_scores
    from emovox.training.metrics import scores

    data = load_dataset(tiny_config, progress=False)
    bundle = load_bundle(tiny_model)
    classifier = ClipClassifier.from_bundle(bundle)
    per_clip = predict_clips(classifier, data.images, data.bounds)
    speakers = [speaker_of(u) for u in data.utterances]
    expected = centre_by_speaker(per_clip, speakers).argmax(1)
    got = speaker_adaptive_scores(classifier, data, 8)
    assert got["wa"] == pytest.approx(scores(data.labels, expected, 8)["wa"])
    probs = test_predictions([bundle], data.utterances)
    np.testing.assert_allclose(probs["speaker-adaptive"], centre_by_speaker(probs["per-clip"], speakers), atol=1e-6)
    assert evaluate_test_set(bundle, data.utterances)["speaker_adaptation"] == "answers"


def test_a_speaker_adaptive_timeline_replays_its_first_pass_instead_of_running_the_model_again(tmp_path):
    """Adapted on its answers, a speaker-norm timeline runs the model once: the first pass keeps
    the speech windows' answers, the second judges them against their mean. The same cells as
    judging the recording against that reference with the model run again."""
    from emovox import Recognizer, audio

    from .serve_util import conversation

    rec = Recognizer.load(backend="onnx", threads=1)
    wave = audio.load(conversation(tmp_path / "talk.wav"), rec.sample_rate)
    calls = []
    run = rec.backend._probabilities
    rec.backend._probabilities = lambda analysed, speaker=None: calls.append(len(analysed)) or run(analysed, speaker)
    adapted = rec.timeline(wave, sample_rate=rec.sample_rate, speaker_norm=True)
    once = sum(calls)
    collector = rec.stream(collect="answers")
    collector.run([wave])
    ref = answer_reference(np.stack(collector.collected), rec.labels)
    assert once == len(collector.collected) >= 2  # each speech window through the model once
    again = rec.timeline(wave, sample_rate=rec.sample_rate, speaker=ref)
    a, b = adapted.to_dict()["cells"], again.to_dict()["cells"]
    assert [c["probabilities"] is None for c in a] == [c["probabilities"] is None for c in b]
    for x, y in zip(a, b):
        if y["probabilities"] is not None:
            assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-5)


def test_a_running_reference_warms_up_then_judges_against_everything_so_far():
    from emovox.adaptation import RunningReference

    rng = np.random.default_rng(4)
    answers = rng.dirichlet(np.ones(4), size=7)
    running = RunningReference(warmup=3)
    judged = [running.judge(p) for p in answers]
    for k in range(2):  # before the warm-up: the answers as they are
        np.testing.assert_allclose(judged[k], answers[k], atol=1e-6)
    for k in range(2, 7):  # then against the mean answer of the windows so far, this one included
        expected = centre_answers(answers[k:k + 1], answer_reference(answers[:k + 1]))[0]
        np.testing.assert_allclose(judged[k], expected, atol=1e-6)
    assert running.clips == 7 and running.ready
    with pytest.raises(ValueError, match="warm-up"):
        RunningReference(warmup=1)


def test_a_live_session_adapts_after_its_warm_up():
    from emovox import Recognizer, audio
    from emovox.timeline import blocks_of

    from .conftest import tiny_files

    rec = Recognizer.load(backend="onnx", threads=1)  # the bundled model: answers a reference moves
    wave = np.concatenate([audio.load(f) for f in tiny_files()[:5]])
    plain = rec.timeline(wave, sample_rate=rec.sample_rate, smooth=1)  # each cell its own windows
    never = rec.stream(running=10_000, smooth=1)  # a warm-up longer than the session: the plain timeline
    live = rec.stream(running=4, smooth=1)
    for block in blocks_of(wave, 4000):
        never.push(block)
        live.push(block)
    never, live = never.finish(), live.finish()
    speech = ~np.isnan(plain.probabilities).any(1)
    assert speech.sum() > 6 and (speech == ~np.isnan(live.probabilities).any(1)).all()
    np.testing.assert_allclose(never.probabilities[speech], plain.probabilities[speech], atol=1e-5)
    first = np.flatnonzero(speech)[:1]  # the first cell's windows come before the warm-up
    np.testing.assert_allclose(live.probabilities[first], plain.probabilities[first], atol=1e-5)
    last = np.flatnonzero(speech)[-3:]
    assert np.abs(live.probabilities[last] - plain.probabilities[last]).max() > 0.02
    with pytest.raises(ValueError, match="one or the other"):
        rec.stream(running=4, collect="answers")
