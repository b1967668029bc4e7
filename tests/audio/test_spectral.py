"""Tests for audio.spectral: log magnitude + instantaneous frequency, linear and mel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audio.spectral import (
    LOG_EPS,
    SpecConfig,
    SpecTransform,
    instantaneous_frequency,
    mel_matrix,
    phase_from_if,
    snr_db,
    unwrap,
)

SR = 16000


def _tone(freq: float, samples: int, sr: int = SR, dtype=torch.float64) -> torch.Tensor:
    t = torch.arange(samples, dtype=torch.float64) / sr
    return (0.5 * torch.sin(2 * math.pi * freq * t + 0.3)).to(dtype)[None]


# ---------------------------------------------------------------------------------------------
# config


def test_config_sizes_and_dict_round_trip():
    cfg = SpecConfig(sample_rate=16000, n_fft=2048, hop=512, n_mels=None, drop_nyquist=True)
    assert cfg.bins == 1024 and cfg.linear_bins == 1024
    assert SpecConfig(n_fft=2048, hop=512, drop_nyquist=False).bins == 1025
    assert SpecConfig(n_fft=2048, hop=512, n_mels=256).bins == 256
    # GANSynth: 64,000 samples; 128 frames need (128 - 1) * 512 samples
    assert cfg.frames_for(64000) == 126
    assert cfg.samples_for(128) == 65024 and cfg.frames_for(65024) == 128
    assert cfg.frames_for(65024 + 511) == 128 and cfg.frames_for(65024 + 512) == 129
    mel = SpecConfig(n_fft=512, hop=128, n_mels=128, mel_phase="unwrapped")
    assert SpecConfig.from_dict(mel.to_dict()) == mel
    assert mel.to_dict() == {"sample_rate": 16000, "n_fft": 512, "hop": 128, "n_mels": 128,
                             "drop_nyquist": True, "mel_phase": "unwrapped"}


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="hop must divide"):
        SpecConfig(n_fft=512, hop=100)
    with pytest.raises(ValueError, match="n_fft"):
        SpecConfig(n_fft=511, hop=128)
    with pytest.raises(ValueError, match="unknown keys \\['nfft'\\]"):
        SpecConfig.from_dict({"nfft": 512})
    with pytest.raises(ValueError, match="mel_phase"):
        SpecConfig(mel_phase="linear")


# ---------------------------------------------------------------------------------------------
# phase helpers


def test_unwrap_recovers_a_known_ramp_exactly():
    steps = torch.arange(200, dtype=torch.float64)
    for slope in (2.5, -3.0, 0.1, 3.1):
        ramp = 0.7 + slope * steps
        wrapped = torch.remainder(ramp + math.pi, 2 * math.pi) - math.pi
        got = unwrap(wrapped)
        # unwrapping keeps the first value, which is the wrapped start 0.7
        torch.testing.assert_close(got, ramp, atol=1e-9, rtol=0)


def test_unwrap_matches_numpy_along_any_dim():
    gen = torch.Generator().manual_seed(0)
    phase = (torch.rand(3, 50, 7, generator=gen, dtype=torch.float64) * 2 - 1) * 3 * math.pi
    for dim in (0, 1, 2, -1):
        np.testing.assert_allclose(unwrap(phase, dim=dim).numpy(), np.unwrap(phase.numpy(), axis=dim), atol=1e-12)


def test_instantaneous_frequency_known_values_and_inverse():
    # phase advancing 0.5 pi per frame, starting at -0.25 pi: IF = [-0.25, 0.5, 0.5, ...]
    frames = torch.arange(10, dtype=torch.float64)
    phase = torch.remainder(-0.25 * math.pi + 0.5 * math.pi * frames + math.pi, 2 * math.pi) - math.pi
    if_ = instantaneous_frequency(phase[:, None], time_dim=0)[:, 0]
    expected = torch.full((10,), 0.5, dtype=torch.float64)
    expected[0] = -0.25
    torch.testing.assert_close(if_, expected, atol=1e-12, rtol=0)

    gen = torch.Generator().manual_seed(1)
    p = (torch.rand(2, 40, 9, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    if_ = instantaneous_frequency(p, time_dim=1)
    assert if_.shape == p.shape
    assert float(if_.abs().max()) <= 1.0
    torch.testing.assert_close(phase_from_if(if_, time_dim=1), unwrap(p, dim=1), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------
# known answers on pure tones


@pytest.mark.parametrize("freq, expected_if", [(1040.0, 0.64), (1100.0, -0.4), (1031.25, 0.5)])
def test_pure_tone_if_is_its_phase_advance(freq, expected_if):
    """A steady tone advances by 2 pi f hop / sr rad per hop; IF is that, wrapped, over pi.

    n_fft 512, hop 128, 16 kHz: 2 pi * 1040 * 128 / 16000 = 16.64 pi -> wrapped 0.64 pi -> 0.64;
    1100 Hz: 17.6 pi -> -0.4; 1031.25 Hz (bin 33's centre): 16.5 pi -> 0.5. Relative to bin k's
    centre f_k = k * 31.25 Hz the same value is wrap(k pi / 2 + 2 pi (f - f_k) hop / sr) / pi.
    """
    cfg = SpecConfig(n_fft=512, hop=128)
    tf = SpecTransform(cfg)
    spec = tf.wave_to_spec(_tone(freq, 8000))
    assert spec.shape == (1, 2, cfg.frames_for(8000), 256), spec.shape
    k0 = round(freq * cfg.n_fft / SR)
    inner = spec[0, 1, 3:-3, k0 - 1:k0 + 2]  # away from the edges, the tone's main lobe
    assert torch.allclose(inner, torch.full_like(inner, expected_if), atol=1e-4), inner
    for k in (k0 - 1, k0, k0 + 1):
        f_k = k * SR / cfg.n_fft
        rel = (k * math.pi / 2 + 2 * math.pi * (freq - f_k) * cfg.hop / SR)
        wrapped = (rel + math.pi) % (2 * math.pi) - math.pi
        assert abs(wrapped / math.pi - expected_if) < 1e-9
    # the magnitude peaks at the tone's bin; away from the tone it is far below
    logmag = spec[0, 0, 10]
    assert int(logmag.argmax()) == k0
    assert float(logmag[k0]) > float(logmag[k0 + 20]) + 10


def test_pure_tone_log_magnitude_value():
    """A bin-centred tone of amplitude A under a Hann window of N samples has |X| = A N / 4."""
    cfg = SpecConfig(n_fft=512, hop=128)
    spec = SpecTransform(cfg).wave_to_spec(_tone(1031.25, 8000))
    expected = math.log(0.5 * 512 / 4 + LOG_EPS)
    assert abs(float(spec[0, 0, 20, 33]) - expected) < 1e-6


def test_mel_if_of_a_pure_tone_keeps_its_advance():
    cfg = SpecConfig(n_fft=512, hop=128, n_mels=128)
    tf = SpecTransform(cfg)
    spec = tf.wave_to_spec(_tone(1040.0, 8000))
    band = int(np.argmin(np.abs(tf.bin_frequencies() - 1040.0)))
    inner = spec[0, 1, 3:-3, band]
    assert torch.allclose(inner, torch.full_like(inner, 0.64), atol=1e-4), inner


def test_mel_matrix_rows_are_weighted_means():
    m = mel_matrix(16000, 2048, 1024, 1024)
    assert m.shape == (1024, 1024)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    assert (m >= 0).all()


# ---------------------------------------------------------------------------------------------
# round trips and shapes


@pytest.mark.parametrize("samples", [1, 127, 1001, 4097])
def test_shapes_for_odd_lengths_and_exact_round_trip(samples):
    cfg = SpecConfig(n_fft=256, hop=64, drop_nyquist=False)
    tf = SpecTransform(cfg)
    gen = torch.Generator().manual_seed(samples)
    wave = torch.rand(3, samples, generator=gen, dtype=torch.float64) * 2 - 1
    spec = tf.wave_to_spec(wave)
    assert spec.shape == (3, 2, 1 + samples // 64, 129), spec.shape
    back = tf.spec_to_wave(spec, length=samples)
    assert back.shape == wave.shape, (back.shape, wave.shape)
    assert snr_db(wave, back) > 120


def test_round_trip_float32_batched_equals_single():
    tf = SpecTransform(SpecConfig(n_fft=512, hop=128, drop_nyquist=False))
    gen = torch.Generator().manual_seed(3)
    wave = torch.rand(4, 3000, generator=gen) * 2 - 1
    spec = tf.wave_to_spec(wave)
    assert spec.dtype == torch.float32
    assert float(spec[:, 1].abs().max()) <= 1.0 + 1e-5
    single = torch.cat([tf.wave_to_spec(wave[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(spec, single)
    back = tf.spec_to_wave(spec, 3000)
    assert back.shape == (4, 3000)
    assert snr_db(wave, back) > 60
    # white noise has energy at Nyquist (1/257 of it): dropping that bin loses it
    drop = SpecTransform(SpecConfig(n_fft=512, hop=128, drop_nyquist=True))
    assert 15 < snr_db(wave, drop.spec_to_wave(drop.wave_to_spec(wave), 3000)) < 40


def test_frames_argument_pads_or_cuts():
    tf = SpecTransform(SpecConfig(n_fft=512, hop=128))
    wave = _tone(440.0, 5000, dtype=torch.float32)
    assert tf.wave_to_spec(wave, frames=64).shape == (1, 2, 64, 256)
    assert tf.wave_to_spec(wave, frames=16).shape == (1, 2, 16, 256)
    assert tf.spec_to_wave(tf.wave_to_spec(wave, frames=64)).shape == (1, tf.samples_for(64))


def test_bad_shapes_raise_naming_the_expected_shape():
    tf = SpecTransform(SpecConfig(n_fft=512, hop=128))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        tf.wave_to_spec(torch.zeros(1000))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        tf.wave_to_spec(torch.zeros(2, 1, 1000))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        tf.wave_to_spec(torch.zeros(2, 1000, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[B, 2, frames, 256\].*\(1, 2, 10, 257\)"):
        tf.spec_to_wave(torch.zeros(1, 2, 10, 257))
    with pytest.raises(ValueError, match=r"\[B, 2, frames, 256\]"):
        tf.spec_to_wave(torch.zeros(2, 10, 256))
    mel = SpecTransform(SpecConfig(n_fft=512, hop=128, n_mels=64))
    with pytest.raises(ValueError, match=r"\[B, 2, frames, 64\]"):
        mel.spec_to_wave(torch.zeros(1, 2, 10, 256))


def test_silence_round_trips_to_silence():
    for n_mels in (None, 64):
        tf = SpecTransform(SpecConfig(n_fft=512, hop=128, n_mels=n_mels))
        spec = tf.wave_to_spec(torch.zeros(2, 2000))
        assert torch.allclose(spec[:, 0], torch.full_like(spec[:, 0], math.log(LOG_EPS)))
        assert float(tf.spec_to_wave(spec, 2000).abs().max()) < 1e-9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    wave = torch.rand(2, 16000, generator=torch.Generator().manual_seed(4)) * 2 - 1
    for n_mels in (None, 128):
        tf = SpecTransform(SpecConfig(n_fft=512, hop=128, n_mels=n_mels, drop_nyquist=n_mels is not None))
        cpu = tf.wave_to_spec(wave)
        gpu = tf.wave_to_spec(wave.cuda())
        assert gpu.device.type == "cuda"
        back = tf.spec_to_wave(gpu, 16000)
        assert back.device.type == "cuda" and back.shape == (2, 16000)
        # IF near +-1 can flip sign on tiny rounding differences; compare the magnitude channel
        torch.testing.assert_close(gpu[:, 0].cpu(), cpu[:, 0], atol=1e-3, rtol=1e-4)
        assert snr_db(tf.spec_to_wave(cpu, 16000), back.cpu()) > 40
        if n_mels is None:  # the linear round trip is exact on the GPU too
            assert snr_db(wave, back.cpu()) > 60


# ---------------------------------------------------------------------------------------------
# real notes (FluidSynth)


def _fluid_ready() -> bool:
    from audio.fluid import can_render

    return can_render("timgm6mb")


NOTES = [(0, 48), (0, 72), (56, 60), (56, 67), (40, 55), (40, 76)]  # piano, trumpet, violin


@pytest.fixture(scope="module")
def real_notes() -> torch.Tensor:
    if not _fluid_ready():
        pytest.skip("fluidsynth or the TimGM6mb SoundFont is missing")
    from audio.fluid import NoteSpec, render_notes

    specs = [NoteSpec(program=p, pitch=k, velocity=100, hold_s=1.0, release_s=0.5) for p, k in NOTES]
    waves = render_notes(specs, sample_rate=SR, soundfont="timgm6mb", workers=1)
    batch = torch.from_numpy(np.stack(waves)).float()
    assert float(batch.abs().amax(dim=1).min()) > 1e-3, "a test note came out silent"
    return batch


@pytest.mark.fluidsynth
@pytest.mark.parametrize("n_fft, hop", [(2048, 512), (512, 128)])
def test_linear_round_trip_on_real_notes_is_exact(real_notes, n_fft, hop):
    tf = SpecTransform(SpecConfig(n_fft=n_fft, hop=hop))
    back = tf.spec_to_wave(tf.wave_to_spec(real_notes), real_notes.shape[1])
    snrs = [snr_db(real_notes[i], back[i]) for i in range(len(NOTES))]
    assert min(snrs) >= 60, snrs


@pytest.mark.fluidsynth
@pytest.mark.parametrize("n_fft, hop, n_mels, floor", [(2048, 512, 1024, 20), (512, 128, 256, 20), (512, 128, 128, 15)])
def test_mel_round_trip_on_real_notes(real_notes, n_fft, hop, n_mels, floor):
    tf = SpecTransform(SpecConfig(n_fft=n_fft, hop=hop, n_mels=n_mels))
    spec = tf.wave_to_spec(real_notes)
    assert spec.shape[1:] == (2, tf.frames_for(real_notes.shape[1]), n_mels)
    back = tf.spec_to_wave(spec, real_notes.shape[1])
    snrs = [snr_db(real_notes[i], back[i]) for i in range(len(NOTES))]
    assert np.mean(snrs) >= 20, snrs
    assert min(snrs) >= floor, snrs
    # GANSynth's literal phase warping (mean of unwrapped phase) inverts worse than ours
    lit = SpecTransform(SpecConfig(n_fft=n_fft, hop=hop, n_mels=n_mels, mel_phase="unwrapped"))
    back_lit = lit.spec_to_wave(lit.wave_to_spec(real_notes), real_notes.shape[1])
    assert np.mean([snr_db(real_notes[i], back_lit[i]) for i in range(len(NOTES))]) < np.mean(snrs) - 5
