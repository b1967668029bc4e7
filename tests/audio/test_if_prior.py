"""The harmonic IF prior: the test tone, its IF map, the generator's prior path, loading."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from audio.generate import TimbreGenerator, save_timbre_generator
from audio.lightning import load_generator_weights
from audio.modules import DRUM_PROGRAM, Generator
from audio.spectral import HARMONIC_CEILING, SpecConfig, SpecTransform, harmonic_if_prior, harmonic_tone
from pipeline.errors import UserError

GEN_KWARGS = dict(latent_dim=8, frames=16, bins=16, channels=[16, 12, 8], pitch_dim=4, program_dim=4)
SPEC = {"sample_rate": 8000, "n_fft": 128, "hop": 32, "n_mels": 16}


def _sine_sum(pitch: float, samples: int, sr: int) -> torch.Tensor:
    f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
    t = torch.arange(samples, dtype=torch.float64) / sr
    n = int(math.floor(HARMONIC_CEILING * sr / 2 / f0))
    return sum(torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, n + 1))


@pytest.mark.parametrize("pitch", [24, 45, 69, 80])
def test_harmonic_tone_is_the_sum_of_its_harmonics(pitch):
    tone = harmonic_tone(pitch, 4000, 16000)
    assert tone.shape == (4000,) and tone.dtype == torch.float32
    ref = _sine_sum(pitch, 4000, 16000)
    assert (tone.double() - ref).abs().max().item() < 1e-3 * ref.abs().max().item()


def test_harmonic_tone_above_the_ceiling_is_silent_and_bad_length_raises():
    # MIDI 127 is 12.5 kHz: no harmonic below 16 kHz's Nyquist frequency
    assert torch.equal(harmonic_tone(127, 100, 16000), torch.zeros(100))
    assert harmonic_tone(60, 0, 16000).shape == (0,)
    with pytest.raises(ValueError, match="samples"):
        harmonic_tone(60, -1, 16000)


def test_if_prior_reads_the_fundamental_in_its_bin():
    """Linear transform, n_fft 512, hop 128 at 16 kHz: A4 = 440 Hz lies in bin 14 (437.5 Hz), where a
    steady sinusoid reads wrap(2 pi 440 128 / 16000) / pi = wrap(2 pi * 3.52) / pi = -0.96."""
    tr = SpecTransform(SpecConfig(sample_rate=16000, n_fft=512, hop=128, n_mels=None))
    table = harmonic_if_prior(tr, 32, pitches=128)
    assert table.shape == (128, 32, tr.bins)
    assert table[69, 4:-4, 14].sub(-0.96).abs().max().item() < 0.01
    # an octave lower the fundamental sits in bin 7 (218.75 Hz): wrap(2 pi * 1.76) / pi = -0.48
    assert table[57, 4:-4, 7].sub(-0.48).abs().max().item() < 0.01
    # the cache hands out copies: changing one does not change the next
    table[69].zero_()
    assert table[69].abs().max() == 0 and harmonic_if_prior(tr, 32)[69].abs().max() > 0.5


def _prior_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(**GEN_KWARGS, if_prior=True)
    g.norm_mean.normal_()
    g.norm_std.uniform_(0.5, 2.0)
    g.set_if_prior(torch.rand(128, 16, 16) * 2 - 1)
    return g


def _inputs():
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    return z, torch.tensor([60, 64, 36]), torch.tensor([0, 40, DRUM_PROGRAM]), torch.tensor([100, 90, 127])


def test_generator_if_is_prior_plus_gain_times_residual_and_drums_keep_theirs():
    g = _prior_generator()
    plain = Generator(**GEN_KWARGS)
    plain.load_state_dict({k: v for k, v in g.state_dict().items() if k != "if_residual_gain"})
    z, pitch, program, velocity = _inputs()
    with torch.no_grad():
        raw = plain(z, pitch, program, velocity)
        prior = (g.if_prior_table[pitch] - g.norm_mean[1]) / g.norm_std[1]
        out = g(z, pitch, program, velocity)
        assert torch.equal(out[:, 0], raw[:, 0])  # magnitude untouched
        assert torch.allclose(out[:2, 1], prior[:2], atol=1e-6)  # gain 0: the prior alone
        assert torch.equal(out[2, 1], raw[2, 1])  # drums: the network's IF
        g.if_residual_gain.fill_(0.5)
        out = g(z, pitch, program, velocity)
        assert torch.allclose(out[:2, 1], prior[:2] + 0.5 * raw[:2, 1], atol=1e-6)
        assert torch.equal(out[2, 1], raw[2, 1])


def test_generator_prior_errors():
    g = Generator(**GEN_KWARGS, if_prior=True)
    with pytest.raises(RuntimeError, match="set_if_prior"):
        g(*_inputs())
    with pytest.raises(ValueError, match="shape"):
        g.set_if_prior(torch.zeros(128, 16, 15))
    with pytest.raises(ValueError, match="if_prior=False"):
        Generator(**GEN_KWARGS).set_if_prior(torch.zeros(128, 16, 16))
    # the table follows from the spectral config: it is not part of the saved weights
    assert "if_prior_table" not in g.state_dict() and "if_residual_gain" in g.state_dict()


def test_init_weights_without_the_gain_keep_the_generators_gain(tmp_path):
    plain = Generator(**GEN_KWARGS)
    state = plain.state_dict()
    save_file(state, str(tmp_path / "old.safetensors"))
    g = Generator(**GEN_KWARGS, if_prior=True)
    with torch.no_grad():
        g.if_residual_gain.fill_(0.25)
    loaded = load_generator_weights(tmp_path / "old.safetensors", g)
    g.load_state_dict(loaded)
    assert g.if_residual_gain.item() == 0.25  # kept: the file has no gain (a new generator starts at 0)
    assert Generator(**GEN_KWARGS, if_prior=True).if_residual_gain.item() == 0.0
    assert torch.equal(g.seed.weight, plain.seed.weight)
    # any other missing tensor is still an error
    del state["seed.weight"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(UserError, match="missing"):
        load_generator_weights(tmp_path / "broken.safetensors", Generator(**GEN_KWARGS, if_prior=True))


def test_timbre_generator_with_prior_round_trips(tmp_path):
    g = _prior_generator()
    with torch.no_grad():
        g.if_residual_gain.fill_(0.25)
    meta = {"generator": dict(GEN_KWARGS, if_prior=True), "spec": dict(SPEC), "clip_frames": 16,
            "pitch_vocab": {"pitched": [60], "drums": [36]}, "programs": [0, 128]}
    path = save_timbre_generator(tmp_path / "audio_tiny", g, meta, name="tiny")
    tg = TimbreGenerator.load(path)
    assert tg.model.if_prior and tg.model.if_residual_gain.item() == 0.25
    # the loader computes the prior from the spectral config
    expected = harmonic_if_prior(SpecTransform(SpecConfig(**SPEC)), 16)
    assert torch.equal(tg.model.if_prior_table, expected)
    z, pitch, program, velocity = _inputs()
    a = tg.generate_spec(pitch, program, velocity, z)
    b = TimbreGenerator.load(path).generate_spec(pitch, program, velocity, z)
    assert torch.equal(a, b) and a.shape == (3, 2, 16, 16)
    assert tg.generate(pitch, program, velocity, z).shape == (3, tg.clip_samples)


def test_without_the_residual_a_pitched_notes_if_is_the_prior_alone():
    g = _prior_generator()
    state = g.state_dict()
    torch.manual_seed(0)
    bare = Generator(**GEN_KWARGS, if_prior=True, if_residual=False)
    bare.load_state_dict(state)           # weights with a residual load: the gain is kept, not used
    bare.set_if_prior(g.if_prior_table.clone())
    with torch.no_grad():
        bare.if_residual_gain.fill_(0.5)
        g.if_residual_gain.fill_(0.5)
        z, pitch, program, velocity = _inputs()
        out, with_residual = bare(z, pitch, program, velocity), g(z, pitch, program, velocity)
    prior = (g.if_prior_table[pitch] - g.norm_mean[1]) / g.norm_std[1]
    assert torch.equal(out[:2, 1], prior[:2].to(out.dtype))        # pitched: the prior exactly
    assert not torch.allclose(with_residual[:2, 1], prior[:2], atol=1e-3)
    assert torch.equal(out[2, 1], with_residual[2, 1])             # drums: the network's IF
    assert torch.equal(out[:, 0], with_residual[:, 0])             # magnitudes as with the residual
    assert not bare.if_residual_gain.requires_grad and g.if_residual_gain.requires_grad
    assert set(bare.state_dict()) == set(state)                    # the same tensors: either loads the other
    with pytest.raises(ValueError, match="needs if_prior=True"):
        Generator(**GEN_KWARGS, if_residual=False)


def test_timbre_generator_without_the_residual_round_trips(tmp_path):
    g = _prior_generator()
    meta = {"generator": dict(GEN_KWARGS, if_prior=True, if_residual=False), "spec": dict(SPEC), "clip_frames": 16,
            "pitch_vocab": {"pitched": [60], "drums": [36]}, "programs": [0, 128]}
    path = save_timbre_generator(tmp_path / "audio_tiny", g, meta, name="tiny")
    tg = TimbreGenerator.load(path)
    assert tg.model.if_prior and not tg.model.if_residual
    z, pitch, program, velocity = _inputs()
    spec = tg.generate_spec(pitch[:1], program[:1], velocity[:1], z[:1])
    prior = (tg.model.if_prior_table[60] - tg.model.norm_mean[1]) / tg.model.norm_std[1]
    torch.testing.assert_close(spec[0, 1], tg.model.denormalize(torch.stack([spec.new_zeros(16, 16), prior])[None])[0, 1])
