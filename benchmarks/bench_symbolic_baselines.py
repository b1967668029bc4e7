"""How far would copying the training data get? Real training phrases scored as if generated.

For each held-out phrase, a training phrase is taken in its place and the whole table of
``bench_symbolic_quality.py`` is made of them (the held-out split against the copies):

* ``nearest-chords``: the training phrase with the nearest chords (the fewest differing chord
  tones over the phrase's beats, same style first; ties drawn at random with ``--seed``): a
  composer that had memorised the training data and its chords;
* ``same-style``: a training phrase of the same style drawn at random (``--seed``).

A composer that reproduced the training distribution perfectly would score about as these do,
so they tell which gaps of a split are the split's own. Exits 0 with a message when the data is
absent.

    python benchmarks/bench_symbolic_baselines.py [--data data/build/symbolic/pop909] [--split test]
        [--baseline nearest-chords|same-style] [--seed 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_symbolic_quality import DATA, skipped_for_missing_inputs  # noqa: E402
from benchmarks.bench_symbolic_styles import same_style_phrases  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.fileio import atomic_write_text  # noqa: E402

BASELINES = ("nearest-chords", "same-style")


def nearest_chord_phrases(train_chords: np.ndarray, train_style: np.ndarray, chords: np.ndarray,
                          style: np.ndarray, seed: int) -> np.ndarray:
    """For each phrase (``chords`` [N, bars, beats, 12], ``style`` [N]), the index of the training
    phrase whose chords differ in the fewest (beat, pitch class) cells, among those of the same
    style when there are any; ties drawn at random with ``seed``."""
    rng = np.random.default_rng(seed)
    flat_train = train_chords.reshape(len(train_chords), -1).astype(np.int16)
    flat = chords.reshape(len(chords), -1).astype(np.int16)
    out = np.empty(len(flat), dtype=np.int64)
    for i, row in enumerate(flat):
        cost = np.abs(flat_train - row).sum(axis=1)
        same = train_style == style[i]
        if same.any():
            cost = np.where(same, cost, cost.max() + flat.shape[1] + 1)
        out[i] = rng.choice(np.flatnonzero(cost == cost.min()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--baseline", choices=BASELINES, default="nearest-chords")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    given = args.data != DATA
    if skipped_for_missing_inputs("bench_symbolic_baselines", None, args.data, args.split, given=given) or \
            skipped_for_missing_inputs("bench_symbolic_baselines", None, args.data, "train", given=given):
        return 0

    from symbolic.evaluate import _json_safe, evaluate_symbolic, load_split, report_text

    try:
        _, held = load_split(args.data, args.split)
        _, train = load_split(args.data, "train")
        if args.baseline == "nearest-chords":
            idx = nearest_chord_phrases(train["chords"], train["style"], held["chords"], held["style"], args.seed)
        else:
            idx = same_style_phrases(train["style"], held["style"], args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            copies = Path(tmp) / f"{args.baseline}.npz"
            np.savez_compressed(copies, rolls=train["rolls"][idx])
            report = evaluate_symbolic(args.data, split=args.split, generated=copies)
    except UserError as exc:
        print(f"bench_symbolic_baselines: error: {exc}", file=sys.stderr)
        return 2
    print(report_text(report))
    print(f"baseline {args.baseline}: training phrases in place of generated ones ({args.split}, seed {args.seed})")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
