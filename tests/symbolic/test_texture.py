"""Texture rows of the arrangement: bars of single notes against bars of chords, per track."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import UserError
from symbolic.export import export_generator
from symbolic.generate import Composer
from symbolic.lightning import MuseGANModule
from symbolic.modules import (ARRANGEMENT_KEY, SLOT_NO_INFO, Generator, bar_texture, keep_most_probable_pitch,
                              widen_arrangement_weight)

SMALL = dict(n_tracks=3, n_bars=4, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=1,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)
META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 4,
        "styles": [], "grid": {"steps_per_beat": 2, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}}


def _roll() -> torch.Tensor:
    """One hand-made phrase [1, 3, 4, 8, 24]: the bridge (track 1) plays a line in bar 0, a dyad
    in bar 1, nothing in bar 2 and a line of overlapping-free notes with a repeated pitch in bar 3;
    the piano (track 2) holds a chord in every bar; the melody plays bars 0 and 2."""
    r = torch.zeros(1, 3, 4, 8, 24)
    r[0, 0, 0, :4, 5] = 1
    r[0, 0, 2, 2:6, 7] = 1
    r[0, 1, 0, 0:2, 3] = 1
    r[0, 1, 0, 2:4, 4] = 1                       # consecutive single notes: still a line
    r[0, 1, 1, 4:6, 3] = 1
    r[0, 1, 1, 5, 10] = 1                        # step 5 sounds two pitches: a dyad bar
    r[0, 1, 3, :, 9] = 1
    r[0, 2, :, :, [0, 4, 7]] = 1
    return r


def test_bar_texture_marks_bars_that_sound_two_pitches_at_once():
    tex = bar_texture(_roll())
    assert tex.tolist() == [[[False, False, False, False], [False, True, False, False], [True, True, True, True]]]


def test_the_arrangement_of_a_roll_is_activity_rows_then_texture_rows():
    g = Generator(**SMALL, arrangement=True, texture=(1,))
    assert g.arrangement_rows == 4 and g.config["texture"] == [1]
    arr = g.arrangement_from_roll(_roll())
    assert arr.tolist() == [[[True, False, True, False],        # melody plays
                             [True, True, False, True],         # bridge plays
                             [True, True, True, True],          # piano plays
                             [False, True, False, False]]]      # bridge's chord bars
    assert "texture" not in Generator(**SMALL, arrangement=True).config   # older weights keep their config
    bars = g.texture_bars(arr)
    assert list(bars) == [1] and bars[1].tolist() == [[False, True, False, False]]


def test_texture_is_checked():
    with pytest.raises(ValueError, match=r"texture: needs arrangement conditioning"):
        Generator(**SMALL, texture=(1,))
    with pytest.raises(ValueError, match=r"texture: track indices must be in 0..2, got \[3\]"):
        Generator(**SMALL, arrangement=True, texture=(3,))
    big = dict(SMALL, n_tracks=6)
    with pytest.raises(ValueError, match=r"at most 8 tracks and texture rows .* got 6 \+ 3"):
        Generator(**big, arrangement=True, texture=(0, 1, 2))


def test_the_chain_counts_and_draws_texture_bits():
    g = Generator(**SMALL, arrangement=True, texture=(1,)).eval()
    arr = g.arrangement_from_roll(_roll())
    g.fit_arrangement_prior(arr)
    # states: bit i = row i; bars: 1+2+4=7, 2+4+8=14, 1+4=5, 2+4=6
    assert g.arrange_init.shape == (3, 16) and g.arrange_trans.shape == (3, 16, 16)
    assert float(g.arrange_init[SLOT_NO_INFO, 7]) == 1.0 and float(g.arrange_init.sum()) == 1.0
    for a, b in [(7, 14), (14, 5), (5, 6)]:
        assert float(g.arrange_trans[SLOT_NO_INFO, a, b]) == 1.0
    # a chain with one path walks it exactly
    z = g.sample_latents(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z[ARRANGEMENT_KEY], arr.expand(3, -1, -1))
    with pytest.raises(ValueError, match=r"activity: expected \[N, 4, 4\]"):
        g.fit_arrangement_prior(arr[:, :3])


def test_keep_most_probable_pitch_only_in_the_marked_bars():
    probs = torch.tensor([0.2, 0.7, 0.6, 0.1]).reshape(1, 1, 1, 1, 4).repeat(1, 2, 2, 1, 1)   # [1, 2, 2, 1, 4]
    out = keep_most_probable_pitch(probs, (1,), bars=torch.tensor([[[True, False]]]))
    assert out[0, 1, 0, 0].tolist() == pytest.approx([0.0, 0.7, 0.0, 0.0])                 # marked bar
    assert out[0, 1, 1, 0].tolist() == pytest.approx([0.2, 0.7, 0.6, 0.1])                 # the other bar
    assert torch.equal(out[0, 0], probs[0, 0])                                              # other track


def test_single_note_bars_hold_one_pitch_a_step_and_chord_bars_are_free():
    torch.manual_seed(0)
    g = Generator(**SMALL, arrangement=True, texture=(1,)).eval()
    with torch.no_grad():
        g.out_bias_pitch.fill_(3.0)                               # every pitch likely
    z = g.sample_latents(2, generator=torch.Generator().manual_seed(1), arrangement=False)
    arr = torch.ones(2, 4, 4, dtype=torch.bool)
    arr[:, 3, ::2] = False                                        # bridge: single notes in bars 0 and 2
    arr[1, 1, 3] = False                                          # phrase 1: bridge silent in bar 3
    z[ARRANGEMENT_KEY] = arr
    with torch.no_grad():
        out = g(z) > 0.5
    per_step = out.sum(-1).amax(-1)                               # [2, T, B] most pitches at a step
    assert per_step[:, 1].tolist() == [[1, 24, 1, 24], [1, 24, 1, 0]]
    assert int(per_step[:, 0].min()) == 24 and int(per_step[:, 2].min()) == 24   # other tracks untouched


def test_a_given_texture_track_sets_its_activity_and_texture_rows():
    g = Generator(**SMALL, arrangement=True, texture=(1,)).eval()
    z = g.sample_latents(2, generator=torch.Generator().manual_seed(3), arrangement=False)
    z[ARRANGEMENT_KEY] = torch.zeros(2, 4, 4, dtype=torch.bool)
    given = _roll()[0, 1].expand(2, -1, -1, -1)                    # the bridge of the hand-made phrase
    arr = g.arrangement_of(z, given, torch.tensor([1, 2]))
    assert arr[0].tolist() == [[0, 0, 0, 0], [1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]]
    assert arr[1].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1], [0, 0, 0, 0]]   # given as piano: no texture row
    with pytest.raises(ValueError, match=r"arrangement: expected \[2, 4, 4\]"):
        g.arrangement_of({**z, ARRANGEMENT_KEY: torch.zeros(2, 3, 4)})


def test_widen_arrangement_weight_pads_zeros_after_the_activity_rows():
    w = torch.arange(6.0).reshape(2, 3)
    assert widen_arrangement_weight(w, (2, 4)).tolist() == [[0, 1, 2, 0], [3, 4, 5, 0]]
    b = torch.ones(3, 3, 2)
    wide = widen_arrangement_weight(b, (3, 4, 2))
    assert torch.equal(wide[:, :3], b) and float(wide[:, 3].abs().sum()) == 0.0
    with pytest.raises(ValueError, match=r"cannot widen to \[2, 2\]"):
        widen_arrangement_weight(w, (2, 2))
    with pytest.raises(ValueError, match=r"cannot widen to \[3, 4\]"):
        widen_arrangement_weight(w, (3, 4))


def test_init_from_adds_texture_rows_with_the_same_scores(tmp_path, tiny_fit, tiny_module_kw):
    first, trainer = tiny_fit(tmp_path, 2, arrangement=True)
    ckpt = tmp_path / "arranged.ckpt"
    trainer.save_checkpoint(ckpt)
    wide = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta, arrangement=True, texture=["bridge"])
    wide.load_training_weights(ckpt)
    assert wide.generator.texture == (1,)
    assert float(wide.generator.arrange_init.abs().sum()) == 0.0           # counted again at fit start
    g0, g1 = first.generator.eval(), wide.generator.eval()
    z = g0.sample_latents(3, generator=torch.Generator().manual_seed(2), arrangement=False)
    act = torch.ones(3, g0.n_tracks, g0.n_bars, dtype=torch.bool)
    act[0, 1, 0] = False
    z0 = {**z, ARRANGEMENT_KEY: act}
    z1 = {**z, ARRANGEMENT_KEY: torch.cat([act, torch.ones(3, 1, g0.n_bars, dtype=torch.bool)], 1)}
    with torch.no_grad():
        assert torch.allclose(g1.logits(z1), g0.logits(z0), atol=1e-6)
        z1[ARRANGEMENT_KEY][:, 3] = False                                    # texture rows have zero weights
        assert torch.allclose(g1.logits(z1), g0.logits(z0), atol=1e-6)
    plain = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta, arrangement=True)
    wide_ckpt = tmp_path / "wide.ckpt"
    torch.save({"state_dict": wide.state_dict()}, wide_ckpt)
    with pytest.raises(UserError, match="differs at .*arrange_"):
        plain.load_training_weights(wide_ckpt)                              # rows are not dropped


def test_a_texture_fit_counts_the_16_state_chain(tmp_path, tiny_fit):
    model, _ = tiny_fit(tmp_path, 2, arrangement=True, texture=["bridge"])
    for g in (model.generator, model.g_ema):
        assert g.texture == (1,) and g.arrange_init.shape[-1] == 16
        assert float(g.arrange_init.sum()) == 8.0 and float(g.arrange_trans.sum()) == 24.0


def test_texture_weights_round_trip_and_compose_reproducibly(tmp_path):
    torch.manual_seed(0)
    g = Generator(**SMALL, arrangement=True, texture=(1,)).eval()
    roll = _roll()
    g.fit_arrangement_prior(torch.cat([g.arrangement_from_roll(roll), g.arrangement_from_roll(roll.roll(1, 2))]))
    with torch.no_grad():
        g.out_bias_pitch.fill_(3.0)
    export_generator(g, tmp_path, "tex", META)
    comp = Composer.load(tmp_path / "symbolic_tex.json")
    assert comp.generator.texture == (1,)
    z = comp.sample_latents(5, torch.Generator().manual_seed(4))
    out = comp.decode(z, threshold=0.5)                                     # [5, 3, 4, 8, 24]
    lines = ~z[ARRANGEMENT_KEY][:, 3]
    assert bool(lines.any())
    assert int(out[:, 1].sum(-1).amax(-1)[lines].max()) <= 1
    a = comp.compose(n_phrases=2, seed=5)
    assert torch.equal(a, comp.compose(n_phrases=2, seed=5)) and a.shape == (3, 8, 8, 24)


def test_a_critic_of_arrangements_starts_as_one_without_and_then_tells_them_apart():
    from symbolic.modules import Critic

    kw = dict(n_tracks=3, n_bars=4, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=1,
              channels=(4, 4), hidden=8, style_dim=2)
    torch.manual_seed(0)
    plain = Critic(**kw)
    torch.manual_seed(0)
    both = Critic(**kw, arrangement_rows=4)
    assert both.arrange_in.weight.shape == (8, 4) and float(both.arrange_in.weight.abs().sum()) == 0.0
    roll = _roll().expand(2, -1, -1, -1, -1).clone()
    arr = Generator(**SMALL, arrangement=True, texture=(1,)).arrangement_from_roll(roll)
    with torch.no_grad():
        assert torch.allclose(both(roll, arrangement=arr), plain(roll), atol=1e-6)
        both.arrange_in.weight.normal_()
        flipped = arr.clone()
        flipped[1, 3] = ~flipped[1, 3]                                  # phrase 1 claims the other textures
        s = both(roll, arrangement=flipped)
    assert float(s[0]) == pytest.approx(float(both(roll[:1], arrangement=arr[:1])), abs=1e-6)
    assert abs(float(s[1]) - float(s[0])) > 1e-4
    with pytest.raises(ValueError, match=r"arrangement: expected \[2, 4, 4\]"):
        both(roll, arrangement=arr[:, :3])


def test_d_arrangement_trains_and_needs_arrangement(tmp_path, tiny_fit, tiny_module_kw):
    model, _ = tiny_fit(tmp_path, 2, arrangement=True, texture=["bridge"], d_arrangement=True)
    assert model.critic.arrangement_rows == 4
    assert float(model.critic.arrange_in.weight.abs().sum()) > 0.0            # it learned
    with pytest.raises(ValueError, match="d_arrangement: needs arrangement conditioning"):
        MuseGANModule(**tiny_module_kw, d_arrangement=True)


def test_init_from_gives_a_critic_the_arrangement_at_zero(tmp_path, tiny_fit, tiny_module_kw):
    first, trainer = tiny_fit(tmp_path, 2, arrangement=True)
    ckpt = tmp_path / "arranged.ckpt"
    trainer.save_checkpoint(ckpt)
    second = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta, arrangement=True, d_arrangement=True)
    second.load_training_weights(ckpt)
    assert float(second.critic.arrange_in.weight.abs().sum()) == 0.0
    for name, value in first.critic.state_dict().items():
        assert torch.equal(second.critic.state_dict()[name], value), name


def test_chord_bars_counts_two_pitch_steps_in_the_marked_bars_only():
    from symbolic.modules import roll_statistics, statistics_matching_loss

    roll = _roll()                                               # bridge: dyad step only in bar 1
    marks = {1: torch.tensor([[True, True, False, True]])}
    s = roll_statistics(roll, 48, terms=("chords", "chord_bars"), chord_bars=marks)
    assert [v.tolist() for v in s["chords"]] == [[0, 0, 0, 0], [0, 1, 0, 0], [8, 8, 8, 8]]
    assert [v.tolist() for v in s["chord_bars"]] == [[0.0, 1.0, 0.0]]   # bars 0, 1 and 3 of the bridge
    with pytest.raises(ValueError, match="chord_bars: needs the chord bars"):
        roll_statistics(roll, 48, terms=("chord_bars",))
    with pytest.raises(ValueError, match=r"chord_bars: expected track indices in 0..2 with bool \[1, 4\]"):
        roll_statistics(roll, 48, terms=("chord_bars",), chord_bars={1: torch.ones(1, 3, dtype=torch.bool)})

    # a generated bridge that plays bar 1 as a line: the batch-wide count could be made up in bar 3,
    # the chord-bar one only in the marked bars
    fake = roll.clone()
    fake[0, 1, 1, 5, 10] = 0
    fake[0, 1, 2, 0:2, 3] = 1
    fake[0, 1, 2, 0, 5] = 1                                      # a dyad in unmarked bar 2 instead
    fake.requires_grad_(True)
    loss = statistics_matching_loss(fake, roll, 48, terms=("chords", "chord_bars"), chord_bars=marks)
    assert float(loss["chords"]) == 0.0                          # same per-bar counts in another order
    assert float(loss["chord_bars"]) > 0.0
    loss["chord_bars"].backward()
    marked = fake.grad[0, 1, [0, 1, 3]].abs().sum()                 # which marked bar, the sort decides
    assert float(marked) > 0 and float(fake.grad[0, 1, 2].abs().sum()) == 0
    with pytest.raises(ValueError, match="chord_bars: fake and real should hold as many phrases"):
        statistics_matching_loss(fake.detach().expand(2, -1, -1, -1, -1), roll, 48, terms=("chord_bars",),
                                 chord_bars=marks)


def test_the_chord_bars_term_needs_texture_and_trains_with_it(tmp_path, tiny_fit, tiny_module_kw):
    from lightning.pytorch.loggers import CSVLogger

    with pytest.raises(ValueError, match="chord_bars needs texture tracks"):
        MuseGANModule(**tiny_module_kw, arrangement=True, stats_terms=("density", "chord_bars"))
    with pytest.raises(ValueError, match="chord_bars needs texture tracks"):
        MuseGANModule(**tiny_module_kw, arrangement=True,
                      schedule=[{"from_step": 1, "stats_weight": 1.0, "stats_terms": ["chord_bars"]}])
    model, trainer = tiny_fit(tmp_path, 4, logger=CSVLogger(tmp_path / "logs"), arrangement=True,
                              texture=["bridge"], stats_weight=1.0, stats_terms=("density", "chord_bars"))
    assert model.g_steps == 2
    assert {"loss/stats_density", "loss/stats_chord_bars"} <= set(trainer.logged_metrics)
