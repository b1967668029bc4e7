"""Rhythm of one track of the shipped composer next to held-out data: notes by length and start.

For every note of the chosen track (``--track``, default the bridge), its length in steps (the
last row gathers ``--max-steps`` and longer) and where in the beat it starts (step 0 = on the
beat): the share of all notes in each cell, for the held-out phrases and for as many generated
ones (conditioned on their chords and style, as in ``bench_symbolic_quality.py``), and the
generated minus the held-out share. A diagnostic behind QN and POLY_RATE: whole-beat notes
against eighth-note lines. Then the track's bars by texture (``symbolic.metrics.texture_profile``):
the share of sounding bars with no step of two or more pitches, and of those with some, by how
many. Exits 0 with a message when the weights or the data are absent.

    python benchmarks/bench_symbolic_rhythm.py [--weights W] [--split valid] [--track bridge] [--n N] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_symbolic_quality import skipped_for_missing_inputs  # noqa: E402
from benchmarks.common import device as device_arg, positive_int  # noqa: E402
from pipeline.errors import UserError  # noqa: E402

WEIGHTS = ROOT / "data" / "pretrained" / "symbolic_pop909.safetensors"
DATA = ROOT / "data" / "build" / "symbolic" / "pop909"


def _table(title: str, table: np.ndarray) -> str:
    spb = table.shape[1]
    head = f"{title:<12}" + "".join(f"  start +{j:<3d}" for j in range(spb))
    rows = [head]
    for i, row in enumerate(table):
        label = f"{i + 1} step{'s' if i else ''}" + ("+" if i == len(table) - 1 else "")
        rows.append(f"{label:<12}" + "".join(f"  {v:+9.3f} " if title == "difference" else f"  {v:9.3f} "
                                              for v in row))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--split", default="valid", choices=("train", "valid", "test"))
    p.add_argument("--track", default="bridge")
    p.add_argument("--max-steps", type=positive_int, default=5)
    p.add_argument("--n", type=int, default=None, help="at most this many phrases (default: the whole split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    args = p.parse_args(argv)

    if skipped_for_missing_inputs("bench_symbolic_rhythm", args.weights, args.data, args.split,
                                  given=args.weights != WEIGHTS or args.data != DATA):
        return 0

    from symbolic import metrics as M
    from symbolic.evaluate import generate_for_phrases, load_split, select_phrases

    try:
        meta, arrays = load_split(args.data, args.split)
        names = [str(t) for t in meta["tracks"]]
        if args.track not in names:
            raise UserError(f"--track: unknown track {args.track!r}; the data has {', '.join(names)}")
        t = names.index(args.track)
        idx = select_phrases(arrays["rolls"].shape[0], args.n, args.seed)
        gen = generate_for_phrases(args.weights, meta, arrays, idx, seed=args.seed, device=args.device)
    except UserError as exc:
        print(f"bench_symbolic_rhythm: error: {exc}", file=sys.stderr)
        return 2
    spb = int(meta["grid"]["steps_per_beat"])
    data = M.rhythm_profile(arrays["rolls"][idx, t], spb, args.max_steps)
    made = M.rhythm_profile(gen[:, t], spb, args.max_steps)
    print(f"{args.track}: share of notes by length (rows) and start within the beat (columns); "
          f"{len(idx)} {args.split} phrases vs as many generated ({args.weights.name}, seed {args.seed})")
    for title, table in (("held-out", data), ("generated", made), ("difference", made - data)):
        print(_table(title, table))
    edges = ["0", *(f"{a:g}-{b:g}" for a, b in zip((0, *M.TEXTURE_BINS), (*M.TEXTURE_BINS, 1)))]
    print(f"\n{args.track}: share of sounding bars by the share of their sounding steps with two or more pitches")
    print(f"{'':<12}" + "".join(f"  {e:>9} " for e in edges))
    for title, roll in (("held-out", arrays["rolls"][idx, t]), ("generated", gen[:, t])):
        print(f"{title:<12}" + "".join(f"  {v:9.3f} " for v in M.texture_profile(roll)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
