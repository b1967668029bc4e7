"""The note renderer: envelope, velocity steps, seamless sustain extension, placement, caching."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audio.render import (DRUM_PROGRAM, NoteRenderer, RenderNote, envelope, extend_spec, notes_from_midi,
                          quantize_velocity, slerp, sounding_spec, timbre_latent)
from audio.spectral import SpecConfig, SpecTransform

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from fakes import FakeTimbreGenerator  # noqa: E402

SR = 16000


def test_envelope_values_at_known_samples():
    # sr 1000: attack 10 samples, release 300 samples
    env = envelope(100, 1000, attack_s=0.010, release_s=0.3)
    assert env.shape == (400,)
    assert env[0] == 0.0
    assert env[5] == pytest.approx(0.5)
    assert env[10] == pytest.approx(1.0)
    assert env[99] == pytest.approx(1.0)
    assert env[100] == pytest.approx(1.0)  # release starts at the note-off
    assert env[250] == pytest.approx(0.5)
    assert env[399] == pytest.approx(1 / 300)


def test_envelope_short_note_releases_from_its_level():
    env = envelope(4, 1000, attack_s=0.010, release_s=0.3)
    assert env[3] == pytest.approx(0.3)
    assert env[4] == pytest.approx(0.4)  # level at note-off is 4/10
    assert env[154] == pytest.approx(0.2)
    assert len(env) == 304


def test_quantize_velocity_steps():
    assert quantize_velocity(1) == (0, 8)
    assert quantize_velocity(127) == (7, 120)
    assert quantize_velocity(100)[0] == quantize_velocity(101)[0] == 6
    steps = [quantize_velocity(v)[0] for v in range(1, 128)]
    assert steps == sorted(steps) and set(steps) == set(range(8))


def _tone_spec(tr: SpecTransform, seconds: float, f0: float = 220.0) -> torch.Tensor:
    n = int(seconds * SR)
    t = torch.arange(n, dtype=torch.float64) / SR
    wave = sum(0.5 ** h * torch.sin(2 * math.pi * (h + 1) * f0 * t + h) for h in range(4))
    wave = (0.2 * wave).float()[None]
    return tr.wave_to_spec(wave, frames=tr.frames_for(n))


def _max_jump(wave: np.ndarray, lo: int, hi: int) -> float:
    """Largest second difference (a click detector) in wave[lo:hi]."""
    return float(np.abs(np.diff(wave[lo:hi], n=2)).max())


def _flux(spec: torch.Tensor) -> np.ndarray:
    """Spectral flux between consecutive frames of the linear magnitude: [frames - 1]."""
    mag = torch.exp(spec[0, 0]) - 1e-6
    return (mag[1:] - mag[:-1]).abs().sum(dim=1).numpy()


def test_sustain_extension_has_no_seam():
    tr = SpecTransform(SpecConfig(sample_rate=SR, n_fft=512, hop=128))
    spec = _tone_spec(tr, 1.0)
    clip = spec.shape[2]
    frames = 4 * clip
    ext = extend_spec(spec, frames)
    assert ext.shape == (1, 2, frames, spec.shape[3]), ext.shape
    # the frames before the steady window are the clip's own
    lo = int(round(0.45 * clip))
    assert torch.equal(ext[:, :, :lo], spec[:, :, :lo])
    # spectral flux across the whole extension stays at the level inside the clip
    inside = _flux(spec)[5:-5].max()
    assert _flux(ext)[5:-5].max() <= 1.5 * inside + 1e-3
    # in the waveform: no click at the window's end or anywhere after it
    wave = tr.spec_to_wave(ext, tr.samples_for(frames))[0].numpy()
    hop = tr.config.hop
    seam = int(round(0.65 * clip)) * hop
    ref = _max_jump(wave, 2000, lo * hop)
    assert _max_jump(wave, seam - 2000, len(wave) - 2000) <= 1.2 * ref
    # the extension keeps the pitch: the strongest frequency of the last second is still 220 Hz
    tail = wave[-SR:] * np.hanning(SR)
    peak_hz = np.argmax(np.abs(np.fft.rfft(tail))) * SR / SR
    assert abs(peak_hz - 220.0) <= 2.0
    # and its level: RMS of the tail within 1 dB of the clip's steady part
    steady = wave[lo * hop: seam]
    assert abs(20 * np.log10(np.sqrt(np.mean(wave[-SR:] ** 2)) / np.sqrt(np.mean(steady ** 2)))) < 1.0


def test_naive_loop_would_click():
    """The check above can fail: repeating the clip's frames (phase restarting) gives a seam."""
    tr = SpecTransform(SpecConfig(sample_rate=SR, n_fft=512, hop=128))
    spec = _tone_spec(tr, 1.0, f0=223.0)
    complex_spec = tr.stft(tr.spec_to_wave(spec))
    looped = torch.cat([complex_spec, complex_spec], dim=1)  # phase jumps where the copy starts
    # invert the looped complex STFT by hand (istft with the same framing)
    x = torch.nn.functional.pad(looped, (0, 1)) * tr._get("sign", looped.device, torch.float32)
    wave = torch.istft(x.transpose(1, 2), n_fft=512, hop_length=128, window=torch.hann_window(512), center=True)
    wave = wave[0].numpy()
    seam = complex_spec.shape[1] * 128
    assert _max_jump(wave, seam - 600, seam + 600) > 1.2 * _max_jump(wave, 2000, seam - 2000)


