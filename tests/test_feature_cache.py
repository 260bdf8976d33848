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
