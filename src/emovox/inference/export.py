"""Export a model folder to ONE ONNX graph: mono float32 waveform at the working rate →
probabilities of each emotion. Features, silence trimming, windows and the network are all
inside, so the file runs from any language with onnxruntime and no preprocessing of its own."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..models.folder import CONFIG_NAME, fingerprint, load_members


def calibration_waves(sources: list, clips: int, rate: int, on_error=None) -> list[np.ndarray]:
    """Up to ``clips`` of ``sources`` (paths or anything :func:`emovox.audio.load` reads), spread
    evenly over the list as given, decoded at ``rate``: the calibration set of a static
    quantisation. An unreadable one is passed to ``on_error(source, error)`` and skipped."""
    from ..audio import AudioError, load

    if clips < 1:
        raise ValueError(f"calibration clips must be at least 1, got {clips}")
    waves = []
    for i in np.unique(np.linspace(0, len(sources) - 1, min(clips, len(sources))).round().astype(int)):
        try:
            waves.append(load(sources[i], rate))
        except AudioError as err:
            if on_error is None:
                raise
            on_error(sources[i], err)
    return waves


def static_quantize(src: Path, out: Path, calibration: Iterable[np.ndarray], *, reduce_range: bool = True) -> Path:
    """int8 convolutions with input ranges fixed by ``calibration`` waveforms (min/max of each
    convolution's input over them), weights per output channel; onnxruntime runs them as
    ``QLinearConv``. Everything else — the spectrum, mel and dB, the windows, the pooling and
    the classifier — stays float32 (but for attention pooling's two 1x1 score convolutions,
    which are convolutions too).

    ``reduce_range``: 7-bit weights. On x86 CPUs without VNNI (AVX2-only, like some of this
    project's machines) onnxruntime multiplies uint8 inputs by int8 weights in pairs summed to
    int16, which can saturate with full 8-bit weights; 7 bits cannot, so the file gives the same
    answers on every CPU (onnxruntime's quantisation guide recommends it there)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    waves = [np.ascontiguousarray(w, dtype=np.float32).reshape(1, -1) for w in calibration]
    if not waves:
        raise ValueError("static quantisation needs at least one calibration waveform")

    class Waves(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(waves)

        def get_next(self):
            wave = next(self.items, None)
            return None if wave is None else {"waveform": wave}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Waves(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, reduce_range=reduce_range)
    return out


def model_id(folder: Path) -> str:
    """Name of the recipe plus a short hash of the weights and calibration."""
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    return f"{cfg.get('provenance', {}).get('name', 'emovox')}@{fingerprint(folder)}"


def half_weights(model) -> int:
    """Store the network's weights (the Conv and Gemm weight tensors; the feature computation's
    constants stay float32) as float16, each followed by a Cast back to float32: the file halves,
    the graph still computes in float32 (onnxruntime folds the casts when the session starts).
    Probabilities move by about 1e-5. Returns the number of tensors converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    weights = {n.input[1] for n in graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 1}
    casts = []
    for init in graph.initializer:
        if init.name not in weights or init.data_type != TensorProto.FLOAT:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "__f16"))
        casts.append(helper.make_node("Cast", [name + "__f16"], [name], to=TensorProto.FLOAT, name=f"{name}__to_f32"))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    return len(casts)


def export_onnx(folder: str | os.PathLike, out: str | os.PathLike, *, quantize: bool | str = False,
                calibration: Iterable[np.ndarray] | None = None, half: bool = False, opset: int = 18) -> Path:
    """Write ``out`` (.onnx) from a model folder.

    ``quantize``: int8 convolutions, the feature computation staying float. ``"dynamic"`` (or
    ``True``) stores int8 weights and quantises each convolution's input at run time — slower
    than float32 on the CPUs measured here; ``"static"`` also fixes each convolution's input
    range from ``calibration`` (waveforms at the model's rate, e.g. 50-100 training clips):
    ``QLinearConv`` kernels, about 1.8x faster than float32 on a Zen 4 core (see
    :func:`static_quantize`). ``half`` stores the weights as float16 (see :func:`half_weights`).
    """
    kind = {False: None, None: None, True: "dynamic"}.get(quantize, quantize)
    if kind not in (None, "dynamic", "static"):
        raise ValueError(f"quantize must be 'dynamic', 'static' or False, got {quantize!r}")
    if kind == "static":
        calibration = list(calibration or [])
        if not calibration:
            raise ValueError("static quantisation needs calibration waveforms (a few dozen training clips)")
    if half and kind:
        raise ValueError("half (float16 weights) and quantize (int8) exclude each other: choose one")
    import onnx
    import torch

    from .. import __version__
    from ..pipeline import ClipClassifier, EnsembleClassifier

    folder, out = Path(folder), Path(out)
    members = load_members(folder)
    bundle = members[0]
    clf = ClipClassifier.from_bundle(bundle).eval() if len(members) == 1 else \
        EnsembleClassifier([ClipClassifier.from_bundle(b) for b in members]).eval()
    sr = bundle.pipeline.sample_rate
    # a batch of equal-length clips [batch, samples]: one clip is a batch of one, a timeline's
    # windows go in one call
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3 * sr)).astype(np.float32) * 0.1)
    samples = torch.export.Dim("samples", min=max(b.pipeline.features.n_fft for b in members), max=sr * 3600 * 4)
    batch = torch.export.Dim("batch", min=1, max=4096)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        logging.getLogger("torch").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # stdout: the exporter narrates every step. The warning: torch 2.13's exporter copies
            # its own pytree specs, and re-creating a LeafSpec trips torch's deprecation of that
            # class; it is about torch's internals, and users of `emovox export` can do nothing about it
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
            torch.onnx.export(clf, (example,), str(raw), dynamo=True, opset_version=opset,
                              input_names=["waveform"], output_names=["probabilities"],
                              dynamic_shapes={"wave": {0: batch, 1: samples}}, external_data=False)
        if kind == "dynamic":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = Path(tmp) / "q.onnx"
            quantize_dynamic(str(raw), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
            raw = q
        elif kind == "static":
            raw = static_quantize(raw, Path(tmp) / "q.onnx", calibration)
        model = onnx.load(str(raw))
    if half and not kind:
        half_weights(model)
    meta = {"labels": json.dumps(list(bundle.labels)), "sample_rate": str(sr), "model_id": model_id(folder),
            "emovox_version": __version__, "quantized": {None: "false", "dynamic": "true"}.get(kind, kind),
            "half_weights": str(bool(half and not kind)).lower(),
            "temperatures": json.dumps([b.extra.get("calibration", {}).get("temperature", 1.0) for b in members]),
            "input": "mono float32 waveforms of equal length [batch, samples] at sample_rate, values in [-1, 1]",
            "output": "probabilities [batch, len(labels)], each row summing to 1",
            "config": (folder / CONFIG_NAME).read_text()}
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(out))
    return out
