from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import main as cli
from pipeline.errors import UserError
from symbolic.chords import chord_pitch_classes, estimate_key, parse_key, transpose_to_c, KK_MAJOR, KK_MINOR
from symbolic.data import cli_main, load_split, split_by_song



def pcs(symbol):
    return set(np.flatnonzero(chord_pitch_classes(symbol)).tolist())


@pytest.mark.parametrize("symbol, want", [
    ("C:maj", {0, 4, 7}), ("A:min", {9, 0, 4}), ("C:maj7", {0, 4, 7, 11}), ("G:7", {7, 11, 2, 5}),
    ("D:min7", {2, 5, 9, 0}), ("B:dim", {11, 2, 5}), ("C:aug", {0, 4, 8}), ("D:sus2", {2, 4, 9}),
    ("D:sus4", {2, 7, 9}), ("E:hdim7", {4, 7, 10, 2}), ("F#:dim7", {6, 9, 0, 3}), ("C:maj6", {0, 4, 7, 9}),
    ("C:6", {0, 4, 7, 9}), ("A:min6", {9, 0, 4, 6}), ("C:9", {0, 4, 7, 10, 2}), ("C:min9", {0, 3, 7, 10, 2}),
    ("D:sus4(b7)", {2, 7, 9, 0}), ("G:7/3", {7, 11, 2, 5}), ("Bb:min7/b7", {10, 1, 5, 8}),
    ("C:maj/5", {0, 4, 7}), ("C:maj/b7", {0, 4, 7, 10}), ("Gb:maj", {6, 10, 1}), ("C:minmaj7", {0, 3, 7, 11}),
    ("C", {0, 4, 7}), ("C:maj(9)", {0, 4, 7, 2}), ("C:7(*5)", {0, 4, 10}), ("N", set()), ("X", set()),
])
def test_chord_symbols(symbol, want):
    assert pcs(symbol) == want


@pytest.mark.parametrize("bad", ["H:maj", "C:weird", "C:maj/15", "", "C:maj(q)"])
def test_bad_chord_symbols(bad):
    if bad == "":
        assert pcs(bad) == set()
        return
    with pytest.raises(ValueError):
        chord_pitch_classes(bad)


def test_keys():
    assert parse_key("C:maj") == (0, False) and parse_key("A:min") == (9, True)
    assert parse_key("Gb:maj") == (6, False) and parse_key("c# minor") == (1, True)
    with pytest.raises(ValueError):
        parse_key("C:dorian")
    scale = np.zeros(12)
    scale[[0, 2, 4, 5, 7, 9, 11]] = 1
    scale[[0, 4, 7]] += 1  # tonic triad heavier
    assert estimate_key(scale) == (0, False)
    assert estimate_key(np.roll(scale, 4)) == (4, False)
    assert estimate_key(np.roll(KK_MINOR, 9)) == (9, True)
    assert estimate_key(np.roll(KK_MAJOR, 7)) == (7, False)
    assert estimate_key(np.zeros(12)) == (0, False)
    assert transpose_to_c(2, False) == -2 and transpose_to_c(7, False) == 5 and transpose_to_c(0, True) == -3


def test_split_by_song_is_seeded_and_80_10_10():
    a = split_by_song(100, seed=1)
    assert a == split_by_song(100, seed=1) and a != split_by_song(100, seed=2)
    assert (a.count("train"), a.count("valid"), a.count("test")) == (80, 10, 10)


# ----------------------------------------------------------------------------- fake POP909

BEAT0, BEAT = 0.75, 0.5  # first beat at 0.75 s, 120 qpm


def _pop909_song(root, name, *, triple=False, pickup=False):
    folder = root / name
    folder.mkdir(parents=True)
    t = lambda beat: BEAT0 + beat * BEAT  # noqa: E731 -- beat -> seconds on the annotated grid
    # 12 beats = 3 bars; melody D4 on beat 0 (bar 0), F#4 on beat 4; piano D major triad; bridge empty
    melody = [(62, 0, 1, 100), (66, 4, 5, 90), (62, 5, 6, 91)]
    if pickup:
        melody.append((57, -1, 0, 80))  # one beat before the first downbeat
    piano = [(50, 0, 4, 70), (54, 0, 4, 70), (57, 0, 4, 70)]
    pm_tracks = [("MELODY", 0, False, melody), ("BRIDGE", 0, False, []), ("PIANO", 0, False, piano)]
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(1, 4, 0))  # POP909 files say 1/4 or 2/4
    for nm, prog, dr, notes in pm_tracks:
        inst = pretty_midi.Instrument(prog, dr, nm)
        inst.notes += [pretty_midi.Note(v, p, t(a), t(b)) for p, a, b, v in notes]
        pm.instruments.append(inst)
    pm.write(str(folder / f"{name}.mid"))
    n = 16
    period = 3 if triple else 2
    lines = [f"{t(i)} {1.0 if i % period == 0 else 0.0} {1.0 if i % (2 * period) == 0 else 0.0}" for i in range(n)]
    (folder / "beat_midi.txt").write_text("\n".join(lines) + "\n")
    (folder / "chord_midi.txt").write_text(f"{t(0)}\t{t(4)}\tD:maj\n{t(4)}\t{t(6)}\tA:7/3\n{t(6)}\t{t(12)}\tN\n")
    (folder / "key_audio.txt").write_text(f"0.0\t{t(16)}\tD:maj\n")


