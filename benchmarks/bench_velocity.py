"""How close the song pipeline's note velocities come to the data's: root mean square error over
every note onset of a held-out split, for three ways of choosing a velocity:

- ``fixed``: the rule used without a table (``pipeline.generate.BASE_VELOCITY``, plus ``ACCENT`` on a
  beat's first step);
- ``track mean``: one velocity per track, the training notes' mean;
- ``table``: the card's ``decode.velocity`` (``symbolic.velocity.velocity_table`` of the training
  split: by style and step of the bar, and pitch for drums), the fixed rule where it has no cell.

A second table does the same for timing: the RMSE (in steps) of each onset's offset from its step
when every note is played on its step, and when it is played at its cell's mean offset (the table's
``timing``).

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


def predictions(counts: dict, meta: dict, track: int, table: dict) -> dict[str, np.ndarray]:
    """float [styles, pitches, steps] per way of choosing (the velocity every cell gets)."""
    from pipeline.generate import ACCENT, BASE_VELOCITY
    from symbolic.velocity import velocity_grid

    grid = meta["grid"]
    styles, (n_p, n_s) = counts["styles"], counts["stats"].shape[-2:]
    fixed = np.where(np.arange(n_s) % int(grid["steps_per_beat"]) == 0, BASE_VELOCITY + ACCENT, BASE_VELOCITY)
    fixed = np.broadcast_to(fixed.astype(float), (len(styles), n_p, n_s))
    train = counts["stats"][list(counts["splits"]).index("train")][:, :, track]   # [styles, 6, P, S]
    mean = train[:, 1].sum() / max(train[:, 0].sum(), 1)
    learnt = np.stack([velocity_grid(table, meta["tracks"][track], s, n_p, int(grid["lowest_pitch"]))
                       for s in styles])
    return {"fixed": fixed, "track mean": np.full_like(fixed, mean),
            "table": np.where(np.isfinite(learnt), learnt, fixed)}


def timing_row(counts: dict, meta: dict, track: int, split: str, table: dict) -> dict:
    """Timing RMSE (steps) of one track's timed onsets: every note on its step, or played at its
    cell's mean offset (the card's ``timing``, from the training split; on the step where none)."""
    from symbolic.velocity import prediction_rmse, velocity_grid

    grid, styles = meta["grid"], counts["styles"]
    n_p = counts["stats"].shape[-2]
    late = np.stack([velocity_grid(table, meta["tracks"][track], s, n_p, int(grid["lowest_pitch"]), field="timing")
                     for s in styles])
    row = {"track": meta["tracks"][track]}
    for way, v in (("on the grid", np.zeros_like(late)), ("table", np.nan_to_num(late))):
        row[way], row["notes"] = prediction_rmse(counts, v, split, track, what="timing")
    return row


def main(argv: list[str] | None = None) -> int:
    from symbolic.datamodule import read_meta
    from symbolic.velocity import load_counts, prediction_rmse, velocity_table

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
    table = velocity_table(counts, meta["tracks"], meta["is_drum"], int(meta["grid"]["lowest_pitch"]))  # the card's
    rows = []
    for t, name in enumerate(meta["tracks"]):
        preds = predictions(counts, meta, t, table)
        row = {"track": name}
        for way, v in preds.items():
            row[way], row["notes"] = prediction_rmse(counts, v, args.split, t)
        rows.append(row)
    print(f"velocity RMSE over the {args.split} split's note onsets ({args.data}; table and track mean from train)")
    print(f"{'track':<8} {'notes':>8} {'fixed':>7} {'track mean':>10} {'table':>7}")
    for r in rows:
        print(f"{r['track']:<8} {r['notes']:>8} {r['fixed']:>7.1f} {r['track mean']:>10.1f} {r['table']:>7.1f}")
    timing = [timing_row(counts, meta, t, args.split, table) for t in range(len(meta["tracks"]))]
    print(f"timing RMSE in steps (offset of each onset from its step) over the {args.split} split's timed onsets")
    print(f"{'track':<8} {'notes':>8} {'on the grid':>11} {'table':>7}")
    for r in timing:
        print(f"{r['track']:<8} {r['notes']:>8} {r['on the grid']:>11.3f} {r['table']:>7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "data": args.data, "tracks": rows,
                                               "timing": timing}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
