"""``musegansynth render``: any MIDI voiced by the timbre model; program mapping; bad MIDI files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from fakes import FakeTimbreGenerator
from pipeline.errors import UserError
from pipeline.render import cli_main, nearest_program, program_mapper, render_file

ROOT = Path(__file__).resolve().parents[2]


def _midi(path: Path, programs=(0, 1), drums=True) -> Path:
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for k, prog in enumerate(programs):
        inst = pretty_midi.Instrument(prog, name=f"part{k}")
        for j in range(6):
            inst.notes.append(pretty_midi.Note(90, 60 + 4 * k + j, 0.25 * j, 0.25 * j + 0.2))
        pm.instruments.append(inst)
    if drums:
        d = pretty_midi.Instrument(0, is_drum=True, name="kit")
        d.notes += [pretty_midi.Note(100, 36, 0.0, 0.1), pretty_midi.Note(100, 38, 0.5, 0.6)]
        pm.instruments.append(d)
    pm.write(str(path))
    return path


@pytest.fixture
def fake_timbre(monkeypatch):
    import pipeline.render as render

    gen = FakeTimbreGenerator(clip_s=0.5)
    gen.programs = [0, 24, 40, 128]
    monkeypatch.setattr(render, "load_timbre", lambda weights, device, key="--weights": gen)
    return gen


def test_nearest_program_prefers_the_family():
    known = [0, 24, 40, 56]
    assert nearest_program(0, known) == 0
    assert nearest_program(6, known) == 0  # harpsichord -> piano (keyboard)
    assert nearest_program(30, known) == 24  # guitar family
    assert nearest_program(33, known) == 40  # bass: no bass known, nearest number
    assert nearest_program(48, known) == 40  # string ensemble -> violin (string)


def test_program_mapper_warns_once_per_program(capsys):
    gen = FakeTimbreGenerator()
    gen.programs = [0, 24, 128]
    mapper = program_mapper(gen)
    assert [mapper(p) for p in (1, 1, 1, 0, 25)] == [0, 0, 0, 0, 24]
    assert mapper(36, True) == 36  # drum kits pass
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "program 1 (Bright Acoustic Piano)" in err[0] and "as 0 (Acoustic Grand Piano)" in err[0]
    gen.programs = []  # a model that does not list its programs: only inexact families warn
    mapper = program_mapper(gen)
    assert mapper(5) == 5 and mapper(122) == 122
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "program 122" in err[0]


def test_render_cli_writes_a_wav(tmp_path, fake_timbre, capsys):
    midi = _midi(tmp_path / "in.mid")
    assert cli_main(["musegansynth render", str(midi), "--device", "cpu"]) == 0
    wav = tmp_path / "in.wav"
    data, sr = sf.read(str(wav))
    assert sr == 16000 and data.ndim == 1
    assert len(data) == int(np.ceil((1.45 + 0.3) * sr))  # last note-off + release
    assert 0.05 < np.abs(data).max() <= 10 ** (-1 / 20) + 1e-4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "program 1 " in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mid", "in.wav"]


def test_render_names_what_the_timbre_model_does_not_play(tmp_path, fake_timbre, capsys):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0, name="p")
    inst.notes += [pretty_midi.Note(90, 60, 0.0, 0.5), pretty_midi.Note(90, 64, 0.5, 10.0)]   # 9.5 s: cut at 8
    inst.pitch_bends += [pretty_midi.PitchBend(2000, 0.1), pretty_midi.PitchBend(0, 0.3)]       # one bend, one reset
    inst.control_changes += [pretty_midi.ControlChange(64, 127, 0.0), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "b.mid"))
    assert cli_main(["musegansynth render", str(tmp_path / "b.mid"), "--device", "cpu"]) == 0
    assert capsys.readouterr().err == ("musegansynth: note: the timbre model does not play as written: 1 pitch bend, "
                                       "the sustain pedal (1 press), 1 note past 8 s (cut there) (render --renderer fluidsynth "
                                       "plays them as a General MIDI synthesizer does)\n")
    # notes outside the pitches it learnt (moved by octaves) and drum keys it did not learn (left out)
    fake_timbre.pitch_vocab = {"pitched": list(range(24, 97)), "drums": [36, 38]}
    odd = pretty_midi.PrettyMIDI(initial_tempo=120)
    keys, kit = pretty_midi.Instrument(0, name="k"), pretty_midi.Instrument(0, is_drum=True, name="d")
    keys.notes += [pretty_midi.Note(90, p, 0.5 * i, 0.5 * i + 0.4) for i, p in enumerate((12, 60, 100, 110, 120))]
    kit.notes += [pretty_midi.Note(90, p, 0.5 * i, 0.5 * i + 0.1) for i, p in enumerate((36, 20, 71))]
    odd.instruments += [keys, kit]
    odd.write(str(tmp_path / "odd.mid"))
    assert cli_main(["musegansynth render", str(tmp_path / "odd.mid"), "--device", "cpu"]) == 0
    assert capsys.readouterr().err == ("musegansynth: note: the timbre model does not play as written: 3 notes outside MIDI "
                                       "24-96 (resampled from octaves it learnt: their timbre moves too), 1 note above MIDI 117, more than its "
                                       "16000 Hz can hold (played octaves down), 2 drum hits on keys it did not learn (left "
                                       "out) (render --renderer fluidsynth plays them as a General MIDI synthesizer "
                                       "does)\n")
    assert cli_main(["musegansynth render", str(_midi(tmp_path / "plain.mid", programs=(0,))), "--device", "cpu"]) == 0
    assert capsys.readouterr().err == ""


def test_render_is_reproducible(tmp_path, fake_timbre):
    midi = _midi(tmp_path / "in.mid")
    a = render_file(midi, tmp_path / "a.wav", timbre=fake_timbre)
    other = FakeTimbreGenerator(clip_s=0.5)
    other.programs = list(fake_timbre.programs)
    b = render_file(midi, tmp_path / "b.wav", timbre=other)
    assert np.array_equal(sf.read(str(a), dtype="int16")[0], sf.read(str(b), dtype="int16")[0])


def test_unreadable_midi_is_a_user_error(tmp_path, fake_timbre):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd nonsense")
    with pytest.raises(UserError, match="bad.mid"):
        cli_main(["r", str(bad), "--out", str(tmp_path / "x.wav")])
    with pytest.raises(UserError, match="nothere.mid"):
        cli_main(["r", str(tmp_path / "nothere.mid")])
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(UserError, match="no notes"):
        cli_main(["r", str(empty), "--out", str(tmp_path / "e.wav")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mid", "empty.mid"]


def test_unreadable_midi_subprocess(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"\x00\x01garbage")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "render", str(bad), "--out", str(tmp_path / "o.wav")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.mid" in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mid"]


@pytest.mark.fluidsynth
def test_render_with_fluidsynth(tmp_path):
    from audio.fluid import fluidsynth_available

    if not fluidsynth_available():
        pytest.skip("fluidsynth is not installed")
    midi = _midi(tmp_path / "in.mid", programs=(0,), drums=False)
    assert cli_main(["r", str(midi), "--renderer", "fluidsynth", "--out", str(tmp_path / "f.wav")]) == 0
    data, sr = sf.read(str(tmp_path / "f.wav"))
    assert sr == 44100 and np.abs(data).max() > 0.01
    # mastered like the neural path: at the target loudness (FluidSynth's own output sat ~16 dB under)
    from audio.mix import TARGET_DB, loudness_db

    assert abs(loudness_db(np.atleast_2d(data.T), sr) - TARGET_DB) < 1.5
    assert cli_main(["r", str(midi), "--renderer", "fluidsynth", "--sample-rate", "22050",
                     "--out", str(tmp_path / "g.flac")]) == 0
    low, sr = sf.read(str(tmp_path / "g.flac"))
    assert sr == 22050 and abs(len(low) - len(data) / 2) <= 1024 and np.abs(low).max() > 0.01


def test_render_sample_rate_is_checked_before_anything_is_written(tmp_path, fake_timbre):
    midi = _midi(tmp_path / "in.mid")
    with pytest.raises(UserError, match=r"^--sample-rate 44100: the timbre model renders at 16000 Hz only"):
        cli_main(["r", str(midi), "--sample-rate", "44100", "--device", "cpu"])
    for bad in ("100", "200000"):
        with pytest.raises(UserError, match=rf"^--sample-rate {bad}: out of range \(FluidSynth renders at 8000 to 96000 Hz\)"):
            cli_main(["r", str(midi), "--renderer", "fluidsynth", "--sample-rate", bad])
    assert cli_main(["r", str(midi), "--sample-rate", "16000", "--device", "cpu"]) == 0  # the model's own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mid", "in.wav"]


def test_render_refuses_what_it_cannot_do_by_name(tmp_path, fake_timbre):
    """From QA: an empty --out wrote the default name, ".wav" was "type '(none)'", a MIDI file as
    --weights was "simple.mid.safetensors: not found", --seed and --weights did nothing with
    FluidSynth, a stray note hours late ran out of memory, an SMPTE file said nothing of SMPTE."""
    midi = _midi(tmp_path / "in.mid")
    for argv, says in [
        (["--out", ""], "--out '': an empty path is not a file name"),
        (["--out", str(tmp_path / ".wav")], f"--out {tmp_path / '.wav'}: give the file a name before .wav"),
        (["--renderer", "fluidsynth", "--seed", "3"], "--seed is for the timbre model; it has no effect with "
                                                      "--renderer fluidsynth"),
        (["--renderer", "fluidsynth", "--weights", "w"], "--weights is for the timbre model; it has no effect with "
                                                         "--renderer fluidsynth"),
    ]:
        with pytest.raises(UserError) as info:
            cli_main(["r", str(midi), *argv])
        assert str(info.value) == says
    from audio.generate import TimbreGenerator

    with pytest.raises(UserError, match=r"in.mid: not timbre model weights \(expected a .safetensors file"):
        TimbreGenerator.load(midi)
    far = pretty_midi.PrettyMIDI(resolution=1, initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(90, 60, 0.0, 0.5), pretty_midi.Note(90, 60, 3 * 3600.0, 3 * 3600.0 + 0.5)]
    far.instruments.append(inst)
    far.write(str(tmp_path / "far.mid"))
    with pytest.raises(UserError, match=r"far.mid: lasts 3.0 hours; render takes files of up to 90 minutes"):
        cli_main(["r", str(tmp_path / "far.mid"), "--device", "cpu"])
    smpte = bytearray((tmp_path / "in.mid").read_bytes())
    smpte[12:14] = bytes([0xE7, 40])   # -25 frames a second, 40 ticks a frame
    (tmp_path / "smpte.mid").write_bytes(bytes(smpte))
    with pytest.raises(UserError, match=r"smpte.mid: not a readable MIDI file \(its times are SMPTE frames, not "
                                        r"beats; save it with beat \(PPQ\) timing\)"):
        cli_main(["r", str(tmp_path / "smpte.mid")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.mid", "in.mid", "smpte.mid"]


def test_render_masters_a_file_played_very_softly(tmp_path):
    """Velocity 8 left FluidSynth's mix under the loudness gate: it came out at -62 dBFS, unmastered."""
    from audio.fluid import fluidsynth_available
    from audio.mix import TARGET_DB, loudness_db

    if not fluidsynth_available():
        pytest.skip("fluidsynth is not installed")
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(8, 60 + k, 0.5 * k, 0.5 * k + 0.4) for k in range(4)]
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "soft.mid"))
    assert cli_main(["r", str(tmp_path / "soft.mid"), "--renderer", "fluidsynth", "--sample-rate", "16000"]) == 0
    data, sr = sf.read(str(tmp_path / "soft.wav"), always_2d=True)
    assert abs(loudness_db(data.T, sr) - TARGET_DB) < 1.5


