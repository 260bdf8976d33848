"""Recognizer: every kind of input, the 8 names, batch = single, bad input, the bundled model."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emovox import EMOTIONS, AudioError, Recognizer
from emovox.inference.recognizer import BUNDLED_MODEL

from .conftest import SPEECH

CLIP = SPEECH / "Actor_04" / "03-01-05-02-01-01-04.flac"


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer.load(tiny_model, threads=2)


def test_predict_file_gives_label_and_all_probabilities(rec):
    pred = rec.predict(CLIP)
    assert list(pred.probabilities) == list(EMOTIONS) == [
        "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert pred.label == max(pred.probabilities, key=pred.probabilities.get)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert pred.to_dict()["path"] == str(CLIP)


def test_array_bytes_and_file_object_agree_with_path(rec):
    ref = rec.predict(CLIP).probabilities
    samples, rate = sf.read(CLIP, dtype="float32")
    with open(CLIP, "rb") as fh:
        from_file = rec.predict(fh)
    for other in (rec.predict(samples, sample_rate=rate), rec.predict(CLIP.read_bytes()), from_file):
        np.testing.assert_allclose(list(other.probabilities.values()), list(ref.values()), atol=1e-5)
    with pytest.raises(ValueError, match="sample_rate"):
        rec.predict(samples)


def test_batches_equal_single_predictions_and_bad_files_are_reported(rec, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    files = [CLIP, bad, SPEECH / "Actor_05" / "03-01-04-01-01-01-05.flac"]
    out = list(rec.predict_many(files, batch_size=2))
    assert [src for src, _ in out] == files
    assert isinstance(out[1][1], AudioError) and "broken.wav" in str(out[1][1])
    single = rec.predict(files[2]).probabilities
    np.testing.assert_allclose(list(out[2][1].probabilities.values()), list(single.values()), atol=1e-5)


def test_answers_among_a_label_set_fold_calm_into_neutral(tiny_model):
    from emovox.labels import fold_into

    full = Recognizer.load(tiny_model, threads=1).predict(CLIP).probabilities
    four = ("angry", "happy", "neutral", "sad")
    rec = Recognizer.load(tiny_model, threads=1, emotions=four)
    assert rec.answer_labels == four and rec.labels == tuple(EMOTIONS)
    pred = rec.predict(CLIP)
    expected = fold_into(np.array(list(full.values())), tuple(EMOTIONS), four)
    assert list(pred.probabilities) == list(four)
    np.testing.assert_allclose(list(pred.probabilities.values()), expected, atol=1e-5)
    assert pred.label == four[int(np.argmax(expected))]
    [(_, batched)] = list(rec.predict_many([CLIP]))
    assert batched.probabilities == pytest.approx(pred.probabilities, abs=1e-5)
    for bad, match in ((("angry", "bored"), "unknown emotion 'bored'"), (("sad",), "two or more")):
        with pytest.raises(ValueError, match=match):
            Recognizer.load(tiny_model, threads=1, emotions=bad)


def test_bad_input_raises_audio_error(rec, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav"):
        rec.predict(empty)
    with pytest.raises(AudioError, match="NaN"):
        rec.predict(np.full(16000, np.nan, np.float32), sample_rate=16000)


def test_bundled_model_is_offline_and_recognises_its_examples():
    from emovox.models.folder import member_folders

    members = member_folders(BUNDLED_MODEL)
    assert (BUNDLED_MODEL / "model.onnx").is_file() and (BUNDLED_MODEL / "MODEL_CARD.md").is_file()
    for member in members:
        assert (member / "model.safetensors").is_file()
    rec = Recognizer.load(threads=2)
    assert len(rec.backend.classifiers) == len(members) >= 1
    examples = sorted((BUNDLED_MODEL.parent / "examples").glob("*.flac"))
    assert len(examples) == 5
    # these actors were in its training data: this checks the shipped file works, not accuracy
    for p in examples:
        pred = rec.predict(p)
        assert pred.label == EMOTIONS[int(p.name.split("-")[2]) - 1] and pred.confidence > 0.5, p.name
