from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from pipeline.errors import UserError
from symbolic.roll import (Grid, Multitrack, Note, binarize, from_pypianoroll, midi_to_multitrack,
                           multitrack_to_midi, notes_to_roll, quantize_notes, read_midi, roll_to_notes,
                           to_pypianoroll, write_midi)
from symbolic.trackmap import DRUMS, LPD5, POP909, get_track_map

# Piano: C4 twice repeated (same pitch back to back), a C-E-G chord, a note across the bar line,
# a note starting on the bar line. Bass: one note. Drums: kick + snare with long MIDI durations.
HAND = [
    ("Piano", 0, False, [(60, 0, 1, 100), (60, 1, 2, 90), (64, 2, 4, 80), (67, 2, 4, 81), (72, 2, 4, 82),
                         (62, 3.5, 5.25, 70), (65, 4, 4.5, 127)]),
    ("Bass", 33, False, [(36, 0, 4, 60), (36, 4, 8, 61)]),
    ("Drums", 0, True, [(36, 0, 0.5, 110), (38, 1, 2, 100), (36, 4, 4.25, 111)]),
]
HAND_NOTES = sorted([
    Note(0, 36, 0, 1, 110), Note(0, 38, 4, 5, 100), Note(0, 36, 16, 17, 111),
    Note(1, 60, 0, 4, 100), Note(1, 60, 4, 8, 90), Note(1, 64, 8, 16, 80), Note(1, 67, 8, 16, 81),
    Note(1, 72, 8, 16, 82), Note(1, 62, 14, 21, 70), Note(1, 65, 16, 18, 127),
    Note(3, 36, 0, 16, 60), Note(3, 36, 16, 32, 61),
], key=lambda n: (n.track, n.start, n.pitch, n.end))


def test_hand_written_exact_roll(make_midi):
    mt = midi_to_multitrack(make_midi("a.mid", HAND, tempo=100), LPD5)
    assert mt.roll.shape == (5, 2, 16, 84), mt.roll.shape
    assert mt.roll.dtype == np.uint8 and mt.onsets.dtype == bool
    assert mt.tempo == pytest.approx(100.0) and mt.time_signature == (4, 4) and mt.n_dropped == 0
    piano = mt.roll[1].reshape(-1, 84)
    on = mt.onsets[1].reshape(-1, 84)
    c4 = 60 - 24
    np.testing.assert_array_equal(piano[:8, c4], [100] * 4 + [90] * 4)
    assert piano[8, c4] == 0
    np.testing.assert_array_equal(np.flatnonzero(on[:, c4]), [0, 4])
    # drums are onsets, one step long, whatever the MIDI duration
    drums = mt.roll[0].reshape(-1, 84)
    np.testing.assert_array_equal(np.flatnonzero(drums[:, 38 - 24]), [4])
    np.testing.assert_array_equal(np.flatnonzero(drums[:, 36 - 24]), [0, 16])
    # the note starting on the bar line is in bar 1, step 0
    assert mt.roll[1, 1, 0, 65 - 24] == 127 and mt.onsets[1, 1, 0, 65 - 24]
    assert mt.notes() == HAND_NOTES
    assert mt.roll[2].sum() == 0 and mt.roll[4].sum() == 0  # no guitar, no strings


