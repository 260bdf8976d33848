"""Audio → model windows → probabilities: the sequence every path shares.

``features (dB image of the whole clip) → voiced frames (silence trimming) → fixed-width
windows → per-window normalisation → model``. Training takes one window at a random position
inside the voiced part; prediction averages the model over windows covering it. Everything
after decoding is written in tensor operations with no data-dependent shapes, so
:class:`ClipClassifier` — the whole path from waveform to probabilities — exports to one
ONNX graph, and the torch backend runs the very same module, batched over many clips
(:func:`predict_clips`: validation, evaluation and the Recognizer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .features import FeatureConfig, FeatureExtractor, Stats
from .labels import EMOTIONS


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing settings: stored with every model (``preprocessing`` in its
    ``config.json``) and a section of a run's config (``preprocessing:``).

    Parameters
    ----------
    features : the feature image settings.
    trim_db : frames whose energy is more than this many dB below the loudest frame are
        silence at the clip's ends (``None``: keep everything). RAVDESS clips carry ~1.5 s of it.
    clip_seconds : width of the model's input window; prediction windows overlap by half.
    margin_seconds : audio kept either side of the voiced part.
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    trim_db: float | None = 30.0
    clip_seconds: float = 2.5
    margin_seconds: float = 0.05

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def clip_frames(self) -> int:
        return self.features.frames(int(round(self.clip_seconds * self.sample_rate)))

    @property
    def hop_frames(self) -> int:
        return max(1, self.clip_frames // 2)

    @property
    def margin_frames(self) -> int:
        return int(round(self.margin_seconds * self.sample_rate / self.features.hop_length))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["features"] = self.features.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        d = dict(d)
        feats = FeatureConfig.from_dict(d.pop("features", {}))
        names = {f.name for f in dataclasses.fields(cls)} - {"features"}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown preprocessing settings: {', '.join(sorted(unknown))}")
        return cls(features=feats, **d)

    def key(self) -> str:
        """Cache key covering every setting that changes a cached image or its bounds."""
        return f"{self.features.key()}-t{self.trim_db}-m{self.margin_seconds}"

    def extractor(self) -> FeatureExtractor:
        return FeatureExtractor(self.features)

    def analyse(self, wave: np.ndarray | torch.Tensor, extractor: FeatureExtractor | None = None):
        """One clip → its dB image ``[bins, frames]`` and voiced frame range ``(first, end)``."""
        extractor = extractor or self.extractor()
        wave = torch.as_tensor(np.ascontiguousarray(wave, dtype=np.float32)) if not torch.is_tensor(wave) else wave
        with torch.no_grad():
            db, energy = extractor.analyse(wave.float()[None])
        first, end = voiced_bounds(energy[0], self.trim_db, self.margin_frames)
        return db[0], (int(first), int(end))


def voiced_bounds(energy_db: torch.Tensor, trim_db: float | None, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last frame within ``trim_db`` of the loudest, widened by ``margin``:
    scalars for one clip's energies ``[frames]``, ``[batch]`` for ``[batch, frames]``.

    Like ``librosa.effects.trim`` but on the feature frames, in tensor ops (exportable).
    A clip that is silent throughout is all "voiced" (every frame equals the maximum).
    """
    n = energy_db.shape[-1]
    idx = torch.arange(n, device=energy_db.device)
    if trim_db is None:
        rows = energy_db.shape[:-1]
        return idx[0].expand(rows), (idx[-1] + 1).expand(rows)
    voiced = energy_db > energy_db.amax(-1, keepdim=True) - trim_db
    first = torch.where(voiced, idx, n).amin(-1)
    last = torch.where(voiced, idx, -1).amax(-1)
    return (first - margin).clamp(min=0), (last + 1 + margin).clamp(max=n)


