"""How close the song pipeline's note velocities come to the data's: root mean square error over
every note onset of a held-out split, for three ways of choosing a velocity:

- ``fixed``: the rule used without a table (``pipeline.generate.BASE_VELOCITY``, plus ``ACCENT`` on a
  beat's first step);
- ``track mean``: one velocity per track, the training notes' mean;
- ``table``: the card's ``decode.velocity`` (``symbolic.velocity.velocity_table`` of the training
  split: by style and step of the bar, and pitch for drums), the fixed rule where it has no cell.

It reads the cache's ``velocity.npz`` (counts, sums and sums of squares per cell), so the error of
any per-cell prediction follows without the notes.

    .venv/bin/python benchmarks/bench_velocity.py [--data data/build/symbolic/groove] [--split test] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def predictions(counts: dict, meta: dict, track: int) -> dict[str, np.ndarray]:
    """float [styles, pitches, steps] per way of choosing (the velocity every cell gets)."""
    from pipeline.generate import ACCENT, BASE_VELOCITY
    from symbolic.velocity import velocity_grid, velocity_table

    grid = meta["grid"]
    styles, (n_p, n_s) = counts["styles"], counts["stats"].shape[-2:]
    fixed = np.where(np.arange(n_s) % int(grid["steps_per_beat"]) == 0, BASE_VELOCITY + ACCENT, BASE_VELOCITY)
    fixed = np.broadcast_to(fixed.astype(float), (len(styles), n_p, n_s))
    train = counts["stats"][list(counts["splits"]).index("train")][:, :, track]   # [styles, 3, P, S]
    mean = train[:, 1].sum() / max(train[:, 0].sum(), 1)
    table = velocity_table(counts, meta["tracks"], meta["is_drum"], int(grid["lowest_pitch"]))
    learnt = np.stack([velocity_grid(table, meta["tracks"][track], s, n_p, int(grid["lowest_pitch"]))
                       for s in styles])
    return {"fixed": fixed, "track mean": np.full_like(fixed, mean),
            "table": np.where(np.isfinite(learnt), learnt, fixed)}


def main(argv: list[str] | None = None) -> int:
    from symbolic.datamodule import read_meta
    from symbolic.velocity import load_counts, prediction_rmse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/build/symbolic/groove", help="phrase cache with velocity.npz")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from pipeline.errors import UserError

    try:
        meta, counts = read_meta(args.data), load_counts(args.data)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f"bench_velocity: error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for t, name in enumerate(meta["tracks"]):
        preds = predictions(counts, meta, t)
        row = {"track": name}
        for way, v in preds.items():
            row[way], row["notes"] = prediction_rmse(counts, v, args.split, t)
        rows.append(row)
    print(f"velocity RMSE over the {args.split} split's note onsets ({args.data}; table and track mean from train)")
    print(f"{'track':<8} {'notes':>8} {'fixed':>7} {'track mean':>10} {'table':>7}")
    for r in rows:
        print(f"{r['track']:<8} {r['notes']:>8} {r['fixed']:>7.1f} {r['track mean']:>10.1f} {r['table']:>7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "data": args.data, "tracks": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