def test_round_trip_midi_roll_midi(make_midi, tmp_path):
    mt = midi_to_multitrack(make_midi("a.mid", HAND, tempo=100, time_signature=(4, 4)), LPD5)
    pm = multitrack_to_midi(mt)
    out = tmp_path / "out.mid"
    write_midi(pm, out)
    back = read_midi(out)
    # named tracks with their GM programs, drums on channel 10 (empty tracks hold no notes to read back)
    assert [(i.name, int(i.program), i.is_drum) for i in pm.instruments] == \
        [("Drums", 0, True), ("Piano", 0, False), ("Guitar", 24, False), ("Bass", 32, False), ("Strings", 48, False)]
    assert [(i.name, int(i.program), i.is_drum) for i in back.instruments] == \
        [("Drums", 0, True), ("Piano", 0, False), ("Bass", 32, False)]
    assert back.get_tempo_changes()[1][0] == pytest.approx(100.0)
    ts = back.time_signature_changes[0]
    assert (ts.numerator, ts.denominator) == (4, 4)
    # notes land exactly on the grid: a step at 100 qpm, 4 steps a beat, lasts 0.15 s
    piano = back.instruments[1].notes
    assert [(n.pitch, round(n.start / 0.15, 6), round(n.end / 0.15, 6), n.velocity) for n in piano[:2]] == \
        [(60, 0, 4, 100), (60, 4, 8, 90)]
    mt2 = midi_to_multitrack(out, LPD5)
    assert mt2.notes() == HAND_NOTES
    np.testing.assert_array_equal(mt2.roll, mt.roll)
    np.testing.assert_array_equal(mt2.onsets, mt.onsets)


def test_quantise_to_nearest_step_and_drop_out_of_range(make_midi):
    tracks = [("p", 0, False, [(60, 0.13, 0.9, 50),   # 0.52 steps -> 1, end 3.6 -> 4
                               (61, 0.1, 0.15, 50),   # 0.4 -> 0, end 0.6 -> 1
                               (62, 1.0, 1.05, 50),   # too short: still one step
                               (23, 0, 1, 50), (108, 0, 1, 50), (107, 2, 3, 50)])]
    mt = midi_to_multitrack(make_midi("q.mid", tracks), LPD5)
    assert mt.n_dropped == 2
    assert [(n.pitch, n.start, n.end) for n in mt.notes()] == [(61, 0, 1), (60, 1, 4), (62, 4, 5), (107, 8, 12)]
    assert mt.roll.shape[1] == 1


def test_timing_keeps_each_onsets_offset_and_plays_it_back(make_midi):
    tracks = [("p", 0, False, [(60, 0.13, 0.9, 50),   # 0.52 steps -> step 1, 0.48 early
                               (61, 0.1, 0.15, 50),   # 0.4 -> step 0, 0.4 late
                               (62, 1.0, 1.05, 50)])]  # on its step
    path = make_midi("q.mid", tracks)
    plain = midi_to_multitrack(path, LPD5)
    assert plain.timing is None
    mt = midi_to_multitrack(path, LPD5, timing=True)
    assert np.array_equal(mt.roll, plain.roll) and np.array_equal(mt.onsets, plain.onsets)
    piano = mt.track_map.names.index("Piano")
    flat = mt.timing[piano].reshape(-1, mt.grid.n_pitches)
    # (the file stores times in whole ticks, 480 a beat: 0.13 beats is 62 ticks)
    assert flat[1, 60 - 24] == pytest.approx(-0.48, abs=0.01) and flat[0, 61 - 24] == pytest.approx(0.4, abs=0.01)
    assert flat[4, 62 - 24] == pytest.approx(0.0) and np.count_nonzero(flat) == 2
    # played back off the grid by the same offsets (a step is 0.125 s at 120 qpm); never before 0
    back = {n.pitch: (n.start, n.end) for n in multitrack_to_midi(mt).instruments[piano].notes}
    step, a, b = 0.125, flat[1, 60 - 24], flat[0, 61 - 24]
    assert back[60] == pytest.approx(((1 + a) * step, (4 + a) * step))
    assert back[61] == pytest.approx((b * step, (1 + b) * step)) and back[62] == pytest.approx((4 * step, 5 * step))
    early = Multitrack(mt.roll, mt.onsets, mt.track_map, mt.grid, mt.tempo, timing=np.full(mt.roll.shape, -0.4))
    assert min(n.start for n in multitrack_to_midi(early).instruments[piano].notes) == 0.0
    with pytest.raises(ValueError, match="timing shape"):
        Multitrack(mt.roll, mt.onsets, mt.track_map, mt.grid, timing=np.zeros((1, 1)))