def test_pop909_source(tmp_path, capsys):
    root = tmp_path / "pop"
    _pop909_song(root, "001")
    _pop909_song(root, "002", triple=True)
    _pop909_song(root, "003", pickup=True)
    out = tmp_path / "out"
    assert cli_main(["prog", "--source", "pop909", "--root", str(root), "--out", str(out), "--quiet",
                     "--bars", "2"]) == 0
    line = capsys.readouterr().out
    assert "2 songs" in line and "meter not 4/4: 1" in line
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tracks"] == ["melody", "bridge", "piano"] and meta["is_drum"] == [False] * 3
    assert meta["grid"]["steps_per_bar"] == 16 and meta["n_bars"] == 2 and meta["styles"] == ["pop"]
    assert meta["counts"]["skipped"] == {"meter not 4/4": 1}
    data = {s: load_split(out, s) for s in ("train", "valid", "test")}
    allr = {k: np.concatenate([data[s][k] for s in data]) for k in data["train"]}
    assert allr["rolls"].shape[1:] == (3, 2, 16, 84) and allr["rolls"].dtype == bool
    assert allr["chords"].shape[1:] == (2, 4, 12) and allr["chords"].dtype == np.uint8
    assert set(allr["song"].tolist()) == {1, 3}  # song ids are the POP909 numbers
    assert (allr["key"] == 2).all() and allr["has_chords"].all() and (allr["style"] == 0).all()
    # each song sits in one split
    for s in data:
        for other in data:
            if s != other:
                assert not set(data[s]["song"].tolist()) & set(data[other]["song"].tolist())
    # song 001: bars 0-1 then bar 2 alone -> phrases [0,1] and nothing more (bar 2 is empty -> dropped)
    r = allr["rolls"][allr["song"] == 1]
    ch = allr["chords"][allr["song"] == 1]
    assert len(r) == 1
    # D major -> C major: melody D4 (62) -> C4 (60) at step 0, F#4 -> E4 at step 16, D4 -> C4 at step 20
    mel = r[0, 0].reshape(-1, 84)
    assert mel[0, 60 - 24] and mel[3, 60 - 24] and not mel[4, 60 - 24]
    assert mel[16, 64 - 24] and mel[20, 60 - 24]
    assert np.flatnonzero(r[0, 2].reshape(-1, 84)[0]).tolist() == [48 - 24, 52 - 24, 55 - 24]
    # chords per beat, transposed: C:maj, then G:7/3 for 2 beats, then N
    want = np.zeros((8, 12), np.uint8)
    want[0:4, [0, 4, 7]] = 1
    want[4:6, [7, 11, 2, 5]] = 1
    np.testing.assert_array_equal(ch[0].reshape(8, 12), want)
    # song 003 has a pickup note a beat early: bar 0 starts a bar earlier, the pickup on its last beat
    r3 = allr["rolls"][allr["song"] == 3]
    mel3 = r3[0, 0].reshape(-1, 84)
    assert mel3[12, 55 - 24] and mel3[16, 60 - 24] and not mel3[:12].any()


def test_pop909_deterministic(tmp_path):
    root = tmp_path / "pop"
    for i in range(1, 6):
        _pop909_song(root, f"{i:03d}")
    outs = []
    for k in range(2):
        out = tmp_path / f"o{k}"
        cli_main(["prog", "--source", "pop909", "--root", str(root), "--out", str(out), "--quiet", "--seed", "3",
                  "--bars", "2"])   # the fake songs are 3 bars long
        outs.append({s: load_split(out, s) for s in ("train", "valid", "test")})
    for s in outs[0]:
        for key in outs[0][s]:
            np.testing.assert_array_equal(outs[0][s][key], outs[1][s][key])
    assert sum(len(outs[0][s]["rolls"]) for s in outs[0]) == 5


