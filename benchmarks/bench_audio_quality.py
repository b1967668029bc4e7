"""Audio quality benchmark: GANSynth's metrics for the shipped timbre model(s).

Evaluates every ``data/pretrained/audio_*.safetensors`` (except the classifier) on the held-out
notes of ``data/build/notes/fluidr3`` with ``data/pretrained/audio_classifier.safetensors`` and
prints the real vs. generated table and which targets are met (generated pitch accuracy >= 0.90
and >= 95% of real, NDB/K <= 0.30). Exits 0 with a message when the data, the classifier or
the weights are absent.

    python benchmarks/bench_audio_quality.py [--n 1000] [--device cpu] [--json OUT] [--weights PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import device as device_arg  # noqa: E402

DATA = ROOT / "data" / "build" / "notes" / "fluidr3"
PRETRAINED = ROOT / "data" / "pretrained"
CLASSIFIER = PRETRAINED / "audio_classifier.safetensors"


def shipped_weights() -> list[Path]:
    """Timbre model weights shipped in data/pretrained (audio_*.safetensors, not the classifier)."""
    return sorted(p for p in PRETRAINED.glob("audio_*.safetensors") if p.name != CLASSIFIER.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="held-out notes per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", type=device_arg, default="cpu")
    parser.add_argument("--split", default="nsynth-test")
    parser.add_argument("--weights", action="append", default=None,
                        help="evaluate these weights instead of the shipped ones (repeatable)")
    parser.add_argument("--json", default=None, help="write the last model's results here (or NAME-suffixed per model)")
    args = parser.parse_args(argv)

    missing = [(DATA, "note data (musegansynth data notes --out data/build/notes/fluidr3)"),
               (CLASSIFIER, "classifier (python -m audio.classifier --data data/build/notes/fluidr3 "
                            "--out data/pretrained/audio_classifier.safetensors)")]
    for path, what in missing:
        if not path.exists():
            print(f"bench_audio_quality: skipped, no {what} at {path.relative_to(ROOT)}")
            return 0
    weights = [Path(w) for w in args.weights] if args.weights else shipped_weights()
    if not weights:
        print("bench_audio_quality: skipped, no timbre model weights data/pretrained/audio_*.safetensors")
        return 0

    from audio.evaluate import evaluate_audio, format_table, write_json
    from pipeline.errors import UserError

    status = 0
    for w in weights:
        t0 = time.time()
        print(f"== {w} on {DATA.relative_to(ROOT)}/{args.split} (n={args.n}, seed={args.seed}, "
              f"device={args.device})")
        try:
            res = evaluate_audio(data=DATA, weights=w, classifier=CLASSIFIER, split=args.split, n=args.n,
                                 seed=args.seed, device=args.device)
        except UserError as exc:
            print(f"  error: {exc}")
            status = 2
            continue
        print(format_table(res))
        met = [name for name, t in res["targets"].items() if t["met"]]
        print(f"targets met: {len(met)}/{len(res['targets'])} ({', '.join(met) or 'none'}); "
              f"{time.time() - t0:.1f} s")
        if args.json:
            out = Path(args.json)
            if len(weights) > 1:
                out = out.with_name(f"{out.stem}_{w.stem}{out.suffix}")
            write_json(res, out)
    return status


if __name__ == "__main__":
    sys.exit(main())
