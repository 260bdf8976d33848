"""Train/validation/test splits over a list of utterances.

Three protocols:

* ``"emobox"``: the six speaker-independent RAVDESS folds of EmoBox (Ma et al. 2024),
  four actors tested per fold (:data:`EMOBOX_RAVDESS_FOLDS`);
* ``"loso"``: leave one speaker out, one fold per speaker;
* ``"random"``: one file-level split stratified by emotion (speakers shared between
  train and test: optimistic, for comparison with papers that report it).

For the speaker protocols, validation speakers are drawn (seeded, gender-balanced where
genders are known) from the training speakers, so no speaker is in two of train/val/test.
``test_corpora`` restricts val and test to some corpora (e.g. ``{"ravdess-speech"}``):
utterances of other corpora go to train if their speaker trains, and are dropped otherwise.

Speakers are grouped by :attr:`~emovox.corpora.Utterance.speaker_id`, the speaker qualified by
its corpus (its ``speaker_scope``): SAVEE's and another corpus's speaker ``"01"`` are two
people, RAVDESS speech and song actor ``"01"`` one. Folds name speakers bare (``"01"``) when
all utterances share one scope, else qualified (``"savee/DC"``). A file whose corpus gave no
speaker (``speaker_known=False``) is its own speaker; a fold where such a file could share a
speaker with another part says so with ``speaker_disjoint=False``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from emovox.corpora.base import Utterance

#: EmoBox's RAVDESS folds: fold number -> the four test actors.
EMOBOX_RAVDESS_FOLDS: dict[int, tuple[str, ...]] = {
    1: ("01", "11", "20", "21"),
    2: ("04", "10", "12", "14"),
    3: ("08", "09", "19", "23"),
    4: ("03", "05", "07", "24"),
    5: ("02", "15", "16", "18"),
    6: ("06", "13", "17", "22"),
}

PROTOCOLS: tuple[str, ...] = ("emobox", "loso", "random")


@dataclass(frozen=True)
class Fold:
    """One split: sorted indices into the utterance list it was made from.

    Attributes
    ----------
    name : str
        ``"emobox-1"``, ``"loso-07"``, ``"random"``.
    train, val, test : tuple of int
        Disjoint, sorted indices.
    test_speakers : tuple of str
        The held-out speakers (random protocol: the speakers present in ``test``).
    val_speakers : tuple of str
        The validation speakers; empty for the random protocol.
    speaker_disjoint : bool
        Whether train, val and test are known to share no speaker. ``False`` for the random
        protocol, and for a speaker protocol when a file without a speaker id (a folder tree, a
        manifest without speakers: each file is then its own speaker) is in one part while
        another part holds files of the same corpus: they may be the same person, and figures
        from such a fold are not speaker-independent.
    """

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    test_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]
    speaker_disjoint: bool = True


def validation_speakers(train_speakers: Collection[str], n: int, seed: int,
                        genders: dict[str, str] | None = None) -> tuple[str, ...]:
    """Choose ``n`` validation speakers among the training speakers.

    Parameters
    ----------
    train_speakers : collection of str
        The candidates; the result depends only on their set, ``n``, ``seed`` and ``genders``.
    n : int
        How many; ``0 <= n < len(set(train_speakers))`` (at least one speaker must stay in train).
    seed : int
        Seed of the choice.
    genders : dict, optional
        ``{speaker: "male" | "female" | "unknown"}``; if given, take ``n // 2`` of each known
        gender (the odd one, or any shortfall, from the larger remaining group; ties go to
        female/male by seed). Speakers of unknown gender get their share of ``n`` (rounded; at
        least what the known ones cannot fill), drawn at random, and the rest is balanced.

    Returns
    -------
    tuple of str
        Sorted speaker ids.
    """
    pool = sorted(set(train_speakers))
    if not 0 <= n < len(pool):
        raise ValueError(f"n_val_speakers must be in 0..{len(pool) - 1} (training speakers: {len(pool)}), got {n}")
    rng = np.random.default_rng(seed)
    if genders is None:
        return tuple(sorted(rng.permutation(pool)[:n].tolist()))
    missing = [s for s in pool if s not in genders]
    if missing:
        raise ValueError(f"no gender for speakers {missing}")
    unknown = [s for s in pool if genders[s] not in ("male", "female")]
    if not unknown:
        return tuple(sorted(_balanced(pool, n, rng, genders)))
    known = [s for s in pool if s not in set(unknown)]
    n_unknown = min(len(unknown), max(round(n * len(unknown) / len(pool)), n - len(known)))
    chosen = _balanced(known, n - n_unknown, rng, genders) + rng.permutation(unknown)[:n_unknown].tolist()
    return tuple(sorted(chosen))


def _balanced(pool: list[str], n: int, rng: np.random.Generator, genders: dict[str, str]) -> list[str]:
    """``n`` of ``pool`` (male/female speakers), as even between the genders as the pool allows."""
    groups = [rng.permutation([s for s in pool if genders[s] == g]).tolist() for g in ("male", "female")]
    chosen: list[str] = []
    turn = int(rng.integers(2))
    while len(chosen) < n:
        # take from the group with more speakers left to give; alternate on ties
        left = [len(groups[0]), len(groups[1])]
        taken = [sum(genders[s] == g for s in chosen) for g in ("male", "female")]
        options = [i for i in (0, 1) if left[i]]
        best = min(options, key=lambda i: (taken[i], -left[i], i != turn))
        chosen.append(groups[best].pop(0))
        turn = 1 - turn
    return chosen


def _test_corpora(utts: Sequence[Utterance], test_corpora: Collection[str] | str | None) -> set[str]:
    present = {u.corpus for u in utts}
    if not utts:
        raise ValueError("no utterances to split")
    if test_corpora is None:
        return present
    wanted = {test_corpora} if isinstance(test_corpora, str) else set(test_corpora)
    if not wanted or wanted - present:
        raise ValueError(f"test_corpora {sorted(wanted)} must be a non-empty subset of the corpora present {sorted(present)}")
    return wanted


def _genders(utts: Sequence[Utterance]) -> dict[str, str]:
    """``{speaker_id: gender}``; "unknown" on some rows yields to a gender given on others."""
    genders: dict[str, str] = {}
    for u in utts:
        said = genders.setdefault(u.speaker_id, u.gender)
        if said == "unknown":
            genders[u.speaker_id] = u.gender
        elif u.gender not in ("unknown", said):
            raise ValueError(f"speaker {u.speaker_id} has utterances of both genders (e.g. {u.path})")
    return genders


def _namer(utts: Sequence[Utterance]):
    """How folds name a speaker id: bare when every utterance shares one scope, else qualified."""
    if len({u.speaker_id.split("/", 1)[0] for u in utts}) == 1:
        return lambda sid: sid.split("/", 1)[1]
    return lambda sid: sid


def _disjoint(utts: Sequence[Utterance], parts: Sequence[Sequence[int]]) -> bool:
    """False if a file without a speaker id is in one part and its scope has files in another."""
    scopes = [{utts[i].speaker_id.split("/", 1)[0] for i in part} for part in parts]
    blind = [{utts[i].speaker_id.split("/", 1)[0] for i in part if not utts[i].speaker_known} for part in parts]
    return not any(blind[a] & scopes[b] for a in range(len(parts)) for b in range(len(parts)) if a != b)


def _speaker_fold(name: str, utts: Sequence[Utterance], test_set: set[str], test_speakers: Collection[str],
                  n_val: int, seed: int, genders: dict[str, str]) -> Fold:
    """A fold holding out ``test_speakers`` (speaker ids); val speakers among the others with test-corpus data."""
    test_spk = set(test_speakers)
    ids = [u.speaker_id for u in utts]
    candidates = {ids[i] for i, u in enumerate(utts) if u.corpus in test_set} - test_spk
    val_spk = set(validation_speakers(candidates, n_val, seed, genders))
    train, val, test = [], [], []
    for i, u in enumerate(utts):
        if ids[i] in test_spk:
            if u.corpus in test_set:
                test.append(i)
        elif ids[i] in val_spk:
            if u.corpus in test_set:
                val.append(i)
        else:
            train.append(i)
    show = _namer(utts)
    return Fold(name, tuple(train), tuple(val), tuple(test), tuple(sorted(map(show, test_spk))),
                tuple(sorted(map(show, val_spk))), _disjoint(utts, (train, val, test)))


def no_test_fold(utts: Sequence[Utterance], n_val_speakers: int = 4, seed: int = 0,
                 test_corpora: Collection[str] | None = None) -> Fold:
    """Everyone trains except ``n_val_speakers`` validation speakers; no test set (``"all"``).

    For a final model (e.g. the bundled one) after the protocol runs have measured it.
    """
    return _speaker_fold("all", utts, _test_corpora(utts, test_corpora), (), n_val_speakers, seed, _genders(utts))


def emobox_folds(utts: Sequence[Utterance], n_val_speakers: int = 4, seed: int = 0,
                 test_corpora: Collection[str] | None = None) -> list[Fold]:
    """The six EmoBox RAVDESS folds (``"emobox-1"``..``"emobox-6"``).

    Parameters
    ----------
    utts : sequence of Utterance
        RAVDESS utterances (speaker = actor ``"01"``..``"24"``).
    n_val_speakers : int
        Validation speakers per fold, drawn from that fold's training speakers.
    seed : int
        Seed of the validation-speaker choice.
    test_corpora : collection of str, optional
        Corpora whose utterances may be validated and tested on (default: all present).

    Raises
    ------
    ValueError
        If a speaker of the test corpora is not in :data:`EMOBOX_RAVDESS_FOLDS`.
    """
    test_set = _test_corpora(utts, test_corpora)
    known = {s for spk in EMOBOX_RAVDESS_FOLDS.values() for s in spk}
    unknown = sorted({u.speaker for u in utts if u.corpus in test_set} - known)
    if unknown:
        raise ValueError(f"speakers {unknown} are in no EmoBox RAVDESS fold (expected actors 01..24)")
    genders = _genders(utts)
    # a fold's actors in each speaker scope tested (RAVDESS: the one scope "ravdess")
    scopes = sorted({u.speaker_id.split("/", 1)[0] for u in utts if u.corpus in test_set})
    return [_speaker_fold(f"emobox-{k}", utts, test_set, [f"{sc}/{a}" for sc in scopes for a in spk],
                          n_val_speakers, seed, genders)
            for k, spk in sorted(EMOBOX_RAVDESS_FOLDS.items())]


def loso_folds(utts: Sequence[Utterance], n_val_speakers: int = 4, seed: int = 0,
               test_corpora: Collection[str] | None = None) -> list[Fold]:
    """Leave-one-speaker-out: one fold ``"loso-<speaker>"`` per speaker of the test corpora.

    Parameters are as in :func:`emobox_folds`. With several speaker scopes the name is
    qualified, ``"loso-savee-DC"``. A corpus without speaker ids gives one fold per file
    (leave-one-file-out), marked ``speaker_disjoint=False``.
    """
    test_set = _test_corpora(utts, test_corpora)
    genders = _genders(utts)
    show = _namer(utts)
    speakers = sorted({u.speaker_id for u in utts if u.corpus in test_set})
    return [_speaker_fold("loso-" + show(s).replace("/", "-").replace("\\", "-"), utts, test_set, (s,),
                          n_val_speakers, seed, genders) for s in speakers]


def random_split(utts: Sequence[Utterance], test_fraction: float = 0.2, val_fraction: float = 0.1,
                 seed: int = 0, test_corpora: Collection[str] | None = None) -> list[Fold]:
    """One file-level split (``"random"``), stratified by emotion.

    Parameters
    ----------
    utts : sequence of Utterance
    test_fraction, val_fraction : float
        Shares of the test-corpus utterances for test and for validation; validation is drawn
        from the training part, also stratified by emotion.
    seed : int
        ``random_state`` of :func:`sklearn.model_selection.train_test_split`.
    test_corpora : collection of str, optional
        Corpora split three ways (default: all); utterances of other corpora all go to train.

    Returns
    -------
    list of Fold
        A single fold, with empty ``val_speakers`` and ``speaker_disjoint=False``.
    """
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ValueError(f"need 0 < test_fraction, 0 <= val_fraction, sum < 1; got {test_fraction}, {val_fraction}")
    test_set = _test_corpora(utts, test_corpora)
    pool = [i for i, u in enumerate(utts) if u.corpus in test_set]
    labels = [utts[i].emotion for i in pool]
    rest, test = train_test_split(pool, test_size=test_fraction, stratify=labels, random_state=seed)
    val: list[int] = []
    if val_fraction > 0:
        rest_labels = [utts[i].emotion for i in rest]
        n_val = round(val_fraction * len(pool))
        rest, val = train_test_split(rest, test_size=n_val, stratify=rest_labels, random_state=seed)
    train = sorted(rest + [i for i, u in enumerate(utts) if u.corpus not in test_set])
    show = _namer(utts)
    test_spk = tuple(sorted({show(utts[i].speaker_id) for i in test}))
    return [Fold("random", tuple(train), tuple(sorted(val)), tuple(sorted(test)), test_spk, (), False)]


def make_folds(protocol: str, utts: Sequence[Utterance], *, n_val_speakers: int = 4, seed: int = 0,
               test_corpora: Collection[str] | None = None) -> list[Fold]:
    """Folds of ``protocol`` (``"emobox"``, ``"loso"`` or ``"random"``; see the module docstring).

    ``n_val_speakers`` is ignored by ``"random"``, which uses the default fractions of
    :func:`random_split`.
    """
    if protocol == "emobox":
        return emobox_folds(utts, n_val_speakers, seed, test_corpora)
    if protocol == "loso":
        return loso_folds(utts, n_val_speakers, seed, test_corpora)
    if protocol == "random":
        return random_split(utts, seed=seed, test_corpora=test_corpora)
    raise ValueError(f"unknown split protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def select_folds(folds: Sequence[Fold], names: Collection[str], protocol: str) -> list[Fold]:
    """The folds called by one of ``names``: in full (``"emobox-3"``), without the protocol
    (``"3"``, ``"savee-DC"``) or by the last part of the name (``"DC"``)."""
    wanted = {str(n) for n in names}
    return [f for f in folds if f.name in wanted or f.name.removeprefix(f"{protocol}-") in wanted
            or f.name.split("-")[-1] in wanted]


def fold_from_spec(spec: str | None, utts: Sequence[Utterance], *, n_val_speakers: int = 4, seed: int = 0,
                   test_corpora: Collection[str] | None = None) -> Fold:
    """``"emobox:3"`` → that fold of the protocol (``"loso:07"``, ``"random:random"``);
    ``None`` or ``""`` → :func:`no_test_fold` (every speaker but the validation ones trains)."""
    if not spec:
        return no_test_fold(utts, n_val_speakers, seed, test_corpora)
    protocol, _, name = spec.partition(":")
    folds = make_folds(protocol, utts, n_val_speakers=n_val_speakers, seed=seed, test_corpora=test_corpora)
    chosen = select_folds(folds, [name], protocol)
    if not chosen:
        raise ValueError(f"no fold {spec!r}; e.g. emobox:1, loso:07, random:random")
    return chosen[0]
