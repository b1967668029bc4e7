"""Velocities learnt from the data: how hard each hit or note is played at each step of the bar.

The composers write on/off pianorolls; the performances they learnt from also say how loud each
note is (Groove's drummers play ghost notes, accents and backbeats). This module counts those
velocities and turns them into a table the song pipeline plays the composed notes with:

1. ``musegansynth data symbolic`` counts, for every split, style, track, pitch and step of the bar,
   the note onsets, the sum of their velocities and the sum of their squares
   (:class:`VelocityCounter`, saved as ``velocity.npz`` beside the phrases).
2. ``musegansynth export symbolic CKPT --velocity-data DIR`` puts the training split's means
   (and their standard deviations, ``spread``) in the weights card (``decode.velocity``,
   :func:`velocity_table`): drum tracks by (style, pitch, step), pitched tracks by (style, step)
   over all their pitches. A cell with fewer than
   ``min_count`` notes is left out (null).
3. The song pipeline looks each onset up (:func:`velocity_grid`): the bar's style, else all
   styles pooled (``"*"``), else the fixed rule (:data:`pipeline.generate.BASE_VELOCITY`, an
   accent on the beat); with ``humanize`` it draws around the mean with that share of the cell's
   standard deviation (the table's ``spread``; :func:`play_velocities`).

Because the three counts per cell are kept, the error of any per-cell prediction on a held-out
split follows without reading the notes again (:func:`prediction_rmse`):
``sum((x - v)^2) = sum(x^2) - 2 v sum(x) + n v^2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: The pooled-styles key of a table.
ALL = "*"
#: Fewest notes behind a table cell.
MIN_COUNT = 20
#: ``velocity.npz``'s file name in a cache.
FILE = "velocity.npz"
SPLITS = ("train", "valid", "test")


#: The statistics kept per cell: onsets, sum and sum of squares of their velocities; onsets with a
#: known timing, sum and sum of squares of their offsets from the step (in steps).
STATS = ("count", "sum", "squares", "timed", "offset_sum", "offset_squares")


class VelocityCounter:
    """Counts of onset velocities and timings: float64 ``[6 (STATS), tracks, pitches, steps]`` per
    (split, style)."""

    def __init__(self, n_tracks: int, n_pitches: int, steps_per_bar: int) -> None:
        self.shape = (len(STATS), n_tracks, n_pitches, steps_per_bar)
        self.stats: dict[tuple[str, str], np.ndarray] = {}

    def add(self, mt, style: str, split: str) -> None:
        """Count the onsets of a ``symbolic.roll.Multitrack`` (velocity roll, onsets, and its
        ``timing`` when it has one) of ``style``."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
        on = np.asarray(mt.onsets, dtype=bool)                       # [T, B, S, P]
        vel = np.where(on, np.asarray(mt.roll, dtype=np.float64), 0.0)
        if mt.timing is None:  # read without timing: no onset is timed
            timed, off = np.zeros_like(on), np.zeros(on.shape)
        else:
            timed, off = on, np.where(on, np.nan_to_num(np.asarray(mt.timing, dtype=np.float64)), 0.0)
        stats = np.stack([on.sum(1), vel.sum(1), (vel ** 2).sum(1), timed.sum(1), off.sum(1),
                          (off ** 2).sum(1)]).transpose(0, 1, 3, 2)  # [6, T, P, S]
        if stats.shape != self.shape:
            raise ValueError(f"multitrack of {stats.shape[1:]} (tracks, pitches, steps), expected {self.shape[1:]}")
        key = (split, str(style))
        self.stats[key] = self.stats.get(key, 0.0) + stats

    def arrays(self, styles: Sequence[str]) -> dict[str, np.ndarray]:
        """``stats`` float64 ``[splits, styles, 6, T, P, S]`` in the order of ``styles``, with the
        names (what :func:`save_counts` writes); counts of a style not in ``styles`` (one that only
        songs without a phrase had) are left out."""
        out = np.zeros((len(SPLITS), len(styles), *self.shape))
        for (split, style), s in self.stats.items():
            if style in styles:
                out[SPLITS.index(split), list(styles).index(style)] = s
        return {"stats": out, "styles": np.array(list(styles), dtype=str), "splits": np.array(SPLITS, dtype=str)}


def save_counts(path: str | Path, counter: VelocityCounter, styles: Sequence[str]) -> None:
    """Write a counter's arrays as a compressed npz (the caller stages the folder)."""
    np.savez_compressed(Path(path), **counter.arrays(styles))


