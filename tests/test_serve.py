"""`emovox serve` over real HTTP: a server process on 127.0.0.1, every endpoint, every error path,
the queue's 503 and the timeout (an in-process uvicorn with a stand-in model), schema fuzzing."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from emovox.cli import main
from emovox.serve import Settings
from emovox.serve.settings import check_bind, is_loopback

from .serve_util import ANGRY, KEY, conversation, free_port, webm_opus, write_wav


@pytest.fixture(scope="session")
def server(serve_url):
    return serve_url


@pytest.fixture(scope="session")
def client(server):
    with httpx.Client(base_url=server, headers={"X-API-Key": KEY}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-audio")
    rng = np.random.default_rng(0)
    return {
        "angry": ANGRY,
        "webm": webm_opus(ANGRY, d / "angry.webm"),
        "long": conversation(d / "conversation.wav"),
        "quiet": write_wav(d / "quiet.wav", 1e-4 * rng.standard_normal(3 * 16_000)),
        "overlong": write_wav(d / "overlong.wav", np.zeros(40 * 16_000)),   # 40 s > 30 s, 1.3 MB < 1.5 MB
        "corrupt": d / "corrupt.wav",
    }


def error_of(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()["error"]
    assert body["code"] == code and body["message"]
    return body


# ---------------------------------------------------------------- endpoints


def test_health_ready_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and "@" in ready["model_id"]
    info = client.get("/v1/model").json()
    assert info["labels"][:2] == ["neutral", "calm"] and len(info["labels"]) == 8
    assert info["backend"] == "onnx" and info["model_id"] == ready["model_id"]
    from emovox.inference.recognizer import BUNDLED_MODEL
    from emovox.models.folder import member_folders

    folders = member_folders(BUNDLED_MODEL)  # an ensemble's members, or the one model folder
    assert len(info["members"]) == len(folders) >= 1
    if len(folders) > 1:
        assert [m["name"] for m in info["members"]] == [f.name for f in folders]
    assert all(m["preprocessing"]["features"]["kind"] in ("mel", "mfcc", "spectrogram") for m in info["members"])
    assert info["calibration"]["temperature"] > 0
    assert "non-commercial" in info["card"]["data_licence"] and info["card"]["limits"]
    assert info["limits"] == {"max_upload_mb": 1.5, "max_seconds": 30.0, "max_concurrent": 1, "max_queue": 64,
                              "timeout": 60.0, "threads_per_inference": 1,  # serve_util's OMP_NUM_THREADS=1 is
                              # respected (one slot would otherwise get all CPUs: tests/test_threads.py)
                              "api_key_required": True}


def _cpus() -> int:
    from emovox.serve.settings import cpu_count

    return cpu_count()


def test_predict_multipart_and_raw(client, clips):
    with open(clips["angry"], "rb") as f:
        a = client.post("/v1/predict", files={"file": ("clip.flac", f, "audio/flac")}).json()
    b = client.post("/v1/predict", content=clips["angry"].read_bytes(), headers={"Content-Type": "audio/flac"}).json()
    assert a["answer"] == a["label"] == "angry" and a["speech"] and not a["uncertain"]
    assert abs(sum(a["probabilities"].values()) - 1) < 1e-3 and a["confidence"] == a["probabilities"]["angry"]
    assert a["duration"] == pytest.approx(3.403, abs=0.01) and a["speech_seconds"] is None  # not measured
    assert 0 < a["inference_ms"] <= a["elapsed_ms"] and a["spectrogram"] is None
    assert b["probabilities"] == a["probabilities"]


def test_predict_matches_the_library(client, clips):
    from emovox import Recognizer

    want = Recognizer.load(backend="onnx", threads=1).predict(clips["angry"]).probabilities
    got = client.post("/v1/predict", files={"file": clips["angry"].open("rb")}).json()["probabilities"]
    assert max(abs(got[k] - want[k]) for k in want) < 1e-3


def test_predict_among_a_label_set(client, clips):
    from emovox.labels import EMOTIONS, fold_into

    full = client.post("/v1/predict", files={"file": clips["angry"].open("rb")}).json()["probabilities"]
    r = client.post("/v1/predict?emotions=angry,Happiness,neutral,sad", files={"file": clips["angry"].open("rb")}).json()
    four = ("angry", "happy", "neutral", "sad")
    assert list(r["probabilities"]) == list(four) and r["label"] in four
    want = fold_into([full[e] for e in EMOTIONS], EMOTIONS, four)  # calm's share went to neutral
    assert max(abs(r["probabilities"][e] - w) for e, w in zip(four, want)) < 2e-3
    for bad in ("bored,sad", "sad"):
        error_of(client.post(f"/v1/predict?emotions={bad}", files={"file": clips["angry"].open("rb")}),
                 422, "invalid_request")
    tl = client.post("/v1/timeline?emotions=angry,happy,neutral,sad", files={"file": clips["long"].open("rb")}).json()
    assert tl["labels"] == list(four) and all(c["probabilities"] is None or list(c["probabilities"]) == list(four)
                                              for c in tl["cells"])


def test_predict_webm_opus_from_a_browser(client, clips):
    r = client.post("/v1/predict", content=clips["webm"].read_bytes(),
                    headers={"Content-Type": "audio/webm;codecs=opus"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "angry"


def test_spectrogram_is_the_models_mel_image(client, clips):
    import base64
    import io

    from PIL import Image

    r = client.post("/v1/predict?spectrogram=true", files={"file": clips["angry"].open("rb")}).json()
    spec = r["spectrogram"]
    image = Image.open(io.BytesIO(base64.b64decode(spec["png_base64"])))
    assert image.format == "PNG" and image.size == (spec["width"], spec["height"])
    # the model's own STFT and bands (a mel member's, else the first member's): 64 bands, 256-sample hop at
    # 16 kHz (3.4 s -> 213 frames)
    assert spec["n_mels"] == spec["height"] == 64 and spec["hop_length"] == 256
    assert spec["width"] == 1 + int(3.403 * 16_000) // 256


def test_an_ensemble_is_described_member_by_member(tiny_model, tmp_path):
    """/v1/model's description of an ensemble folder (the bundled model is one network since v6)."""
    from emovox import Recognizer
    from emovox.models import load_bundle, save_ensemble
    from emovox.serve.service import describe

    sharp, soft = load_bundle(tiny_model), load_bundle(tiny_model)
    folder = save_ensemble({"sharp": sharp, "soft": soft}, tmp_path / "ens", extra={"provenance": {"name": "tiny-ens"}})
    info = describe(Recognizer.load(folder), folder)
    assert [m["name"] for m in info["members"]] == ["sharp", "soft"]
    assert info["calibration"]["temperature"] == sharp.extra["calibration"]["temperature"]
    one = describe(Recognizer.load(tiny_model), tiny_model)
    assert len(one["members"]) == 1 and one["members"][0]["preprocessing"] == info["members"][0]["preprocessing"]


