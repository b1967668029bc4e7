"""statistics_matching_loss: feature matching of the thresholded generated roll against real phrases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symbolic import metrics
from symbolic.lightning import MuseGANModule
from symbolic.modules import (ALL_STAT_TERMS, STAT_TERMS, roll_statistics, statistics_matching_loss,
                              threshold_straight_through, wasserstein_1d)


def _hand_roll() -> torch.Tensor:
    """1 phrase, 1 track, 2 bars of 4 steps x 13 pitches (index 0 = MIDI 60, C4).

    Bar 0: C4 on steps 0-1, E4 on step 2, C5 on step 3 and held into bar 1's step 0.
    Bar 1: that C5 (step 0), then G4 + B4 together on step 2.
    """
    r = torch.zeros(1, 1, 2, 4, 13)
    r[0, 0, 0, 0:2, 0] = 1   # C4
    r[0, 0, 0, 2, 4] = 1     # E4
    r[0, 0, 0, 3, 12] = 1    # C5 ...
    r[0, 0, 1, 0, 12] = 1    # ... held across the bar line
    r[0, 0, 1, 2, 7] = 1     # G4
    r[0, 0, 1, 2, 11] = 1    # B4
    return r


def test_statistics_of_a_hand_made_roll():
    s = roll_statistics(_hand_roll(), lowest_pitch=60)
    assert s["density"][0].tolist() == [4.0, 3.0]
    assert s["onsets"][0].tolist() == [3.0, 2.0]  # the held C5 is no new note in bar 1
    assert s["polyphony"][0].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0]
    assert s["upc"][0].tolist() == [2.0, 3.0]  # {C, E}; {C, G, B}
    assert s["tonal"] == []  # one track: no pair


def test_tonal_distance_of_two_hand_made_tracks_matches_the_metric():
    r = torch.zeros(1, 2, 2, 4, 12)
    r[0, 0, :, :, 0] = 1            # C in both bars
    r[0, 1, 0, :, 0] = 1            # bar 0: the same C -> distance 0
    r[0, 1, 1, :, 7] = 1            # bar 1: G
    d = roll_statistics(r, lowest_pitch=60, terms=("tonal",))["tonal"][0]
    c = np.zeros(12); c[0] = 1
    g = np.zeros(12); g[7] = 1
    expected = np.linalg.norm(metrics.tonal_centroid(c) - metrics.tonal_centroid(g))
    assert d.tolist() == pytest.approx([0.0, expected], abs=1e-6)


def test_agrees_with_the_metrics_module_on_random_rolls():
    rng = np.random.default_rng(0)
    roll = rng.random((16, 3, 4, 16, 30)) < 0.04
    roll[:5, 0, 1] = False  # some empty bars
    s = roll_statistics(torch.tensor(roll).float(), lowest_pitch=36)
    for t in range(3):
        dens = s["density"][t]
        assert float((dens == 0).float().mean()) == pytest.approx(metrics.empty_bar_rate(roll[:, t]))
        upc = s["upc"][t]
        assert float(upc[upc > 0].mean()) == pytest.approx(metrics.used_pitch_classes(roll[:, t], 36))
        poly = s["polyphony"][t]
        assert float(poly[poly > 0].mean()) == pytest.approx(metrics.polyphony(roll[:, t])[0])
    pairs = [(0, 1), (0, 2), (1, 2)]
    for k, (a, b) in enumerate(pairs):
        want = metrics.tonal_distance(roll[:, a], roll[:, b], 36)
        assert float(s["tonal"][k].mean()) == pytest.approx(want, rel=1e-5)


def test_short_notes_of_a_hand_made_roll_and_the_metrics_qn():
    # bar 0: C4 lasts 2 steps, E4 1, C5 2 (held over the bar line); bar 1: G4 and B4 1 step each
    assert roll_statistics(_hand_roll(), 60, terms=("short",))["short"][0].tolist() == [1.0, 2.0]
    rng = np.random.default_rng(5)
    roll = rng.random((16, 2, 4, 16, 24)) < 0.3
    s = roll_statistics(torch.tensor(roll).float(), 36, terms=("onsets", "short"))
    for t in range(2):
        qn = 1.0 - float(s["short"][t].sum() / s["onsets"][t].sum())
        assert qn == pytest.approx(metrics.qualified_note_rate(roll[:, t], 2), rel=1e-6)


def test_groove_of_hand_made_phrases():
    # the hand roll: bar 0 onsets at steps 0, 2, 3; bar 1 (the C5 is held) at step 2 only:
    # they differ at 2 of 4 steps -> 1 - 2/4
    assert roll_statistics(_hand_roll(), 60, terms=("groove",))["groove"][0].tolist() == [0.5]
    r = torch.zeros(3, 1, 3, 4, 12)
    r[0, 0, :, 0, 0] = 1            # phrase 0: a note at step 0 of every bar -> identical bars -> 1
    r[1, 0, 0, 1, 0] = 1            # phrase 1: only one bar with an onset -> left out
    r[2, 0, 0, 0:2, 0] = 1          # phrase 2: bar 0 onset 0; bar 1 onsets 1, 3; bar 2 empty
    r[2, 0, 1, 1, 0] = r[2, 0, 1, 3, 0] = 1
    g = roll_statistics(r, 60, terms=("groove",))["groove"][0]
    assert g.tolist() == pytest.approx([1.0, 1.0 - 3 / 4])
    # unpitched: every active cell is a hit (the sustained steps 0-1 of phrase 2's bar 0 count twice)
    d = roll_statistics(r, 60, pitched=[False], terms=("groove",))["groove"][0]
    assert d.tolist() == pytest.approx([1.0, 1.0 - 2 / 4])


def test_groove_agrees_with_the_metric_and_passes_gradients():
    rng = np.random.default_rng(3)
    roll = rng.random((32, 2, 4, 16, 24)) < 0.05
    roll[:4, 0, 1:] = False  # some phrases with one sounding bar
    g = roll_statistics(torch.tensor(roll).float(), 36, pitched=[True, False], terms=("groove",))["groove"]
    assert float(g[0].mean()) == pytest.approx(metrics.groove_consistency(roll[:, 0]), rel=1e-6)
    assert float(g[1].mean()) == pytest.approx(metrics.groove_consistency(roll[:, 1], is_drum=True), rel=1e-6)
    real = torch.tensor(roll).float()
    fake = (real * 0.8 + 0.1)[torch.randperm(32)].requires_grad_(True)
    loss = statistics_matching_loss(fake, real, 36, terms=("groove",))["groove"]
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    shifted = torch.roll(real, 1, dims=3) * 0.8 + 0.1
    shifted[:, :, 0] = 0.1                     # first bar silent: other grooves
    shifted.requires_grad_(True)
    loss = statistics_matching_loss(shifted, real[:, :, [1, 0, 2, 3]], 36, terms=("groove",))["groove"]
    assert loss.item() > 0.01
    loss.backward()
    assert shifted.grad is not None and float(shifted.grad.abs().sum()) > 0
    assert {"groove", "short", "chords"} <= set(ALL_STAT_TERMS) and "groove" not in STAT_TERMS


def test_chord_steps_of_a_hand_made_roll_agree_with_poly_rate_and_pass_gradients():
    # bar 0: one pitch a step; bar 1: G4 + B4 together on step 2 -> one step of >= 2 pitches
    assert roll_statistics(_hand_roll(), 60, terms=("chords",))["chords"][0].tolist() == [0.0, 1.0]
    r = torch.zeros(1, 1, 1, 4, 12)
    r[0, 0, 0, 0, :3] = 1       # three pitches: counts once
    r[0, 0, 0, 1, :2] = 1       # two
    r[0, 0, 0, 2, 5] = 1        # one
    assert roll_statistics(r, 60, terms=("chords",))["chords"][0].tolist() == [2.0]
    rng = np.random.default_rng(7)
    roll = rng.random((16, 2, 4, 16, 24)) < 0.06
    s = roll_statistics(torch.tensor(roll).float(), 36, terms=("chords", "polyphony"))
    for t in range(2):
        sounding = float((s["polyphony"][t] > 0).sum())
        assert float(s["chords"][t].sum()) / sounding == pytest.approx(metrics.polyphony(roll[:, t])[1])
    # a generated bar with a two-pitch step too many is pulled toward single pitches
    real = _hand_roll()
    fake = (real * 0.8 + 0.1)
    fake[0, 0, 0, 1, 3] = 0.7          # bar 0, step 1: a second pitch
    fake.requires_grad_(True)
    loss = statistics_matching_loss(fake, real, 60, terms=("chords",))["chords"]
    assert loss.item() == pytest.approx(0.5 / (0.5 + 1.0))  # sorted [0, 1] vs [1, 1], real mean 0.5
    loss.backward()
    assert float(fake.grad[0, 0, 0, 1, 3]) > 0 and float(fake.grad[0, 0, 1].abs().sum()) == 0.0


def test_note_lengths_of_a_hand_made_roll_agree_with_qn_and_pass_gradients():
    # notes in start order (step, then pitch): C4 2 steps, E4 1, C5 2 (held over the bar line),
    # G4 1, B4 1
    assert roll_statistics(_hand_roll(), 60, terms=("lengths",))["lengths"][0].tolist() == [2.0, 1.0, 2.0, 1.0, 1.0]
    r = torch.zeros(1, 1, 2, 4, 12)
    r[0, 0, :, :, 0] = 1        # one C held through both bars: capped at a bar (4 steps)
    r[0, 0, 1, 1:, 3] = 1       # a D# of 3 steps, ending the phrase
    assert roll_statistics(r, 60, terms=("lengths",))["lengths"][0].tolist() == [4.0, 3.0]
    rng = np.random.default_rng(11)
    roll = rng.random((16, 2, 4, 16, 24)) < 0.4
    lengths = roll_statistics(torch.tensor(roll).float(), 36, terms=("lengths",))["lengths"]
    for t in range(2):
        for q in (2, 3):
            assert float((lengths[t] >= q).float().mean()) == pytest.approx(
                metrics.qualified_note_rate(roll[:, t], q), rel=1e-6)
    # a generated note one step too long is pulled shorter: the gradient reaches its last cell
    real = _hand_roll()
    fake = real * 0.8 + 0.1
    fake[0, 0, 0, 1, 4] = 0.7           # E4 starts a step early: 2 steps instead of 1
    fake[0, 0, 0, 1, 0] = 0.2           # ... and C4 lasts 1 step: same multiset, loss 0
    assert statistics_matching_loss(fake, real, 60, terms=("lengths",))["lengths"].item() == 0.0
    fake[0, 0, 0, 1, 0] = 0.9           # C4 back to 2 steps: one 2-step note too many
    fake.requires_grad_(True)
    loss = statistics_matching_loss(fake, real, 60, terms=("lengths",))["lengths"]
    assert loss.item() == pytest.approx((1.0 / 5) / (7.0 / 5 + 1.0))  # [1,1,2,2,2] vs [1,1,1,2,2]
    loss.backward()
    second = torch.stack([fake.grad[0, 0, 0, 1, 0], fake.grad[0, 0, 0, 2, 4], fake.grad[0, 0, 1, 0, 12]])
    assert float(second.max()) > 0 and float(second.min()) >= 0   # one 2-step note pushed to 1 step
    assert float(fake.grad[0, 0, 1, 1:].abs().sum()) == 0.0        # the 1-step notes are left alone
    assert "lengths" in ALL_STAT_TERMS and "lengths" not in STAT_TERMS


def test_onsets_by_position_in_the_beat_of_a_hand_made_roll_and_their_gradient():
    # two beats of 2 steps a bar: bar 0 starts C4 (step 0), E4 (2) on the beat and C5 (3) off it;
    # bar 1 starts G4 and B4 (step 2) on the beat (the held C5 starts nothing)
    off = roll_statistics(_hand_roll(), 60, terms=("offsets",), beats_per_bar=2)["offsets"]
    assert [o.tolist() for o in off] == [[2.0, 2.0], [1.0, 0.0]]
    one = roll_statistics(_hand_roll(), 60, terms=("offsets", "onsets"), beats_per_bar=4)
    assert [o.tolist() for o in one["offsets"]] == [one["onsets"][0].tolist()]  # one position: the onsets
    with pytest.raises(ValueError, match="beats_per_bar 3 must divide the bar's 4 steps"):
        roll_statistics(_hand_roll(), 60, terms=("offsets",), beats_per_bar=3)
    # a whole-beat note where the data has two half-beat notes: the loss asks for an off-beat start
    real = torch.zeros(1, 1, 1, 4, 12)
    real[0, 0, 0, 0, 0] = real[0, 0, 0, 1, 4] = 1          # C then E, one step each
    fake = torch.full((1, 1, 1, 4, 12), 0.1)
    fake[0, 0, 0, 0:2, 0] = 0.9                              # C held for both steps
    fake.requires_grad_(True)
    loss = statistics_matching_loss(fake, real, 60, terms=("offsets",), beats_per_bar=2)["offsets"]
    assert loss.item() == pytest.approx((0.0 + 1.0 / (1.0 + 1.0)) / 2)   # on-beat equal; off-beat 0 vs 1
    loss.backward()
    assert float(fake.grad[0, 0, 0, 1].min()) < 0                # raising a step-1 cell adds the start
    assert "offsets" in ALL_STAT_TERMS and "offsets" not in STAT_TERMS


def test_drum_tracks_have_no_pitch_class_terms():
    r = torch.ones(2, 3, 1, 2, 12)
    s = roll_statistics(r, 36, pitched=[True, False, True])
    assert len(s["upc"]) == 2 and len(s["tonal"]) == 1 and len(s["density"]) == 3
    with pytest.raises(ValueError, match="2 flags for 3 tracks"):
        roll_statistics(r, 36, pitched=[True, False])


def test_wasserstein_1d_known_values():
    a = torch.tensor([0.0, 1.0, 2.0])
    assert wasserstein_1d(a, torch.tensor([2.0, 0.0, 1.0])).item() == 0.0
    assert wasserstein_1d(torch.zeros(2), torch.ones(2)).item() == 1.0
    assert wasserstein_1d(torch.tensor([0.0, 4.0]), torch.tensor([1.0, 1.0])).item() == 2.0  # (1 + 3) / 2
    # unequal sizes: compared on min(len) quantiles
    assert wasserstein_1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])).item() == pytest.approx(0.0)
    assert wasserstein_1d(torch.tensor([]), torch.ones(3)).item() == 0.0
    with pytest.raises(ValueError, match="1-D"):
        wasserstein_1d(torch.zeros(2, 2), torch.zeros(4))


def test_threshold_straight_through_forward_and_gradient():
    p = torch.tensor([0.2, 0.5, 0.51, 0.9], requires_grad=True)
    y = threshold_straight_through(p)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert p.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_loss_is_zero_for_the_same_phrases_in_any_order_and_sees_thresholded_values():
    rng = np.random.default_rng(1)
    real = torch.tensor(rng.random((8, 2, 2, 8, 24)) < 0.1).float()
    out = statistics_matching_loss(real[torch.randperm(8)], real, 48)
    assert set(out) == set(STAT_TERMS)
    assert all(v.item() == 0.0 for v in out.values())
    # probabilities that threshold to the real roll are the real roll: still zero
    soft = real * 0.8 + 0.1
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in statistics_matching_loss(soft, real, 48).values())
    # an all-quiet generator (every probability 0.4) is all-empty: known density term
    quiet = statistics_matching_loss(torch.full_like(real, 0.4), real, 48, terms=("density",))["density"]
    d = real.sum(dim=(3, 4))  # [N, T, B]
    expected = np.mean([float(d[:, t].mean() / (d[:, t].mean() + 1)) for t in range(2)])
    assert quiet.item() == pytest.approx(expected)


def test_activity_term_known_value_and_gradient():
    real = torch.zeros(4, 1, 2, 4, 12)
    real[:2, 0, :, 0, 3] = 1  # 8 bars: 4 sound, 4 are empty (mean activity 0.5)
    fake = torch.full_like(real, 0.7)
    fake[0, 0, 0] = 0.9  # the loudest bar
    fake[3, 0, 1] = 0.2  # the quietest bar
    fake.requires_grad_(True)
    act = statistics_matching_loss(fake, real, 60, terms=("activity",))["activity"]
    # sorted bar maxima [0.2, .7 x 6, 0.9] against [0 x 4, 1 x 4]: (0.2 + 3 * 0.7 + 3 * 0.3 + 0.1) / 8 / 1.5
    assert act.item() == pytest.approx((0.2 + 2.1 + 0.9 + 0.1) / 8 / 1.5)
    act.backward()
    grad = fake.grad.flatten(3).abs().sum(-1)[:, 0]  # [N, bars]
    assert grad[3, 1] > 0 and grad[0, 0] > 0
    assert "activity" in ALL_STAT_TERMS and "activity" not in STAT_TERMS
    # the hard statistics are untouched by it
    both = statistics_matching_loss(fake.detach(), real, 60, terms=("density", "activity"))
    assert both["density"].item() == pytest.approx(
        statistics_matching_loss(fake.detach(), real, 60, terms=("density",))["density"].item())


def test_gradient_reaches_every_probability_and_bad_input_is_refused():
    real = torch.zeros(4, 2, 2, 4, 12)
    real[:, :, :, 0, 3] = 1
    fake = torch.full_like(real, 0.3, requires_grad=True)
    sum(statistics_matching_loss(fake, real, 60).values()).backward()
    assert fake.grad is not None and bool((fake.grad != 0).all())
    with pytest.raises(ValueError, match="same tracks and grid"):
        statistics_matching_loss(fake, real[:, :1], 60)
    with pytest.raises(ValueError, match="unknown statistics"):
        statistics_matching_loss(fake, real, 60, terms=("density", "swing"))


def test_training_logs_the_statistics_terms(tmp_path, tiny_fit, tiny_module_kw):
    from lightning.pytorch.loggers import CSVLogger

    model, trainer = tiny_fit(tmp_path, 4, logger=CSVLogger(tmp_path / "logs"), stats_weight=1.0,
                              stats_terms=("density", "upc"))
    assert model.g_steps == 2
    assert {"loss/stats_density", "loss/stats_upc"} <= set(trainer.logged_metrics)
    assert "loss/stats_tonal" not in trainer.logged_metrics
    with pytest.raises(ValueError, match="unknown stats_terms"):
        MuseGANModule(**tiny_module_kw, stats_terms=("density", "swing"))


def _bars_of_hits(counts: list[int]) -> torch.Tensor:
    """Phrases [N, 1 drum track, 1 bar, 4 steps, 3 pitches]: phrase i has ``counts[i]`` hits at step 0."""
    r = torch.zeros(len(counts), 1, 1, 4, 3)
    for i, c in enumerate(counts):
        r[i, 0, 0, 0, :c] = 1
    return r


def test_grouped_matching_sees_labels_whose_errors_cancel_in_the_pooled_batch():
    # style 0 plays 1 hit a bar, style 1 plays 3; the generator swaps them
    real, fake = _bars_of_hits([1, 1, 3, 3]), _bars_of_hits([3, 3, 1, 1])
    styles = torch.tensor([0, 0, 1, 1])
    pooled = statistics_matching_loss(fake, real, 36, [False], ("density",))
    assert float(pooled["density"]) == 0.0
    grouped = statistics_matching_loss(fake, real, 36, [False], ("density",), groups=styles)
    # each group: W1 = |3 - 1| = 2 over the group's real mean + 1 (2 and 4); weights 1/2 each
    assert float(grouped["density"]) == pytest.approx(0.5 * 2 / 2 + 0.5 * 2 / 4)
    assert float(statistics_matching_loss(real, real, 36, [False], ("density",), groups=styles)["density"]) == 0.0


def test_grouped_matching_weighs_groups_by_size_and_passes_gradients():
    torch.manual_seed(0)
    real = (torch.rand(6, 1, 2, 4, 12) > 0.7).float()
    fake = torch.rand(6, 1, 2, 4, 12, requires_grad=True)
    groups = torch.tensor([2, 2, 2, 2, 5, 5])
    terms = ("density", "polyphony", "chords")
    got = statistics_matching_loss(fake, real, 60, [False], terms, groups=groups)
    a = statistics_matching_loss(fake[:4], real[:4], 60, [False], terms)
    b = statistics_matching_loss(fake[4:], real[4:], 60, [False], terms)
    for k in terms:
        assert torch.allclose(got[k], (4 * a[k] + 2 * b[k]) / 6)
    sum(got.values()).backward()
    assert fake.grad is not None and bool((fake.grad != 0).any())


def test_grouped_matching_refuses_labels_that_do_not_pair_the_phrases():
    real = torch.zeros(4, 1, 1, 4, 3)
    with pytest.raises(ValueError, match=r"groups: expected one label per phrase .* got \[3\] labels for 4 and 4"):
        statistics_matching_loss(real, real, 36, [False], ("density",), groups=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="groups: .* for 4 and 2 phrases"):
        statistics_matching_loss(real, real[:2], 36, [False], ("density",), groups=torch.zeros(4))


def test_training_by_style_matches_within_the_batch_styles(tmp_path, tiny_fit, monkeypatch):
    import symbolic.lightning as lightning_module

    seen = []
    real_loss = lightning_module.statistics_matching_loss

    def spy(*args, groups=None, **kw):
        seen.append(groups)
        return real_loss(*args, groups=groups, **kw)

    monkeypatch.setattr(lightning_module, "statistics_matching_loss", spy)
    model, _ = tiny_fit(tmp_path, 4, stats_weight=1.0, stats_terms=("density",), stats_by_style=True)
    assert model.g_steps == 2 and len(seen) == 2
    assert all(g is not None and g.dtype == torch.long and g.shape == (4,) for g in seen)
    seen.clear()
    tiny_fit(tmp_path, 4, stats_weight=1.0, stats_terms=("density",))
    assert seen == [None, None]
