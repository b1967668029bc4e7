"""The pipeline with the real generation objects (``symbolic.generate.Composer``,
``audio.generate.TimbreGenerator``) loaded from tiny, untrained weights written by the projects'
own exporters: checks the whole path from weights files to song files, not musical quality.
"""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
import yaml

pytest.importorskip("symbolic.generate")
pytest.importorskip("audio.generate")

from audio.generate import save_timbre_generator  # noqa: E402
from audio.modules import Generator as AudioGenerator  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from symbolic.export import export_generator  # noqa: E402
from symbolic.modules import Generator as SymbolicGenerator  # noqa: E402

GRID = {"steps_per_beat": 4, "beats_per_bar": 4, "lowest_pitch": 24, "n_pitches": 84}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    sym = SymbolicGenerator(n_tracks=3, n_styles=0, z_dim=8, trunk_channels=(16, 8), branch_channels=8,
                            style_dim=4, chord_dim=4, track_cond_dim=4)
    with torch.no_grad():  # untrained: a bias that gives some notes (about a third of the cells on)
        sym.out_bias_pitch.fill_(-0.5)
    export_generator(sym, d, "tiny", {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0],
                                      "is_drum": [False] * 3, "grid": GRID, "n_bars": 4, "styles": []})
    export_generator(sym, d, "tinykey", {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0],
                                         "is_drum": [False] * 3, "grid": GRID, "n_bars": 4, "styles": [],
                                         "transposed": True})
    drums = SymbolicGenerator(n_tracks=1, n_styles=2, z_dim=8, trunk_channels=(16, 8), branch_channels=8,
                              style_dim=4, chord_dim=4, track_cond_dim=0)
    with torch.no_grad():
        drums.out_bias_pitch.fill_(-0.5)
    export_generator(drums, d, "tinydrums", {"tracks": ["drums"], "programs": [0], "is_drum": [True],
                                            "grid": GRID, "n_bars": 4, "styles": ["pop", "rock"]})
    kw = dict(latent_dim=8, frames=16, bins=16, channels=[16, 12, 8], pitch_dim=4, program_dim=4, output="linear")
    g = AudioGenerator(**kw)
    g.norm_mean.fill_(-4.0)
    meta = {"generator": kw, "spec": {"sample_rate": 16000, "n_fft": 512, "hop": 128, "n_mels": 16},
            "clip_frames": 16, "pitch_vocab": {"pitched": list(range(24, 97)), "drums": list(range(35, 82))},
            "programs": [0, 24, 40, 73, 128]}
    save_timbre_generator(d / "audio_tiny", g, meta, name="tiny")
    return d


def _config(tmp_path, weights, *, symbolic=None, chords=("C", "G"), chords_b=None):
    data = {
        "title": "Real Tiny", "seed": 5, "tempo": 120, "style": "rock",
        "tracks": [{"name": "lead", "source": "melody", "instrument": "Flute"},
                   {"name": "keys", "source": "piano", "instrument": "Acoustic Grand Piano"},
                   {"name": "drums", "source": "drums"}],
        "sections": [{"name": "a", "bars": 4, "chords": list(chords)},
                     {"name": "b", "bars": 2, **({"chords": list(chords_b)} if chords_b else {})}],
        "weights": {"symbolic": symbolic or str(weights / "symbolic_tiny.safetensors"),
                    "drums": str(weights / "symbolic_tinydrums.safetensors"),
                    "audio": str(weights / "audio_tiny.safetensors")},
    }
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_generate_with_real_modules_is_reproducible(tmp_path, weights):
    from pipeline.generate import cli_main

    cfg = _config(tmp_path, weights)
    for name in ("a", "b"):
        assert cli_main(["g", str(cfg), "--out", str(tmp_path / name), "--device", "cpu"]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "song.mid").read_bytes() == (b / "song.mid").read_bytes()
    wa, sr = sf.read(str(a / "song.wav"), dtype="int16")
    wb, _ = sf.read(str(b / "song.wav"), dtype="int16")
    assert sr == 16000 and np.array_equal(wa, wb)
    pm = pretty_midi.PrettyMIDI(str(a / "song.mid"))
    facts = json.loads((a / "song.json").read_text())
    counts = facts["note_counts"]
    assert list(counts) == ["lead", "keys", "drums"] and sum(counts.values()) > 0
    # (pretty_midi reads back only tracks that have notes; an untrained composer may leave one empty)
    assert {i.name: len(i.notes) for i in pm.instruments} == {k: v for k, v in counts.items() if v}
    assert set(facts["weights"]) == {"symbolic", "drums", "audio"}
    assert all(len(w["sha256"]) == 64 for w in facts["weights"].values())
    assert sorted(p.name for p in (a / "stems").iterdir()) == ["drums.wav", "keys.wav", "lead.wav"]


