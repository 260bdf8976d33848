"""Shared fixtures: a tiny RAVDESS copy (real files), a tiny config, a tiny trained model and its
ONNX exports (session-scoped: each is made once per run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess"
SPEECH = RAVDESS / "Audio_Speech_Actors_01-24"

torch.set_num_threads(2)


def tiny_files() -> list[Path]:
    """Eight clips (one per emotion) from each of three actors: 24 real RAVDESS files."""
    files = []
    for actor in ("01", "02", "03"):
        for emotion in range(1, 9):
            files.append(SPEECH / f"Actor_{actor}" / f"03-01-{emotion:02d}-01-01-01-{actor}.flac")
    return files


@pytest.fixture(scope="session")
def tiny_ravdess(tmp_path_factory) -> Path:
    assert SPEECH.is_dir(), f"RAVDESS not found at {RAVDESS} (expected ../shared beside the repo)"
    root = tmp_path_factory.mktemp("ravdess")
    for f in tiny_files():
        dest = root / "Audio_Speech_Actors_01-24" / f.parent.name / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    return root


@pytest.fixture(scope="session")
def tiny_config(tiny_ravdess, tmp_path_factory) -> dict:
    from emovox.config import load_config

    cache = tmp_path_factory.mktemp("cache")
    return load_config(None, [
        f"data.root={tiny_ravdess}", f"data.cache_dir={cache}", "model.width=8", "training.epochs=3",
        "training.batch_size=8", "training.val_speakers=1", "training.max_lr=0.003", "lr_find.steps=12",
    ])


def train_tiny(cfg, run_dir: Path):
    """Train ``cfg`` on the tiny corpus's actors 01 and 02, choosing the epoch on actor 03:
    ``(the dataset, the TrainResult)``."""
    from emovox.training.data import load_dataset
    from emovox.training.trainer import train

    data = load_dataset(cfg, progress=False)
    train_idx = [i for i, u in enumerate(data.utterances) if u.speaker != "03"]
    val_idx = [i for i, u in enumerate(data.utterances) if u.speaker == "03"]
    return data, train(cfg, run_dir, data.subset(train_idx), data.subset(val_idx), progress=False)


@pytest.fixture(scope="session")
def tiny_model(tiny_config, tmp_path_factory) -> Path:
    """A model folder from a 3-epoch run on two actors (validation on the third)."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    train_tiny(tiny_config, run)
    return run / "best"


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory) -> Path:
    """``tiny_model`` exported to ONNX, once per run (an export takes seconds)."""
    from emovox.inference.export import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_half_onnx(tiny_model, tmp_path_factory) -> Path:
    """``tiny_model`` exported with float16 weights through the CLI, as a user would."""
    from emovox.cli import main

    out = tmp_path_factory.mktemp("onnx") / "tiny-half.onnx"
    assert main(["export", "--model", str(tiny_model), "--half", "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def serve_url():
    """`emovox serve` on a free 127.0.0.1 port: the bundled model (ONNX backend, the faster start)
    behind an API key, with small limits. Shared by the API and the browser tests."""
    from .serve_util import KEY, running_server

    with running_server("--backend", "onnx", "--api-key", KEY, "--max-upload-mb", "1.5",
                        "--max-seconds", "30", "--max-concurrent", "1") as url:
        yield url
