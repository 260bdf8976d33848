"""Why the model decided: Grad-CAM (Selvaraju et al. 2017) on the ResNet's last stage.

For each prediction window, the last stage's feature maps are weighted by the mean gradient
of the clip's top-emotion probability with respect to them; the positive part, upsampled to
the window's time-frequency grid, says which regions pushed towards that emotion. Windows
are put back at their positions on the clip's feature image (overlaps averaged), so the map
lines up with the image the model saw. The clip probability is the one ``predict`` gives
(same windows, same weights, same calibration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .pipeline import ClipClassifier, gather_windows, pad_for_windows, voiced_bounds, window_plan


@dataclass
class Explanation:
    image: np.ndarray          # [bins, frames] the feature image (dB; MFCC for mfcc models)
    heat: np.ndarray           # [bins, frames] relevance in [0, 1]
    stage: int                 # ResNet stage the map comes from
    label: str                 # the explained emotion
    probabilities: dict[str, float]
    kind: str                  # feature kind of the image
    hop_seconds: float         # seconds per frame
    voiced: tuple[int, int]    # voiced frame range the windows cover


def grad_cam(classifier: ClipClassifier, wave: np.ndarray, labels, target: str | None = None,
             stage: int | None = None) -> Explanation:
    """Grad-CAM of ``classifier`` on one clip (mono, working rate); ``target`` defaults to the
    predicted emotion. ``stage`` picks the ResNet stage whose maps are weighted (default the
    last, the classic choice; an earlier one is finer in time and frequency but less specific)."""
    pipe = classifier.pipeline
    model = classifier.model
    if not hasattr(model, "n_stages"):
        raise TypeError(f"{type(model).__name__} has no ResNet stages to explain")
    stage = model.n_stages if stage is None else stage
    if not 1 <= stage <= model.n_stages:
        raise ValueError(f"stage must be between 1 and {model.n_stages}, got {stage}")
    classifier.eval()
    wave_t = torch.as_tensor(np.ascontiguousarray(wave, dtype=np.float32))
    with torch.no_grad():
        db, energy = classifier.extractor.analyse(wave_t[None])
        first, end = voiced_bounds(energy[0], pipe.trim_db, pipe.margin_frames)
    db = db[0]
    clip = pipe.clip_frames
    starts, weights = window_plan(first, end, db.shape[-1], clip, pipe.hop_frames)
    keep = weights > 0
    starts, weights = starts[keep], weights[keep]
    windows = gather_windows(pad_for_windows(db, clip, pipe.features.kind), starts, clip)

    x = classifier.extractor.finish(windows).detach().requires_grad_(False)
    with torch.enable_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for i in range(1, stage + 1):
            h = getattr(model, f"layer{i}")(h)
        maps = h
        maps.retain_grad()
        for i in range(stage + 1, model.n_stages + 1):
            h = getattr(model, f"layer{i}")(h)
        logits = model.fc(model.dropout(model.avgpool(h).flatten(1))).float()
        probs = torch.softmax(logits / classifier.temperature, dim=-1)
        clip_probs = (probs * weights[:, None]).sum(0) / weights.sum()
        index = int(clip_probs.argmax()) if target is None else list(labels).index(target)
        clip_probs[index].backward()
    alpha = maps.grad.mean(dim=(2, 3), keepdim=True)                   # [K, C, 1, 1]
    cam = F.relu((alpha * maps).sum(1, keepdim=True)).detach()          # [K, 1, h, w]
    cam = F.interpolate(cam, size=(db.shape[0], clip), mode="bilinear", align_corners=False)[:, 0]

    n = db.shape[-1]
    heat = torch.zeros(db.shape[0], n + clip)
    count = torch.zeros(n + clip)
    for s, w, c in zip(starts.tolist(), weights.tolist(), cam):
        heat[:, s:s + clip] += w * c
        count[s:s + clip] += w
    heat = (heat / count.clamp(min=1e-9))[:, :n]
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else heat
    return Explanation(db.numpy(), heat.numpy(), stage, list(labels)[index],
                       {lab: float(p) for lab, p in zip(labels, clip_probs.detach())}, pipe.features.kind,
                       pipe.features.hop_length / pipe.sample_rate, (int(first), int(end)))
