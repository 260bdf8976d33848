"""The public face: ``Recognizer.load().predict("clip.wav")``."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .. import audio
from ..adaptation import MIN_CLIPS, answer_reference
from ..labels import check_emotions, fold_into
from ..labels import probabilities as to_mapping
from ..models.folder import CONFIG_NAME
from .backends import OnnxBackend, TorchBackend

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model"
#: The bundled model for speaker-adaptive use (several clips of one speaker at hand): utterance
#: functionals of mel, MFCC and pitch with a linear layer; its card is in the folder.
BUNDLED_SPEAKER_MODEL = BUNDLED_MODEL.parent / "speaker-model"
NO_SPEECH = "no_speech"
UNCERTAIN = "uncertain"
#: Below this many seconds of speech (silero VAD) a recording is answered ``no_speech``.
MIN_SPEECH_SECONDS = 0.3
#: A speaker reference takes at least this many clips or speech windows (the functionals model's
#: reference is a mean and a spread: one clip has no spread; a mean answer of one clip would
#: cancel that clip's answer).
MIN_REFERENCE_WINDOWS = MIN_CLIPS
#: A live session's running speaker reference applies from this many speech windows on (about 6 s
#: of speech at the default 2.5 s windows and 1.25 s hop): fewer make a weak reference.
RUNNING_WARMUP = 4


class TooLittleSpeech(ValueError):
    """Too little speech in a recording for a speaker reference."""


@dataclass
class Prediction:
    """One clip's answer.

    ``label`` is the most probable emotion and ``probabilities`` every emotion's probability
    (the model's emotions, or the recognizer's ``emotions``: :attr:`Recognizer.answer_labels`);
    both are ``None`` when the recording holds no speech (``speech`` false: under the
    recognizer's ``min_speech_seconds`` of speech found by the VAD), and the model is not run.
    ``answer`` is what to show: ``"no_speech"``, ``"uncertain"`` or the label.
    """

    label: str | None
    probabilities: dict[str, float] | None
    path: str | None = None
    extra: dict = field(default_factory=dict)
    uncertain: bool = False  # top probability below the recognizer's min_confidence
    speech: bool = True      # False: no speech heard, no emotion given
    #: seconds of speech found by the VAD; ``None``: not measured — by default the VAD stops once it
    #: has heard the recognizer's ``min_speech_seconds`` (``measure_speech=True`` measures it all)
    speech_seconds: float | None = None

    @property
    def confidence(self) -> float | None:
        """The label's probability; ``None`` without speech."""
        return None if self.label is None else self.probabilities[self.label]

    @property
    def answer(self) -> str:
        """``"no_speech"`` without speech, ``"uncertain"`` when the model is not confident
        enough, otherwise the label."""
        if not self.speech:
            return NO_SPEECH
        return UNCERTAIN if self.uncertain else self.label

    def to_dict(self) -> dict:
        """Every field as JSON values; the same keys for every answer (``label`` and
        ``probabilities`` are ``None`` without speech)."""
        return {"path": self.path, "answer": self.answer, "label": self.label, "uncertain": self.uncertain,
                "speech": self.speech, "speech_seconds": _round(self.speech_seconds),
                "probabilities": self.probabilities, **self.extra}


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds), 3)