def load_counts(folder: str | Path) -> dict[str, Any]:
    """``velocity.npz`` of a cache folder: ``stats`` [splits, styles, 6, T, P, S], ``styles``, ``splits``
    (a cache of the first layout, 3 statistics with no timing, reads with its timing counts 0).

    Raises:
        FileNotFoundError when the cache has none (built before velocities were counted);
        ValueError naming the file when it cannot be read or its arrays do not fit together.
    """
    path = Path(folder) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no velocity counts (rebuild the cache with 'musegansynth data symbolic')")
    try:
        with np.load(path) as z:
            out = {"stats": z["stats"], "styles": [str(s) for s in z["styles"]],
                   "splits": [str(s) for s in z["splits"]]}
    except Exception as exc:  # a truncated zip, pickled or missing arrays: whatever np.load raises
        raise ValueError(f"{path}: not readable velocity counts ({type(exc).__name__}: {exc})") from None
    shape = out["stats"].shape
    if len(shape) != 6 or shape[:2] != (len(out["splits"]), len(out["styles"])) or shape[2] not in (3, len(STATS)):
        raise ValueError(f"{path}: stats of shape {shape}, expected [{len(out['splits'])} splits, "
                         f"{len(out['styles'])} styles, {len(STATS)}, tracks, pitches, steps]")
    if shape[2] == 3:  # counted before timings were
        out["stats"] = np.concatenate([out["stats"], np.zeros((*shape[:2], len(STATS) - 3, *shape[3:]))], axis=2)
    return out


def _cell_means(count: np.ndarray, total: np.ndarray, min_count: int) -> list[int | None]:
    return [int(round(s / c)) if c >= min_count else None for c, s in zip(count.tolist(), total.tolist())]


def _cell_offsets(count: np.ndarray, total: np.ndarray, min_count: int) -> list[float | None]:
    """Mean offset from the step (in steps, 2 decimals) of each cell, None under ``min_count`` timed notes."""
    return [round(s / c, 2) if c >= min_count else None for c, s in zip(count.tolist(), total.tolist())]


def _cell_spreads(count: np.ndarray, total: np.ndarray, squares: np.ndarray, min_count: int) -> list[int | None]:
    """Standard deviation of each cell's velocities (rounded), None under ``min_count`` notes."""
    out: list[int | None] = []
    for c, s, q in zip(count.tolist(), total.tolist(), squares.tolist()):
        out.append(int(round(np.sqrt(max(q / c - (s / c) ** 2, 0.0)))) if c >= min_count else None)
    return out


def velocity_table(counts: dict[str, Any], track_names: Sequence[str], is_drum: Sequence[bool], lowest_pitch: int,
                   split: str = "train", min_count: int = MIN_COUNT) -> dict[str, Any]:
    """The mean onset velocity of every cell of one split, as a JSON-able table (a card's
    ``decode.velocity``).

    Drum tracks: ``styles[style][str(MIDI pitch)]`` = one mean per step of the bar; pitched tracks:
    ``styles[style]["*"]`` over all their pitches. ``style`` is a style name or ``"*"`` (all
    pooled). Cells with fewer than ``min_count`` notes are None; keys with no cell left are dropped.
    ``spread`` has the same layout: each cell's standard deviation (how much the players vary
    from one such note to the next; the song pipeline's ``humanize``); ``timing`` too: each
    cell's mean offset from its step, in steps (how early or late the players hit it: swing,
    a laid-back backbeat), from the notes whose timing was read.
    """
    stats = np.asarray(counts["stats"], dtype=np.float64)
    if len(track_names) != stats.shape[3] or len(is_drum) != stats.shape[3]:
        raise ValueError(f"{len(track_names)} track names and {len(is_drum)} is_drum flags for velocity counts "
                         f"of {stats.shape[3]} tracks")
    if split not in counts["splits"]:
        raise ValueError(f"split {split!r}: the velocity counts have {', '.join(counts['splits'])}")
    data = stats[list(counts["splits"]).index(split)]                  # [styles, 6, T, P, S]
    groups = {name: data[i] for i, name in enumerate(counts["styles"])}
    groups[ALL] = data.sum(0)
    tracks: dict[str, Any] = {}
    for t, name in enumerate(track_names):
        styles: dict[str, dict[str, list]] = {}
        spread: dict[str, dict[str, list]] = {}
        timing: dict[str, dict[str, list]] = {}

        def rows(s: np.ndarray, stats_: slice) -> dict[str, tuple[np.ndarray, ...]]:
            """key -> the ``stats_`` of track t, [S] each: per pitch for drums, over all pitches else."""
            part = s[stats_, t]                                          # [k, P, S]
            if is_drum[t]:
                return {str(lowest_pitch + p): tuple(part[:, p]) for p in range(part.shape[1])}
            return {ALL: tuple(part.sum(1))}

        for style, s in groups.items():
            played = rows(s, slice(0, 3))                                # count, sum, squares
            cells = {k: _cell_means(c, tot, min_count) for k, (c, tot, _) in played.items()}
            keep = [k for k, v in cells.items() if any(x is not None for x in v)]
            if keep:
                styles[style] = {k: cells[k] for k in keep}
                spread[style] = {k: _cell_spreads(*played[k], min_count) for k in keep}
            lateness = {k: _cell_offsets(c, tot, min_count) for k, (c, tot) in rows(s, slice(3, 5)).items()}
            lateness = {k: v for k, v in lateness.items() if any(x is not None for x in v)}
            if lateness:
                timing[style] = lateness
        tracks[name] = {"by": "pitch" if is_drum[t] else "step", "styles": styles, "spread": spread,
                        "timing": timing}
    return {"split": split, "min_count": int(min_count), "steps_per_bar": int(stats.shape[-1]), "tracks": tracks}


