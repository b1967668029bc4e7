"""``musegansynth generate``: latent planning, composing, files, reproducibility, CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
import yaml

from fakes import SMALL_SONG
from fakes import FakeComposer, FakeTimbreGenerator, fake_drum_composer
from pipeline.config import load_config, parse_config
from pipeline.errors import UserError
from pipeline.generate import (TRANSITION_T, Models, _generator, _seed_for, _take, bar_chords, cli_main, compose, fill_silent_bars, generate_song,
                               plan_chords, plan_phrases, section_arrangement, section_table)

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**changes):
    data = json.loads(json.dumps(SMALL_SONG))
    data.update(changes)
    return parse_config(data, "small.yaml")


def test_plan_repeats_reuse_latents_and_transitions_interpolate():
    comp = FakeComposer()
    cfg = _cfg(sections=[{"name": "a", "bars": 8}, {"name": "b", "bars": 4}, {"name": "a", "bars": 8},
                         {"name": "b", "bars": 4, "variation": 0.5}])
    phrases = plan_phrases(comp, cfg, seed=3, tag="x")
    assert len(phrases) == 2 + 1 + 2 + 1
    a1, b1, a2, b2 = phrases[0:2], phrases[2], phrases[3:5], phrases[5]
    # a repeat without variation reuses the first occurrence's latents (first phrase untouched)
    assert torch.equal(a1[0]["shared"], a2[0]["shared"])
    # the last phrase of a section moves towards the next section's first phrase (as drawn)
    raw_a = comp.sample_latents(2, _generator(_seed_for(3, "x", "section", "a")))
    raw_b = comp.sample_latents(1, _generator(_seed_for(3, "x", "section", "b")))
    expect = comp.interpolate(_take(raw_a, 1), _take(raw_b, 0), TRANSITION_T)
    assert torch.allclose(a1[1]["shared"], expect["shared"]) and torch.allclose(a1[1]["private"], expect["private"])
    assert torch.equal(a1[0]["shared"], raw_a["shared"][:1])
    assert not torch.allclose(a1[1]["shared"], raw_a["shared"][1:2])
    again = plan_phrases(comp, cfg, seed=3, tag="x")
    assert all(torch.equal(x["shared"], y["shared"]) for x, y in zip(again, phrases))  # deterministic
    # variation: the repeated b differs from the first b but stays correlated with it
    assert not torch.equal(b1["private"], b2["private"])
    corr = np.corrcoef(b1["private"].flatten(), b2["private"].flatten())[0, 1]
    assert corr > 0.5
    # another seed gives other latents
    assert not torch.equal(plan_phrases(comp, cfg, seed=4, tag="x")[0]["shared"], a1[0]["shared"])


def test_plan_chords_per_phrase():
    comp = FakeComposer()
    cfg = _cfg(sections=[{"name": "a", "bars": 6, "chords": ["C", "G"]}, {"name": "b", "bars": 4}])
    chords = plan_chords(comp, cfg)
    assert chords.shape == (3, 4, 4, 12)
    # bar 0 C, bar 1 G, ...; the padded bars 6-7 repeat the section from its start
    assert torch.nonzero(chords[0, 0, 0]).flatten().tolist() == [0, 4, 7]
    assert torch.nonzero(chords[0, 1, 2]).flatten().tolist() == [2, 7, 11]
    assert torch.equal(chords[1, 2], chords[0, 0])
    assert not chords[2].any()  # section b has no chords
    assert plan_chords(comp, _cfg(sections=[{"name": "a", "bars": 4}])) is None


def test_compose_aligns_tracks_and_conditions_on_chords(fake_models):
    cfg = _cfg()
    roll = compose(fake_models, cfg, cfg.seed, "cpu")
    assert roll.shape == (3, 10, 16, 84) and roll.dtype == bool
    calls = fake_models.composer.decode_calls
    assert len(calls) == 1 and calls[0]["n"] == 3 and calls[0]["chords"].shape == (3, 4, 4, 12)
    # the composer is conditioned on its own (first) style, not on the rarely trained "unknown" one
    assert calls[0]["style"].tolist() == [0, 0, 0]
    dcall = fake_models.drums.decode_calls[0]
    assert dcall["style"].tolist() == [1, 1, 1]  # "rock" is style 1 of the fake drums model
    # the melody follows the chords: bar 1 is Am, so its notes are A, C or E
    pcs = {p % 12 for p in np.nonzero(roll[0, 1])[1] + 24}
    assert pcs <= {9, 0, 4} and pcs
    # drums are there in every bar (kick on beat 1)
    assert roll[2, :, 0, 36 - 24].all()


def test_compose_errors(fake_models, capsys):
    sections = [dict(sec, play=["x"]) for sec in SMALL_SONG["sections"]]
    bad_source = _cfg(tracks=[{"name": "x", "source": "bass"}], sections=sections)
    with pytest.raises(UserError, match=r"small.yaml: tracks\[0\].source: 'bass' is not a composer track"):
        compose(fake_models, bad_source, 1, "cpu")
    assert capsys.readouterr().err == ""   # no note about 'play' for a track that cannot be composed
    with pytest.raises(UserError, match=r"style: 'jazz' is not allowed \(allowed: pop, rock\)"):
        compose(fake_models, _cfg(style="jazz"), 1, "cpu")


def test_a_section_may_give_the_drums_another_style(fake_models, tmp_path, capsys):
    # phrases of 4 bars: verse 1, chorus 1 (2 bars), verse 1; the chorus plays pop, the rest the song's rock
    sections = [dict(sec) for sec in SMALL_SONG["sections"]]
    sections[1]["style"] = "POP"
    compose(fake_models, _cfg(sections=sections), 1, "cpu")
    assert fake_models.drums.decode_calls[-1]["style"].tolist() == [1, 0, 1]
    # without a song style, the other sections stay "unknown" (-1); an index works as a name does
    sections[1]["style"] = 1
    compose(fake_models, _cfg(style=None, sections=sections), 1, "cpu")
    assert fake_models.drums.decode_calls[-1]["style"].tolist() == [-1, 1, -1]
    # none given anywhere: the unknown style, as before
    compose(fake_models, _cfg(style=None), 1, "cpu")
    assert fake_models.drums.decode_calls[-1]["style"] is None
    sections[1]["style"] = "jazz"
    with pytest.raises(UserError, match=r"small.yaml: sections\[1\].style: 'jazz' is not allowed \(allowed: pop, rock\)"):
        compose(fake_models, _cfg(sections=sections), 1, "cpu")
    sections[1]["style"] = 7
    with pytest.raises(UserError, match=r"sections\[1\].style: 7 is out of range \(allowed: 0 to 1\)"):
        compose(fake_models, _cfg(sections=sections), 1, "cpu")
    sections[1]["style"] = ["rock"]
    with pytest.raises(UserError, match=r"sections\[1\].style: .* is not allowed \(expected a style name or index\)"):
        _cfg(sections=sections)
    # the section table (song.json, index.html) says which style each section's drums played
    sections[1]["style"] = "pop"
    rows = section_table(_cfg(sections=sections))
    assert [r["style"] for r in rows] == ["rock", "pop", "rock"]
    assert [r["style"] for r in section_table(_cfg(sections=sections), drums=False)] == [None] * 3
    # a style given by its index is shown by its name
    assert [r["style"] for r in section_table(_cfg(sections=sections, style=1), styles=["pop", "rock"])] == \
        ["rock", "pop", "rock"]
    # a song without a drums track says no style in song.json
    no_drums = _cfg(sections=sections, tracks=SMALL_SONG["tracks"][:2])
    capsys.readouterr()
    out = generate_song(no_drums, tmp_path / "nd", models=fake_models, renderer="none")
    assert [r["style"] for r in json.loads((out / "song.json").read_text())["sections"]] == [None] * 3
    # and its styles are said to do nothing (they were taken without a word)
    assert capsys.readouterr().err == ("musegansynth: note: small.yaml: style 'rock', 'pop' has no effect: the song "
                                       "has no drums track (a style is the drums' genre)\n")


def test_a_style_index_for_drums_without_named_styles_is_checked_against_the_generator(fake_models):
    # a card without style names: an index is checked against the generator's n_styles (past it,
    # the style embedding would fail with an IndexError and a traceback)
    from types import SimpleNamespace

    drums = fake_drum_composer(styles=())
    drums.generator = SimpleNamespace(config={"n_styles": 2})
    models = Models(fake_models.composer, drums, fake_models.timbre, {})
    sections = [dict(sec) for sec in SMALL_SONG["sections"]]
    sections[1]["style"] = 1
    compose(models, _cfg(style=None, sections=sections), 1, "cpu")
    assert drums.decode_calls[-1]["style"].tolist() == [-1, 1, -1]
    sections[1]["style"] = 2
    with pytest.raises(UserError, match=r"^small.yaml: sections\[1\].style: 2 is out of range \(allowed: 0 to 1\)$"):
        compose(models, _cfg(style=None, sections=sections), 1, "cpu")
    with pytest.raises(UserError, match=r"^small.yaml: style: -1 is out of range \(allowed: 0 to 1\)$"):
        compose(models, _cfg(style=-1), 1, "cpu")
    drums.generator.config["n_styles"] = 0
    with pytest.raises(UserError, match=r"^small.yaml: style: 0: the drums model has no styles$"):
        compose(models, _cfg(style=0), 1, "cpu")


def test_learnt_velocities_play_each_hit_as_the_data_does_in_its_sections_style(fake_models, tmp_path):
    from pipeline.generate import ACCENT, BASE_VELOCITY

    # the kick (MIDI 36) on a bar's first step: 111 in rock, 50 pooled over all styles
    fake_models.drums.velocity = {"steps_per_bar": 16, "min_count": 20, "split": "train", "tracks": {
        "drums": {"by": "pitch", "styles": {"*": {"36": [50] + [None] * 15}, "rock": {"36": [111] + [None] * 15}}}}}
    sections = [dict(sec) for sec in SMALL_SONG["sections"]]
    sections[1]["style"] = "pop"  # no pop cell: the pooled one
    out = generate_song(_cfg(sections=sections), tmp_path / "song", models=fake_models, renderer="none")
    pm = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    bar_s = 2.0
    kicks = {round(n.start / bar_s, 3): n.velocity for n in pm.instruments[2].notes
             if n.pitch == 36 and abs(n.start / bar_s - round(n.start / bar_s)) < 1e-6}
    assert [kicks[b] for b in range(10)] == [111] * 4 + [50] * 2 + [111] * 4
    others = {n.velocity for n in pm.instruments[2].notes if n.pitch != 36}
    assert others and others <= {BASE_VELOCITY, BASE_VELOCITY + ACCENT}   # no table cell: the fixed rule
    # the composer's tracks have no table: the fixed rule
    assert {n.velocity for n in pm.instruments[0].notes} <= {BASE_VELOCITY, BASE_VELOCITY + ACCENT}


def test_the_drums_cards_kit_keys_are_played_as_gm_keys(fake_models, tmp_path):
    """Groove's kit plays its closed hi-hat edge as key 42 here; a card whose drum_keys map 42 to
    44 (standing in for Groove's 26 -> 46: a key FluidSynth's GM kit leaves silent) writes every
    hat at 44, with the velocity its own cell gives, and leaves the kick and snare alone."""
    plain = generate_song(_cfg(), tmp_path / "plain", models=fake_models, renderer="none")
    fake_models.drums.drum_keys = {42: 44, 22: 42}   # 22 lies outside the grid: nothing to move
    fake_models.drums.velocity = {"steps_per_bar": 16, "min_count": 20, "split": "train", "tracks": {
        "drums": {"by": "pitch", "styles": {"*": {"42": [33] * 16}}}}}
    mapped = generate_song(_cfg(), tmp_path / "mapped", models=fake_models, renderer="none")
    a = pretty_midi.PrettyMIDI(str(plain / "song.mid")).instruments[2].notes
    b = pretty_midi.PrettyMIDI(str(mapped / "song.mid")).instruments[2].notes
    assert len(a) == len(b) and {n.pitch for n in b} == {36, 38, 44}
    assert sorted((n.start, n.pitch if n.pitch != 42 else 44) for n in a) == sorted((n.start, n.pitch) for n in b)
    assert {n.velocity for n in b if n.pitch == 44} == {33}   # the velocity of the kit's own key
    # a key outside GM's kit (35-81), which no GM synthesizer plays, is left out of the song
    fake_models.drums.drum_keys = {42: 90}
    stray = generate_song(_cfg(), tmp_path / "stray", models=fake_models, renderer="none")
    c = pretty_midi.PrettyMIDI(str(stray / "song.mid")).instruments[2].notes
    assert {n.pitch for n in c} == {36, 38} and len(c) == sum(n.pitch in (36, 38) for n in a)


def test_learnt_velocities_match_a_style_name_in_any_case(fake_models, tmp_path):
    # the drums are composed as "rock" whatever the case the config spells it in: so are their velocities
    fake_models.drums.velocity = {"steps_per_bar": 16, "min_count": 20, "split": "train", "tracks": {
        "drums": {"by": "pitch", "styles": {"*": {"36": [50] + [None] * 15}, "rock": {"36": [111] + [None] * 15}}}}}
    out = generate_song(_cfg(style="ROCK"), tmp_path / "song", models=fake_models, renderer="none")
    pm = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    kicks = {n.velocity for n in pm.instruments[2].notes
             if n.pitch == 36 and abs(n.start / 2.0 - round(n.start / 2.0)) < 1e-6}   # on a bar's first step
    assert kicks == {111}


def test_humanize_varies_each_hit_about_its_cells_mean_reproducibly(fake_models, tmp_path):
    fake_models.drums.velocity = {"steps_per_bar": 16, "tracks": {"drums": {
        "by": "pitch", "styles": {"rock": {"36": [100] + [None] * 15}}, "spread": {"rock": {"36": [10] + [None] * 15}}}}}

    def kicks(humanize, name, seed=3):
        out = generate_song(_cfg(humanize=humanize, seed=seed), tmp_path / name, models=fake_models, renderer="none")
        pm = pretty_midi.PrettyMIDI(str(out / "song.mid"))
        return [n.velocity for n in pm.instruments[2].notes
                if n.pitch == 36 and abs(n.start / 2.0 - round(n.start / 2.0)) < 1e-6]

    assert kicks(0.0, "a") == [100] * 10
    varied = kicks(1.0, "b")
    assert len(set(varied)) > 3 and all(60 <= v <= 127 for v in varied) and varied == kicks(1.0, "c")
    assert kicks(1.0, "e", seed=4) != varied          # the song's seed seeds the draws
    half = kicks(0.5, "d")
    assert [round(100 + (v - 100) / 2) for v in varied] == pytest.approx(half, abs=1)  # the same draws, half as far
    with pytest.raises(UserError, match=r"small.yaml: humanize: 2 is out of range \(allowed: 0.0 to 1.0\)"):
        _cfg(humanize=2)


def test_learnt_timing_plays_each_hit_its_cells_mean_offset_off_the_grid(fake_models, tmp_path):
    from pipeline.generate import section_at

    fake_models.drums.velocity = {"steps_per_bar": 16, "tracks": {"drums": {
        "by": "pitch", "styles": {"rock": {"36": [100] + [None] * 15}},
        "timing": {"rock": {"36": [-0.25] + [None] * 15}}}}}          # the kick a quarter step early
    out = generate_song(_cfg(), tmp_path / "song", models=fake_models, renderer="none")
    notes = pretty_midi.PrettyMIDI(str(out / "song.mid")).instruments[2].notes
    step = 60 / 120 / 4
    kicks = sorted(n.start for n in notes if n.pitch == 36 and n.velocity == 100)
    assert kicks[0] == 0.0                                          # never before the song starts
    assert kicks[1:] == pytest.approx([b * 2.0 - 0.25 * step for b in range(1, 10)])
    others = [n.start for n in notes if n.pitch != 36]
    assert all(abs(t / step - round(t / step)) < 1e-6 for t in others)   # no timing cell: on the grid
    # a note played up to half a step early belongs to the section it was written in (its timbre)
    cfg = _cfg()
    assert section_at(cfg, 8.0 - 0.25 * step) == 0 and section_at(cfg, 8.0 - 0.25 * step, early_s=step / 2) == 1


def test_section_play_and_rest_override_the_arrangement():
    cfg = _cfg(sections=[{"name": "intro", "bars": 4, "rest": ["lead"]},
                         {"name": "verse", "bars": 6, "play": ["LEAD"], "rest": "keys"},
                         {"name": "end", "bars": 2}])
    assert cfg.sections[1].play == ("lead",) and cfg.sections[1].rest == ("keys",)
    comp = FakeComposer()  # tracks melody, bridge, piano; 4-bar phrases
    arr = torch.zeros(4, 3, 4, dtype=torch.bool)                   # intro 1 phrase, verse 2, end 1
    arr[:, 1] = True
    arr[3, 2, 1] = True
    out = section_arrangement(arr, comp, cfg)
    assert out[0, 0].tolist() == [False] * 4                       # intro: lead (melody) rests
    assert out[1:3, 0].all() and not out[1:3, 2].any()             # verse: lead plays, keys (piano) rest
    assert torch.equal(out[:, 1], arr[:, 1])                       # the bridge, which the song leaves out, as drawn
    # a bar where none of the song's tracks would play gets the first its section does not rest:
    # the intro's keys (lead rests there), the end's lead where its keys are silent
    assert out[0, 2].all()
    assert out[3, 0].tolist() == [True, False, True, True] and out[3, 2].tolist() == [False, True, False, False]
    assert not arr[1:3, 0].any() and not arr[0, 2].any()           # the input is left as it was
    # a melody-only song: the melody wherever the chain drew only tracks it leaves out
    alone = _cfg(tracks=[{"name": "lead", "source": "melody"}], sections=[{"name": "a", "bars": 8}])
    drawn = torch.zeros(2, 3, 4, dtype=torch.bool)
    drawn[0, 0, :2] = True
    drawn[:, 2] = True
    assert section_arrangement(drawn, comp, alone)[:, 0].all()
    rested = _cfg(tracks=[{"name": "lead", "source": "melody"}], sections=[{"name": "a", "bars": 8, "rest": ["lead"]}])
    assert not section_arrangement(drawn, comp, rested)[:, 0].any()


def test_tracks_sharing_a_source_share_its_arrangement_row(capsys):
    from pipeline.generate import fill_play_bars

    tracks = [{"name": "lead", "source": "melody"}, {"name": "pianoL", "source": "piano"},
              {"name": "pianoR", "source": "piano"}]
    cfg = _cfg(tracks=tracks, sections=[{"name": "a", "bars": 4, "rest": ["pianoL"]},
                                        {"name": "b", "bars": 4, "play": ["pianoL"], "rest": ["pianoR"]},
                                        {"name": "c", "bars": 4, "rest": ["pianoL", "pianoR"]}])
    arr = torch.zeros(3, 3, 4, dtype=torch.bool)
    arr[0, 2, :2] = True
    out = section_arrangement(arr, FakeComposer(), cfg)
    # a: one piano rests, the other plays as drawn (before, pianoL's rest silenced both); b: one plays;
    # c: both rest
    assert out[0, 2].tolist() == [True, True, False, False]
    assert out[1, 2].all() and not out[2, 2].any()
    # a 'play' track with no note in its whole section is said, not filled from elsewhere
    roll = np.zeros((3, 12, 16, 84), dtype=bool)
    roll[1, 4, 0, 40] = True                                       # pianoL plays one bar of b
    filled = fill_play_bars(roll, cfg, [0, 1, 2])
    assert filled[1, 4:8, 0, 40].all() and not filled[1, :4].any()
    assert capsys.readouterr().err == ""
    compose(Models(FakeComposer(), fake_drum_composer(), None, {}),
            _cfg(sections=[{"name": "a", "bars": 4, "variation": 0.5}, {"name": "a", "bars": 4, "variation": 0.5}]),
            1, "cpu")
    assert capsys.readouterr().err == ("musegansynth: note: sections[0] (a): variation 0.5 has no effect on a "
                                       "section's first occurrence (it varies the repeats)\n")
    cfg2 = _cfg(tracks=tracks, sections=[{"name": "a", "bars": 4, "play": ["lead"]}])
    fill_play_bars(np.zeros((3, 4, 16, 84), dtype=bool), cfg2, [0, 1, 2])
    assert capsys.readouterr().err == ("musegansynth: note: sections[0] (a): lead wrote no notes although 'play' "
                                       "asks for it (another seed gives other notes)\n")


def test_section_rest_silences_any_composer_and_play_needs_arrangement(fake_models, capsys):
    cfg = _cfg(sections=[{"name": "verse", "bars": 4, "chords": ["C", "Am", "F", "G"], "rest": ["drums", "lead"]},
                         {"name": "chorus", "bars": 2, "chords": ["F", "G"]}])
    roll = compose(fake_models, cfg, cfg.seed, "cpu")
    assert not roll[[0, 2], :4].any() and roll[1, :4].any()       # lead and drums rest, keys play
    assert roll[0, 4:].any() and roll[2, 4:].any()
    plain = compose(fake_models, _cfg(sections=[{"name": "v", "bars": 4}]), 1, "cpu")
    played = compose(fake_models, _cfg(sections=[{"name": "v", "bars": 4, "play": ["lead"]}]), 1, "cpu")
    assert np.array_equal(plain, played)                          # no arrangement: the composer decides
    assert "lead: 'play' has no effect" in capsys.readouterr().err


def test_fill_silent_bars():
    roll = np.zeros((2, 4, 16, 84), dtype=bool)
    roll[0, 0, :8, 40] = True
    roll[0, 2, :4, 50] = True
    roll[1, 1, 0, 12] = True  # drums do not count
    out = fill_silent_bars(roll, drum_tracks=[1])
    assert np.array_equal(out[0, 1], roll[0, 0])  # bar 1 repeats bar 0
    assert np.array_equal(out[0, 2], roll[0, 2])
    assert np.array_equal(out[0, 3], roll[0, 2])  # bar 3 repeats bar 2
    assert np.array_equal(out[1], roll[1])
    assert not out[0, 0].sum() == 0 and np.array_equal(roll[0, 1], np.zeros((16, 84), bool))  # input untouched
    # with the bars' chords: only a bar of the same section under the same chords is repeated
    cfg = _cfg(sections=[{"name": "v", "bars": 3, "chords": ["C", "Am", "C"]}, {"name": "c", "bars": 3, "chords": ["C"] * 3}])
    chords = bar_chords(cfg, 4)
    assert chords[0] == chords[2] != chords[1] and chords[3][0] == 1 and chords[3][1] == chords[0][1]
    six = np.zeros((1, 6, 16, 84), dtype=bool)
    six[0, 0, :4, 40] = True
    out = fill_silent_bars(six, (), chords)
    assert not out[0, 1].any()                            # Am: no bar under Am before it
    assert np.array_equal(out[0, 2], six[0, 0])           # C again: bar 0 repeated, two bars back
    assert not out[0, 3:].any()                           # the next section: nothing of its own to repeat


def test_fill_play_bars_repeats_only_a_bar_under_the_same_chords(capsys):
    from pipeline.generate import fill_play_bars

    cfg = _cfg(tracks=[{"name": "lead", "source": "melody"}],
               sections=[{"name": "a", "bars": 4, "chords": ["C", "F", "C", "G"], "play": ["lead"]}])
    roll = np.zeros((1, 4, 16, 84), dtype=bool)
    roll[0, 2, 0, 48] = True                              # lead wrote only bar 2 (C)
    out = fill_play_bars(roll, cfg, [0], 4)
    assert np.array_equal(out[0, 0], roll[0, 2])          # bar 0 is C too: the C bar after it
    assert not out[0, 1].any() and not out[0, 3].any()    # F, G: nothing written under them
    err = capsys.readouterr().err
    assert err.count("no bar of the section under the same chords") == 2 and "its bar 2 " in err and "its bar 4 " in err


def _samples(path):
    data, sr = sf.read(str(path), dtype="int16", always_2d=True)
    return data, sr


def test_a_song_lasts_all_its_bars_also_when_its_last_section_is_silent(tmp_path, fake_models):
    # the last section rests every track: the MIDI, the duration and the audio still reach its end
    sections = [dict(sec) for sec in SMALL_SONG["sections"]]
    sections[-1]["rest"] = [t["name"] for t in SMALL_SONG["tracks"]]
    out = generate_song(_cfg(sections=sections), tmp_path / "song", models=fake_models)
    pm = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert max(n.end for i in pm.instruments for n in i.notes) <= 6 * 2.0 + 0.5   # nothing in the last 4 bars
    assert pm.get_end_time() == pytest.approx(20.0) and [(t.text, t.time) for t in pm.text_events] == [("end", 20.0)]
    facts = json.loads((out / "song.json").read_text())
    assert facts["duration_s"] == 20.0 and facts["sections"][-1]["end_s"] == 20.0
    song, sr = _samples(out / "song.wav")
    assert song.shape[0] >= 20 * sr


def test_generate_keeps_the_users_files_in_an_output_stems_folder(tmp_path, fake_models):
    (tmp_path / "song" / "stems").mkdir(parents=True)
    (tmp_path / "song" / "stems" / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match=r"stems: holds files this command did not write \(mine\.txt\)"):
        generate_song(_cfg(), tmp_path / "song", models=fake_models, renderer="none")
    assert sorted(p.name for p in (tmp_path / "song").rglob("*")) == ["mine.txt", "stems"]


def test_generate_song_writes_everything(tmp_path, fake_models):
    cfg = _cfg()
    out = generate_song(cfg, tmp_path / "song", models=fake_models, device="cpu")
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert names == ["index.html", "pianoroll.png", "song.json", "song.mid", "song.wav", "stems",
                     "stems/drums.wav", "stems/keys.wav", "stems/lead.wav"]
    pm = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert [i.name for i in pm.instruments] == ["lead", "keys", "drums"]
    assert [i.program for i in pm.instruments] == [73, 0, 0] and pm.instruments[2].is_drum
    assert pm.get_tempo_changes()[1].tolist() == [120.0]
    assert pm.get_end_time() == pytest.approx(10 * 2.0)  # 10 bars of 2 s: the file lasts all of them
    facts = json.loads((out / "song.json").read_text())
    assert facts["note_counts"] == {i.name: len(i.notes) for i in pm.instruments}
    assert all(facts["note_counts"].values())
    assert facts["seed"] == 3 and facts["device"] == "cpu" and facts["bars"] == 10
    assert [s["name"] for s in facts["sections"]] == ["verse", "chorus", "verse"]
    assert facts["sections"][1]["start_s"] == 8.0 and facts["sections"][2]["end_s"] == 20.0
    assert set(facts["timings"]) >= {"compose_s", "render_s", "total_s"}
    assert facts["config"]["title"] == "Small Song" and "torch" in facts["versions"]
    song, sr = _samples(out / "song.wav")
    assert sr == 16000 and song.shape[1] == 2  # pans given: stereo
    assert song.shape[0] >= int(20 * sr)
    peak = np.abs(song).max() / 32767
    assert 0.05 < peak <= 10 ** (-1 / 20) + 1e-4
    stem, _ = _samples(out / "stems" / "lead.wav")
    assert stem.shape[0] == song.shape[0] and np.abs(stem).max() > 0
    # no silent gap: every bar of the mix has sound
    bar = 2 * sr
    for b in range(10):
        assert np.abs(song[b * bar:(b + 1) * bar]).max() > 100, b


def test_same_seed_same_bytes_other_seed_differs(tmp_path, fake_models):
    cfg = _cfg()
    a = generate_song(cfg, tmp_path / "a", models=fake_models)
    b = generate_song(cfg, tmp_path / "b", models=Models(FakeComposer(), fake_drum_composer(),
                                                        FakeTimbreGenerator(clip_s=0.5), {}))
    assert (a / "song.mid").read_bytes() == (b / "song.mid").read_bytes()
    assert np.array_equal(_samples(a / "song.wav")[0], _samples(b / "song.wav")[0])
    c = generate_song(cfg.with_seed(4), tmp_path / "c", models=fake_models, renderer="none")
    assert (a / "song.mid").read_bytes() != (c / "song.mid").read_bytes()
    assert not (c / "song.wav").exists() and not (c / "stems").exists()
    assert "No audio" in (c / "index.html").read_text()


def test_failure_leaves_nothing(tmp_path, fake_models, monkeypatch):
    import pipeline.report as report

    def boom(*a, **k):
        raise UserError("boom")

    monkeypatch.setattr(report, "write_report", boom)
    with pytest.raises(UserError, match="boom"):
        generate_song(_cfg(), tmp_path / "out", models=fake_models)
    assert list(tmp_path.iterdir()) == []


def test_cli_main_in_process(tmp_path, small_config_path, patch_load_models, capsys):
    out = tmp_path / "o"
    assert cli_main(["musegansynth generate", str(small_config_path), "--out", str(out), "--seed", "9",
                     "--device", "cpu", "--flac"]) == 0
    assert (out / "song.flac").exists() and (out / "stems" / "lead.flac").exists()
    assert json.loads((out / "song.json").read_text())["seed"] == 9
    assert patch_load_models == [("cpu", "neural")]
    assert 'src="song.flac"' in (out / "index.html").read_text()


def test_cli_count_makes_several_songs(tmp_path, small_config_path, patch_load_models):
    out = tmp_path / "many"
    assert cli_main(["g", str(small_config_path), "--out", str(out), "--count", "2", "--renderer", "none"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed-3", "seed-4"]
    mids = [(out / d / "song.mid").read_bytes() for d in ("seed-3", "seed-4")]
    assert mids[0] != mids[1]


def test_cli_default_config_and_out(tmp_path, monkeypatch, patch_load_models):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["g", "--renderer", "none", "--seed", "1"]) == 0
    out = tmp_path / "out" / "default-song"
    assert (out / "song.mid").exists() and (out / "pianoroll.png").exists()
    assert json.loads((out / "song.json").read_text())["bars"] == load_config(
        ROOT / "configs/song/default.yaml").n_bars


def test_cli_errors_in_process(tmp_path, small_config_path, patch_load_models):
    with pytest.raises(UserError, match="--count 0"):
        cli_main(["g", str(small_config_path), "--count", "0"])
    with pytest.raises(UserError, match="no such config file"):
        cli_main(["g", str(tmp_path / "nope.yaml")])


def _run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_subprocess_bad_config_value(tmp_path):
    bad = json.loads(json.dumps(SMALL_SONG))
    bad["tracks"][1]["volume_db"] = "loud"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    out = tmp_path / "out"
    proc = _run_cli("generate", str(path), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bad.yaml: tracks[1].volume_db: 'loud' is not a number" in lines[0]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_timbre_morphs_by_section(fake_models):
    import pretty_midi as pm_mod

    from pipeline.generate import render_song_neural

    cfg = _cfg()  # the chorus (bars 4-5, 8-12 s) has morph 0.5, the verses 0
    pm = pm_mod.PrettyMIDI(initial_tempo=120)
    for name in ("lead", "keys", "drums"):
        inst = pm_mod.Instrument(0, is_drum=name == "drums", name=name)
        inst.notes += [pm_mod.Note(100, 60, t, t + 0.5) for t in (1.0, 9.0, 13.0)]
        pm.instruments.append(inst)
    gen = fake_models.timbre
    stems, facts = render_song_neural(pm, cfg, gen, "cpu")
    # 3 tracks x 2 morph values = 6 timbres; each track's verse notes share one, its chorus note another
    assert facts["unique_notes"] == 6 and facts["notes"] == 9
    assert stems.shape[0] == 3
    # the chorus note of the lead sounds different from its verse notes (another timbre latent)
    sr = 16000
    verse1, chorus, verse2 = (stems[0, int(t * sr):int((t + 0.4) * sr)] for t in (1.0, 9.0, 13.0))
    np.testing.assert_allclose(verse1, verse2, atol=1e-6)
    assert np.abs(chorus - verse1).max() > 1e-3


def test_wrong_sample_rate_is_refused_before_rendering(tmp_path, fake_models):
    cfg = _cfg(sample_rate=22050)
    with pytest.raises(UserError, match=r"sample_rate: 22050 does not match the timbre model's 16000 Hz"):
        generate_song(cfg, tmp_path / "o", models=fake_models)
    assert fake_models.timbre.calls == [] and not (tmp_path / "o").exists()


def test_a_song_without_sample_rate_plays_at_the_timbre_models_own(tmp_path):
    # from QA: configs/audio/debug.yaml trains at 8 kHz, which no song config could name
    from fakes import FakeComposer, FakeTimbreGenerator, fake_drum_composer

    from pipeline.generate import Models

    low = Models(FakeComposer(), fake_drum_composer(), FakeTimbreGenerator(sample_rate=8000, clip_s=0.5), {})
    cfg = _cfg(sections=[{"name": "a", "bars": 2, "chords": ["C", "G"]}], sample_rate=None)
    assert cfg.sample_rate is None
    out = generate_song(cfg, tmp_path / "o", models=low)
    assert _samples(out / "song.wav")[1] == 8000
    assert json.loads((out / "song.json").read_text())["sample_rate"] == 8000
    again = generate_song(_cfg(sections=[{"name": "a", "bars": 2, "chords": ["C", "G"]}], sample_rate=8000),
                          tmp_path / "p", models=low)
    assert (again / "song.wav").read_bytes() == (out / "song.wav").read_bytes()
    none = generate_song(cfg, tmp_path / "n", models=low, renderer="none")
    assert json.loads((none / "song.json").read_text())["sample_rate"] is None


@pytest.mark.fluidsynth
def test_generate_with_fluidsynth(tmp_path, fake_models):
    from audio.fluid import fluidsynth_available

    if not fluidsynth_available():
        pytest.skip("fluidsynth is not installed")
    cfg = _cfg(sections=[{"name": "a", "bars": 2, "chords": ["C", "G"]}])
    out = generate_song(cfg, tmp_path / "f", models=Models(FakeComposer(), fake_drum_composer(), None, {}),
                        renderer="fluidsynth")
    song, sr = _samples(out / "song.wav")
    assert sr == 16000 and song.shape[1] == 2 and np.abs(song).max() > 1000
    assert sorted(p.name for p in (out / "stems").iterdir()) == ["drums.wav", "keys.wav", "lead.wav"]
    # a silent last section: the audio still lasts all the bars (2 s each)
    cfg = _cfg(sections=[{"name": "a", "bars": 2, "chords": ["C", "G"]},
                         {"name": "b", "bars": 4, "rest": ["lead", "keys", "drums"]}])
    out = generate_song(cfg, tmp_path / "g", models=Models(FakeComposer(), fake_drum_composer(), None, {}),
                        renderer="fluidsynth")
    assert _samples(out / "song.wav")[0].shape[0] >= 12 * 16000


def test_generate_names_the_notes_the_timbre_model_resamples(fake_models, tmp_path, capsys):
    """Composed notes above the pitches the timbre model learnt are resampled from octaves in: said once."""
    fake_models.timbre.pitch_range = (24, 60)
    generate_song(_cfg(), tmp_path / "song", models=fake_models, renderer="neural")
    err = capsys.readouterr().err
    assert err.count("musegansynth: note: the timbre model does not play as written: ") == 1
    assert "notes outside MIDI 24-60 (resampled from octaves it learnt: their timbre moves too) (--renderer fluidsynth plays them as written)" in err
    fake_models.timbre.pitch_range = (0, 127)
    generate_song(_cfg(), tmp_path / "all", models=fake_models, renderer="neural")
    assert "does not play" not in capsys.readouterr().err
