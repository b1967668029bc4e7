"""The generator's per-(track, bar) gate and starting a run from a training checkpoint (init_from)."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.errors import UserError
from symbolic.export import export_generator
from symbolic.generate import Composer
from symbolic.lightning import MuseGANModule
from symbolic.modules import BAR_GATE_OPEN, BAR_GATE_SCALE, Generator

SMALL = dict(n_tracks=3, n_bars=2, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=2,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)


def _pair():
    torch.manual_seed(0)
    plain = Generator(**SMALL).eval()
    gated = Generator(**SMALL, bar_gate=True).eval()
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("bar_gate.") for k in missing)
    return plain, gated


def test_a_new_gate_is_open_and_scales_every_bar_by_sigmoid_5():
    plain, gated = _pair()
    z = plain.sample_latents(5, generator=torch.Generator().manual_seed(1))
    g = gated.gates(z)
    assert g.shape == (5, 3, 2)
    assert torch.allclose(g, torch.full_like(g, 1 / (1 + math.exp(-BAR_GATE_OPEN))))
    with torch.no_grad():
        assert torch.allclose(gated(z), plain(z) * g[..., None, None], atol=1e-6)
        assert torch.equal(plain.gates(z), torch.ones(5, 3, 2))
    assert "bar_gate" not in plain.config or plain.config["bar_gate"] is False
    assert not any("bar_gate" in k for k in plain.state_dict())


def test_a_closed_gate_silences_exactly_its_track_and_bar():
    _, gated = _pair()
    with torch.no_grad():
        gated.bar_gate[2].bias[1] = -20.0 / BAR_GATE_SCALE  # track 1 closed in every bar
    z = gated.sample_latents(4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = gated(z)
    assert float(out[:, 1].max()) < 1e-6
    assert float(out[:, [0, 2]].max()) > 0.0
    # binary neurons: a closed bar is all zeros, the gradient still reaches the gate
    binary = Generator(**SMALL, bar_gate=True, binarize="deterministic")
    binary.load_state_dict(gated.state_dict())
    out = binary(z)
    assert set(out.unique().tolist()) <= {0.0, 1.0} and float(out[:, 1].sum()) == 0.0
    out.sum().backward()
    assert binary.bar_gate[2].bias.grad is not None and float(binary.bar_gate[2].bias.grad.abs().sum()) > 0


def test_gated_weights_export_and_load_to_the_same_output(tmp_path):
    _, gated = _pair()
    with torch.no_grad():
        gated.bar_gate[2].bias.copy_(torch.tensor([3.0, -3.0, 0.5]) / BAR_GATE_SCALE)
    meta = {"tracks": ["a", "b", "c"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 2, "styles": ["x", "y"],
            "grid": {"steps_per_beat": 2, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}}
    export_generator(gated, tmp_path, "gated", meta)
    comp = Composer.load(tmp_path / "symbolic_gated.json")
    assert comp.generator.config["bar_gate"] is True
    z = gated.sample_latents(3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(comp.generator.eval()(z), gated(z))


def test_init_from_copies_weights_and_steps_and_adds_a_gate(tmp_path, tiny_fit, tiny_module_kw):
    first, trainer = tiny_fit(tmp_path, 4)
    ckpt = tmp_path / "first.ckpt"
    trainer.save_checkpoint(ckpt)
    assert first.g_steps == 2

    second = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta, bar_gate=True, init_from=str(ckpt))
    second.load_training_weights(ckpt)
    assert (second.g_steps, second.d_steps) == (first.g_steps, first.d_steps) == (2, 2)
    for name, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[name], value), name
    assert float(second.generator.gates(second.generator.sample_latents(1))[0, 0, 0]) == pytest.approx(
        1 / (1 + math.exp(-BAR_GATE_OPEN)))

    third, _ = tiny_fit(tmp_path, 2, bar_gate=True, init_from=str(ckpt))  # setup() loads it, then trains on
    assert third.g_steps == 3


def test_init_from_refuses_a_missing_or_mismatching_checkpoint(tmp_path, tiny_module_kw):
    model = MuseGANModule(**tiny_module_kw)
    with pytest.raises(UserError, match="init_from checkpoint not found"):
        model.load_training_weights(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read model.init_from"):
        model.load_training_weights(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {"generator.out_w": torch.zeros(1), "g_ema.out_w": torch.zeros(1)}},
               tmp_path / "other.ckpt")
    with pytest.raises(UserError, match="does not match this model's configuration"):
        model.load_training_weights(tmp_path / "other.ckpt")
    torch.save({"state_dict": {"generator_ema.w": torch.zeros(1)}}, tmp_path / "timbre.ckpt")
    with pytest.raises(UserError, match=r"timbre.ckpt: model.init_from: a checkpoint of another model, not the "
                                        r"composer's \(its state holds generator_ema\)"):
        model.load_training_weights(tmp_path / "timbre.ckpt")


def test_init_from_gives_a_critic_onset_inputs_with_the_same_scores(tmp_path, tiny_module_kw, grown_from_checkpoint):
    first, wide, roll, _ = grown_from_checkpoint(d_onsets=True)
    c1, cols = first.critic.pitch.weight.shape
    assert wide.critic.pitch.weight.shape == (c1, cols * (2 * 3 + 1) // (3 + 1))
    with torch.no_grad():
        assert torch.allclose(wide.critic(roll), first.critic(roll), atol=1e-6)
    # the other way round (onset inputs dropped) is a mismatch
    back = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta)
    wide_ckpt = tmp_path / "wide.ckpt"
    torch.save({"state_dict": wide.state_dict()}, wide_ckpt)
    with pytest.raises(UserError, match="differs at .*critic.pitch.weight"):
        back.load_training_weights(wide_ckpt)
