"""Feature images of a corpus, computed once through the shared pipeline and cached on disk.

The cache file name hashes every input that changes an image: the pipeline settings and,
for each utterance, its key, size and modification time. Unreadable files are reported and
left out; everything else is kept.

Cache entries (feature images, and the waveforms of waveform augmentation) are written
atomically (temporary file, fsync, rename) with a SHA-256 of their contents: an entry that is
truncated or damaged is reported (a warning naming the file), removed and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .. import audio
from ..config import RunConfig
from ..corpora import Utterance, default_root, open_corpus
from ..labels import EMOTIONS, index_of
from ..pipeline import Preprocessing

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$EMOVOX_CACHE``, else ``$XDG_CACHE_HOME/emovox/features`` (``~/.cache/emovox/features``)."""
    if os.environ.get("EMOVOX_CACHE"):
        return Path(os.environ["EMOVOX_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "emovox" / "features"


def speaker_of(utt: Utterance) -> str:
    """A speaker id unique across corpora, and per sub-corpus: RAVDESS actor 01's speech and song
    are two references, as singing changes the voice (the person is :attr:`Utterance.speaker_id`)."""
    return f"{utt.corpus}:{utt.speaker}"


@dataclass
class FeatureSet:
    """Un-normalised dB images ``[bins, frames]`` (variable width), each clip's voiced frame
    range ``(first, end)``, and the labels."""

    images: list[torch.Tensor]
    bounds: list[tuple[int, int]]
    labels: np.ndarray
    utterances: list[Utterance]
    failed: list[tuple[Utterance, str]] = field(default_factory=list)
    label_names: tuple[str, ...] = EMOTIONS

    def __len__(self) -> int:
        return len(self.images)

    @property
    def speakers(self) -> list[str]:
        """Each clip's speaker, as :func:`speaker_of` names them."""
        return [speaker_of(u) for u in self.utterances]

    def subset(self, indices) -> "FeatureSet":
        idx = list(indices)
        return FeatureSet([self.images[i] for i in idx], [self.bounds[i] for i in idx], self.labels[idx],
                          [self.utterances[i] for i in idx], label_names=self.label_names)

    def with_labels(self, names: tuple[str, ...]) -> "FeatureSet":
        """The clips whose emotion is in ``names``, labelled by position in ``names``."""
        keep = [i for i, u in enumerate(self.utterances) if u.emotion in names]
        sub = self.subset(keep)
        return FeatureSet(sub.images, sub.bounds, np.array([names.index(u.emotion) for u in sub.utterances], dtype=np.int64),
                          sub.utterances, self.failed, tuple(names))


#: how a training set's emotions become the model's: all of emovox's, those of any corpus, those of every one
LABEL_SETS = ("all", "union", "intersection")


def model_labels(utts: list[Utterance], mode: str) -> tuple[str, ...]:
    """The model's emotions for training data ``utts`` (in emovox's order)."""
    if mode not in LABEL_SETS:
        raise ValueError(f"data.labels must be one of {', '.join(LABEL_SETS)}, not {mode!r}")
    if mode == "all":
        return EMOTIONS
    per_corpus: dict[str, set[str]] = {}
    for u in utts:
        per_corpus.setdefault(u.corpus, set()).add(u.emotion)
    sets = list(per_corpus.values()) or [set()]
    chosen = set.union(*sets) if mode == "union" else set.intersection(*sets)
    return tuple(e for e in EMOTIONS if e in chosen)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"savee=/data/SAVEE"`` → ``("savee", "/data/SAVEE")``; ``"ravdess"`` → ``("ravdess", None)``."""
    name, _, root = spec.partition("=")
    if not name:
        raise ValueError(f"corpus {spec!r}: expected NAME or NAME=DIR")
    return name.strip(), (root.strip() or None)


def corpus_root(name: str, root: str | None) -> Path:
    where = root or default_root(name)
    if where is None:
        raise FileNotFoundError(f"no folder for corpus {name!r}: give it as {name}=DIR")
    return Path(where)


def load_corpora(specs: list[str], pipeline, *, cache_dir=None, progress: bool = True) -> FeatureSet:
    """The feature images of every utterance of the named corpora (``NAME`` or ``NAME=DIR``)."""
    utts = []
    for spec in specs:
        name, root = parse_spec(spec)
        utts += open_corpus(name, corpus_root(name, root)).utterances()
    keys = [u.key for u in utts]
    if len(set(keys)) != len(keys):
        raise ValueError(f"corpora {specs} list some utterances twice")
    return build_features(utts, pipeline, cache_dir=cache_dir, progress=progress)


def load_dataset(cfg: RunConfig, *, progress: bool = True) -> FeatureSet:
    """The corpora of ``cfg`` and their feature images (cached), labelled with the model's emotions.

    ``data.corpus`` is a name or a list of ``NAME`` / ``NAME=DIR``; ``data.root`` is the folder of a
    single named corpus; ``data.labels`` picks the model's emotions (:data:`LABEL_SETS`).
    """
    corpus, cache_dir = cfg.data.corpus, cfg.data.cache_dir
    if isinstance(corpus, str):
        utts = open_corpus(corpus, cfg.data.root).utterances()
        data = build_features(utts, cfg.preprocessing, cache_dir=cache_dir, progress=progress)
    else:
        data = load_corpora(list(corpus), cfg.preprocessing, cache_dir=cache_dir, progress=progress)
    names = model_labels(data.utterances, cfg.data.labels)
    return data if names == data.label_names else data.with_labels(names)


def _stamp(utt: Utterance) -> str:
    where = utt.archive or utt.path
    try:
        st = os.stat(where)
        return f"{utt.key}:{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        return f"{utt.key}:missing"


#: bump when what is cached (or how it is computed) changes for the same settings
CACHE_VERSION = 2


def cache_key(utts: list[Utterance], pipeline: Preprocessing) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}-{pipeline.key()}".encode())
    for u in utts:
        h.update(_stamp(u).encode())
    return h.hexdigest()[:16]


def build_features(
    utts: list[Utterance],
    pipeline: Preprocessing,
    *,
    labels: tuple[str, ...] = EMOTIONS,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Decode and featurise ``utts``, finding their voiced frames (or read them from the cache).

    Files that fail to decode are logged, listed in ``FeatureSet.failed`` and skipped.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache_dir / f"{cache_key(utts, pipeline)}.safetensors"
    if path.is_file():
        try:
            return _read_cache(path, utts, labels)
        except CacheError as err:  # never used: reported, removed and rebuilt below
            log.warning("feature cache %s cannot be used (%s); rebuilding it", path, err)
            path.unlink(missing_ok=True)
    extractor = pipeline.extractor()
    images, bounds, kept, failed = [], [], [], []
    for utt in tqdm(utts, desc="features", unit="clip", disable=not progress):
        try:
            wave = audio.load(utt.source(), pipeline.sample_rate)
        except audio.AudioError as err:
            log.warning("skipping %s: %s", utt.path, err)
            failed.append((utt, str(err)))
            continue
        db, voiced = pipeline.analyse(wave, extractor)
        images.append(db)
        bounds.append(voiced)
        kept.append(utt)
    fs = FeatureSet(images, bounds, np.array([index_of(u.emotion, labels) for u in kept], dtype=np.int64), kept, failed)
    _write_cache(path, fs)
    return fs


class CacheError(ValueError):
    """A cache file that is truncated, damaged or does not match its checksum."""


def _checksum(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """SHA-256 over the metadata and every tensor's dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy())  # the buffer itself, not a copy
    return h.hexdigest()


def save_checked(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Write a safetensors cache entry atomically (temporary file, fsync, rename), its
    checksum in the metadata."""
    from ..safeio import atomic_path

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**meta, "sha256": _checksum(tensors, meta)})


def load_checked(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a cache entry written by :func:`save_checked`; raises
    :class:`CacheError` if it does not parse or its checksum does not match."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise CacheError(f"unreadable: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}") from None
    stored = meta.pop("sha256", None)
    if stored is None:
        raise CacheError("no checksum (written by an older emovox)")
    if _checksum(tensors, meta) != stored:
        raise CacheError("checksum mismatch")
    return tensors, meta


def _write_cache(path: Path, fs: FeatureSet) -> None:
    widths = torch.tensor([img.shape[-1] for img in fs.images], dtype=torch.int64)
    data = torch.cat(fs.images, dim=-1) if fs.images else torch.zeros(0)
    meta = {"keys": json.dumps([u.key for u in fs.utterances]),
            "failed": json.dumps([[u.key, why] for u, why in fs.failed])}
    bounds = torch.tensor(fs.bounds, dtype=torch.int64).reshape(-1, 2)
    # atomic and checksummed: an interrupted run never leaves a half-written cache, and a
    # damaged one is detected on reading
    save_checked(path, {"data": data, "widths": widths, "bounds": bounds}, meta)


def _read_cache(path: Path, utts: list[Utterance], labels) -> FeatureSet:
    tensors, meta = load_checked(path)
    by_key = {u.key: u for u in utts}
    try:
        kept = [by_key[k] for k in json.loads(meta["keys"])]
        failed = [(by_key[k], why) for k, why in json.loads(meta["failed"])]
        widths = tensors["widths"].tolist()
        if sum(widths) != tensors["data"].shape[-1] or len(tensors["bounds"]) != len(kept):
            raise CacheError("sizes do not add up")
    except (KeyError, ValueError, TypeError) as err:
        raise CacheError(f"inconsistent contents ({type(err).__name__}: {err})") from None
    images = list(torch.split(tensors["data"], widths, dim=-1)) if widths else []
    labels_arr = np.array([index_of(u.emotion, labels) for u in kept], dtype=np.int64)
    bounds = [tuple(b) for b in tensors["bounds"].tolist()]
    return FeatureSet(images, bounds, labels_arr, kept, failed)


def load_waves(utts: list[Utterance], sample_rate: int, *, cache_dir: str | Path | None = None,
               progress: bool = True) -> list[np.ndarray]:
    """The decoded waveforms of ``utts`` (float32 at ``sample_rate``), for waveform augmentation.

    Cached as 16-bit samples beside the feature images (half the memory of float32 on disk;
    the quantisation is far below any augmentation's noise). ``utts`` must all decode: they
    come from a :class:`FeatureSet`, which already left out the files that do not.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    h = hashlib.sha1(f"waves-v1-{sample_rate}".encode())
    for u in utts:
        h.update(_stamp(u).encode())
    path = cache_dir / f"waves-{h.hexdigest()[:16]}.safetensors"
    if path.is_file():
        try:
            return _read_waves(path, utts)
        except CacheError as err:  # never used: reported, removed and rebuilt below
            log.warning("waveform cache %s cannot be used (%s); rebuilding it", path, err)
            path.unlink(missing_ok=True)
    waves = [audio.load(u.source(), sample_rate) for u in tqdm(utts, desc="waveforms", unit="clip", disable=not progress)]
    data = torch.from_numpy(np.concatenate([np.round(np.clip(w, -1, 1) * 32767).astype(np.int16) for w in waves])
                            if waves else np.zeros(0, np.int16))
    # atomic and checksummed, like the feature cache
    save_checked(path, {"data": data, "lengths": torch.tensor([len(w) for w in waves], dtype=torch.int64)},
                 {"keys": json.dumps([u.key for u in utts])})
    return waves


def machine(cpuinfo: str | None = None) -> str:
    """CPU model, its vector extensions that matter for training speed, cores and torch version
    (named beside every measured figure: the same run is several times faster on another CPU).
    ``cpuinfo``: the text of /proc/cpuinfo (read when not given)."""
    model, flags, ids = platform.processor() or platform.machine(), set(), {}
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
        for line in text.splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key in ("cpu family", "model"):
                ids[key] = value
            elif key == "flags":  # the first processor's lines are enough
                flags = set(value.split())
                break
    except OSError:
        pass
    if len(ids) == 2:  # VMs often say only "AMD EPYC": family and model tell Zen 4 (25/17) from Zen 5 (26/2)
        model += f" family {ids['cpu family']} model {ids['model']}"
    vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return (f"{model} ({' '.join(vector) or 'no AVX2'}), {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs, "
            f"torch {torch.__version__}")


def _read_waves(path: Path, utts: list[Utterance]) -> list[np.ndarray]:
    tensors, meta = load_checked(path)
    try:
        lengths = tensors["lengths"].tolist()
        if json.loads(meta["keys"]) != [u.key for u in utts]:
            raise CacheError("it holds other clips")
        if sum(lengths) != tensors["data"].shape[0] or tensors["data"].dtype != torch.int16:
            raise CacheError("sizes do not add up")
    except (KeyError, ValueError, TypeError) as err:
        raise CacheError(f"inconsistent contents ({type(err).__name__}: {err})") from None
    return [w.numpy().astype(np.float32) / 32767.0 for w in torch.split(tensors["data"], lengths)]