def _notes(path):
    """{track name: sorted (pitch, start, end, velocity)} of a MIDI file."""
    pm = pretty_midi.PrettyMIDI(str(path))
    return {i.name: sorted((n.pitch, round(n.start, 4), round(n.end, 4), n.velocity) for n in i.notes)
            for i in pm.instruments}


def test_a_song_in_another_key_is_the_home_key_song_moved(tmp_path, weights):
    """A composer that learnt in C major / A minor (card ``transposed``) composes a song written in
    E major at home and moves it up: the same notes 4 semitones higher (the few the move pushes
    past MIDI 107 are dropped), the drums untouched; a composer without a home key does not."""
    from pipeline.generate import cli_main

    songs = {}
    for name, symbolic in (("tinykey", weights / "symbolic_tinykey.safetensors"),
                           ("tiny", weights / "symbolic_tiny.safetensors")):
        for key, chords in (("C", ("C", "F", "G", "C")), ("E", ("E", "A", "B", "E"))):
            cfg = _config(tmp_path, weights, symbolic=str(symbolic), chords=chords)
            out = tmp_path / f"{name}-{key}"
            assert cli_main(["g", str(cfg), "--out", str(out), "--renderer", "none", "--device", "cpu"]) == 0
            songs[name, key] = _notes(out / "song.mid")
    home, moved = songs["tinykey", "C"], songs["tinykey", "E"]
    assert moved["drums"] == home["drums"]
    assert home["keys"]  # (the untrained composer may leave the lead empty)
    for track in ("lead", "keys"):
        assert moved.get(track, []) == [(p + 4, a, b, v) for p, a, b, v in home.get(track, []) if p + 4 <= 107]
    plain_home, plain_moved = songs["tiny", "C"], songs["tiny", "E"]
    assert plain_moved["keys"] != [(p + 4, a, b, v) for p, a, b, v in plain_home["keys"] if p + 4 <= 107]


def _bars(notes, lo, hi, spb=2.0):
    """The notes starting in bars [lo, hi) (120 bpm, 4/4: 2 s a bar), times made relative to bar lo."""
    return [(p, round(a - lo * spb, 4), round(b - lo * spb, 4), v) for p, a, b, v in notes if lo * spb <= a < hi * spb]


def test_a_section_in_another_key_is_composed_in_its_own_key(tmp_path, weights):
    """Each section's key comes from its own chords: a last section moved up a whole step (a
    classic key change) is the same section moved up 2, and the first section is untouched."""
    from pipeline.generate import cli_main

    songs = {}
    for name, chords_b in (("same", ("C", "Am")), ("up", ("D", "Bm"))):
        cfg = _config(tmp_path, weights, symbolic=str(weights / "symbolic_tinykey.safetensors"),
                      chords=("C", "F", "G", "C"), chords_b=chords_b)
        out = tmp_path / name
        assert cli_main(["g", str(cfg), "--out", str(out), "--renderer", "none", "--device", "cpu"]) == 0
        songs[name] = _notes(out / "song.mid")
    same, up = songs["same"]["keys"], songs["up"]["keys"]
    assert _bars(up, 0, 4) == _bars(same, 0, 4) and _bars(same, 4, 6)
    assert _bars(up, 4, 6) == [(p + 2, a, b, v) for p, a, b, v in _bars(same, 4, 6) if p + 2 <= 107]


