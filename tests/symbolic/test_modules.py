"""MuseGAN building blocks: shapes, binary neurons, gradient penalty, EMA, conditioning."""

from __future__ import annotations

import math

import pytest
import torch

from symbolic.modules import (Critic, Generator, binary_neuron, chord_pitch_map, ema_update, gradient_penalty,
                              paste_condition)

SMALL = dict(n_tracks=3, n_bars=2, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=2)


def small_generator(**kw) -> Generator:
    torch.manual_seed(0)
    args = dict(SMALL, z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=4,
                track_cond_dim=4)
    args.update(kw)
    return Generator(**args).eval()


def test_generator_and_critic_shapes():
    g = small_generator()
    z = g.sample_latents(5)
    assert {k: tuple(v.shape) for k, v in z.items()} == {
        "shared": (5, 4), "shared_t": (5, 4), "private": (5, 3, 4), "private_t": (5, 3, 4)}
    chords = torch.zeros(5, 2, 4, 12)
    chords[:, :, :, [0, 4, 7]] = 1
    with torch.no_grad():
        y = g(z, chords=chords, style=torch.tensor([0, 1, -1, 0, 1]))
    assert y.shape == (5, 3, 2, 8, 24), (y.shape, (5, 3, 2, 8, 24))
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    d = Critic(**SMALL, channels=(4, 8), hidden=8, style_dim=2)
    s = d(y, chords=chords)
    assert s.shape == (5,), s.shape
    with pytest.raises(ValueError, match=r"critic expects rolls \[N, 3, 2, 8, 24\]"):
        d(torch.zeros(5, 3, 2, 8, 12))


def test_pitch_count_not_multiple_of_12():
    g = small_generator(n_pitches=10, lowest_pitch=60)
    y = g(g.sample_latents(2))
    assert y.shape == (2, 3, 2, 8, 10), y.shape
    d = Critic(**dict(SMALL, n_pitches=10, lowest_pitch=60), channels=(4, 8), hidden=8)
    assert d(y).shape == (2,)


def test_binary_neuron_forward_is_binary_and_gradient_is_sigmoid_gradient():
    x = torch.tensor([-2.0, -0.1, 0.0, 0.3, 4.0], requires_grad=True)
    y = binary_neuron(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0], y  # sigmoid(0) = 0.5 is not > 0.5
    y.sum().backward()
    sig = torch.sigmoid(x.detach())
    assert torch.allclose(x.grad, sig * (1 - sig)), (x.grad, sig * (1 - sig))


def test_deterministic_generator_outputs_binary_and_passes_gradients():
    g = small_generator(binarize="deterministic").train()
    y = g(g.sample_latents(4))
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    y.sum().backward()
    assert g.out_w.grad is not None and float(g.out_w.grad.abs().sum()) > 0


def test_gradient_penalty_hand_made_linear_critic():
    # critic(x) = sum(w * x): its gradient is w everywhere, so GP = (||w|| - 1)^2 exactly.
    w = torch.tensor([3.0, 4.0])  # norm 5

    def critic(x):
        return (x * w).sum(-1)

    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    gp = gradient_penalty(critic, real, fake)
    assert math.isclose(float(gp), 16.0, rel_tol=1e-6), float(gp)

    # quadratic critic c(x) = 0.5 * ||x||^2 has gradient x: at the midpoint of real=(2,0) and fake=(0,0)
    # the interpolate is (1, 0) with weight 0.5, gradient norm 1, penalty 0.
    def quad(x):
        return 0.5 * (x ** 2).sum(-1)

    gp0 = gradient_penalty(quad, torch.tensor([[2.0, 0.0]]), torch.zeros(1, 2), weight=torch.tensor([0.5]))
    assert float(gp0) == pytest.approx(0.0, abs=1e-7)
    gp1 = gradient_penalty(quad, torch.tensor([[2.0, 0.0]]), torch.zeros(1, 2), weight=torch.tensor([1.0]))
    assert float(gp1) == pytest.approx(1.0), float(gp1)  # gradient (2, 0): (2 - 1)^2


def test_gradient_penalty_is_differentiable_for_the_critic():
    d = Critic(**SMALL, channels=(4, 8), hidden=8)
    real = (torch.rand(3, 3, 2, 8, 24) > 0.8).float()
    gp = gradient_penalty(d, real, torch.rand_like(real))
    gp.backward()
    assert d.pitch.weight.grad is not None and float(d.pitch.weight.grad.abs().sum()) > 0