def test_extend_spec_cuts_short_notes():
    tr = SpecTransform(SpecConfig(sample_rate=SR, n_fft=512, hop=128))
    spec = _tone_spec(tr, 1.0)
    assert torch.equal(extend_spec(spec, 20), spec[:, :, :20])


def test_sounding_spec_holds_pitched_rows_and_lets_drum_rows_decay():
    torch.manual_seed(0)
    spec = torch.randn(3, 2, 10, 6)
    before = spec.clone()
    drums = torch.tensor([False, True, False])
    out = sounding_spec(spec, 25, drums)
    assert out.shape == (3, 2, 25, 6) and torch.equal(spec, before)
    held = extend_spec(spec, 25)
    assert torch.equal(out[[0, 2]], held[[0, 2]])
    assert torch.equal(out[1, :, :10], spec[1])                      # the hit's own frames
    assert torch.all(out[1, 0, 10:] == math.log(1e-6))               # then silence
    cut = sounding_spec(spec, 4, drums)                              # shorter than the clip: just cut
    assert torch.equal(cut, spec[:, :, :4]) and torch.equal(spec, before)
    late = sounding_spec(spec, 9, drums)     # past the steady window, inside the clip: pitched rows held,
    assert torch.equal(late[[0, 2]], extend_spec(spec, 9)[[0, 2]])   # the drum's its own frames
    assert torch.equal(late[1], spec[1, :, :9]) and torch.equal(spec, before)


def _renderer(**kw):
    gen = FakeTimbreGenerator(clip_s=0.5)
    return gen, NoteRenderer(gen, device="cpu", **kw)


def test_notes_are_placed_at_their_onset_sample():
    gen, r = _renderer()
    timbres = timbre_latent(1, gen.latent_dim)[None]
    notes = [RenderNote(0, 0, 60, 127, 0.5, 0.75), RenderNote(1, 0, 64, 127, 0.123, 0.3)]
    stems = r.render(notes, timbres, n_stems=2)
    onset0, onset1 = 8000, int(round(0.123 * SR))
    assert not stems[0, :onset0 + 1].any()  # the envelope is 0 at the onset sample itself
    assert stems[0, onset0 + 1] != 0
    assert not stems[1, :onset1 + 1].any() and stems[1, onset1 + 1] != 0
    # exact values: cached wave x envelope x velocity gain
    hold = int(round(0.25 * SR))
    env = envelope(hold, SR)
    key = r.key(notes[0])
    expect = r._cache[key][: len(env)] * env
    np.testing.assert_allclose(stems[0, onset0:onset0 + len(env)], expect, rtol=0, atol=1e-7)
    assert stems.shape[1] == onset0 + hold + int(0.3 * SR)


