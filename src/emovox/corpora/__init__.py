"""Speech corpora: labelled utterances and how to find them.

A registry maps corpus names to readers; adding a corpus is one module that calls
:func:`register`. Each name has a default location: ``$EMOVOX_<NAME>`` (e.g. ``EMOVOX_SAVEE``),
else ``../shared/data/<folder>`` beside the repository when it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emovox.corpora.base import Corpus, Utterance
from emovox.corpora.crema_d import CremaD
from emovox.corpora.emodb import EmoDB
from emovox.corpora.folder import FolderTree
from emovox.corpora.manifest import Manifest
from emovox.corpora.ravdess import Ravdess
from emovox.corpora.savee import Savee
from emovox.corpora.tess import Tess

__all__ = ["Utterance", "Corpus", "Ravdess", "Savee", "Tess", "CremaD", "EmoDB", "FolderTree", "Manifest",
           "open_corpus", "register", "CORPORA", "CORPUS_NAMES",
           "default_root", "DEFAULT_RAVDESS_ROOT"]


@dataclass(frozen=True)
class CorpusEntry:
    """How to open one corpus name: ``opener(root) -> Corpus`` and where it usually lives."""

    opener: Callable[[Path], Corpus]
    folder: str | None   # under ../shared/data; None: no default location (your own data)
    env: str | None      # the EMOVOX_<NAME> variable naming its location
    description: str
    terms: str | None = None  # the licence a model trained on it inherits (None: unknown, or your own data)


#: name → entry; filled by :func:`register`.
CORPORA: dict[str, CorpusEntry] = {}


def register(name: str, opener: Callable[[Path], Corpus], *, folder: str | None, env: str | None,
             description: str, terms: str | None = None) -> None:
    """Make ``open_corpus(name)`` call ``opener(root)``; ``terms``: its licence, for model cards."""
    CORPORA[name] = CorpusEntry(opener, folder, env, description, terms)


_RAVDESS_TERMS = ("CC BY-NC-SA 4.0 (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391, Zenodo 1188976): "
                  "attribution, non-commercial use only, share-alike")


register("ravdess", lambda root: Ravdess(root, channels=("speech",)), folder="ravdess", env="EMOVOX_RAVDESS",
         description="RAVDESS speech: 24 actors, 8 emotions", terms=_RAVDESS_TERMS)
register("ravdess-song", lambda root: Ravdess(root, channels=("song",)), folder="ravdess", env="EMOVOX_RAVDESS",
         description="RAVDESS song: 23 actors, 6 emotions", terms=_RAVDESS_TERMS)
register("ravdess-all", lambda root: Ravdess(root, channels=("speech", "song")), folder="ravdess",
         env="EMOVOX_RAVDESS", description="RAVDESS speech and song", terms=_RAVDESS_TERMS)
register("savee", Savee, folder="savee", env="EMOVOX_SAVEE",
         description="SAVEE: 4 male British speakers, 7 emotions (research use)",
         terms="research use only, as the University of Surrey gives it out free of charge (Haq & Jackson 2009, AVSP)")
register("tess", Tess, folder="tess", env="EMOVOX_TESS",
         description="TESS: 2 female Canadian speakers, 7 emotions",
         terms="CC BY-NC-ND 4.0 (Pichora-Fuller & Dupuis 2020)")
register("crema-d", CremaD, folder="crema-d", env="EMOVOX_CREMA_D",
         description="CREMA-D: 91 actors, 6 emotions", terms="Open Database License (Cao et al. 2014)")
register("emodb", EmoDB, folder="emodb", env="EMOVOX_EMODB",
         description="EmoDB: 10 German actors, 6 emotions (boredom skipped)")
register("folder", FolderTree, folder=None, env=None,
         description="your own recordings in <emotion>/ folders (no speakers)")
register("manifest", Manifest, folder=None, env=None,
         description="your own recordings listed in a CSV or JSONL manifest (path,label[,speaker][,gender])")

#: Names accepted by :func:`open_corpus` (kept for compatibility: the RAVDESS channels).
CORPUS_NAMES: dict[str, tuple[str, ...]] = {
    "ravdess": ("speech",),
    "ravdess-song": ("song",),
    "ravdess-all": ("speech", "song"),
}


def _shared_data() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent.parent / "shared" / "data"
    return None


def default_root(name: str) -> Path | None:
    """``$EMOVOX_<NAME>`` if set, else ``<repo>/../shared/data/<folder>`` if it exists, else None."""
    entry = _entry(name)
    env = os.environ.get(entry.env) if entry.env else None
    if env:
        return Path(env)
    shared = _shared_data()
    candidate = shared / entry.folder if shared and entry.folder else None
    return candidate if candidate is not None and candidate.is_dir() else None


def _entry(name: str) -> CorpusEntry:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; expected one of {', '.join(CORPORA)}")
    return CORPORA[name]


#: Where RAVDESS is looked for when no root is given (None if nowhere).
DEFAULT_RAVDESS_ROOT: Path | None = default_root("ravdess")


def open_corpus(name: str, root: str | os.PathLike | None = None) -> Corpus:
    """Open a corpus by name.

    Parameters
    ----------
    name : str
        A registered name (:data:`CORPORA`): ``ravdess``, ``ravdess-song``, ``ravdess-all``, ``savee``,
        ``tess``, ``crema-d``, ``emodb``, ``folder``, ``manifest``.
    root : str or path-like, optional
        Where the corpus is (a folder or its zip; for ``manifest`` the manifest file); defaults to
        :func:`default_root`.

    Returns
    -------
    Corpus
    """
    entry = _entry(name)
    if root is None:
        root = default_root(name)
        if root is None:
            hint = f"pass root or set {entry.env}" if entry.env else "pass its folder or manifest file"
            raise FileNotFoundError(f"no {name} root given and none found; {hint}")
    return entry.opener(Path(root))
