"""``musegansynth accompany``: the given track stays as it was, the composer adds the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from fakes import FakeComposer, FakeTimbreGenerator
from pipeline.accompany import accompany_midi, cli_main, run
from pipeline.errors import UserError


def _song(path: Path) -> Path:
    pm = pretty_midi.PrettyMIDI(initial_tempo=90)
    mel = pretty_midi.Instrument(73, name="MELODY")
    step = 60 / 90 / 4
    for k in range(20):  # 20 notes of 3 steps, every 4 steps: 5 bars
        mel.notes.append(pretty_midi.Note(70 + k % 5, 60 + (k * 7) % 12, 4 * k * step, (4 * k + 3) * step))
    other = pretty_midi.Instrument(0, name="PIANO")
    other.notes.append(pretty_midi.Note(80, 48, 0, 1))
    pm.instruments += [other, mel]
    pm.write(str(path))
    return path


def test_accompany_keeps_the_given_track(tmp_path):
    midi = _song(tmp_path / "in.mid")
    comp = FakeComposer()
    pm = pretty_midi.PrettyMIDI(str(midi))
    mt, ti = accompany_midi(pm, comp, track="melody", seed=1, source="in.mid")
    assert ti == 0 and mt.track_names == ["MELODY", "bridge", "piano"]
    assert mt.n_bars == 5 and mt.tempo == pytest.approx(90, abs=1e-3)
    assert comp.accompany_calls == [{"track": 0, "seed": 1, "bars": 5}]
    out = run(midi, tmp_path / "out", track="MELODY", composer=comp, seed=1)
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    names = [i.name for i in song.instruments]
    assert names == ["MELODY", "bridge", "piano"]
    given = [(n.pitch, n.velocity, round(n.start, 4), round(n.end, 4)) for n in song.instruments[0].notes]
    src = pm.instruments[1]
    assert given == [(n.pitch, n.velocity, round(n.start, 4), round(n.end, 4)) for n in src.notes]
    assert song.instruments[0].program == 73
    assert all(len(i.notes) > 0 for i in song.instruments[1:])
    assert not (out / "song.wav").exists()


def test_accompany_plays_the_composed_tracks_with_the_cards_velocities(tmp_path):
    midi = _song(tmp_path / "in.mid")
    pm = pretty_midi.PrettyMIDI(str(midi))
    comp = FakeComposer()
    plain, _ = accompany_midi(pm, comp, track="melody", seed=1)
    # a table for the piano only: 30 on a bar's first step, 110 on every other step, pooled over
    # styles (the accompaniment is composed with no style, so the "pop" cells are not used)
    comp.velocity = {"steps_per_bar": 16, "tracks": {
        "piano": {"by": "step", "styles": {"*": {"*": [30] + [110] * 15}, "pop": {"*": [1] * 16}}}}}
    mt, ti = accompany_midi(pm, comp, track="melody", seed=1)
    piano = mt.track_names.index("piano")
    on = mt.onsets[piano]
    assert on.any() and np.array_equal(on, plain.onsets[piano])
    expect = np.where(np.arange(16) == 0, 30, 110)[None, :, None]
    assert np.array_equal(mt.roll[piano][on], np.broadcast_to(expect, on.shape)[on])
    bridge = mt.track_names.index("bridge")
    assert np.array_equal(mt.roll[bridge], plain.roll[bridge])        # no table: as before
    assert np.array_equal(mt.roll[ti], plain.roll[ti])                # the given track as it was


def test_accompany_plays_the_composed_tracks_as_early_as_the_cards_timing(tmp_path):
    """The card's mean offsets move the composed notes off the grid (through the input's tempo map
    into song.mid); the given track and a track without timing stay where they were."""
    midi = _song(tmp_path / "in.mid")
    pm = pretty_midi.PrettyMIDI(str(midi))
    comp = FakeComposer()
    plain = run(midi, tmp_path / "plain", track="melody", composer=comp, seed=1)
    comp.velocity = {"steps_per_bar": 16, "tracks": {"piano": {
        "by": "step", "styles": {"*": {"*": [80] * 16}}, "timing": {"*": {"*": [-0.25] * 16}}}}}
    mt, ti = accompany_midi(pm, comp, track="melody", seed=1)
    piano, bridge = mt.track_names.index("piano"), mt.track_names.index("bridge")
    on = mt.onsets[piano]
    assert on.any() and np.all(mt.timing[piano][on] == -0.25) and not mt.timing[piano][~on].any()
    assert not mt.timing[bridge].any() and not mt.timing[ti].any()
    timed = run(midi, tmp_path / "timed", track="melody", composer=comp, seed=1)
    before, after = (pretty_midi.PrettyMIDI(str(d / "song.mid")) for d in (plain, timed))
    step = 60 / 90 / 4
    tick = before.tick_to_time(1)
    for k in (0, 1):   # the given melody and the bridge: the same notes at the same times
        assert _notes(after.instruments[k]) == _notes(before.instruments[k])
    a, b = after.instruments[piano].notes, before.instruments[piano].notes
    assert len(a) == len(b) > 1 and b[0].start == 0
    assert a[0].start == 0 and abs(a[0].end - (b[0].end - step / 4)) <= tick   # no note before the file's start
    for x, y in zip(a[1:], b[1:]):
        assert x.pitch == y.pitch
        assert abs(x.start - (y.start - step / 4)) <= tick and abs(x.end - (y.end - step / 4)) <= tick


def test_accompany_humanize_draws_around_the_cards_means(tmp_path, monkeypatch, capsys):
    import pipeline.accompany as acc
    from pipeline.cli import main

    midi = _song(tmp_path / "in.mid")
    pm = pretty_midi.PrettyMIDI(str(midi))
    comp = FakeComposer()
    comp.velocity = {"steps_per_bar": 16, "tracks": {"piano": {
        "by": "step", "styles": {"*": {"*": [70] * 16}}, "spread": {"*": {"*": [10] * 16}}}}}
    piano = list(comp.track_names).index("piano")
    flat, _ = accompany_midi(pm, comp, track="melody", seed=1, humanize=0.0)
    on = flat.onsets[piano]
    assert on.any() and set(flat.roll[piano][on].tolist()) == {70}
    drawn, _ = accompany_midi(pm, comp, track="melody", seed=1)       # the default, 0.5
    values = drawn.roll[piano][on]
    assert len(set(values.tolist())) > 2 and abs(values.astype(float).mean() - 70) < 5
    assert np.array_equal(values, accompany_midi(pm, comp, track="melody", seed=1)[0].roll[piano][on])
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: comp)
    assert main(["accompany", str(midi), "--track", "melody", "--renderer", "none", "--humanize", "1.5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--humanize 1.5: out of range (allowed: 0 to 1)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_accompany_as_another_track_and_with_audio(tmp_path):
    midi = _song(tmp_path / "in.mid")
    comp = FakeComposer()
    out = run(midi, tmp_path / "o", track="melody", as_track="bridge", composer=comp,
              timbre=FakeTimbreGenerator(clip_s=0.5))
    assert comp.accompany_calls[0]["track"] == 1
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert [i.name for i in song.instruments] == ["melody_2", "MELODY", "piano"]  # names stay distinct
    data, sr = sf.read(str(out / "song.wav"))
    assert sr == 16000 and np.abs(data).max() > 0.05


def test_accompany_errors(tmp_path, monkeypatch):
    midi = _song(tmp_path / "in.mid")
    comp = FakeComposer()
    with pytest.raises(UserError, match=r"in.mid: --track 'lead': no such track \(tracks: 'PIANO', 'MELODY'\)"):
        run(midi, tmp_path / "o", track="lead", composer=comp)
    with pytest.raises(UserError, match=r"--as 'bass': not a composer track \(allowed: melody, bridge, piano\)"):
        run(midi, tmp_path / "o", track="melody", as_track="bass", composer=comp)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"junk")
    with pytest.raises(UserError, match="bad.mid"):
        cli_main(["a", str(bad), "--track", "x", "--out", str(tmp_path / "o")])
    # the CLI checks the track before loading any model
    import pipeline.accompany as acc

    monkeypatch.setattr(acc, "load_composer", lambda *a: pytest.fail("loaded a model"))
    with pytest.raises(UserError, match="no such track"):
        cli_main(["a", str(midi), "--track", "lead", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_accompany_cli_with_fakes(tmp_path, monkeypatch):
    import pipeline.accompany as acc

    midi = _song(tmp_path / "in.mid")
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: FakeComposer())
    assert cli_main(["a", str(midi), "--track", "MELODY", "--out", str(tmp_path / "o"), "--renderer", "none",
                     "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["song.mid"]


def test_accompany_keeps_the_given_track_as_played_or_quantised(tmp_path, monkeypatch, capsys):
    import pipeline.accompany as acc

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    step = 60 / 120 / 4
    lead = pretty_midi.Instrument(73, name="LEAD")
    # a played line: each note up to a third of a step early or late, lengths off the grid
    for k, off in enumerate((0.1, -0.3, 0.25, 0.0, -0.2, 0.33, 0.05, -0.1)):
        lead.notes.append(pretty_midi.Note(60 + 7 * k, 64 + k, (4 * k + 1 + off) * step, (4 * k + 3.6 + off) * step))
    pm.instruments.append(lead)
    midi = tmp_path / "played.mid"
    pm.write(str(midi))
    src = pretty_midi.PrettyMIDI(str(midi)).instruments[0].notes
    comp = FakeComposer()
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: comp)
    outs = {}
    for mode in ("played", "grid"):
        args = ["a", str(midi), "--track", "LEAD", "--out", str(tmp_path / mode), "--renderer", "none"]
        assert cli_main(args + (["--given-timing", mode] if mode == "grid" else [])) == 0
        outs[mode] = pretty_midi.PrettyMIDI(str(tmp_path / mode / "song.mid"))
    assert _notes(outs["played"].instruments[0]) == [(n.pitch, n.velocity, round(n.start, 4), round(n.end, 4))
                                                     for n in src]
    grid = outs["grid"].instruments[0].notes
    assert [n.pitch for n in grid] == [n.pitch for n in src] and [n.velocity for n in grid] == [n.velocity for n in src]
    assert [round(n.start / step, 6) for n in grid] == [4 * k + 1 for k in range(8)]
    for k in (1, 2):   # the composed tracks are the same either way
        assert _notes(outs["played"].instruments[k]) == _notes(outs["grid"].instruments[k])
    with pytest.raises(SystemExit) as exc:
        cli_main(["a", str(midi), "--track", "LEAD", "--given-timing", "swung", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "invalid choice: 'swung'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _drummer():
    drums = FakeComposer(("drums",), styles=("funk", "rock"))
    # rock's snare (38) at 100 on its backbeat steps, 40 elsewhere; every other cell pooled at 70
    drums.velocity = {"steps_per_bar": 16, "tracks": {"drums": {"by": "pitch", "styles": {
        "*": {"*": [70] * 16}, "rock": {"38": [40, 40, 40, 40, 100] + [40] * 11}}}}}
    return drums


def test_accompany_adds_drums_in_the_genre_asked_for(tmp_path):
    midi = _song(tmp_path / "in.mid")   # 5 bars
    pm = pretty_midi.PrettyMIDI(str(midi))
    comp, drums = FakeComposer(), _drummer()
    plain, _ = accompany_midi(pm, comp, track="melody", seed=1, humanize=0.0)
    mt, ti = accompany_midi(pm, comp, track="melody", seed=1, humanize=0.0, drums=drums, drums_style="ROCK")
    assert mt.track_names == ["MELODY", "bridge", "piano", "drums"] and list(mt.track_map.drum_tracks) == [3]
    assert np.array_equal(mt.roll[:3], plain.roll[:3]) and np.array_equal(mt.onsets[:3], plain.onsets[:3])
    # the drummer's two phrases (8 bars) cut to the melody's 5, from the same seed and the style's label
    want = drums.compose(2, seed=1, style=1)[0, :5].numpy() > 0.5
    assert np.array_equal(mt.onsets[3], want) and drums.decode_calls[-1]["style"].tolist() == [1, 1]
    snare = mt.roll[3][..., 38 - 24]                                # [bars, steps]
    assert snare[:, 4].tolist() == [100] * 5 and snare[:, 12].tolist() == [40] * 5   # beats 2 and 4
    assert set(mt.roll[3][..., 36 - 24][mt.onsets[3][..., 36 - 24]].tolist()) == {70}   # the kick: pooled
    out = run(midi, tmp_path / "out", track="melody", composer=comp, seed=1, drums=drums, drums_style=" rock ")
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert [(i.name, i.is_drum) for i in song.instruments] == [("MELODY", False), ("bridge", False),
                                                               ("piano", False), ("drums", True)]
    assert len(song.instruments[3].notes) == int(mt.onsets[3].sum())
    # the drums card's kit keys are played as GM's: here the closed hi-hat (42) as the pedal one (44)
    drums.drum_keys = {42: 44}
    keyed, _ = accompany_midi(pm, comp, track="melody", seed=1, humanize=0.0, drums=drums, drums_style="rock")
    assert np.array_equal(keyed.onsets[3][..., 44 - 24], mt.onsets[3][..., 42 - 24])
    assert not keyed.onsets[3][..., 42 - 24].any() and np.array_equal(keyed.roll[:3], mt.roll[:3])


def test_accompany_drums_of_another_phrase_length_play_their_genres_timing(tmp_path):
    """A drums model of 2-bar phrases under a 5-bar melody: 3 phrases cut to 5 bars; the genre's
    mean offsets reach song.mid (each hit a fifth of a step early, the first clamped to 0)."""
    midi = _song(tmp_path / "in.mid")
    drums = FakeComposer(("drums",), n_bars=2, styles=("funk", "rock"))
    drums.velocity = {"steps_per_bar": 16, "tracks": {"drums": {"by": "pitch", "styles": {"*": {"*": [70] * 16}},
                                                                "timing": {"rock": {"*": [-0.2] * 16}}}}}
    comp = FakeComposer()
    mt, _ = accompany_midi(pretty_midi.PrettyMIDI(str(midi)), comp, track="melody", seed=2, drums=drums,
                           drums_style="rock")
    assert mt.n_bars == 5 and np.array_equal(mt.onsets[3], drums.compose(3, seed=2, style=1)[0, :5].numpy() > 0.5)
    assert np.all(mt.timing[3][mt.onsets[3]] == -0.2) and not mt.timing[:3].any()
    out = run(midi, tmp_path / "out", track="melody", composer=comp, seed=2, drums=drums, drums_style="rock")
    hits = pretty_midi.PrettyMIDI(str(out / "song.mid")).instruments[3].notes
    step = 60 / 90 / 4
    on = sorted({int(s) * 16 + int(k) for s, k, _ in np.argwhere(mt.onsets[3])})
    assert sorted({round(n.start, 3) for n in hits}) == [round(max(0.0, (k - 0.2) * step), 3) for k in on]
    # the piano played late: its last note, held to the last bar's end, ends there, not past it
    comp.velocity = {"steps_per_bar": 16, "tracks": {"piano": {"by": "step", "styles": {"*": {"*": [80] * 16}},
                                                               "timing": {"*": {"*": [0.4] * 16}}}}}
    late = run(midi, tmp_path / "late", track="melody", composer=comp, seed=2)
    piano = pretty_midi.PrettyMIDI(str(late / "song.mid")).instruments[2].notes
    assert max(n.end for n in piano) == pytest.approx(20 * 60 / 90, abs=1e-3)   # 5 bars of 4 beats at 90 bpm


def test_accompany_drums_need_a_drums_model_and_a_composer_without_drums(tmp_path):
    pm = pretty_midi.PrettyMIDI(str(_song(tmp_path / "in.mid")))
    # a drums model as the composer: nothing pitched to write, and its track is not for a melody
    with pytest.raises(UserError, match=r"^--weights: a drums model \(it writes only drum tracks\); accompany needs a "
                                        r"composer of pitched tracks, whose drums come from --drums STYLE$"):
        accompany_midi(pm, _drummer(), track="melody")
    with pytest.raises(UserError, match=r"^--as drums: a drum track of the composer; the given track is pitched "
                                        r"\(allowed: melody\)$"):
        accompany_midi(pm, FakeComposer(("melody", "drums")), track="melody", as_track="drums")
    with pytest.raises(UserError, match=r"^--weights: the composer writes only melody: it has no other track"):
        accompany_midi(pm, FakeComposer(("melody",)), track="melody")
    with pytest.raises(UserError, match=r"^--drums-weights: not a drums model \(its tracks: melody, bridge, piano\)$"):
        accompany_midi(pm, FakeComposer(), track="melody", drums=FakeComposer(), drums_style="pop")
    band = FakeComposer(("melody", "drums"))
    with pytest.raises(UserError, match=r"^--drums: the composer writes drums itself \(drums\)$"):
        accompany_midi(pm, band, track="melody", drums=_drummer(), drums_style="rock")


def test_accompany_drums_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys):
    import pipeline.accompany as acc
    from pipeline.cli import main
    from symbolic.generate import Composer

    midi = _song(tmp_path / "in.mid")
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: FakeComposer())
    monkeypatch.setattr(Composer, "load", classmethod(lambda cls, path, device="cpu": _drummer()))
    base = ["accompany", str(midi), "--track", "MELODY", "--renderer", "none", "--out", str(tmp_path / "o")]
    for extra, message in ((["--audio-weights", "a.safetensors"], "--audio-weights: --renderer none writes no audio"),
                           (["--drums", "disco"], "--drums: 'disco' is not allowed (allowed: funk, rock)"),
                           (["--drums-weights", "x"], "--drums-weights: give the drums' genre too (--drums STYLE"),
                           (["--drums", "rock", "--drums-weights", str(tmp_path / "none.safetensors")],
                            "--drums-weights: " + str(tmp_path / "none.safetensors") + ": no such weights file")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "o").exists()
    assert main(base + ["--drums", "funk"]) == 0
    assert [i.is_drum for i in pretty_midi.PrettyMIDI(str(tmp_path / "o" / "song.mid")).instruments][-1]


def test_missing_weights_name_the_flag_that_gave_them(tmp_path, capsys):
    from pipeline.cli import main

    midi = _song(tmp_path / "in.mid")
    nope = str(tmp_path / "nope.safetensors")
    out = tmp_path / "o"
    for flag, argv in (("--weights", ["accompany", str(midi), "--track", "MELODY", "--renderer", "none",
                                      "--out", str(out)]),
                       ("--audio-weights", ["accompany", str(midi), "--track", "MELODY", "--out", str(out)]),
                       ("--weights", ["render", str(midi), "--out", str(tmp_path / "o.wav")])):
        assert main(argv + [flag, nope]) == 2
        err = capsys.readouterr().err
        assert f"error: {flag}: {nope}: no such weights file" in err and f"or point {flag} at" in err, err
        assert not out.exists() and not (tmp_path / "o.wav").exists()


def test_a_last_note_played_just_before_a_bar_line_adds_no_bar(tmp_path):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    lead = pretty_midi.Instrument(73, name="LEAD")
    beat = 0.5
    lead.notes += [pretty_midi.Note(90, 60, 0, beat), pretty_midi.Note(90, 64, 15.9 * beat, 16 * beat)]
    pm.instruments.append(lead)
    midi = tmp_path / "in.mid"
    pm.write(str(midi))
    mt, _ = accompany_midi(pretty_midi.PrettyMIDI(str(midi)), FakeComposer(), track="LEAD")
    assert mt.n_bars == 4                              # 16 beats; the last note rounds onto beat 16 (bar 5)
    out = run(midi, tmp_path / "out", track="LEAD", composer=FakeComposer())
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert max(n.end for i in song.instruments[1:] for n in i.notes) <= 16 * beat + 1e-6
    assert _notes(song.instruments[0]) == _notes(pretty_midi.PrettyMIDI(str(midi)).instruments[0])   # as played
    # a note that really sounds into the next bar keeps that bar
    lead.notes[-1] = pretty_midi.Note(90, 64, 15.9 * beat, 17 * beat)
    pm.write(str(midi))
    assert accompany_midi(pretty_midi.PrettyMIDI(str(midi)), FakeComposer(), track="LEAD")[0].n_bars == 5


def test_chords_start_at_the_first_whole_bar_after_a_pickup(tmp_path):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes += [pretty_midi.TimeSignature(1, 4, 0.0), pretty_midi.TimeSignature(4, 4, 0.5)]
    lead = pretty_midi.Instrument(73, name="LEAD")
    lead.notes += [pretty_midi.Note(90, 67, 0.5 * k, 0.5 * k + 0.4) for k in range(9)]   # pickup + 2 bars
    pm.instruments.append(lead)
    midi = tmp_path / "in.mid"
    pm.write(str(midi))
    comp = FakeComposer()
    mt, _ = accompany_midi(pretty_midi.PrettyMIDI(str(midi)), comp, track="LEAD", chords="C F#")
    got = comp.accompany_chords[-1]                                  # [bars, beats, 12]
    assert mt.n_bars == 3 and got.shape[0] == 3
    assert [torch.nonzero(got[b, 0]).flatten().tolist() for b in range(3)] == [[0, 4, 7], [0, 4, 7], [1, 6, 10]]


def _unnamed_song(path: Path) -> Path:
    """Two instruments without names and the same program (73), and a named piano; 90 bpm."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=90)
    step = 60 / 90 / 4
    decoy = pretty_midi.Instrument(73)  # no name
    decoy.notes.append(pretty_midi.Note(90, 84, 0, 8 * step))
    lead = pretty_midi.Instrument(73)  # no name either: the one we give
    for k in range(8):  # 8 notes of 2 steps every 4 steps: 2 bars
        lead.notes.append(pretty_midi.Note(60 + 5 * k, 62 + k, 4 * k * step, (4 * k + 2) * step))
    piano = pretty_midi.Instrument(0, name="PIANO")
    piano.notes.append(pretty_midi.Note(80, 48, 0, 1))
    pm.instruments += [decoy, lead, piano]
    pm.write(str(path))
    return path


