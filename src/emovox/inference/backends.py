"""Where the probabilities come from: PyTorch or onnxruntime, behind one small interface.

Both run the same inference path (:class:`emovox.pipeline.ClipClassifier`): the torch backend
calls it directly (windows of many clips batched together), the ONNX backend runs its export.
The ONNX backend imports neither torch nor librosa, so it starts fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..adaptation import MIN_CLIPS, AnswerReference, answer_reference, centre_answers
from ..models.folder import CONFIG_NAME, ONNX_NAME, fingerprint, load_members


class Backend:
    """What both backends share: speaker adaptation. A model that takes a speaker's feature
    statistics (:attr:`adapts_to_speakers`: ``normalize: bins`` networks, functionals models, on
    torch) is given them; any other model is judged against the speaker's usual answer
    (:mod:`emovox.adaptation`)."""

    adapts_to_speakers = False
    labels: tuple[str, ...]

    def speaker_reference(self, analysed: list):
        """One speaker's reference from at least :data:`~emovox.adaptation.MIN_CLIPS` analysed
        clips of that speaker (audio only)."""
        if len(analysed) < MIN_CLIPS:
            raise ValueError(f"a speaker reference needs at least {MIN_CLIPS} clips of speech (got {len(analysed)})")
        if self.adapts_to_speakers:
            return self._feature_reference(analysed)
        return answer_reference(self._probabilities(analysed), self.labels)

    def probabilities(self, analysed: list, speaker=None) -> np.ndarray:
        """Probabilities ``[n_clips, n_classes]`` of analysed clips; ``speaker``: a
        :meth:`speaker_reference` to judge them against (speaker-adaptive)."""
        if isinstance(speaker, AnswerReference):
            if speaker.labels is not None and tuple(speaker.labels) != tuple(self.labels):
                raise ValueError("this speaker reference was made by a model with other emotions "
                                 f"({', '.join(speaker.labels)}); make it with this model")
            return centre_answers(self._probabilities(analysed), speaker) if analysed else self._probabilities([])
        return self._probabilities(analysed, speaker)

    def adapted_probabilities(self, analysed: list) -> np.ndarray:
        """Several clips of one speaker, each judged against the reference of them all (one pass
        of the model when the reference is their mean answer)."""
        if self.adapts_to_speakers or len(analysed) < MIN_CLIPS:  # (too few clips: the reference's error)
            return self._probabilities(analysed, self.speaker_reference(analysed))
        probs = self._probabilities(analysed)
        return centre_answers(probs, answer_reference(probs, self.labels))

    @property
    def speaker_adaptation(self) -> str:
        """How a speaker reference is used: ``"features"`` (statistics replace each clip's own)
        or ``"answers"`` (the speaker's mean answer is subtracted)."""
        return "features" if self.adapts_to_speakers else "answers"


class TorchBackend(Backend):
    """A model folder (config.json + model.safetensors, or an ensemble of such folders) run
    with PyTorch. An ensemble averages its members' probabilities, as its ONNX export does."""

    name = "torch"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        from ..pipeline import ClipClassifier, speaker_adaptation
        from ..threads import configure_torch, inference_threads

        self.threads = inference_threads(threads)
        configure_torch(self.threads)
        self.members = load_members(folder)
        self.bundle = self.members[0]
        self.labels = self.bundle.labels
        self.sample_rate = self.bundle.pipeline.sample_rate
        self.clip_seconds = max(b.pipeline.clip_seconds for b in self.members)
        self.calibration = self.bundle.extra.get("calibration", {})
        self.classifiers = [ClipClassifier.from_bundle(b).eval() for b in self.members]
        self.adapts_to_speakers = speaker_adaptation(self.classifiers) == "features"

    def analyse(self, wave: np.ndarray) -> list:
        """Per-clip work that can run before batching: each member's dB image and voiced frames."""
        return [c.analyse(wave) for c in self.classifiers]

    def _probabilities(self, analysed: list, speaker=None) -> np.ndarray:
        from ..pipeline import predict_members

        return predict_members(self.classifiers, analysed, speaker)

    def _feature_reference(self, analysed: list) -> list:
        """One speaker's statistics (per member) from several analysed clips of that speaker."""
        from ..pipeline import speaker_references

        return speaker_references(self.classifiers, analysed)


class OnnxBackend(Backend):
    """A single ONNX graph (waveform → probabilities) run with onnxruntime. The graph
    standardises each clip on its own: speaker adaptation works on its answers."""

    name = "onnx"
    #: clips per session call: a speaker-adaptive timeline's reference covers a whole recording
    MAX_BATCH = 32

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        from ..threads import inference_threads, onnx_session_options

        self.threads = inference_threads(threads)
        path = Path(path)
        folder = path if path.is_dir() else None
        if folder is not None:
            path = folder / ONNX_NAME
        if not path.is_file():
            hint = f" --model {folder}" if folder is not None else ""
            raise FileNotFoundError(f"no ONNX model at {path}; create one with `emovox export{hint} -o {path}`")
        opts = onnx_session_options(self.threads, ort)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "labels" not in meta:
            raise ValueError(f"{path} is not an emovox ONNX export (no 'labels' metadata)")
        self.labels = tuple(json.loads(meta["labels"]))
        self.sample_rate = int(meta["sample_rate"])
        config = json.loads(meta.get("config", "{}"))
        self.clip_seconds = float(config.get("preprocessing", config).get("clip_seconds", 2.5))
        self.calibration = config.get("calibration", {})
        self.input_name = self.session.get_inputs()[0].name
        # older exports take one clip [samples]; newer ones [batch, samples] (several windows a call)
        self.batched = len(self.session.get_inputs()[0].shape) == 2
        if folder is not None and (folder / CONFIG_NAME).is_file() and "model_id" in meta:
            if not meta["model_id"].endswith("@" + fingerprint(folder)):
                raise ValueError(f"{path} was exported from another version of {folder} (its weights or "
                                 f"calibration changed); re-export it with `emovox export --model {folder} -o {path}`")

    def analyse(self, wave: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(wave, dtype=np.float32)

    def _probabilities(self, analysed: list, speaker=None) -> np.ndarray:
        if speaker is not None:
            raise ValueError("feature statistics of a speaker are for the torch backend (the ONNX graph "
                             "standardises each clip on its own)")
        if not analysed:
            return np.zeros((0, len(self.labels)), np.float32)
        if not self.batched:
            return np.stack([self.session.run(None, {self.input_name: w})[0] for w in analysed])
        from itertools import groupby

        # runs of equal-length clips (a timeline's windows) go in calls of at most MAX_BATCH, in order
        runs = [list(run) for _, run in groupby(analysed, key=len)]
        return np.concatenate([self.session.run(None, {self.input_name: np.stack(run[i:i + self.MAX_BATCH])})[0]
                               for run in runs for i in range(0, len(run), self.MAX_BATCH)])
