"""The feature cache: atomic, checksummed; a damaged entry is reported and rebuilt, never used."""

from __future__ import annotations

import logging

import pytest
import torch

from emovox.corpora import Ravdess
from emovox.pipeline import Preprocessing
from emovox.training.data import CacheError, build_features, load_checked


@pytest.fixture()
def utts(tiny_ravdess):
    return Ravdess(tiny_ravdess).utterances()[:4]


def _damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) * 2 // 3]))
    elif how == "flip-data":
        data[-100] ^= 0xFF  # a byte of the images
        path.write_bytes(bytes(data))
    elif how == "flip-header":
        data[20] ^= 0x01  # a byte of the JSON header
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncate", "flip-data", "flip-header", "empty"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(utts, tmp_path, caplog, how):
    pipe = Preprocessing()
    first = build_features(utts, pipe, cache_dir=tmp_path, progress=False)
    (entry,) = tmp_path.glob("*.safetensors")
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporary file left
    _damage(entry, how)
    with pytest.raises(CacheError):
        load_checked(entry)
    with caplog.at_level(logging.WARNING, logger="emovox.training.data"):
        again = build_features(utts, pipe, cache_dir=tmp_path, progress=False)
    assert "cannot be used" in caplog.text and "rebuilding" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(first.images, again.images)) and again.bounds == first.bounds
    load_checked(entry)  # the rebuilt entry is sound
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emovox.training.data"):
        build_features(utts, pipe, cache_dir=tmp_path, progress=False)
    assert "rebuilding" not in caplog.text  # and it is used from then on


@pytest.mark.parametrize("how", ["truncate", "flip-data", "flip-header", "empty"])
def test_a_damaged_waveform_cache_entry_is_rebuilt_with_a_warning(tmp_path, caplog, how):
    """The int16 waveform cache of waveform augmentation: checksummed like the feature cache."""
    from emovox.training.data import load_waves

    from .synthetic import make_ravdess

    utts = Ravdess(make_ravdess(tmp_path / "data", actors=(1,), emotions=(1, 5, 6))).utterances()
    cache = tmp_path / "cache"
    first = load_waves(utts, 16_000, cache_dir=cache, progress=False)
    (entry,) = cache.glob("waves-*.safetensors")
    assert [p.name for p in cache.iterdir()] == [entry.name]  # written atomically: no temporary file left
    cached = load_waves(utts, 16_000, cache_dir=cache, progress=False)
    assert all(abs(a - b).max() <= 1 / 32767 for a, b in zip(first, cached))  # 16-bit samples
    _damage(entry, how)
    with pytest.raises(CacheError):
        load_checked(entry)
    with caplog.at_level(logging.WARNING, logger="emovox.training.data"):
        again = load_waves(utts, 16_000, cache_dir=cache, progress=False)
    assert f"waveform cache {entry} cannot be used" in caplog.text and "rebuilding" in caplog.text
    assert all((a == b).all() for a, b in zip(first, again))  # decoded again, not read from the damaged entry
    load_checked(entry)  # the rebuilt entry is sound


def test_a_waveform_cache_entry_of_other_clips_is_not_used(tmp_path, caplog):
    from emovox.training.data import load_waves

    from .synthetic import make_ravdess

    utts = Ravdess(make_ravdess(tmp_path / "data", actors=(1,), emotions=(1, 5))).utterances()
    cache = tmp_path / "cache"
    load_waves(utts, 16_000, cache_dir=cache, progress=False)
    (entry,) = cache.glob("waves-*.safetensors")
    other = Ravdess(make_ravdess(tmp_path / "other", actors=(2,), emotions=(3,))).utterances()
    load_waves(other, 16_000, cache_dir=tmp_path / "c2", progress=False)
    (foreign,) = (tmp_path / "c2").glob("waves-*.safetensors")
    foreign.replace(entry)  # a sound entry, under the name of another set of clips
    with caplog.at_level(logging.WARNING, logger="emovox.training.data"):
        waves = load_waves(utts, 16_000, cache_dir=cache, progress=False)
    assert "other clips" in caplog.text and len(waves) == 2
