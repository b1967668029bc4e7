"""Do the neural renderer's notes sound at the right pitches, in a whole song?

    .venv/bin/python benchmarks/bench_song_chroma.py [--config configs/song/default.yaml] [--seed N]
        [--audio-weights PATH] [--keep DIR]

Generates the song twice from the same config and seed: once voiced by the timbre model
(``--renderer neural``), once by FluidSynth with FluidR3_GM (``--renderer fluidsynth``), the
same MIDI both times (the composer runs before the renderer and is seeded alike). For the mix
and each pitched stem it compares the two renders' chroma: per 4096-sample window (hop 2048),
the energy of the STFT bins from 50 Hz to 2 kHz summed by pitch class and normalised; the score
is the mean cosine similarity over windows louder than the quietest 20% of the FluidSynth
render's. 1.0 means the same pitch classes in the same proportions at every moment; notes a
semitone off or smeared pitch lower it. (FluidSynth's instruments differ from the neural ones
in timbre, so a perfect timbre model does not reach 1.0 either.) A window where only FluidSynth
sounds (its long release tails and reverb after a track stops; the neural render is 60 dB or
more under its loudest window there) scores 0, so the line also gives the mean over the windows
where both sound, and how many windows sound in FluidSynth's render only.

Prints one line per track, e.g. ``chroma_cosine bridge: 0.722 (0.960 where both sound; 134 of
473 windows sound in FluidSynth's render only)``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
N_FFT, HOP, F_LO, F_HI = 4096, 2048, 50.0, 2000.0


def chroma(wave: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm chroma [windows, 12] and the band energy [windows] of a mono wave."""
    if len(wave) < N_FFT:
        wave = np.pad(wave, (0, N_FFT - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, N_FFT)[::HOP] * np.hanning(N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    band = (freqs > F_LO) & (freqs < F_HI)
    pitch_class = np.round(12 * np.log2(freqs[band] / 440.0) + 69).astype(int) % 12
    c = np.stack([power[:, band][:, pitch_class == k].sum(axis=1) for k in range(12)], axis=1)
    return c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-12), power[:, band].sum(axis=1)


def chroma_cosine(reference: Path, render: Path) -> tuple[float, float, int, int]:
    """Chroma cosine of ``render`` against ``reference``: (the mean over the reference's louder
    windows, the mean over those where the render sounds too, the number where it does not, the
    number of louder windows)."""
    ref, sr = sf.read(reference, always_2d=True)
    out, sr2 = sf.read(render, always_2d=True)
    if sr != sr2:
        raise SystemExit(f"{render}: {sr2} Hz, the reference is {sr} Hz")
    c_ref, energy = chroma(ref.mean(axis=1), sr)
    c_out, energy_out = chroma(out.mean(axis=1), sr)
    n = min(len(c_ref), len(c_out))
    loud = energy[:n] > np.percentile(energy[:n], 20)
    silent = energy_out[:n] < 1e-6 * max(float(energy_out[:n].max()), 1e-30)   # 60 dB under its loudest
    cos = (c_ref[:n] * c_out[:n]).sum(axis=1)
    both = loud & ~silent
    return (float(cos[loud].mean()), float(cos[both].mean()) if both.any() else float("nan"),
            int((loud & silent).sum()), int(loud.sum()))


def say(name: str, scores: tuple[float, float, int, int]) -> None:
    mean, both, only_ref, n = scores
    print(f"chroma_cosine {name}: {mean:.3f} ({both:.3f} where both sound; {only_ref} of {n} windows sound in "
          f"FluidSynth's render only)")


def generate(config: Path, out: Path, renderer: str, seed: int | None) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "generate", str(config), "--out", str(out), "--renderer", renderer]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    if done.returncode:   # generate said why on stderr, in one line
        sys.exit(done.returncode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "song" / "default.yaml")
    ap.add_argument("--seed", type=int, default=None, help="default: the config's")
    ap.add_argument("--audio-weights", type=Path, default=None, help="timbre model (default: the config's)")
    ap.add_argument("--keep", type=Path, default=None, help="write the two renders here instead of a temp folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        config = args.config.resolve()
        if args.audio_weights is not None:
            if not config.is_file():
                sys.exit(f"bench_song_chroma: error: --config {args.config}: no such file")
            doc = yaml.safe_load(config.read_text())
            doc.setdefault("weights", {})["audio"] = str(args.audio_weights.resolve())
            config = Path(tmp) / "song.yaml"
            config.write_text(yaml.safe_dump(doc))
        generate(config, work / "neural", "neural", args.seed)
        generate(config, work / "fluidsynth", "fluidsynth", args.seed)
        say("mix", chroma_cosine(work / "fluidsynth" / "song.wav", work / "neural" / "song.wav"))
        for stem in sorted((work / "fluidsynth" / "stems").glob("*.wav")):
            if stem.stem == "drums":
                continue
            say(stem.stem, chroma_cosine(stem, work / "neural" / "stems" / stem.name))


if __name__ == "__main__":
    main()
