"""The answers, as pydantic models: FastAPI validates against them and ``/docs`` shows them."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. too_large, too_long, not_audio, busy",
                      examples=["too_long"])
    message: str = Field(description="what went wrong, for people", examples=["the recording is 900.0 s; ..."])


class ErrorBody(BaseModel):
    """Every error answer (4xx and 5xx) has this shape."""

    error: ErrorDetail


class Spectrogram(BaseModel):
    """The mel-spectrogram (dB) of what was sent, computed by the model's own feature code."""

    png_base64: str = Field(description="PNG image, low frequencies at the bottom, time left to right")
    width: int = Field(description="columns (time; max-pooled when the audio is long)")
    height: int = Field(description="rows (mel bands)")
    seconds: float
    n_mels: int
    hop_length: int = Field(description="samples per column")
    sample_rate: int


class PredictResponse(BaseModel):
    answer: str = Field(description="the emotion, or 'uncertain' (top probability below the server's "
                                    "min_confidence), or 'no_speech' (the VAD heard less than the model's "
                                    "min_speech_seconds of speech: the model is not run)",
                        examples=["angry"])
    label: Optional[str] = Field(description="the most probable emotion; null when no speech was heard")
    confidence: Optional[float] = Field(description="the label's (calibrated) probability; null when no speech "
                                                    "was heard")
    uncertain: bool
    speech: bool = Field(description="false when the recording holds no speech")
    speech_seconds: Optional[float] = Field(description="seconds of speech found by the voice activity detector; "
                                            "null for a speech answer unless the server measures them "
                                            "(--measure-speech): the VAD stops once it has heard enough")
    probabilities: Optional[dict[str, float]] = Field(description="every emotion's probability (the model's emotions, "
                                                      "or those of ?emotions=); null without speech")
    duration: float = Field(description="seconds of audio decoded")
    model_id: str
    inference_ms: float = Field(description="decoding, speech detection and the model, in milliseconds")
    elapsed_ms: float = Field(description="the whole request on the server, upload and queue included")
    spectrogram: Optional[Spectrogram] = Field(None, description="with ?spectrogram=true")


class Segment(BaseModel):
    start: float
    end: float
    label: str = Field(description="an emotion, 'uncertain' or 'silence'")
    confidence: float


class Cell(BaseModel):
    start: float
    end: float
    speech: float = Field(description="voiced fraction of the cell")
    label: str
    probabilities: Optional[dict[str, float]] = Field(description="null for silent cells; the emotions of `labels`")


class TimelineConfig(BaseModel):
    window: float
    hop: float
    min_speech: float
    smooth: int
    min_confidence: float
    vad_threshold: float


class TimelineResponse(BaseModel):
    duration: float
    labels: list[str] = Field(description="the model's emotions, or those of ?emotions=")
    config: TimelineConfig
    speech: bool = Field(description="false when no cell holds speech")
    segments: list[Segment]
    cells: list[Cell]
    model_id: str
    inference_ms: float
    elapsed_ms: float
    spectrogram: Optional[Spectrogram] = None


class Member(BaseModel):
    name: str
    model: dict
    preprocessing: dict


class Limits(BaseModel):
    max_upload_mb: float
    max_seconds: float
    max_concurrent: int
    max_queue: int
    timeout: float
    threads_per_inference: int
    api_key_required: bool


class ModelInfo(BaseModel):
    model_id: str
    backend: str
    labels: list[str]
    sample_rate: int
    clip_seconds: float
    min_confidence: float
    min_speech_seconds: Optional[float] = Field(description="under this much speech the answer is 'no_speech'")
    vad_threshold: Optional[float] = Field(description="silero VAD speech threshold")
    measure_speech: bool = Field(False, description="whether speech answers report their seconds of speech")
    calibration: dict = Field(description="temperature scaling: T and the NLL / ECE before and after")
    members: list[Member] = Field(description="each network with its preprocessing (one unless an ensemble)")
    card: dict[str, str] = Field(description="model-card fields: title, what it does, training, limits, licence...")
    speaker_model_id: str = Field(description="the model answering speaker_norm=1 timelines "
                                  "(the model_id itself when the served model answers them)")
    speaker_adaptation: str = Field(description="how speaker_norm=1 timelines adapt: 'features' (the "
                                    "speaker's statistics replace each window's own) or 'answers' (each "
                                    "window judged against the recording's mean answer)")
    colors: dict[str, str] = Field(description="one colour per label, as in emovox's figures")
    limits: Limits
    version: str


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    ready: bool
    model_id: Optional[str] = None
    detail: Optional[str] = None
