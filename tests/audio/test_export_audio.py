"""``musegansynth export audio``: a timbre model written again with its IF residual's gain scaled."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from audio.export import scale_residual
from audio.generate import TimbreGenerator, save_timbre_generator
from audio.modules import DRUM_PROGRAM, Generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cli_checks

from cli_checks import assert_user_error, run_cli  # noqa: E402

GEN_KWARGS = dict(latent_dim=8, frames=16, bins=16, channels=[16, 12, 8], pitch_dim=4, program_dim=4)
SPEC = {"sample_rate": 8000, "n_fft": 128, "hop": 32, "n_mels": 16}


def _model(tmp_path, gain: float = -0.4, **gen):
    torch.manual_seed(0)
    kwargs = dict(GEN_KWARGS, if_prior=True, **gen)
    g = Generator(**kwargs)
    with torch.no_grad():
        g.norm_mean.normal_()
        g.norm_std.uniform_(0.5, 2.0)
        g.if_residual_gain.fill_(gain)
    meta = {"generator": kwargs, "spec": dict(SPEC), "clip_frames": 16,
            "pitch_vocab": {"pitched": [60], "drums": [36]}, "programs": [0, 128], "steps": {"generator": 7}}
    return save_timbre_generator(tmp_path / "src" / "audio_tiny", g, meta, name="tiny")


def _inputs():
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    return torch.tensor([60, 64, 36]), torch.tensor([0, 40, DRUM_PROGRAM]), torch.tensor([100, 90, 127]), z


def test_scale_multiplies_the_gain_and_keeps_everything_else(tmp_path):
    src = _model(tmp_path)
    out = scale_residual(src, tmp_path / "out", "half", 0.25)
    assert out == tmp_path / "out" / "audio_half.safetensors"
    a, b = TimbreGenerator.load(src), TimbreGenerator.load(out)
    assert a.model.if_residual_gain.item() == pytest.approx(-0.4)
    assert b.model.if_residual_gain.item() == pytest.approx(-0.1)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert set(sa) == set(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k != "if_residual_gain")
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["name"] == "half" and card["steps"] == {"generator": 7} and card["generator"]["if_prior"] is True
    assert card["export"]["source"] == "audio_tiny.safetensors"
    assert card["export"]["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert card["export"]["residual_scale"] == 0.25
    assert card["export"]["residual_gain_before"] == pytest.approx(-0.4)
    assert card["export"]["residual_gain"] == pytest.approx(-0.1)
    assert "source_export" not in card["export"]
    # scaled again: the gain halves once more and the first export's record is kept
    again = json.loads(scale_residual(out, tmp_path / "out", "quarter", 0.5).with_suffix(".json").read_text())
    assert again["export"]["residual_gain"] == pytest.approx(-0.05)
    assert again["export"]["source"] == "audio_half.safetensors"
    assert again["export"]["source_export"] == card["export"]


def test_scale_zero_gives_the_prior_alone_and_one_the_same_bytes(tmp_path):
    src = _model(tmp_path)
    zero = TimbreGenerator.load(scale_residual(src, tmp_path / "out", "zero", 0))
    bare = TimbreGenerator.load(src)
    bare_gen = Generator(**GEN_KWARGS, if_prior=True, if_residual=False)  # the residual left out
    bare_gen.load_state_dict(bare.model.state_dict())
    bare_gen.set_if_prior(bare.model.if_prior_table.clone())
    pitch, program, velocity, z = _inputs()
    with torch.no_grad():
        expected = bare_gen(z, pitch, program, velocity)
        got = zero.model(z, pitch, program, velocity)
        before = bare.model(z, pitch, program, velocity)
    assert torch.equal(got[:2], expected[:2])              # pitched notes: the prior's IF exactly
    assert not torch.allclose(before[:2, 1], got[:2, 1], atol=1e-3)
    assert torch.equal(got[2], before[2])                  # drums keep the network's IF
    one = scale_residual(src, tmp_path / "out", "one", 1.0)
    assert one.read_bytes() == src.read_bytes()


def test_cli_writes_the_model(tmp_path, capsys):
    src = _model(tmp_path)
    rc, err = run_cli(capsys, "export", "audio", src, "--out", tmp_path / "o", "--name", "x", "--residual-scale", "0.5")
    assert rc == 0, err
    assert TimbreGenerator.load(tmp_path / "o" / "audio_x.safetensors").model.if_residual_gain.item() == pytest.approx(-0.2)


@pytest.mark.parametrize("scale, words", [("-1", ["--residual-scale", ">= 0"]), ("nan", ["--residual-scale", "finite"]),
                                          ("inf", ["--residual-scale", "finite"])])
def test_bad_scale_is_one_line_and_writes_nothing(tmp_path, capsys, scale, words):
    src = _model(tmp_path)
    rc, err = run_cli(capsys, "export", "audio", src, "--out", tmp_path / "o", "--residual-scale", scale)
    assert_user_error(rc, err, *words)
    assert not (tmp_path / "o").exists()


def test_bad_sources_and_names(tmp_path, capsys):
    rc, err = run_cli(capsys, "export", "audio", tmp_path / "none.safetensors", "--out", tmp_path / "o",
                      "--residual-scale", "0")
    assert_user_error(rc, err, "none.safetensors", "not found")
    src = _model(tmp_path)
    rc, err = run_cli(capsys, "export", "audio", src, "--out", tmp_path / "o", "--name", "../up", "--residual-scale", "0")
    assert_user_error(rc, err, "--name", "../up")
    assert not (tmp_path / "o").exists()


def test_models_without_a_residual_are_refused(tmp_path, capsys):
    torch.manual_seed(0)
    plain = save_timbre_generator(tmp_path / "p" / "audio_plain", Generator(**GEN_KWARGS),
                                  {"generator": dict(GEN_KWARGS), "spec": dict(SPEC), "clip_frames": 16}, name="plain")
    rc, err = run_cli(capsys, "export", "audio", plain, "--out", tmp_path / "o", "--residual-scale", "0")
    assert_user_error(rc, err, "audio_plain.safetensors", "no harmonic IF prior")
    bare = _model(tmp_path, if_residual=False)
    rc, err = run_cli(capsys, "export", "audio", bare, "--out", tmp_path / "o", "--residual-scale", "0")
    assert_user_error(rc, err, "if_residual false")
    assert not (tmp_path / "o").exists()