def test_timing_never_plays_a_note_into_the_next_of_its_pitch(tmp_path):
    # C4 held steps 0-3 then again 4-7 (legato), the first 0.3 of a step late, the second 0.3 early:
    # shifted, the first would still sound when the second starts, and its note-off cut the second
    grid = Grid()
    tm = get_track_map(LPD5)
    piano, p = tm.names.index("Piano"), 60 - grid.lowest_pitch
    roll = np.zeros((len(tm), 1, 16, grid.n_pitches), np.uint8)
    onsets = np.zeros(roll.shape, bool)
    roll[piano, 0, 0:8, p], onsets[piano, 0, [0, 4], p] = 90, True
    late = np.zeros(roll.shape)
    late[piano, 0, 0, p], late[piano, 0, 4, p] = 0.3, -0.3
    pm = multitrack_to_midi(Multitrack(roll, onsets, tm, grid, timing=late))
    step = 0.125
    assert [t for n in pm.instruments[piano].notes for t in (n.start, n.end)] == pytest.approx(
        [0.3 * step, 3.7 * step, 3.7 * step, 7.7 * step])
    write_midi(pm, tmp_path / "t.mid")
    back = midi_to_multitrack(tmp_path / "t.mid", LPD5, grid)
    assert np.array_equal(back.roll != 0, roll != 0) and np.array_equal(back.onsets, onsets)


def test_place_notes_shifts_through_any_time_map_and_never_overlaps_a_pitch():
    from symbolic.roll import place_notes

    # a time map that slows down at step 8: 0.125 s a step before, 0.25 s after
    def seconds(step):
        return max(0.0, step) * 0.125 if step <= 8 else 1.0 + (step - 8) * 0.25

    grid = Grid()
    p = 60 - grid.lowest_pitch
    late = np.zeros((1, 1, 16, grid.n_pitches))
    late[0, 0, 0, p], late[0, 0, 0, p + 4], late[0, 0, 12, p] = 0.4, -0.4, -0.2
    notes = [Note(0, 60, 0, 8, 90), Note(0, 60, 8, 12, 80), Note(0, 60, 12, 16, 70), Note(0, 64, 0, 2, 60)]
    placed = place_notes(notes, late, grid, seconds)
    assert [(t, n.pitch, n.velocity) for t, n in placed] == [(0, 60, 90), (0, 60, 80), (0, 60, 70), (0, 64, 60)]
    # the first, 0.4 late, would end at step 8.4 (1.1 s): the on-time second starts at 1.0 s and cuts it;
    # the third, 0.2 early, starts at 1.0 + 3.8 * 0.25 and cuts the second; the E, 0.4 early, starts at 0
    assert [t for _, n in placed for t in (n.start, n.end)] == pytest.approx(
        [0.05, 1.0, 1.0, 1.95, 1.95, 2.95, 0.0, 1.6 * 0.125])
    assert [t for _, n in place_notes(notes, None, grid, seconds) for t in (n.start, n.end)] == pytest.approx(
        [0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 0.0, 0.25])


def test_tempo_changes_use_the_beat_grid_not_seconds(make_midi):
    # 120 qpm for 2 beats, then 60 qpm: beat 4 is at 1 s + 2 s = 3 s
    tracks = [("p", 0, False, [(60, 0, 1, 90), (62, 2, 3, 90), (64, 4, 6, 90)])]
    path = make_midi("t.mid", tracks, tempo_changes=[(0, 120.0), (2, 60.0)])
    pm = read_midi(path)
    assert pm.instruments[0].notes[2].start == pytest.approx(3.0)
    mt = midi_to_multitrack(pm, LPD5)
    assert [(n.pitch, n.start, n.end) for n in mt.notes()] == [(60, 0, 4), (62, 8, 12), (64, 16, 24)]
    assert mt.tempo == pytest.approx(120.0)
    # seconds x first tempo would have put the last note at step 24
    assert int(round(3.0 * 120 / 60 * 4)) == 24


