"""The arrangement chain by chord slot: bars without a chord get the arrangement such bars have."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from symbolic.evaluate import generate_rolls
from symbolic.export import export_generator
from symbolic.generate import Composer
from symbolic.modules import (ARRANGEMENT_KEY, CHAIN_SLOTS, SLOT_CHORD, SLOT_NO_CHORD, SLOT_NO_INFO, Generator,
                              arrangement_states, bar_chord_slots, upgrade_arrangement_state)

SMALL = dict(n_tracks=3, n_bars=4, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=1,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)
META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 4,
        "styles": [], "grid": {"steps_per_beat": 2, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}}
C_MAJOR = torch.tensor([1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0], dtype=torch.float32)


def _chords(bar_has: list[list[int]]) -> torch.Tensor:
    """[N, 4, 4, 12]: C major on every beat of the bars marked 1, zeros elsewhere."""
    has = torch.tensor(bar_has, dtype=torch.float32)
    return has[:, :, None, None] * C_MAJOR.expand(4, 12)


# two phrases: bars without a chord (intro) have the piano (bit 2) off, the others all play
ACTIVITY = torch.tensor([
    [[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]],    # states 0, 7, 7, 7
    [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]],    # states 3, 3, 7, 7
], dtype=torch.bool)
CHORDS = _chords([[0, 1, 1, 1], [0, 0, 1, 1]])


def _fitted(has_chords=None) -> Generator:
    torch.manual_seed(0)
    g = Generator(**SMALL, arrangement=True).eval()
    g.fit_arrangement_prior(ACTIVITY, CHORDS, has_chords)
    return g


def test_bar_chord_slots_on_hand_made_chords():
    chords = _chords([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
    chords[0, 1, 2] = C_MAJOR  # one beat with a chord is a bar with a chord
    assert bar_chord_slots(chords).tolist() == [[1, 1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1]]
    chords[0, 1] = 0
    assert bar_chord_slots(chords).tolist() == [[1, 0, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1]]
    # has_chords decides whether an all-zero bar means "no chord" or "no information"
    assert bar_chord_slots(chords, torch.tensor([False, True, True])).tolist() == [[2, 2, 2, 2], [0, 0, 0, 0],
                                                                                   [1, 1, 1, 1]]
    assert (SLOT_NO_CHORD, SLOT_CHORD, SLOT_NO_INFO) == (0, 1, 2)
    with pytest.raises(ValueError, match="has_chords: expected 3 flags, got 2"):
        bar_chord_slots(chords, torch.tensor([True, True]))


def test_fit_counts_each_bar_in_its_chord_slot():
    g = _fitted()
    init = torch.zeros(CHAIN_SLOTS, 8)
    init[SLOT_NO_CHORD, 0], init[SLOT_NO_CHORD, 3] = 1, 1
    assert torch.equal(g.arrange_init, init)
    trans = torch.zeros(CHAIN_SLOTS, 8, 8)
    trans[SLOT_CHORD, 0, 7] = 1          # phrase 0: 0 -> 7 (bar 1 has a chord)
    trans[SLOT_CHORD, 7, 7] = 3          # 7 -> 7 twice in phrase 0, once in phrase 1
    trans[SLOT_NO_CHORD, 3, 3] = 1       # phrase 1: 3 -> 3 (bar 1 has none)
    trans[SLOT_CHORD, 3, 7] = 1
    assert torch.equal(g.arrange_trans, trans)
    # a phrase marked as having no chords counts in the no-information slot
    h = _fitted(torch.tensor([True, False]))
    assert float(h.arrange_init[SLOT_NO_INFO, 3]) == 1 and float(h.arrange_trans[SLOT_NO_INFO].sum()) == 3
    with pytest.raises(ValueError, match=r"chords: expected \[2, 4, ...\], got \[2, 3, 4, 12\]"):
        g.fit_arrangement_prior(ACTIVITY, CHORDS[:, :3])


def test_bars_without_a_chord_draw_from_their_own_counts():
    g = _fitted()
    u = torch.full((3, 4), 0.5, dtype=torch.float64)
    slots = torch.tensor([[SLOT_NO_CHORD, SLOT_NO_CHORD, SLOT_CHORD, SLOT_CHORD],
                          [SLOT_CHORD, SLOT_CHORD, SLOT_CHORD, SLOT_CHORD],
                          [SLOT_NO_INFO] * 4])
    states = arrangement_states(g.sample_arrangement(u, slots)).tolist()
    # no-chord first bars: 0 or 3 (1/2 each, u = 0.5 takes 3); from 3 without a chord: 3 always;
    # then with a chord: 7
    assert states[0] == [3, 3, 7, 7]
    # the chord slot has no first bars: it starts from the states its bars took (7: 4 of 5)
    assert states[1] == [7, 7, 7, 7]
    # no information: all slots pooled, so bar 1 from 3 goes to 3 or 7 (1/2 each): u = 0.5 -> 7
    assert states[2] == [3, 7, 7, 7]
    assert torch.equal(g.sample_arrangement(u, None), g.sample_arrangement(u, slots[2:].expand(3, 4)))


def test_a_slot_without_counts_uses_the_pooled_chain():
    g = Generator(**SMALL, arrangement=True)
    g.fit_arrangement_prior(ACTIVITY)           # no chords: all counts are in the no-information slot
    u = torch.rand(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pooled = g.sample_arrangement(u)
    for slot in (SLOT_NO_CHORD, SLOT_CHORD):
        assert torch.equal(g.sample_arrangement(u, torch.full((50, 4), slot)), pooled)


def test_sample_latents_with_chords_silence_the_piano_where_the_data_does():
    g = _fitted()
    chords = _chords([[0, 0, 1, 1]] * 200)
    z = g.sample_latents(200, generator=torch.Generator().manual_seed(0), chords=chords)
    arr = z[ARRANGEMENT_KEY]
    assert not bool(arr[:, 2, :2].any())        # no chord: piano off in every no-chord bar in the data
    assert bool(arr[:, 2, 2:].all())            # chord bars lead to 7 in the data
    # the Gaussians are drawn first, the same with or without chords
    plain = g.sample_latents(200, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain["shared"], z["shared"]) and not torch.equal(plain[ARRANGEMENT_KEY], arr)
    # a phrase without any chord: no information, unless it is marked as having chords (none sounding)
    silent = _chords([[0, 0, 0, 0]] * 200)
    unknown = g.sample_latents(200, generator=torch.Generator().manual_seed(0), chords=silent)
    assert torch.equal(unknown[ARRANGEMENT_KEY], plain[ARRANGEMENT_KEY])
    known = g.sample_latents(200, generator=torch.Generator().manual_seed(0), chords=silent,
                             has_chords=torch.ones(200, dtype=torch.bool))
    assert set(arrangement_states(known[ARRANGEMENT_KEY]).reshape(-1).tolist()) <= {0, 3}   # the no-chord bars' states
    with pytest.raises(ValueError, match=r"chords: expected \[200, 4, ...\], got \[3, 4, 4, 12\]"):
        g.sample_latents(200, generator=torch.Generator().manual_seed(0), chords=chords[:3])


def test_upgrade_moves_an_old_chain_to_the_no_information_slot():
    init, trans = torch.arange(8.0), torch.arange(64.0).reshape(8, 8)
    state = {"g_ema.arrange_init": init, "g_ema.arrange_trans": trans, "other.weight": torch.ones(2)}
    out = upgrade_arrangement_state(state)
    assert out is state and out["g_ema.arrange_init"].shape == (3, 8) and out["g_ema.arrange_trans"].shape == (3, 8, 8)
    assert torch.equal(out["g_ema.arrange_init"][SLOT_NO_INFO], init)
    assert float(out["g_ema.arrange_init"][:SLOT_NO_INFO].abs().sum()) == 0
    assert torch.equal(out["g_ema.arrange_trans"][SLOT_NO_INFO], trans)
    assert torch.equal(out["other.weight"], torch.ones(2))
    again = upgrade_arrangement_state(dict(out))          # today's shapes stay as they are
    assert torch.equal(again["g_ema.arrange_init"], out["g_ema.arrange_init"])


def test_weights_saved_before_the_chord_slots_load_and_draw_as_before(tmp_path):
    old = Generator(**SMALL, arrangement=True).eval()
    old.fit_arrangement_prior(ACTIVITY)                   # counts in the no-information slot only
    export_generator(old, tmp_path, "old", META)
    path = tmp_path / "symbolic_old.safetensors"
    state = load_file(str(path))
    state["arrange_init"] = state["arrange_init"][SLOT_NO_INFO].clone()   # the layout of older files
    state["arrange_trans"] = state["arrange_trans"][SLOT_NO_INFO].clone()
    save_file(state, str(path))
    comp = Composer.load(tmp_path / "symbolic_old.json")
    assert torch.equal(comp.generator.arrange_trans, old.arrange_trans)
    chords = _chords([[0, 1, 1, 1]] * 5)
    a = comp.sample_latents(5, torch.Generator().manual_seed(2), chords=chords)
    b = old.sample_latents(5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[ARRANGEMENT_KEY], b[ARRANGEMENT_KEY])
    # and torch's own load_state_dict (a Lightning checkpoint) takes the old shapes too
    fresh = Generator(**SMALL, arrangement=True)
    fresh.load_state_dict({**old.state_dict(), "arrange_init": old.arrange_init[SLOT_NO_INFO],
                           "arrange_trans": old.arrange_trans[SLOT_NO_INFO]})
    assert torch.equal(fresh.arrange_init, old.arrange_init)


def test_composer_and_evaluation_draw_the_arrangement_for_the_chords_they_decode(tmp_path):
    export_generator(_fitted(), tmp_path, "arr", META)
    comp = Composer.load(tmp_path / "symbolic_arr.json")
    chords = np.asarray(_chords([[0, 0, 1, 1]] * 8), dtype=np.uint8)
    rolls = generate_rolls(comp, chords, np.full(8, -1), seed=0)
    assert rolls.shape == (8, 3, 4, 8, 24)
    assert not rolls[:, 2, :2].any()                     # the piano is silent in the no-chord bars
    roll = comp.compose(n_phrases=2, seed=1, chords=torch.as_tensor(chords[:2]).reshape(8, 4, 12))
    assert not bool(roll[2, [0, 1, 4, 5]].any())
    with pytest.raises(Exception, match=r"chords: expected shape \[8, 4, 4, 12\]"):
        comp.sample_latents(8, torch.Generator().manual_seed(0), chords=torch.zeros(8, 2, 4, 12))


def test_a_song_plan_draws_each_sections_arrangement_for_its_chords(tmp_path):
    from pipeline.config import parse_config
    from pipeline.generate import plan_phrases

    export_generator(_fitted(), tmp_path, "arr", META)
    comp = Composer.load(tmp_path / "symbolic_arr.json")
    song = {"title": "t", "seed": 1, "tempo": 100, "time_signature": "4/4",
            "tracks": [{"name": "keys", "source": "piano", "instrument": "keyboard"}],
            "sections": [{"name": "intro", "bars": 4, "chords": ["N", "N", "C", "G"]},
                         {"name": "verse", "bars": 4}]}
    cfg = parse_config(song, "song.yaml")
    for seed in range(20):
        intro, verse = plan_phrases(comp, cfg, seed, "x", use_chords=True)
        assert not bool(intro[ARRANGEMENT_KEY][0, 2, :2].any())      # no chord in bars 0-1: no piano
        assert bool(intro[ARRANGEMENT_KEY][0, 2, 2:].all())
        blind = plan_phrases(comp, cfg, seed, "x", use_chords=False)  # the chords are not decoded with
        assert torch.equal(blind[0]["shared"], intro["shared"])
        assert torch.equal(blind[1][ARRANGEMENT_KEY], verse[ARRANGEMENT_KEY])  # verse: no chords either way
    pooled = [plan_phrases(comp, cfg, s, "x")[0][ARRANGEMENT_KEY][0, 2, :2] for s in range(20)]
    assert any(bool(p.any()) for p in pooled)
