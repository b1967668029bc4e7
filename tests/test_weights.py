"""pipeline.weights: byte-stable safetensors writing and checked reading."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.weights import read_matching_state, write_weights


def _header(path) -> dict:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + size])


def test_equal_weights_are_equal_bytes_in_and_across_processes(tmp_path):
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    torch.nn.init.constant_(module[0].weight, 0.25)
    torch.nn.init.constant_(module[0].bias, -1.0)
    paths = [write_weights(tmp_path / f"w{i}.safetensors", module.state_dict(), kind="test-kind/1")
             for i in range(6)]
    blobs = {p.read_bytes() for p in paths}
    assert len(blobs) == 1
    code = ("import sys, torch; from torch import nn; from pipeline.weights import write_weights\n"
            "m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))\n"
            "torch.nn.init.constant_(m[0].weight, 0.25); torch.nn.init.constant_(m[0].bias, -1.0)\n"
            "write_weights(sys.argv[1], m.state_dict(), kind='test-kind/1')\n")
    other = tmp_path / "other.safetensors"
    subprocess.run([sys.executable, "-c", code, str(other)], check=True)
    assert other.read_bytes() == blobs.pop()
    assert _header(paths[0])["__metadata__"] == {"format": "test-kind/1"}
    assert "__metadata__" not in _header(write_weights(tmp_path / "bare.safetensors", {"x": torch.ones(2)}))


def test_written_weights_read_back_into_their_module(tmp_path):
    src, dst = nn.Linear(5, 2), nn.Linear(5, 2)
    path = write_weights(tmp_path / "lin.safetensors", src.state_dict(), kind="k/1")
    dst.load_state_dict(read_matching_state(path, dst, "does not match"))
    assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lin.safetensors"]  # no temporary left
    with pytest.raises(UserError, match=r"lin.safetensors: tensor \w+ has shape \(2\b.*expected \(3\b"):
        read_matching_state(path, nn.Linear(5, 3), "does not match")
    with pytest.raises(UserError, match="does not match"):
        read_matching_state(path, nn.Linear(5, 2, bias=False), "does not match")


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    import safetensors.torch

    path = write_weights(tmp_path / "w.safetensors", {"x": torch.zeros(3)})
    before = path.read_bytes()

    def half_written(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 5)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_weights(path, {"x": torch.ones(3)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_tied_weights_are_written_as_copies(tmp_path):
    shared = torch.arange(3.0)
    path = write_weights(tmp_path / "tied.safetensors", {"a": shared, "b": shared})
    from safetensors.torch import load_file

    back = load_file(str(path))
    assert torch.equal(back["a"], shared) and torch.equal(back["b"], shared)