def check_velocity_table(table: Any, track_names: Sequence[str], steps_per_bar: int,
                         what: str = "decode.velocity") -> dict[str, Any] | None:
    """``table`` (None allowed) after checking its layout; ValueError naming ``what`` otherwise."""
    if table is None:
        return None

    def bad(problem: str) -> ValueError:
        return ValueError(f"{what}: {problem}")

    if not isinstance(table, dict) or not isinstance(table.get("tracks"), dict):
        raise bad("expected a mapping with 'tracks'")
    if table.get("steps_per_bar") != steps_per_bar:
        raise bad(f"steps_per_bar {table.get('steps_per_bar')!r} does not match the model's {steps_per_bar}")
    for name, spec in table["tracks"].items():
        if name not in track_names:
            raise bad(f"unknown track {name!r} (the model's: {', '.join(track_names)})")
        if not isinstance(spec, dict) or spec.get("by") not in ("pitch", "step") or not isinstance(spec.get("styles"), dict):
            raise bad(f"{name}: expected {{'by': 'pitch' or 'step', 'styles': {{...}}}}")
        for field in ("spread", "timing"):
            if not isinstance(spec.get(field, {}), dict):
                raise bad(f"{name}.{field}: expected a mapping like 'styles'")
        # field, how its values are told, whether one is allowed
        kinds = (("styles", "velocities 1-127", lambda v: isinstance(v, int) and 1 <= v <= 127),
                 ("spread", "velocities 0-127", lambda v: isinstance(v, int) and 0 <= v <= 127),
                 ("timing", "offsets -0.5 to 0.5 (steps)", lambda v: isinstance(v, (int, float)) and -0.5 <= v <= 0.5))
        for field, values, ok in kinds:
            where = name if field == "styles" else f"{name}.{field}"
            for style, cells in spec.get(field, {}).items():
                if not isinstance(cells, dict):
                    raise bad(f"{where}.{style}: expected a mapping of keys to {steps_per_bar} {values}")
                for key, row in cells.items():
                    if spec["by"] == "pitch" and not (key.isdigit() and 0 <= int(key) <= 127):
                        raise bad(f"{where}.{style}: key {key!r} is not a MIDI pitch")
                    if spec["by"] == "step" and key != ALL:
                        raise bad(f"{where}.{style}: key {key!r}: a track by step has the one key {ALL!r}")
                    if (not isinstance(row, list) or len(row) != steps_per_bar
                            or any(v is not None and (isinstance(v, bool) or not ok(v)) for v in row)):
                        raise bad(f"{where}.{style}.{key}: expected {steps_per_bar} {values} or null")
    return table


def velocity_grid(table: dict[str, Any] | None, track: str, style: str | None, n_pitches: int,
                  lowest_pitch: int, field: str = "styles") -> np.ndarray | None:
    """float ``[pitches, steps]`` of a track's learnt velocities for a bar of ``style`` (None: all
    styles): the style's cell, else the pooled one; NaN where neither has one. None without a table
    for the track. ``field="spread"``: their standard deviations instead, ``field="timing"`` their
    mean offsets from the step (NaN where the table has none)."""
    spec = (table or {}).get("tracks", {}).get(track)
    if not spec:
        return None
    steps = int(table["steps_per_bar"])
    out = np.full((n_pitches, steps), np.nan)
    for name in (ALL, style):  # the style's cells overwrite the pooled ones
        if name is None:
            continue
        for key, row in ((spec.get(field) or {}).get(name) or {}).items():
            vals = np.array([np.nan if v is None else float(v) for v in row])
            rows = slice(None) if key == ALL else int(key) - lowest_pitch
            if key != ALL and not 0 <= rows < n_pitches:
                continue
            out[rows] = np.where(np.isnan(vals), out[rows], vals)
    return out


