"""Training batches: one random window per clip, with its normalisation reference.

Two sources, one output. Without waveform augmentation the windows are cut from the cached dB
images. With it, each whole clip is augmented as a waveform, featurised by the same extractor
the model uses and trimmed anew, so the augmented image, its voiced frames and the silence
around them are exactly what prediction would see for that audio. (Augmenting only the voiced
part, as a first version did, put copies of one frame where prediction sees the recording's own
silence around short utterances: a train/test mismatch.) Every draw comes from a generator seeded by
``(seed, epoch)``: a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import torch

from ..adaptation import indices_by
from ..features import FeatureExtractor, Stats
from ..pipeline import Preprocessing, random_window
from .data import FeatureSet, speaker_of
from .heads import intensity_targets


class Batch(NamedTuple):
    """Un-normalised dB windows ``[B, bins, clip]``, labels, each window's reference statistics
    (``normalize: bins`` only, else None), for mixup the partners' labels and the blend weight,
    with distillation the teachers' soft targets (blended like the windows), and for consistency
    training a window of each clip's clean recording with its reference, and for speaker-centred
    training each clip's speaker group within the batch (:mod:`.centring`), for speaker-adversarial
    training each clip's training speaker (an index: :mod:`.heads`), for the intensity head each
    clip's intensity (:func:`.heads.intensity_targets`)."""

    windows: torch.Tensor
    y: torch.Tensor
    stats: Stats | None
    y2: torch.Tensor | None = None
    lam: float | None = None
    soft: torch.Tensor | None = None
    clean: torch.Tensor | None = None
    clean_stats: Stats | None = None
    groups: torch.Tensor | None = None
    speakers: torch.Tensor | None = None
    intensity: torch.Tensor | None = None


def speaker_stats(fs: FeatureSet) -> dict[str, Stats]:
    """Each speaker's voiced frames pooled (``normalize: bins`` training with speaker references),
    keyed like :func:`speaker_of`. Uses only audio, never labels."""
    return {s: Stats.pool([fs.images[i] for i in idx], [fs.bounds[i] for i in idx])
            for s, idx in indices_by(fs.speakers).items()}


def class_order(fs: FeatureSet, rng: np.random.Generator, balance: str) -> np.ndarray:
    """This epoch's clip order: a permutation, or (``balance="sampler"``) as many draws with
    replacement, each class equally likely."""
    if balance != "sampler":
        return rng.permutation(len(fs))
    counts = np.bincount(fs.labels)
    p = 1.0 / counts[fs.labels]
    return rng.choice(len(fs), size=len(fs), replace=True, p=p / p.sum())


def speaker_index(fs: FeatureSet) -> dict[str, int]:
    """Each training speaker's number (0, 1, ... in sorted order), keyed like :func:`speaker_of`."""
    return {s: k for k, s in enumerate(sorted(set(fs.speakers)))}


def speaker_group_order(fs: FeatureSet, rng: np.random.Generator, size: int) -> np.ndarray:
    """This epoch's clip order in runs of exactly ``size`` clips of one speaker (each speaker's
    clips shuffled and cut into runs, the runs shuffled); a speaker's short last run is topped up
    with other clips of that speaker, so batches of a multiple of ``size`` hold whole runs and no
    clip is ever alone with its speaker. At least every clip, some twice; the batches take the
    first ``len(fs) // batch_size`` of them (speaker-centred training)."""
    by_speaker = indices_by(fs.speakers)
    runs = []
    for s in sorted(by_speaker):
        idx = rng.permutation(by_speaker[s])
        short = (-len(idx)) % size
        if short:
            others = idx[:len(idx) - (size - short)]  # not in the last run
            pool = others if len(others) >= short else idx
            idx = np.concatenate([idx, rng.choice(pool, short, replace=len(pool) < short)])
        runs += [idx[k:k + size] for k in range(0, len(idx), size)]
    return np.concatenate([runs[j] for j in rng.permutation(len(runs))])


def group_ids(fs: FeatureSet, idx: np.ndarray) -> torch.Tensor:
    """Each clip's group in a batch: clips of one speaker form one group (0, 1, ... in order)."""
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(speaker_of(fs.utterances[int(i)]), len(ids)) for i in idx])


