from __future__ import annotations

import shutil

import numpy as np
import pytest

from audio import fluid
from audio.fluid import NoteSpec, find_soundfont, fluidsynth_available, render_midi, render_note, render_notes
from pipeline.errors import UserError


def _has_timgm() -> bool:
    try:
        find_soundfont("timgm6mb")
        return True
    except UserError:
        return False


SF = "timgm6mb"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def test_find_soundfont_by_path(tmp_path):
    sf2 = tmp_path / "mine.sf2"
    sf2.write_bytes(b"RIFF")
    assert find_soundfont(sf2) == sf2
    assert find_soundfont(str(sf2)) == sf2


def test_find_soundfont_missing_path(tmp_path):
    with pytest.raises(UserError, match="nope.sf2: SoundFont file not found"):
        find_soundfont(tmp_path / "nope.sf2")


def test_find_soundfont_unknown_name():
    with pytest.raises(UserError, match="unknown name.*fluidr3_gm.*timgm6mb"):
        find_soundfont("grandpianos")


def test_find_soundfont_not_installed_says_where_and_how(monkeypatch, tmp_path):
    monkeypatch.setattr(fluid, "SOUNDFONT_DIRS", (str(tmp_path / "a"), str(tmp_path / "b")))
    monkeypatch.delenv("SOUNDFONT_PATH", raising=False)
    with pytest.raises(UserError) as info:
        find_soundfont()
    message = str(info.value)
    assert "FluidR3_GM.sf2" in message and str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "apt-get install fluid-soundfont-gm" in message
    with pytest.raises(UserError, match="apt-get install timgm6mb-soundfont"):
        find_soundfont("TimGM6mb")


def test_soundfont_path_env(monkeypatch, tmp_path):
    (tmp_path / "TimGM6mb.sf2").write_bytes(b"RIFF")
    monkeypatch.setenv("SOUNDFONT_PATH", str(tmp_path))
    assert find_soundfont("timgm6mb") == tmp_path / "TimGM6mb.sf2"