def _notes(inst):
    return [(n.pitch, n.velocity, round(n.start, 4), round(n.end, 4)) for n in inst.notes]


def test_accompany_an_unnamed_track_by_index(tmp_path, monkeypatch):
    import pipeline.accompany as acc

    midi = _unnamed_song(tmp_path / "in.mid")
    pm = pretty_midi.PrettyMIDI(str(midi))
    assert [i.name for i in pm.instruments] == ["", "", "PIANO"]
    comp = FakeComposer()
    # "#1" takes instrument 1 alone: not instrument 0, which has the same (empty) name and program
    mt, ti = accompany_midi(pm, comp, track="#1", seed=2, source="in.mid")
    assert ti == 0 and mt.track_names == ["melody", "bridge", "piano"] and mt.n_bars == 2
    assert comp.accompany_calls == [{"track": 0, "seed": 2, "bars": 2}]
    assert [(n.pitch, n.start, n.end, n.velocity) for n in mt.notes() if n.track == 0] == \
        [(62 + k, 4 * k, 4 * k + 2, 60 + 5 * k) for k in range(8)]
    # a plain index works too, and through the CLI
    assert accompany_midi(pm, FakeComposer(), track="1", seed=2)[0].roll[0].tolist() == mt.roll[0].tolist()
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: FakeComposer())
    out = tmp_path / "o"
    assert cli_main(["a", str(midi), "--track", "#1", "--out", str(out), "--renderer", "none", "--seed", "2",
                     "--device", "cpu"]) == 0
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    assert [i.name for i in song.instruments] == ["melody", "bridge", "piano"]
    assert song.instruments[0].program == 73
    assert _notes(song.instruments[0]) == _notes(pm.instruments[1])


