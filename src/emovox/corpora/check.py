"""``emovox data check``: what a corpus holds, and what is wrong with it, before training on it.

Lists the corpus with its reader, then opens every file once (threads: decoding releases the
GIL) for its header (format, sample rate, channels) and its decoded samples, whose hash finds
recordings that are the same audio under two names.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import soundfile as sf

from emovox.audio import AudioError, _decode, _open  # the decoders behind audio.load, at the file's own rate
from emovox.corpora import open_corpus
from emovox.corpora.base import Utterance, location


@dataclass
class CheckReport:
    """What :func:`check_corpus` found. Counts are dicts sorted by key; ``to_dict`` gives JSON.

    Attributes
    ----------
    corpus, root : str
        The reader's name and what it read.
    files : int
        Utterances the reader listed (after its skips).
    readable : int
        Of those, the files that decoded.
    seconds : float
        Total duration of the readable files.
    labels, speakers, genders : dict
        Files per emotion, per speaker (``"?"`` counts files without a speaker id) and per
        gender (of speakers, not files).
    sample_rates, channels, formats : dict
        Files per sample rate (Hz), channel count and container (``"WAV"``, ``"FLAC"``, or
        ``"other"`` for what only FFmpeg reads).
    unreadable : list of (str, str)
        ``(file, reason)`` of each file that did not decode.
    skipped : list of (str, str)
        The reader's skipped files and rows (:attr:`emovox.corpora.Corpus.skipped`).
    duplicates : list of list of str
        Groups of files whose decoded audio is identical.
    """

    corpus: str
    root: str
    files: int = 0
    readable: int = 0
    seconds: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, int] = field(default_factory=dict)
    genders: dict[str, int] = field(default_factory=dict)
    sample_rates: dict[int, int] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every listed file decoded."""
        return not self.unreadable

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists, sample-rate and channel keys strings."""
        d = asdict(self)
        d["sample_rates"] = {str(k): v for k, v in self.sample_rates.items()}
        d["channels"] = {str(k): v for k, v in self.channels.items()}
        d["unreadable"] = [list(x) for x in self.unreadable]
        d["skipped"] = [list(x) for x in self.skipped]
        return d


@dataclass(frozen=True)
class _FileInfo:
    fmt: str
    rate: int
    channels: int
    seconds: float
    digest: bytes


def inspect_file(utt: Utterance) -> _FileInfo:
    """Header and content hash of one file.

    Raises
    ------
    AudioError
        If it does not decode.
    """
    name, data = _open(utt.source())
    try:
        fmt = sf.info(data).format  # _decode rewinds an in-memory file itself
    except Exception:  # not for libsndfile: FFmpeg decodes it below, or it is unreadable
        fmt = "other"
    samples, rate, channels = _decode(data, name)  # downmixed while decoding
    if samples.size == 0:
        raise AudioError(location(utt.path, utt.archive), "no audio samples")
    digest = hashlib.blake2b(samples.tobytes(), digest_size=16)
    digest.update(f"{rate}:{samples.shape}:{channels}".encode())
    return _FileInfo(fmt, int(rate), int(channels), samples.shape[0] / rate, digest.digest())


def check_corpus(name: str, root: str | os.PathLike, *, workers: int = 2, progress: bool = False) -> CheckReport:
    """Read every file of a corpus and report counts, formats, failures and duplicates.

    Parameters
    ----------
    name : str
        A registered corpus name (:func:`emovox.corpora.open_corpus`).
    root : str or path-like
        The corpus folder or zip (for ``manifest``: the manifest file).
    workers : int
        Threads decoding files.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    CheckReport
    """
    from tqdm.auto import tqdm

    corpus = open_corpus(name, root)
    utts = corpus.utterances()
    qualified = len({u.speaker_id.split("/", 1)[0] for u in utts}) > 1
    report = CheckReport(corpus=corpus.name, root=str(root), files=len(utts), skipped=list(corpus.skipped))
    report.labels = dict(sorted(Counter(u.emotion for u in utts).items()))
    speaker_of = (lambda u: u.speaker_id) if qualified else (lambda u: u.speaker)
    report.speakers = dict(sorted(Counter(speaker_of(u) if u.speaker_known else "?" for u in utts).items()))
    gender_of = {speaker_of(u): u.gender for u in utts if u.speaker_known}
    report.genders = dict(sorted(Counter(gender_of.values()).items()))

    def one(utt: Utterance):
        try:
            return inspect_file(utt)
        except AudioError as err:
            return err.reason
        except (OSError, KeyError) as err:  # e.g. a zip member that cannot be read
            return str(err)

    rates, channels, formats, by_hash = Counter(), Counter(), Counter(), defaultdict(list)
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(utts), unit="file", desc=f"check {corpus.name}", disable=not progress) as bar:
        for utt, info in zip(utts, pool.map(one, utts)):
            bar.update(1)
            where = location(utt.path, utt.archive)
            if isinstance(info, str):
                report.unreadable.append((where, info))
                continue
            report.readable += 1
            report.seconds += info.seconds
            rates[info.rate] += 1
            channels[info.channels] += 1
            formats[info.fmt] += 1
            by_hash[info.digest].append(where)
    report.sample_rates, report.channels = dict(sorted(rates.items())), dict(sorted(channels.items()))
    report.formats = dict(sorted(formats.items()))
    report.duplicates = sorted(group for group in by_hash.values() if len(group) > 1)
    return report


def format_table(report: CheckReport, examples: int = 10) -> str:
    """The report as text; at most ``examples`` skipped files per reason (JSON has them all)."""
    known = {k: v for k, v in report.speakers.items() if k != "?"}
    lines = [f"{report.corpus} at {report.root}: {report.files} files ({report.readable} readable), "
             f"{len(known)} speakers, {len(report.labels)} emotions, {report.seconds / 60:.1f} min"]
    lines += ["", f"{'emotion':<12}{'files':>7}"] + [f"{k:<12}{v:>7}" for k, v in report.labels.items()]
    if report.speakers.get("?"):
        lines.append(f"\n{report.speakers['?']} files have no speaker id: each is its own speaker, "
                     "splits cannot be speaker-disjoint")
    if known:
        width = max(12, *(len(k) + 2 for k in known))
        lines += ["", f"{'speaker':<{width}}{'files':>7}"] + [f"{k:<{width}}{v:>7}" for k, v in known.items()]
        lines.append("speaker genders: " + ", ".join(f"{g} {n}" for g, n in report.genders.items()))
    lines += ["", "sample rates: " + ", ".join(f"{r} Hz ({n})" for r, n in report.sample_rates.items()),
              "channels: " + ", ".join(f"{c} ({n})" for c, n in report.channels.items()),
              "formats: " + ", ".join(f"{f} ({n})" for f, n in report.formats.items())]
    if report.skipped:
        lines += ["", f"skipped by the reader: {len(report.skipped)}"]
        by_reason = defaultdict(list)
        for where, reason in report.skipped:
            by_reason[reason].append(where)
        for reason, wheres in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"  {reason}: {len(wheres)}")
            lines += [f"    {w}" for w in wheres[:examples]] + (["    ..."] if len(wheres) > examples else [])
    lines += ["", f"unreadable: {len(report.unreadable)}"] + [f"  {w}: {r}" for w, r in report.unreadable]
    lines += ["", f"identical audio: {len(report.duplicates)} groups"] + ["  " + "  =  ".join(g) for g in report.duplicates]
    return "\n".join(lines)