#: How much of a cell's spread the song pipeline draws by default (``humanize``): the data's
#: spread also holds the differences between players and songs, more than one player varies.
HUMANIZE = 0.5


def velocity_draws(seed: int, track: int) -> np.random.Generator:
    """The generator of a song's velocity draws for one track (:func:`play_velocities`): from the
    song's seed and the track's index, so the same song and seed draw the same velocities."""
    return np.random.default_rng([int(seed) % 2**32, int(track), 0x7E10C])


def play_velocities(vel: np.ndarray, onsets: np.ndarray, mean: np.ndarray, spread: np.ndarray | None,
                    humanize: float, rng: np.random.Generator) -> None:
    """Set the velocity of every onset that has a learnt cell, in place.

    Args:
        vel: uint8 ``[steps, pitches]`` velocities of one track (a view is fine), steps of
            consecutive bars; onsets: bool of the same shape.
        mean, spread: float of the same shape (NaN where the table has no cell; ``spread`` None or
            NaN = no variation).
        humanize: 0 = each note at its cell's mean; 1 = drawn from a normal of the cell's mean and
            standard deviation; in between, that deviation scaled.
        rng: the draws, one per onset with a cell, in (step, pitch) order.
    """
    use = onsets & np.isfinite(mean)
    values = mean[use]
    if humanize > 0 and spread is not None:
        sd = np.nan_to_num(spread[use])
        values = values + float(humanize) * sd * rng.standard_normal(values.shape)
    vel[use] = np.clip(np.rint(values), 1, 127).astype(vel.dtype)