def test_an_onnx_server_answers_speaker_norm_itself_against_the_mean_answer(client, clips):
    """Without a speaker-adaptive model beside it, the served model answers ``?speaker_norm=1``
    itself: each window judged against the recording's mean answer, as the library does."""
    from emovox import Recognizer, audio

    info = client.get("/v1/model").json()
    assert info["speaker_model_id"] == info["model_id"] and info["speaker_adaptation"] == "answers"
    r = client.post("/v1/timeline?speaker_norm=1", files={"file": clips["long"].open("rb")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model_id"] == info["model_id"]
    rec = Recognizer.load(backend="onnx", threads=1)
    assert rec.speaker_adaptation == "answers"
    expected = rec.timeline(audio.load(clips["long"], rec.sample_rate), sample_rate=rec.sample_rate,
                            speaker_norm=True).to_dict()["cells"]
    plain = rec.timeline(audio.load(clips["long"], rec.sample_rate), sample_rate=rec.sample_rate).to_dict()["cells"]
    assert [c["probabilities"] is None for c in got["cells"]] == [c["probabilities"] is None for c in expected]
    speech = [(a, b, c) for a, b, c in zip(got["cells"], expected, plain) if b["probabilities"] is not None]
    assert len(speech) >= 2
    for a, b, _ in speech:
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-3)
    assert any(b["probabilities"] != pytest.approx(c["probabilities"], abs=1e-2) for _, b, c in speech)


def test_a_torch_server_answers_speaker_norm_with_the_bundled_speaker_model(clips):
    """``emovox serve --backend torch`` loads the bundled speaker-adaptive model beside the bundled
    one: ``?speaker_norm=1`` timelines are its answers, the recording its own reference."""
    from emovox import Recognizer, audio
    from emovox.inference.recognizer import BUNDLED_SPEAKER_MODEL

    from .serve_util import running_server

    with running_server("--backend", "torch", "--max-concurrent", "1") as url:
        info = httpx.get(url + "/v1/model", timeout=30).json()
        assert info["speaker_model_id"] and info["speaker_model_id"] != info["model_id"]
        assert info["speaker_adaptation"] == "features"
        r = httpx.post(url + "/v1/timeline?speaker_norm=1", files={"file": clips["long"].open("rb")}, timeout=120)
        assert r.status_code == 200, r.text
        got = r.json()
        plain = httpx.post(url + "/v1/timeline", files={"file": clips["long"].open("rb")}, timeout=120).json()
    assert got["model_id"] == info["speaker_model_id"] and plain["model_id"] == info["model_id"]
    rec = Recognizer.load(BUNDLED_SPEAKER_MODEL, threads=1)
    expected = rec.timeline(audio.load(clips["long"], rec.sample_rate), sample_rate=rec.sample_rate,
                            speaker_norm=True).to_dict()["cells"]
    assert [c["probabilities"] is None for c in got["cells"]] == [c["probabilities"] is None for c in expected]
    for a, b in zip(got["cells"], expected):
        if b["probabilities"] is not None:
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-3)
    assert any(a["probabilities"] != pytest.approx(b["probabilities"], abs=1e-2)
               for a, b in zip(got["cells"], plain["cells"]) if b["probabilities"] is not None)