def test_beat_times_and_origin():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0, name="PIANO")
    # beats every 0.5 s from 0.3 s; note on beat 2 (bar starts at beat 1) and one before the origin
    inst.notes += [pretty_midi.Note(80, 60, 1.3, 1.8), pretty_midi.Note(80, 61, 0.3, 0.8)]
    pm.instruments.append(inst)
    beats = 0.3 + 0.5 * np.arange(10)
    notes, dropped = quantize_notes(pm, POP909, Grid(), beat_times=beats, origin=1.0)
    assert notes == [Note(2, 60, 4, 8, 80)] and dropped == 1
    # beyond the last beat the last beat length goes on
    notes, _ = quantize_notes(pm, POP909, Grid(), beat_times=beats[:2], origin=0.0)
    assert [(n.pitch, n.start) for n in notes] == [(61, 0), (60, 8)]


def test_notes_to_roll_and_back_with_repeats_and_bool_rolls():
    grid = Grid(steps_per_beat=2, beats_per_bar=2, lowest_pitch=60, n_pitches=4)
    notes = [Note(0, 60, 0, 2, 10), Note(0, 60, 2, 3, 20), Note(0, 63, 1, 4, 30)]
    roll, onsets = notes_to_roll(notes, n_tracks=1, grid=grid)
    assert roll.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(roll[0, 0, :, 0], [10, 10, 20, 0])
    np.testing.assert_array_equal(onsets[0, 0, :, 0], [1, 0, 1, 0])
    assert roll_to_notes(roll, onsets, grid=grid) == sorted(notes, key=lambda n: (n.track, n.start, n.pitch))
    # without onsets, a bool roll merges the repeat into one note at the default velocity
    assert roll_to_notes(roll > 0, grid=grid, default_velocity=64) == [Note(0, 60, 0, 3, 64), Note(0, 63, 1, 4, 64)]
    # without onsets a uint8 roll splits where the velocity changes
    assert roll_to_notes(roll, grid=grid) == [Note(0, 60, 0, 2, 10), Note(0, 63, 1, 4, 30), Note(0, 60, 2, 3, 20)]
    with pytest.raises(ValueError, match="outside the grid"):
        notes_to_roll([Note(0, 70, 0, 1, 1)], n_tracks=1, grid=grid)
    with pytest.raises(ValueError, match="shape"):
        Multitrack(np.zeros((2, 1, 4, 4), np.uint8), np.zeros((2, 1, 4, 4), bool), DRUMS, grid)


def test_binarize_numpy_and_torch():
    import torch

    p = np.array([0.2, 0.5, 0.51, 0.9])
    np.testing.assert_array_equal(binarize(p), [False, False, True, True])
    np.testing.assert_array_equal(binarize(p, threshold=0.1), [True] * 4)
    t = binarize(torch.tensor(p))
    assert t.dtype == torch.bool and t.tolist() == [False, False, True, True]


def test_read_midi_errors(tmp_path):
    with pytest.raises(UserError, match="missing.mid: no such MIDI file"):
        read_midi(tmp_path / "missing.mid")
    bad = tmp_path / "garbage.mid"
    bad.write_bytes(b"this is not a MIDI file at all" * 10)
    with pytest.raises(UserError, match="garbage.mid: not a readable MIDI file"):
        read_midi(bad)
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty.mid"):
        midi_to_multitrack(empty, LPD5)


