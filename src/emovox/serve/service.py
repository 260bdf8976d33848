"""The work behind each endpoint, run in an inference thread: decode, predict or build the
timeline, draw the mel-spectrogram. Plain dicts out (see :mod:`.schemas`).

Nothing here re-implements a step of the library: decoding is :mod:`emovox.audio`;
predictions (with their no-speech answer) and timelines are the :class:`~emovox.Recognizer`'s,
and the spectrogram is the model's own :class:`~emovox.features.FeatureExtractor` output.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import threading
import time
from pathlib import Path

import numpy as np

from .. import audio

#: The spectrogram image is at most this many columns wide (max-pooled over time).
SPECTROGRAM_WIDTH = 600


class TooLong(Exception):
    """A recording longer than the server's limit."""

    def __init__(self, seconds: float | None, limit: float) -> None:
        what = f"{seconds:.1f} s" if seconds is not None else "longer than that"
        super().__init__(f"the recording is {what}; this server accepts up to {limit:g} s")
        self.seconds, self.limit = seconds, limit


class Service:
    """One loaded :class:`~emovox.Recognizer` and what the endpoints need of it.

    Parameters
    ----------
    recognizer : the loaded model.
    model_path : its folder or ``.onnx`` file (``None``: the bundled model), for ``/v1/model``.
    max_seconds : longest recording accepted.
    speaker_recognizer : answers speaker-adaptive timelines in place of a ``recognizer`` that
        adapts only its answers (the bundled speaker-adaptive model beside the bundled model);
        ``None``: ``recognizer`` does.
    """

    def __init__(self, recognizer, model_path=None, *, max_seconds: float = 600.0, speaker_recognizer=None) -> None:
        from ..inference.recognizer import BUNDLED_MODEL, BUNDLED_SPEAKER_MODEL

        self.rec = recognizer
        self.path = Path(model_path) if model_path is not None else BUNDLED_MODEL
        self.max_seconds = max_seconds
        self.info = describe(recognizer, self.path)
        # a model that adapts its features answers itself; beside another, the bundled
        # speaker-adaptive model does when given; else the model itself, on its answers
        own = getattr(recognizer, "adapts_to_speakers", False) or speaker_recognizer is None
        self.speaker_rec = recognizer if own else speaker_recognizer
        self.info["speaker_model_id"] = (self.info["model_id"] if own
                                         else _model_id(self.speaker_rec, BUNDLED_SPEAKER_MODEL))
        self.info["speaker_adaptation"] = getattr(self.speaker_rec, "speaker_adaptation", "answers")
        from ..features import FeatureExtractor

        self._extractor = FeatureExtractor(self.info["_mel"])  # now, not on the first request (librosa import)
        self._by_emotions: dict = {}  # answer label sets asked for (?emotions=), each a recognizer on self.rec's backend
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ input
    def check_header(self, path: Path) -> float | None:
        """Duration from the file's header, refused early when over the limit (cheap: the
        file is not decoded). ``None`` when the header does not say (e.g. MediaRecorder webm)."""
        seconds = audio.duration(path)
        if seconds is not None and seconds > self.max_seconds:
            raise TooLong(seconds, self.max_seconds)
        return seconds

    def decode(self, path: Path) -> np.ndarray:
        """The recording at the model's rate, decoded block by block and stopped as soon as it
        passes the limit (a header can lie or be missing). Raises AudioError or TooLong."""
        rate = self.rec.sample_rate
        limit = int(self.max_seconds * rate)
        blocks, n = [], 0
        for block in audio.stream(path, rate, block_seconds=10.0):
            n += len(block)
            if n > limit:
                raise TooLong(None, self.max_seconds)
            blocks.append(block)
        return np.concatenate(blocks)

    # ------------------------------------------------------------------ answers
    def answering(self, emotions: tuple[str, ...] | None, speaker_norm: bool = False):
        """The recognizer that answers among ``emotions`` (``None``: the model's own): the loaded
        one (:attr:`speaker_rec` with ``speaker_norm``), or one more around the same backend (no
        second model in memory); a bad list raises ``ValueError`` before any audio is read."""
        base = self.speaker_rec if speaker_norm else self.rec
        if emotions is None:
            return base
        if not hasattr(base, "with_emotions"):
            raise ValueError("this server's recognizer cannot answer among a label set")
        key = (id(base), tuple(emotions))
        with self._lock:
            rec = self._by_emotions.get(key)
            if rec is None:
                if len(self._by_emotions) >= 64:  # clients' lists are free-form: keep the cache bounded
                    self._by_emotions.clear()
                rec = self._by_emotions[key] = base.with_emotions(key[1])
        return rec

    def predict(self, path: Path, spectrogram: bool = False, emotions: tuple[str, ...] | None = None) -> dict:
        start = time.perf_counter()
        rec = self.answering(emotions)
        wave = self.decode(path)
        pred = rec.predict(wave, sample_rate=rec.sample_rate)  # the no-speech answer is the Recognizer's
        out = {**pred.to_dict(), "duration": round(len(wave) / self.rec.sample_rate, 3),
               "model_id": self.info["model_id"]}
        del out["path"]
        out["confidence"] = None if pred.confidence is None else round(pred.confidence, 4)
        if pred.probabilities is not None:
            out["probabilities"] = {k: round(float(v), 4) for k, v in pred.probabilities.items()}
        out["spectrogram"] = self.spectrogram(wave) if spectrogram else None
        out["inference_ms"] = round(1000 * (time.perf_counter() - start), 1)
        return out

    def timeline(self, path: Path, spectrogram: bool = False, speaker_norm: bool = False,
                 emotions: tuple[str, ...] | None = None) -> dict:
        start = time.perf_counter()
        rec = self.answering(emotions, speaker_norm)
        wave = self.decode(path)
        tl = rec.timeline(wave, sample_rate=rec.sample_rate, speaker_norm=speaker_norm)
        out = tl.to_dict()
        out.pop("source", None)
        out["speech"] = any(s["label"] != "silence" for s in out["segments"])
        out["model_id"] = self.info["speaker_model_id" if speaker_norm else "model_id"]
        out["spectrogram"] = self.spectrogram(wave) if spectrogram else None
        out["inference_ms"] = round(1000 * (time.perf_counter() - start), 1)
        return out

    def spectrogram(self, wave: np.ndarray) -> dict:
        """The mel-spectrogram (dB) of the model's feature settings as a small PNG, base64."""
        import torch

        config = self._extractor.config
        with torch.inference_mode():
            db = self._extractor.power_db(torch.from_numpy(np.ascontiguousarray(wave))[None])[0].numpy()
        frames = db.shape[1]
        step = -(-frames // SPECTROGRAM_WIDTH)
        if step > 1:  # max-pool over time: short events stay visible
            pad = (-frames) % step
            db = np.concatenate([db, np.repeat(db[:, -1:], pad, axis=1)], axis=1)
            db = db.reshape(db.shape[0], -1, step).max(axis=2)
        return {"png_base64": base64.b64encode(_png(db, config.top_db)).decode("ascii"), "width": db.shape[1],
                "height": db.shape[0], "seconds": round(len(wave) / config.sample_rate, 3),
                "n_mels": config.n_mels, "hop_length": config.hop_length * step, "sample_rate": config.sample_rate}


def _png(db: np.ndarray, top_db: float) -> bytes:
    """dB image ``[bins, frames]`` → PNG bytes, low frequencies at the bottom, magma colours."""
    import matplotlib
    from PIL import Image

    hi = float(db.max())
    x = np.clip((db - (hi - top_db)) / max(top_db, 1e-6), 0, 1)[::-1]
    rgb = (matplotlib.colormaps["magma"](x)[..., :3] * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# ---------------------------------------------------------------- /v1/model


def describe(rec, path: Path) -> dict:
    """Labels, preprocessing, calibration and model-card fields of the loaded model."""
    from ..features import FeatureConfig

    info = {"model_id": _model_id(rec, path), "backend": rec.backend.name, "labels": list(rec.labels),
            "sample_rate": rec.sample_rate, "clip_seconds": rec.clip_seconds,
            "min_confidence": rec.min_confidence, "min_speech_seconds": getattr(rec, "min_speech_seconds", None),
            "vad_threshold": getattr(rec, "vad_threshold", None),
            "measure_speech": getattr(rec, "measure_speech", False), "calibration": rec.calibration or {}}
    members = []
    if path.is_dir() and (path / "config.json").is_file():
        cfg = json.loads((path / "config.json").read_text())
        names = cfg.get("members") or [""]
        for name in names:
            member = json.loads(((path / name) if name else path).joinpath("config.json").read_text())
            members.append({"name": name or cfg.get("provenance", {}).get("name", path.name),
                            "model": member.get("model", {}), "preprocessing": member.get("preprocessing", {})})
        if not info["calibration"]:  # an ensemble shares one temperature, kept by each member
            first = (path / names[0]) if names[0] else path
            info["calibration"] = cfg.get("calibration") or json.loads((first / "config.json").read_text()).get(
                "calibration", {})
    info["members"] = members
    card = path / "MODEL_CARD.md" if path.is_dir() else None
    info["card"] = model_card(card.read_text()) if card is not None and card.is_file() else {}
    feats = [m["preprocessing"].get("features", {}) for m in members]  # a mel member's, else the first's STFT and bands
    mel = next((f for f in feats if f.get("kind") == "mel"), feats[0] if feats else None)
    base = FeatureConfig.from_dict(mel) if mel else FeatureConfig(sample_rate=rec.sample_rate)
    info["_mel"] = dataclasses.replace(base, kind="mel", normalize=False, deltas=False)
    return info


def _model_id(rec, path: Path) -> str:
    session = getattr(rec.backend, "session", None)
    if session is not None:
        meta = session.get_modelmeta().custom_metadata_map
        if "model_id" in meta:
            return meta["model_id"]
    if path.is_dir() and (path / "config.json").is_file():
        from ..inference.export import model_id

        return model_id(path)
    return path.stem


def model_card(text: str) -> dict[str, str]:
    """The card's title and its bold-headed paragraphs (``**Limits.** ...``) as plain text."""
    out = {}
    title = re.search(r"^#\s+(.+)$", text, re.M)
    if title:
        out["title"] = title.group(1).strip()
    for m in re.finditer(r"^\*\*([^*\n]+?)\.\*\*\s*(.+?)(?=\n\s*\n|\Z)", text, re.M | re.S):
        key = re.sub(r"[^a-z0-9]+", "_", m.group(1).lower()).strip("_")
        out[key] = re.sub(r"\s+", " ", m.group(2).replace("**", "")).strip()
    return out
