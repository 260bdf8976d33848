"""Speech corpora: labelled utterances and how to find them."""

from __future__ import annotations

import os
from pathlib import Path

from emovox.corpora.base import Corpus, Utterance
from emovox.corpora.ravdess import Ravdess

__all__ = ["Utterance", "Corpus", "Ravdess", "open_corpus", "CORPUS_NAMES", "DEFAULT_RAVDESS_ROOT"]

#: Names accepted by :func:`open_corpus`, with the RAVDESS channels each lists.
CORPUS_NAMES: dict[str, tuple[str, ...]] = {
    "ravdess": ("speech",),
    "ravdess-song": ("song",),
    "ravdess-all": ("speech", "song"),
}


def _default_ravdess_root() -> Path | None:
    """``$EMOVOX_RAVDESS`` if set, else ``<repo>/../shared/data/ravdess`` if it exists, else None."""
    env = os.environ.get("EMOVOX_RAVDESS")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            candidate = parent.parent / "shared" / "data" / "ravdess"
            return candidate if candidate.is_dir() else None
    return None


#: Where RAVDESS is looked for when no root is given (None if nowhere).
DEFAULT_RAVDESS_ROOT: Path | None = _default_ravdess_root()


def open_corpus(name: str, root: str | os.PathLike | None = None) -> Corpus:
    """Open a corpus by name.

    Parameters
    ----------
    name : {"ravdess", "ravdess-song", "ravdess-all"}
        RAVDESS speech, song, or both.
    root : str or path-like, optional
        Where the corpus is (see :class:`Ravdess`); defaults to :data:`DEFAULT_RAVDESS_ROOT`.

    Returns
    -------
    Corpus
    """
    if name not in CORPUS_NAMES:
        raise ValueError(f"unknown corpus {name!r}; expected one of {', '.join(CORPUS_NAMES)}")
    if root is None:
        if DEFAULT_RAVDESS_ROOT is None:
            raise FileNotFoundError("no RAVDESS root given and none found; pass root or set EMOVOX_RAVDESS")
        root = DEFAULT_RAVDESS_ROOT
    return Ravdess(root, channels=CORPUS_NAMES[name])
