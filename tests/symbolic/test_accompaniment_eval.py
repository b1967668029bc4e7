"""Evaluating the composer's accompaniment mode and other keys: ``musegansynth evaluate symbolic
--given TRACK [--no-chords] [--transpose K]``, and the chord-tone rate it reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from symbolic import evaluate as E
from symbolic import metrics as M
from symbolic.export import export_generator
from symbolic.generate import shift_pitches
from symbolic.modules import Generator

PROG = "musegansynth evaluate symbolic"
SMALL = dict(n_tracks=3, n_bars=2, steps_per_bar=4, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=1,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)
GRID = {"steps_per_beat": 1, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24, "steps_per_bar": 4}
META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 2,
        "styles": ["pop"], "grid": GRID}
C_MAJOR = [0, 4, 7]
G_MAJOR = [7, 11, 2]
F_MAJOR = [5, 9, 0]


def test_chord_tone_rate_counts_sounding_cells_on_chord_tones():
    # one phrase, 1 bar of 4 steps (one step a beat), pitches from MIDI 60 (C)
    roll = np.zeros((2, 1, 4, 12), dtype=bool)
    chords = np.zeros((2, 1, 4, 12), dtype=np.uint8)
    chords[0, 0, :2, C_MAJOR] = 1            # C major on beats 1-2, G major on beat 3, no chord on beat 4
    chords[0, 0, 2, G_MAJOR] = 1
    roll[0, 0, 0, [0, 4, 5]] = True          # C, E (chord tones), F (not)
    roll[0, 0, 1, 7] = True                  # G: a chord tone
    roll[0, 0, 2, [7, 0]] = True             # G (tone of G major), C (not)
    roll[0, 0, 3, 1] = True                  # beat without a chord: not counted
    roll[1, 0, 0, 3] = True                  # a phrase without annotations: not counted
    chords[1, 0, :, C_MAJOR] = 1
    has = np.array([True, False])
    assert M.chord_tone_rate(roll, chords, has, 60) == pytest.approx(4 / 6)
    # true pitch classes: read from MIDI 61 up, every note is a semitone higher and none is a chord tone
    assert M.chord_tone_rate(roll, chords, has, 61) == 0.0
    assert np.isnan(M.chord_tone_rate(np.zeros_like(roll), chords, has, 60))
    with pytest.raises(ValueError, match="chords: expected"):
        M.chord_tone_rate(roll, chords[:, :, :3], has, 60)


def _weights(tmp_path, transposed=True):
    torch.manual_seed(0)
    g = Generator(**SMALL).eval()
    with torch.no_grad():
        for prm in g.parameters():
            prm.normal_(0.0, 0.5)
    export_generator(g, tmp_path, "t", dict(META, transposed=transposed))
    return tmp_path / "symbolic_t.safetensors"


def _dataset(root, n=6):
    """n phrases of two songs in C major: melody a C-major scale run from MIDI 48, bridge and piano
    chord tones (C major, then F major)."""
    root.mkdir(parents=True, exist_ok=True)
    rolls = np.zeros((n, 3, 2, 4, 24), dtype=bool)
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    chords = np.zeros((n, 2, 4, 12), dtype=np.uint8)
    for i in range(n):
        for bar in range(2):
            for step in range(4):
                rolls[i, 0, bar, step, scale[(i + bar * 4 + step) % 8]] = True
            chord = C_MAJOR if bar == 0 else F_MAJOR
            chords[i, bar, :, chord] = 1
            rolls[i, 1, bar, :, [c + 12 for c in chord]] = True
            rolls[i, 2, bar, ::2, chord] = True
    (root / "meta.json").write_text(json.dumps(dict(META, counts={"test": n})))
    np.savez_compressed(root / "test.npz", rolls=rolls, chords=chords, has_chords=np.ones(n, bool),
                        style=np.zeros(n, np.int64), song=np.arange(n, dtype=np.int64) // 3, key=np.zeros(n, np.int64))
    return root


def test_given_drum_track_gets_no_kit_distance(tmp_path, monkeypatch):
    # the piano marked a drum track on both sides: given, it is the data's own, so no kit distance;
    # written by the composer, it has one
    monkeypatch.setitem(META, "is_drum", [False, False, True])
    ds, w = _dataset(tmp_path / "ds"), _weights(tmp_path)
    assert E.evaluate_symbolic(ds, weights=w, given="piano")["kit"] == {}
    rep = E.evaluate_symbolic(ds, weights=w, given="melody")
    assert list(rep["kit"]) == ["piano"]
    assert f"piano: kit distance" in E.report_text(rep)
    rep["kit"]["piano"] = None                          # a report read back from JSON: NaN is null
    assert "piano: kit distance nan" in E.report_text(rep)


def test_given_track_rows_are_the_datas_and_do_not_count(tmp_path):
    ds, w = _dataset(tmp_path / "ds"), _weights(tmp_path)
    rep = E.evaluate_symbolic(ds, weights=w, given="Melody")
    melody = [r for r in rep["rows"] if r["track"] == "melody"]
    assert melody and all(r["given"] and r["within"] is None for r in melody)
    assert all(r["generated"] == r["data"] or (np.isnan(r["data"]) and np.isnan(r["generated"])) for r in melody)
    # every other row counts, the pairs with the melody among them (how the others fit it)
    assert rep["summary"]["compared"] == len(rep["rows"]) - len(melody)
    assert any(r["track"] == "melody/bridge" and r["within"] is not None for r in rep["rows"])
    assert rep["given"] == "melody" and [f["track"] for f in rep["fit"]] == ["bridge", "piano"]
    _, arrays = E.load_split(ds)
    bridge = rep["fit"][0]
    assert bridge["td_data"] == pytest.approx(M.tonal_distance(arrays["rolls"][:, 0], arrays["rolls"][:, 1], 48))
    assert bridge["ct_data"] == pytest.approx(1.0)      # the hand-made bridge plays only chord tones
    # the generated rolls are the accompaniment mode's, with the data's melody kept
    gen = E.generate_for_phrases(w, META, arrays, np.arange(6), given=0)
    assert np.array_equal(gen[:, 0], arrays["rolls"][:, 0])
    assert bridge["td_generated"] == pytest.approx(M.tonal_distance(gen[:, 0], gen[:, 1], 48))
    text = E.report_text(rep)
    assert "melody given" in text and "given" in text.splitlines()[3] and "vs another song's" in text


def test_no_chords_composes_without_them(tmp_path):
    ds, w = _dataset(tmp_path / "ds"), _weights(tmp_path)
    _, arrays = E.load_split(ds)
    with_chords = E.generate_for_phrases(w, META, arrays, np.arange(6), given=0)
    bare = E.generate_for_phrases(w, META, arrays, np.arange(6), given=0, chords="none")
    zeroed = dict(arrays, chords=np.zeros_like(arrays["chords"]), has_chords=np.zeros(6, bool))
    assert not np.array_equal(with_chords, bare)
    assert np.array_equal(bare, E.generate_for_phrases(w, META, zeroed, np.arange(6), given=0))
    rep = E.evaluate_symbolic(ds, weights=w, given="melody", chords="none")
    assert rep["chords"] == "none" and "no chords" in E.report_text(rep)
    # chords estimated from the given melody: those of symbolic.chords.estimate_chords, composed with
    est = E.estimated_chords(arrays["rolls"][:, 0], arrays["song"], META["grid"])
    assert est.shape == (6, 2, 4, 12) and est.dtype == np.uint8
    from symbolic.chords import estimate_chords
    assert np.array_equal(est[2], estimate_chords(arrays["rolls"][2, 0], 48, 1, 4))
    with_est = E.generate_for_phrases(w, META, arrays, np.arange(6), given=0, chords="estimated")
    assert np.array_equal(with_est, E.generate_for_phrases(
        w, META, dict(arrays, chords=est), np.arange(6), given=0))
    assert "chords estimated from the given track" in E.report_text(
        E.evaluate_symbolic(ds, weights=w, given="melody", chords="estimated"))


def test_transpose_moves_the_phrases_and_the_composer_finds_the_key(tmp_path):
    ds, w = _dataset(tmp_path / "ds"), _weights(tmp_path)
    _, arrays = E.load_split(ds)
    moved = E.transpose_split(arrays, 4, META["is_drum"])
    assert np.array_equal(moved["rolls"], shift_pitches(torch.from_numpy(arrays["rolls"]), 4).numpy())
    assert np.array_equal(moved["chords"], np.roll(arrays["chords"], 4, axis=-1))
    assert E.transpose_split(arrays, 0, META["is_drum"])["rolls"] is arrays["rolls"]
    home = E.generate_for_phrases(w, META, arrays, np.arange(6), given=0, find_key=True)
    there = E.generate_for_phrases(w, META, moved, np.arange(6), given=0, find_key=True)
    assert np.array_equal(there[:, 1:], shift_pitches(torch.from_numpy(home[:, 1:]), 4).numpy())
    assert np.array_equal(there[:, 0], moved["rolls"][:, 0])
    # the same moved phrases without finding the key: composed as they come, not the same music moved
    as_they_come = E.generate_for_phrases(w, META, moved, np.arange(6), given=0)
    assert not np.array_equal(as_they_come[:, 1:], there[:, 1:])
    rep = E.evaluate_symbolic(ds, weights=w, transpose=4)
    assert rep["transpose"] == 4 and "moved +4 semitones" in E.report_text(rep)


def test_song_offsets_are_per_song(tmp_path):
    from symbolic.generate import Composer

    comp = Composer.load(_weights(tmp_path))
    chords = np.zeros((4, 2, 4, 12), dtype=np.uint8)
    chords[:2, :, :, C_MAJOR] = 1
    chords[:2, 1, :, :] = 0
    chords[:2, 1, :, G_MAJOR] = 1                    # song 0: C then G, in G major (-5) as far as chords tell
    chords[2:, :, :, C_MAJOR] = 1
    chords[2:, 1, :, :] = 0
    chords[2:, 1, :, F_MAJOR] = 1                    # song 1: C then F, in C major
    assert E.song_offsets(comp, np.array([0, 0, 1, 1]), chords).tolist() == [-5, -5, 0, 0]
    assert E.song_offsets(comp, np.array([0, 0, 1, 1]), np.roll(chords, 4, axis=-1)).tolist() == [-1, -1, 4, 4]
    assert E.song_offsets(comp, np.array([0, 1, 1, 1]), chords).tolist() == [-5, 0, 0, 0]
    plain = Composer.load(_weights(tmp_path / "plain", transposed=False))
    assert E.song_offsets(plain, np.array([0, 0, 1, 1]), chords).tolist() == [0, 0, 0, 0]


def test_bad_accompaniment_options(tmp_path, capsys):
    ds, w = _dataset(tmp_path / "ds"), _weights(tmp_path)
    with pytest.raises(UserError, match=r"--given: only with --weights \(the track given to the composer\)"):
        E.evaluate_symbolic(ds, given="melody")
    with pytest.raises(UserError, match="--chords estimated: needs --given TRACK"):
        E.evaluate_symbolic(ds, weights=w, chords="estimated")
    with pytest.raises(UserError, match=r"--chords: 'some' is not allowed \(allowed: data, none, estimated\)"):
        E.evaluate_symbolic(ds, weights=w, chords="some")
    with pytest.raises(UserError, match=r"--given 'bass': not a track of .* \(tracks: melody, bridge, piano\)"):
        E.evaluate_symbolic(ds, weights=w, given="bass")
    for bad in (12, -12, 1.5, True):
        with pytest.raises(UserError, match="--transpose: expected a whole number of semitones from -11 to 11"):
            E.evaluate_symbolic(ds, weights=w, transpose=bad)
    out = tmp_path / "r.json"
    assert E.cli_main([PROG, "--data", str(ds), "--weights", str(w), "--given", "bridge", "--chords", "none",
                       "--transpose", "-3", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["given"] == "bridge" and rep["chords"] == "none" and rep["transpose"] == -3
    assert [f["track"] for f in rep["fit"]] == ["melody", "piano"]
    assert "bridge given" in capsys.readouterr().out


def test_estimate_chords_picks_the_triad_the_notes_sound_most():
    from symbolic.chords import estimate_chords

    roll = np.zeros((2, 16, 24))                     # 2 bars of 4 beats of 4 steps, from MIDI 48 (C)
    roll[0, 0:4, 0] = roll[0, 4:8, 4] = 1            # C then E: C major for beats 1-2
    roll[0, 8:16, 9] = 1                             # A held, F for a beat: D minor and F major tie,
    roll[0, 8:12, 5] = 1                             # a major triad wins a tie: F major
    roll[1, 0:8, [7, 11]] = 1                        # G and B (G major and E minor tie) ...
    roll[1, 0:2, 14] = 1                             # ... with a D: G major
    roll[1, 2:4, 13] = 1                             # C# over them: not enough to change it
    est = estimate_chords(roll, 48, 4, 4)
    assert est.shape == (2, 4, 12) and est.dtype == np.float32
    names = {(0, 4, 7): "C", (0, 5, 9): "F", (2, 7, 11): "G", (2, 5, 7, 11): "G7"}
    got = [[names.get(tuple(np.flatnonzero(est[b, k]).tolist()), "?") for k in range(4)] for b in range(2)]
    assert got == [["C", "C", "F", "F"], ["G", "G", "G", "G"]]   # silent beats: the chord goes on
    roll[1, 0:2, 17] = 1                             # an F (the seventh of G) as well: G7
    assert [names[tuple(np.flatnonzero(c).tolist())] for c in estimate_chords(roll, 48, 4, 4)[1]] == ["G7"] * 4
    # silence before the first note takes the first chord; a track without notes has none
    late = np.zeros((2, 16, 24))
    late[1, 8:16, [2, 6, 9]] = 1                     # D F# A in the second half of bar 2 only
    assert all(np.flatnonzero(c).tolist() == [2, 6, 9] for c in estimate_chords(late, 48, 4, 4).reshape(-1, 12))
    assert not estimate_chords(np.zeros((2, 16, 24)), 48, 4, 4).any()
    # one chord a bar: bar 0 as a whole (C 4 steps, E 4, F 4, A 8) holds every tone of F major
    # seventh (20), more than F major or A minor (16 - 0.5 * 4) or C major (8 - 0.5 * 12)
    assert np.flatnonzero(estimate_chords(roll, 48, 4, 4, beats_per_chord=4)[0, 0]).tolist() == [0, 4, 5, 9]
    with pytest.raises(ValueError, match="do not make 4 beats"):
        estimate_chords(roll[:, :12], 48, 4, 4)


def test_estimated_chords_move_with_the_melody_into_every_key():
    """Ties used to go to the chord whose root is nearest above C: the same melody a semitone up
    got other chords (a lone F# gave D major, a lone G C major), and accompany then other music
    (found by QA). Ties now go by the root's distance from the track's own tonic."""
    from symbolic.chords import estimate_chords, shift_pitches

    roll = np.zeros((4, 16, 36))                     # 4 bars from MIDI 48, a C major tune with lone notes
    for bar, beat_pitches in enumerate([(0, 4, 7, 4), (5, 9, 5, 2), (7, 11, 2, 7), (0, 0, 4, 0)]):
        for beat, pc in enumerate(beat_pitches):
            roll[bar, 4 * beat:4 * beat + 4, pc] = 1
    roll[1, 8:16, :] = 0
    roll[1, 8:16, 6] = 1                             # one beat pair of a lone F#: six triads tie
    home = estimate_chords(roll, 48, 4, 4)
    for k in range(12):
        moved = estimate_chords(shift_pitches(roll, k), 48, 4, 4)
        assert np.array_equal(moved, np.roll(home, k, axis=-1)), k


def test_estimated_chords_run_on_through_a_songs_rests_but_not_into_the_next_song():
    given = np.zeros((3, 2, 4, 24), dtype=bool)       # 3 phrases of 2 bars, one step a beat
    given[0, 1, :, [7, 11, 14]] = True                  # song 0, phrase 0, bar 2: G B D
    songs = np.array([0, 0, 1])                         # phrase 1 (silent) is song 0's; phrase 2 is song 1
    est = E.estimated_chords(given, songs, GRID)
    g_major = [2, 7, 11]
    assert all(np.flatnonzero(est[p, b, k]).tolist() == g_major for p in (0, 1) for b in range(2) for k in range(4))
    assert not est[2].any()


@pytest.mark.parametrize("change, says", [
    (dict(n_bars=4), "the composer writes phrases of 2 bars, the cache's are 4 bars"),
    (dict(grid=dict(GRID, steps_per_beat=2, steps_per_bar=8)),
     "the composer writes bars of 4 steps, the cache's have 8 steps"),
    (dict(grid=dict(GRID, n_pitches=36)), "the composer writes 24 pitches, the cache's phrases have 36 pitches"),
    (dict(grid=dict(GRID, lowest_pitch=36)), "the composer's lowest pitch is MIDI 48, the cache's is MIDI 36"),
])
def test_a_cache_of_other_phrases_than_the_composers_is_refused_plainly(tmp_path, capsys, change, says):
    """The composer writes 2 bars of 4 steps over 24 pitches from MIDI 48; a cache whose phrases
    differ is refused with what differs, before anything is generated (not with the shape of the
    chords the composer could not take)."""
    from pipeline.cli import main as cli

    w = _weights(tmp_path)
    meta = dict(META, **change, counts={"test": 2})
    bars, grid = meta["n_bars"], meta["grid"]
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "meta.json").write_text(json.dumps(meta))
    np.savez_compressed(ds / "test.npz", rolls=np.zeros((2, 3, bars, grid["steps_per_bar"], grid["n_pitches"]), bool),
                        chords=np.zeros((2, bars, 4, 12), np.uint8), has_chords=np.ones(2, bool),
                        style=np.zeros(2, np.int64), song=np.arange(2, dtype=np.int64), key=np.zeros(2, np.int64))
    assert cli(["evaluate", "symbolic", "--data", str(ds), "--weights", str(w)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--weights {w}: {says}" in err, err


def test_other_song_phrases_never_pair_a_phrase_with_its_own_song():
    songs = np.array([7, 7, 7, 7, 3, 9])
    other = E.other_song_phrases(songs)
    assert other.tolist() == [4, 4, 5, 4, 1, 2]    # half the split (3) on, or the next of another song after it
    assert (songs[other] != songs).all()
    assert E.other_song_phrases(np.array([5, 5, 5])).tolist() == [-1, -1, -1]
    assert E.other_song_phrases(np.array([1])).tolist() == [-1]


def test_accompaniment_fit_of_a_one_song_split_has_no_other_song_baseline():
    rolls = np.zeros((2, 2, 1, 16, 84), bool)
    rolls[:, 0, 0, :, 60 - 24] = True               # given: C
    rolls[:, 1, 0, :, 64 - 24] = True               # other: E
    chords = np.zeros((2, 1, 4, 12), np.uint8)
    fit = E.accompaniment_fit(rolls, rolls, chords, np.zeros(2, bool), ["melody", "piano"], [False, False],
                              0, 24, songs=np.array([4, 4]))
    assert fit[0]["td_generated"] == pytest.approx(fit[0]["td_data"]) and math.isnan(fit[0]["td_other_song"])
    two = E.accompaniment_fit(rolls, rolls, chords, np.zeros(2, bool), ["melody", "piano"], [False, False],
                              0, 24, songs=np.array([4, 5]))
    assert two[0]["td_other_song"] == pytest.approx(two[0]["td_data"])   # the same music in both songs