@pytest.mark.parametrize("note,says", [
    (RenderNote(0, 0, 60, 100, -1.0, 0.5), "starts at -1.0 s"),
    (RenderNote(0, 0, 60, 100, math.nan, 0.5), "starts at nan s"),
    (RenderNote(0, 0, 60, 100, 0.5, 0.25), "ends at 0.25 s, before it starts"),
    (RenderNote(0, 0, 200, 100, 0.0, 0.25), "has pitch 200 outside MIDI 0-127"),
])
def test_notes_that_cannot_be_rendered_are_named(note, says):
    # from QA: a negative start was a numpy broadcasting error, a NaN start a conversion error,
    # and an end before the start or a pitch of 200 rendered without a word
    gen, r = _renderer()
    timbres = timbre_latent(1, gen.latent_dim)[None]
    with pytest.raises(ValueError, match=f"note .* {says}"):
        r.render([RenderNote(0, 0, 60, 100, 0.0, 0.2), note], timbres, n_stems=1)
    with pytest.raises(ValueError, match=says):
        r.render([note], timbres, n_stems=1, end_s=1.0)


def test_velocity_is_a_gain():
    gen, r = _renderer()
    timbres = timbre_latent(1, gen.latent_dim)[None]
    loud = r.render([RenderNote(0, 0, 60, 120, 0.0, 0.2)], timbres, n_stems=1)
    soft = r.render([RenderNote(0, 0, 60, 113, 0.0, 0.2)], timbres, n_stems=1)  # same velocity step
    np.testing.assert_allclose(soft, loud * 113 / 120, atol=1e-6)


def test_unique_keys_are_rendered_once():
    gen, r = _renderer()
    timbres = torch.stack([timbre_latent(1, gen.latent_dim), timbre_latent(2, gen.latent_dim)])
    notes = []
    for k in range(10):
        t0 = 0.1 * k
        notes += [RenderNote(0, 0, 60, 100, t0, t0 + 0.2),  # same key as the next one (velocity step 6)
                  RenderNote(0, 0, 60, 101, t0 + 0.05, t0 + 0.1),
                  RenderNote(1, 24, 48, 60, t0, t0 + 0.1),
                  RenderNote(1, 24, 48, 60, t0, t0 + 0.1, timbre=1)]
    r.render(notes, timbres, n_stems=2)
    assert r.generated == 3 and sum(gen.calls) == 3, (r.generated, gen.calls)
    r.render(notes[:4], timbres, n_stems=2)  # all cached
    assert sum(gen.calls) == 3
    # a longer note of a cached key renders that key again (longer)
    r.render([RenderNote(0, 0, 60, 100, 0.0, 2.0)], timbres, n_stems=1)
    assert sum(gen.calls) == 4


def test_long_notes_are_extended_and_capped():
    gen, r = _renderer(max_note_s=1.5)
    timbres = timbre_latent(3, gen.latent_dim)[None]
    stems = r.render([RenderNote(0, 0, 57, 127, 0.0, 5.0)], timbres, n_stems=1)
    assert stems.shape[1] == int(1.5 * SR) + int(0.3 * SR)  # capped at 1.5 s + release
    # the clip is 0.5 s, yet the note keeps sounding at full level until 1.5 s
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    assert rms(stems[0, int(1.3 * SR):int(1.5 * SR)]) > 0.7 * rms(stems[0, int(0.1 * SR):int(0.2 * SR)])


def test_drum_notes_use_drum_program_and_fixed_length():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(0, is_drum=True, name="Drums")
    drums.notes.append(pretty_midi.Note(100, 38, 0.0, 0.05))
    keys = pretty_midi.Instrument(4, name="Keys")
    keys.notes.append(pretty_midi.Note(90, 60, 0.5, 1.0))
    pm.instruments += [drums, keys]
    names, notes = notes_from_midi(pm)
    assert names == ["Drums", "Keys"]
    assert [(n.stem, n.program, n.pitch) for n in notes] == [(0, DRUM_PROGRAM, 38), (1, 4, 60)]
    gen, r = _renderer(drum_hold_s=0.2)
    assert r.hold_samples(notes[0]) == int(0.2 * SR)
    assert r.key(notes[0])[0] == DRUM_PROGRAM


