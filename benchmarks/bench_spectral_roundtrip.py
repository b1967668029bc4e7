"""Round-trip quality and speed of audio.spectral on real notes.

Renders ~20 single notes (4 s: 3 s held + 1 s release, 16 kHz, like NSynth / GANSynth) with
FluidSynth and FluidR3_GM across instruments and pitches, then for each configuration the project
uses prints the round-trip SNR wave -> (log magnitude, IF) -> wave (mean and worst note) and the
time per note of wave_to_spec and spec_to_wave (batch of all notes, best of --repeat runs; CPU
with one thread by default).

    .venv/bin/python benchmarks/bench_spectral_roundtrip.py [--soundfont fluidr3_gm] [--repeat 3]
        [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import device as device_arg, existing_file, positive_int  # noqa: E402
from audio.fluid import NoteSpec, render_notes  # noqa: E402  (imports no FluidSynth until called)
from audio.spectral import SpecConfig, SpecTransform, snr_db  # noqa: E402

# (GM program, MIDI pitch): piano, e-piano, vibraphone, organ, guitars, bass, strings, choir,
# brass, reeds, flute, synth lead and pad, across MIDI 33-84.
NOTES = [(0, 36), (0, 60), (0, 84), (4, 64), (11, 72), (19, 55), (24, 52), (27, 67), (33, 33), (33, 45),
         (40, 67), (40, 79), (42, 48), (48, 60), (52, 62), (56, 60), (56, 72), (60, 53), (65, 70), (73, 81),
         (80, 69), (88, 57)]

CONFIGS = [
    ("linear, paper (IF)", SpecConfig(n_fft=2048, hop=512)),
    ("linear, small", SpecConfig(n_fft=512, hop=128)),
    ("mel 1024, paper (IF-Mel)", SpecConfig(n_fft=2048, hop=512, n_mels=1024)),
    ("mel 1024, GANSynth phase", SpecConfig(n_fft=2048, hop=512, n_mels=1024, mel_phase="unwrapped")),
    ("mel 512", SpecConfig(n_fft=2048, hop=512, n_mels=512)),
    ("mel 256", SpecConfig(n_fft=2048, hop=512, n_mels=256)),
    ("mel 128", SpecConfig(n_fft=2048, hop=512, n_mels=128)),
    ("mel 256, small", SpecConfig(n_fft=512, hop=128, n_mels=256)),
    ("mel 256, small, GANSynth phase", SpecConfig(n_fft=512, hop=128, n_mels=256, mel_phase="unwrapped")),
    ("mel 128, small", SpecConfig(n_fft=512, hop=128, n_mels=128)),
]


def _best_time(fn, repeat: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", default=None, help="SoundFont name or path (default FluidR3_GM)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="timing runs; the best is kept")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1: per-core speed)")
    parser.add_argument("--device", type=device_arg, default="cpu", help="device for the transforms (cpu or cuda)")
    parser.add_argument("--save-notes", default=None, help="also save the rendered notes to this .npy")
    parser.add_argument("--load-notes", type=existing_file, default=None,
                        help="use notes saved by --save-notes instead of rendering (a machine without FluidSynth)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    device = torch.device(args.device)

    specs = [NoteSpec(program=p, pitch=k, velocity=100, hold_s=3.0, release_s=1.0) for p, k in NOTES]
    start = time.perf_counter()
    if args.load_notes:
        waves = list(np.load(args.load_notes))
    else:
        waves = render_notes(specs, sample_rate=16000, soundfont=args.soundfont)
        if args.save_notes:
            np.save(args.save_notes, np.stack(waves))
    render_s = time.perf_counter() - start
    kept = [(spec, w) for spec, w in zip(specs, waves) if float(np.max(np.abs(w))) > 1e-4]
    batch = torch.from_numpy(np.stack([w for _, w in kept])).float().to(device)
    n, length = batch.shape
    print(f"{n} notes kept of {len(specs)} (silent ones dropped), {length} samples each at 16 kHz, "
          f"rendered (or loaded) in {render_s:.1f} s; torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    print()
    header = (f"| {'configuration':<32} | n_fft | hop | frames x bins | SNR mean (dB) | SNR min (dB) "
              f"| wave_to_spec (ms/note) | spec_to_wave (ms/note) |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    with torch.inference_mode():
        for name, cfg in CONFIGS:
            tf = SpecTransform(cfg)
            spec = tf.wave_to_spec(batch)
            back = tf.spec_to_wave(spec, length)
            snrs = [snr_db(batch[i].cpu(), back[i].cpu()) for i in range(n)]
            t_fwd = _best_time(lambda: tf.wave_to_spec(batch), args.repeat, device) / n
            t_inv = _best_time(lambda: tf.spec_to_wave(spec, length), args.repeat, device) / n
            shape = f"{spec.shape[2]} x {spec.shape[3]}"
            print(f"| {name:<32} | {cfg.n_fft:>5} | {cfg.hop:>3} | {shape:>13} | {np.mean(snrs):>13.1f} "
                  f"| {np.min(snrs):>12.1f} | {1000 * t_fwd:>22.2f} | {1000 * t_inv:>22.2f} |")
    print()
    print("SNR = 10 log10(sum(x^2) / sum((x - x_roundtrip)^2)) per note; mel rows use mel_phase='complex' "
          "unless marked 'GANSynth phase' (mel of the unwrapped phase).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