def test_render_keeps_a_last_drum_hit_whole_and_refuses_what_it_cannot_play(tmp_path, fake_timbre, capsys):
    """From QA: the file ended 0.3 s after the MIDI's end, inside the last crash's decay (a click);
    a file of drum keys the model never learnt gave an all-zero WAV; ``render take.wav`` wrote its
    WAV over the MIDI file itself."""
    fake_timbre.pitch_vocab = {"pitched": list(range(24, 97)), "drums": [36, 49]}
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    kit = pretty_midi.Instrument(0, is_drum=True, name="d")
    kit.notes += [pretty_midi.Note(110, 49, 0.0, 0.05), pretty_midi.Note(110, 49, 2.0, 2.05)]
    pm.instruments.append(kit)
    pm.write(str(tmp_path / "crash.mid"))
    out = render_file(tmp_path / "crash.mid", tmp_path / "crash.wav", timbre=fake_timbre)
    wav, sr = sf.read(str(out))
    # the hit sounds for the model's whole clip (0.5 s) and its release: both hits alike, to the end
    hit = fake_timbre.clip_samples
    assert len(wav) >= int(2.0 * sr) + hit
    first, last = wav[:int(2.0 * sr)], wav[int(2.0 * sr):]
    np.testing.assert_allclose(last[:hit], first[:hit], atol=1e-4)
    assert abs(wav[-1]) < 1e-3
    odd = pretty_midi.PrettyMIDI(initial_tempo=120)
    kit = pretty_midi.Instrument(0, is_drum=True, name="d")
    kit.notes += [pretty_midi.Note(100, 20, 0.0, 0.1), pretty_midi.Note(100, 110, 0.5, 0.6)]
    odd.instruments.append(kit)
    odd.write(str(tmp_path / "odd.mid"))
    with pytest.raises(UserError, match=r"odd.mid: nothing to play: the MIDI file's notes are all drum hits on keys "
                                        r"the timbre model did not learn"):
        render_file(tmp_path / "odd.mid", tmp_path / "odd.wav", timbre=fake_timbre)
    assert not (tmp_path / "odd.wav").exists()
    take = tmp_path / "take.wav"
    take.write_bytes((tmp_path / "crash.mid").read_bytes())         # a MIDI file named .wav
    with pytest.raises(UserError, match=r"--out .*take.wav: is the MIDI file itself; name another file"):
        cli_main(["musegansynth render", str(take), "--device", "cpu"])
    assert take.read_bytes() == (tmp_path / "crash.mid").read_bytes()
