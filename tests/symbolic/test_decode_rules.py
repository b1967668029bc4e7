"""The composer's decoding rules and their settings: releasing held notes at a new onset
(``symbolic.generate.release_held_notes``, ``decode.release``) and one-step legato overlaps of
one-pitch-per-step tracks (``legato_overlaps``, ``decode.legato``, ``model.legato``, ``--legato``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from symbolic.export import export_generator
from symbolic.generate import (Composer, check_legato, check_track_taus, legato_overlaps, parse_track_taus,
                               release_held_notes)
from symbolic.modules import Generator, keep_most_probable_pitch

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


def test_parse_track_taus_reads_track_equals_tau():
    assert parse_track_taus(None, "--release") is None
    assert parse_track_taus(["none"], "--release") == {}
    assert parse_track_taus(["bridge=0.9", " piano = 1 "], "--release") == {"bridge": "0.9", "piano": "1"}
    for bad in (["bridge"], ["=0.5"], ["none", "bridge=0.5"]):
        with pytest.raises(UserError, match=r"--release: expected TRACK=TAU \(or none\)"):
            parse_track_taus(bad, "--release")


def test_evaluation_can_replace_the_cards_release(tmp_path):
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


# --------------------------------------------------------------------------- legato
def _line_and_probs():
    # melody: pitch 0 over steps 0-3, pitch 2 over 4-5 (a change across the bar line), pitch 4 at 6
    # (straight after 2), a rest at 7
    line = _roll([(0, 0, 4), (2, 4, 6), (4, 6, 7)])
    active = _phrase([line, line, line])
    probs = active.float() * 0.9
    t = probs[0, 0].reshape(8, 6)           # a view of the melody's timeline
    t[4, 0] = 0.99996                       # pitch 0 still likely at 2's first step: overlaps
    t[5, 0] = 1.0                           # ... but only for one step
    t[6, 2] = 0.9999                        # pitch 2 at 4's first step: below tau
    t[7, 4] = 1.0                           # pitch 4 into the rest: no note starts there
    return active, probs


def test_a_note_change_overlaps_by_one_step_where_the_held_pitch_is_likely():
    active, probs = _line_and_probs()
    out = legato_overlaps(probs, active, {0: 0.99995})
    assert torch.equal(out[0, 0].reshape(8, 6), _roll([(0, 0, 5), (2, 4, 6), (4, 6, 7)]))
    assert torch.equal(out[0, 1:], active[0, 1:])                      # other tracks untouched
    # a lower tau also takes the change from 2 to 4; never the step into the rest
    assert torch.equal(legato_overlaps(probs, active, {0: 0.9999})[0, 0].reshape(8, 6),
                       _roll([(0, 0, 5), (2, 4, 7), (4, 6, 7)]))
    assert torch.equal(legato_overlaps(probs, active, {0: 1.0}), active)
    assert legato_overlaps(probs, active, {}) is active


def test_legato_keep_leaves_a_given_track_as_it_is():
    active, probs = _line_and_probs()
    active, probs = torch.cat([active] * 2), torch.cat([probs] * 2)
    keep = torch.tensor([[True, False, False], [False, False, False]])
    out = legato_overlaps(probs, active, {0: 0.9}, keep)
    assert torch.equal(out[0], active[0]) and not torch.equal(out[1], active[1])


def test_check_legato_wants_one_pitch_per_step_tracks():
    assert check_legato({"Melody": "0.99"}, META["tracks"], (0,), "x") == {0: 0.99}
    assert check_legato(None, META["tracks"], (), "x") == {}
    with pytest.raises(ValueError, match=r"x: bridge: legato is for a one-pitch-per-step track \(model.monophonic\)"):
        check_legato({"bridge": 0.9}, META["tracks"], (0,), "x")
    with pytest.raises(ValueError, match=r"x: unknown track 'vocals'"):
        check_legato({"vocals": 0.9}, META["tracks"], (0,), "x")
    with pytest.raises(ValueError, match=r"x: melody: tau should be in \(0, 1\], got 1.5"):
        check_legato({"melody": 1.5}, META["tracks"], (0,), "x")


def _monophonic_generator():
    torch.manual_seed(0)
    g = Generator(**SMALL, monophonic=(0,)).eval()
    with torch.no_grad():                        # notes that start and stop all over the roll
        for prm in g.parameters():
            prm.normal_(0.0, 0.5)
    return g


def test_the_generator_returns_its_probabilities_before_the_one_pitch_rule():
    g = _monophonic_generator()
    z = g.sample_latents(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, dense = g(z, return_dense=True)
        assert torch.equal(out, g(z))
    assert (dense[:, 0] > 0).sum(-1).max() > 1 and (out[:, 0] > 0).sum(-1).max() == 1
    assert torch.equal(out, keep_most_probable_pitch(dense, (0,)))
    assert torch.equal(out[:, 1:], dense[:, 1:])


def _legato_composer(tmp_path, legato, name="l"):
    export_generator(_monophonic_generator(), tmp_path, name, META, legato=legato)
    return Composer.load(tmp_path / f"symbolic_{name}.json")


def test_the_card_legato_applies_when_the_composer_binarises(tmp_path):
    plain, leg = _legato_composer(tmp_path, None, "plain"), _legato_composer(tmp_path, {"melody": 0.6}, "leg")
    assert json.loads((tmp_path / "symbolic_leg.json").read_text())["decode"] == {"legato": {"melody": 0.6}}
    assert leg.legato == {0: 0.6} and plain.legato == {}
    z = plain.sample_latents(8, torch.Generator().manual_seed(0))
    a, b = plain.decode(z), leg.decode(z)
    assert torch.equal(a[:, 1:], b[:, 1:])
    assert bool((b >= a).all()) and int((b - a).sum()) > 0             # legato only adds steps
    _, dense = plain.generator(z, return_dense=True)
    assert torch.equal(b.bool(), legato_overlaps(dense, a.bool(), {0: 0.6}))
    assert torch.equal(leg.decode(z, threshold=None), plain.decode(z, threshold=None))
    given = a[:, 0]                                                    # a given melody is kept as given
    assert torch.equal(leg.decode(z, cond_roll=given, cond_track=0)[:, 0], given)
    again = _legato_composer(tmp_path, {"melody": 0.6}, "leg")
    assert torch.equal(again.decode(z), b)


def test_a_card_may_hold_both_rules(tmp_path):
    g = _monophonic_generator()
    export_generator(g, tmp_path, "both", META, release={"bridge": 0.9}, legato={"melody": 0.7})
    both = Composer.load(tmp_path / "symbolic_both.json")
    assert json.loads((tmp_path / "symbolic_both.json").read_text())["decode"] == {
        "release": {"bridge": 0.9}, "legato": {"melody": 0.7}}
    z = both.sample_latents(4, torch.Generator().manual_seed(2))
    probs, dense = both.generator(z, return_dense=True)
    want = legato_overlaps(dense, release_held_notes(probs, probs > 0.5, {1: 0.9}), {0: 0.7})
    assert torch.equal(both.decode(z).bool(), want)


@pytest.mark.parametrize("decode, message", [
    ({"release": {"bass": 0.5}}, r"decode.release: unknown track 'bass'"),
    ({"legato": {"piano": 0.9}}, r"decode.legato: piano: legato is for a one-pitch-per-step track"),
    ({"legato": {"melody": 2}}, r"decode.legato: melody: tau should be in \(0, 1\], got 2.0"),
])
def test_a_bad_rule_in_a_card_is_a_user_error(tmp_path, decode, message):
    _legato_composer(tmp_path, {"melody": 0.9})                         # its generator's melody is monophonic
    card = json.loads((tmp_path / "symbolic_l.json").read_text())
    card["decode"] = decode
    (tmp_path / "symbolic_l.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="symbolic_l.json: " + message):
        Composer.load(tmp_path / "symbolic_l.json")


def test_evaluation_can_replace_the_cards_legato(tmp_path):
    from symbolic.evaluate import generate_for_phrases

    _legato_composer(tmp_path, {"melody": 0.6})
    chords = np.random.default_rng(0).integers(0, 2, (6, 2, 4, 12)).astype(np.uint8)  # notes that change
    arrays = {"chords": chords, "style": np.zeros(6, np.int64), "has_chords": np.ones(6, bool)}
    weights = tmp_path / "symbolic_l.safetensors"
    card_rule = generate_for_phrases(weights, META, arrays, np.arange(6))
    none = generate_for_phrases(weights, META, arrays, np.arange(6), legato={})
    assert np.array_equal(card_rule[:, 1:], none[:, 1:]) and card_rule[:, 0].sum() > none[:, 0].sum()
    assert np.array_equal(generate_for_phrases(weights, META, arrays, np.arange(6), legato={"melody": 0.6}),
                          card_rule)
    with pytest.raises(UserError, match="--legato: bridge: legato is for a one-pitch-per-step track"):
        generate_for_phrases(weights, META, arrays, np.arange(6), legato={"bridge": 0.5})


def test_the_evaluate_command_takes_a_legato(tmp_path):
    from symbolic.datamodule import write_fake_cache
    from symbolic.evaluate import cli_main

    data = write_fake_cache(tmp_path / "data", n_train=2, n_valid=2, n_test=8, n_bars=2, steps_per_beat=1,
                            lowest_pitch=60, n_pitches=6, styles=())
    _legato_composer(tmp_path, None)
    base = ["prog", "--data", str(data), "--weights", str(tmp_path / "symbolic_l.json")]
    reports = {}
    for leg in ("none", "melody=0.6"):
        assert cli_main([*base, "--legato", leg, "--json", str(tmp_path / "r.json")]) == 0
        reports[leg] = json.loads((tmp_path / "r.json").read_text())["generated"]["melody"]
    assert reports["none"]["POLY_RATE"] == 0.0 < reports["melody=0.6"]["POLY_RATE"]
    with pytest.raises(UserError, match="--legato: expected TRACK=TAU"):
        cli_main([*base, "--legato", "melody"])


def test_model_legato_goes_to_the_card_and_wants_a_monophonic_track(tmp_path, tiny_module_kw):
    from symbolic.datamodule import read_meta, write_fake_cache
    from symbolic.lightning import MuseGANModule, export_module

    meta = read_meta(write_fake_cache(tmp_path / "data", n_train=2, n_valid=1, n_test=1))
    run = MuseGANModule(**tiny_module_kw, data_meta=meta, monophonic=("melody",), legato={"melody": 0.99})
    export_module(run, tmp_path / "a", "x", global_step=0)
    assert json.loads((tmp_path / "a" / "symbolic_x.json").read_text())["decode"] == {"legato": {"melody": 0.99}}
    # monophonic from a schedule phase on is enough
    MuseGANModule(**tiny_module_kw, data_meta=meta, legato={"melody": 0.99},
                  schedule=[{"from_step": 5, "monophonic": ["melody"]}])
    with pytest.raises(ValueError, match=r"model.legato: melody: legato is for a one-pitch-per-step track"):
        MuseGANModule(**tiny_module_kw, data_meta=meta, legato={"melody": 0.99})


def test_the_export_command_takes_a_legato(tmp_path, tiny_fit, capsys):
    from pipeline.cli import main

    model, trainer = tiny_fit(tmp_path, 2, monophonic=("melody",))
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    ckpt = str(tmp_path / "run.ckpt")
    assert main(["export", "symbolic", ckpt, "--out", str(tmp_path / "a"), "--name", "x",
                 "--legato", "melody=0.999", "--release", "bridge=0.9"]) == 0
    card = json.loads((tmp_path / "a" / "symbolic_x.json").read_text())
    assert card["decode"] == {"release": {"bridge": 0.9}, "legato": {"melody": 0.999}}
    assert Composer.load(tmp_path / "a" / "symbolic_x.json").legato == {0: 0.999}
    for bad, msg in ((["--legato", "piano=0.9"], "--legato: piano: legato is for a one-pitch-per-step track"),
                     (["--legato", "melody"], "--legato: expected TRACK=TAU (or none), got 'melody'"),
                     (["--legato", "melody=0"], r"--legato: melody: tau should be in (0, 1], got 0.0")):
        capsys.readouterr()
        assert main(["export", "symbolic", ckpt, "--out", str(tmp_path / "b"), *bad]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
