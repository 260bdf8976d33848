"""Why the model decided: Grad-CAM (Selvaraju et al. 2017) on a ResNet stage, for every member.

The explained number is the clip probability ``predict`` gives: for an ensemble, the mean of
its members' calibrated, window-averaged probabilities. Its gradient reaches each member's
stage maps; each member's maps are weighted by the mean of those gradients, and the positive
part, upsampled to the window's time-frequency grid, says which regions of *that member's*
feature image pushed towards the emotion. Windows are put back at their positions on the
clip's image (overlaps averaged), so each map lines up with the image its member saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .pipeline import ClipClassifier, ClipWindows, clip_probabilities, ensemble_mean, predict_members


@dataclass
class FeatureMap:
    """One member's Grad-CAM map over its own feature image."""

    name: str                  # what the member looks at, e.g. "mel + deltas"
    image: np.ndarray          # [bins, frames] the feature image (dB; MFCC for mfcc models)
    heat: np.ndarray           # [bins, frames] relevance in [0, 1]
    kind: str                  # feature kind of the image
    hop_seconds: float         # seconds per frame
    voiced: tuple[int, int]    # voiced frame range the windows cover


@dataclass
class Explanation:
    """Grad-CAM of one clip: one :class:`FeatureMap` per ensemble member (one for a single
    model), the explained emotion and the clip's probabilities (exactly ``predict``'s)."""

    maps: list[FeatureMap]
    stage: int                 # ResNet stage the maps come from
    label: str                 # the explained emotion
    probabilities: dict[str, float]


def grad_cam(classifiers: list[ClipClassifier], wave: np.ndarray, target: str | None = None,
             stage: int | None = None) -> Explanation:
    """Grad-CAM of an ensemble (or of one model: a list of one) on one clip (mono, working rate).

    Parameters
    ----------
    classifiers : the members, as the torch backend runs them.
    wave : the clip.
    target : the emotion to explain; default the predicted one.
    stage : the ResNet stage whose maps are weighted (default the last, the classic choice; an
        earlier one is finer in time and frequency but less specific).
    """
    labels = classifiers[0].labels
    n_stages = [_n_stages(c.model) for c in classifiers]
    stage = min(n_stages) if stage is None else stage
    if not 1 <= stage <= min(n_stages):
        raise ValueError(f"stage must be between 1 and {min(n_stages)}, got {stage}")
    wave_t = torch.as_tensor(np.ascontiguousarray(wave, dtype=np.float32))
    with torch.no_grad():
        clips = [c.eval().windows(wave_t) for c in classifiers]
    # the probabilities predict() gives: the same batched path on the same images
    probs = predict_members(classifiers, [[(w.image, (int(w.first), int(w.end))) for w in clips]])[0]
    index = int(probs.argmax()) if target is None else labels.index(target)

    maps, member_probs = [], []
    with torch.enable_grad():
        for c, w in zip(classifiers, clips):
            keep = w.weights > 0
            logits, acts = _logits_and_stage_maps(c, w.windows[keep], stage)
            maps.append(acts)
            member_probs.append(clip_probabilities(logits, w.weights[keep], c.temperature))
        ensemble_mean(member_probs)[index].backward()
    return Explanation([_feature_map(c, w, acts) for c, w, acts in zip(classifiers, clips, maps)], stage,
                       labels[index], {lab: float(p) for lab, p in zip(labels, probs)})


def _n_stages(model) -> int:
    if not hasattr(model, "stages"):
        raise TypeError(f"{type(model).__name__} has no ResNet stages to explain")
    return len(model.stages())


def _logits_and_stage_maps(classifier: ClipClassifier, windows: torch.Tensor, stage: int):
    """The windows' logits through the classifier's own forward path, and the output of ResNet
    ``stage`` on the way (kept with its gradient by a forward hook)."""
    seen = []

    def keep(module, inputs, output):
        output.retain_grad()
        seen.append(output)

    hook = classifier.model.stages()[stage - 1].register_forward_hook(keep)
    try:
        logits = classifier.window_logits(windows)
    finally:
        hook.remove()
    return logits, seen[0]


def _feature_map(classifier: ClipClassifier, w: ClipWindows, acts: torch.Tensor) -> FeatureMap:
    """One member's map: the Grad-CAM of each window, put back where the window lies."""
    keep = w.weights > 0
    alpha = acts.grad.mean(dim=(2, 3), keepdim=True)                     # [K, C, 1, 1]
    cam = F.relu((alpha * acts).sum(1, keepdim=True)).detach()          # [K, 1, h, w]
    bins, n = w.image.shape
    clip = w.windows.shape[-1]
    cam = F.interpolate(cam, size=(bins, clip), mode="bilinear", align_corners=False)[:, 0]
    heat = torch.zeros(bins, n + clip)
    count = torch.zeros(n + clip)
    for s, weight, c in zip(w.starts[keep].tolist(), w.weights[keep].tolist(), cam):
        heat[:, s:s + clip] += weight * c
        count[s:s + clip] += weight
    heat = (heat / count.clamp(min=1e-9))[:, :n]
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else heat
    feats = classifier.pipeline.features
    name = feats.kind + (" + deltas" if feats.deltas else "")
    return FeatureMap(name, w.image.numpy(), heat.numpy(), feats.kind, feats.hop_length / feats.sample_rate,
                      (int(w.first), int(w.end)))
