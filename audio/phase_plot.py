"""The phase picture: why GANSynth models instantaneous frequency instead of phase.

One PNG in the manner of figure 1 of the GANSynth paper (Engel et al. 2019): the waveform with
the STFT frames drawn on it (a zoomed excerpt, where successive frames catch the wave at different
points of its cycle), then the log magnitude, the wrapped phase, the unwrapped phase and the
instantaneous frequency as time-frequency images.

``plot_phase`` takes any mono wave (a WAV file, a FluidSynth note, or a generated note), so a
generated wave can be drawn the same way. ``cli_main`` is ``musegansynth explain-phase``.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from audio.spectral import SpecConfig, SpecTransform, unwrap
from pipeline.errors import UserError
from pipeline.fileio import save_png

#: Bins this far (dB) below the loudest bin are greyed out in the phase panels: there the phase
#: is that of numerical noise.
MASK_BELOW_DB = 45.0


def _as_mono(wave: np.ndarray | torch.Tensor) -> np.ndarray:
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = np.atleast_1d(np.squeeze(x))   # a one-sample wave stays [1]
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"wave should be a non-empty mono signal of shape [T], got {tuple(np.shape(wave))}")
    return x.astype(np.float64)


def phase_views(wave: np.ndarray | torch.Tensor, config: SpecConfig) -> dict[str, np.ndarray]:
    """The four time-frequency views of a mono wave (linear frequency).

    Args:
        wave: mono samples [T].
        config: STFT sizes (``n_mels`` is ignored: the picture is on linear frequency).

    Returns:
        dict of float64 arrays [frames, bins]: ``logmag`` (log(|X| + 1e-6)), ``phase`` (rad in
        [-pi, pi], relative to each frame's centre), ``unwrapped`` (rad, unwrapped along time),
        ``if`` (unwrapped phase difference per frame / pi, the first frame its phase / pi); and
        ``times`` [frames] (s), ``freqs`` [bins] (Hz).
    """
    lin = SpecConfig(sample_rate=config.sample_rate, n_fft=config.n_fft, hop=config.hop, n_mels=None,
                     drop_nyquist=config.drop_nyquist)
    tf = SpecTransform(lin)
    x = torch.from_numpy(_as_mono(wave))[None]
    stft = tf.stft(x)[0]  # [frames, bins] complex128
    phase = torch.angle(stft)
    unwrapped = unwrap(phase, dim=0)
    spec = tf.wave_to_spec(x)[0]
    return {
        "logmag": spec[0].numpy(),
        "phase": phase.numpy(),
        "unwrapped": unwrapped.numpy(),
        "if": spec[1].numpy(),
        "times": tf.frame_times(stft.shape[0]),
        "freqs": tf.bin_frequencies(),
    }


def _zoom_range(x: np.ndarray, config: SpecConfig) -> tuple[int, int, int]:
    """Pick an excerpt around a loud frame centre: (start, stop, first centre) in samples."""
    hop = config.hop
    n_frames = 1 + len(x) // hop
    # RMS per frame centre region; take the loudest frame in the first half (the attack is over)
    half = hop // 2   # each centre's own sample at least (hop 1)
    energies = [float(np.mean(x[max(0, t * hop - half): t * hop + half + 1] ** 2)) if t * hop < len(x) else 0.0
                for t in range(n_frames)]
    t0 = int(np.argmax(energies[: max(1, (n_frames + 1) // 2)]))
    centre = t0 * hop
    start = max(0, centre - hop // 4)
    stop = min(len(x), centre + 2 * hop + hop // 4)
    return start, max(stop, start + 1), centre


def plot_phase(wave: np.ndarray | torch.Tensor, sample_rate: int, out_png: str | os.PathLike,
               config: SpecConfig | None = None, title: str | None = None, max_hz: float | None = None) -> Path:
    """Draw the phase picture of a mono wave into one PNG (written atomically).

    Args:
        wave: mono samples [T] in [-1, 1] (numpy or torch; e.g. a generated note).
        sample_rate: Hz.
        out_png: path of the PNG to write.
        config: STFT sizes; default n_fft 1024, hop 256 at ``sample_rate``. Its sample_rate is
            replaced by ``sample_rate``.
        title: headline of the figure.
        max_hz: top of the frequency axis (default: min(4000 Hz, sample_rate / 2)).

    Returns:
        The path written.

    Raises:
        ValueError: for a wave that is not mono [T].
    """
    from matplotlib.figure import Figure

    x = _as_mono(wave)
    if config is None:
        config = SpecConfig(sample_rate=sample_rate, n_fft=1024, hop=256)
    elif config.sample_rate != sample_rate:
        config = SpecConfig(**{**config.to_dict(), "sample_rate": int(sample_rate)})
    views = phase_views(x, config)
    times, freqs = views["times"], views["freqs"]
    top_hz = min(max_hz if max_hz is not None else 4000.0, sample_rate / 2.0)
    keep = freqs <= top_hz
    bin_hz = sample_rate / config.n_fft
    hop_ms = 1000.0 * config.hop / sample_rate
    extent = [times[0] - 0.5 * config.hop / sample_rate, times[-1] + 0.5 * config.hop / sample_rate,
              -0.5 * bin_hz, freqs[keep][-1] + 0.5 * bin_hz]
    logmag = views["logmag"][:, keep].T
    quiet = logmag < logmag.max() - MASK_BELOW_DB / 20.0 * math.log(10.0)

    fig = Figure(figsize=(14, 15), dpi=100, layout="constrained")
    grid = fig.add_gridspec(4, 2, height_ratios=[1.0, 1.0, 1.0, 0.8])
    if title:
        fig.suptitle(title, fontsize=15, parse_math=False)

    # 1. the whole wave, with the zoomed excerpt shaded
    ax = fig.add_subplot(grid[0, 0])
    t = np.arange(len(x)) / sample_rate
    ax.plot(t, x, lw=0.5, color="tab:blue")
    start, stop, centre = _zoom_range(x, config)
    ax.axvspan(start / sample_rate, stop / sample_rate, color="tab:orange", alpha=0.3, label="zoomed below right")
    ax.set_title("Waveform")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_xlim(0, max(t[-1], 1.0 / sample_rate))
    ax.legend(loc="upper right", fontsize=8)

    # 2. zoom: a few periods, frame centres and windows
    ax = fig.add_subplot(grid[0, 1])
    seg_t = np.arange(start, stop) / sample_rate * 1000.0
    seg = x[start:stop]
    ax.plot(seg_t, seg, lw=1.0, color="tab:blue", label="wave")
    peak = float(np.max(np.abs(seg))) or 1.0
    window = np.hanning(config.n_fft + 1)[:-1]
    colours = ["tab:red", "tab:green", "tab:purple", "tab:brown"]
    for j, c in enumerate(range(centre, stop, config.hop)):
        col = colours[j % len(colours)]
        n = np.arange(c - config.n_fft // 2, c + config.n_fft // 2)
        inside = (n >= start) & (n < stop)
        ax.plot(n[inside] / sample_rate * 1000.0, peak * window[inside], color=col, lw=1.0, ls="--",
                label=f"frame {c // config.hop} window" if j < 3 else None)
        ax.axvline(c / sample_rate * 1000.0, color=col, lw=1.5)
        if c < len(x):
            ax.plot([c / sample_rate * 1000.0], [x[c]], "o", color=col, ms=7)
    ax.set_title(f"STFT frames every {config.hop} samples ({hop_ms:.1f} ms) meet the wave\n"
                 "at a different point of its cycle each time (dots)", fontsize=11)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("amplitude")
    ax.legend(loc="lower right", fontsize=8)

    def image(axis, data, title_text, label, cmap, vmin=None, vmax=None, mask=None):
        shown = np.ma.masked_array(data, mask=mask) if mask is not None else data
        cm = __import__("matplotlib").colormaps[cmap].with_extremes(bad="0.85")
        im = axis.imshow(shown, origin="lower", aspect="auto", extent=extent, cmap=cm, vmin=vmin, vmax=vmax,
                         interpolation="nearest")
        axis.set_title(title_text, fontsize=11)
        axis.set_xlabel("time (s)")
        axis.set_ylabel("frequency (Hz)")
        fig.colorbar(im, ax=axis, label=label)

    grey = f"\n(grey: more than {MASK_BELOW_DB:.0f} dB below the loudest bin)"
    image(fig.add_subplot(grid[1, 0]), logmag, "Log magnitude: where the energy is (harmonics)",
          "log(|X| + 1e-6)", "magma", vmin=max(logmag.min(), logmag.max() - 12.0))
    image(fig.add_subplot(grid[1, 1]), views["phase"][:, keep].T, "Phase wraps around every 2π" + grey,
          "phase (rad)", "twilight", vmin=-math.pi, vmax=math.pi, mask=quiet)
    image(fig.add_subplot(grid[2, 0]), views["unwrapped"][:, keep].T,
          "Unwrapped phase keeps growing (2π added at every wrap)" + grey, "unwrapped phase (rad)", "viridis",
          mask=quiet)
    image(fig.add_subplot(grid[2, 1]), views["if"][:, keep].T,
          "Instantaneous frequency: how fast phase turns, per frame\n"
          "(constant along each harmonic: this is what GANSynth models)", "IF (π rad per hop)", "coolwarm",
          vmin=-1.0, vmax=1.0, mask=quiet)

    # 7. one harmonic close up: the wrapped phase is a sawtooth, the unwrapped phase a straight
    # line whose slope (per frame) is the IF
    loud = views["logmag"]
    k = int(np.argmax(loud[:, keep].mean(axis=0)))
    ax = fig.add_subplot(grid[3, :])
    ax.plot(times, views["phase"][:, k], ".", ms=4, color="tab:purple", label="wrapped phase (rad)")
    ax.plot(times, views["unwrapped"][:, k], "-", lw=1.5, color="tab:green", label="unwrapped phase (rad)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("phase (rad)")
    ax2 = ax.twinx()
    ax2.plot(times, views["if"][:, k], "-", lw=1.0, color="tab:red", label="IF (π rad per hop)")
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_ylabel("IF (π rad per hop)", color="tab:red")
    ax.set_title(f"The loudest bin, {freqs[k]:.0f} Hz: the wrapped phase jumps by 2π at every wrap; unwrapped, "
                 "it is a smooth curve whose slope per frame is the IF\n(a steady tone of f Hz turns by "
                 "2π·f·hop/sample rate per frame, seen wrapped to [-π, π): a straight line)", fontsize=11)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)

    out_png = Path(out_png)
    save_png(fig, out_png)
    return out_png


# ---------------------------------------------------------------------------------------------
# command line


#: Longest stretch of audio analysed (s): ``--seconds`` is at most this, and a longer WAV is cut to it.
MAX_SECONDS = 60.0


def _read_wav(path: str, seconds: float | None) -> tuple[np.ndarray, int]:
    """A WAV mixed to mono, float32 [T], and its rate; cut to ``seconds`` (default: the first
    :data:`MAX_SECONDS`, with a note on stderr when the file is longer)."""
    import sys

    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{path}: is a folder (expected an audio file)")
    if not p.is_file():
        raise UserError(f"{path}: no such audio file")
    try:
        info = sf.info(str(p))
        sr = int(info.samplerate)
        if seconds is None and info.frames > MAX_SECONDS * sr:
            print(f"musegansynth: note: {path} lasts {info.frames / sr:.1f} s; analysing its first "
                  f"{MAX_SECONDS:.0f} s (choose less with --seconds)", file=sys.stderr)
            seconds = MAX_SECONDS
        # only what is analysed is read: a long recording is not loaded whole
        frames = -1 if seconds is None else max(1, int(round(seconds * sr)))
        data, sr = sf.read(str(p), frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{path}: cannot read audio ({reason})") from None
    if data.shape[0] == 0:
        raise UserError(f"{path}: the audio file holds no samples")
    if not np.isfinite(data).all():
        raise UserError(f"{path}: holds samples that are not numbers (NaN or infinite); nothing to draw")
    if not data.any():
        raise UserError(f"{path}: is silent{' in the part analysed' if seconds is not None else ''}; "
                        f"a phase has nothing to show")
    return data.mean(axis=1), int(sr)


def _render(pitch: int, instrument: str, velocity: int, seconds: float, sample_rate: int,
            soundfont: str | None) -> np.ndarray:
    from audio.families import DRUM_PROGRAM, instrument_name_to_program
    from audio.fluid import render_note

    program = instrument_name_to_program(instrument)
    is_drum = program == DRUM_PROGRAM
    wave = render_note(program=0 if is_drum else program, pitch=pitch, velocity=velocity, hold_s=0.75 * seconds,
                       release_s=0.25 * seconds, is_drum=is_drum, sample_rate=sample_rate, soundfont=soundfont)
    if float(np.max(np.abs(wave))) < 1e-5:
        raise UserError(f"--instrument {instrument!r} --pitch {pitch}: the SoundFont has no sound for this note")
    return wave


def _generate(pitch: int, program: int, velocity: int, weights: str | None, seed: int) -> tuple[np.ndarray, int, int]:
    """One note from the timbre model (its clip, before any sustain extension): ([T] float32, sample
    rate, the program it played).

    A program the model was not trained on is played as the nearest one it knows, and a pitch outside
    the pitches it learnt is kept: each with a warning line on stderr, as ``musegansynth render`` does.
    """
    import sys

    import torch

    from audio.families import DRUM_PROGRAM, program_name
    from audio.generate import TimbreGenerator
    from pipeline.config import resolve_weights_path
    from pipeline.render import DEFAULT_AUDIO_WEIGHTS, known_programs, nearest_program

    gen = TimbreGenerator.load(resolve_weights_path(weights or DEFAULT_AUDIO_WEIGHTS, "audio", "--weights",
                                                    default=weights is None))
    is_drum = program == DRUM_PROGRAM
    known = known_programs(gen)
    if is_drum and gen.programs and DRUM_PROGRAM not in gen.programs:
        print("musegansynth: warning: the timbre model was not trained on drums; the note may sound like nothing "
              "in particular", file=sys.stderr)
    elif not is_drum and known is not None and program not in known:
        target = nearest_program(program, known)
        print(f"musegansynth: warning: program {program} ({program_name(program)}) is unknown to the timbre model; "
              f"playing it as {target} ({program_name(target)})", file=sys.stderr)
        program = target
    learnt = [int(p) for p in (gen.pitch_vocab or {}).get("drums" if is_drum else "pitched", [])]
    if learnt and not min(learnt) <= pitch <= max(learnt):
        print(f"musegansynth: warning: --pitch {pitch} is outside the {'drum keys' if is_drum else 'pitches'} the "
              f"timbre model learnt ({min(learnt)}-{max(learnt)}); the note may be poor", file=sys.stderr)
    z = gen.sample_z(1, torch.Generator().manual_seed(seed))
    wave = gen.generate(torch.tensor([pitch]), torch.tensor([program]), torch.tensor([velocity]), z)
    return np.asarray(wave[0].detach().cpu().numpy(), dtype=np.float32), int(gen.sample_rate), program


#: STFT window of the picture when ``--n-fft`` is not given (samples).
DEFAULT_N_FFT = 1024


def _check_length(samples: int, config: SpecConfig) -> None:
    """UserError unless the wave fills at least one STFT window of the picture."""
    if samples < config.n_fft:
        ms = samples / config.sample_rate * 1000
        raise UserError(f"the audio lasts {samples} samples ({ms:.1f} ms); the picture needs at least one STFT "
                        f"window of {config.n_fft} (more --seconds, or a smaller --n-fft)")


def _stft_config(sample_rate: int, n_fft: int | None, hop: int | None) -> SpecConfig:
    """The STFT of the picture from ``--n-fft`` / ``--hop`` as given (None: not given; defaults
    :data:`DEFAULT_N_FFT` and n_fft / 4). UserError naming only the options the user gave (and the
    derived default hop when that is the value at fault)."""
    n = DEFAULT_N_FFT if n_fft is None else n_fft
    h = n // 4 if hop is None else hop
    try:
        return SpecConfig(sample_rate=sample_rate, n_fft=n, hop=h)
    except ValueError as exc:
        if not str(exc).startswith("hop"):  # n_fft at fault; the default is valid, so --n-fft was given
            raise UserError(f"--n-fft {n}: {exc}") from None
        if hop is None:
            raise UserError(f"--n-fft {n}: its default hop n_fft / 4 = {h} does not divide n_fft / 2 = {n // 2} "
                            f"(needed for exact inversion); give --hop too") from None
        given = f"--n-fft {n_fft} --hop {hop}" if n_fft is not None else f"--hop {hop}"
        raise UserError(f"{given}: {exc}") from None


def cli_main(argv: Sequence[str]) -> int:
    """``musegansynth explain-phase [WAV | --pitch P --instrument NAME] --out PNG [...]``.

    ``argv[0]`` is the program name for usage messages. Returns 0; bad input raises UserError.
    """
    argv = list(argv)
    parser = argparse.ArgumentParser(
        prog=argv[0] if argv else "explain-phase",
        description="Draw a note's waveform with its STFT frames, log magnitude, wrapped phase, unwrapped phase "
                    "and instantaneous frequency (figure 1 of the GANSynth paper) into one PNG.")
    parser.add_argument("wav", nargs="?", help="a WAV (or any file soundfile reads); mono or mixed down")
    parser.add_argument("--pitch", type=int, help="MIDI pitch 0-127 of a note rendered with FluidSynth")
    parser.add_argument("--instrument", help="GM instrument name (e.g. 'Trumpet', 'Acoustic Grand Piano', 'drums')")
    parser.add_argument("--velocity", type=int, default=100, help="MIDI velocity 1-127 of the rendered note")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"seconds of audio to analyse (default: 1.0 for a rendered note; a WAV's first {MAX_SECONDS:.0f} s, all of a shorter one)")
    parser.add_argument("--n-fft", type=int, default=None,
                        help=f"STFT window in samples, even, at least 4 (default {DEFAULT_N_FFT})")
    parser.add_argument("--hop", type=int, default=None, help="samples between frames (default n_fft / 4)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="sample rate of a note rendered with FluidSynth, 8000-96000 Hz (default 16000)")
    parser.add_argument("--max-hz", type=float, default=None, help="top of the frequency axis (default 4000 Hz)")
    parser.add_argument("--soundfont", default=None, help="SoundFont name or path (default FluidR3_GM)")
    parser.add_argument("--title", default=None, help="headline of the figure")
    parser.add_argument("--generated", action="store_true",
                        help="draw a note made by the timbre model (with --pitch and --instrument) instead of FluidSynth")
    parser.add_argument("--weights", default=None,
                        help="timbre model weights for --generated (default: the shipped audio_default)")
    parser.add_argument("--timbre-seed", type=int, default=None,
                        help="seed of the timbre latent for --generated, 0 to 2**31 - 1 (default 0)")
    args = parser.parse_args(argv[1:])

    _stft_config(16000, args.n_fft, args.hop)  # bad sizes are refused before any rendering
    if Path(args.out).suffix.lower() != ".png":
        raise UserError(f"--out {args.out}: the picture is a PNG; name it *.png")
    if args.max_hz is not None and not (0 < args.max_hz < float("inf")):
        raise UserError(f"--max-hz {args.max_hz}: must be a positive number of Hz")
    if args.seconds is not None and not (0 < args.seconds <= MAX_SECONDS):
        raise UserError(f"--seconds {args.seconds}: must be > 0 and at most {MAX_SECONDS:.0f}")
    # options that would do nothing in the chosen mode are refused by name
    if args.wav is not None and args.generated:
        raise UserError("--generated draws a note of the timbre model from --pitch and --instrument; "
                        "it takes no WAV file")
    if args.generated and args.seconds is not None:
        raise UserError("--seconds: a --generated note lasts the timbre model's clip; it takes no length")
    if not args.generated:
        for flag, value in (("--timbre-seed", args.timbre_seed), ("--weights", args.weights)):
            if value is not None:
                raise UserError(f"{flag} is for --generated notes only (the timbre model)")
    if args.generated or args.wav is not None:
        mode = "--generated (the timbre model renders at its own rate)" if args.generated else "a WAV file"
        for flag, value in (("--sample-rate", args.sample_rate), ("--soundfont", args.soundfont)):
            if value is not None:
                raise UserError(f"{flag} is for notes rendered with FluidSynth; it has no effect with {mode}")
    if args.timbre_seed is not None and not 0 <= args.timbre_seed < 2**31:
        raise UserError(f"--timbre-seed {args.timbre_seed}: must be 0 to {2**31 - 1}")
    if args.wav is not None:
        if args.pitch is not None or args.instrument is not None:
            raise UserError("give either a WAV file or --pitch and --instrument, not both")
        wave, sr = _read_wav(args.wav, args.seconds)
        title = args.title or f"{Path(args.wav).name}: why GANSynth models instantaneous frequency"
    else:
        if args.pitch is None or args.instrument is None:
            raise UserError("give a WAV file, or both --pitch and --instrument to render a note")
        if not 0 <= args.pitch <= 127:
            raise UserError(f"--pitch {args.pitch}: MIDI pitch must be 0-127")
        if not 1 <= args.velocity <= 127:
            raise UserError(f"--velocity {args.velocity}: must be 1-127")
        if args.sample_rate is not None:
            from audio.fluid import check_sample_rate

            check_sample_rate(args.sample_rate, "--sample-rate")
        from audio.families import instrument_name_to_program, program_name

        program = instrument_name_to_program(args.instrument)
        if args.generated:
            wave, sr, program = _generate(args.pitch, program, args.velocity, args.weights, args.timbre_seed or 0)
            name = f"{program_name(program) if program < 128 else 'drums'} by the timbre model"   # as played
        else:
            name = program_name(program) if program < 128 else "drums"
            sr = args.sample_rate or 16000
            _check_length(int(round((args.seconds or 1.0) * sr)), _stft_config(sr, args.n_fft, args.hop))
            wave = _render(args.pitch, args.instrument, args.velocity, args.seconds or 1.0, sr, args.soundfont)
        title = args.title or (f"{name}, MIDI {args.pitch} ({440.0 * 2 ** ((args.pitch - 69) / 12):.1f} Hz): "
                               "why GANSynth models instantaneous frequency")
    config = _stft_config(sr, args.n_fft, args.hop)
    _check_length(len(wave), config)
    out = Path(args.out)
    plot_phase(wave, sr, out, config=config, title=title, max_hz=args.max_hz)
    print(out)
    return 0