def test_write_midi_is_atomic(tmp_path):
    class Boom(pretty_midi.PrettyMIDI):
        def write(self, filename):
            open(filename, "wb").write(b"half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_midi(Boom(), tmp_path / "x.mid")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- pypianoroll traps

def test_pypianoroll_npz_round_trip(make_midi, tmp_path):
    import pypianoroll

    mt = midi_to_multitrack(make_midi("a.mid", HAND, tempo=100), LPD5)
    ppr = to_pypianoroll(mt)
    assert ppr.tempo.shape == (32,)
    ppr.save(str(tmp_path / "a.npz"))
    loaded = pypianoroll.load(tmp_path / "a.npz")
    back = from_pypianoroll(loaded, LPD5, Grid())
    assert back.notes() == mt.notes() and back.tempo == pytest.approx(100.0)


def test_pypianoroll_read_tempo_shape_trap(make_midi):
    import pypianoroll

    ppr = pypianoroll.read(make_midi("a.mid", HAND, tempo=100))
    assert ppr.tempo.ndim == 2  # the 1.0.4 trap: (T, 1), and its write() then fails
    with pytest.raises(TypeError):
        ppr.write("/dev/null")
    mt = from_pypianoroll(ppr, LPD5, Grid())  # resolution 24 -> 4 steps a beat
    assert mt.tempo == pytest.approx(100.0)
    # its velocity roll has no onsets: repeats survive only because their velocities differ
    assert mt.notes() == HAND_NOTES


def test_pypianoroll_copy_binarize_trap_does_not_reach_us():
    import pypianoroll

    pr = np.zeros((8, 128), np.uint8)
    pr[0:4, 60] = 30
    ppr = pypianoroll.Multitrack(resolution=4, tracks=[pypianoroll.StandardTrack("Piano", 0, False, pr)])
    copied = ppr.copy()
    assert type(copied.tracks[0]) is pypianoroll.Track        # the trap: type lost...
    assert copied.binarize().tracks[0].pianoroll.max() == 30   # ...so binarize() does nothing
    mt = from_pypianoroll(copied, LPD5, Grid(steps_per_beat=4))
    assert mt.notes() == [Note(1, 60, 0, 4, 30)]
    assert (binarize(mt.roll, 0) == (mt.roll > 0)).all() and binarize(mt.roll, 0).dtype == bool


# ----------------------------------------------------------------------------- real files

def _assert_real_round_trip(path, track_map, tmp_path):
    pm = read_midi(path)
    grid = Grid()
    mt = midi_to_multitrack(pm, track_map, grid)
    quant, dropped = quantize_notes(pm, track_map, grid)
    assert dropped == mt.n_dropped
    got = mt.notes()
    # every quantised note starts where the roll says it does
    assert {(n.track, n.pitch, n.start) for n in quant} == {(n.track, n.pitch, n.start) for n in got}
    # notes that no other note of their pitch overlaps come back exactly
    by_key = {}
    for n in quant:
        by_key.setdefault((n.track, n.pitch), []).append(n)
    alone = set()
    for lst in by_key.values():
        lst.sort(key=lambda n: n.start)
        for i, n in enumerate(lst):
            if (i == 0 or lst[i - 1].end <= n.start) and (i + 1 == len(lst) or n.end <= lst[i + 1].start):
                if sum(1 for m in lst if m.start == n.start) == 1:
                    alone.add(n)
    assert len(alone) > 0.5 * len(quant)
    assert alone <= set(got)
    out = tmp_path / "rt.mid"
    write_midi(multitrack_to_midi(mt), out)
    mt2 = midi_to_multitrack(out, track_map, grid)
    assert mt2.notes() == got
    np.testing.assert_array_equal(mt2.roll, mt.roll)
    np.testing.assert_array_equal(mt2.onsets, mt.onsets)


@pytest.mark.data
@pytest.mark.parametrize("song", ["001", "002"])
def test_real_pop909_round_trip(shared_data, song, tmp_path):
    path = shared_data / "pop909" / song / f"{song}.mid"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    _assert_real_round_trip(path, POP909, tmp_path)


@pytest.mark.data
def test_real_groove_round_trip(shared_data, tmp_path):
    files = sorted((shared_data / "groove" / "drummer1" / "eval_session").glob("*.mid"))[:2]
    if not files:
        pytest.skip("groove absent")
    for f in files:
        _assert_real_round_trip(f, get_track_map("drums"), tmp_path)


def test_from_generated_roll_and_drum_hits(tmp_path):
    import torch

    probs = torch.zeros(2, 1, 16, 84)
    probs[0, 0, 0:3, 36 - 24] = 0.9      # drums: three sounding steps = three hits
    probs[1, 0, 4:8, 60 - 24] = 0.7      # piano: one note of 4 steps
    probs[1, 0, 8, 60 - 24] = 0.4        # below threshold
    from symbolic.trackmap import TrackMap, TrackSpec

    tm = TrackMap((TrackSpec("drums", 0, is_drum=True), TrackSpec("piano", 0)))
    mt = Multitrack.from_roll(probs, tm, Grid(), tempo=90.0, velocity=77)
    assert mt.notes() == [Note(0, 36, 0, 1, 77), Note(0, 36, 1, 2, 77), Note(0, 36, 2, 3, 77), Note(1, 60, 4, 8, 77)]
    pm = multitrack_to_midi(mt)
    write_midi(pm, tmp_path / "g.mid")
    back = midi_to_multitrack(tmp_path / "g.mid", tm)
    assert back.notes() == mt.notes() and back.tempo == pytest.approx(90.0, abs=1e-3)
    # drums are written on MIDI channel 10 (9 counting from 0), the rest elsewhere
    import mido

    channels = {m.channel for tr in mido.MidiFile(tmp_path / "g.mid").tracks for m in tr if m.type == "note_on"}
    assert 9 in channels and len(channels) == 2
    # a bool roll without onsets: drum runs are hits, pitched runs are notes
    assert roll_to_notes(probs.numpy() > 0.5, grid=Grid(), drum_tracks=(0,), default_velocity=5)[:3] == \
        [Note(0, 36, 0, 1, 5), Note(0, 36, 1, 2, 5), Note(0, 36, 2, 3, 5)]


def test_grid_checks():
    g = Grid()
    assert (g.steps_per_bar, g.highest_pitch) == (16, 107)
    assert Grid.from_dict(Grid(3, 4, 21, 88).to_dict()) == Grid(3, 4, 21, 88)
    for bad in (dict(lowest_pitch=100), dict(steps_per_beat=0), dict(lowest_pitch=-1)):
        with pytest.raises(ValueError):
            Grid(**bad)


def test_from_pypianoroll_float_and_bool_tracks():
    import pypianoroll

    f = np.zeros((8, 128), np.float32)
    f[0:4, 60] = 0.7                     # a float roll in [0, 1] must not truncate to silence
    b = np.zeros((8, 128), bool)
    b[4:8, 40] = True
    ppr = pypianoroll.Multitrack(resolution=4, tracks=[pypianoroll.Track("Piano", 0, False, f),
                                                       pypianoroll.BinaryTrack("Bass", 33, False, b)])
    mt = from_pypianoroll(ppr, LPD5, Grid())
    assert mt.notes() == [Note(1, 60, 0, 4, 100), Note(3, 40, 4, 8, 100)]


def test_map_drum_keys_moves_hits_and_keeps_the_louder_where_two_meet():
    from symbolic.roll import Multitrack, map_drum_keys
    from symbolic.trackmap import GM_DRUM_KEYS, GROOVE_TO_GM, TrackMap, TrackSpec

    grid = Grid()
    roll = np.zeros((2, 1, 16, 84), np.uint8)
    lo = grid.lowest_pitch
    roll[1, 0, 0, 26 - lo] = 90              # open hi-hat edge alone: to 46
    roll[1, 0, 4, 26 - lo] = 60              # ... and with a louder open hi-hat bow: one hit, 100
    roll[1, 0, 4, 46 - lo] = 100
    roll[1, 0, 8, 26 - lo] = 110             # louder than the bow beside it: 110, with its timing
    roll[1, 0, 8, 46 - lo] = 70
    roll[1, 0, 12, 58 - lo] = 80             # tom rim: to 43
    roll[0, 0, 0, 58 - lo] = 64              # a pitched track keeps its 58 (B flat)
    timing = np.zeros(roll.shape, np.float32)
    timing[1, 0, 8, 26 - lo], timing[1, 0, 8, 46 - lo] = -0.2, 0.1
    mt = Multitrack(roll, roll > 0, TrackMap((TrackSpec("keys", 0), TrackSpec("drums", 0, is_drum=True))), grid,
                    timing=timing)
    out = map_drum_keys(mt, GROOVE_TO_GM, [1])
    hits = {(int(s), int(p) + lo): int(out.roll[1, 0, s, p]) for s, p in zip(*np.nonzero(out.roll[1, 0]))}
    assert hits == {(0, 46): 90, (4, 46): 100, (8, 46): 110, (12, 43): 80}
    assert np.array_equal(out.onsets[1], out.roll[1] > 0)
    assert out.timing[1, 0, 8, 46 - lo] == pytest.approx(-0.2) and not out.timing[1, ..., 26 - lo].any()
    assert np.array_equal(out.roll[0], roll[0]) and np.array_equal(mt.roll, roll)   # the input is not changed
    assert map_drum_keys(mt, {}, [1]) is mt and map_drum_keys(mt, GROOVE_TO_GM, []) is mt
    # keep: hits left outside GM's kit (a composer's rare stray keys, e.g. 90 or 24) are dropped
    stray = roll.copy()
    stray[1, 0, 2, 90 - lo] = stray[1, 0, 3, 24 - lo] = 70
    mt2 = Multitrack(stray, stray > 0, mt.track_map, grid, timing=timing)
    kept = map_drum_keys(mt2, GROOVE_TO_GM, [1], keep=GM_DRUM_KEYS)
    assert {int(p) + lo for p in np.nonzero(kept.onsets[1, 0])[1]} == {43, 46}
    assert np.array_equal(kept.roll[0], stray[0])   # only the drum track
    clean = map_drum_keys(mt, GROOVE_TO_GM, [1], keep=GM_DRUM_KEYS)
    assert map_drum_keys(clean, {}, [1], keep=GM_DRUM_KEYS) is clean   # nothing to move or drop


def _instruments(programs, drum_at=()):
    out = []
    for n, program in enumerate(programs):
        inst = pretty_midi.Instrument(program=0 if n in drum_at else program, is_drum=n in drum_at, name=f"t{n}")
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=60 + n, start=0.5 * n, end=0.5 * n + 0.25))
        out.append(inst)
    return out


