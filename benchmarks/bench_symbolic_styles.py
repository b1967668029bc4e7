"""Does a composer follow its style label? Metrics style by style, held-out data beside generated.

The whole-split table of ``bench_symbolic_quality.py`` pools every style: a drum composer whose
jazz is too busy and whose latin too sparse can still match the pooled figures. Here the
composer writes one phrase per held-out phrase (conditioned on its style and chords, as
``musegansynth evaluate symbolic`` does), and each style with at least ``--min-phrases`` phrases
in the split is scored on its own: hits (note starts) per bar and the metrics of
``--metrics`` for every track, data beside generated. The last line, the **style fit**, is the
mean |relative difference| over those styles (weighted by their phrases), tracks and metrics;
"cells within 10%" counts the (style, track, metric) cells within 10% of the data.
For a drum track it also prints the hits per bar on the keys the data hits most and the **kit
distance** (``symbolic.metrics.kit_distance``: the total variation between the data's and the
generated shares of hits by key, over the split and style by style), which the metrics above
cannot see: a closed hi-hat played on the ride scores the same there.
``--baseline train`` scores, in place of a composer, a training phrase of the same style drawn
at random for each held-out phrase: how far the training data itself sits from the split,
style by style (the floor a composer of the training distribution would reach).
Defaults: the shipped drum composer against Groove's valid split. Exits 0 with a message when
the weights or the data are absent.

    python benchmarks/bench_symbolic_styles.py [--weights W] [--data D] [--split valid] [--seed 0]
        [--min-phrases 20] [--metrics HITS POLY POLY_RATE DP GC] [--baseline train] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_symbolic_quality import skipped_for_missing_inputs  # noqa: E402
from benchmarks.common import device as device_arg, positive_int  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.fileio import atomic_write_text  # noqa: E402

WEIGHTS = ROOT / "data" / "pretrained" / "symbolic_drums.safetensors"
DATA = ROOT / "data" / "build" / "symbolic" / "groove"
HITS = "HITS"
#: what --metrics may name: hits per bar and the per-track metrics (those a track lacks stay empty)
METRICS = (HITS, *dict.fromkeys(("EB", "UPC", "QN", "POLY", "POLY_RATE", "PCE", "SC", "DP", "GC")))
"""Note starts per bar (a drum hit, or a pitched note's first step)."""


def hits_per_bar(rolls: np.ndarray) -> np.ndarray:
    """Note starts per bar for each track, pooled over phrases: float [tracks]. ``rolls`` bool
    [N, tracks, bars, steps, pitches]; a cell starts a note when the cell before it (the step
    before, across bar lines) is off."""
    n, t, b, s, p = rolls.shape
    flat = rolls.transpose(0, 1, 4, 2, 3).reshape(n, t, p, b * s)
    before = np.concatenate([np.zeros_like(flat[..., :1]), flat[..., :-1]], axis=-1)
    starts = flat & ~before
    return starts.sum(axis=(0, 2, 3)) / float(n * b)


def same_style_phrases(train_style: np.ndarray, style: np.ndarray, seed: int) -> np.ndarray:
    """For each entry of ``style``, the index of a random training phrase of that style (any
    training phrase when the training split has none of it)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(style), dtype=np.int64)
    for i, k in enumerate(style):
        pool = np.flatnonzero(train_style == k)
        out[i] = rng.choice(pool) if len(pool) else rng.integers(len(train_style))
    return out


def style_table(data: np.ndarray, generated: np.ndarray, style: np.ndarray, style_names, meta: dict,
                metrics, min_phrases: int) -> list[dict]:
    """Rows ``{style, phrases, track, metric, data, generated, rel_diff}`` for each style of
    ``style`` with at least ``min_phrases`` phrases."""
    from symbolic.evaluate import relative_difference
    from symbolic.metrics import evaluate_rolls

    tracks, is_drum = meta["tracks"], meta["is_drum"]
    rows = []
    for k in np.unique(style):
        m = style == k
        if m.sum() < min_phrases:
            continue
        name = style_names[k] if 0 <= k < len(style_names) else str(int(k))
        values = [evaluate_rolls(x[m], tracks, is_drum, meta["grid"]) for x in (data, generated)]
        hits = [hits_per_bar(x[m]) for x in (data, generated)]
        for i, track in enumerate(tracks):
            for metric in metrics:
                if metric == HITS:
                    d, g = float(hits[0][i]), float(hits[1][i])
                elif metric in values[0][track]:
                    d, g = float(values[0][track][metric]), float(values[1][track][metric])
                else:
                    continue
                rows.append({"style": name, "phrases": int(m.sum()), "track": track, "metric": metric,
                             "data": d, "generated": g, "rel_diff": relative_difference(d, g)})
    return rows


def style_fit(rows: list[dict]) -> tuple[float, int, int]:
    """(phrase-weighted mean |rel diff| over the rows with a defined one, cells within 10%, cells)."""
    defined = [r for r in rows if not math.isnan(r["rel_diff"])]
    if not defined:
        return float("nan"), 0, 0
    w = np.array([r["phrases"] for r in defined], dtype=float)
    err = np.array([abs(r["rel_diff"]) for r in defined])
    return float((w * err).sum() / w.sum()), int((err <= 0.1 + 1e-12).sum()), len(defined)


def kit_rows(data: np.ndarray, generated: np.ndarray, style: np.ndarray, style_names, meta: dict,
             min_phrases: int) -> list[dict]:
    """For each drum track, how differently the composer uses the kit
    (:func:`symbolic.metrics.kit_distance`): rows ``{style, phrases, track, kit_distance}``, first
    the whole split (style ``"all"``), then each style with at least ``min_phrases`` phrases."""
    from symbolic.metrics import kit_distance

    rows = []
    groups = [("all", np.ones(len(style), dtype=bool))]
    for k in np.unique(style):
        m = style == k
        if m.sum() >= min_phrases:
            groups.append((style_names[k] if 0 <= k < len(style_names) else str(int(k)), m))
    for i, track in enumerate(meta["tracks"]):
        if not meta["is_drum"][i]:
            continue
        for name, m in groups:
            rows.append({"style": name, "phrases": int(m.sum()), "track": track,
                         "kit_distance": kit_distance(data[m, i], generated[m, i])})
    return rows


def key_table(data: np.ndarray, generated: np.ndarray, track: int, lowest_pitch: int, top: int = 10) -> list[dict]:
    """Hits per bar on the ``top`` keys the data hits most, data beside generated: rows
    ``{key, data, generated}`` (MIDI keys). Every active cell is a hit, as a drum track is played
    (and as DP and the kit distance count); :func:`hits_per_bar` (``HITS``) counts note starts, so
    there a key held over consecutive steps is one hit."""
    per_bar = [x[:, track].sum(axis=(0, 1, 2)) / float(x.shape[0] * x.shape[2]) for x in (data, generated)]
    order = np.argsort(-per_bar[0], kind="stable")[:top]
    return [{"key": int(k) + lowest_pitch, "data": float(per_bar[0][k]), "generated": float(per_bar[1][k])}
            for k in order if per_bar[0][k] > 0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--split", default="valid", choices=("train", "valid", "test"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--min-phrases", type=positive_int, default=20)
    p.add_argument("--metrics", nargs="+", default=[HITS, "POLY", "POLY_RATE", "DP", "GC"], choices=METRICS)
    p.add_argument("--baseline", choices=("train",), default=None,
                   help="score same-style training phrases instead of the composer")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    weights = None if args.baseline else args.weights   # the baseline needs no composer
    if skipped_for_missing_inputs("bench_symbolic_styles", weights, args.data, args.split,
                                  given=args.weights != WEIGHTS or args.data != DATA):
        return 0

    from symbolic.evaluate import generate_for_phrases, load_split

    t0 = time.perf_counter()
    try:
        meta, arrays = load_split(args.data, args.split)
        if args.baseline == "train":
            _, train = load_split(args.data, "train")
            generated = train["rolls"][same_style_phrases(train["style"], arrays["style"], args.seed)]
        else:
            idx = np.arange(len(arrays["style"]))
            generated = generate_for_phrases(args.weights, meta, arrays, idx, seed=args.seed, device=args.device)
    except UserError as exc:
        print(f"bench_symbolic_styles: error: {exc}", file=sys.stderr)
        return 2
    rows = style_table(arrays["rolls"], generated, arrays["style"], meta.get("styles") or [], meta,
                       args.metrics, args.min_phrases)
    print(f"{'style':<14} {'phrases':>7}  {'track':<8} {'metric':<9} {'data':>8} {'generated':>9} {'rel diff':>8}")
    for r in rows:
        print(f"{r['style']:<14} {r['phrases']:>7}  {r['track']:<8} {r['metric']:<9} {r['data']:>8.4f} "
              f"{r['generated']:>9.4f} {r['rel_diff']:>+8.1%}")
    fit, within, cells = style_fit(rows)
    print(f"style fit: {fit:.1%} mean |rel diff| (phrase-weighted; {len({r['style'] for r in rows})} styles "
          f"with >= {args.min_phrases} phrases), {within} of {cells} cells within 10% "
          f"({args.split}, seed {args.seed}, {time.perf_counter() - t0:.1f} s)")
    kits = kit_rows(arrays["rolls"], generated, arrays["style"], meta.get("styles") or [], meta, args.min_phrases)
    keys = {}
    for t, track in enumerate(meta["tracks"]):
        if meta["is_drum"][t]:
            keys[track] = key_table(arrays["rolls"], generated, t, int(meta["grid"]["lowest_pitch"]))
            print(f"{track}: hits per bar by key (every cell a hit), data / generated: "
                  + ", ".join(f"{r['key']} {r['data']:.2f} / {r['generated']:.2f}" for r in keys[track]))
            print(f"{track}: kit distance (total variation of the hits' keys): "
                  + ", ".join(f"{r['style']} {r['kit_distance']:.3f}" for r in kits if r["track"] == track))
    if args.json is not None:
        from symbolic.evaluate import _json_safe

        report = {"rows": rows, "style_fit": fit, "within": within, "cells": cells, "kit": kits, "keys": keys}
        atomic_write_text(args.json, json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
