"""Releasing held notes at a new onset (``symbolic.generate.release_held_notes``) and its settings."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.errors import UserError
from symbolic.export import export_generator
from symbolic.generate import Composer, check_track_taus, parse_track_taus, release_held_notes
from symbolic.modules import Generator

SMALL = dict(n_tracks=3, n_bars=2, steps_per_bar=4, beats_per_bar=4, n_pitches=6, lowest_pitch=60, n_styles=1,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)
META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 2,
        "styles": [], "grid": {"steps_per_beat": 1, "beats_per_bar": 4, "lowest_pitch": 60, "n_pitches": 6}}


def _roll(notes, steps=8, pitches=6):
    """One track's timeline [steps, pitches] from (pitch, start, end) triples."""
    r = torch.zeros(steps, pitches, dtype=torch.bool)
    for p, a, b in notes:
        r[a:b, p] = True
    return r


def _phrase(track_rolls):
    """[1, T, 2 bars, 4 steps, 6 pitches] from per-track 8-step timelines."""
    return torch.stack([r.reshape(2, 4, 6) for r in track_rolls])[None]


def test_a_new_onset_releases_a_held_note_unless_it_is_sure():
    # pitch 0 held over steps 0-5; pitch 2 starts at step 2 (0 overlaps it from there)
    bridge = _roll([(0, 0, 6), (2, 2, 4)])
    active = _phrase([bridge, bridge, bridge])
    probs = active.float() * 0.9
    out = release_held_notes(probs, active, {1: 0.95})
    assert torch.equal(out[0, 1].reshape(8, 6), _roll([(0, 0, 2), (2, 2, 4)]))   # the rest of 0's run goes
    assert torch.equal(out[0, 0], active[0, 0]) and torch.equal(out[0, 2], active[0, 2])  # other tracks kept
    # at least tau at the onset step: the held note stays
    probs[0, 1].reshape(8, 6)[2, 0] = 0.95
    assert torch.equal(release_held_notes(probs, active, {1: 0.95}), active)
    assert release_held_notes(probs, active, {}) is active


def test_chords_and_notes_across_the_bar_line_are_handled():
    # a dyad starting together is kept; pitch 4 held across the bar line (steps 2-6) is released
    # at step 5 when pitch 1 starts there; step 0 has no note before it
    bridge = _roll([(0, 0, 2), (3, 0, 2), (4, 2, 7), (1, 5, 8)])
    active = _phrase([bridge] * 3)
    out = release_held_notes(active.float() * 0.6, active, {1: 0.7})
    assert torch.equal(out[0, 1].reshape(8, 6), _roll([(0, 0, 2), (3, 0, 2), (4, 2, 5), (1, 5, 8)]))
    # tau 1: every held note below certainty goes at the next onset; a probability of 1 stays
    assert torch.equal(release_held_notes(active.float() * 0.99, active, {1: 1.0})[0, 1].reshape(8, 6),
                       _roll([(0, 0, 2), (3, 0, 2), (4, 2, 5), (1, 5, 8)]))
    assert torch.equal(release_held_notes(active.float(), active, {1: 1.0}), active)


def test_keep_leaves_a_given_track_as_it_is():
    bridge = _roll([(0, 0, 6), (2, 2, 4)])
    active = torch.cat([_phrase([bridge] * 3)] * 2)
    keep = torch.tensor([[False, True, False], [False, False, False]])
    out = release_held_notes(active.float() * 0.5, active, {1: 0.9}, keep)
    assert torch.equal(out[0], active[0]) and not torch.equal(out[1], active[1])


def test_check_track_taus_names_tracks_and_bounds():
    assert check_track_taus({"Bridge": 0.95, 2: "1"}, META["tracks"], "x") == {1: 0.95, 2: 1.0}
    assert check_track_taus(None, META["tracks"], "x") == {}
    with pytest.raises(ValueError, match=r"x: unknown track 'drums'"):
        check_track_taus({"drums": 0.5}, META["tracks"], "x")
    with pytest.raises(ValueError, match=r"x: bridge: tau should be in \(0, 1\], got 0.0"):
        check_track_taus({"bridge": 0}, META["tracks"], "x")
    with pytest.raises(ValueError, match=r"x: bridge: tau should be a number in \(0, 1\], got 'high'"):
        check_track_taus({"bridge": "high"}, META["tracks"], "x")


def _composer(tmp_path, release, name="r"):
    torch.manual_seed(0)
    g = Generator(**SMALL).eval()
    with torch.no_grad():                        # notes that start and stop all over the roll
        for prm in g.parameters():
            prm.normal_(0.0, 0.5)
    export_generator(g, tmp_path, name, META, release=release)
    return Composer.load(tmp_path / f"symbolic_{name}.json")