def test_timeline(client, clips):
    r = client.post("/v1/timeline?spectrogram=1", files={"file": clips["long"].open("rb")})
    assert r.status_code == 200, r.text
    t = r.json()
    import soundfile as sf

    assert t["duration"] == pytest.approx(sf.info(str(clips["long"])).duration, abs=0.01) and t["speech"]
    labels = {s["label"] for s in t["segments"]}
    assert "silence" in labels and labels - {"silence", "uncertain"}
    assert t["segments"][0]["start"] == 0 and t["segments"][-1]["end"] == pytest.approx(t["duration"], abs=0.01)
    speech_cells = [c for c in t["cells"] if c["probabilities"] is not None]
    assert speech_cells and all(abs(sum(c["probabilities"].values()) - 1) < 1e-2 for c in speech_cells)
    assert t["config"]["window"] == 2.5 and t["spectrogram"]["width"] <= 600


def test_no_speech_is_an_answer(client, clips, tmp_path):
    from .test_nospeech import non_speech

    signals = {"quiet": clips["quiet"]}
    for name, x in non_speech(44_100).items():  # silence, white, pink, tone, click
        signals[name] = write_wav(tmp_path / f"{name}.wav", x, 44_100)
    for name, path in signals.items():
        r = client.post("/v1/predict", files={"file": path.open("rb")})
        assert r.status_code == 200
        p = r.json()
        assert p["answer"] == "no_speech" and not p["speech"] and p["label"] is None, name
        assert p["probabilities"] is None and p["confidence"] is None and p["speech_seconds"] < 0.3
        t = client.post("/v1/timeline", files={"file": path.open("rb")}).json()
        assert not t["speech"] and {s["label"] for s in t["segments"]} == {"silence"}, name
    assert client.get("/v1/model").json()["min_speech_seconds"] == 0.3


def test_the_server_answers_with_the_recognizers_no_speech_decision(clips):
    """No check of its own: the Recognizer's settings decide (here: no check, or an impossible one)."""
    from emovox import Recognizer
    from emovox.serve.service import Service

    rec = Recognizer.load(backend="onnx", threads=1, min_speech_seconds=0)
    always = Service(rec).predict(clips["quiet"])
    assert always["answer"] in rec.labels and always["speech"] and always["probabilities"]
    never = Service(Recognizer(rec.backend, min_speech_seconds=60)).predict(clips["angry"])
    assert never["answer"] == "no_speech" and never["probabilities"] is None and never["speech_seconds"] > 1


def test_page_docs_and_schema(server):
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<title>emovox" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    for asset in ("/static/app.js", "/static/app.css"):
        r = httpx.get(server + asset)
        assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text
    docs = httpx.get(server + "/docs").text
    assert "/docs-static/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    spec = httpx.get(server + "/openapi.json").json()
    props = spec["components"]["schemas"]["PredictResponse"]["properties"]
    assert {"answer", "label", "probabilities", "duration", "model_id", "elapsed_ms"} <= set(props)
    assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]


# ---------------------------------------------------------------- errors


