"""Split protocols on the real RAVDESS listing (no audio decoding), and on synthetic listings
of several corpora, with and without speaker ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emovox.corpora import Ravdess, Utterance
from emovox.labels import EMOTIONS
from emovox.splits import (EMOBOX_RAVDESS_FOLDS, Fold, emobox_folds, loso_folds, make_folds, random_split,
                           no_test_fold, validation_speakers)

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess"


def _ravdess(channels):
    if not ROOT.is_dir():
        pytest.skip(f"RAVDESS not found at {ROOT}")
    return Ravdess(ROOT, channels=channels).utterances()


@pytest.fixture(scope="module")
def speech():
    return _ravdess(("speech",))


@pytest.fixture(scope="module")
def both():
    return _ravdess(("speech", "song"))


def check_speaker_folds(folds: list[Fold], utts, test_corpora=None):
    corpora = test_corpora or {u.corpus for u in utts}
    tested = Counter()
    for f in folds:
        tr, va, te = set(f.train), set(f.val), set(f.test)
        assert len(tr) == len(f.train) and not (tr & va or tr & te or va & te)
        spk = [{utts[i].speaker for i in part} for part in (tr, va, te)]
        assert not (spk[0] & spk[1] or spk[0] & spk[2] or spk[1] & spk[2])
        assert spk[2] <= set(f.test_speakers) and spk[1] == set(f.val_speakers)
        assert set(f.val_speakers) <= {utts[i].speaker for i in tr | va} - set(f.test_speakers)
        assert all(utts[i].corpus in corpora for i in va | te)
        # everything not used belongs to another corpus and a held-out speaker
        for i in set(range(len(utts))) - tr - va - te:
            assert utts[i].corpus not in corpora and utts[i].speaker in set(f.test_speakers) | set(f.val_speakers)
        tested.update(f.test)
    expected = {i for i, u in enumerate(utts) if u.corpus in corpora}
    assert set(tested) == expected and set(tested.values()) == {1}


def test_emobox_speakers_and_invariants(speech):
    folds = emobox_folds(speech)
    assert [f.name for f in folds] == [f"emobox-{k}" for k in range(1, 7)]
    assert [f.test_speakers for f in folds] == [tuple(sorted(v)) for v in EMOBOX_RAVDESS_FOLDS.values()]
    assert all(len(f.test) == 240 and len(f.val) == 240 and len(f.train) == 960 for f in folds)
    check_speaker_folds(folds, speech)
    for f in folds:
        genders = Counter("male" if int(s) % 2 else "female" for s in f.val_speakers)
        assert genders == {"male": 2, "female": 2}


def test_loso(speech):
    folds = loso_folds(speech, n_val_speakers=3, seed=1)
    assert [f.name for f in folds] == [f"loso-{a:02d}" for a in range(1, 25)]
    assert all(len(f.val_speakers) == 3 and len(f.test) == 60 for f in folds)
    check_speaker_folds(folds, speech)


def test_deterministic(speech):
    assert emobox_folds(speech, seed=3) == emobox_folds(speech, seed=3)
    assert [f.val_speakers for f in emobox_folds(speech, seed=3)] != [f.val_speakers for f in emobox_folds(speech, seed=4)]
    assert random_split(speech, seed=5) == random_split(speech, seed=5)
    assert make_folds("loso", speech, seed=2) == loso_folds(speech, seed=2)


def test_validation_speakers():
    speakers = [f"{a:02d}" for a in range(1, 21)]
    genders = {s: "male" if int(s) % 2 else "female" for s in speakers}
    for seed in range(5):
        for n in range(0, 8):
            chosen = validation_speakers(speakers, n, seed, genders)
            assert len(chosen) == n == len(set(chosen)) and set(chosen) <= set(speakers)
            males = sum(genders[s] == "male" for s in chosen)
            assert abs(males - (n - males)) <= 1
            assert chosen == validation_speakers(list(reversed(speakers)), n, seed, genders)
    # a lopsided pool: take what exists of the rare gender
    lopsided = {"01": "male", "03": "male", "05": "male", "02": "female"}
    picked = validation_speakers(lopsided, 3, 0, lopsided)
    assert sorted(lopsided[s] for s in picked) == ["female", "male", "male"]
    assert len(validation_speakers(speakers, 4, 0)) == 4
    with pytest.raises(ValueError):
        validation_speakers(["01", "02"], 2, 0)


def test_random_stratified(speech):
    (fold,) = random_split(speech, test_fraction=0.2, val_fraction=0.1, seed=0)
    assert fold.name == "random" and fold.val_speakers == ()
    parts = [set(fold.train), set(fold.val), set(fold.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == len(speech)
    assert len(fold.test) == 288 and len(fold.val) == 144
    total = Counter(u.emotion for u in speech)
    for part, frac in ((fold.test, 0.2), (fold.val, 0.1), (fold.train, 0.7)):
        counts = Counter(speech[i].emotion for i in part)
        for emotion, n in total.items():
            assert abs(counts[emotion] - frac * n) <= 1, (emotion, counts[emotion], frac * n)


def test_test_corpora_speech_and_song(both):
    speech_only = {"ravdess-speech"}
    for folds in (emobox_folds(both, test_corpora=speech_only), loso_folds(both, test_corpora=speech_only)):
        check_speaker_folds(folds, both, speech_only)
        for f in folds:
            held_out = set(f.test_speakers) | set(f.val_speakers)
            song_train = {both[i].speaker for i in f.train if both[i].corpus == "ravdess-song"}
            # song of every training speaker (all but actor 18, who has no song) is trained on
            assert song_train == {f"{a:02d}" for a in range(1, 25)} - held_out - {"18"}
    assert len(loso_folds(both, test_corpora=speech_only)) == 24
    # testing on song: 23 LOSO folds, speech of the training actors still trains
    song_folds = loso_folds(both, test_corpora={"ravdess-song"})
    assert len(song_folds) == 23 and "loso-18" not in {f.name for f in song_folds}
    check_speaker_folds(song_folds, both, {"ravdess-song"})
    (rf,) = random_split(both, test_corpora=speech_only)
    assert all(both[i].corpus == "ravdess-speech" for i in rf.test + rf.val)
    assert {i for i, u in enumerate(both) if u.corpus == "ravdess-song"} <= set(rf.train)
    # default: every corpus is tested
    check_speaker_folds(emobox_folds(both), both)


def test_errors(speech):
    with pytest.raises(ValueError, match="protocol"):
        make_folds("kfold", speech)
    with pytest.raises(ValueError, match="test_corpora"):
        emobox_folds(speech, test_corpora={"ravdess-song"})
    with pytest.raises(ValueError, match="n_val_speakers"):
        loso_folds(speech, n_val_speakers=23)


def test_no_test_fold_trains_on_all_but_validation_speakers(speech):
    from emovox.splits import no_test_fold

    fold = no_test_fold(speech, n_val_speakers=4, seed=0)
    assert fold.test == () and len(fold.val_speakers) == 4
    assert len(fold.train) + len(fold.val) == len(speech)
    assert {speech[i].speaker for i in fold.val} == set(fold.val_speakers)
    assert not {speech[i].speaker for i in fold.train} & set(fold.val_speakers)
    assert no_test_fold(speech, n_val_speakers=0).val == ()



def test_fold_specs_name_one_fold_of_a_protocol(speech):
    """``--fold emobox:3`` (train, lr-find) and ``--folds 3`` (evaluate) read fold names one way."""
    from emovox.splits import fold_from_spec, select_folds

    folds = emobox_folds(speech, seed=1)
    assert fold_from_spec("emobox:3", speech, seed=1) == folds[2] == fold_from_spec("emobox:emobox-3", speech, seed=1)
    assert fold_from_spec(None, speech, n_val_speakers=2) == no_test_fold(speech, n_val_speakers=2)
    assert fold_from_spec("loso:07", speech).test_speakers == ("07",)
    assert [f.name for f in select_folds(folds, ["1", "emobox-2", 3], "emobox")] == ["emobox-1", "emobox-2", "emobox-3"]
    with pytest.raises(ValueError, match="no fold 'emobox:9'"):
        fold_from_spec("emobox:9", speech)

def _listing(corpus: str, speakers: dict[str, str], per_speaker: int = 4, known: bool = True) -> list[Utterance]:
    """``per_speaker`` utterances of each speaker (``{id: gender}``), emotions cycling."""
    return [Utterance(path=f"{corpus}/{s}_{k}.wav", emotion=EMOTIONS[k % 4], speaker=s if known else f"{s}_{k}",
                      gender=g, corpus=corpus, speaker_known=known)
            for s, g in speakers.items() for k in range(per_speaker)]


def test_speakers_are_qualified_by_corpus():
    # both corpora have speakers 01..04: eight people, not four
    a = _listing("a", {"01": "male", "02": "female", "03": "male", "04": "female"})
    b = _listing("b", {"01": "unknown", "02": "unknown", "03": "female", "04": "male"})
    utts = a + b
    folds = loso_folds(utts, n_val_speakers=2, seed=0)
    assert [f.name for f in folds] == [f"loso-{c}-0{k}" for c in "ab" for k in range(1, 5)]
    fold = folds[0]
    assert fold.test_speakers == ("a/01",) and fold.speaker_disjoint
    assert {utts[i].speaker_id for i in fold.test} == {"a/01"}
    assert any(utts[i].speaker_id == "b/01" for i in fold.train + fold.val)  # b's 01 is someone else
    check_speaker_folds(folds, [_Qualified(u) for u in utts])
    # testing on a only: b's speakers all train, and a's validation pair is one man, one woman
    for f in loso_folds(utts, n_val_speakers=2, seed=1, test_corpora={"a"}):
        assert {utts[i].corpus for i in f.val + f.test} == {"a"}
        assert {utts[i].speaker_id for i in f.train if utts[i].corpus == "b"} == {f"b/0{k}" for k in range(1, 5)}
        assert sorted(utts[i].gender for i in f.val[::4]) == ["female", "male"]


class _Qualified:
    """An utterance whose ``speaker`` is its ``speaker_id``, for check_speaker_folds."""

    def __init__(self, u):
        self.speaker, self.corpus = u.speaker_id, u.corpus


def test_validation_with_unknown_genders():
    genders = {**{f"m{k}": "male" for k in range(3)}, **{f"f{k}": "female" for k in range(3)},
               **{f"u{k}": "unknown" for k in range(4)}}
    for seed in range(5):
        chosen = validation_speakers(genders, 5, seed, genders)
        picked = Counter(genders[s] for s in chosen)
        assert picked["unknown"] == 2 and abs(picked["male"] - picked["female"]) <= 1  # 4 of 10: 2 of 5
        assert chosen == validation_speakers(sorted(genders, reverse=True), 5, seed, genders)
    only_unknown = {f"u{k}": "unknown" for k in range(5)}
    assert len(validation_speakers(only_unknown, 3, 0, only_unknown)) == 3


def test_unknown_speakers_are_not_speaker_disjoint():
    mine = _listing("folder", {f"x{k}": "unknown" for k in range(10)}, per_speaker=2, known=False)
    assert len({u.speaker_id for u in mine}) == 20  # each file its own speaker
    (rf,) = random_split(mine, seed=0)
    assert not rf.speaker_disjoint
    folds = loso_folds(mine, n_val_speakers=2)
    assert len(folds) == 20 and not any(f.speaker_disjoint for f in folds)
    # trained on beside a corpus with speakers, tested on that corpus: still disjoint
    savee = _listing("savee", {s: "male" for s in ("DC", "JE", "JK", "KL")})
    utts = savee + mine
    folds = loso_folds(utts, n_val_speakers=1, test_corpora={"savee"})
    assert [f.name for f in folds] == ["loso-savee-DC", "loso-savee-JE", "loso-savee-JK", "loso-savee-KL"]
    assert all(f.speaker_disjoint for f in folds)
    assert all(set(range(16, 36)) <= set(f.train) for f in folds)
    assert not no_test_fold(utts, n_val_speakers=2, test_corpora={"folder"}).speaker_disjoint
    assert no_test_fold(savee, n_val_speakers=1).speaker_disjoint
