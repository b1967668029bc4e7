"""Bad input found by a QA pass: each case is one line on stderr, exit status 2, and nothing written.

Inputs are small files made here in ``tmp_path``; the only project files read are the shipped weights
in ``data/pretrained/`` (no ``data/build``, no ``../shared/data``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_checks import assert_user_error, run_cli  # noqa: E402
from pipeline.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "data" / "pretrained"


@pytest.fixture(autouse=True)
def _cpu_and_root(monkeypatch):
    """Run from the project root (the commands' default weights are relative to it), on the CPU."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("MUSEGANSYNTH_DEBUG", raising=False)


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (relative), hidden staging files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def write_midi(path: Path, tracks: list[tuple[str, list[tuple[int, float, float]]]]) -> Path:
    """A MIDI file at 120 bpm, 4/4: tracks of (name, [(pitch, start_beat, end_beat), ...]), piano."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    for name, notes in tracks:
        inst = pretty_midi.Instrument(program=0, name=name)
        for pitch, b0, b1 in notes:
            inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=b0 * 0.5, end=b1 * 0.5))
        pm.instruments.append(inst)
    pm.write(str(path))
    return path


MELODY = [(60 + (i * 2) % 12, float(i), float(i) + 1.0) for i in range(16)]


@pytest.fixture
def melody_midi(tmp_path) -> Path:
    return write_midi(tmp_path / "melody.mid", [("melody", MELODY)])


# --------------------------------------------------------------------------- 1. evaluate symbolic

GRID = {"steps_per_beat": 2, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}


@pytest.fixture
def tiny_cache(tmp_path) -> Path:
    """A dataset cache of 4 two-bar phrases, two tracks (meta.json + test.npz)."""
    d = tmp_path / "cache"
    d.mkdir()
    meta = {"tracks": ["melody", "piano"], "programs": [0, 0], "is_drum": [False, False], "grid": GRID,
            "n_bars": 2, "styles": ["pop"]}
    (d / "meta.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    n = 4
    np.savez_compressed(d / "test.npz", rolls=rng.random((n, 2, 2, 8, 24)) > 0.8,
                        chords=np.zeros((n, 2, 4, 12), np.uint8), has_chords=np.zeros(n, bool),
                        style=np.zeros(n, np.int64), song=np.arange(n, dtype=np.int64),
                        key=np.full(n, -1, np.int64))
    return d


def test_evaluate_symbolic_empty_generated_file_is_a_user_error(tiny_cache, tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    rc, err = run_cli(capsys, "evaluate", "symbolic", "--data", tiny_cache, "--generated", empty)
    assert_user_error(rc, err, str(empty), "empty")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    rc, err = run_cli(capsys, "evaluate", "symbolic", "--data", tiny_cache, "--generated", garbage)
    assert_user_error(rc, err, str(garbage), "unreadable npz")


@pytest.mark.parametrize("threshold", ["2", "0", "-0.5", "nan"])
def test_evaluate_symbolic_threshold_outside_0_1_is_refused(tiny_cache, tmp_path, capsys, threshold):
    out = tmp_path / "report.json"
    rc, err = run_cli(capsys, "evaluate", "symbolic", "--data", tiny_cache, "--threshold", threshold,
                      "--json", out)
    assert_user_error(rc, err, "--threshold")
    assert not out.exists()


def test_evaluate_symbolic_threshold_1_is_allowed(tiny_cache, tmp_path, capsys):
    import numpy as np

    gen = tmp_path / "gen.npz"   # probabilities (a threshold binarises those; held-out notes are notes already)
    np.savez(gen, rolls=np.load(Path(tiny_cache) / "test.npz")["rolls"].astype(np.float32))
    rc, err = run_cli(capsys, "evaluate", "symbolic", "--data", tiny_cache, "--generated", gen, "--threshold", "1")
    assert rc == 0, err


# --------------------------------------------------------------------------- 2. evaluate audio

@pytest.mark.parametrize("flag", ["--batch-size", "--ndb-k"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_evaluate_audio_counts_must_be_at_least_1(tmp_path, capsys, flag, value):
    rc, err = run_cli(capsys, "evaluate", "audio", "--data", tmp_path, "--weights",
                      PRETRAINED / "audio_default.safetensors", flag, value, "--json", tmp_path / "r.json")
    assert_user_error(rc, err, flag, "at least 1")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value", ["1", "0"])
def test_evaluate_audio_needs_two_reference_notes(tmp_path, capsys, value):
    """--reference-notes 1 was an internal error (the Frechet distance of one note; found by QA)."""
    rc, err = run_cli(capsys, "evaluate", "audio", "--data", tmp_path, "--weights",
                      PRETRAINED / "audio_default.safetensors", "--reference-notes", value)
    assert_user_error(rc, err, "--reference-notes", "at least")
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- 3. plot --steps-per-beat

@pytest.mark.parametrize("spb", ["0", "-4"])
def test_plot_pianoroll_steps_per_beat_must_be_positive(melody_midi, tmp_path, capsys, spb):
    rc, err = run_cli(capsys, "plot", "pianoroll", melody_midi, "--steps-per-beat", spb,
                      "--out", tmp_path / "p.png")
    assert_user_error(rc, err, "--steps-per-beat")
    assert listing(tmp_path) == ["melody.mid"]


# --------------------------------------------------------------------------- 4. hand-edited model cards

def _edited_card(tmp_path: Path, name: str, edit) -> Path:
    """A copy of shipped card ``name`` (e.g. symbolic_pop909) edited by ``edit(card)``, beside a copy of
    the shipped weights; returns the JSON path."""
    card = json.loads((PRETRAINED / f"{name}.json").read_text())
    edit(card)
    js = tmp_path / f"{name}.json"
    js.write_text(json.dumps(card))
    shutil.copyfile(PRETRAINED / f"{name}.safetensors", tmp_path / f"{name}.safetensors")
    return js


@pytest.mark.parametrize("field,edit", [
    ("generator.channels", lambda c: c["generator"].update(channels=[])),
    ("programs", lambda c: c.update(programs="x")),
    ("programs", lambda c: c.update(programs=[0, 200])),
    ("clip_frames", lambda c: c.update(clip_frames=0)),
    ("pitch_vocab", lambda c: c.update(pitch_vocab=[1, 2])),
])
def test_audio_card_fields_are_checked(tmp_path, field, edit):
    from audio.generate import TimbreGenerator

    js = _edited_card(tmp_path, "audio_default", edit)
    with pytest.raises(UserError, match=f"^{js}: {field}"):
        TimbreGenerator.load(js)


@pytest.mark.parametrize("field,edit", [
    ("grid.steps_per_beat", lambda c: c["grid"].update(steps_per_beat=0)),
    ("grid.steps_per_beat", lambda c: c.update(grid={})),
    ("grid.n_pitches", lambda c: c["grid"].update(n_pitches="84")),
    ("grid", lambda c: c.update(grid=[4, 4])),
    ("styles", lambda c: c.update(styles=5)),
    ("styles", lambda c: c.update(styles=["pop", "rock"])),
    ("tracks", lambda c: c.update(tracks="melody")),
    ("tracks", lambda c: c.update(tracks=["melody", "piano"])),
    ("tracks", lambda c: c.update(tracks=["melody", "Melody", "piano"])),
    ("programs", lambda c: c.update(programs=[0, 0, 128])),
    ("is_drum", lambda c: c.update(is_drum=[0, 0, 0])),
    ("n_bars", lambda c: c.update(n_bars=0)),
    ("n_bars", lambda c: c.update(n_bars=8)),
    ("transposed", lambda c: c.update(transposed="yes")),
])
def test_symbolic_card_fields_are_checked(tmp_path, field, edit):
    from symbolic.generate import Composer

    js = _edited_card(tmp_path, "symbolic_pop909", edit)
    with pytest.raises(UserError, match=f"^{js}: {field}"):
        Composer.load(js)


def test_bad_card_through_the_command_line_is_one_line(melody_midi, tmp_path, capsys):
    js = _edited_card(tmp_path, "audio_default", lambda c: c["generator"].update(channels=[]))
    out = tmp_path / "r.wav"
    rc, err = run_cli(capsys, "render", melody_midi, "--weights", js.with_suffix(".safetensors"), "--out", out,
                      "--device", "cpu")
    assert_user_error(rc, err, str(js), "generator.channels")
    assert not out.exists()


def test_shipped_cards_still_load():
    from audio.generate import TimbreGenerator
    from symbolic.generate import Composer

    for card in sorted(PRETRAINED.glob("symbolic_*.json")):
        c = Composer.load(card)
        assert c.track_names and c.n_bars >= 1
    tg = TimbreGenerator.load(PRETRAINED / "audio_default.safetensors")
    assert tg.programs and tg.clip_frames >= 1


# --------------------------------------------------------------------------- 5. data symbolic

@pytest.fixture
def corrupt_midis(tmp_path) -> Path:
    d = tmp_path / "corrupt"
    d.mkdir()
    (d / "a.mid").write_bytes(b"not a midi file")
    (d / "b.mid").write_bytes(b"MThd")
    return d


def test_data_symbolic_with_no_phrases_writes_nothing(corrupt_midis, tmp_path, capsys):
    out = tmp_path / "ds"
    rc, err = run_cli(capsys, "data", "symbolic", "--source", "midi", "--root", corrupt_midis, "--track-map",
                      "lpd5", "--out", out, "--quiet")
    assert_user_error(rc, err, "no phrases", "skipped: unreadable: 2")
    assert not out.exists() and listing(tmp_path) == ["corrupt", "corrupt/a.mid", "corrupt/b.mid"]


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_data_symbolic_limit_must_be_positive(tmp_path, capsys, limit):
    root = tmp_path / "songs"
    root.mkdir()
    write_midi(root / "song.mid", [("piano", MELODY)])
    out = tmp_path / "ds"
    rc, err = run_cli(capsys, "data", "symbolic", "--source", "midi", "--root", root, "--track-map", "lpd5",
                      "--out", out, "--limit", limit, "--quiet")
    assert_user_error(rc, err, f"--limit {limit}")
    assert not out.exists()


# --------------------------------------------------------------------------- 6. data notes --soundfont

@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEfmt not a soundfont"])
def test_data_notes_refuses_a_file_that_is_not_a_soundfont(tmp_path, capsys, content):
    sf2 = tmp_path / "bad.sf2"
    sf2.write_bytes(content)
    out = tmp_path / "notes"
    rc, err = run_cli(capsys, "data", "notes", "--soundfont", sf2, "--limit", "2", "--out", out, "--quiet")
    assert_user_error(rc, err, str(sf2), "not a SoundFont")
    assert not out.exists()


def test_check_soundfont_accepts_a_riff_sfbk_header(tmp_path):
    from audio.fluid import check_soundfont, find_soundfont

    good = tmp_path / "tiny.sf2"
    good.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    assert check_soundfont(good) == good and find_soundfont(str(good)) == good
    with pytest.raises(UserError, match="not a SoundFont"):
        check_soundfont(Path(__file__))
    with pytest.raises(UserError, match="is a folder"):
        find_soundfont(str(tmp_path) + os.sep)


# --------------------------------------------------------------------------- 7. export names

@pytest.mark.parametrize("name", ["../../evil", "a/b", "", ".hidden", "a b", "x\ny"])
def test_export_symbolic_refuses_names_that_are_not_one_file_name(tmp_path, capsys, name):
    out = tmp_path / "deep" / "out"
    rc, err = run_cli(capsys, "export", "symbolic", tmp_path / "missing.ckpt", "--out", out, "--name", name)
    assert_user_error(rc, err, "--name")
    assert listing(tmp_path) == []


def test_export_generator_refuses_a_path_as_name(tmp_path):
    from symbolic.export import check_model_name, export_generator
    from symbolic.modules import Generator

    g = Generator(n_tracks=1, n_bars=1, steps_per_bar=4, beats_per_bar=4, n_pitches=12, lowest_pitch=60,
                  n_styles=0, z_dim=2, trunk_channels=(4, 4), branch_channels=2, style_dim=2, chord_dim=2,
                  track_cond_dim=2)
    with pytest.raises(UserError, match="name '../evil'"):
        export_generator(g, tmp_path / "out", "../evil", {})
    assert listing(tmp_path) == []
    assert check_model_name("pop909_accompany-v2.1") == "pop909_accompany-v2.1"


# --------------------------------------------------------------------------- 8. output file types

@pytest.mark.parametrize("name", ["r.mp3", "r.ogg", "r"])
def test_render_refuses_an_audio_type_it_does_not_write(melody_midi, tmp_path, capsys, name):
    rc, err = run_cli(capsys, "render", melody_midi, "--out", tmp_path / name, "--device", "cpu")
    assert_user_error(rc, err, "--out", ".wav", ".flac")
    assert listing(tmp_path) == ["melody.mid"]


def test_plot_pianoroll_refuses_a_picture_type_it_does_not_write(melody_midi, tmp_path, capsys):
    rc, err = run_cli(capsys, "plot", "pianoroll", melody_midi, "--out", tmp_path / "p.txt")
    assert_user_error(rc, err, "--out", "png")
    assert listing(tmp_path) == ["melody.mid"]


def _fluidsynth_ready() -> bool:
    from audio.fluid import find_soundfont, fluidsynth_available

    try:
        find_soundfont()
    except UserError:
        return False
    return fluidsynth_available()


@pytest.mark.fluidsynth
@pytest.mark.skipif(not _fluidsynth_ready(), reason="fluidsynth or FluidR3_GM missing")
def test_render_fluidsynth_flac_is_flac(melody_midi, tmp_path, capsys):
    """``render --renderer fluidsynth --out x.flac`` writes FLAC data, not WAV data under a .flac name."""
    import soundfile as sf

    rc, err = run_cli(capsys, "render", melody_midi, "--renderer", "fluidsynth", "--out", tmp_path / "x.flac")
    assert rc == 0, err
    assert sf.info(str(tmp_path / "x.flac")).format == "FLAC"


# --------------------------------------------------------------------------- 9. accompany

def test_accompany_without_audio_removes_an_earlier_song_wav(melody_midi, tmp_path, capsys):
    out = tmp_path / "acc"
    out.mkdir()
    (out / "song.wav").write_bytes(b"an earlier run's audio")
    (out / "notes.txt").write_text("the user's own file")
    rc, err = run_cli(capsys, "accompany", melody_midi, "--track", "melody", "--renderer", "none", "--out", out,
                      "--device", "cpu")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "song.mid"]


def test_accompany_a_named_track_without_notes(tmp_path, capsys):
    midi = write_midi(tmp_path / "x.mid", [("melody", []), ("piano", MELODY)])
    out = tmp_path / "acc"
    rc, err = run_cli(capsys, "accompany", midi, "--track", "MELODY", "--renderer", "none", "--out", out)
    assert_user_error(rc, err, str(midi), "'MELODY'", "has no notes")
    assert "no such track" not in err
    silent = write_midi(tmp_path / "silent.mid", [("melody", [])])
    rc, err = run_cli(capsys, "accompany", silent, "--track", "melody", "--renderer", "none", "--out", out)
    assert_user_error(rc, err, str(silent), "has no notes")
    rc, err = run_cli(capsys, "accompany", midi, "--track", "bass", "--renderer", "none", "--out", out)
    assert_user_error(rc, err, "no such track", "'piano'")  # a name that is not there at all
    assert not out.exists()


# --------------------------------------------------------------------------- 10. a folder given as MIDI

@pytest.mark.parametrize("command,out", [
    (["render", "{folder}"], "out.wav"),
    (["plot", "pianoroll", "{folder}"], "out.png"),
    (["accompany", "{folder}", "--track", "melody", "--renderer", "none"], "out"),
])
def test_a_folder_given_as_midi_is_named_a_folder(tmp_path, capsys, command, out):
    folder = tmp_path / "songs"
    folder.mkdir()
    args = [str(folder) if a == "{folder}" else a for a in command]
    rc, err = run_cli(capsys, *args, "--out", tmp_path / out)
    assert_user_error(rc, err, str(folder), "is a folder")
    assert listing(tmp_path) == ["songs"]


def test_read_midi_names_a_folder(tmp_path):
    from symbolic.roll import read_midi

    with pytest.raises(UserError, match="is a folder, not a MIDI file"):
        read_midi(tmp_path)
    with pytest.raises(UserError, match="no such MIDI file"):
        read_midi(tmp_path / "missing.mid")


# --------------------------------------------------------------------------- 11. negative seeds

@pytest.mark.parametrize("command", [["render"], ["accompany", "--track", "melody", "--renderer", "none"],
                                     ["generate"]])
def test_negative_seed_is_refused_alike(melody_midi, tmp_path, capsys, command):
    out = tmp_path / ("out.wav" if command[0] == "render" else "out")
    args = [command[0]] + ([] if command[0] == "generate" else [melody_midi]) + command[1:]
    rc, err = run_cli(capsys, *args, "--seed", "-5", "--out", out, "--device", "cpu")
    assert_user_error(rc, err, "--seed -5: must be 0 to 2147483647")
    assert listing(tmp_path) == ["melody.mid"]


def test_evaluate_symbolic_negative_seed_is_refused(tiny_cache, capsys):
    rc, err = run_cli(capsys, "evaluate", "symbolic", "--data", tiny_cache, "--n", "2", "--seed", "-1")
    assert_user_error(rc, err, "--seed -1: must be 0 to 2147483647")


def test_evaluate_audio_negative_seed_is_refused(tmp_path, capsys):
    rc, err = run_cli(capsys, "evaluate", "audio", "--data", tmp_path, "--weights",
                      PRETRAINED / "audio_default.safetensors", "--seed", "-1")
    assert_user_error(rc, err, "--seed -1: must be 0 to 2147483647")