# ----------------------------------------------------------------------------- fake Groove

def test_groove_edge_hi_hat_moves_onto_the_grid(tmp_path, midi_writer):
    """Key 22 (the TD-11's closed hi-hat edge) lies below the grid's MIDI 24: it is played as
    key 42 in the cache, velocity and timing counted there; 26, which the grid holds, stays."""
    root = tmp_path / "groove"
    (root / "d1").mkdir(parents=True)
    hits = [(36, 0, 0.25, 100), (22, 0.5, 0.75, 64), (26, 1, 1.25, 80), (22, 2, 2.25, 50), (42, 2, 2.25, 70),
            (38, 4, 4.25, 90)]
    midi_writer(root / "d1/0.mid", [("Drums", 0, True, hits)])
    (root / "info.csv").write_text(
        "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"
        "d1,d1/s,d1/s/0,rock,120,beat,4-4,d1/0.mid,d1/0.wav,4.0,train\n")
    out = tmp_path / "out"
    assert cli_main(["prog", "--source", "groove", "--root", str(root), "--out", str(out), "--quiet", "--bars", "2"]) == 0
    roll = load_split(out, "train")["rolls"][0, 0].reshape(-1, 84)
    # steps: 0 kick, 2 edge -> 42, 4 open edge 26 kept, 8 edge and bow -> one hit on 42, 16 snare
    assert np.argwhere(roll).tolist() == [[0, 36 - 24], [2, 42 - 24], [4, 26 - 24], [8, 42 - 24], [16, 38 - 24]]
    from symbolic.velocity import load_counts

    stats = load_counts(out)["stats"][0, 0, :, 0]           # train, rock: [6, pitches, steps]
    assert stats[0, 42 - 24, 2] == 1 and stats[1, 42 - 24, 2] == 64
    # where edge and bow sound together, one hit: the note drawn last (the file's order), the bow's 70
    assert stats[0, 42 - 24, 8] == 1 and stats[1, 42 - 24, 8] == 70
    assert stats[0, 26 - 24, 4] == 1 and stats[0].sum() == 5


def test_move_kit_keys_only_moves_keys_the_grid_cannot_hold():
    import pretty_midi

    from symbolic.data import move_kit_keys
    from symbolic.roll import Grid

    def song():
        pm = pretty_midi.PrettyMIDI()
        drums, bass = pretty_midi.Instrument(0, is_drum=True), pretty_midi.Instrument(33)
        drums.notes += [pretty_midi.Note(100, k, 0.0, 0.1) for k in (22, 26, 58, 20)]
        bass.notes.append(pretty_midi.Note(100, 22, 0.0, 0.1))
        pm.instruments += [drums, bass]
        return pm

    def keys(pm):
        return [n.pitch for n in pm.instruments[0].notes], pm.instruments[1].notes[0].pitch

    pm = song()
    assert move_kit_keys(pm, Grid()) is pm
    assert keys(pm) == ([42, 26, 58, 20], 22)           # 22 below MIDI 24: to 42; a pitched 22 stays
    assert keys(move_kit_keys(song(), Grid(lowest_pitch=10))) == ([22, 26, 58, 20], 22)   # the grid holds 22
    # a grid from MIDI 43 cannot hold 42: 22 stays; it holds 46, so 26 (below it) moves there
    assert keys(move_kit_keys(song(), Grid(lowest_pitch=43))) == ([22, 46, 58, 20], 22)
    assert keys(move_kit_keys(song(), Grid(), {20: 36, 22: 42})) == ([42, 26, 58, 36], 22)