def test_out_of_range_pitches_move_by_octaves():
    gen, r = _renderer()
    assert r.model_pitch(RenderNote(0, 0, 12, 100, 0, 1)) == 24
    assert r.model_pitch(RenderNote(0, 0, 110, 100, 0, 1)) == 86
    assert r.model_pitch(RenderNote(0, DRUM_PROGRAM, 110, 100, 0, 1)) == 110


def _peak_hz(wave: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spec) * SR / len(wave))


def test_out_of_range_pitches_sound_at_their_own_pitch():
    gen, r = _renderer()
    r.pitch_range = (48, 72)                                 # the model learnt C3-C5 only
    timbres = timbre_latent(1, gen.latent_dim)[None]
    hz = {p: 440.0 * 2 ** ((p - 69) / 12) for p in (36, 60, 84, 96)}
    for pitch, shift in ((84, 1), (96, 2), (36, -1), (60, 0)):
        note = RenderNote(0, 0, pitch, 127, 0.0, 1.0)
        assert r.model_pitch(note) == pitch - 12 * shift and r.octave_shift(note) == shift
        stem = r.render([note], timbres, 1)[0]
        assert len(stem) == int(1.3 * SR)                    # 1 s held + 0.3 s release, as any note
        body = stem[int(0.1 * SR): int(0.9 * SR)]            # 0.8 s: 1.25 Hz bins
        # the fake's fundamental is its strongest partial: at the note's pitch, not the model's
        assert _peak_hz(body) == pytest.approx(hz[pitch], abs=2.0), pitch
    # an octave up asks the model for twice the samples, two octaves four times: 72 was
    # rendered again, longer, for 96
    assert r.generated == 4 and len(r._cache[r.key(RenderNote(0, 0, 96, 127, 0.0, 1.0))]) == 4 * int(1.3 * SR)
    gen, r = _renderer()
    r.pitch_range = (48, 72)
    r.render([RenderNote(0, 0, 84, 127, 0.0, 1.0), RenderNote(0, 0, 96, 127, 1.0, 2.0),
              RenderNote(0, 0, 72, 127, 2.0, 3.0)], timbres, 1)
    assert r.generated == 1                                   # one model note, three pitches
    drum = RenderNote(0, DRUM_PROGRAM, 110, 127, 0.0, 0.1)
    assert r.octave_shift(drum) == 0 and r.sounding_pitch(drum) == 110


def test_resampled_notes_are_long_enough_whatever_came_before():
    gen, r = _renderer()
    r.pitch_range = (48, 72)
    timbres = timbre_latent(1, gen.latent_dim)[None]
    # the same model note (72) first for a short note at 84, then for a long one: the shifted
    # wave cached for the short note is too short and is made again
    short = r.render([RenderNote(0, 0, 84, 127, 0.0, 0.1)], timbres, 1)[0]
    long = r.render([RenderNote(0, 0, 84, 127, 0.0, 1.0)], timbres, 1)[0]
    assert len(short) == int(0.4 * SR) and len(long) == int(1.3 * SR) and np.abs(long[-int(0.35 * SR):]).max() > 0
    # below the range, an odd number of samples: the model's half-length note rounds up
    odd = RenderNote(0, 0, 36, 127, 0.0, 3201 / SR)
    assert r.hold_samples(odd) == 3201
    stem = r.render([odd], timbres, 1)[0]
    assert len(stem) == 3201 + int(0.3 * SR) and np.abs(stem[3100:3201]).max() > 0


