"""QA of the song pipeline and its audio stage: regressions of functional bugs (wrong results, exit 0)."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest

from fakes import SMALL_SONG
from pipeline.config import parse_config


def _cfg(**changes):
    data = json.loads(json.dumps(SMALL_SONG))
    data.update(changes)
    return parse_config(data, "small.yaml")


def test_note_on_a_section_start_takes_that_sections_morph(fake_models):
    """At 108 bpm bar 12 starts at 26.666...s, which section_table rounds *up* to 26.6667 s: a note on
    the chorus's first step used to get the verse's timbre (morph 0 instead of the chorus's)."""
    from pipeline.generate import render_song_neural

    cfg = _cfg(tempo=108, sections=[{"name": "verse", "bars": 12}, {"name": "chorus", "bars": 4, "morph": 0.8}])
    bar_s = 4 * 60.0 / 108
    step_s = bar_s / 16
    start = 12 * 16 * step_s  # as symbolic.roll.multitrack_to_midi computes a note's start
    assert round(12 * bar_s, 4) > start  # the rounded table time is past the note
    pm = pretty_midi.PrettyMIDI(initial_tempo=108)
    for name in ("lead", "keys", "drums"):
        inst = pretty_midi.Instrument(0, is_drum=name == "drums", name=name)
        pm.instruments.append(inst)
    lead = pm.instruments[0]
    lead.notes += [pretty_midi.Note(100, 60, start, start + 0.4), pretty_midi.Note(100, 60, 13 * bar_s, 13 * bar_s + 0.4)]
    stems, _ = render_song_neural(pm, cfg, fake_models.timbre, "cpu")
    sr = 16000
    a = stems[0, int(round(start * sr)):int(round(start * sr)) + 4000]
    b = stems[0, int(round(13 * bar_s * sr)):int(round(13 * bar_s * sr)) + 4000]
    np.testing.assert_allclose(a, b, atol=1e-5)  # both notes in the chorus: the same timbre


def test_a_note_played_early_into_a_section_takes_that_sections_morph(fake_models):
    """The learnt timing plays a chorus's first hit a little before the chorus starts: it keeps the
    chorus's timbre (up to half a step early), while a note a whole step early is the verse's."""
    from pipeline.generate import render_song_neural

    cfg = _cfg(tempo=108, sections=[{"name": "verse", "bars": 12}, {"name": "chorus", "bars": 4, "morph": 0.8}])
    bar_s = 4 * 60.0 / 108
    step_s = bar_s / 16
    sr = 16000

    def first_note(start):
        pm = pretty_midi.PrettyMIDI(initial_tempo=108)
        for name in ("lead", "keys", "drums"):
            pm.instruments.append(pretty_midi.Instrument(0, is_drum=name == "drums", name=name))
        pm.instruments[0].notes.append(pretty_midi.Note(100, 60, start, start + 0.4))
        stems, _ = render_song_neural(pm, cfg, fake_models.timbre, "cpu", steps_per_beat=4)
        return stems[0, int(round(start * sr)):int(round(start * sr)) + 4000]

    chorus = first_note(13 * bar_s)                  # well inside the chorus
    verse = first_note(11 * bar_s)                   # well inside the verse
    early = first_note(12 * bar_s - 0.3 * step_s)   # the chorus's first step, 0.3 of a step early
    np.testing.assert_allclose(early, chorus, atol=1e-5)
    assert not np.allclose(chorus, verse, atol=1e-5)
    np.testing.assert_allclose(first_note(12 * bar_s - step_s), verse, atol=1e-5)   # the verse's last step


def test_section_at():
    from pipeline.generate import section_at

    cfg = _cfg(tempo=108, sections=[{"name": "verse", "bars": 12}, {"name": "chorus", "bars": 4, "morph": 0.8}])
    step_s = 60.0 / 108 / 4
    assert section_at(cfg, 12 * 16 * step_s) == 1
    assert section_at(cfg, 11 * 16 * step_s + 15 * step_s) == 0
    assert section_at(cfg, 0.0) == 0 and section_at(cfg, -1.0) == 0 and section_at(cfg, 1e6) == 1


class _ArrangedComposer:
    """A FakeComposer whose generator has arrangement conditioning but writes no melody in phrase 1, bar 0."""

    def __new__(cls):
        from types import SimpleNamespace

        from fakes import FakeComposer

        comp = FakeComposer()
        comp.generator = SimpleNamespace(has_arrangement=True)
        decode = comp.decode

        def silent_bar(latents, chords=None, style=None):
            out = decode(latents, chords=chords, style=style)
            out[1, 0, 0] = 0.0  # melody, phrase 1, its first bar
            return out

        comp.decode = silent_bar
        return comp


def test_play_track_has_notes_in_every_bar_of_its_section():
    """A track in ``play`` is promised notes in every bar; the composer may still write an empty bar."""
    from fakes import fake_drum_composer
    from pipeline.generate import Models, compose

    models = Models(_ArrangedComposer(), fake_drum_composer(), None, {})
    cfg = _cfg(sections=[{"name": "a", "bars": 4, "chords": ["C", "Am", "F", "G"]},
                         {"name": "b", "bars": 6, "chords": ["F", "G", "C"], "play": ["lead"]}])
    roll = compose(models, cfg, cfg.seed, "cpu")
    assert all(roll[0, b].any() for b in range(4, 10))      # lead plays in every bar of b
    # bar 4 (F, empty) takes the nearest bar of b under the same chord (F G C F G C: bar 7)
    from pipeline.generate import bar_chords

    chords = bar_chords(cfg, 4)
    assert [b for b in range(4, 10) if chords[b] == chords[4]] == [4, 7]
    assert np.array_equal(roll[0, 4], roll[0, 7])
    # without play the composer's silence stays (bar 4 of a song without play sections)
    plain = compose(Models(_ArrangedComposer(), fake_drum_composer(), None, {}),
                    _cfg(sections=[{"name": "a", "bars": 4}, {"name": "b", "bars": 6, "chords": ["F", "G", "C"]}]),
                    cfg.seed, "cpu")
    assert not plain[0, 4].any()


def test_section_table_keeps_chords_that_change_inside_a_bar():
    """song.json's sections listed only each bar's first-beat chord: per-beat chords were lost."""
    from pipeline.generate import section_table

    per_beat = ["Dm", "Dm", "G", "G", "C", "C", "C", "C"]
    cfg = _cfg(sections=[{"name": "a", "bars": 2, "chords": per_beat},
                         {"name": "b", "bars": 4, "chords": ["F", "G"]}, {"name": "c", "bars": 1}])
    rows = section_table(cfg)
    assert rows[0]["chords"] == per_beat
    assert rows[1]["chords"] == ["F", "G", "F", "G"]
    assert rows[2]["chords"] is None
    assert [(r["start_bar"], r["bars"]) for r in rows] == [(0, 2), (2, 4), (6, 1)]


def test_song_json_records_the_weights_cards_hashes(tmp_path):
    """The card (hyper-parameters, decode release/legato, transposed) changes the song: hash it too."""
    import hashlib

    from pipeline.generate import weights_facts

    st, card = tmp_path / "m.safetensors", tmp_path / "m.json"
    st.write_bytes(b"weights")
    card.write_text('{"decode": {"release": {"piano": 0.3}}}')
    facts = weights_facts(st)
    assert facts["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert facts["card"] == str(card) and facts["card_sha256"] == hashlib.sha256(card.read_bytes()).hexdigest()
    card.unlink()
    assert "card_sha256" not in weights_facts(st)


def test_stems_add_up_to_the_mix_also_where_the_limiter_works(tmp_path):
    """The stems got only the first mastering pass's gain; the mix gets both passes' (the second
    one makes up for what the limiter took), so loud peaks left the stems quieter than the mix.
    Then each stem was limited on its own, so where the mix's limiter worked they did not add up
    (found by QA: up to 0.2 of full scale); now every stem takes the mix's gain at each sample."""
    import soundfile as sf

    from pipeline.generate import write_audio

    sr = 16000
    t = np.arange(3 * sr) / sr
    a = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    a[:2 * sr:160] = 1.0  # 2 s of clicks: limited hard, so the loudness drops and pass 2 lifts it (x1.9)
    b = (0.05 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    cfg = _cfg(tracks=[{"name": "a", "source": "melody", "volume_db": 0},
                       {"name": "b", "source": "piano", "volume_db": -3}])
    write_audio(tmp_path, np.stack([a, b]), ["a", "b"], cfg, sr, flac=False)
    mix, _ = sf.read(str(tmp_path / "song.wav"), always_2d=True)
    sa, _ = sf.read(str(tmp_path / "stems" / "a.wav"))
    sb, _ = sf.read(str(tmp_path / "stems" / "b.wav"))
    quiet = slice(2 * sr, 3 * sr)  # far from the burst: no limiting in the mix or the stems
    np.testing.assert_allclose(mix[quiet, 0], sa[quiet] + sb[quiet], atol=3 / 32768)
    # and where the limiter works: the clicks (each stem rounded to 16 bits once, the mix once)
    np.testing.assert_allclose(mix[:, 0], sa + sb, atol=3 / 32768)
    assert np.abs(mix[:2 * sr, 0]).max() > 0.85   # the clicks reach the ceiling: limited


def test_a_song_of_quiet_tracks_is_mastered_and_a_silent_one_reports_null_loudness(tmp_path):
    """Every track at -60 dB put the mix under the loudness gate: it came out unmastered (a peak of
    0.0008) and song.json said "loudness_db": -Infinity, which is not JSON (found by QA)."""
    import soundfile as sf

    from pipeline.generate import write_audio

    sr = 16000
    t = np.arange(2 * sr) / sr
    a = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    cfg = _cfg(tracks=[{"name": "a", "source": "melody", "volume_db": -60},
                       {"name": "b", "source": "piano", "volume_db": -60}])
    facts = write_audio(tmp_path / "quiet", np.stack([a, a]), ["a", "b"], cfg, sr, flac=False)
    assert facts["loudness_db"] == pytest.approx(-16.0, abs=0.5) and facts["peak"] > 0.2   # was 0.0008
    mix, _ = sf.read(str(tmp_path / "quiet" / "song.wav"), always_2d=True)
    sa, _ = sf.read(str(tmp_path / "quiet" / "stems" / "a.wav"))
    np.testing.assert_allclose(mix[:, 0], 2 * sa, atol=3 / 32768)   # the stems still add up
    silent = write_audio(tmp_path / "silent", np.zeros((2, sr), np.float32), ["a", "b"], cfg, sr, flac=False)
    assert silent["loudness_db"] is None and silent["peak"] == 0.0
    json.dumps(silent, allow_nan=False)


def test_panned_stems_are_stereo_and_add_up_to_each_channel(tmp_path):
    """With pans the mix is stereo; each stem is placed like its track (equal-power pan law), so
    left and right of the stems add up to left and right of the mix. A track without a pan sits
    in the centre (-3 dB each side) as the mixer puts it."""
    import soundfile as sf

    from pipeline.generate import write_audio

    sr = 16000
    t = np.arange(2 * sr) / sr
    a = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    b = (0.1 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    cfg = _cfg(tracks=[{"name": "a", "source": "melody", "volume_db": 0, "pan": -1.0},
                       {"name": "b", "source": "piano", "volume_db": -3}])
    write_audio(tmp_path, np.stack([a, b]), ["a", "b"], cfg, sr, flac=False)
    mix, _ = sf.read(str(tmp_path / "song.wav"), always_2d=True)
    sa, _ = sf.read(str(tmp_path / "stems" / "a.wav"), always_2d=True)
    sb, _ = sf.read(str(tmp_path / "stems" / "b.wav"), always_2d=True)
    assert mix.shape[1] == sa.shape[1] == sb.shape[1] == 2
    assert np.abs(sa[:, 1]).max() == 0 and np.abs(sa[:, 0]).max() > 0.05   # hard left
    np.testing.assert_allclose(sb[:, 0], sb[:, 1], atol=1 / 32768)         # centre
    np.testing.assert_allclose(mix, sa + sb, atol=3 / 32768)


def test_fluidsynth_stems_keep_their_balance(tmp_path, monkeypatch):
    """Each FluidSynth stem was rendered with ``render_midi``, which scales a file peaking over -1 dBFS
    down to it: a loud track lost level against the others before the mix."""
    import soundfile as sf

    import audio.fluid as fluid
    from pipeline.generate import render_song_fluidsynth

    sr = 16000
    freqs = {1: 220.0, 4: 330.0}  # notes in the track -> its tone

    def fake_fluidsynth(soundfont, midi_path, wav_path, sample_rate, gain, reverb, chorus):
        n = len(pretty_midi.PrettyMIDI(str(midi_path)).instruments[0].notes)
        t = np.arange(2 * sample_rate) / sample_rate
        tone = 0.5 * n * np.sin(2 * np.pi * freqs[n] * t)  # 4 notes: peak 2.0, over full scale
        sf.write(str(wav_path), np.stack([tone, tone], 1).astype(np.float32), sample_rate, subtype="FLOAT")

    monkeypatch.setattr(fluid, "_run_fluidsynth", fake_fluidsynth)
    monkeypatch.setattr(fluid, "find_soundfont", lambda name=None: tmp_path / "x.sf2")
    monkeypatch.setattr(fluid, "check_soundfont", lambda path: path)
    cfg = _cfg(tracks=[{"name": "a", "source": "melody", "volume_db": 0}, {"name": "b", "source": "piano", "volume_db": 0}])
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for name, n in (("a", 1), ("b", 4)):
        inst = pretty_midi.Instrument(0, name=name)
        inst.notes += [pretty_midi.Note(90, 60 + k, 0.1 * k, 0.1 * k + 0.5) for k in range(n)]
        pm.instruments.append(inst)
    render_song_fluidsynth(tmp_path, pm, cfg, flac=False)
    mix, _ = sf.read(str(tmp_path / "song.wav"))
    t = np.arange(len(mix)) / sr

    def amp(f):
        return 2 * abs(np.mean(mix * np.exp(-2j * np.pi * f * t)))

    assert amp(330.0) / amp(220.0) == pytest.approx(4.0, rel=0.02)