def test_missing_fluidsynth_program(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not fluidsynth_available()
    with pytest.raises(UserError, match="apt-get install fluidsynth"):
        render_notes([NoteSpec(0, 60, 100)], soundfont=__file__)


@pytest.mark.parametrize("spec,field", [(NoteSpec(0, 128, 100), "pitch"), (NoteSpec(0, 60, 0), "velocity"),
                                        (NoteSpec(130, 60, 100), "program")])
def test_bad_specs(spec, field):
    with pytest.raises(UserError, match=field):
        render_notes([spec], soundfont=__file__)


def test_slot_quantum():
    # whole milliseconds that are also whole 64-sample blocks
    assert fluid._slot_quantum_ms(16000) == 4
    assert fluid._slot_quantum_ms(48000) == 4
    q = fluid._slot_quantum_ms(44100)
    assert (q * 44100) % (1000 * 64) == 0 and q == 640


def test_empty():
    assert render_notes([]) == []


@pytest.mark.fluidsynth
@pytest.mark.skipif(not (fluidsynth_available() and _has_timgm()), reason="fluidsynth or TimGM6mb.sf2 missing")
class TestRendering:
    def test_length_dtype_onset(self):
        x = render_note(0, 60, 100, hold_s=0.5, release_s=0.25, soundfont=SF)
        assert x.dtype == np.float32 and x.shape == (12000,), (x.dtype, x.shape)
        onset = int(np.argmax(np.abs(x) > 1e-4))
        assert onset < 64, onset  # the note starts at sample 0 (attack aside), not a block late
        assert 0.01 < np.abs(x).max() < 1.0

    def test_pitch_is_right(self):
        # Flute at A4 (MIDI 69) at 16 and 44.1 kHz: strongest partial at the fundamental.
        x = render_note(73, 69, 100, hold_s=1.0, release_s=0.0, soundfont=SF)
        assert abs(_peak_hz(x[4000:], 16000) - 440.0) < 8
        y = render_note(73, 69, 100, hold_s=1.0, release_s=0.0, soundfont=SF, sample_rate=44100)
        assert y.shape == (44100,)
        assert abs(_peak_hz(y[11025:], 44100) - 440.0) < 5
        z = render_note(73, 81, 100, hold_s=1.0, release_s=0.0, soundfont=SF)
        assert abs(_peak_hz(z[4000:], 16000) - 880.0) < 8

    def test_same_note_same_samples_in_any_slot_or_batch(self):
        specs = [NoteSpec(p, 60, 110, hold_s=0.4, release_s=0.2) for p in (0, 16, 40, 73)]
        specs.append(NoteSpec(0, 38, 110, hold_s=0.4, release_s=0.2, is_drum=True))
        a = render_notes(specs, soundfont=SF, workers=1)
        b = render_notes(specs[::-1], soundfont=SF, workers=2)[::-1]
        c = render_notes(specs, soundfont=SF, workers=1, batch_size=2)
        for x, y, z, spec in zip(a, b, c, specs):
            assert np.abs(x - y).max() < 1e-4, spec
            assert np.abs(x - z).max() < 1e-4, spec
        again = render_notes(specs, soundfont=SF, workers=1)
        assert all(np.array_equal(x, y) for x, y in zip(a, again))  # deterministic

    def test_note_off_and_release(self):
        # An organ sustains while held and stops after the note-off.
        x = render_note(16, 60, 100, hold_s=0.5, release_s=0.5, soundfont=SF)
        held, tail = x[2000:8000], x[-2000:]
        assert _rms(held) > 0.01
        assert _rms(tail) < 0.05 * _rms(held)

    def test_neighbouring_notes_do_not_leak(self):
        # A silent-velocity-1 neighbour: the loud note before it must not ring into its slot.
        loud = NoteSpec(19, 48, 127, hold_s=0.3, release_s=0.0)
        quiet = NoteSpec(0, 60, 1, hold_s=0.3, release_s=0.3)
        out = render_notes([loud, quiet], soundfont=SF, workers=1)
        alone = render_notes([quiet], soundfont=SF, workers=1)[0]
        assert np.abs(out[1] - alone).max() < 1e-4

    def test_velocity_scales_loudness(self):
        soft, loud = render_notes([NoteSpec(0, 60, 40, 0.5, 0.0), NoteSpec(0, 60, 127, 0.5, 0.0)], soundfont=SF)
        assert _rms(loud) > 2 * _rms(soft)

    def test_drums_use_the_percussion_channel(self):
        snare, piano = render_notes([NoteSpec(0, 38, 100, 0.3, 0.2, is_drum=True), NoteSpec(0, 38, 100, 0.3, 0.2)],
                                    soundfont=SF)
        assert _rms(snare) > 0.005
        assert np.abs(snare - piano).max() > 0.05

    def test_progress_bar(self, capsys):
        out = render_notes([NoteSpec(0, 60, 100, 0.2, 0.0)] * 3, soundfont=SF, progress=True)
        assert len(out) == 3
        assert "3/3" in capsys.readouterr().err

    def test_render_midi(self, tmp_path):
        import pretty_midi
        import soundfile as sf

        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        inst.notes += [pretty_midi.Note(velocity=127, pitch=p, start=0.0, end=0.5) for p in (48, 52, 55, 60, 64)]
        pm.instruments.append(inst)
        midi_path = tmp_path / "chord.mid"
        pm.write(str(midi_path))
        out = render_midi(midi_path, tmp_path / "out" / "chord.wav", sample_rate=22050, soundfont=SF, gain=5.0)
        audio, sr = sf.read(str(out), dtype="float32", always_2d=True)
        assert sr == 22050 and audio.shape[1] == 2 and audio.shape[0] >= 0.5 * sr
        peak = np.abs(audio).max()
        assert 0.8 < peak <= 10 ** (-1 / 20) + 1e-3  # loud gain, scaled below -1 dBFS, no clipping
        assert [p.name for p in out.parent.iterdir()] == ["chord.wav"]  # no temporary left behind

    def test_render_midi_bad_input(self, tmp_path):
        bad = tmp_path / "bad.mid"
        bad.write_bytes(b"not midi")
        with pytest.raises(UserError, match="bad.mid: not a standard MIDI file"):
            render_midi(bad, tmp_path / "x.wav", soundfont=SF)
        with pytest.raises(UserError, match="missing.mid: MIDI file not found"):
            render_midi(tmp_path / "missing.mid", tmp_path / "x.wav", soundfont=SF)
        assert not (tmp_path / "x.wav").exists()


def test_find_soundfont_names_and_paths_are_distinct(tmp_path, monkeypatch):
    # A path that does not exist is an error even when its file name is a known SoundFont.
    with pytest.raises(UserError, match="SoundFont file not found"):
        find_soundfont(tmp_path / "FluidR3_GM.sf2")
    # A bare known file name is looked up in the usual folders.
    (tmp_path / "TimGM6mb.sf2").write_bytes(b"RIFF")
    monkeypatch.setenv("SOUNDFONT_PATH", str(tmp_path))
    assert find_soundfont("TimGM6mb.sf2") == tmp_path / "TimGM6mb.sf2"
    with pytest.raises(UserError, match="other.sf2: SoundFont file not found"):
        find_soundfont("other.sf2")