def test_midi_channels_give_each_program_its_own_channel(tmp_path):
    import mido

    from symbolic.roll import MIDI_CHANNELS, midi_channels, write_midi

    assert midi_channels(_instruments(range(15), drum_at=(14,))) is None      # pretty_midi's own choice stands
    # 16 instruments, the drums third: pretty_midi gives the 16th the first one's channel 0
    insts = _instruments([7 * n for n in range(16)], drum_at=(2,))
    channels = midi_channels(insts)
    assert channels[2] == 9 and len(set(channels)) == 16 and 9 not in channels[:2] + channels[3:]
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.extend(insts)
    write_midi(pm, tmp_path / "many.mid")
    raw = mido.MidiFile(str(tmp_path / "many.mid"))
    written = [{m.channel for m in track if hasattr(m, "channel")} for track in raw.tracks[1:]]
    assert written == [{c} for c in channels]
    back = pretty_midi.PrettyMIDI(str(tmp_path / "many.mid"))
    assert sorted((i.program, i.is_drum, i.notes[0].pitch) for i in back.instruments) == sorted(
        (i.program, i.is_drum, i.notes[0].pitch) for i in insts)
    # tracks of one program share its channel; more than 15 programs cannot be written
    same = _instruments([0, 5] * 9)       # the 16th (program 5) would share channel 0 with program 0
    assert midi_channels(same) == [0, 1] * 9
    with pytest.raises(UserError, match="16 instruments of different programs besides the drums: a MIDI file has 15"):
        midi_channels(_instruments(range(17), drum_at=(0,)))
    assert MIDI_CHANNELS == tuple(range(9)) + tuple(range(10, 16))