def test_accompany_takes_only_the_named_track(tmp_path):
    """A name selects that instrument alone, not others whose name starts the same way."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    first = pretty_midi.Instrument(0, name="MELODY")
    first.notes.append(pretty_midi.Note(100, 60, 0.0, 0.5))
    second = pretty_midi.Instrument(0, name="MELODY 2")
    second.notes.append(pretty_midi.Note(100, 67, 1.0, 1.5))
    pm.instruments += [first, second]
    mt, _ = accompany_midi(pm, FakeComposer(), track="melody", seed=0)
    assert [(n.pitch, n.start, n.end) for n in mt.notes() if n.track == 0] == [(60, 0, 4)]
    mt2, _ = accompany_midi(pm, FakeComposer(), track="Melody 2", seed=0)
    assert [(n.pitch, n.start, n.end) for n in mt2.notes() if n.track == 0] == [(67, 8, 12)]
    assert mt2.track_names[0] == "MELODY 2"


def test_unknown_track_lists_the_tracks_present(tmp_path, monkeypatch):
    import pipeline.accompany as acc

    midi = _unnamed_song(tmp_path / "in.mid")
    monkeypatch.setattr(acc, "load_composer", lambda *a: pytest.fail("loaded a model"))
    listing = (r"in.mid: --track 'lead': no such track \(tracks: #0 \(no name, program 73\), "
               r"#1 \(no name, program 73\), 'PIANO'\); give a name, or #N")
    with pytest.raises(UserError, match=listing):
        cli_main(["a", str(midi), "--track", "lead", "--out", str(tmp_path / "o")])
    for bad in ("#3", "3", "#-1", "#"):
        with pytest.raises(UserError, match=rf"--track '{bad}': no such track \(tracks: #0"):
            cli_main(["a", str(midi), "--track", bad, "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    # a track without notes, and one whose notes are all outside the composer's range
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.instruments.append(pretty_midi.Instrument(0, name="EMPTY"))
    high = pretty_midi.Instrument(0, name="HIGH")
    high.notes.append(pretty_midi.Note(100, 120, 0.0, 0.5))
    pm.instruments.append(high)
    with pytest.raises(UserError, match=r"x.mid: --track 'empty': the track has no notes"):
        accompany_midi(pm, FakeComposer(), track="empty", source="x.mid")
    with pytest.raises(UserError, match=r"--track 'HIGH': none of its 1 notes is inside the composer's pitch "
                                        r"range 24-107"):
        accompany_midi(pm, FakeComposer(), track="HIGH", source="x.mid")


def test_parse_chords_one_per_bar_repeated_or_one_per_beat():
    from pipeline.accompany import parse_chords

    c = parse_chords("C Am, F G", bars=6, beats_per_bar=4)
    assert c.shape == (6, 4, 12) and c.dtype == np.float32
    pcs = [sorted(np.flatnonzero(c[b, 0]).tolist()) for b in range(6)]
    assert pcs == [[0, 4, 7], [0, 4, 9], [0, 5, 9], [2, 7, 11], [0, 4, 7], [0, 4, 9]]  # C Am F G C Am
    assert all(np.array_equal(c[b, 0], c[b, k]) for b in range(6) for k in range(4))
    beats = parse_chords(" ".join(["C"] * 4 + ["N", "G7", "G7", "G7"]), bars=2, beats_per_bar=4)
    assert np.flatnonzero(beats[1, 1]).tolist() == [2, 5, 7, 11] and not beats[1, 0].any()
    with pytest.raises(UserError, match=r"--chords: 'Hm' is not a chord symbol \(e.g. 'C', 'Am'"):
        parse_chords("C Hm", bars=2, beats_per_bar=4)
    with pytest.raises(UserError, match="--chords: expected chord symbols such as 'C Am F G', got nothing"):
        parse_chords(" , ", bars=2, beats_per_bar=4)
    # with a one-beat pickup (bar 0 starts 3 beats before the file): the list starts at the first whole
    # bar, the pickup takes its first chord; one per beat counts the file's beats (1 + 4)
    c = parse_chords("C F", bars=3, beats_per_bar=4, pickup_beats=3.0)
    assert [np.flatnonzero(c[b, 0]).tolist() for b in range(3)] == [[0, 4, 7], [0, 4, 7], [0, 5, 9]]
    beats = parse_chords("G C C C C", bars=2, beats_per_bar=4, pickup_beats=3.0)
    assert [np.flatnonzero(beats[0, k]).tolist() for k in range(4)] == [[2, 7, 11]] * 4   # hidden beats: G too
    assert all(np.flatnonzero(beats[1, k]).tolist() == [0, 4, 7] for k in range(4))
    with pytest.raises(UserError, match=r"^--chords: 3 chords for a track of 2 bars after its pickup: give one per "
                                        r"bar \(2 or fewer, repeated as the bars need\) or one per beat \(9\)$"):
        parse_chords("C F G", bars=3, beats_per_bar=4, pickup_beats=3.0)
    # more chords than bars, other than one per beat: refused rather than cut
    for n in (3, 7, 40):
        with pytest.raises(UserError, match=rf"^--chords: {n} chords for a track of 2 bars: give one per bar "
                                            r"\(2 or fewer, repeated as the bars need\) or one per beat \(8\)$"):
            parse_chords(" ".join(["C"] * n), bars=2, beats_per_bar=4)


def test_accompany_with_chords_passes_them_to_the_composer(tmp_path, monkeypatch):
    import pipeline.accompany as acc

    midi = _song(tmp_path / "in.mid")
    comp = FakeComposer()
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: comp)
    assert cli_main(["a", str(midi), "--track", "MELODY", "--out", str(tmp_path / "o"), "--renderer", "none",
                     "--device", "cpu", "--chords", "Dm G"]) == 0
    (chords,) = comp.accompany_chords
    assert chords.shape == (5, 4, 12)
    assert [np.flatnonzero(chords[b, 0].numpy()).tolist() for b in range(5)] == [[2, 5, 9], [2, 7, 11]] * 2 + [[2, 5, 9]]
    # the fake follows the chords it is given: none, other notes
    plain = FakeComposer()
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: plain)
    assert cli_main(["a", str(midi), "--track", "MELODY", "--out", str(tmp_path / "p"), "--renderer", "none",
                     "--device", "cpu", "--chords", "none"]) == 0
    assert plain.accompany_chords == [None]
    assert (tmp_path / "o" / "song.mid").read_bytes() != (tmp_path / "p" / "song.mid").read_bytes()
    # by default the chords are estimated from the given track's notes
    auto = FakeComposer()
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: auto)
    assert cli_main(["a", str(midi), "--track", "MELODY", "--out", str(tmp_path / "q"), "--renderer", "none",
                     "--device", "cpu"]) == 0
    from symbolic.chords import estimate_chords
    from symbolic.roll import Grid, midi_to_multitrack
    from symbolic.trackmap import TrackMap, TrackSpec

    grid = Grid()
    given = midi_to_multitrack(acc.only_instrument(pretty_midi.PrettyMIDI(str(midi)), 1),
                               TrackMap((TrackSpec("melody", 73, programs=((0, 127),)),), name="g"), grid)
    want = estimate_chords(given.roll[0], grid.lowest_pitch, grid.steps_per_beat, grid.beats_per_bar)
    assert want.any() and np.array_equal(auto.accompany_chords[0].numpy(), want)


def test_accompany_bad_chords_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys):
    import pipeline.accompany as acc
    from pipeline.cli import main

    midi = _song(tmp_path / "in.mid")
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: FakeComposer())
    assert main(["accompany", str(midi), "--track", "MELODY", "--out", str(tmp_path / "o"), "--renderer", "none",
                 "--device", "cpu", "--chords", "C Xyz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--chords: 'Xyz' is not a chord symbol" in err[0]
    assert not (tmp_path / "o").exists()
    # a typo among too many chords is named as a typo, not counted (found by QA)
    assert main(["accompany", str(midi), "--track", "MELODY", "--out", str(tmp_path / "o"), "--renderer", "none",
                 "--device", "cpu", "--chords", "C Am F G C Am F x"]) == 2
    assert "--chords: 'x' is not a chord symbol" in capsys.readouterr().err


def test_accompany_refuses_a_folder_of_the_users_where_its_files_go(tmp_path, monkeypatch, capsys):
    """A folder named song.mid or song.wav in --out was deleted with the user's files in it (found by QA)."""
    import pipeline.accompany as acc
    from pipeline.cli import main

    midi = _song(tmp_path / "in.mid")
    monkeypatch.setattr(acc, "load_composer", lambda weights, device: FakeComposer())
    for name in ("song.mid", "song.wav"):
        out = tmp_path / f"o-{name}"
        (out / name).mkdir(parents=True)
        (out / name / "mine.txt").write_text("keep")
        assert main(["accompany", str(midi), "--track", "MELODY", "--out", str(out), "--renderer", "none",
                     "--device", "cpu"]) == 2
        assert f"{out / name}: holds files this command did not write (mine.txt)" in capsys.readouterr().err
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [name, f"{name}/mine.txt"]


