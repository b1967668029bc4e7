"""User MIDI in unusual forms: meters, pickup bars, tempo changes, out-of-range notes (accompany
and the data builders), and sources that cannot be read (hand-made inputs)."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from pipeline.accompany import accompany_midi, run
from pipeline.errors import UserError
from symbolic.roll import Grid


class BeatComposer:
    """A stand-in for ``Composer`` in accompaniment mode: its "piano" plays C3 (MIDI 48) one step
    long on every beat of every bar, whatever it is given; the given track comes back as given."""

    def __init__(self) -> None:
        self.track_names = ["melody", "piano"]
        self.programs = [0, 0]
        self.is_drum = [False, False]
        g = Grid()
        self.grid = {"steps_per_beat": g.steps_per_beat, "beats_per_bar": g.beats_per_bar,
                     "lowest_pitch": g.lowest_pitch, "n_pitches": g.n_pitches}
        self.n_bars = 4
        self.given: list[torch.Tensor] = []

    def accompany(self, given, track, seed, chords=None):
        g = Grid()
        given = torch.as_tensor(given).float()
        self.given.append(given.clone())
        out = torch.zeros(2, given.shape[0], g.steps_per_bar, g.n_pitches)
        out[track] = given
        out[1 - track, :, ::g.steps_per_beat, 48 - g.lowest_pitch] = 1.0
        return out


def _write(path, notes, *, tempo_scales=None, time_signatures=((4, 4, 0),), program=0, resolution=480, cc=()):
    """A one-track MIDI: ``notes`` (pitch, start beat, end beat); ``tempo_scales`` [(beat, qpm)];
    ``time_signatures`` [(num, den, beat)]; ``cc`` [(number, value, beat)]."""
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=120.0)
    if tempo_scales:
        pm._tick_scales = [(int(b * resolution), 60.0 / (q * resolution)) for b, q in tempo_scales]
        pm._update_tick_to_time(resolution * 1000)
    for num, den, beat in time_signatures:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, pm.tick_to_time(int(beat * resolution))))
    t = lambda beat: pm.tick_to_time(int(round(beat * resolution)))  # noqa: E731
    inst = pretty_midi.Instrument(program, name="MELODY")
    inst.notes = [pretty_midi.Note(90, p, t(s), t(e)) for p, s, e in notes]
    inst.control_changes = [pretty_midi.ControlChange(n, v, t(b)) for n, v, b in cc]
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def _notes(inst):
    return [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in inst.notes]


def _beats(n_beats, start=0.0):
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    return [(scale[k % 8], start + k, start + k + 1) for k in range(n_beats)]


# ----------------------------------------------------------------------------- accompany: timing

def test_accompany_keeps_the_tempo_changes_of_the_input(tmp_path):
    """120 qpm for 2 bars, then 60: the given notes come back at their own times, the accompaniment
    on the same beats (before the fix: one tempo, 120, and the melody's second half twice as fast)."""
    midi = _write(tmp_path / "in.mid", _beats(16), tempo_scales=[(0, 120.0), (8, 60.0)])
    src = pretty_midi.PrettyMIDI(str(midi))
    out = run(midi, tmp_path / "out", track="MELODY", composer=BeatComposer())
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    times, tempi = song.get_tempo_changes()
    assert np.allclose(times, [0.0, 4.0]) and np.allclose(tempi, [120.0, 60.0])
    assert _notes(song.instruments[0]) == _notes(src.instruments[0])
    assert song.instruments[0].notes[-1].end == pytest.approx(12.0)
    beat_s = [0.5 * b for b in range(8)] + [4.0 + (b - 8) for b in range(8, 16)]
    assert [round(n.start, 6) for n in song.instruments[1].notes] == beat_s
    assert [round(n.end - n.start, 6) for n in song.instruments[1].notes] == [0.125] * 8 + [0.25] * 8


@pytest.mark.parametrize("sig", [(3, 4), (6, 8), (5, 4), (12, 8)])
def test_accompany_refuses_a_meter_other_than_four_quarters(tmp_path, capsys, sig):
    """The composer writes 4/4 bars: a 3/4 melody used to get 4/4 bars under a 3/4 time signature."""
    midi = _write(tmp_path / "in.mid", _beats(12), time_signatures=[(*sig, 0)])
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"time signature {sig[0]}/{sig[1]} at quarter note 0: the composer "
                                        r"writes bars of 4 quarter notes"):
        accompany_midi(pretty_midi.PrettyMIDI(str(midi)), BeatComposer(), track="MELODY", source=str(midi))
    with pytest.raises(UserError):
        run(midi, out, track="MELODY", composer=BeatComposer())
    assert not out.exists()


