"""Arrangement conditioning (which tracks play in which bars) and monophonic tracks."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import UserError
from symbolic.export import export_generator
from symbolic.generate import Composer
from symbolic.lightning import MuseGANModule
from symbolic.modules import (ARRANGEMENT_KEY, CHAIN_SLOTS, LATENT_KEYS, SLOT_CHORD, SLOT_NO_CHORD, SLOT_NO_INFO,
                              Generator, arrangement_states, bar_chord_slots, keep_most_probable_pitch,
                              track_indices, upgrade_arrangement_state)

SMALL = dict(n_tracks=3, n_bars=4, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=1,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)
META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 4,
        "styles": [], "grid": {"steps_per_beat": 2, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}}

# two hand-made phrases: activity [N, T, B]
ACTIVITY = torch.tensor([
    [[1, 1, 0, 0],    # melody
     [0, 1, 1, 0],    # bridge
     [1, 1, 1, 1]],   # piano   -> states per bar: 1+4=5, 1+2+4=7, 2+4=6, 4
    [[0, 1, 1, 1],
     [0, 0, 0, 0],
     [1, 1, 1, 1]],   # -> 4, 5, 5, 5
], dtype=torch.bool)


def _fitted(**kw) -> Generator:
    torch.manual_seed(0)
    g = Generator(**SMALL, arrangement=True, **kw).eval()
    g.fit_arrangement_prior(ACTIVITY)
    return g


def test_arrangement_states_number_each_bar_by_its_playing_tracks():
    assert arrangement_states(ACTIVITY).tolist() == [[5, 7, 6, 4], [4, 5, 5, 5]]


def test_the_chain_counts_first_bars_and_bar_to_bar_transitions():
    g = _fitted()   # no chords given: every bar counts in the no-information slot
    init = torch.zeros(CHAIN_SLOTS, 8)
    init[SLOT_NO_INFO, 5], init[SLOT_NO_INFO, 4] = 1, 1
    assert torch.equal(g.arrange_init, init)
    trans = torch.zeros(CHAIN_SLOTS, 8, 8)
    for a, b in [(5, 7), (7, 6), (6, 4), (4, 5), (5, 5), (5, 5)]:
        trans[SLOT_NO_INFO, a, b] += 1
    assert torch.equal(g.arrange_trans, trans)
    with pytest.raises(ValueError, match=r"activity: expected \[N, 3, 4\]"):
        g.fit_arrangement_prior(ACTIVITY[:, :2])
    with pytest.raises(ValueError, match="no arrangement conditioning"):
        Generator(**SMALL).fit_arrangement_prior(ACTIVITY)


def test_sampling_walks_the_chain_by_inverse_cdf():
    g = _fitted()
    # inverse CDF over the states in number order. First bar: 4 or 5, 1/2 each; from 5: 5 (2/3)
    # or 7 (1/3), so u < 2/3 stays at 5; 7 -> 6 -> 4 -> 5 always
    u = torch.tensor([[0.25, 0.2, 0.9, 0.9],     # 4, 5, 7, 6
                      [0.75, 0.8, 0.5, 0.5],     # 5, 7, 6, 4
                      [0.75, 0.5, 0.1, 0.9]], dtype=torch.float64)  # 5, 5, 5, 7
    states = arrangement_states(g.sample_arrangement(u))
    assert states.tolist() == [[4, 5, 7, 6], [5, 7, 6, 4], [5, 5, 5, 7]]
    assert g.sample_arrangement(u).dtype == torch.bool


def test_an_unfitted_chain_plays_every_track_and_a_dead_end_restarts_from_the_first_bar_distribution():
    g = Generator(**SMALL, arrangement=True)
    assert torch.equal(g.sample_arrangement(torch.rand(2, 4, dtype=torch.float64)), torch.ones(2, 3, 4, dtype=torch.bool))
    one = torch.tensor([[[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]], dtype=torch.bool)  # 7, 7, 0, 0
    g.fit_arrangement_prior(one)
    # state 0 never leads anywhere in the data: the next bar is drawn from the first-bar counts (7)
    u = torch.tensor([[0.25, 0.75, 0.25, 0.25]], dtype=torch.float64)  # from 7: 0 below 1/2, else 7
    assert arrangement_states(g.sample_arrangement(u)).tolist() == [[7, 7, 0, 0]]
    g.arrange_trans[SLOT_NO_INFO, 0].zero_()
    assert arrangement_states(g.sample_arrangement(u)).tolist() == [[7, 7, 0, 7]]


def test_sampled_empty_bar_rates_follow_the_data():
    g = _fitted()
    arr = g.sample_arrangement(torch.rand(20000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    # exact chain: P(first = 4) = P(first = 5) = 1/2; from 5 stay at 5 w.p. 2/3
    first = arrangement_states(arr)[:, 0]
    assert abs(float((first == 4).float().mean()) - 0.5) < 0.02
    after5 = arrangement_states(arr)[:, 1][first == 5]
    assert abs(float((after5 == 5).float().mean()) - 2 / 3) < 0.02


def test_latents_draw_the_gaussians_first_then_the_arrangement():
    plain = Generator(**SMALL)
    g = _fitted()
    za = plain.sample_latents(3, generator=torch.Generator().manual_seed(7))
    zb = g.sample_latents(3, generator=torch.Generator().manual_seed(7))
    zc = g.sample_latents(3, generator=torch.Generator().manual_seed(7))
    assert set(zb) == {*LATENT_KEYS, ARRANGEMENT_KEY} and set(za) == set(LATENT_KEYS)
    for k in LATENT_KEYS:
        assert torch.equal(za[k], zb[k])
    assert zb[ARRANGEMENT_KEY].shape == (3, 3, 4) and zb[ARRANGEMENT_KEY].dtype == torch.bool
    assert torch.equal(zb[ARRANGEMENT_KEY], zc[ARRANGEMENT_KEY])
    for path in arrangement_states(zb[ARRANGEMENT_KEY]).tolist():   # every step is one the data took
        assert g.arrange_init[SLOT_NO_INFO, path[0]] > 0
        assert all(g.arrange_trans[SLOT_NO_INFO, a, b] > 0 for a, b in zip(path, path[1:]))


def test_bars_marked_off_are_silent_and_new_layers_start_as_a_no_op():
    torch.manual_seed(0)
    plain = Generator(**SMALL).eval()
    g = Generator(**SMALL, arrangement=True).eval()
    missing, unexpected = g.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["arrange_bias", "arrange_in.weight", "arrange_init", "arrange_trans"]
    z = plain.sample_latents(2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(g(z), plain(z))                       # no arrangement given: all tracks play
        z[ARRANGEMENT_KEY] = ACTIVITY
        out = g(z)
    silent = ~ACTIVITY
    assert float(out[silent].max()) == 0.0
    assert torch.equal(out[ACTIVITY], plain(z)[ACTIVITY].detach())
    with pytest.raises(ValueError, match=r"arrangement: expected \[2, 3, 4\]"):
        g({**z, ARRANGEMENT_KEY: ACTIVITY[:, :, :2]})


def test_the_arrangement_layers_learn():
    g = Generator(**SMALL, arrangement=True).train()
    z = g.sample_latents(2, generator=torch.Generator().manual_seed(1))
    z[ARRANGEMENT_KEY] = ACTIVITY
    g(z).sum().backward()
    assert float(g.arrange_in.weight.grad.abs().sum()) > 0
    assert float(g.arrange_bias.grad.abs().sum()) > 0


def test_a_given_track_sets_its_own_row_of_the_arrangement():
    g = _fitted()
    z = g.sample_latents(2, generator=torch.Generator().manual_seed(3))
    z[ARRANGEMENT_KEY] = torch.zeros(2, 3, 4, dtype=torch.bool)
    given = torch.zeros(2, 4, 8, 24)
    given[0, 2, 0, 5] = 1                                        # phrase 0: notes in bar 2 only
    cond_track = torch.tensor([1, -1])
    arr = g.arrangement_of(z, given, cond_track)
    expected = torch.zeros(2, 3, 4)
    expected[0, 1, 2] = 1
    assert torch.equal(arr, expected)


def test_keep_most_probable_pitch_on_a_hand_made_step():
    probs = torch.tensor([0.2, 0.7, 0.6, 0.1]).reshape(1, 1, 1, 1, 4).repeat(1, 2, 1, 1, 1).requires_grad_(True)
    out = keep_most_probable_pitch(probs, (0,))
    assert out[0, 0, 0, 0].tolist() == pytest.approx([0.0, 0.7, 0.0, 0.0])
    assert out[0, 1, 0, 0].tolist() == pytest.approx([0.2, 0.7, 0.6, 0.1])    # track 1 untouched
    out.sum().backward()
    assert probs.grad[0, 0, 0, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert probs.grad[0, 1, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert keep_most_probable_pitch(probs, ()) is probs


def test_straight_through_monophony_keeps_the_value_and_passes_every_gradient():
    probs = torch.tensor([0.2, 0.7, 0.6, 0.1]).reshape(1, 1, 1, 1, 4).repeat(1, 2, 1, 1, 1).requires_grad_(True)
    out = keep_most_probable_pitch(probs, (0,), straight_through=True)
    assert torch.equal(out, keep_most_probable_pitch(probs, (0,)))
    (out * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert probs.grad[0, 0, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]             # dropped pitches too
    assert probs.grad[0, 1, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_the_straight_through_hparam_reaches_the_generator_not_its_config():
    meta = {"tracks": ["melody", "bridge", "piano"]}
    on = MuseGANModule(n_bars=2, steps_per_bar=8, n_pitches=24, data_meta=meta, monophonic=("melody",),
                       monophonic_straight_through=True)
    off = MuseGANModule(n_bars=2, steps_per_bar=8, n_pitches=24, data_meta=meta, monophonic=("melody",))
    assert on.generator.monophonic_straight_through and not off.generator.monophonic_straight_through
    assert on.generator.config == off.generator.config


def test_a_monophonic_track_never_sounds_two_pitches_at_once():
    torch.manual_seed(0)
    g = Generator(**SMALL, monophonic=(0,)).eval()
    with torch.no_grad():
        g.out_bias_pitch.fill_(3.0)                               # every pitch likely
        out = g(g.sample_latents(4, generator=torch.Generator().manual_seed(0))) > 0.5
    assert int(out[:, 0].sum(-1).max()) == 1
    assert int(out[:, 1].sum(-1).max()) > 1
    assert g.config["monophonic"] == [0]
    with pytest.raises(ValueError, match=r"monophonic: track indices must be in 0..2"):
        Generator(**SMALL, monophonic=(3,))


def test_arrangement_weights_round_trip_and_compose_reproducibly(tmp_path):
    g = _fitted(monophonic=(0,))
    with torch.no_grad():
        g.arrange_bias.normal_()
    export_generator(g, tmp_path, "arr", META)
    comp = Composer.load(tmp_path / "symbolic_arr.json")
    assert torch.equal(comp.generator.arrange_trans, g.arrange_trans)
    z = comp.sample_latents(6, torch.Generator().manual_seed(4))
    roll = comp.decode(z)
    active = roll.flatten(3).amax(-1) > 0
    assert not bool((active & ~z[ARRANGEMENT_KEY]).any())      # nothing sounds where the arrangement is off
    a = comp.compose(n_phrases=3, seed=5)
    b = comp.compose(n_phrases=3, seed=5)
    assert torch.equal(a, b) and a.shape == (3, 12, 8, 24)
    z2 = comp.sample_latents(6, torch.Generator().manual_seed(9))
    mid = comp.interpolate(z, z2, torch.tensor([0.0, 0.4, 0.5, 0.6, 1.0, 0.2]))
    pick = torch.tensor([0, 0, 1, 1, 1, 0], dtype=torch.bool)[:, None, None]
    assert torch.equal(mid[ARRANGEMENT_KEY], torch.where(pick, z2[ARRANGEMENT_KEY], z[ARRANGEMENT_KEY]))


def test_track_indices_accept_names_and_indices():
    assert track_indices(["Melody", 2], META, 3, "monophonic") == (0, 2)
    assert track_indices([], META, 3, "monophonic") == ()
    with pytest.raises(ValueError, match=r"monophonic: unknown track 'drums' \(tracks: melody, bridge, piano\)"):
        track_indices(["drums"], META, 3, "monophonic")
    with pytest.raises(ValueError, match=r"monophonic: track index 5 out of range 0..2"):
        track_indices([5], META, 3, "monophonic")


def test_fit_counts_the_training_phrases_into_both_generators(tmp_path, tiny_fit):
    model, _ = tiny_fit(tmp_path, 2, arrangement=True, monophonic=["melody"])
    assert model.generator.monophonic == (0,)
    # the fake cache's 8 training phrases play every track in every bar: state 7 only; every
    # other phrase has chords (on every bar), the rest none
    for g in (model.generator, model.g_ema):
        for slot in (SLOT_CHORD, SLOT_NO_INFO):
            assert float(g.arrange_init[slot, 7]) == 4.0 and float(g.arrange_trans[slot, 7, 7]) == 12.0
        assert float(g.arrange_init.sum()) == 8.0 and float(g.arrange_trans.sum()) == 24.0


def test_init_from_adds_arrangement_and_drops_a_gate(tmp_path, tiny_fit, tiny_module_kw):
    first, trainer = tiny_fit(tmp_path, 2, bar_gate=True)
    ckpt = tmp_path / "gated.ckpt"
    trainer.save_checkpoint(ckpt)
    second = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta, arrangement=True)
    second.load_training_weights(ckpt)
    for name, value in second.state_dict().items():
        if ".arrange_" in name:
            assert float(value.abs().sum()) == 0.0, name
        else:
            assert torch.equal(value, first.state_dict()[name]), name
