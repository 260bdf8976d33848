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
from pathlib import Path

import numpy as np

from ..models.folder import CONFIG_NAME, fingerprint, load_members


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


def export_onnx(folder: str | os.PathLike, out: str | os.PathLike, *, quantize: bool = False,
                half: bool = False, opset: int = 18) -> Path:
    """Write ``out`` (.onnx) from a model folder; ``quantize`` stores int8 convolution weights
    (dynamic quantisation; the feature computation stays float); ``half`` stores the weights as
    float16 (see :func:`half_weights`)."""
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
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = Path(tmp) / "q.onnx"
            quantize_dynamic(str(raw), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
            raw = q
        model = onnx.load(str(raw))
    if half and not quantize:
        half_weights(model)
    meta = {"labels": json.dumps(list(bundle.labels)), "sample_rate": str(sr), "model_id": model_id(folder),
            "emovox_version": __version__, "quantized": str(quantize).lower(), "half_weights": str(half and not quantize).lower(),
            "temperatures": json.dumps([b.extra.get("calibration", {}).get("temperature", 1.0) for b in members]),
            "input": "mono float32 waveforms of equal length [batch, samples] at sample_rate, values in [-1, 1]",
            "output": "probabilities [batch, len(labels)], each row summing to 1",
            "config": (folder / CONFIG_NAME).read_text()}
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(out))
    return out