def test_meter_kinds_pickups_and_off_grid_stretches():
    from symbolic.roll import meter_kind, off_grid_meters, pickup_origin, time_signature_beats

    assert [meter_kind(n, d, 4) for n, d in [(4, 4), (2, 2), (8, 4), (8, 8)]] == ["bar"] * 4
    assert [meter_kind(n, d, 4) for n, d in [(1, 4), (2, 4), (1, 8), (4, 8)]] == ["part"] * 4
    assert [meter_kind(n, d, 4) for n, d in [(3, 4), (6, 8), (5, 4), (12, 8), (3, 8)]] == ["other"] * 5
    assert pickup_origin([(0.0, 1, 4), (1.0, 4, 4)], 4) == -3.0          # one beat of pickup
    assert pickup_origin([(0.0, 3, 4), (3.0, 4, 4)], 4) == -1.0          # a 3/4 pickup bar
    assert pickup_origin([(0.0, 2, 4), (2.0, 2, 4)], 4) == 0.0           # 2/4 bars fit anywhere
    assert pickup_origin([(0.0, 2, 4), (2.0, 2, 4), (4.0, 4, 4)], 4) == 0.0  # two 2/4 bars fill bar 0
    assert pickup_origin([(0.0, 1, 4), (1.0, 1, 4), (2.0, 1, 4), (3.0, 1, 4), (4.0, 4, 4)], 4) == 0.0
    assert pickup_origin([(0.0, 2, 4), (38.0, 4, 4)], 4) == -2.0         # 4/4 bar lines rule
    assert pickup_origin([(0.0, 1, 4)], 4) == 0.0 and pickup_origin([(0.0, 4, 4), (8.0, 2, 4)], 4) == 0.0
    assert pickup_origin([(0.0, 3, 4), (3.0, 3, 4)], 4) == 0.0           # not a pickup: 3/4 goes on
    # from fuzzing: a 3/4 pickup before 2/4 bars was refused (before 4/4 bars it was taken)
    assert pickup_origin([(0.0, 3, 4), (3.0, 2, 4)], 4) == -1.0
    assert off_grid_meters([(0.0, 3, 4), (3.0, 2, 4)], 4, origin=-1.0) == []
    assert pickup_origin([(0.0, 3, 4), (6.0, 2, 4)], 4) == 0.0           # two 3/4 bars: not a pickup
    assert pickup_origin([(0.0, 3, 4), (3.0, 2, 4), (5.0, 3, 4)], 4) == 0.0   # 3/4 comes back
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)   # one signature, after the music's end
    pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 10.0))      # beat 20
    assert time_signature_beats(pm) == [(0.0, 4, 4), (20.0, 3, 4)]
    assert time_signature_beats(pm, end_beat=16) == [(0.0, 4, 4)]
    pm.time_signature_changes.insert(0, pretty_midi.TimeSignature(2, 4, 0.0))
    assert time_signature_beats(pm, end_beat=0) == [(0.0, 2, 4)]                 # one at 0 stays
    assert off_grid_meters([(0.0, 1, 4)], 4) == [] and off_grid_meters([(0.0, 2, 4), (6.0, 1, 4)], 4) == []
    assert off_grid_meters([(0.0, 3, 4), (3.0, 4, 4)], 4, origin=-1.0) == []     # the pickup ends bar 0
    assert off_grid_meters([(0.0, 4, 4), (8.0, 2, 4), (10.0, 4, 4)], 4) == [2]   # 4/4 off the grid
    assert off_grid_meters([(0.0, 4, 4), (8.0, 2, 4), (10.0, 4, 4)], 4, bar_lines=False) == []
    assert off_grid_meters([(0.0, 4, 4), (8.0, 3, 4)], 4) == [1]