def test_the_card_release_applies_when_the_composer_binarises(tmp_path):
    plain, rel = _composer(tmp_path, None, "plain"), _composer(tmp_path, {"bridge": 1.0}, "rel")
    assert json.loads((tmp_path / "symbolic_rel.json").read_text())["decode"] == {"release": {"bridge": 1.0}}
    assert "decode" not in json.loads((tmp_path / "symbolic_plain.json").read_text())
    assert rel.release == {1: 1.0} and plain.release == {}
    z = plain.sample_latents(4, torch.Generator().manual_seed(0))
    a, b = plain.decode(z), rel.decode(z)
    assert torch.equal(a[:, [0, 2]], b[:, [0, 2]]) and not torch.equal(a[:, 1], b[:, 1])
    probs = plain.decode(z, threshold=None)
    assert torch.equal(b.bool(), release_held_notes(probs, probs > 0.5, {1: 1.0}))
    assert torch.equal(rel.decode(z, threshold=None), probs)          # probabilities stay raw
    given = a[:, 1, :, :, :]                                          # a given bridge is kept as given
    assert torch.equal(rel.decode(z, cond_roll=given, cond_track=1)[:, 1], given)


def test_a_bad_release_in_a_card_is_a_user_error(tmp_path):
    _composer(tmp_path, {"bridge": 0.5})
    card = json.loads((tmp_path / "symbolic_r.json").read_text())
    card["decode"]["release"] = {"bass": 0.5}
    (tmp_path / "symbolic_r.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"symbolic_r.json: decode.release: unknown track 'bass'"):
        Composer.load(tmp_path / "symbolic_r.json")


def test_parse_track_taus_reads_track_equals_tau():
    assert parse_track_taus(None, "--release") is None
    assert parse_track_taus(["none"], "--release") == {}
    assert parse_track_taus(["bridge=0.9", " piano = 1 "], "--release") == {"bridge": "0.9", "piano": "1"}
    for bad in (["bridge"], ["=0.5"], ["none", "bridge=0.5"]):
        with pytest.raises(UserError, match=r"--release: expected TRACK=TAU \(or none\)"):
            parse_track_taus(bad, "--release")


def test_evaluation_can_replace_the_cards_release(tmp_path):
    import numpy as np

    from symbolic.evaluate import generate_for_phrases

    _composer(tmp_path, {"bridge": 1.0})
    meta = dict(META, styles=[])
    arrays = {"chords": np.zeros((4, 2, 4, 12), np.uint8), "style": np.zeros(4, np.int64),
              "has_chords": np.zeros(4, bool)}
    weights = tmp_path / "symbolic_r.safetensors"
    card_rule = generate_for_phrases(weights, meta, arrays, np.arange(4))
    none = generate_for_phrases(weights, meta, arrays, np.arange(4), release={})
    again = generate_for_phrases(weights, meta, arrays, np.arange(4), release={"bridge": 1.0})
    assert np.array_equal(card_rule, again) and not np.array_equal(card_rule[:, 1], none[:, 1])
    assert np.array_equal(card_rule[:, [0, 2]], none[:, [0, 2]])
    with pytest.raises(UserError, match="--release: unknown track 'bass'"):
        generate_for_phrases(weights, meta, arrays, np.arange(4), release={"bass": 0.5})


def test_the_evaluate_command_takes_a_release(tmp_path):
    from symbolic.datamodule import write_fake_cache
    from symbolic.evaluate import cli_main

    data = write_fake_cache(tmp_path / "data", n_train=2, n_valid=2, n_test=8, n_bars=2, steps_per_beat=1,
                            lowest_pitch=60, n_pitches=6, styles=())
    _composer(tmp_path, {"bridge": 1.0})
    base = ["prog", "--data", str(data), "--weights", str(tmp_path / "symbolic_r.json")]
    reports = {}
    for rel in ("none", "bridge=1"):
        assert cli_main([*base, "--release", rel, "--json", str(tmp_path / f"{rel}.json")]) == 0
        reports[rel] = json.loads((tmp_path / f"{rel}.json").read_text())["generated"]["bridge"]
    assert cli_main([*base, "--json", str(tmp_path / "card.json")]) == 0
    assert json.loads((tmp_path / "card.json").read_text())["generated"]["bridge"] == reports["bridge=1"]
    assert reports["none"]["POLY_RATE"] > reports["bridge=1"]["POLY_RATE"]
    with pytest.raises(UserError, match="--release: expected TRACK=TAU"):
        cli_main([*base, "--release", "bridge"])