def test_ema_update_math():
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        a.weight.fill_(1.0)
        a.bias.fill_(0.0)
        b.weight.fill_(3.0)
        b.bias.fill_(-2.0)
    ema_update(a, b, decay=0.75)
    assert torch.allclose(a.weight, torch.full((1, 2), 0.75 * 1 + 0.25 * 3)), a.weight
    assert torch.allclose(a.bias, torch.tensor([0.25 * -2.0])), a.bias
    bn_a, bn_b = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    bn_b.running_mean.fill_(5.0)
    ema_update(bn_a, bn_b, decay=0.9)
    assert bn_a.running_mean.tolist() == [5.0, 5.0]  # buffers are copied


def test_chord_pitch_map_puts_chord_tones_on_the_right_pitches():
    chords = torch.zeros(1, 1, 4, 12)
    chords[0, 0, :2, [0, 4, 7]] = 1  # C major on beats 0-1
    chords[0, 0, 2:, [9, 0, 4]] = 1  # A minor on beats 2-3
    m = chord_pitch_map(chords, steps_per_bar=8, n_pitches=24, lowest_pitch=48)  # pitches 48..71
    assert m.shape == (1, 1, 8, 24), m.shape
    on0 = (torch.nonzero(m[0, 0, 0]).flatten() + 48).tolist()
    assert on0 == [48, 52, 55, 60, 64, 67], on0
    on7 = (torch.nonzero(m[0, 0, 7]).flatten() + 48).tolist()
    assert on7 == [48, 52, 57, 60, 64, 69], on7


def test_chord_conditioning_changes_output():
    g = small_generator()
    with torch.no_grad():
        g.chord_gain.fill_(2.0)
    z = g.sample_latents(2, torch.Generator().manual_seed(3))
    c1 = torch.zeros(2, 2, 4, 12)
    c1[..., [0, 4, 7]] = 1
    c2 = torch.zeros(2, 2, 4, 12)
    c2[..., [2, 6, 9]] = 1
    y0, y1, y2 = g(z), g(z, chords=c1), g(z, chords=c2)
    assert not torch.allclose(y1, y2), "different chords gave the same output"
    assert not torch.allclose(y0, y1), "chords had no effect"
    # the chord path raises the probability of chord tones
    cm = chord_pitch_map(c1, 8, 24, 48)[:, None]
    assert float((y1 * cm).sum() / cm.sum() / 3) > float((y0 * cm).sum() / cm.sum() / 3)


