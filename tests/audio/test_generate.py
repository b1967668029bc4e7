"""TimbreGenerator: loading shipped weights, shapes, determinism, load errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from audio.generate import TimbreGenerator, save_timbre_generator
from audio.modules import Generator
from pipeline.errors import UserError

GEN_KWARGS = dict(latent_dim=8, frames=16, bins=16, channels=[16, 12, 8], pitch_dim=4, program_dim=4, output="linear")
SPEC = {"sample_rate": 8000, "n_fft": 128, "hop": 32, "n_mels": 16}


def _save(tmp_path, **overrides):
    torch.manual_seed(0)
    g = Generator(**GEN_KWARGS)
    g.norm_mean.fill_(-4.0)
    meta = {"generator": dict(GEN_KWARGS), "spec": dict(SPEC), "clip_frames": 16,
            "pitch_vocab": {"pitched": [60], "drums": [36]}, "programs": [0, 128]}
    meta.update(overrides)
    return save_timbre_generator(tmp_path / "audio_tiny", g, meta, name="tiny"), g


def _inputs(tg: TimbreGenerator, seed: int = 0):
    z = tg.sample_z(3, torch.Generator().manual_seed(seed))
    return torch.tensor([60, 64, 36]), torch.tensor([0, 40, 128]), torch.tensor([100, 90, 127]), z


def test_load_and_generate_shapes(tmp_path):
    path, g = _save(tmp_path)
    assert path.name == "audio_tiny.safetensors" and (tmp_path / "audio_tiny.json").is_file()
    tg = TimbreGenerator.load(path)
    assert (tg.sample_rate, tg.latent_dim, tg.clip_frames, tg.bins) == (8000, 8, 16, 16)
    assert tg.transform.config.n_mels == 16
    spec = tg.generate_spec(*_inputs(tg))
    assert spec.shape == (3, 2, 16, 16), spec.shape
    assert spec.dtype == torch.float32
    assert spec[:, 1].abs().max() <= 1.0
    # the normalisation buffers travel with the weights
    assert torch.equal(tg.model.norm_mean, g.norm_mean)
    waves = tg.generate(*_inputs(tg))
    assert waves.shape == (3, tg.clip_samples) == (3, 15 * 32), waves.shape
    assert waves.dtype == torch.float32
    none = torch.zeros(0, dtype=torch.long)   # no notes: no waves (was a reshape error; from QA)
    assert tg.generate(none, none, none, tg.sample_z(0)).shape == (0, tg.clip_samples)
    assert tg.generate_spec(none, none, none, tg.sample_z(0)).shape == (0, 2, 16, 16)
    # the folder and the stem load the same files
    for p in (tmp_path, tmp_path / "audio_tiny", tmp_path / "audio_tiny.json"):
        other = TimbreGenerator.load(p, name="tiny")
        assert torch.equal(other.generate_spec(*_inputs(other)), spec)


def test_generation_deterministic_and_z_matters(tmp_path):
    path, _ = _save(tmp_path)
    tg = TimbreGenerator.load(path)
    a = tg.generate_spec(*_inputs(tg, seed=1))
    b = tg.generate_spec(*_inputs(tg, seed=1))
    c = tg.generate_spec(*_inputs(tg, seed=2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_bad_inputs_raise(tmp_path):
    path, _ = _save(tmp_path)
    tg = TimbreGenerator.load(path)
    pitch, program, velocity, z = _inputs(tg)
    with pytest.raises(ValueError, match="z of shape"):
        tg.generate_spec(pitch, program, velocity, z[:, :4])
    with pytest.raises(ValueError, match="program should be 0-127 or 128"):
        tg.generate_spec(pitch, torch.tensor([0, 1, 129]), velocity, z)
    bad = z.clone()
    bad[1, 0] = float("nan")   # gave NaN audio without a word (found by QA)
    with pytest.raises(ValueError, match=r"z should be finite \(it holds NaN or infinite values\)"):
        tg.generate(pitch, program, velocity, bad)


def test_missing_files_raise_user_error(tmp_path):
    with pytest.raises(UserError, match=r"audio_none\.safetensors: timbre model weights not found"):
        TimbreGenerator.load(tmp_path / "audio_none.safetensors")
    path, _ = _save(tmp_path)
    (tmp_path / "audio_tiny.json").unlink()
    with pytest.raises(UserError, match=r"audio_tiny\.json: timbre model weights not found"):
        TimbreGenerator.load(path)


def test_corrupt_files_raise_user_error(tmp_path):
    path, _ = _save(tmp_path)
    json_path = tmp_path / "audio_tiny.json"
    json_path.write_text("{not json")
    with pytest.raises(UserError, match=r"audio_tiny\.json: not readable JSON"):
        TimbreGenerator.load(path)
    json_path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="not a timbre model description"):
        TimbreGenerator.load(path)
    path, _ = _save(tmp_path)
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match=r"audio_tiny\.safetensors: cannot read weights"):
        TimbreGenerator.load(path)


def test_mismatched_weights_raise_user_error(tmp_path):
    path, _ = _save(tmp_path)
    doc = json.loads((tmp_path / "audio_tiny.json").read_text())
    doc["generator"]["channels"] = [16, 12, 4]
    (tmp_path / "audio_tiny.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"audio_tiny\.safetensors: tensor .* has shape"):
        TimbreGenerator.load(path)
    doc["generator"]["channels"] = [16, 12, 8, 8]
    (tmp_path / "audio_tiny.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="weights do not match audio_tiny.json"):
        TimbreGenerator.load(path)
    doc["generator"] = {"latent_dim": 8, "no_such_arg": 1}
    (tmp_path / "audio_tiny.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="bad or missing hyper-parameters"):
        TimbreGenerator.load(path)
    # from QA: a card of other clip_frames than the generator writes gave silence or a crash later
    doc["generator"] = dict(GEN_KWARGS)
    doc["clip_frames"] = 1
    (tmp_path / "audio_tiny.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"audio_tiny.json: clip_frames: 1 does not match generator.frames 16"):
        TimbreGenerator.load(path)


def test_generate_module_does_not_import_lightning():
    code = "import sys, audio.generate; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