def test_notes_the_sample_rate_cannot_hold_sound_octaves_down():
    from audio.render import highest_pitch

    gen, r = _renderer()
    r.pitch_range = (48, 72)
    assert highest_pitch(16000) == 117 and highest_pitch(44100) == 134   # 7,040 Hz; 0.45 x 16 kHz = 7,200
    for pitch, sounds in ((117, 117), (118, 106), (127, 115)):
        note = RenderNote(0, 0, pitch, 100, 0.0, 0.5)
        assert r.sounding_pitch(note) == sounds
        assert r.octave_shift(note) == (sounds - r.model_pitch(note)) // 12
    assert r.octave_shift(RenderNote(0, 0, 127, 100, 0.0, 0.5)) == 4        # 115 from 67, not 127: not 5 octaves
    # heard: a note at 120 sounds at 108 (4,186 Hz), the model's 72 eight times as fast
    timbres = timbre_latent(1, gen.latent_dim)[None]
    stem = r.render([RenderNote(0, 0, 120, 127, 0.0, 1.0)], timbres, 1)[0]
    assert _peak_hz(stem[int(0.1 * SR): int(0.9 * SR)]) == pytest.approx(440 * 2 ** ((108 - 69) / 12), abs=3.0)
    # a model whose range is unknown is asked for the pitch the note sounds at, never above it
    r.pitch_range = None
    note = RenderNote(0, 0, 120, 127, 0.0, 1.0)
    assert (r.model_pitch(note), r.sounding_pitch(note), r.octave_shift(note)) == (108, 108, 0)


def test_slerp_ends_and_middle():
    a, b = timbre_latent(1, 16), timbre_latent(2, 16)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    assert 0.8 * min(a.norm(), b.norm()) < mid.norm() < 1.2 * max(a.norm(), b.norm())
    assert torch.equal(timbre_latent(1, 16), a)  # seeded


def test_drum_hits_are_not_extended():
    gen, r = _renderer(drum_hold_s=1.0)  # clip 0.5 s, hit held 1 s: longer than the clip
    timbres = timbre_latent(1, gen.latent_dim)[None]
    stems = r.render([RenderNote(0, DRUM_PROGRAM, 38, 127, 0.0, 0.1)], timbres, n_stems=1)
    clip = gen.transform.samples_for(gen.clip_frames)
    assert np.abs(stems[0, :clip]).max() > 0.01
    assert np.abs(stems[0, clip + 512:]).max() < 1e-4  # silent past the clip (after the window's overlap)


def test_a_drum_hit_keeps_the_models_own_decay_and_fades_by_the_clips_end():
    """The held frame of a sustained note was copied over a hit's tail (a crash held at -37 dB to
    the clip's end, then cut to nothing; found by QA): a hit now is the model's own clip, faded out
    by its end (hold = clip - release)."""
    gen, r = _renderer()                       # clip 0.5 s, release 0.3 s: held 0.2 s
    assert r.drum_hold_s == pytest.approx(gen.clip_samples / SR - r.release_s)
    z = timbre_latent(1, gen.latent_dim)[None]
    stems = r.render([RenderNote(0, DRUM_PROGRAM, 38, 127, 0.0, 0.1)], z, n_stems=1)[0]
    own = gen.generate(torch.tensor([38]), torch.tensor([DRUM_PROGRAM]), torch.tensor([127]), z)[0].numpy()
    hold = int(r.drum_hold_s * SR)
    np.testing.assert_allclose(stems[:hold], own[:hold] * envelope(hold, SR)[:hold], atol=2e-3)
    assert len(stems) == hold + int(r.release_s * SR) and abs(stems[-64:]).max() < 1e-3


def test_drum_keys_the_model_did_not_learn_are_left_out():
    gen, r = _renderer()
    gen.pitch_vocab = {"pitched": list(range(24, 97)), "drums": [36, 38, 42]}
    r = NoteRenderer(gen)
    z = timbre_latent(1, gen.latent_dim)[None]
    stems = r.render([RenderNote(0, DRUM_PROGRAM, 38, 127, 0.0, 0.1), RenderNote(0, DRUM_PROGRAM, 20, 127, 1.0, 1.1),
                      RenderNote(0, DRUM_PROGRAM, 71, 127, 2.0, 2.1)], z, n_stems=1, n_samples=3 * SR)
    assert np.abs(stems[0, :SR]).max() > 0.01 and not stems[0, SR:].any()
