"""Tests for audio.phase_plot: the explain-phase picture and its command line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio.phase_plot import cli_main, phase_views, plot_phase
from audio.spectral import SpecConfig
from pipeline.errors import UserError

SR = 16000
PROG = "musegansynth explain-phase"


def _tone(freq: float = 440.0, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * math.pi * freq * t) * np.minimum(1.0, 20 * t)).astype(np.float32)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_phase_views_are_consistent():
    views = phase_views(_tone(1040.0), SpecConfig(n_fft=512, hop=128))
    n_frames = 1 + 8000 // 128
    for key in ("logmag", "phase", "unwrapped", "if"):
        assert views[key].shape == (n_frames, 256), (key, views[key].shape)
    assert views["times"].shape == (n_frames,) and views["freqs"][1] == pytest.approx(31.25)
    # IF is the unwrapped phase's per-frame difference over pi; the wrapped phase stays in [-pi, pi]
    np.testing.assert_allclose(np.diff(views["unwrapped"], axis=0) / math.pi, views["if"][1:], atol=1e-9)
    assert np.abs(views["phase"]).max() <= math.pi + 1e-12
    # the tone (bin 33) turns 0.64 pi per hop: 2 pi * 1040 * 128 / 16000 = 16.64 pi, wrapped
    np.testing.assert_allclose(views["if"][10:-10, 33], 0.64, atol=1e-3)


def test_plot_phase_writes_one_png(tmp_path):
    out = tmp_path / "phase.png"
    got = plot_phase(torch.from_numpy(_tone())[None], SR, out, title="a generated note")  # [1, T] like a model's
    assert got == out and out.is_file()
    width, height = _png_size(out)
    assert 800 <= width <= 3000 and 800 <= height <= 3000, (width, height)
    assert out.stat().st_size > 50_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phase.png"]  # no temporary left
    with pytest.raises(ValueError, match=r"\[T\]"):
        plot_phase(np.zeros((2, 100)), SR, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_cli_from_wav(tmp_path, capsys):
    wav = tmp_path / "tone.wav"
    sf.write(wav, np.stack([_tone(), _tone()], axis=1), 22050)  # stereo, another rate
    out = tmp_path / "pics" / "tone.png"
    assert cli_main([PROG, str(wav), "--out", str(out), "--n-fft", "512", "--seconds", "0.3"]) == 0
    assert out.is_file() and _png_size(out)[0] > 800
    assert str(out) in capsys.readouterr().out


def test_cli_bad_input_names_it_and_leaves_nothing(tmp_path):
    out = tmp_path / "out.png"
    missing = tmp_path / "missing.wav"
    with pytest.raises(UserError, match="missing.wav: no such audio file"):
        cli_main([PROG, str(missing), "--out", str(out)])
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file at all" * 10)
    with pytest.raises(UserError, match="garbage.wav: cannot read audio"):
        cli_main([PROG, str(garbage), "--out", str(out)])
    wav = tmp_path / "ok.wav"
    sf.write(wav, _tone(), SR)
    with pytest.raises(UserError, match="either a WAV file or --pitch"):
        cli_main([PROG, str(wav), "--pitch", "60", "--out", str(out)])
    with pytest.raises(UserError, match="both --pitch and --instrument"):
        cli_main([PROG, "--pitch", "60", "--out", str(out)])
    with pytest.raises(UserError, match="--pitch 200"):
        cli_main([PROG, "--pitch", "200", "--instrument", "trumpet", "--out", str(out)])
    with pytest.raises(UserError, match="--hop 300.*hop must divide"):
        cli_main([PROG, str(wav), "--n-fft", "1024", "--hop", "300", "--out", str(out)])
    with pytest.raises(UserError, match="out.jpg.*PNG"):
        cli_main([PROG, str(wav), "--out", str(tmp_path / "out.jpg")])
    with pytest.raises(UserError, match="instrument 'trumpte'.*Trumpet"):
        cli_main([PROG, "--pitch", "60", "--instrument", "trumpte", "--out", str(out)])
    # from QA: a NaN / an infinite sample, or silence, drew a meaningless picture with exit 0
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        x = _tone().astype(np.float32)
        x[100] = value
        sf.write(tmp_path / name, x, SR, subtype="FLOAT")
        with pytest.raises(UserError, match=f"{name}: holds samples that are not numbers"):
            cli_main([PROG, str(tmp_path / name), "--out", str(out)])
    sf.write(tmp_path / "quiet.wav", np.zeros(SR, np.float32), SR)
    with pytest.raises(UserError, match="quiet.wav: is silent; a phase has nothing to show"):
        cli_main([PROG, str(tmp_path / "quiet.wav"), "--out", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.wav", "inf.wav", "nan.wav", "ok.wav", "quiet.wav"]


@pytest.mark.parametrize("options,says", [
    (["--n-fft", "0"], "--n-fft 0: n_fft must be an even number >= 4"),
    (["--n-fft", "10"], "--n-fft 10: its default hop n_fft / 4 = 2 does not divide n_fft / 2 = 5"),
    (["--hop", "300"], "--hop 300: hop must divide n_fft / 2 = 512"),
    (["--n-fft", "1000", "--hop", "0"], "--n-fft 1000 --hop 0: hop must divide n_fft / 2 = 500"),
])
def test_cli_stft_errors_name_only_the_options_given(tmp_path, monkeypatch, options, says):
    """A bad --n-fft alone does not speak of a --hop never given, and it is refused before rendering."""
    import audio.phase_plot as phase_plot

    def render(*args, **kwargs):
        raise AssertionError("rendered before checking the STFT sizes")

    monkeypatch.setattr(phase_plot, "_render", render)
    out = tmp_path / "x.png"
    with pytest.raises(UserError) as exc:
        cli_main([PROG, "--pitch", "60", "--instrument", "Trumpet", *options, "--out", str(out)])
    message = str(exc.value)
    assert message.startswith(says), message
    if "--hop" not in options:
        assert "--hop" not in message.split(":")[0], message
    assert not out.exists()


def _fluid_ready() -> bool:
    from audio.fluid import can_render

    return can_render("timgm6mb")


@pytest.mark.fluidsynth
@pytest.mark.skipif(not _fluid_ready(), reason="fluidsynth or the TimGM6mb SoundFont is missing")
def test_cli_renders_a_note(tmp_path):
    out = tmp_path / "trumpet.png"
    assert cli_main([PROG, "--pitch", "60", "--instrument", "Trumpet", "--seconds", "0.5",
                     "--soundfont", "timgm6mb", "--out", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 50_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trumpet.png"]


SHIPPED_AUDIO = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "audio_default.safetensors"


@pytest.mark.skipif(not SHIPPED_AUDIO.exists(), reason="no shipped timbre model")
def test_cli_draws_a_generated_note(tmp_path):
    out = tmp_path / "gen.png"
    assert cli_main(["explain-phase", "--generated", "--pitch", "60", "--instrument", "trumpet", "--out", str(out)]) == 0
    assert out.stat().st_size > 50_000, out.stat().st_size
    with pytest.raises(UserError, match="nope.safetensors"):
        cli_main(["explain-phase", "--generated", "--pitch", "60", "--instrument", "trumpet",
                  "--weights", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "bad.png")])
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("options,says", [
    (["WAV", "--generated"], "--generated draws a note of the timbre model"),
    (["--pitch", "60", "--instrument", "Trumpet", "--timbre-seed", "3"], "--timbre-seed is for --generated notes only"),
    (["--pitch", "60", "--instrument", "Trumpet", "--weights", "w.safetensors"], "--weights is for --generated notes only"),
    (["WAV", "--timbre-seed", "0"], "--timbre-seed is for --generated notes only"),
    (["--generated", "--pitch", "60", "--instrument", "Trumpet", "--sample-rate", "22050"],
     "--sample-rate is for notes rendered with FluidSynth; it has no effect with --generated"),
    (["WAV", "--sample-rate", "16000"], "--sample-rate is for notes rendered with FluidSynth; it has no effect with a WAV"),
    (["WAV", "--soundfont", "timgm6mb"], "--soundfont is for notes rendered with FluidSynth"),
    (["--generated", "--pitch", "60", "--instrument", "Trumpet", "--timbre-seed", "-1"],
     "--timbre-seed -1: must be 0 to 2147483647"),
    (["--pitch", "60", "--instrument", "Trumpet", "--sample-rate", "4000"],
     "--sample-rate 4000: out of range (FluidSynth renders at 8000 to 96000 Hz)"),
    (["--pitch", "60", "--instrument", "Trumpet", "--sample-rate", "192000"], "--sample-rate 192000: out of range"),
    (["--pitch", "60", "--instrument", "Trumpet", "--sample-rate", "1000"], "--sample-rate 1000: out of range"),
    (["--generated", "--pitch", "60", "--instrument", "Trumpet", "--seconds", "3"],
     "--seconds: a --generated note lasts the timbre model's clip"),
])
def test_cli_refuses_options_without_effect_and_bad_rates(tmp_path, monkeypatch, options, says):
    import audio.phase_plot as phase_plot

    def never(*args, **kwargs):
        raise AssertionError("rendered or generated before refusing the options")

    monkeypatch.setattr(phase_plot, "_render", never)
    monkeypatch.setattr(phase_plot, "_generate", never)
    wav = tmp_path / "ok.wav"
    sf.write(wav, _tone(), SR)
    out = tmp_path / "x.png"
    with pytest.raises(UserError) as exc:
        cli_main([PROG, *[str(wav) if o == "WAV" else o for o in options], "--out", str(out)])
    assert str(exc.value).startswith(says), str(exc.value)
    assert not out.exists()


class _FakeTimbre:
    """Stands in for audio.generate.TimbreGenerator: knows Trumpet (56) and piano (0), pitches 48-72."""

    sample_rate, latent_dim, programs = SR, 4, [0, 56]
    pitch_vocab = {"pitched": list(range(48, 73)), "drums": []}
    played: list = []

    @classmethod
    def load(cls, path, *args, **kwargs):
        return cls()

    def sample_z(self, n, generator):
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, pitch, program, velocity, z):
        self.played.append((int(pitch[0]), int(program[0])))
        return torch.from_numpy(_tone()[None])


def test_generated_note_outside_what_the_model_learnt_warns_and_maps(tmp_path, monkeypatch, capsys):
    import audio.generate

    monkeypatch.setattr(audio.generate, "TimbreGenerator", _FakeTimbre)
    weights = tmp_path / "audio_fake.safetensors"
    weights.write_bytes(b"stand-in")
    _FakeTimbre.played.clear()
    out = tmp_path / "g.png"
    base = [PROG, "--generated", "--weights", str(weights), "--out", str(out)]
    assert cli_main([*base, "--pitch", "60", "--instrument", "Trumpet"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli_main([*base, "--pitch", "60", "--instrument", "Trombone"]) == 0  # 57: unknown, same family as 56
    err = capsys.readouterr().err
    assert "program 57 (Trombone) is unknown to the timbre model; playing it as 56 (Trumpet)" in err, err
    assert cli_main([*base, "--pitch", "100", "--instrument", "Trumpet"]) == 0
    err = capsys.readouterr().err
    assert "--pitch 100 is outside the pitches the timbre model learnt (48-72)" in err, err
    assert _FakeTimbre.played == [(60, 56), (60, 56), (100, 56)]


def test_long_wav_is_analysed_over_its_first_60_s_with_a_note(tmp_path, monkeypatch, capsys):
    import audio.phase_plot as phase_plot

    seen = {}

    def plot(wave, sample_rate, out_png, **kwargs):
        seen["samples"] = len(wave)
        Path(out_png).write_bytes(b"png")
        return Path(out_png)

    monkeypatch.setattr(phase_plot, "plot_phase", plot)
    rate = 8000
    wav = tmp_path / "long.wav"
    sf.write(wav, np.zeros(rate * 61 + 5, dtype=np.float32) + 0.1, rate)
    assert cli_main([PROG, str(wav), "--out", str(tmp_path / "l.png")]) == 0
    assert seen["samples"] == 60 * rate
    err = capsys.readouterr().err
    assert "long.wav lasts 61.0 s; analysing its first 60 s" in err, err
    assert cli_main([PROG, str(wav), "--seconds", "2", "--out", str(tmp_path / "l.png")]) == 0
    assert seen["samples"] == 2 * rate and "analysing" not in capsys.readouterr().err
    # only what is analysed is read from the file
    frames = []
    real_read = sf.read
    monkeypatch.setattr(sf, "read", lambda *a, **kw: frames.append(kw.get("frames")) or real_read(*a, **kw))
    assert cli_main([PROG, str(wav), "--out", str(tmp_path / "l.png")]) == 0
    assert frames == [60 * rate]


def test_cli_too_little_audio_bad_max_hz_and_a_folder_are_refused(tmp_path, capsys):
    """From QA: a one-sample WAV, a note of 10 microseconds and --max-hz nan were internal errors;
    a folder was "no such audio file"; --hop 1 printed numpy's warnings."""
    out = tmp_path / "p.png"
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.5], np.float32), SR)
    for argv, says in [
        ([str(one)], "the audio lasts 1 samples (0.1 ms); the picture needs at least one STFT window of 1024 "
                     "(more --seconds, or a smaller --n-fft)"),
        (["--pitch", "60", "--instrument", "Trumpet", "--seconds", "0.00001"],
         "the audio lasts 0 samples (0.0 ms); the picture needs at least one STFT window of 1024"),
        ([str(tmp_path), "--seconds", "0.1"], f"{tmp_path}: is a folder (expected an audio file)"),
    ]:
        with pytest.raises(UserError) as info:
            cli_main([PROG, *argv, "--out", str(out)])
        assert str(info.value).startswith(says)
    wav = tmp_path / "ok.wav"
    sf.write(wav, _tone(), SR)
    with pytest.raises(UserError, match=r"^--max-hz nan: must be a positive number of Hz$"):
        cli_main([PROG, str(wav), "--max-hz", "nan", "--out", str(out)])
    assert not out.exists()
    capsys.readouterr()
    assert cli_main([PROG, str(wav), "--n-fft", "4", "--hop", "1", "--out", str(out)]) == 0
    assert _png_size(out)[0] > 800 and capsys.readouterr().err == ""