def test_style_and_condition_track_change_output_and_paste():
    g = small_generator()
    z = g.sample_latents(2, torch.Generator().manual_seed(4))
    a = g(z, style=torch.tensor([0, 0]))
    b = g(z, style=torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    given = (torch.rand(2, 2, 8, 24, generator=torch.Generator().manual_seed(5)) > 0.7).float()
    ct = torch.tensor([1, -1])
    y = g(z, cond_roll=given, cond_track=ct)
    assert torch.equal(y[0, 1], given[0]), "given track not kept"
    assert not torch.equal(y[1, 1], given[1])
    free = g(z)
    assert not torch.allclose(y[0, 0], free[0, 0]), "the given track did not influence the other tracks"


def test_paste_condition():
    roll = torch.zeros(2, 3, 1, 2, 2)
    cond = torch.ones(2, 1, 2, 2)
    out = paste_condition(roll, cond, torch.tensor([2, -1]))
    assert out[0, 2].sum() == 4 and out[0, :2].sum() == 0 and out[1].sum() == 0, out


def test_generator_determinism_and_rejects_bad_options():
    g = small_generator()
    y1 = g(g.sample_latents(3, torch.Generator().manual_seed(9)))
    y2 = g(g.sample_latents(3, torch.Generator().manual_seed(9)))
    assert torch.equal(y1, y2)
    with pytest.raises(ValueError, match="binarize"):
        Generator(**SMALL, binarize="stochastic")
    with pytest.raises(ValueError, match="multiple of beats_per_bar"):
        Generator(**dict(SMALL, steps_per_bar=6))


def test_half_beat_stage_wires_each_half_of_a_beat_to_its_own_features(tmp_path):
    from symbolic.export import export_generator
    from symbolic.generate import Composer

    kw = dict(steps_per_bar=16, half_beat_channels=6)
    g = small_generator(**kw)
    plain = small_generator(steps_per_bar=16)
    assert g.config["half_beat_channels"] == 6 and "half_beat_channels" not in plain.config
    assert tuple(g.trunk_half.weight.shape) == (12, 8) and tuple(g.trunk_up.weight.shape) == (2 * 4, 6)
    z = g.sample_latents(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = g(z)
        assert y.shape == (3, 3, 2, 16, 24)
        g.trunk_half.weight[6:] += 1.0      # the second half-beat's features only (eval: no batch statistics)
        y2 = g(z)
    changed = (y2 - y).abs().amax(dim=(0, 1, 2, 4)).reshape(4, 4) > 0  # [beat, step within the beat]
    assert changed[:, 2:].all() and not changed[:, :2].any()
    # the exported card carries the stage, and the loaded composer decodes the same phrases
    meta = {"tracks": ["a", "b", "c"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 2, "styles": ["x", "y"],
            "grid": {"steps_per_beat": 4, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}}
    export_generator(g, tmp_path, "half", meta)
    comp = Composer.load(tmp_path / "symbolic_half.json")
    assert comp.generator.config["half_beat_channels"] == 6
    with torch.no_grad():
        assert torch.equal(comp.decode(z, threshold=None), g(z))
    with pytest.raises(ValueError, match="half_beat_channels 6: needs a width >= 0 and an even number of steps per beat"):
        small_generator(steps_per_bar=12, half_beat_channels=6)
    with pytest.raises(ValueError, match="half_beat_channels -1"):
        small_generator(half_beat_channels=-1)


def test_critic_onset_inputs_hand_made_roll():
    # the first layer of Critic(onsets=True) sees, per pitch: the T tracks, the chord map, then
    # each track's note starts, phrase-wide (a note held over the bar line starts once)
    d = Critic(**SMALL, channels=(4, 8), hidden=8, onsets=True)
    assert d.in_channels == 7 and d.pitch.in_features == 12 * 7
    roll = torch.zeros(1, 3, 2, 8, 24)
    roll[0, 1, 0, 6:, 5] = 1            # bridge, pitch 53: steps 6-7 of bar 0 ...
    roll[0, 1, 1, :2, 5] = 1            # ... held on over the bar line to step 1 of bar 1
    roll[0, 0, 0, 2:4, 15] = 1          # melody, pitch 63: one note at steps 2-3 ...
    roll[0, 0, 0, 5, 15] = 1            # ... and a second one at step 5
    seen = {}

    def keep_input(module, inp, out):
        seen["x"] = inp[0].detach()

    d.pitch.register_forward_hook(keep_input)
    d(roll)
    x = seen["x"].reshape(2, 8, 2, 12, 7).reshape(1, 2, 8, 24, 7)     # [N, B, S, P, channel]
    assert torch.equal(x[..., :3], roll.permute(0, 2, 3, 4, 1))
    assert float(x[..., 3].abs().sum()) == 0                          # no chords given
    starts = x[..., 4:].permute(0, 4, 1, 2, 3)                         # [N, T, B, S, P]
    assert [tuple(i) for i in starts.nonzero().tolist()] == [(0, 0, 0, 2, 15), (0, 0, 0, 5, 15),
                                                               (0, 1, 0, 6, 5)]


def test_widen_critic_for_onsets_keeps_scores():
    from symbolic.modules import widen_critic_for_onsets

    torch.manual_seed(0)
    plain = Critic(**SMALL, channels=(4, 8), hidden=8)
    wide = Critic(**SMALL, channels=(4, 8), hidden=8, onsets=True)
    state = dict(plain.state_dict())
    state["pitch.weight"] = widen_critic_for_onsets(state["pitch.weight"], 3, 12)
    assert state["pitch.weight"].shape == (4, 84)
    wide.load_state_dict(state)
    roll = (torch.rand(4, 3, 2, 8, 24) > 0.8).float()
    chords = torch.zeros(4, 2, 4, 12)
    chords[..., [0, 4, 7]] = 1
    assert torch.allclose(wide(roll, chords=chords), plain(roll, chords=chords), atol=1e-6)
    with pytest.raises(ValueError, match="expected 12 x 4"):
        widen_critic_for_onsets(state["pitch.weight"], 3, 12)