def test_auth(server, clips):
    assert httpx.get(server + "/healthz").status_code == 200  # probes need no key
    error_of(httpx.get(server + "/v1/model"), 401, "unauthorized")
    error_of(httpx.get(server + "/v1/model", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    r = httpx.post(server + "/v1/predict", content=clips["angry"].read_bytes(), headers={"Content-Type": "audio/flac"})
    error_of(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(server + "/v1/model", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_input_errors(client, clips):
    error_of(client.post("/v1/predict", content=b"", headers={"Content-Type": "audio/wav"}), 400, "empty_body")
    error_of(client.post("/v1/predict", files={"file": ("empty.wav", b"", "audio/wav")}), 400, "empty_body")
    error_of(client.post("/v1/predict", files={"other": ("a.wav", b"x", "audio/wav")}), 400, "missing_file")
    error_of(client.post("/v1/predict", content=b"{}", headers={"Content-Type": "application/json"}),
             415, "unsupported_media_type")
    error_of(client.post("/v1/predict", content=b"abc"), 415, "unsupported_media_type")  # no content type
    corrupt = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8
    body = error_of(client.post("/v1/timeline", files={"file": ("bad.wav", corrupt, "audio/wav")}), 422, "not_audio")
    assert "emovox-serve" not in body["message"]  # the temporary file's name is not shown
    error_of(client.post("/v1/predict", content=b"\x00" * 1000, headers={"Content-Type": "audio/mpeg"}),
             422, "not_audio")
    error_of(client.get("/v1/predict"), 405, "method_not_allowed")
    error_of(client.get("/nowhere"), 404, "not_found")
    error_of(client.post("/v1/predict?spectrogram=maybe", content=b"x", headers={"Content-Type": "audio/wav"}),
             422, "invalid_request")


def test_size_and_duration_limits(client, clips):
    big = b"\x00" * 2_000_000  # over the 1.5 MB limit
    error_of(client.post("/v1/predict", content=big, headers={"Content-Type": "audio/wav"}), 413, "too_large")
    error_of(client.post("/v1/predict", files={"file": ("big.wav", big, "audio/wav")}), 413, "too_large")

    def chunks():  # no Content-Length: the server counts while it reads
        for _ in range(20):
            yield b"\x00" * 100_000
    error_of(client.post("/v1/predict", content=chunks(), headers={"Content-Type": "audio/wav"}), 413, "too_large")
    body = error_of(client.post("/v1/predict", files={"file": clips["overlong"].open("rb")}), 422, "too_long")
    assert "40.0 s" in body["message"] and "30 s" in body["message"]  # known from the header
    error_of(client.post("/v1/timeline", files={"file": clips["overlong"].open("rb")}), 422, "too_long")


def test_decoding_stops_at_the_limit_without_a_header(clips):
    """A header may lack the duration (MediaRecorder's WebM) or lie: decoding stops at the limit."""
    from emovox.serve.service import Service, TooLong

    svc = Service(SlowRecognizer(), max_seconds=5.0)
    import soundfile as sf

    assert len(svc.decode(clips["angry"])) == sf.info(str(clips["angry"])).frames  # 16 kHz already
    with pytest.raises(TooLong, match="up to 5 s"):
        svc.decode(clips["long"])


def test_no_temporary_files_left(client, clips):
    import tempfile
    from pathlib import Path

    before = set(Path(tempfile.gettempdir()).glob("emovox-serve-*"))
    client.post("/v1/predict", files={"file": clips["angry"].open("rb")})
    client.post("/v1/predict", files={"file": ("bad.wav", b"RIFFjunk", "audio/wav")})
    client.post("/v1/predict", content=b"\x00" * 2_000_000, headers={"Content-Type": "audio/wav"})
    assert set(Path(tempfile.gettempdir()).glob("emovox-serve-*")) <= before


# ---------------------------------------------------------------- queue, timeout


class SlowRecognizer:
    """The bundled model's interface, answering only when the test lets it."""

    def __init__(self):
        from emovox.inference.recognizer import Prediction

        self.Prediction = Prediction
        self.labels = ("neutral", "angry")
        self.sample_rate, self.clip_seconds, self.min_confidence, self.calibration = 16_000, 2.5, 0.0, {}
        self.backend = type("B", (), {"name": "stub"})()
        self.go = threading.Event()

    def predict(self, wave, sample_rate=None):
        self.go.wait(10)
        return self.Prediction("angry", {"neutral": 0.2, "angry": 0.8})


@pytest.fixture()
def slow_server():
    import uvicorn

    from emovox.serve import create_app

    rec = SlowRecognizer()
    app = create_app(Settings(max_concurrent=1, max_queue=1, timeout=3), recognizer=rec)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    yield url, rec, app
    rec.go.set()
    srv.should_exit = True
    thread.join(10)


def test_full_queue_gets_503_with_retry_after(slow_server):
    url, rec, app = slow_server
    gate = app.state.gate
    audio = ANGRY.read_bytes()
    results = {}

    def post(name):
        results[name] = httpx.post(url + "/v1/predict", content=audio, headers={"Content-Type": "audio/flac"},
                                   timeout=30)

    first = threading.Thread(target=post, args=("running",))
    first.start()
    _until(lambda: gate.running == 1)
    second = threading.Thread(target=post, args=("queued",))
    second.start()
    _until(lambda: gate.waiting == 1)
    r = httpx.post(url + "/v1/predict", content=audio, headers={"Content-Type": "audio/flac"})
    error_of(r, 503, "busy")
    assert int(r.headers["retry-after"]) >= 1
    assert httpx.get(url + "/healthz").status_code == 200  # the event loop is free meanwhile
    rec.go.set()
    first.join(30)
    second.join(30)
    assert results["running"].status_code == results["queued"].status_code == 200
    assert results["queued"].json()["answer"] == "angry"


def test_inference_timeout_gets_504(slow_server):
    url, rec, app = slow_server
    start = time.monotonic()
    r = httpx.post(url + "/v1/predict", content=ANGRY.read_bytes(), headers={"Content-Type": "audio/flac"}, timeout=30)
    error_of(r, 504, "timeout")
    assert time.monotonic() - start < 6
    rec.go.set()
    _until(lambda: app.state.gate.running == 0)  # the slot comes back once the thread ends


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# ---------------------------------------------------------------- settings, CLI


def test_refuses_public_address_without_key(capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "without an API key" in capsys.readouterr().err
    check_bind("0.0.0.0", "k", insecure=False)
    check_bind("0.0.0.0", None, insecure=True)


def test_settings_from_env_and_flags():
    env = {"EMOVOX_MAX_UPLOAD_MB": "5", "EMOVOX_MAX_SECONDS": "90", "EMOVOX_API_KEY": "k",
           "EMOVOX_CORS_ORIGINS": "https://a.example, https://b.example", "EMOVOX_WORKERS": "2",
           "EMOVOX_MEASURE_SPEECH": "yes"}
    s = Settings.from_env(env, max_seconds=30.0, threads=None)
    assert (s.max_upload_bytes, s.max_seconds, s.api_key, s.workers) == (5_000_000, 30.0, "k", 2)
    assert s.measure_speech and not Settings.from_env({}).measure_speech
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert Settings.from_env(s.to_env()) == s  # what --workers processes rebuild
    assert s.concurrent * s.inference_threads * s.workers <= max(_cpus(), s.workers * s.concurrent)
    with pytest.raises(ValueError, match="EMOVOX_MAX_QUEUE"):
        Settings.from_env({"EMOVOX_MAX_QUEUE": "many"})
    with pytest.raises(ValueError, match="EMOVOX_MEASURE_SPEECH"):
        Settings.from_env({"EMOVOX_MEASURE_SPEECH": "sometimes"})
    with pytest.raises(ValueError, match="backend"):
        Settings(backend="tensorflow")


def test_cors_off_unless_origins_given():
    import asyncio

    from emovox.serve import create_app

    pre = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}

    async def preflight(settings):
        transport = httpx.ASGITransport(create_app(settings, recognizer=SlowRecognizer()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return (await c.options("/v1/predict", headers=pre)).headers

    assert "access-control-allow-origin" not in asyncio.run(preflight(Settings()))
    allowed = asyncio.run(preflight(Settings(cors_origins=("https://elsewhere.example",))))
    assert allowed["access-control-allow-origin"] == "https://elsewhere.example"


# ---------------------------------------------------------------- schema fuzzing


@schemathesis.serializer("audio/wav", "audio/webm")
def _binary(ctx, value):
    return value if isinstance(value, bytes) else str(value).encode()


def test_fuzz_no_server_errors(server):
    """Schemathesis over the OpenAPI spec, a few examples per operation (seconds, not minutes)."""
    from hypothesis import given
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    schema = schemathesis.openapi.from_url(server + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/timeline", "/v1/model", "/healthz", "/readyz"}
    for op in operations:
        headers = {"X-API-Key": KEY} if op.path.startswith("/v1") else {}

        @given(case=op.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            case.call_and_validate(headers=headers, timeout=60,
                                   checks=[not_a_server_error, response_schema_conformance, content_type_conformance])
        check()
