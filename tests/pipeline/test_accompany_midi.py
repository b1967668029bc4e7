"""``musegansynth accompany``: the given track stays as it was, the composer adds the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

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