class BatchMaker:
    """Builds the batches of an epoch for one training set.

    Parameters
    ----------
    fs : the training clips (cached dB images and voiced bounds).
    pipeline : the model's preprocessing.
    batch_size : clips per batch (the ragged tail is dropped: BatchNorm needs > 1 sample).
    seed : run seed.
    augment : window augmentation ``(windows, rng) -> windows`` (SpecAugment), or None.
    mixup : a :class:`emovox.augment.Mixup`, or None.
    waves : each clip's waveform at the working rate, needed by ``wave_augment``.
    wave_augment : waveform augmentation ``(wave, rng) -> wave``, or None.
    speaker_p : probability that a clip is normalised with its speaker's statistics instead of
        its own (``"bins"`` normalisation only): trains one model for both protocols.
    balance : ``"sampler"`` to draw classes equally often; anything else keeps the data's mix.
    speaker_groups : clips of one speaker drawn together in runs of this many, each batch's clips
        grouped by speaker (speaker-centred training, :mod:`.centring`); 0: clips drawn alone.
    speaker_labels : each clip's training speaker as an index (speaker-adversarial training).
    intensity_labels : each clip's intensity as an index (the intensity head).
    soft : each clip's soft target ``[N, C]`` from the teachers (distillation), or None.
    paired : also a window of each clip's clean recording (the cached image), neither
        waveform- nor SpecAugmented: the second view of consistency training.
    """

    def __init__(self, fs: FeatureSet, pipeline: Preprocessing, batch_size: int, seed: int, *, augment=None,
                 mixup=None, waves: list[np.ndarray] | None = None, wave_augment=None, speaker_p: float = 0.0,
                 balance: str = "none", soft: torch.Tensor | None = None, paired: bool = False,
                 speaker_groups: int = 0, speaker_labels: bool = False, intensity_labels: bool = False) -> None:
        if wave_augment is not None and waves is None:
            raise ValueError("waveform augmentation needs the clips' waveforms")
        if speaker_groups and (speaker_groups < 2 or mixup is not None or balance == "sampler"):
            raise ValueError("speaker groups need at least 2 clips each and do not combine with mixup or "
                             "the class sampler (both redraw the clips)")
        if speaker_groups and batch_size % speaker_groups:
            raise ValueError(f"a batch of {batch_size} clips does not hold whole speaker groups of {speaker_groups}")
        if paired and (mixup is not None or speaker_p > 0):
            raise ValueError("a clean view per clip (consistency) does not combine with mixup or speaker references")
        self.fs, self.pipeline, self.batch_size, self.seed = fs, pipeline, batch_size, seed
        self.augment, self.mixup, self.waves, self.wave_augment = augment, mixup, waves, wave_augment
        self.speaker_p, self.balance, self.soft, self.paired = speaker_p, balance, soft, paired
        self.speaker_groups = speaker_groups
        self.speaker_ids = None
        if speaker_labels:
            index = speaker_index(fs)
            self.speaker_ids = torch.tensor([index[s] for s in fs.speakers])
        self.intensities = intensity_targets(fs.utterances) if intensity_labels else None
        self.extractor = FeatureExtractor(pipeline.features)
        self.bins_mode = pipeline.features.normalize == "bins"
        self.speakers = speaker_stats(fs) if self.bins_mode and speaker_p > 0 else {}
        self.own = [Stats.of(img, *b) for img, b in zip(fs.images, fs.bounds)] if self.speakers else []

    def __len__(self) -> int:
        return max(1, len(self.fs) // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch``. With waveform augmentation they are made one batch ahead in a
        background thread (decoding-side work that numpy, soxr and PyAV run outside the GIL), so
        the augmentation overlaps the training step; the order and content stay the same."""
        if self.wave_augment is None:
            yield from self._make(epoch)
            return
        yield from _prefetch(self._make(epoch), depth=2)

    def _make(self, epoch: int) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, epoch])
        order = self._order(rng)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            windows, refs = zip(*(self._window(int(i), rng) for i in idx))
            windows = torch.stack(windows)
            if self.augment is not None:
                windows = self.augment(windows, rng)
            y = torch.from_numpy(self.fs.labels[idx])
            soft = self.soft[torch.from_numpy(idx)] if self.soft is not None else None
            stats = _stacked(refs)
            groups = group_ids(self.fs, idx) if self.speaker_groups else None
            speakers = self.speaker_ids[torch.from_numpy(idx)] if self.speaker_ids is not None else None
            intensity = self.intensities[torch.from_numpy(idx)] if self.intensities is not None else None
            if self.paired:
                clean, clean_refs = zip(*(self._window(int(i), rng, clean=True) for i in idx))
                yield Batch(windows, y, stats, soft=soft, clean=torch.stack(clean), clean_stats=_stacked(clean_refs),
                            groups=groups, speakers=speakers, intensity=intensity)
            elif self.mixup is not None:  # windows and references blended alike, as dB
                lam, perm = self.mixup.draw(len(windows), rng)
                mixed = lam * windows + (1.0 - lam) * windows[perm]
                if stats is not None:
                    stats = Stats(lam * stats.mean + (1 - lam) * stats.mean[perm],
                                  lam * stats.std + (1 - lam) * stats.std[perm])
                if soft is not None:
                    soft = lam * soft + (1 - lam) * soft[perm]
                yield Batch(mixed, y, stats, y[perm], lam, soft)
            else:
                yield Batch(windows, y, stats, soft=soft, groups=groups, speakers=speakers, intensity=intensity)

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        """The clips of an epoch in the order its batches take them."""
        if self.speaker_groups:
            return speaker_group_order(self.fs, rng, self.speaker_groups)
        return class_order(self.fs, rng, self.balance)

    def endless(self, start: int = 10_000) -> Iterator[Batch]:
        """Batches forever (the LR range test), from epochs distinct from training's."""
        epoch = start
        while True:
            yield from self.epoch(epoch)
            epoch += 1

    def _window(self, i: int, rng: np.random.Generator, clean: bool = False) -> tuple[torch.Tensor, Stats | None]:
        """One random window of clip ``i`` (``clean``: of its recording as it is, even when
        waveforms are augmented) and (bins mode) its reference; the draws from ``rng`` are the
        same in every mode, so switching normalisation never changes which windows come."""
        clip, kind = self.pipeline.clip_frames, self.pipeline.features.kind
        if self.wave_augment is None or clean:
            db, (first, end) = self.fs.images[i], self.fs.bounds[i]
        else:
            db, (first, end) = self._augmented_image(i, rng)
        window = random_window(db, first, end, clip, rng, kind)
        if not self.bins_mode:
            return window, None
        own = Stats.of(db, first, end)
        if self.speakers and rng.random() < self.speaker_p:
            spk, clean = self.speakers[speaker_of(self.fs.utterances[i])], self.own[i]
            # the speaker's reference moved by what augmentation did to this clip, as if the
            # whole session had gone through the same room and microphone
            own = Stats(spk.mean + own.mean - clean.mean, spk.std * own.std / clean.std.clamp_min(1e-5))
        return window, own

    def _augmented_image(self, i: int, rng: np.random.Generator) -> tuple[torch.Tensor, tuple[int, int]]:
        """Clip ``i`` augmented: its dB image and voiced frames, found on the augmented audio
        as prediction would find them (noise or a quieter room moves them)."""
        wave = self.wave_augment(self.waves[i], rng)
        return self.pipeline.analyse(wave, self.extractor)


def _stacked(refs: tuple[Stats | None, ...]) -> Stats | None:
    """A batch's references as one :class:`Stats` (None outside ``bins`` normalisation)."""
    if refs[0] is None:
        return None
    return Stats(torch.stack([r.mean for r in refs]), torch.stack([r.std for r in refs]))


def _prefetch(batches: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run ``batches`` in a thread, ``depth`` items ahead; errors surface in the consumer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            with torch.inference_mode(False), torch.no_grad():
                for b in batches:
                    while not stop.is_set():
                        try:
                            q.put(b, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
        except BaseException as err:  # handed to the consumer
            q.put(err)
            return
        q.put(done)

    thread = threading.Thread(target=work, name="emovox-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