@pytest.mark.parametrize("sigs, kept", [([(1, 4, 0)], [(1, 4, 0.0)]), ([(2, 4, 0)], [(2, 4, 0.0)]),
                                         ([(4, 4, 0), (1, 4, 0)], [(1, 4, 0.0)]),   # the last at a place holds
                                         ([(2, 4, 0), (1, 4, 6)], [(2, 4, 0.0), (1, 4, 3.0)]),
                                         ([(2, 4, 0), (2, 4, 2), (4, 4, 4)], [(2, 4, 0.0), (2, 4, 1.0), (4, 4, 2.0)])])
def test_accompany_takes_one_and_two_quarter_bars_as_four_four(tmp_path, sigs, kept):
    """POP909's files (and many sequencers) write 1/4 or 2/4 over music in 4/4: their bars fill the
    composer's, which start at the file's start; the file's time signatures come back as they were."""
    midi = _write(tmp_path / "in.mid", _beats(16), time_signatures=sigs)
    src = pretty_midi.PrettyMIDI(str(midi))
    song = pretty_midi.PrettyMIDI(str(run(midi, tmp_path / "out", track="MELODY", composer=BeatComposer())
                                      / "song.mid"))
    assert _notes(song.instruments[0]) == _notes(src.instruments[0])
    assert [round(n.start, 6) for n in song.instruments[1].notes] == [0.5 * b for b in range(16)]
    assert [(t.numerator, t.denominator, round(t.time, 6)) for t in song.time_signature_changes] == kept


def test_accompany_refuses_a_meter_change_inside_the_melody(tmp_path):
    midi = _write(tmp_path / "in.mid", _beats(16), time_signatures=[(4, 4, 0), (3, 4, 8)])
    with pytest.raises(UserError, match=r"time signature 3/4 at quarter note 8:"):
        accompany_midi(pretty_midi.PrettyMIDI(str(midi)), BeatComposer(), track="MELODY", source="in.mid")
    # a change after the melody's last note does not matter; 2/2 is four quarters too
    fine = _write(tmp_path / "fine.mid", _beats(16), time_signatures=[(2, 2, 0), (3, 4, 16)])
    song = pretty_midi.PrettyMIDI(str(run(fine, tmp_path / "o", track="MELODY", composer=BeatComposer()) / "song.mid"))
    assert [(t.numerator, t.denominator, t.time) for t in song.time_signature_changes] == [(2, 2, 0.0)]


