"""Do notes above the pitches the timbre model learnt sound at their own pitch?

    .venv/bin/python benchmarks/bench_audio_range.py [--weights data/pretrained/audio_default.safetensors]
        [--programs 0 40 56 73] [--low 85] [--high 100] [--json OUT]

The renderer (``audio.render.NoteRenderer``) plays a pitched note outside the model's range
(its card's ``pitch_range``, MIDI 24-84 for the shipped model) whole octaves into it and
resamples that wave back to the note's pitch. For every program and every pitch from ``--low``
to ``--high``, one 0.6 s note (velocity 100, one timbre latent per program) is rendered that way
("resampled"), as the model's own note octaves into its range ("octaves away", the renderer's
behaviour before session 21), and, for reference, the model's own notes at the top of its range
(its highest 16 pitches, MIDI 69-84 for the shipped model). Each line gives how often the
strongest partial of the note's middle 0.5 s lies within 50 cents of the written pitch's
fundamental (a harmonic model note often has a stronger second partial, so the in-range line is
the bar to compare with) and the median distance of that partial from the nearest harmonic of
the written pitch, in cents. Exits 0 with a message when the weights are absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import midi_program  # noqa: E402
from pipeline.fileio import atomic_write_text  # noqa: E402

WEIGHTS = ROOT / "data" / "pretrained" / "audio_default.safetensors"


def strongest_partial(wave: np.ndarray, sample_rate: int, fmin: float = 100.0) -> float:
    """Frequency (Hz) of the highest peak of ``wave``'s Hann-windowed magnitude spectrum above
    ``fmin`` (zero-padded to 32,768 points)."""
    n = max(1 << 15, len(wave))
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    band = freqs > fmin
    return float(freqs[band][np.argmax(spec[band])])


def cents(f: float, ref: float) -> float:
    return float(1200.0 * np.log2(f / ref))


def score(offsets: list[tuple[float, float]]) -> dict:
    """``offsets``: (cents from the fundamental, cents from the nearest harmonic) per note."""
    fund = np.abs([o[0] for o in offsets])
    harm = np.abs([o[1] for o in offsets])
    return {"notes": len(offsets), "fundamental_within_50_cents": int((fund < 50).sum()),
            "median_cents_from_a_harmonic": float(np.median(harm))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--programs", type=midi_program, nargs="+", default=[0, 40, 56, 73])
    p.add_argument("--low", type=int, default=85)
    p.add_argument("--high", type=int, default=100)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if not args.weights.is_file() and args.weights != WEIGHTS:   # a path the user typed: an error
        print(f"bench_audio_range: error: --weights {args.weights}: not found", file=sys.stderr)
        return 2
    if not args.weights.is_file():
        print(f"bench_audio_range: skipped: {args.weights} not found (make setup, or --weights)")
        return 0
    if not 0 < args.low <= args.high <= 127:
        print(f"bench_audio_range: error: --low {args.low} --high {args.high}: expected 1 <= low <= high <= 127",
              file=sys.stderr)
        return 2
    from audio.generate import TimbreGenerator
    from audio.render import NoteRenderer, RenderNote, highest_pitch, timbre_latent

    t0 = time.perf_counter()
    gen = TimbreGenerator.load(args.weights, device="cpu")
    renderer = NoteRenderer(gen, device="cpu")
    sr = renderer.sample_rate
    if renderer.pitch_range is None:
        print(f"bench_audio_range: error: {args.weights}: its card gives no pitch range", file=sys.stderr)
        return 2
    lo, hi = renderer.pitch_range
    if args.high > highest_pitch(sr):
        print(f"bench_audio_range: error: --high {args.high}: above MIDI {highest_pitch(sr)}, the highest pitch "
              f"{sr} Hz audio holds (higher notes sound octaves down)", file=sys.stderr)
        return 2
    timbres = torch.stack([timbre_latent(i, gen.latent_dim) for i in range(len(args.programs))])
    cases = {"resampled": [], "octaves away": [], "inside the range": []}
    for t, program in enumerate(args.programs):
        for pitch in range(args.low, args.high + 1):
            note = RenderNote(0, program, pitch, 100, 0.0, 0.6, t)
            model = RenderNote(0, program, renderer.model_pitch(note), 100, 0.0, 0.6, t)
            inside = RenderNote(0, program, max(lo, hi - 15) + (pitch - args.low) % min(16, hi - lo + 1), 100,
                                0.0, 0.6, t)
            for name, played, written in (("resampled", note, pitch), ("octaves away", model, pitch),
                                          ("inside the range", inside, inside.pitch)):
                wave = renderer.render([played], timbres, 1)[0][int(0.05 * sr): int(0.55 * sr)]
                f0 = 440.0 * 2 ** ((written - 69) / 12)
                f = strongest_partial(wave, sr)
                k = max(1, round(f / f0))
                cases[name].append((cents(f, f0), cents(f, k * f0)))
    report = {name: score(v) for name, v in cases.items()}
    print(f"{args.weights}: programs {args.programs}, MIDI {args.low}-{args.high} (the model's range: "
          f"{renderer.pitch_range}); strongest partial of each note")
    for name, r in report.items():
        print(f"{name:<17} at the written pitch (50 cents): {r['fundamental_within_50_cents']:>3} of {r['notes']}; "
              f"median {r['median_cents_from_a_harmonic']:.0f} cents from a harmonic of it")
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
