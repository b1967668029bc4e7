"""Which channel decides a generated note's pitch: the log magnitude or the IF?

    .venv/bin/python benchmarks/bench_audio_if_swap.py [--weights data/pretrained/audio_default.safetensors]
        [--data data/build/notes/fluidr3] [--split test] [--seed 0]

For every held-out note of the split, the timbre model generates a note with the same pitch,
program and velocity (one random latent each, seeded). Spectrograms are then assembled from
the channels of the generated note, of the real note (``SpecTransform.wave_to_spec`` of its
first 0.5 s) and of a harmonic tone at the note's pitch (``audio.spectral.harmonic_if_prior``),
turned back into waves (``spec_to_wave``) and judged by the shipped pitch classifier.

Prints one line per combination: pitch accuracy of pitched notes for MIDI 24-35 and 36-84,
and over all; e.g. ``magnitude=generated IF=real: 1.000 0.995 0.996``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio.classifier import PitchFamilyClassifier  # noqa: E402
from audio.generate import TimbreGenerator  # noqa: E402
from audio.notes import load_note_waves  # noqa: E402
from audio.spectral import harmonic_if_prior  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="data/pretrained/audio_default.safetensors")
    ap.add_argument("--classifier", default="data/pretrained/audio_classifier.safetensors")
    ap.add_argument("--data", default="data/build/notes/fluidr3")
    ap.add_argument("--split", default="test", choices=["train", "valid", "test"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    gen = TimbreGenerator.load(args.weights)
    clf = PitchFamilyClassifier.load(args.classifier)
    tr, frames = gen.transform, gen.clip_frames
    notes = load_note_waves(args.data, args.split, gen.clip_samples)
    pitch, program, velocity = (torch.as_tensor(np.asarray(notes[k])) for k in ("pitch", "program", "velocity"))
    real = tr.wave_to_spec(torch.as_tensor(notes["wave"]).float(), frames=frames)
    z = gen.sample_z(len(pitch), torch.Generator().manual_seed(args.seed))
    fake = gen.generate_spec(pitch, program, velocity, z)
    tone_if = harmonic_if_prior(tr, frames)[pitch.clamp(0, 127)]
    target = clf.pitch_target(pitch.numpy(), program.numpy()).numpy()
    pitched = target != -100
    low = pitched & (pitch.numpy() < 36)
    rest = pitched & (pitch.numpy() >= 36)
    combos = [("generated", "generated", fake[:, 0], fake[:, 1]),
              ("generated", "real", fake[:, 0], real[:, 1]),
              ("real", "generated", real[:, 0], fake[:, 1]),
              ("generated", "harmonic tone", fake[:, 0], tone_if),
              ("real", "real", real[:, 0], real[:, 1])]
    print(f"{args.weights} on {args.data} ({args.split}, {int(pitched.sum())} pitched notes: "
          f"{int(low.sum())} at MIDI 24-35, {int(rest.sum())} at 36-84); accuracy 24-35 / 36-84 / all")
    for mag_name, if_name, mag, if_ in combos:
        waves = tr.spec_to_wave(torch.stack([mag, if_], dim=1), gen.clip_samples)
        hit = clf.outputs(waves)["pitch_logits"].argmax(-1).numpy() == target
        print(f"magnitude={mag_name} IF={if_name}: {hit[low].mean():.3f} {hit[rest].mean():.3f} {hit[pitched].mean():.3f}")


if __name__ == "__main__":
    from pipeline.errors import UserError

    given = {"--weights", "--classifier", "--data"} & {a.split("=")[0] for a in sys.argv[1:]}
    try:
        main()
    except UserError as exc:  # no notes built, or weights missing: say so in one line
        if given:   # a path the user typed: an error, not a skip
            print(f"bench_audio_if_swap: error: {exc}", file=sys.stderr)
            sys.exit(2)
        print(f"bench_audio_if_swap: skipped: {exc}", file=sys.stderr)