def test_accompany_cli_meter_error_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    import pipeline.accompany as acc

    midi = _write(tmp_path / "in.mid", _beats(12), time_signatures=[(3, 4, 0)])
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: BeatComposer())
    from pipeline.cli import main

    out = tmp_path / "out"
    assert main(["accompany", str(midi), "--track", "MELODY", "--out", str(out), "--renderer", "none",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "time signature 3/4" in err and "Traceback" not in err
    assert not out.exists()


def test_accompany_puts_a_pickup_bar_at_the_end_of_bar_0(tmp_path):
    """1/4 then 4/4 (an anacrusis): the composer's bars line up with the file's 4/4 bars and the
    pickup note is the last beat of bar 0 (before the fix, bars began at the pickup, a beat early)."""
    notes = [(67, 0, 1)] + _beats(8, start=1.0)
    midi = _write(tmp_path / "in.mid", notes, time_signatures=[(1, 4, 0), (4, 4, 1)])
    src = pretty_midi.PrettyMIDI(str(midi))
    comp = BeatComposer()
    mt, _ = accompany_midi(src, comp, track="MELODY", source="in.mid")
    given = comp.given[0]
    assert tuple(given.shape) == (3, 16, 84)  # pickup bar + 2 bars
    assert torch.nonzero(given[0]).tolist() == [[s, 67 - 24] for s in range(12, 16)]  # the pickup: beat 4 of bar 0
    assert torch.nonzero(given[1, 0]).tolist() == [[60 - 24]]  # the first downbeat: bar 1
    out = run(midi, tmp_path / "out", track="MELODY", composer=comp)
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert _notes(song.instruments[0]) == _notes(src.instruments[0])
    assert [(t.numerator, t.denominator, t.time) for t in song.time_signature_changes] == [(1, 4, 0.0), (4, 4, 0.5)]
    # the accompaniment's beats: bar 0's first three fall before the file's start and are left out
    assert [round(n.start, 6) for n in song.instruments[1].notes] == [0.5 * b for b in range(9)]


def test_accompany_leaves_out_a_pickup_bars_notes_played_late(tmp_path):
    """A composed note wholly before the file's start (in the pickup's missing beats) is left out
    even when the card's timing plays it late, past the start (it was a sliver at time 0)."""

    class WholeBeats(BeatComposer):   # the piano holds every beat, C3 and D3 in turn
        def accompany(self, given, track, seed, chords=None):
            out = super().accompany(given, track, seed, chords)
            out[1 - track] = 0
            for b in range(out.shape[2] // 4):
                out[1 - track, :, 4 * b:4 * b + 4, 48 + 2 * (b % 2) - 24] = 1.0
            return out

    midi = _write(tmp_path / "in.mid", [(67, 0, 1)] + _beats(8, start=1.0), time_signatures=[(1, 4, 0), (4, 4, 1)])
    comp = WholeBeats()
    comp.velocity = {"steps_per_bar": 16, "tracks": {"piano": {
        "by": "step", "styles": {"*": {"*": [80] * 16}}, "timing": {"*": {"*": [0.25] * 16}}}}}
    out = run(midi, tmp_path / "out", track="MELODY", composer=comp)
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    # bar 0's last beat (steps 12-16) is the file's first: 9 beats from there, each a quarter step late;
    # the last ends with the last bar (4.5 s), not past it
    assert _notes(song.instruments[1]) == [(48 + 2 * ((b + 1) % 2), round(0.5 * b + 0.03125, 6),
                                            round(min(0.5 * b + 0.53125, 4.5), 6)) for b in range(9)]


# ----------------------------------------------------------------------------- accompany: the given track

def test_accompany_keeps_given_notes_outside_the_composer_range(tmp_path):
    """The composer hears MIDI 24-107 only, but the user's notes at 12 and 115 are the user's:
    they come back (before the fix they vanished from song.mid)."""
    notes = [(12, 0, 1), (115, 1, 2)] + _beats(6, start=2.0)
    midi = _write(tmp_path / "in.mid", notes, cc=[(64, 127, 0), (64, 0, 4)])
    src = pretty_midi.PrettyMIDI(str(midi))
    song = pretty_midi.PrettyMIDI(str(run(midi, tmp_path / "out", track="MELODY", composer=BeatComposer())
                                      / "song.mid"))
    assert _notes(song.instruments[0]) == sorted(_notes(src.instruments[0]), key=lambda n: (n[1], n[0]))
    assert [(c.number, c.value, round(c.time, 6)) for c in song.instruments[0].control_changes] == \
        [(64, 127, 0.0), (64, 0, 2.0)]  # the sustain pedal too


# ----------------------------------------------------------------------------- data symbolic: meters

def _band(path, sigs, n_beats):
    """Piano on every beat, bass one step on every downbeat that ``sigs`` [(num, den, beat)] make."""
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    downs = []
    for i, (num, den, beat) in enumerate(sigs):
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, beat * 0.5))
        end = sigs[i + 1][2] if i + 1 < len(sigs) else n_beats
        downs += list(np.arange(beat, end, num * 4 / den))
    piano, bass = pretty_midi.Instrument(0, name="Piano"), pretty_midi.Instrument(33, name="Bass")
    piano.notes = [pretty_midi.Note(80, 60 + (k % 4) * 2, k * 0.5, k * 0.5 + 0.5) for k in range(n_beats)]
    bass.notes = [pretty_midi.Note(80, 36, d * 0.5, d * 0.5 + 0.125) for d in downs]
    pm.instruments += [piano, bass]
    pm.write(str(path))
    return pm


def _bass_onsets(mt):
    from symbolic.trackmap import LPD5

    bass = LPD5.names.index("Bass")
    return sorted({n.start for n in mt.notes() if n.track == bass})


def test_data_midi_pickup_bar_ends_bar_0(tmp_path):
    """1/4 then 4/4: the grid's bars start on the file's 4/4 downbeats (before the fix they started
    at the pickup, so every phrase's downbeat fell on step 4)."""
    from symbolic.data import midi_song
    from symbolic.trackmap import LPD5

    pm = _band(tmp_path / "a.mid", [(1, 4, 0), (4, 4, 1)], 17)
    song = midi_song(0, "a", pm, LPD5, Grid(), "midi")
    assert _bass_onsets(song.mt) == [12, 16, 32, 48, 64]
    assert song.mt.n_bars == 5 and not song.bad_bars.any()


def test_data_midi_bars_after_a_short_bar_in_the_middle_are_left_out(tmp_path):
    """4/4, one 2/4 bar, 4/4 again: the grid's bars after the 2/4 bar would straddle the file's
    (downbeat on step 8): they are bad bars, so no phrase holds them."""
    from symbolic.data import midi_song, song_phrases
    from symbolic.trackmap import LPD5

    pm = _band(tmp_path / "c.mid", [(4, 4, 0), (2, 4, 8), (4, 4, 10)], 42)
    song = midi_song(0, "c", pm, LPD5, Grid(), "midi")
    assert song.bad_bars.tolist() == [False, False] + [True] * 9
    arrays, empty = song_phrases(song, n_bars=2, hop=1, transpose=False)
    assert len(arrays["rolls"]) == 1 and empty == 0  # bars 0-1 only
    # a time signature restated on a bar line changes nothing
    pm = _band(tmp_path / "d.mid", [(4, 4, 0), (4, 4, 8)], 16)
    assert not midi_song(0, "d", pm, LPD5, Grid(), "midi").bad_bars.any()


def test_data_midi_takes_a_file_that_says_2_4_over_4_4_music(tmp_path):
    """A file labelled 2/4 (as POP909's are) whose music is in 4/4: its bars fill the grid's, so every
    bar is usable (before, the whole file was skipped as "meter not 4/4")."""
    from symbolic.data import midi_song
    from symbolic.trackmap import LPD5

    pm = _band(tmp_path / "e.mid", [(2, 4, 0)], 32)
    song = midi_song(0, "e", pm, LPD5, Grid(), "midi")
    assert song.mt.n_bars == 8 and not song.bad_bars.any()
    pm = _band(tmp_path / "f.mid", [(3, 4, 0)], 24)
    with pytest.raises(Exception, match="meter not 4/4"):
        midi_song(0, "f", pm, LPD5, Grid(), "midi")


# ----------------------------------------------------------------------------- data symbolic: chorales

def _chorale(name):
    from symbolic.data import chorale_songs

    (load,) = [load for n, load in chorale_songs(Grid()) if str(n).endswith("/" + name)]
    return load


def test_chorale_music21_cannot_export_is_skipped_not_a_crash():
    """bwv277's repeats make music21's MIDI export raise ExpanderException: before the fix
    ``data symbolic --source chorales --limit 15`` (or more) stopped with an internal error."""
    from symbolic.data import Skip

    with pytest.raises(Skip, match=r"music21 cannot write it as MIDI \(ExpanderException\)"):
        _chorale("bwv277")()



# ----------------------------------------------------------------------------- data symbolic: LPD-5

def test_lpd5_notes_before_the_first_downbeat_end_bar_0():
    """An LPD-5 pianoroll whose first downbeat is at beat 1: its pickup note used to be dropped
    (counted in n_dropped); now bar 0 starts a bar before that downbeat and the pickup ends it."""
    pypianoroll = pytest.importorskip("pypianoroll")
    from symbolic.roll import Note, from_pypianoroll

    res, T = 4, 4 * 5  # 5 beats: the pickup beat, then one bar
    pr = np.zeros((T, 128), dtype=bool)
    pr[0:4, 67] = True  # the pickup
    pr[4:8, 60] = True  # the first downbeat
    downbeat = np.zeros(T, dtype=bool)
    downbeat[4] = True
    ppr = pypianoroll.Multitrack(resolution=res, tempo=np.full(T, 100.0), downbeat=downbeat,
                                 tracks=[pypianoroll.BinaryTrack(name="Piano", program=0, pianoroll=pr)])
    mt = from_pypianoroll(ppr, "lpd5", Grid())
    assert mt.n_dropped == 0 and mt.n_bars == 2
    assert mt.notes() == [Note(1, 67, 12, 16, 100), Note(1, 60, 16, 20, 100)]
    # a downbeat at step 0 is bar 0, as before
    downbeat[:] = False
    downbeat[0] = True
    mt = from_pypianoroll(ppr, "lpd5", Grid())
    assert mt.notes() == [Note(1, 67, 0, 4, 100), Note(1, 60, 4, 8, 100)] and mt.n_bars == 2
    # a track the map leaves out (program 120) sounding before the downbeat moves nothing
    downbeat[:] = False
    downbeat[4] = True
    early = np.zeros((T, 128), dtype=bool)
    early[0, 50] = True
    ppr.tracks = [ppr.tracks[0], pypianoroll.BinaryTrack(name="FX", program=120, pianoroll=early)]
    ppr.tracks[0].pianoroll[0:4, 67] = False  # no pickup in the kept track
    mt = from_pypianoroll(ppr, "lpd5", Grid())
    assert mt.notes() == [Note(1, 60, 0, 4, 100)]


# ----------------------------------------------------------------------------- evaluate symbolic: empty split

def _empty_cache(root):
    import json

    root.mkdir()
    (root / "meta.json").write_text(json.dumps({"tracks": ["melody"], "is_drum": [False], "n_bars": 1,
                                                "grid": Grid(4, 4, 24, 84).to_dict()}))
    np.savez_compressed(root / "test.npz", rolls=np.zeros((0, 1, 1, 16, 84), bool),
                        chords=np.zeros((0, 1, 4, 12), np.uint8))
    return root


def test_an_empty_split_loads_and_evaluate_says_so(tmp_path, capsys):
    """A split without phrases (a tiny build's test split) used to crash in
    ``datamodule.load_split`` (reshape of a size-0 array): an internal error, exit 1."""
    from pipeline.cli import main
    from symbolic.datamodule import load_split, read_meta

    data = _empty_cache(tmp_path / "cache")
    arrays = load_split(data, "test", read_meta(data))
    assert arrays["rolls"].shape[0] == 0 and arrays["has_chords"].shape == (0,)
    gen = tmp_path / "gen.npz"
    np.savez_compressed(gen, rolls=np.zeros((2, 1, 1, 16, 84), bool))
    assert main(["evaluate", "symbolic", "--data", str(data), "--generated", str(gen)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"musegansynth: error: {data / 'test.npz'}: the test split has no phrases (choose another with " \
                  f"--split, or build the cache from more songs)"