def window_plan(first: torch.Tensor, end: torch.Tensor, n_frames: int, clip: int, hop: int):
    """Start frames and weights (1 or 0) of the prediction windows of one clip ``[K]`` (or of a
    batch of equal-length clips: ``first``, ``end`` ``[batch]`` → ``[batch, K]``).

    A voiced part no longer than ``clip`` gets one window centred on it; a longer one gets
    windows every ``hop`` frames and a last one aligned to its end. The number of candidate
    windows depends only on the clip length (``max(n_frames - clip, 0) // hop + 2``, enough for
    any voiced part); the ones not needed get weight 0. Starts may run into the padding after the clip.
    """
    k = torch.arange(torch.sym_max(n_frames - clip, 0) // hop + 2, device=first.device)
    first, end = first.unsqueeze(-1), end.unsqueeze(-1)  # against k: [1] or [batch, 1]
    span = end - first
    short = span <= clip
    centred = (first - torch.div(clip - span, 2, rounding_mode="floor")).clamp(min=0)
    sliding = torch.minimum(first + k * hop, end - clip)
    starts = torch.where(short, centred, sliding)
    previous_reached_end = first + (k - 1) * hop + clip >= end
    weights = ((k == 0) | (~short & ~previous_reached_end)).float()
    return starts, weights


def pad_for_windows(db: torch.Tensor, clip: int, kind: str) -> torch.Tensor:
    """Append ``clip`` frames of silence to ``[..., bins, frames]`` so any window fits: the
    image's floor for dB images; for MFCC (where no single value is silence) copies of the
    clip's quietest frame (lowest c0)."""
    if kind == "mfcc":
        quietest = db[..., 0, :].argmin(-1)  # [] or [batch]
        index = quietest[..., None, None].expand(*db.shape[:-1], 1)
        pad = db.gather(-1, index).expand(*db.shape[:-1], clip)
    else:
        pad = db.amin(dim=(-2, -1), keepdim=True).expand(*db.shape[:-1], clip)
    return torch.cat([db, pad], dim=-1)


def gather_windows(padded: torch.Tensor, starts: torch.Tensor, clip: int) -> torch.Tensor:
    """``[..., bins, frames]`` and start frames ``[..., K]`` → windows ``[..., K, bins, clip]``."""
    idx = starts.unsqueeze(-1) + torch.arange(clip, device=starts.device)  # [..., K, clip]
    if padded.dim() == 2:
        return padded[:, idx].permute(1, 0, 2)
    # index clip and frame together: an expanded copy per window would cost memory growing
    # with the square of the clip's length in the exported graph
    rows = torch.arange(padded.shape[0], device=padded.device)[:, None, None]
    return padded.transpose(-1, -2)[rows, idx].transpose(-1, -2)


def random_window(db: torch.Tensor, first: int, end: int, clip: int, rng: np.random.Generator,
                  kind: str = "mel") -> torch.Tensor:
    """A training window ``[bins, clip]``: anywhere inside a voiced part longer than ``clip``,
    or anywhere that contains a shorter one."""
    lo, hi = (first, end - clip) if end - first > clip else (max(0, end - clip), first)
    start = int(rng.integers(lo, hi + 1))
    padded = pad_for_windows(db, clip, kind) if start + clip > db.shape[-1] else db
    return padded[:, start:start + clip]


def reference_stats(db: torch.Tensor, first, end, speaker: Stats | None = None) -> Stats:
    """The ``"bins"`` normalisation's reference for one clip: the speaker's statistics when given
    (speaker-adaptive), else the clip's own voiced frames ``[first, end)``."""
    return speaker if speaker is not None else Stats.of(db, first, end)


class ClipWindows(NamedTuple):
    """One clip's prediction windows and where they come from."""

    windows: torch.Tensor  # [K, bins, clip] un-normalised dB windows
    weights: torch.Tensor  # [K] 1 for a window that counts, 0 for an unneeded candidate
    starts: torch.Tensor   # [K] first frame of each window on the clip's image
    image: torch.Tensor    # [bins, frames] the clip's dB image
    first: torch.Tensor    # voiced frames: first ...
    end: torch.Tensor      # ... and one past the last


def clip_windows(db: torch.Tensor, first, end, pipeline: Preprocessing) -> ClipWindows:
    """The prediction windows of one clip's dB image with voiced frames ``[first, end)``
    (or of a batch of equal-length clips: an extra leading dimension everywhere):
    planning, padding and gathering, the one copy of them."""
    first, end = torch.as_tensor(first), torch.as_tensor(end)
    clip = pipeline.clip_frames
    starts, weights = window_plan(first, end, db.shape[-1], clip, pipeline.hop_frames)
    padded = pad_for_windows(db, clip, pipeline.features.kind)
    return ClipWindows(gather_windows(padded, starts, clip), weights, starts, db, first, end)


def clip_probabilities(logits: torch.Tensor, weights: torch.Tensor, temperature, owner: torch.Tensor | None = None,
                       n_clips: int = 1) -> torch.Tensor:
    """Window logits ``[W, n_classes]`` → clip probabilities: ``softmax(logits / temperature)``,
    then each clip's mean over its windows weighted by ``weights``. Without ``owner`` (the clip
    index of each window) the windows are one clip's and the result is ``[n_classes]``;
    with it, ``[n_clips, n_classes]``."""
    probs = torch.softmax(logits / temperature, dim=-1) * weights.unsqueeze(-1)
    if owner is None:  # [K, C] → [C]; equal-length clips [B, K, C] → [B, C]
        return probs.sum(-2) / weights.sum(-1, keepdim=True)
    total = torch.zeros(n_clips, probs.shape[1], dtype=probs.dtype).index_add_(0, owner, probs)
    return total / torch.zeros(n_clips, dtype=weights.dtype).index_add_(0, owner, weights).unsqueeze(1)


def ensemble_mean(member_probs: list):
    """An ensemble's probabilities: the plain mean of its members' (arrays or tensors alike)."""
    return sum(member_probs[1:], member_probs[0]) / len(member_probs)


class ClipClassifier(nn.Module):
    """Waveform ``[samples]`` at the working rate → probabilities ``[n_classes]``.

    The complete inference path in one module: features, trimming, windows, the network,
    softmax at the model's calibrated ``temperature`` and the weighted mean over windows.
    :func:`predict_clips` is its batched form, for many clips at once.
    """

    def __init__(self, model: nn.Module, pipeline: Preprocessing, temperature: float = 1.0,
                 labels: tuple[str, ...] = EMOTIONS, speaker_temperature: float | None = None) -> None:
        super().__init__()
        self.extractor = pipeline.extractor()
        self.model = model
        self.pipeline = pipeline
        self.labels = tuple(labels)
        self.register_buffer("temperature", torch.tensor(float(temperature)), persistent=False)
        # judged against a speaker's reference, the logits have another scale: their own temperature
        self.speaker_temperature = float(temperature if speaker_temperature is None else speaker_temperature)

    @classmethod
    def from_bundle(cls, bundle) -> "ClipClassifier":
        """A model folder's classifier, with its calibration (if it has one)."""
        cal = bundle.extra.get("calibration", {})
        return cls(bundle.model, bundle.pipeline, cal.get("temperature", 1.0), bundle.labels,
                   cal.get("speaker_temperature"))

    def analyse(self, wave: np.ndarray | torch.Tensor):
        """One clip → its dB image and voiced frame range (the per-clip work before batching)."""
        return self.pipeline.analyse(wave, self.extractor)

    def windows(self, wave: torch.Tensor) -> ClipWindows:
        """A waveform's prediction windows: features, trimming, then :func:`clip_windows`
        (for a :attr:`clip_level` model, one window: the voiced frames)."""
        db, energy = self.extractor.analyse(wave.unsqueeze(0))
        first, end = voiced_bounds(energy[0], self.pipeline.trim_db, self.pipeline.margin_frames)
        if self.clip_level:
            one = torch.ones(1)
            return ClipWindows(db[0][:, first:end].unsqueeze(0), one, first.reshape(1), db[0], first, end)
        return clip_windows(db[0], first, end, self.pipeline)

    def window_logits(self, windows: torch.Tensor, stats=None) -> torch.Tensor:
        """Un-normalised dB windows ``[K, bins, clip]`` → the network's logits ``[K, n_classes]``.
        ``stats``: each window's reference for the ``"bins"`` normalisation (:func:`reference_stats`),
        or a speaker's :class:`~emovox.models.functionals.Reference` for a functionals model."""
        if self.clip_level:
            return self.model.classify(self.model.functionals(windows), stats).float()
        x = self.extractor.finish(windows, stats).contiguous(memory_format=torch.channels_last)
        return self.model(x).float()

    @property
    def clip_level(self) -> bool:
        """Whether the model judges a clip's voiced frames whole (utterance functionals) rather
        than fixed windows."""
        return bool(getattr(self.model, "clip_level", False))

    @property
    def uses_references(self) -> bool:
        """Whether a speaker reference can replace the per-clip standardisation (``normalize:
        bins`` networks and functionals models)."""
        return self.pipeline.features.normalize == "bins" or self.clip_level

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """One clip ``[samples]`` → ``[n_classes]``; equal-length clips ``[batch, samples]`` (a
        timeline's windows) → ``[batch, n_classes]``, each as if alone, in one pass."""
        waves = wave.unsqueeze(0) if wave.dim() == 1 else wave
        db, energy = self.extractor.analyse(waves)
        first, end = voiced_bounds(energy, self.pipeline.trim_db, self.pipeline.margin_frames)  # [batch]
        if self.clip_level:  # the whole image and its voiced bounds: no data-dependent slice to export
            logits = self.model.classify(self.model.batch_functionals(db, first, end)).float().unsqueeze(1)
            weights = torch.ones(logits.shape[:2])
        else:
            w = clip_windows(db, first, end, self.pipeline)  # [batch, K, ...]
            n, k = w.weights.shape
            stats = reference_stats(db, first, end).expand(k) if self.uses_references else None
            logits = self.window_logits(w.windows.reshape(n * k, *w.windows.shape[2:]), stats).reshape(n, k, -1)
            weights = w.weights
        probs = clip_probabilities(logits, weights, self.temperature)
        return probs[0] if wave.dim() == 1 else probs


class EnsembleClassifier(nn.Module):
    """Several :class:`ClipClassifier` (e.g. mel, MFCC and spectrogram models) as one:
    the mean of their calibrated probabilities. Exports to one ONNX graph like a single model."""

    def __init__(self, members: list[ClipClassifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return ensemble_mean([m(wave) for m in self.members])


# ---------------------------------------------------------------- batched: many clips at once


def window_logits(classifier: ClipClassifier, images: list[torch.Tensor], bounds: list[tuple[int, int]], *,
                  batch_size: int = 64, speakers: list[Stats | None] | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits of every prediction window of the clips ``[W, n_classes]``, with each window's
    weight and clip index (calibration needs them before the softmax). ``images`` and
    ``bounds`` are the clips' dB images and voiced frames (:meth:`ClipClassifier.analyse`);
    ``speakers`` each clip's speaker statistics (speaker-adaptive ``"bins"`` normalisation)."""
    if not images:
        return torch.zeros(0, len(classifier.labels)), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    if classifier.clip_level:
        return _clip_level_logits(classifier, images, bounds, speakers)
    windows, weights, owner, refs = [], [], [], []
    for i, (db, (first, end)) in enumerate(zip(images, bounds)):
        w = clip_windows(db, first, end, classifier.pipeline)
        keep = w.weights > 0  # skip the zero-weight candidates: same result, less work
        n = int(keep.sum())
        windows.append(w.windows[keep])
        weights.append(w.weights[keep])
        owner.append(torch.full((n,), i))
        if classifier.uses_references:
            refs.append(reference_stats(db, first, end, speakers[i] if speakers else None).expand(n))
    windows, weights, owner = torch.cat(windows), torch.cat(weights), torch.cat(owner)
    means, stds = (torch.cat([r.mean for r in refs]), torch.cat([r.std for r in refs])) if refs else (None, None)

    def stats(a: int, b: int) -> Stats | None:
        return Stats(means[a:b], stds[a:b]) if means is not None else None

    was_training = classifier.training
    classifier.eval()
    with torch.inference_mode():
        logits = torch.cat([classifier.window_logits(windows[s:s + batch_size], stats(s, s + batch_size))
                            for s in range(0, len(windows), batch_size)])
    classifier.train(was_training)
    return logits, weights, owner


def _clip_level_logits(classifier: ClipClassifier, images, bounds, speakers):
    """:func:`window_logits` of a functionals model: one "window" per clip, its voiced frames;
    each clip standardised with its speaker's reference where one is given."""
    model = classifier.model
    with torch.inference_mode():
        f = model.functionals(images, bounds)
        reference = None
        if speakers and any(s is not None for s in speakers):
            reference = (torch.stack([s.mean if s is not None else model.center for s in speakers]),
                         torch.stack([s.std if s is not None else model.scale for s in speakers]))
        logits = model.classify(f, reference).float()
    n = len(images)
    return logits, torch.ones(n), torch.arange(n)


def predict_clips(classifier: ClipClassifier, images: list[torch.Tensor], bounds: list[tuple[int, int]], *,
                  batch_size: int = 64, speakers: list[Stats | None] | None = None) -> np.ndarray:
    """Probabilities ``[n_clips, n_classes]`` of the clips: :class:`ClipClassifier`'s result for
    each, with the windows of many clips packed into each batch."""
    logits, weights, owner = window_logits(classifier, images, bounds, batch_size=batch_size, speakers=speakers)
    if not images:
        return logits.numpy()
    adaptive = speakers is not None and any(s is not None for s in speakers)
    temperature = classifier.speaker_temperature if adaptive else classifier.temperature
    return clip_probabilities(logits, weights, temperature, owner, len(images)).numpy()


def predict_members(classifiers: list[ClipClassifier], analysed: list[list],
                    speakers: list[Stats] | None = None) -> np.ndarray:
    """Probabilities ``[n_clips, n_classes]`` of an ensemble (or of one model: a list of one);
    ``analysed[clip][member]`` is that member's :meth:`ClipClassifier.analyse` of the clip;
    ``speakers[member]``: one speaker reference for all the clips (speaker-adaptive)."""
    if not analysed:
        return np.zeros((0, len(classifiers[0].labels)), np.float32)
    return ensemble_mean([predict_clips(c, [a[i][0] for a in analysed], [a[i][1] for a in analysed],
                                        speakers=[speakers[i]] * len(analysed) if speakers else None)
                          for i, c in enumerate(classifiers)])


def speaker_adaptation(classifiers: list[ClipClassifier]) -> str:
    """How a model (an ensemble's members) is adapted to a speaker: ``"features"`` when every
    member takes a speaker's statistics (``bins`` networks, functionals models), else
    ``"answers"``: the speaker's mean answer (:mod:`emovox.adaptation`)."""
    return "features" if all(c.uses_references for c in classifiers) else "answers"


def speaker_references(classifiers: list[ClipClassifier], analysed: list[list]) -> list[Stats]:
    """One speaker's reference per member, from several clips' :meth:`ClipClassifier.analyse`
    (their voiced frames pooled; audio only, no labels). Needs ``"bins"`` models."""
    if not analysed:
        raise ValueError("a speaker reference needs at least one clip")
    for c in classifiers:
        if not c.uses_references:
            raise ValueError("this model standardises each window on its own (normalize: "
                             f"{c.pipeline.features.normalize}); a speaker's feature statistics need a model "
                             "trained with normalize: bins, or a functionals model (the Recognizer adapts "
                             "any other model on its answers)")
    return [clip_references(c, [a[i][0] for a in analysed], [a[i][1] for a in analysed])
            for i, c in enumerate(classifiers)]


def speaker_feature_probabilities(classifier: ClipClassifier, images: list[torch.Tensor],
                                  bounds: list[tuple[int, int]], speakers: list) -> np.ndarray:
    """Probabilities of clips of several speakers (``speakers[i]``: clip ``i``'s), each clip
    standardised with its speaker's feature statistics from all their clips here (the
    speaker-adaptive protocol of an evaluation; needs a model that takes them)."""
    from .adaptation import indices_by

    refs = {s: clip_references(classifier, [images[i] for i in idx], [bounds[i] for i in idx])
            for s, idx in indices_by(speakers).items()}
    return predict_clips(classifier, images, bounds, speakers=[refs[s] for s in speakers])


def clip_references(classifier: ClipClassifier, images: list[torch.Tensor], bounds: list[tuple[int, int]]):
    """One reference from several clips (a speaker's; audio only): their voiced frames pooled
    (:class:`Stats`, ``"bins"`` networks) or their functional vectors' mean and spread
    (:class:`~emovox.models.functionals.Reference`, functionals models)."""
    if classifier.clip_level:
        from .models.functionals import Reference

        with torch.inference_mode():
            return Reference.of(classifier.model.functionals(images, bounds))
    return Stats.pool(images, bounds)