class Recognizer:
    """Emotion recognition with one model: audio in, :class:`Prediction` out.

    Use :meth:`load`; ``backend`` is a :class:`~emovox.inference.backends.TorchBackend` or
    :class:`~emovox.inference.backends.OnnxBackend`.

    Before the model, silero VAD (:mod:`emovox.vad`, frames of 32 ms over ``vad_threshold``,
    the recording's level normalised) measures the speech in each recording; under
    ``min_speech_seconds`` of it the answer is
    ``no_speech`` (``0`` turns the decision off: the model then answers for any sound). The VAD
    stops listening once it has heard ``min_speech_seconds`` (the same answer, a third of the
    VAD's time on a RAVDESS clip), so a speech answer's ``speech_seconds`` is ``None``;
    ``measure_speech=True`` listens to the whole recording and reports them.

    ``emotions``: answer among these emotions only (an application's or a corpus's label set):
    the model's other emotions are folded into their nearest one there (calm into neutral:
    :func:`emovox.labels.fold_into`) or dropped, and the rest renormalised; ``None``: all of the
    model's (:attr:`labels`). Applies to :meth:`predict`, :meth:`predict_many`,
    :meth:`predict_speakers`, :meth:`timeline` and :meth:`stream` (``min_confidence`` to the
    answer's probabilities among them); :attr:`answer_labels` lists them. Explanations keep all
    of the model's.
    """

    def __init__(self, backend, min_confidence: float = 0.0, *, min_speech_seconds: float | None = None,
                 vad_threshold: float = 0.5, measure_speech: bool = False, emotions=None) -> None:
        self.backend = backend
        self.labels = backend.labels
        self.answer_labels = check_emotions(emotions, self.labels) if emotions is not None else self.labels
        self.sample_rate = backend.sample_rate
        self.clip_seconds = getattr(backend, "clip_seconds", 2.5)
        if not 0 <= min_confidence < 1:
            raise ValueError(f"min_confidence must be in [0, 1), got {min_confidence}")
        if min_speech_seconds is None:
            min_speech_seconds = MIN_SPEECH_SECONDS
        if not min_speech_seconds >= 0:
            raise ValueError(f"min_speech_seconds must be 0 or more, got {min_speech_seconds}")
        if not 0 < vad_threshold < 1:
            raise ValueError(f"vad_threshold must be between 0 and 1, got {vad_threshold}")
        self.min_confidence = min_confidence
        self.min_speech_seconds = float(min_speech_seconds)
        self.vad_threshold = float(vad_threshold)
        self.measure_speech = bool(measure_speech)
        self.calibration = getattr(backend, "calibration", {})
        self._vad = threading.local()  # one detector (it keeps state) per thread
        self.threads = getattr(backend, "threads", 1)  # per inference

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, backend: str = "torch",
             threads: int | None = None, min_confidence: float = 0.0,
             min_speech_seconds: float | None = None, vad_threshold: float = 0.5,
             measure_speech: bool = False, speaker_adaptive: bool = False, emotions=None) -> "Recognizer":
        """Load a model folder (or an ``.onnx`` file); ``None`` loads the bundled model (offline).

        ``speaker_adaptive=True``: the recognizer will judge clips against their speaker's
        reference (:meth:`predict_speakers`, :meth:`speaker_reference`, ``timeline(speaker_norm=True)``).
        With no ``path`` it loads the bundled speaker-adaptive model
        (:data:`BUNDLED_SPEAKER_MODEL`, far better than the per-clip model when several clips
        of each speaker are at hand). Any model can be used speaker-adaptively (see
        :attr:`speaker_adaptation`); the flag only chooses the bundled folder.

        ``backend="onnx"`` runs the folder's ``model.onnx`` with onnxruntime, without importing torch.
        ``threads``: CPU threads per inference; ``None``: ``$EMOVOX_THREADS``, else
        ``$OMP_NUM_THREADS``, else 1, the fastest on a busy machine (:mod:`emovox.threads`).
        Predictions whose top (calibrated) probability is below ``min_confidence`` are marked
        ``uncertain``; recordings with less than ``min_speech_seconds`` of speech (silero VAD at
        ``vad_threshold``; ``None``: :data:`MIN_SPEECH_SECONDS`, 0.3 s) are answered ``no_speech``;
        ``measure_speech``: report every prediction's seconds of speech (the VAD hears the whole
        recording instead of stopping once it has heard enough). ``emotions``: answer among these
        only (calm folded into neutral where it has no place; see :class:`Recognizer`).
        """
        from ..threads import inference_threads

        threads = inference_threads(threads)
        # the bundled speaker-adaptive model needs torch (feature statistics); on onnxruntime the
        # bundled model is adapted on its answers instead
        folder = (Path(path) if path is not None else BUNDLED_SPEAKER_MODEL
                  if speaker_adaptive and backend != "onnx" else BUNDLED_MODEL)
        if path is None and not (folder / CONFIG_NAME).is_file():
            if speaker_adaptive:
                raise FileNotFoundError(f"this emovox has no bundled speaker-adaptive model ({folder}); pass a "
                                        "model folder (any model adapts; a functionals model best: emovox train "
                                        "--config configs/functionals-prosody.yaml)")
            raise FileNotFoundError(f"the bundled model is missing from {folder}; reinstall emovox")
        options = {"min_speech_seconds": min_speech_seconds, "vad_threshold": vad_threshold,
                   "measure_speech": measure_speech, "emotions": emotions}
        if backend == "onnx" or folder.suffix == ".onnx":
            rec = cls(OnnxBackend(folder, threads), min_confidence, **options)
        elif backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; expected 'torch' or 'onnx'")
        elif not folder.is_dir():
            raise FileNotFoundError(f"no model folder at {folder}")
        else:
            rec = cls(TorchBackend(folder, threads), min_confidence, **options)
        return rec

    def with_emotions(self, emotions) -> "Recognizer":
        """The same model and settings answering among ``emotions`` (see :class:`Recognizer`):
        another recognizer around this one's backend and speech detectors, no second model."""
        rec = Recognizer(self.backend, self.min_confidence, min_speech_seconds=self.min_speech_seconds,
                         vad_threshold=self.vad_threshold, measure_speech=self.measure_speech, emotions=emotions)
        rec._vad = self._vad  # one detector per thread, used one call at a time: shared, not built again
        return rec

    @property
    def adapts_to_speakers(self) -> bool:
        """Whether a speaker reference replaces each clip's own feature statistics (torch
        backend, a functionals model or networks trained with ``normalize: bins``); other
        models are judged against the speaker's usual answer instead (:attr:`speaker_adaptation`)."""
        return getattr(self.backend, "adapts_to_speakers", False)

    @property
    def speaker_adaptation(self) -> str:
        """How a :meth:`speaker_reference` is used: ``"features"`` (the speaker's statistics
        replace each clip's own) or ``"answers"`` (the speaker's mean log-probability over their
        clips is subtracted from each clip's: :mod:`emovox.adaptation`)."""
        return getattr(self.backend, "speaker_adaptation", "features" if self.adapts_to_speakers else "answers")

    # ------------------------------------------------------------------ speech check
    def speech_seconds(self, wave: np.ndarray, enough: float | None = None) -> float:
        """Seconds of speech silero VAD finds in ``wave`` (mono, at :attr:`sample_rate`), its
        level normalised first (:func:`emovox.vad.normalize_level`: quiet speech is heard too);
        with ``enough``, it stops once it has heard that much (:func:`emovox.vad.speech_seconds`)."""
        from ..vad import SpeechDetector, normalize_level, speech_seconds

        detector = getattr(self._vad, "detector", None)
        if detector is None:
            detector = self._vad.detector = SpeechDetector(self.vad_threshold)
        if self.sample_rate != audio.WORKING_RATE:  # silero listens at 16 kHz
            wave = audio.from_array(wave, self.sample_rate, audio.WORKING_RATE)
        return speech_seconds(normalize_level(wave), detector=detector, enough=enough)

    def speech_check(self, wave: np.ndarray) -> tuple[bool, float | None]:
        """``(speech?, seconds of speech or None when not measured)``: the VAD listens until it
        has heard ``min_speech_seconds`` (all of ``wave`` with :attr:`measure_speech`)."""
        if self.min_speech_seconds == 0 and not self.measure_speech:
            return True, None  # the check is off: no VAD at all
        seconds = self.speech_seconds(wave, None if self.measure_speech else self.min_speech_seconds)
        speech = self.is_speech(seconds)
        return speech, seconds if self.measure_speech or not speech else None

    def is_speech(self, seconds: float) -> bool:
        """The no-speech decision, the only one: ``seconds`` of speech are enough to predict."""
        return seconds >= self.min_speech_seconds

    def _wave(self, source, sample_rate: int | None) -> np.ndarray:
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise ValueError("predicting from an array needs its sample_rate")
            return audio.from_array(source, sample_rate, self.sample_rate)
        return audio.load(source, self.sample_rate)

    def predict(self, source, sample_rate: int | None = None, *, speaker=None) -> Prediction:
        """Emotion of one recording: a path, bytes, a binary file object, or an array with
        its ``sample_rate``. Raises :class:`emovox.AudioError` for unusable audio.

        Without speech (see :class:`Recognizer`) the model is not run and the prediction's
        ``answer`` is ``"no_speech"``, its ``label`` and ``probabilities`` ``None``.

        ``speaker``: a :meth:`speaker_reference` of the same speaker (speaker-adaptive: the clip
        is judged against that speaker's usual voice instead of on its own)."""
        wave = self._wave(source, sample_rate)
        name = str(source) if isinstance(source, (str, os.PathLike)) else None
        speech, seconds = self.speech_check(wave)
        if not speech:
            return self._no_speech(seconds, name)
        probs = self.backend.probabilities([self.backend.analyse(wave)], speaker)[0]
        return self._prediction(probs, name, seconds)

    def speaker_reference(self, sources: Iterable, sample_rate: int | None = None):
        """One speaker's reference from several of their recordings (paths, bytes or arrays at
        ``sample_rate``): audio only, no labels, and best from clips of several emotions. Pass
        it to :meth:`predict` as ``speaker=``. What it holds depends on the model
        (:attr:`speaker_adaptation`): feature statistics, or the speaker's usual answer."""
        analysed = []
        for s in sources:  # recordings without speech say nothing about the speaker's voice
            wave = self._wave(s, sample_rate)
            if self.speech_check(wave)[0]:
                analysed.append(self.backend.analyse(wave))
        return self.backend.speaker_reference(analysed)

    def predict_speakers(self, groups: dict, *,
                         workers: int | None = None) -> Iterator[tuple[object, Prediction | audio.AudioError]]:
        """Speaker-adaptive prediction: ``{speaker: [sources]}``; each group's clips are judged
        against that group's reference (all its readable clips with speech; a group with fewer
        than :data:`MIN_REFERENCE_WINDOWS` of them is judged clip by clip, with a warning).
        Yields ``(source, result)``.
        ``workers`` threads decode a group's clips (``None``: the cores / :attr:`threads`,
        :func:`emovox.threads.share`), then the model runs on the group."""
        from concurrent.futures import ThreadPoolExecutor

        from ..threads import share

        workers = share(workers, self.threads).workers if workers is None else workers

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for name, sources in groups.items():
                sources = list(sources)
                prepared = list(pool.map(self._prepare, sources))
                ok = [p[1] for p in prepared if not isinstance(p, audio.AudioError) and p[1] is not None]
                probs = iter(self._group_probabilities(name, ok))
                for src, item in zip(sources, prepared):
                    yield src, self._answer(src, item, probs)

    def _group_probabilities(self, name, analysed: list) -> np.ndarray | list:
        """One speaker's clips judged against them all; under :data:`MIN_REFERENCE_WINDOWS` clips of
        speech there is no reference: judged alone, with a warning."""
        if len(analysed) >= MIN_REFERENCE_WINDOWS:
            return self.backend.adapted_probabilities(analysed)
        if analysed:
            import warnings

            warnings.warn(f"speaker {name!r}: {len(analysed)} clip of speech, too few for a speaker reference "
                          f"(at least {MIN_REFERENCE_WINDOWS}); judged alone", stacklevel=3)
            return self.backend.probabilities(analysed)
        return []

    def _prepare(self, src):
        """AudioError, or (speech seconds, the analysed wave or None when there is no speech)."""
        try:
            wave = self._wave(src, None)
        except audio.AudioError as err:
            return err
        speech, seconds = self.speech_check(wave)
        return seconds, self.backend.analyse(wave) if speech else None

    def _answer(self, src, item, probs: Iterator):
        """The result for one prepared source; ``probs`` yields the speech clips' probabilities in order."""
        if isinstance(item, audio.AudioError):
            return item
        if item[1] is None:
            return self._no_speech(item[0], str(src))
        return self._prediction(next(probs), str(src), item[0])

    def predict_many(self, sources: Iterable, *, batch_size: int = 16,
                     workers: int | None = None) -> Iterator[tuple[object, Prediction | audio.AudioError]]:
        """Predict many files in batches, yielding ``(source, result)`` in input order; an
        unreadable file yields its :class:`AudioError` instead of stopping the run.

        ``workers`` threads each predict a whole batch (decode, features, model: libsndfile,
        soxr, torch and onnxruntime release the GIL), side by side, each inference with
        :attr:`threads` threads. ``None``: as many as fill the cores this process may use
        (:func:`emovox.threads.share`: workers × threads add up to the cores). At most
        ``workers + 1`` batches are in flight.
        """
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor
        from itertools import islice

        from ..threads import share

        workers = share(workers, self.threads).workers if workers is None else workers
        if batch_size < 1 or workers < 1:
            raise ValueError("batch_size and workers must be at least 1")

        def run(batch):
            prepared = [(src, self._prepare(src)) for src in batch]
            ok = [item[1] for _, item in prepared if not isinstance(item, audio.AudioError) and item[1] is not None]
            probs = iter(self.backend.probabilities(ok) if ok else [])
            return [(src, self._answer(src, item, probs)) for src, item in prepared]

        it = iter(sources)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emovox-batch") as pool:
            pending = deque()
            while True:
                while len(pending) <= workers:  # every worker busy, and one batch queued
                    batch = list(islice(it, batch_size))
                    if not batch:
                        break
                    pending.append(pool.submit(run, batch))
                if not pending:
                    return
                yield from pending.popleft().result()

    def timeline(self, source, sample_rate: int | None = None, config=None, *,
                 block_seconds: float = 10.0, progress=None, speaker=None, speaker_norm: bool = False, **options):
        """Emotion timeline of a long recording (a path, bytes, a file object, or an array with
        its ``sample_rate``), decoded block by block so memory stays flat.

        ``config`` is a :class:`emovox.timeline.TimelineConfig`; keyword ``options`` override its
        fields (``window``, ``hop``, ``min_speech``, ``smooth``, ``min_confidence``,
        ``vad_threshold``). ``progress`` is called with the seconds processed after each block.
        ``speaker_norm=True`` takes the recording as one speaker's reference (a call, a session:
        decoded twice, the model run once when adapted on its answers; the reference is taken from the very speech windows the timeline judges,
        so a window's statistics meet a reference of the same length; raises
        :class:`TooLittleSpeech` below :data:`MIN_REFERENCE_WINDOWS` of them), or pass a
        ``speaker`` reference. Returns a :class:`emovox.timeline.Timeline`.
        """
        from ..timeline import blocks_of

        if speaker_norm and speaker is None:
            blocks = blocks_of(self._wave(source, sample_rate), int(block_seconds * self.sample_rate)) \
                if isinstance(source, np.ndarray) else audio.stream(source, self.sample_rate, block_seconds)
            answers = self.speaker_adaptation == "answers"
            collector = self.stream(config, collect="answers" if answers else True, **options)
            collector.run(blocks)
            if hasattr(source, "seek"):
                source.seek(0)
            if 0 < len(collector.collected) < MIN_REFERENCE_WINDOWS:
                raise TooLittleSpeech(f"a speaker-adaptive timeline needs at least {MIN_REFERENCE_WINDOWS} windows "
                                      f"of speech for the speaker's reference; this recording has "
                                      f"{len(collector.collected)} (run it without speaker normalisation)")
            replay = None
            if collector.collected and answers:  # the first pass's answers, reused
                replay = collector.collected
                speaker = answer_reference(np.stack(replay), self.labels)
            elif collector.collected:
                speaker = self.backend.speaker_reference(collector.collected)
            engine = self.stream(config, speaker=speaker, replay=replay, **options)
        else:
            engine = self.stream(config, speaker=speaker, **options)
        if isinstance(source, np.ndarray):
            blocks = blocks_of(self._wave(source, sample_rate), int(block_seconds * self.sample_rate))
        else:
            engine.source = str(source) if isinstance(source, (str, os.PathLike)) else None
            blocks = audio.stream(source, self.sample_rate, block_seconds)
        for block in blocks:
            engine.push(block)
            if progress is not None:
                progress(engine.seconds)
        return engine.finish()

    def explain(self, source, sample_rate: int | None = None, target: str | None = None, stage: int | None = None):
        """Grad-CAM of one clip: which time-frequency regions drove the decision (for ``target``,
        default the predicted emotion) at ResNet ``stage`` (default the last), one map per
        ensemble member, with the probabilities :meth:`predict` gives. Needs the torch backend.
        Returns an :class:`emovox.explain.Explanation`."""
        if self.backend.name != "torch":
            raise ValueError("explanations need gradients: load the model with backend='torch'")
        if target is not None and target not in self.labels:
            raise ValueError(f"unknown emotion {target!r}; expected one of {', '.join(self.labels)}")
        from ..explain import grad_cam

        return grad_cam(self.backend.classifiers, self._wave(source, sample_rate), target, stage)

    def stream(self, config=None, *, speaker=None, collect: bool | str = False, replay: list | None = None,
               running: int = 0, **options):
        """A :class:`emovox.timeline.TimelineEngine` to :meth:`~TimelineEngine.push` live audio
        blocks (mono, at :attr:`sample_rate`) into; ``speaker``: a :meth:`speaker_reference`;
        ``collect``: keep the speech windows (analysed; ``"answers"``: their probabilities) instead of making cells;
        ``replay``: a collecting pass's answers, used instead of running the model again; ``running``
        (a live session of one speaker): each speech window judged against the mean answer of the
        speech so far, from that many windows on (:data:`RUNNING_WARMUP` is a good start; any model)."""
        from ..timeline import TimelineConfig, TimelineEngine

        config = config or TimelineConfig(min_confidence=self.min_confidence, vad_threshold=self.vad_threshold)
        if options:
            config = TimelineConfig(**{**config.__dict__, **options})
        emotions = self.answer_labels if self.answer_labels != self.labels else None
        return TimelineEngine(self.backend, config, clip_seconds=self.clip_seconds, speaker=speaker, collect=collect,
                              replay=replay, running=running, emotions=emotions)

    def _prediction(self, probs: np.ndarray, path: str | None, seconds: float | None = None) -> Prediction:
        if self.answer_labels != self.labels:
            probs = fold_into(probs, self.labels, self.answer_labels)
        return Prediction(self.answer_labels[int(np.argmax(probs))], to_mapping(probs, self.answer_labels), path,
                          uncertain=bool(np.max(probs) < self.min_confidence), speech_seconds=seconds)

    def _no_speech(self, seconds: float, path: str | None) -> Prediction:
        return Prediction(None, None, path, speech=False, speech_seconds=seconds)