def test_missing_or_mismatched_weights(tmp_path, weights):
    from pipeline.generate import cli_main

    cfg = _config(tmp_path, weights, symbolic=str(tmp_path / "nope.safetensors"))
    with pytest.raises(UserError, match="weights.symbolic: .*nope.safetensors: no such weights file"):
        cli_main(["g", str(cfg), "--out", str(tmp_path / "o")])
    # the audio weights given as the composer's: the loader names the file
    cfg = _config(tmp_path, weights, symbolic=str(weights / "audio_tiny.safetensors"))
    with pytest.raises(UserError, match="audio_tiny"):
        cli_main(["g", str(cfg), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_render_and_accompany_with_real_modules(tmp_path, weights):
    from pipeline.accompany import cli_main as accompany_main
    from pipeline.render import cli_main as render_main

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    mel = pretty_midi.Instrument(73, name="MELODY")
    for k in range(12):
        mel.notes.append(pretty_midi.Note(96, 60 + (k * 5) % 12, k * 0.6, k * 0.6 + 0.45))
    pm.instruments.append(mel)
    midi = tmp_path / "in.mid"
    pm.write(str(midi))
    wav = tmp_path / "in.wav"
    assert render_main(["r", str(midi), "--out", str(wav), "--weights", str(weights / "audio_tiny"),
                        "--device", "cpu"]) == 0
    audio, sr = sf.read(str(wav))
    assert sr == 16000 and len(audio) >= int(7.2 * sr) and np.abs(audio).max() > 0
    out = tmp_path / "acc"
    assert accompany_main(["a", str(midi), "--track", "melody", "--out", str(out), "--device", "cpu",
                           "--weights", str(weights / "symbolic_tiny.safetensors"),
                           "--audio-weights", str(weights / "audio_tiny.safetensors")]) == 0
    song = pretty_midi.PrettyMIDI(str(out / "song.mid"))
    names = [i.name for i in song.instruments]
    assert names[0] == "MELODY" and set(names) <= {"MELODY", "bridge", "piano"}
    given = [(n.pitch, round(n.start, 2), round(n.end, 2)) for n in song.instruments[0].notes]
    assert given == [(n.pitch, round(n.start, 2), round(n.end, 2)) for n in mel.notes]
    assert (out / "song.wav").exists()
    # with the real drums composer, in its genre "rock": a drums track, the others as they were
    for k in (1, 2):
        assert accompany_main(["a", str(midi), "--track", "melody", "--out", str(tmp_path / f"drums{k}"),
                               "--device", "cpu", "--renderer", "none", "--drums", "rock",
                               "--weights", str(weights / "symbolic_tiny.safetensors"),
                               "--drums-weights", str(weights / "symbolic_tinydrums.safetensors")]) == 0
    with_drums = pretty_midi.PrettyMIDI(str(tmp_path / "drums1" / "song.mid"))
    assert [i.name for i in with_drums.instruments] == names + ["drums"] and with_drums.instruments[-1].is_drum
    assert with_drums.instruments[-1].notes and max(n.start for n in with_drums.instruments[-1].notes) < 7.2
    for a, b in zip(song.instruments, with_drums.instruments):
        assert [(n.pitch, n.start, n.end, n.velocity) for n in a.notes] == [(n.pitch, n.start, n.end, n.velocity)
                                                                            for n in b.notes]
    assert (tmp_path / "drums1" / "song.mid").read_bytes() == (tmp_path / "drums2" / "song.mid").read_bytes()


def test_count_with_real_modules_matches_single_runs(tmp_path, weights):
    """``--count 2`` (Lightning's Trainer.predict) writes what ``--seed n`` alone writes, real modules."""
    from pipeline.generate import cli_main

    cfg = _config(tmp_path, weights)
    many = tmp_path / "many"
    assert cli_main(["g", str(cfg), "--out", str(many), "--count", "2", "--device", "cpu", "--devices", "1"]) == 0
    assert sorted(p.name for p in many.iterdir()) == ["seed-5", "seed-6"]
    for seed in (5, 6):
        one = tmp_path / f"one-{seed}"
        assert cli_main(["g", str(cfg), "--out", str(one), "--seed", str(seed), "--device", "cpu"]) == 0
        got = many / f"seed-{seed}"
        assert (got / "song.mid").read_bytes() == (one / "song.mid").read_bytes()
        wa, sr = sf.read(str(got / "song.wav"), dtype="int16")
        wb, _ = sf.read(str(one / "song.wav"), dtype="int16")
        assert sr == 16000 and np.array_equal(wa, wb)
        assert json.loads((got / "song.json").read_text())["seed"] == seed