def test_the_default_weights_are_the_accompanist_when_it_is_there(tmp_path, monkeypatch):
    import pipeline.accompany as acc

    seen = []

    class Loader:
        @staticmethod
        def load(path, device):
            seen.append(Path(path).name)
            return FakeComposer()

    monkeypatch.setattr("symbolic.generate.Composer", Loader)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("pipeline.config.PROJECT_ROOT", tmp_path)
    (tmp_path / "data" / "pretrained").mkdir(parents=True)
    (tmp_path / acc.DEFAULT_SYMBOLIC_WEIGHTS).write_bytes(b"x")
    acc.load_composer(None, "cpu")
    (tmp_path / acc.DEFAULT_ACCOMPANY_WEIGHTS).write_bytes(b"x")
    acc.load_composer(None, "cpu")
    acc.load_composer(acc.DEFAULT_SYMBOLIC_WEIGHTS, "cpu")
    assert seen == ["symbolic_pop909.safetensors", "symbolic_pop909_accompany.safetensors",
                    "symbolic_pop909.safetensors"]


def test_accompany_refuses_to_write_over_its_input_an_ambiguous_track_and_hours(tmp_path, monkeypatch):
    """From QA: ``accompany song.mid --out .`` replaced the user's own file; a name two tracks
    share took the first silently; a stray note at 100 min composed 100 minutes (7.7 GB)."""
    import pipeline.accompany as acc

    monkeypatch.setattr(acc, "load_composer", lambda weights, device: FakeComposer())
    here = tmp_path / "v"
    here.mkdir()
    midi = _song(here / "song.mid")
    before = midi.read_bytes()
    with pytest.raises(UserError, match=r"would write over the MIDI file .*song.mid itself; give another folder"):
        cli_main(["a", str(midi), "--track", "MELODY", "--out", str(here), "--renderer", "none"])
    with pytest.raises(UserError, match="would write over"):
        run(midi, here, track="MELODY", composer=FakeComposer())
    assert midi.read_bytes() == before
    twice = pretty_midi.PrettyMIDI(str(midi))
    twice.instruments[0].name = "MELODY"
    twice.write(str(tmp_path / "twice.mid"))
    with pytest.raises(UserError, match=r"--track 'melody': 2 tracks have that name \(#0 .*#1 .*\); give #N"):
        cli_main(["a", str(tmp_path / "twice.mid"), "--track", "melody", "--out", str(tmp_path / "o")])
    assert cli_main(["a", str(tmp_path / "twice.mid"), "--track", "#1", "--out", str(tmp_path / "o"),
                     "--renderer", "none"]) == 0
    # from fuzzing: tracks all named "#0" left no way to pick one: the index is taken then
    hashes = pretty_midi.PrettyMIDI(str(midi))
    for inst in hashes.instruments:
        inst.name = "#0"
    hashes.write(str(tmp_path / "hashes.mid"))
    from pipeline.accompany import select_instrument

    assert select_instrument(pretty_midi.PrettyMIDI(str(tmp_path / "hashes.mid")), "#1", "hashes.mid") == 1
    assert select_instrument(pretty_midi.PrettyMIDI(str(tmp_path / "hashes.mid")), "#0", "hashes.mid") == 0
    fives = pretty_midi.PrettyMIDI(str(midi))
    for inst in fives.instruments:
        inst.name = "1"
    with pytest.raises(UserError, match="2 tracks have that name"):   # no '#': a name, never an index
        select_instrument(fives, "1", "fives.mid")
    long = pretty_midi.PrettyMIDI(str(midi))
    long.instruments[1].notes.append(pretty_midi.Note(80, 60, 6000.0, 6000.5))
    long.write(str(tmp_path / "long.mid"))
    with pytest.raises(UserError, match=r"long.mid: lasts 1.7 hours; accompany takes files of up to 90 minutes"):
        cli_main(["a", str(tmp_path / "long.mid"), "--track", "MELODY", "--out", str(tmp_path / "l")])
    assert not (tmp_path / "l").exists()