def velocity_cells(table: dict[str, Any] | None, track: str, style: str | None, n_pitches: int,
                   lowest_pitch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(means, spreads, mean offsets), float ``[pitches, steps]`` each, of a track's cells for a bar
    of ``style`` (:func:`velocity_grid`'s fields ``styles``, ``spread`` and ``timing``); None
    without a table for the track."""
    if not ((table or {}).get("tracks") or {}).get(track):
        return None
    return tuple(velocity_grid(table, track, style, n_pitches, lowest_pitch, field=f)
                 for f in ("styles", "spread", "timing"))


def perform_tracks(vel: np.ndarray, onsets: np.ndarray, learnt, humanize: float, seed: int) -> np.ndarray | None:
    """:func:`perform` every track of a song: ``vel`` uint8 and ``onsets`` bool ``[tracks, steps,
    pitches]`` (velocities set in place); ``learnt`` per track its (means, spreads, offsets) laid
    out like ``vel[t]``, or None to leave the track as it is. Each track's draws come from
    :func:`velocity_draws` of ``seed`` and its index. Returns the onsets' offsets float ``[tracks,
    steps, pitches]`` (``Multitrack.timing``), or None when no track has timing."""
    timing = None
    for t, cells in enumerate(learnt):
        if cells is None:
            continue
        late = perform(vel[t], onsets[t], cells, humanize, velocity_draws(seed, t))
        if late is not None:
            timing = np.zeros(vel.shape) if timing is None else timing
            timing[t] = late
    return timing


def perform(vel: np.ndarray, onsets: np.ndarray, learnt: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
            humanize: float, rng: np.random.Generator) -> np.ndarray | None:
    """Play one track's composed notes as the data plays them: set the velocity of every onset that
    has a learnt cell, in place (:func:`play_velocities`), and return each onset's offset from its
    step (float ``[steps, pitches]``, 0 where the table has none; ``Multitrack.timing``), or None
    when the table has no timing for the track.

    ``learnt``: (means, spreads, mean offsets), float ``[steps, pitches]`` each like ``vel``
    (:func:`velocity_grid`'s fields ``styles``, ``spread`` and ``timing``, laid out per step);
    NaN where the table has no cell.
    """
    mean, spread, late = learnt
    play_velocities(vel, onsets, mean, spread, humanize, rng)
    if late is None or not np.isfinite(late).any():
        return None
    return np.where(onsets & np.isfinite(late), late, 0.0)


def prediction_rmse(counts: dict[str, Any], predict: np.ndarray, split: str, track: int,
                    what: str = "velocity") -> tuple[float, int]:
    """Root mean square error (and note count) over the onsets of ``track`` in ``split`` when each
    note is predicted by ``predict`` float [styles, pitches, steps] (a value per cell of its style);
    ``what="timing"``: of the onsets' offsets from their steps (in steps), over the timed onsets."""
    s = np.asarray(counts["stats"], dtype=np.float64)[list(counts["splits"]).index(split)][:, :, track]  # [St, 6, P, S]
    first = {"velocity": 0, "timing": 3}[what]
    n, total, squares = s[:, first], s[:, first + 1], s[:, first + 2]
    sse = squares - 2 * predict * total + n * predict ** 2
    count = int(n.sum())
    return (float(np.sqrt(max(sse.sum(), 0.0) / count)) if count else float("nan")), count


def table_from_cache(folder: str | Path, meta: dict, flag: str = "--velocity-data") -> dict[str, Any]:
    """``decode.velocity`` from a cache's ``velocity.npz`` (its training split), for a model of
    ``meta`` (``tracks``, ``is_drum``, ``grid``). UserError naming ``folder`` and ``flag`` when the
    cache does not fit the model or has no readable counts."""
    from pipeline.errors import UserError
    from symbolic.datamodule import read_meta

    cache = read_meta(folder)
    if list(cache.get("tracks", [])) != list(meta["tracks"]):
        raise UserError(f"{folder}: {flag}: the cache's tracks {cache.get('tracks')} are not the "
                        f"model's {meta['tracks']}")

    def steps(grid: dict) -> int:
        return int(grid.get("steps_per_bar") or int(grid["steps_per_beat"]) * int(grid["beats_per_bar"]))

    if steps(cache["grid"]) != steps(meta["grid"]):
        raise UserError(f"{folder}: {flag}: {steps(cache['grid'])} steps a bar, the model has {steps(meta['grid'])}")
    low, model_low = cache["grid"].get("lowest_pitch"), meta["grid"].get("lowest_pitch")
    if low != model_low:   # the counts are by pitch index: a drum's would go to another key
        raise UserError(f"{folder}: {flag}: the cache's lowest pitch is MIDI {low}, the model's MIDI {model_low}")
    try:
        counts = load_counts(folder)
        return velocity_table(counts, meta["tracks"], meta["is_drum"], int(meta["grid"]["lowest_pitch"]))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"{flag}: {exc}") from None


def add_to_card(card_path: str | Path, data_dir: str | Path) -> dict[str, Any]:
    """Write a cache's training velocities into an existing weights card (``decode.velocity``),
    and the cache's ``drum_keys`` (the GM key each of its drum keys is played as) where it has
    them, atomically; the weights file is not touched. For cards exported without them (a card whose
    training checkpoint is not at hand). Returns the table. UserError on a card or cache that
    does not fit."""
    import json

    from pipeline.errors import UserError
    from pipeline.fileio import atomic_write_text, read_json_object

    card = read_json_object(card_path)
    tracks, grid, is_drum = card.get("tracks"), card.get("grid"), card.get("is_drum")
    if (not isinstance(tracks, list) or not isinstance(is_drum, list) or len(is_drum) != len(tracks)
            or not isinstance(grid, dict) or not isinstance(grid.get("lowest_pitch"), int)
            or not (isinstance(grid.get("steps_per_bar"), int)
                    or all(isinstance(grid.get(k), int) for k in ("steps_per_beat", "beats_per_bar")))):
        raise UserError(f"{card_path}: not a composer weights card (no tracks, is_drum of their length and grid "
                        f"with lowest_pitch and steps_per_bar)")
    decode = card.get("decode") or {}
    if not isinstance(decode, dict):
        raise UserError(f"{card_path}: decode: expected a mapping, got {type(decode).__name__}")
    table = table_from_cache(data_dir, {"tracks": tracks, "is_drum": is_drum, "grid": grid}, flag="--data")
    decode["velocity"] = table
    card["decode"] = decode
    from symbolic.datamodule import read_meta

    keys = read_meta(data_dir).get("drum_keys")
    if keys and any(is_drum):
        card["drum_keys"] = {str(k): int(v) for k, v in keys.items()}
    atomic_write_text(card_path, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return table


def cli_main(argv: list[str]) -> int:
    """``musegansynth export velocity CARD.json --data DIR``: :func:`add_to_card`."""
    import argparse

    p = argparse.ArgumentParser(prog=argv[0], description="Put a phrase cache's training velocities (velocity.npz) "
                                                          "in a composer's weights card (decode.velocity).")
    p.add_argument("card", help="the card, symbolic_<name>.json (its weights are not touched)")
    p.add_argument("--data", required=True, metavar="DIR", help="phrase cache folder with velocity.npz")
    args = p.parse_args(argv[1:])
    table = add_to_card(args.card, args.data)
    print(f"{args.card}: decode.velocity from {args.data} ({len(table['tracks'])} tracks)")
    return 0
