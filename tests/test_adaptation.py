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
    # a class the model rules out entirely stays finite
    p[:, 0] = 0
    assert np.isfinite(centre_answers(p, answer_reference(p))).all()


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
    with pytest.raises(ValueError, match="at least one clip"):
        answer_reference(np.zeros((0, 8)))


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


def test_the_cli_adapts_a_per_clip_model_per_folder(tiny_model, tiny_ravdess, capsys):
    import json

    from emovox.cli import main

    speech = tiny_ravdess / "Audio_Speech_Actors_01-24"
    assert main(["predict", str(speech), "--model", str(tiny_model), "--speaker-norm", "folder",
                 "--format", "json", "--threads", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24 and all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    assert main(["predict", str(speech), "--model", str(tiny_model), "--format", "json", "--threads", "1"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [r["probabilities"] for r in rows] != [r["probabilities"] for r in plain]


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