def test_groove_source(tmp_path, midi_writer):
    write_midi_file = midi_writer
    root = tmp_path / "groove"
    (root / "d1").mkdir(parents=True)
    rows = [("funk/groove1", "beat", "4-4", "train"), ("rock/groove2", "fill", "4-4", "train"),
            ("jazz/groove3", "beat", "3-4", "test"), ("rock/groove4", "beat", "4-4", "validation"),
            ("funk/groove5", "beat", "4-4", "test"), ("disco/groove6", "beat", "4-4", "train")]
    lines = ["drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split"]
    for i, (style, bt, ts, split) in enumerate(rows):
        fn = f"d1/{i}.mid"
        # two bars each; the last two one bar, shorter than a phrase (disco only there: no style of phrases)
        hits = [(36, 0, 0.5, 100), (38, 1, 1.5, 90)] + ([(42, 4.5, 5, 70)] if i < 4 else [])
        write_midi_file(root / fn, [("Drums", 0, True, hits)])
        lines.append(f"d1,d1/s,d1/s/{i},{style},120,{bt},{ts},{fn},{fn[:-4]}.wav,10.0,{split}")
    (root / "info.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["prog", "--source", "groove", "--root", str(root), "--out", str(out), "--quiet"]
    # 4-bar phrases: every song is shorter (no silence is padded after a recording's end)
    with pytest.raises(UserError, match=r"no phrases .* \(skipped: fill: 1, meter not 4/4: 1, shorter than a phrase: 4; "
                                        r"empty phrases dropped: 0\); 4 songs are shorter than 4 bars: --bars N "
                                        r"sets a shorter phrase$"):
        cli_main(args)
    assert not out.exists()
    assert cli_main(args + ["--bars", "2"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tracks"] == ["drums"] and meta["is_drum"] == [True]
    assert meta["styles"] == ["funk", "rock"]
    assert meta["drum_keys"] == {"22": 42, "26": 46, "58": 43}   # the kit's keys as GM plays them
    assert meta["counts"]["skipped"] == {"fill": 1, "meter not 4/4": 1, "shorter than a phrase": 2}
    assert meta["counts"]["songs"] == {"train": 1, "valid": 1, "test": 0}
    tr, va, te = (load_split(out, s) for s in ("train", "valid", "test"))
    assert len(tr["rolls"]) == 1 and len(va["rolls"]) == 1 and len(te["rolls"]) == 0
    assert tr["style"].tolist() == [0] and va["style"].tolist() == [1]
    assert tr["key"].tolist() == [-1] and not tr["has_chords"].any() and not tr["chords"].any()
    hits = np.argwhere(tr["rolls"][0, 0].reshape(-1, 84))
    assert hits.tolist() == [[0, 36 - 24], [4, 38 - 24], [18, 42 - 24]]  # onsets, not transposed
    # the velocities of every split's songs, by style, pitch and step of the bar
    from symbolic.velocity import load_counts

    counts = load_counts(out)
    assert counts["styles"] == ["funk", "rock"] and counts["splits"] == ["train", "valid", "test"]
    stats = counts["stats"]
    assert stats.shape == (3, 2, 6, 1, 84, 16)
    funk_train = stats[0, 0, :, 0]                          # [6, pitches, steps]
    # count, sum and squares of the velocities; then of the offsets from the step: hits on the grid
    assert funk_train[:, 36 - 24, 0].tolist() == [1, 100, 100 ** 2, 1, 0, 0]
    assert funk_train[:, 38 - 24, 4].tolist() == [1, 90, 90 ** 2, 1, 0, 0]
    assert funk_train[:, 42 - 24, 2].tolist() == [1, 70, 70 ** 2, 1, 0, 0]   # bar 1, step 2
    assert funk_train[0].sum() == 3 and stats[1, 1, 0].sum() == 3
    # the one-bar song gave no phrase, but its notes count
    assert stats[2, 0, 0, 0].sum() == 2 and stats[2, 0, :3, 0, 36 - 24, 0].tolist() == [1, 100, 100 ** 2]
    # --limit 1: the first usable row only, and the skips among the rows before it (none)
    assert cli_main(args + ["--bars", "2", "--limit", "1", "--out", str(tmp_path / "one")]) == 0
    meta = json.loads((tmp_path / "one" / "meta.json").read_text())
    assert meta["counts"]["skipped"] == {} and meta["counts"]["songs"] == {"train": 1, "valid": 0, "test": 0}
    assert cli_main(args + ["--bars", "2", "--limit", "2", "--out", str(tmp_path / "two")]) == 0
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["counts"]["skipped"] == {"fill": 1, "meter not 4/4": 1}   # rows 1 and 2, before row 3
    assert "seconds" not in meta["counts"]   # no timing in the cache: the same bytes every time


def test_a_cache_without_training_phrases_says_so(tmp_path, midi_writer, capsys):
    root = tmp_path / "groove"
    (root / "d1").mkdir(parents=True)
    midi_writer(root / "d1" / "0.mid", [("Drums", 0, True, [(36, 4 * b, 4 * b + 0.5, 100) for b in range(4)])])
    (root / "info.csv").write_text("drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,"
                                   "audio_filename,duration,split\nd1,d1/s,d1/s/0,rock,120,beat,4-4,d1/0.mid,"
                                   "d1/0.wav,8.0,test\n")
    assert cli(["data", "symbolic", "--source", "groove", "--root", str(root), "--out", str(tmp_path / "o"),
                "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == (f"musegansynth: note: {tmp_path / 'o'}: the train split has no phrases (the cache can be "
                   f"evaluated, not trained on)\n")
    assert len(load_split(tmp_path / "o", "test")["rolls"]) == 1


# ----------------------------------------------------------------------------- LPD-5 npz, MIDI folder, chorales

def test_lpd5_source(tmp_path):
    import pypianoroll

    res = 24
    T = res * 4 * 8  # 8 bars
    def track(name, program, is_drum, notes):
        pr = np.zeros((T, 128), bool)
        for p, a, b in notes:
            pr[a:b, p] = True
        return pypianoroll.BinaryTrack(name=name, program=program, is_drum=is_drum, pianoroll=pr)
    downbeat = np.zeros(T, bool)
    downbeat[::res * 4] = True
    ppr = pypianoroll.Multitrack(resolution=res, tempo=np.full(T, 110.0), downbeat=downbeat, tracks=[
        track("Drums", 0, True, [(36, 0, 2)]),
        track("Piano", 0, False, [(60, 0, 24), (64, 0, 24), (67, 0, 24), (72, 30, 36)]),
        track("Guitar", 24, False, []),
        track("Bass", 32, False, [(36, 0, 48)]),
        track("Strings", 48, False, [(79, 96 * 4, 96 * 4 + 12)]),  # bar 4 -> second phrase
    ])
    (tmp_path / "lpd" / "A").mkdir(parents=True)
    ppr.save(str(tmp_path / "lpd" / "A" / "song.npz"))
    out = tmp_path / "out"
    cli_main(["prog", "--source", "lpd5", "--root", str(tmp_path / "lpd"), "--out", str(out), "--quiet",
              "--no-transpose"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tracks"] == ["Drums", "Piano", "Guitar", "Bass", "Strings"]
    rolls = np.concatenate([load_split(out, s)["rolls"] for s in ("train", "valid", "test")])
    keys = np.concatenate([load_split(out, s)["key"] for s in ("train", "valid", "test")])
    assert rolls.shape == (2, 5, 4, 16, 84)
    assert keys.tolist() == [0, 0]  # C major triad estimated as C
    r = rolls[0].reshape(5, -1, 84)
    assert np.argwhere(r[0]).tolist() == [[0, 12]]
    assert np.argwhere(r[1][:, 60 - 24]).ravel().tolist() == [0, 1, 2, 3]
    assert np.argwhere(r[1][:, 72 - 24]).ravel().tolist() == [5]  # 30/24 beats -> step 5, 36 -> 6
    assert r[3][:8, 12].all() and not r[3][8:, 12].any()
    assert rolls[1, 4, 0, 0:2, 79 - 24].all()


def test_midi_folder_source_skips_bad_files_and_other_meters(tmp_path, midi_writer):
    write_midi_file = midi_writer
    root = tmp_path / "m"
    root.mkdir()
    notes = [("Piano", 0, False, [(60 + (b % 5), b, b + 1, 80) for b in range(32)])]
    # and three notes outside the 84 pitches from MIDI 24: dropped and counted
    write_midi_file(root / "a.mid", [("Piano", 0, False, notes[0][3] + [(10, 0, 1, 80), (120, 1, 2, 80),
                                                                          (127, 2, 3, 80)])])
    write_midi_file(root / "waltz.mid", notes, time_signature=(3, 4))
    (root / "bad.mid").write_bytes(b"not midi")
    out = tmp_path / "out"
    cli_main(["prog", "--source", "midi", "--root", str(root), "--track-map", "lpd5", "--out", str(out),
              "--quiet", "--no-transpose"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["skipped"] == {"meter not 4/4": 1, "unreadable": 1}
    assert sum(meta["counts"]["phrases"].values()) == 2  # 8 bars -> 2 phrases of 4
    assert meta["counts"]["notes_dropped"] == 3


def test_midi_folder_drops_phrases_in_another_meter(tmp_path, midi_writer):
    root = tmp_path / "m"
    root.mkdir()
    # 8 bars of 4/4, then 3/4 from beat 32 for 8 bars, then 4/4 again from beat 56 for 4 bars
    notes = [("Piano", 0, False, [(60 + (b % 5), b, b + 1, 80) for b in range(72)])]
    midi_writer(root / "a.mid", notes, time_signatures=[(3, 4, 32), (4, 4, 56)])
    out = tmp_path / "out"
    cli_main(["prog", "--source", "midi", "--root", str(root), "--track-map", "lpd5", "--out", str(out),
              "--quiet", "--no-transpose", "--hop", "2"])
    meta = json.loads((out / "meta.json").read_text())
    # bars 0-7 give phrases at 0, 2, 4; bars 14-17 (beats 56-71) give one at 14; the rest touch 3/4
    assert sum(meta["counts"]["phrases"].values()) == 4
    rolls = np.concatenate([load_split(out, s)["rolls"] for s in ("train", "valid", "test")])
    first_pitch = sorted(int(np.argwhere(r[1].reshape(-1, 84))[0, 1]) + 24 for r in rolls)
    assert first_pitch == sorted([60, 60 + 8 % 5, 60 + 16 % 5, 60 + 56 % 5])


def test_chorales_source(tmp_path):
    pytest.importorskip("music21")
    out = tmp_path / "out"
    cli_main(["prog", "--source", "chorales", "--limit", "3", "--out", str(out), "--quiet"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tracks"] == ["soprano", "alto", "tenor", "bass"] and meta["styles"] == ["chorale"]
    c = meta["counts"]
    assert sum(c["songs"].values()) + sum(c["skipped"].values()) == 3 and sum(c["songs"].values()) >= 1
    rolls = np.concatenate([load_split(out, s)["rolls"] for s in ("train", "valid", "test")])
    assert rolls.shape[1:] == (4, 4, 16, 84) and len(rolls) > 0
    # every voice sings, and soprano is above bass on average
    per_track = rolls.any(axis=(0, 2, 3))
    assert per_track.sum(axis=1).min() > 0
    pitch = np.arange(84)
    mean = [(per_track[t] * pitch).sum() / per_track[t].sum() for t in range(4)]
    assert mean[0] > mean[3]


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="--root"):
        cli_main(["prog", "--source", "groove"])
    with pytest.raises(UserError, match="nowhere: no such folder"):
        cli_main(["prog", "--source", "pop909", "--root", str(tmp_path / "nowhere")])
    (tmp_path / "a.mid").write_bytes(b"MThd")
    with pytest.raises(UserError, match=r"a\.mid: is a file, not a folder \(--root takes the dataset's folder\)"):
        cli_main(["prog", "--source", "midi", "--track-map", "lpd5", "--root", str(tmp_path / "a.mid")])
    (tmp_path / "m").mkdir()
    with pytest.raises(UserError, match="--track-map"):
        cli_main(["prog", "--source", "midi", "--root", str(tmp_path / "m")])
    with pytest.raises(UserError, match="info.csv"):
        cli_main(["prog", "--source", "groove", "--root", str(tmp_path / "m")])
    assert cli(["data", "symbolic", "--source", "lpd5", "--root", str(tmp_path / "m")]) == 2
    assert cli(["data", "symbolic", "--source=lpd5", f"--root={tmp_path / 'm'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("no LPD-5 .npz files") == 2 and "Traceback" not in err
    assert not (tmp_path / "data").exists()


@pytest.mark.data
def test_real_pop909_three_songs(shared_data, tmp_path):
    root = shared_data / "pop909"
    out = tmp_path / "out"
    cli_main(["prog", "--source", "pop909", "--root", str(root), "--limit", "3", "--out", str(out), "--quiet"])
    d = {k: np.concatenate([load_split(out, s)[k] for s in ("train", "valid", "test")])
         for k in ("rolls", "chords", "key", "song")}
    assert set(d["song"].tolist()) == {1, 2, 3} and len(d["rolls"]) > 30
    # transposed to C major / A minor: the white keys carry almost all the notes
    pc = (np.arange(84) + 24) % 12
    hist = np.bincount(pc[np.nonzero(d["rolls"])[-1]], minlength=12)
    assert hist[[0, 2, 4, 5, 7, 9, 11]].sum() > 0.9 * hist.sum()
    # chord annotations line up with the notes: most sounding pitch classes are chord tones
    act = d["rolls"][:, 2].reshape(len(d["rolls"]), 4, 4, 4, 84).any(axis=3)
    n, b, j, p = np.nonzero(act & (d["chords"].sum(-1) > 0)[..., None])
    assert d["chords"][n, b, j, pc[p]].mean() > 0.85


def test_pop909_download_unpacks_archive(tmp_path, monkeypatch):
    """--download with the network faked: the archive is fetched once, unpacked, and built from."""
    import io
    import urllib.request
    import zipfile

    import symbolic.data as data

    src = tmp_path / "src"
    _pop909_song(src, "001")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted((src / "001").iterdir()):
            zf.write(f, f"POP909-Dataset-master/POP909/001/{f.name}")
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(buf.getvalue())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.chdir(tmp_path)
    cli_main(["prog", "--source", "pop909", "--download", "--quiet", "--bars", "2"])
    assert calls == [data.POP909_URL]
    assert (tmp_path / "data/downloads/POP909-Dataset-master/POP909/001/001.mid").is_file()
    assert sum(json.loads((tmp_path / "data/build/symbolic/pop909/meta.json").read_text())["counts"]["songs"].values()) == 1

    def offline(url, timeout=None):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="download or unpacking failed"):
        data.download_pop909(tmp_path / "elsewhere" / "downloads")
    assert not (tmp_path / "elsewhere").exists()  # neither the archive nor the folders it would have gone in


def test_pop909_download_failure_leaves_nothing(tmp_path, monkeypatch, capsys):
    """No network: one line, exit 2, and no empty data/downloads/ (nor data/) left behind; a bad
    archive is removed with its partly unpacked files."""
    import io
    import urllib.request

    def offline(url, timeout=None):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.chdir(tmp_path)
    assert cli(["data", "symbolic", "--source", "pop909", "--download", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "network unreachable" in err, err
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "data").mkdir()  # a folder that was there before stays
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"not a zip"))
    assert cli(["data", "symbolic", "--source", "pop909", "--download", "--quiet"]) == 2
    assert "download or unpacking failed" in capsys.readouterr().err
    assert list(tmp_path.rglob("*")) == [tmp_path / "data"]


def test_source_options_that_do_not_apply_are_refused(tmp_path, capsys):
    """--root with chorales (music21's bundled corpus) and --download off pop909 are errors, not ignored."""
    (tmp_path / "m").mkdir()
    assert cli(["data", "symbolic", "--source", "chorales", "--root", str(tmp_path / "m"),
                "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--root" in err and "chorales" in err and "music21" in err, err
    assert cli(["data", "symbolic", "--source", "groove", "--download", "--root", str(tmp_path / "m")]) == 2
    assert "--download: only for --source pop909" in capsys.readouterr().err
    assert cli(["data", "symbolic", "--source", "pop909", "--download", "--root", str(tmp_path / "m")]) == 2
    assert "give one" in capsys.readouterr().err
    for extra, says in ((["--source", "chorales", "--track-map", "lpd5"], "--track-map lpd5: only for --source midi"),
                        (["--source", "lpd5", "--root", str(tmp_path / "m"), "--track-map", "pop909"],
                         "--track-map pop909: only for --source midi"),
                        (["--source", "chorales", "--seed", "-1"], "--seed -1: must be 0 to 2147483647"),
                        (["--source", "chorales", "--name", "../../etc/x"], "--name '../../etc/x': a dataset name is"),
                        (["--source", "chorales", "--name", ""], "--name '': a dataset name cannot be empty"),
                        (["--source", "chorales", "--steps-per-beat", "1000"],
                         "--steps-per-beat 1000: should be a whole number from 1 to 96")):
        assert cli(["data", "symbolic", *extra, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "etc").exists()


def test_lpd5_old_format_npz(tmp_path):
    """LPD-5 cleansed files were written by pypianoroll 0.x: "beat_resolution" in info.json,
    csc-sparse bool tracks of their own lengths, one tempo per time step."""
    import scipy.sparse

    res, T = 24, 24 * 4 * 8  # 8 bars (the bass track is shorter: 200 steps)
    rolls = {0: [(36, 0, 1), (36, 48, 49)], 1: [(60, 0, 96)], 3: [(40, 96, 192)]}
    arrays, info = {}, {"name": "lpd", "beat_resolution": res}
    for idx, (name, program, drum) in enumerate([("Drums", 0, True), ("Piano", 0, False), ("Guitar", 24, False),
                                                  ("Bass", 32, False), ("Strings", 48, False)]):
        pr = np.zeros((T if idx != 3 else 200, 128), bool)
        for p, a, b in rolls.get(idx, []):
            pr[a:b, p] = True
        m = scipy.sparse.csc_matrix(pr)
        arrays.update({f"pianoroll_{idx}_csc_data": m.data, f"pianoroll_{idx}_csc_indices": m.indices,
                       f"pianoroll_{idx}_csc_indptr": m.indptr, f"pianoroll_{idx}_csc_shape": np.array(m.shape)})
        info[str(idx)] = {"name": name, "program": program, "is_drum": drum}
    arrays["tempo"] = np.full(T, 96.0)
    arrays["downbeat"] = np.arange(T) % (res * 4) == 0
    (tmp_path / "lpd").mkdir()
    np.savez_compressed(tmp_path / "lpd" / "old.npz", **arrays)
    import zipfile

    with zipfile.ZipFile(tmp_path / "lpd" / "old.npz", "a") as zf:  # a plain zip member, as 0.x wrote it
        zf.writestr("info.json", json.dumps(info))
    out = tmp_path / "out"
    cli_main(["prog", "--source", "lpd5", "--root", str(tmp_path / "lpd"), "--out", str(out), "--quiet",
              "--no-transpose"])
    rolls_out = np.concatenate([load_split(out, s)["rolls"] for s in ("train", "valid", "test")])
    assert rolls_out.shape == (1, 5, 4, 16, 84)  # second phrase (bars 4-7) is empty -> dropped
    assert json.loads((out / "meta.json").read_text())["counts"]["empty_phrases_dropped"] == 1
    r = rolls_out[0].reshape(5, -1, 84)
    assert np.argwhere(r[0]).tolist() == [[0, 12], [8, 12]]
    assert np.flatnonzero(r[1][:, 60 - 24]).tolist() == list(range(16))
    assert np.flatnonzero(r[3][:, 40 - 24]).tolist() == list(range(16, 32))


def test_pop909_bad_annotations_are_named_and_unnumbered_folders_get_their_own_ids(tmp_path, capsys):
    """From QA: a NaN beat time was taken (and damaged the notes), a chord or key file that is not
    UTF-8 was an internal error, and an unnumbered folder took the id of a numbered one (one song
    id in two splits)."""
    root = tmp_path / "pop"
    for name in ("001", "002", "mysong"):
        _pop909_song(root, name)
    (root / "mysong" / "mysong.mid").write_bytes((root / "001" / "001.mid").read_bytes())
    out = tmp_path / "out"
    assert cli_main(["prog", "--source", "pop909", "--root", str(root), "--out", str(out), "--quiet",
                     "--bars", "2"]) == 0
    songs = sorted(set(np.concatenate([load_split(out, sp)["song"] for sp in ("train", "valid", "test")]).tolist()))
    assert songs == [1, 2, 3]   # mysong is 3, after the largest number
    beats = (root / "002" / "beat_midi.txt").read_text().splitlines()
    good = list(beats)
    beats[5] = "nan " + beats[5].split(" ", 1)[1]
    (root / "002" / "beat_midi.txt").write_text("\n".join(beats) + "\n")
    with pytest.raises(UserError, match=r"002/beat_midi.txt: beat times must be finite and increase"):
        cli_main(["prog", "--source", "pop909", "--root", str(root), "--out", str(out), "--quiet", "--bars", "2"])
    (root / "002" / "beat_midi.txt").write_text("\n".join(good) + "\n")
    for bad in ("chord_midi.txt", "key_audio.txt"):
        kept = (root / "002" / bad).read_bytes()
        (root / "002" / bad).write_bytes(b"\xff\xfe\x00bad")
        with pytest.raises(UserError, match=rf"002/{bad}: not readable text \(invalid start byte at byte 0\)"):
            cli_main(["prog", "--source", "pop909", "--root", str(root), "--out", str(out), "--quiet", "--bars", "2"])
        (root / "002" / bad).write_bytes(kept)


def test_data_out_refusals_and_a_drums_only_song_has_no_key(tmp_path, midi_writer):
    """From QA: --out '' wrote the cache into the working folder; --out inside a midi/lpd5 --root
    was read as songs on the next run; a drums-only song got key 0 (C) instead of -1."""
    root = tmp_path / "midi"
    root.mkdir()
    midi_writer(root / "drums.mid", [("Kit", 0, True, [(36, b, b + 0.5, 100) for b in range(16)])])
    midi_writer(root / "tune.mid", [("Piano", 0, False, [(60 + (b % 3) * 2, b, b + 1, 90) for b in range(16)])])
    args = ["prog", "--source", "midi", "--track-map", "lpd5", "--root", str(root), "--quiet"]
    with pytest.raises(UserError, match=r"^--out '': an empty path is not an output folder$"):
        cli_main(args + ["--out", ""])
    with pytest.raises(UserError, match=r"cache: inside --root .*, where the next run would read the cache.s own "
                                        r"files as songs; give an --out outside it$"):
        cli_main(args + ["--out", str(root / "cache")])
    assert sorted(p.name for p in root.iterdir()) == ["drums.mid", "tune.mid"]
    out = tmp_path / "out"
    assert cli_main(args + ["--out", str(out), "--no-transpose"]) == 0
    got = {}
    for sp in ("train", "valid", "test"):
        d = load_split(out, sp)
        for song, key, roll in zip(d["song"].tolist(), d["key"].tolist(), d["rolls"]):
            got[song] = (key, bool(roll[1:].any()))
    assert got == {0: (-1, False), 1: (0, True)}   # drums.mid: no key; tune.mid: C