def test_write_midi_keeps_tempi_as_read(tmp_path):
    # pretty_midi writes int(6e7 / bpm) of the float it read: 461538 came back as 461537
    import mido

    from symbolic.roll import read_midi, write_midi

    src = mido.MidiFile(ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=461538, time=0),
                           mido.MetaMessage("set_tempo", tempo=450000, time=1920),
                           mido.MetaMessage("set_tempo", tempo=600000, time=1920)])
    notes = mido.MidiTrack([mido.Message("program_change", program=0, time=0),
                            mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_off", note=60, velocity=0, time=5760)])
    src.tracks.extend([meta, notes])
    src.save(str(tmp_path / "in.mid"))
    write_midi(read_midi(tmp_path / "in.mid"), tmp_path / "out.mid")
    out = mido.MidiFile(str(tmp_path / "out.mid"))
    assert [m.tempo for m in out.tracks[0] if m.type == "set_tempo"] == [461538, 450000, 600000]


def test_a_roll_read_back_keeps_its_silent_last_bars(tmp_path):
    # from QA: multitrack_to_midi marks where the last bar ends, but reading ignored it (4 bars -> 1)
    from symbolic.roll import midi_to_multitrack, multitrack_to_midi, read_midi, write_midi

    roll = np.zeros((3, 4, 16, 84), np.uint8)
    onsets = np.zeros_like(roll, bool)
    roll[0, 0, 0:4, 40], onsets[0, 0, 0, 40] = 100, True
    mt = Multitrack(roll, onsets, get_track_map("pop909"), Grid(), 120.0)
    write_midi(multitrack_to_midi(mt), tmp_path / "s.mid")
    back = midi_to_multitrack(tmp_path / "s.mid", "pop909")
    assert back.n_bars == 4 and np.array_equal(back.roll, roll) and np.array_equal(back.onsets, onsets)
    plain = read_midi(tmp_path / "s.mid")
    plain.text_events = []                      # another program's file: its notes say where it ends
    assert midi_to_multitrack(plain, "pop909").n_bars == 1


def test_meta_events_off_the_first_track_are_one_note_not_two_raw_warnings(tmp_path, capsys):
    """From fuzzing: pretty_midi's RuntimeWarning (two raw lines naming a file in .venv) reached
    stderr from render, accompany and plot."""
    import warnings

    import mido

    from symbolic.roll import meta_elsewhere_note, read_midi

    mf = mido.MidiFile(type=1)
    first, second = mido.MidiTrack(), mido.MidiTrack()
    mf.tracks += [first, second]
    second.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    second += [mido.Message("note_on", note=60, velocity=90, time=0), mido.Message("note_off", note=60, time=480)]
    mf.save(str(tmp_path / "w.mid"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no warning gets out of read_midi
        pm = read_midi(tmp_path / "w.mid")
    assert pm.meta_elsewhere and len(pm.instruments[0].notes) == 1
    meta_elsewhere_note(pm, "w.mid")
    assert capsys.readouterr().err == ("musegansynth: note: w.mid: tempo, key or time signature events on tracks after "
                                       "the first are not read (only the first track's are; a type-1 file keeps them "
                                       "there)\n")
    assert not read_midi(_write_plain(tmp_path / "p.mid")).meta_elsewhere


def _write_plain(path):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(90, 60, 0.0, 0.5))
    pm.instruments.append(inst)
    pm.write(str(path))
    return path
