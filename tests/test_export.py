"""ONNX: one graph from waveform to probabilities, equal to the torch path; no torch at run time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from emovox import Recognizer, audio
from emovox.cli import main
from emovox.inference.export import export_onnx

from .conftest import SPEECH

CLIPS = [SPEECH / "Actor_09" / "03-01-02-02-02-01-09.flac", SPEECH / "Actor_10" / "03-01-07-02-01-02-10.flac"]


def test_metadata_names_labels_rate_and_model(tiny_onnx, tiny_model):
    meta = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    assert json.loads(meta["labels"])[4] == "angry" and meta["sample_rate"] == "16000"
    assert meta["model_id"].startswith("resnet18-mel@") and json.loads(meta["config"])["model"]["width"] == 8
    graph_ops = {n.op_type for n in onnx.load(str(tiny_onnx)).graph.node}
    assert "STFT" not in graph_ops and "Log" in graph_ops  # the features are inside the graph (STFT as a MatMul)


def test_onnx_matches_torch_on_real_clips_of_any_length(tiny_onnx, tiny_model):
    # min_speech_seconds=0: the model answers the noise too (no no-speech check), to compare graphs
    torch_rec = Recognizer.load(tiny_model, threads=2, min_speech_seconds=0)
    onnx_rec = Recognizer.load(tiny_onnx, threads=2, min_speech_seconds=0)
    long = np.tile(audio.load(CLIPS[0]), 4)  # ~15 s: several windows
    noise = (0.05 * np.random.default_rng(0).standard_normal(6000)).astype(np.float32)  # shorter than a window
    for src in [*CLIPS, long, noise]:
        kw = {"sample_rate": 16000} if isinstance(src, np.ndarray) else {}
        a, b = torch_rec.predict(src, **kw), onnx_rec.predict(src, **kw)
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
        assert a.label == b.label


@pytest.mark.slow  # a third export (6 s on 2 cores)
def test_quantized_export_is_smaller_and_still_a_distribution(tiny_model, tiny_onnx, tmp_path):
    q = export_onnx(tiny_model, tmp_path / "q.onnx", quantize=True)
    assert {n.op_type for n in onnx.load(str(q)).graph.node} & {"ConvInteger", "DynamicQuantizeLinear"}
    probs = np.array(list(Recognizer.load(q).predict(CLIPS[0]).probabilities.values()))
    assert probs.sum() == pytest.approx(1, abs=1e-5) and (probs >= 0).all()


def test_static_quantisation_keeps_the_features_float_and_the_answers(tiny_model, tiny_onnx, tmp_path, capsys):
    """--quantize static: int8 convolutions with input ranges from calibration clips, the rest float32."""
    calibration = sorted((SPEECH / "Actor_09").glob("*.flac"))[:6]
    out = tmp_path / "static.onnx"
    assert main(["export", "--model", str(tiny_model), "-o", str(out), "--quantize", "static",
                 "--calibration", *map(str, calibration), "--calibration-clips", "4"]) == 0
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops and "MatMul" in ops  # the DFT stays float
    assert {p.key: p.value for p in model.metadata_props}["quantized"] == "static"
    full, q = Recognizer.load(tiny_onnx), Recognizer.load(out)
    for clip in CLIPS:
        a, b = full.predict(clip), q.predict(clip)
        assert sum(b.probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 0.1
    with pytest.raises(SystemExit, match="--calibration"):
        main(["export", "--model", str(tiny_model), "-o", str(out), "--quantize", "static"])
    with pytest.raises(ValueError, match="calibration"):
        export_onnx(tiny_model, out, quantize="static")
    with pytest.raises(ValueError, match="quantize"):
        export_onnx(tiny_model, out, quantize="int4")
    with pytest.raises(ValueError, match="exclude"):
        export_onnx(tiny_model, out, quantize="static", calibration=[np.zeros(16_000, np.float32)], half=True)


@pytest.mark.parametrize("model", ["file", "bundled folder"])
def test_onnx_path_never_imports_torch(tiny_onnx, model):
    target = repr(str(tiny_onnx)) if model == "file" else "None"  # a folder is checked against its weights too
    code = ("import sys; from emovox import Recognizer; "
            f"p = Recognizer.load({target}, backend='onnx').predict({str(CLIPS[0])!r}); "
            "assert 'torch' not in sys.modules and 'librosa' not in sys.modules, 'heavy import'; print(p.label)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in Recognizer.load(tiny_onnx).labels


def test_cli_export_and_predict_with_onnx_backend(tiny_half_onnx, capsys):
    out = tiny_half_onnx  # written by `emovox export --half`
    assert main(["predict", str(CLIPS[1]), "--model", str(out), "--backend", "onnx", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"] == str(CLIPS[1]) and len(row["probabilities"]) == 8


def test_a_stale_onnx_file_in_a_model_folder_is_refused(tiny_model, tiny_onnx, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    shutil.copy(tiny_onnx, folder / "model.onnx")
    assert Recognizer.load(folder, backend="onnx").labels[0] == "neutral"  # matching weights: fine
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x00")  # the weights change, the export does not
    with pytest.raises(ValueError, match="another version"):
        Recognizer.load(folder, backend="onnx")


def test_the_calibration_is_inside_the_graph_and_checked(tiny_model, tiny_onnx, tmp_path):
    import shutil

    meta = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    t = json.loads((tiny_model / "config.json").read_text())["calibration"]["temperature"]
    assert json.loads(meta["temperatures"]) == pytest.approx([t])
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    shutil.copy(tiny_onnx, folder / "model.onnx")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["calibration"]["temperature"] = t * 2  # recalibrated after the export
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="another version"):
        Recognizer.load(folder, backend="onnx")


@pytest.mark.slow  # exports two networks as one graph (the bundled model is one network since v6)
def test_an_ensemble_folder_averages_its_members_in_torch_and_onnx(tiny_model, tmp_path):
    from emovox.models import is_ensemble, load_bundle, save_ensemble

    a = load_bundle(tiny_model)
    b = load_bundle(tiny_model)
    b.extra["calibration"] = {**a.extra["calibration"], "temperature": a.extra["calibration"]["temperature"] * 3}
    folder = save_ensemble({"sharp": a, "soft": b}, tmp_path / "ens", extra={"provenance": {"name": "tiny-ens"}})
    assert is_ensemble(folder) and not is_ensemble(tiny_model)
    clip = CLIPS[1]
    ens = Recognizer.load(folder).predict(clip)
    pa = Recognizer.load(tiny_model).predict(clip).probabilities
    single_soft = tmp_path / "soft"
    import shutil

    shutil.copytree(folder / "soft", single_soft)
    pb = Recognizer.load(single_soft).predict(clip).probabilities
    for k in pa:
        assert ens.probabilities[k] == pytest.approx((pa[k] + pb[k]) / 2, abs=1e-5)
    export_onnx(folder, folder / "model.onnx")
    import onnx

    from emovox.features import _dft_basis

    # the members share one spectrum: one DFT product in the graph, and no (slow) STFT node
    f = a.pipeline.features
    shape = list(_dft_basis(f.n_fft, f.win_length, f.hop_length).shape)
    graph = onnx.load(folder / "model.onnx").graph
    bases = {i.name for i in graph.initializer if list(i.dims) == shape}
    assert not [n for n in graph.node if n.op_type == "STFT"]
    assert len([n for n in graph.node if n.op_type == "MatMul" and set(n.input) & bases]) == 1
    onnx_pred = Recognizer.load(folder, backend="onnx").predict(clip)
    assert onnx_pred.probabilities == pytest.approx(ens.probabilities, abs=1e-4)
    tl = Recognizer.load(folder).timeline(audio.load(clip), 16_000)  # the timeline runs ensembles too
    assert tl.probabilities.shape[1] == 8


def test_the_bundled_graph_agrees_with_torch():
    """The bundled graph's convolutions are int8 (static, calibrated): the same answers as the float
    torch model, probabilities within a few hundredths (v6's recipe on 6 EmoBox folds: the same label for
    91.6 % of clips; these seven clips agree)."""
    from emovox.inference.recognizer import BUNDLED_MODEL

    meta = {p.key: p.value for p in onnx.load(str(BUNDLED_MODEL / "model.onnx")).metadata_props}
    assert meta["quantized"] == "static"
    torch_rec, onnx_rec = Recognizer.load(threads=2), Recognizer.load(backend="onnx", threads=2)
    for clip in [*CLIPS, *sorted((BUNDLED_MODEL.parent / "examples").glob("*.flac"))]:
        a, b = torch_rec.predict(clip), onnx_rec.predict(clip)
        assert a.label == b.label, clip
        assert b.probabilities == pytest.approx(a.probabilities, abs=0.08), clip


def test_half_weight_export_is_half_the_size_and_agrees(tiny_half_onnx, tiny_onnx):
    half = tiny_half_onnx
    # the network's weights halve; the feature constants (the DFT basis, the mel matrix) stay float32
    graph = onnx.load(str(tiny_onnx)).graph
    weights = {n.input[1] for n in graph.node if n.op_type in ("Conv", "Gemm")}
    weight_bytes = sum(4 * int(np.prod(i.dims)) for i in graph.initializer if i.name in weights)
    assert tiny_onnx.stat().st_size - half.stat().st_size > 0.45 * weight_bytes
    meta = {p.key: p.value for p in onnx.load(str(half)).metadata_props}
    assert meta["half_weights"] == "true"
    full = Recognizer.load(tiny_onnx).predict(CLIPS[0]).probabilities
    small = Recognizer.load(half).predict(CLIPS[0]).probabilities
    assert small == pytest.approx(full, abs=1e-3)


def test_one_call_judges_a_batch_of_equal_length_clips_each_alone(tiny_onnx, tiny_model):
    """The graph takes ``[batch, samples]``: a timeline's windows in one call, each row what the
    clip gets alone, and what the torch path gives."""
    import onnxruntime as ort
    import torch

    from emovox.models import load_bundle
    from emovox.pipeline import ClipClassifier

    n = 40_000  # a timeline window: 2.5 s
    rng = np.random.default_rng(0)
    batch = np.stack([audio.load(CLIPS[0])[:n], audio.load(CLIPS[1])[-n:],
                      (0.05 * rng.standard_normal(n)).astype(np.float32)])
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    together = session.run(None, {"waveform": batch})[0]
    alone = np.concatenate([session.run(None, {"waveform": clip[None]})[0] for clip in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    with torch.inference_mode():
        reference = ClipClassifier.from_bundle(load_bundle(tiny_model)).eval()(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(together, reference, atol=1e-4)
    backend = Recognizer.load(tiny_onnx).backend  # equal lengths grouped into calls, order kept
    mixed = [batch[0], batch[1][:30_000], batch[2], batch[1]]
    np.testing.assert_allclose(backend.probabilities(mixed),
                               np.concatenate([session.run(None, {"waveform": c[None]})[0] for c in mixed]), atol=1e-5)
