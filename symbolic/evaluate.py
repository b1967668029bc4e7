"""``musegansynth evaluate symbolic``: objective metrics of generated music next to held-out data.

The held-out phrases come from a dataset cache built by ``musegansynth data symbolic``
(``DIR/meta.json`` + ``DIR/<split>.npz``, layout in docs/CONTRACTS.md). The generated phrases
come from one of:

- ``--weights PATH``: the composer (``symbolic.generate.Composer``) decodes one phrase per
  selected held-out phrase, conditioned on that phrase's chords and style, so both columns
  share the same harmony and style mix;
- ``--generated FILE.npz``: an array ``rolls`` ``[N, tracks, bars, steps_per_bar, pitches]``
  (bool, or probabilities binarized at ``--threshold``);
- ``--midi DIR``: every ``*.mid`` / ``*.midi`` under DIR, read and cut into phrases as
  ``musegansynth data symbolic --source midi`` reads a folder (pickup bars, other meters left
  out, empty phrases dropped, moved to C when the dataset's songs were).

Both sides go through :func:`symbolic.metrics.evaluate_rolls` without onsets (the cache keeps
none), so a note is a maximal run of active steps on both sides. The table gives, per metric
and track, the data value, the generated value, the relative difference
``(generated - data) / |data|`` and whether it is within 10%. With ``--bootstrap N`` it also
gives the held-out value's 95% interval over N resamples of the split's songs (a split of ~90
songs moves some rates by more than 10% on its own) and whether the generated value lies inside.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.errors import UserError, check_seed
from pipeline.fileio import atomic_write_text, check_json_out
from symbolic import metrics as M

WITHIN = 0.10
"""Relative difference counted as a match."""

CHORD_SOURCES = ("data", "none", "estimated")
"""Which chords the composer gets (``--chords``): the held-out phrases' own, none, or chords
estimated from the given track (:func:`symbolic.chords.estimate_chords`, as ``accompany`` does)."""

INTERVAL = 0.95
"""Coverage of the bootstrap interval of a held-out value (:func:`bootstrap_intervals`)."""


# --------------------------------------------------------------------------- inputs

def load_split(data_dir: str | Path, split: str = "test") -> tuple[dict, dict[str, np.ndarray]]:
    """Read ``meta.json`` and ``<split>.npz`` of a dataset cache.

    Returns:
        ``(meta, arrays)`` where ``arrays["rolls"]`` is bool [N, tracks, bars, steps_per_bar,
        pitches], ``arrays["chords"]`` uint8 [N, bars, beats_per_bar, 12], ``arrays["style"]``
        int64 [N] (zeros when the file has none), ``arrays["has_chords"]`` bool [N],
        ``arrays["song"]`` int64 [N] (each phrase its own song when the file has no song ids).
    Raises:
        UserError: the folder, meta.json or the split is missing or malformed (the checks of
        :func:`symbolic.datamodule.read_meta` and :func:`symbolic.datamodule.load_split`).
    """
    from symbolic.datamodule import load_split as load_arrays, read_meta  # noqa: PLC0415

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: no such dataset folder (build one with 'musegansynth data symbolic')")
    meta = read_meta(data_dir)
    if len(meta["tracks"]) != len(meta["is_drum"]):
        raise UserError(f"{data_dir / 'meta.json'}: 'tracks' and 'is_drum' differ in length")
    arrays = load_arrays(data_dir, split, meta)
    n = arrays["rolls"].shape[0]
    if n == 0:
        raise UserError(f"{data_dir / (split + '.npz')}: the {split} split has no phrases (choose another with "
                        f"--split, or build the cache from more songs)")
    arrays["rolls"] = arrays["rolls"] != 0
    arrays["style"] = np.asarray(arrays["style"], dtype=np.int64).reshape(n)
    arrays["has_chords"] = np.asarray(arrays["has_chords"], dtype=bool).reshape(n)
    song = arrays.get("song")
    arrays["song"] = np.arange(n, dtype=np.int64) if song is None else np.asarray(song, dtype=np.int64).reshape(n)
    return meta, arrays


def _expected_shape(meta: dict) -> tuple[int, int, int, int]:
    g = meta["grid"]
    steps = int(g["steps_per_beat"]) * int(g["beats_per_bar"])
    return (len(meta["tracks"]), int(meta.get("n_bars", 4)), steps, int(g["n_pitches"]))


def select_phrases(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``n`` of ``n_total`` phrases: all of them in order when ``n`` is
    None or ``n_total <= n``, else a sorted random subset drawn with ``seed``."""
    if n is None:
        return np.arange(n_total)
    if n < 1:
        raise UserError(f"--n: should be at least 1, got {n}")
    if n_total <= n:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"--device {device}: choose cpu, cuda or auto")
    return device


def _load_composer(weights: str | Path, device: str):
    """``symbolic.generate.Composer.load`` (a separate function so tests can replace it)."""
    path = Path(weights)
    if not path.exists():
        raise UserError(f"{path}: weights not found")
    from symbolic.generate import Composer

    return Composer.load(path, device=device)


def generate_rolls(composer: Any, chords: np.ndarray, style: np.ndarray, *, seed: int = 0,
                   threshold: float = 0.5, batch_size: int = 64, device: str = "cpu",
                   has_chords: np.ndarray | None = None, given: np.ndarray | None = None,
                   given_track: int | None = None, use_chords: bool = True,
                   offsets: np.ndarray | None = None) -> np.ndarray:
    """Decode one phrase per conditioning row with a composer.

    Args:
        composer: object with ``sample_latents(n, generator[, chords])`` and ``decode(latents, chords,
            style)`` (see docs/CONTRACTS.md).
        chords: uint8 [N, bars, beats_per_bar, 12] multi-hot chord pitch classes.
        style: int64 [N] style indices of the composer (-1 unknown).
        seed: seeds one CPU ``torch.Generator`` that draws all latents (same on every device).
        threshold: probabilities above it are notes.
        batch_size: phrases decoded at once.
        has_chords: bool [N], which phrases come with chord annotations (an all-zero phrase that
            has them is "no chord", not "unknown", for the arrangement); default: any chord.
        given: bool [N, bars, steps_per_bar, pitches]: track ``given_track`` of every phrase is
            given (the composer's accompaniment mode) and the others are composed around it.
        use_chords: False decodes without chord information (as for a bare melody).
        offsets: int [N] semitones each row's conditions sit above the composer's home key
            (``Composer.home_offset``; decoded with ``transpose=``); default all 0.
    Returns:
        Bool array [N, tracks, bars, steps_per_bar, pitches].
    """
    import torch

    n = int(chords.shape[0])
    generator = torch.Generator().manual_seed(int(seed))  # CPU: the same latents on every device
    if use_chords and "chords" in inspect.signature(composer.sample_latents).parameters:  # an arrangement follows the chords
        has = None if has_chords is None else torch.as_tensor(np.asarray(has_chords, dtype=bool))
        latents = composer.sample_latents(n, generator=generator, chords=torch.as_tensor(chords, dtype=torch.float32),
                                          has_chords=has)
    else:
        latents = composer.sample_latents(n, generator=generator)
    wants_threshold = "threshold" in inspect.signature(composer.decode).parameters
    out = []
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            part = {k: v[lo:hi] for k, v in latents.items()}
            kw: dict[str, Any] = {"style": torch.as_tensor(style[lo:hi], dtype=torch.long, device=device)}
            if use_chords:
                kw["chords"] = torch.as_tensor(chords[lo:hi], dtype=torch.float32, device=device)
            if given is not None:
                kw["cond_roll"] = torch.as_tensor(given[lo:hi], dtype=torch.float32, device=device)
                kw["cond_track"] = int(given_track)
            if offsets is not None and np.any(offsets[lo:hi]):
                kw["transpose"] = torch.as_tensor(np.asarray(offsets[lo:hi], dtype=np.int64))
            if wants_threshold:  # the composer binarises (and applies its decoding rules): {0, 1}
                rolls = composer.decode(part, threshold=threshold, **kw) > 0.5
            else:
                rolls = composer.decode(part, **kw) > threshold
            out.append(rolls.detach().cpu().numpy())
    if not out:
        return np.zeros((0,), dtype=bool)
    return np.concatenate(out, axis=0)


def song_offsets(composer: Any, songs: np.ndarray, chords: np.ndarray | None = None,
                 given: np.ndarray | None = None) -> np.ndarray:
    """Per phrase, how far its song's key sits above the composer's home key: int [N] from
    ``composer.home_offset`` over all of that song's phrases (their ``chords`` [N, bars, beats, 12]
    and the ``given`` track [N, bars, steps, pitches], either may be None), as the song pipeline
    finds a song's key from all its chords. All 0 for a composer without a home key."""
    import torch

    songs = np.asarray(songs)
    out = np.zeros(songs.shape[0], dtype=np.int64)
    if not getattr(composer, "home_key", False):
        return out
    for song in np.unique(songs):
        rows = songs == song
        out[rows] = composer.home_offset(
            chords=None if chords is None else torch.as_tensor(chords[rows], dtype=torch.float32),
            given=None if given is None else torch.as_tensor(given[rows]))
    return out


def check_threshold(threshold: Any, what: str = "--threshold") -> float:
    """``threshold`` as a float after checking ``0 < threshold <= 1`` (a binarisation threshold of
    probabilities: 0 or less turns every step on, above 1 none); UserError naming ``what`` otherwise."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise UserError(f"{what}: expected a number in (0, 1], got {threshold!r}") from None
    if isinstance(threshold, bool) or not 0.0 < value <= 1.0:
        raise UserError(f"{what}: should be above 0 and at most 1 (a probability threshold), got {threshold!r}")
    return value


def load_generated_npz(path: str | Path, expect: tuple[int, ...], threshold: float = 0.5) -> np.ndarray:
    """Read ``rolls`` [N, tracks, bars, steps, pitches] from an npz; binarize floats at ``threshold``."""
    path = Path(path)
    threshold = check_threshold(threshold)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    layout = f"an npz holding 'rolls' [N, {', '.join(map(str, expect))}] (bool, or probabilities)"
    expected = f"expected {layout}"
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"MThd" or path.suffix.lower() in (".mid", ".midi"):
        raise UserError(f"{path}: a MIDI file, not an npz of generated phrases; give MIDI files as a folder "
                        f"with --midi DIR, or {layout}")
    # an npz is a zip archive; numpy takes anything else for a pickle and advises loading it unsafely
    if not head:
        raise UserError(f"{path}: unreadable npz (the file is empty); {expected}")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: unreadable npz (not a zip archive, so not an npz of generated phrases); "
                        f"{expected}, or a folder of MIDI files with --midi DIR")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "rolls" not in z.files:
                raise UserError(f"{path}: no 'rolls' array (found {', '.join(z.files) or 'nothing'}); {expected}")
            rolls = z["rolls"]
    except UserError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # an object array: numpy's message would advise unsafe loading
            raise UserError(f"{path}: 'rolls' holds Python objects, not an array of generated phrases; "
                            f"{expected}") from None
        raise UserError(f"{path}: unreadable npz ({' '.join(str(exc).split())}); {expected}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        why = " ".join((str(exc) or type(exc).__name__).split())
        raise UserError(f"{path}: unreadable npz ({why}); {expected}") from None
    if rolls.ndim != 5 or tuple(rolls.shape[1:]) != tuple(expect):
        raise UserError(f"{path}: 'rolls' has shape {tuple(rolls.shape)}, the dataset's phrases are [N, {tuple(expect)}]")
    if rolls.dtype.kind == "f":
        if not np.isfinite(rolls).all():
            raise UserError(f"{path}: 'rolls' holds NaN or infinite values; {expected}")
        return rolls > threshold
    return rolls != 0


def _track_map_for(meta: dict, name: str | None):
    from symbolic.trackmap import TRACK_MAPS, get_track_map

    if name is not None:
        tm = get_track_map(name)
    else:
        tm = None
        wanted = meta.get("track_map")
        if wanted is not None:
            tm = get_track_map(wanted)
        else:
            for candidate in TRACK_MAPS.values():
                if candidate.names == list(meta["tracks"]) and candidate.is_drum == [bool(d) for d in meta["is_drum"]]:
                    tm = candidate
                    break
        if tm is None:
            raise UserError(f"--track-map: no known track map has the dataset's tracks {meta['tracks']}; name one")
    if tm.names != list(meta["tracks"]):
        raise UserError(f"--track-map {tm.name}: tracks {tm.names} differ from the dataset's {meta['tracks']}")
    return tm


def load_midi_phrases(midi_dir: str | Path, meta: dict, track_map: str | None = None,
                      skipped: list[dict] | None = None, meta_elsewhere: list[str] | None = None) -> np.ndarray:
    """Cut every MIDI file under ``midi_dir`` into phrases as ``musegansynth data symbolic --source
    midi`` cuts the files of a dataset, so that both columns of the table are read alike.

    The reading is the cache builder's (:func:`symbolic.data.midi_song`, then
    :func:`symbolic.data.song_phrases`): bar 0 at the file's start or before its pickup bar, bars
    in another meter than the grid's left out, phrases every ``meta["hop"]`` bars, all-empty
    phrases dropped, and each song moved to C major / A minor when the dataset's were
    (``meta["transposed"]``). For a cache with ``drum_keys`` (Groove's), a kit key the grid cannot
    hold is moved to its GM key as the cache's were (:func:`symbolic.data.move_kit_keys`).
    Files that give no phrase are appended to ``skipped`` (when given) as ``{"file": path,
    "why": ...}``, ``why`` one of "unreadable", "no notes", "meter not 4/4", "shorter than a
    phrase" and "only empty phrases". Files read as songs whose tempo, key or meter events on
    tracks after the first were not (:func:`symbolic.roll.meta_elsewhere_text`) are appended to
    ``meta_elsewhere``, as ``data symbolic`` names them.

    Returns:
        Bool array [N, tracks, n_bars, steps_per_bar, pitches].
    Raises:
        UserError: no folder, no MIDI file in it, no track map for the dataset, or no file that
        gives a phrase (saying how many were skipped and why).
    """
    from symbolic.data import Skip, midi_song, move_kit_keys, song_phrases
    from symbolic.generate import check_drum_keys
    from symbolic.roll import Grid, read_midi

    midi_dir = Path(midi_dir)
    if not midi_dir.is_dir():
        raise UserError(f"{midi_dir}: no such folder")
    files = sorted(p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise UserError(f"{midi_dir}: no .mid or .midi files")
    tm = _track_map_for(meta, track_map)
    grid = Grid.from_dict(meta["grid"])
    n_bars = _expected_shape(meta)[1]
    hop = int(meta.get("hop") or n_bars)
    drum_keys = check_drum_keys(meta["drum_keys"]) if meta.get("drum_keys") else None
    skipped = [] if skipped is None else skipped
    phrases = []
    for i, path in enumerate(files):
        try:
            pm = read_midi(path)
        except UserError:  # read_midi's "not a readable MIDI file (...)"
            skipped.append({"file": str(path), "why": "unreadable"})
            continue
        if drum_keys:
            move_kit_keys(pm, grid, drum_keys)
        try:
            song = midi_song(i, path.name, pm, tm, grid, "midi")
        except Skip as why:  # "no notes", "meter not 4/4"
            skipped.append({"file": str(path), "why": str(why)})
            continue
        if meta_elsewhere is not None and song.meta_elsewhere:   # the songs read, as the cache builder names them
            meta_elsewhere.append(str(path))
        arrays, empty = song_phrases(song, n_bars=n_bars, hop=hop, transpose=bool(meta.get("transposed")))
        if not len(arrays["rolls"]):
            why = ("shorter than a phrase" if song.mt.n_bars < n_bars else "only empty phrases" if empty
                   else "meter not 4/4")  # every phrase touches a bar in another meter
            skipped.append({"file": str(path), "why": why})
            continue
        phrases.append(arrays["rolls"])
    if not phrases:
        raise UserError(f"{midi_dir}: no file gives a whole phrase of {n_bars} bars "
                        f"({skipped_text(skipped, len(files))})")
    return np.concatenate(phrases, axis=0)


def skipped_counts(skipped: Sequence[dict]) -> dict[str, int]:
    """``{why: number of files}`` of the ``skipped`` entries of :func:`load_midi_phrases`, in the
    order the reasons first occur."""
    return dict(Counter(entry["why"] for entry in skipped))


def skipped_text(skipped: Sequence[dict], n_files: int | None = None) -> str:
    """The ``skipped`` entries of :func:`load_midi_phrases` in words, e.g. "2 files skipped:
    unreadable 1, shorter than a phrase 1" ("2 of 2 files ..." with ``n_files``)."""
    if not skipped:
        return "no file skipped"
    n = len(skipped)
    of = "" if n_files is None else f" of {n_files}"
    return (f"{n}{of} file{'s' if (n_files or n) != 1 else ''} skipped: "
            + ", ".join(f"{why} {k}" for why, k in skipped_counts(skipped).items()))


# --------------------------------------------------------------------------- comparison

def relative_difference(data: float, generated: float) -> float:
    """``(generated - data) / |data|``; 0 when both are 0; NaN when either is NaN or data is 0."""
    if math.isnan(data) or math.isnan(generated):
        return float("nan")
    if data == 0:
        return 0.0 if generated == 0 else float("nan")
    return (generated - data) / abs(data)


def compare(data: dict, generated: dict | None) -> list[dict]:
    """Rows ``{metric, track, data, generated, rel_diff, within}`` in table order.

    ``within`` is True when ``|rel_diff| <= 0.1``, False otherwise (also when only one side is
    defined), and None when there is no generated column or when the metric is undefined on both
    sides (then the row also has ``undefined: True``: e.g. the pitch classes of a track that is
    silent in the data and in the generated music alike, which agree and are not counted).
    """
    rows = []
    for track, values in data.items():
        if track != M.PAIRS_KEY:
            rows += [{"metric": m, "track": track, "data": v, "_pair": False} for m, v in values.items()]
    for pair, values in data.get(M.PAIRS_KEY, {}).items():
        rows += [{"metric": m, "track": pair, "data": v, "_pair": True} for m, v in values.items()]
    for row in rows:
        is_pair = row.pop("_pair")
        if generated is None:
            row.update(generated=None, rel_diff=None, within=None)
            continue
        src = generated.get(M.PAIRS_KEY, {}) if is_pair else generated
        gen = float(src.get(row["track"], {}).get(row["metric"], float("nan")))
        rel = relative_difference(float(row["data"]), gen)
        row.update(generated=gen, rel_diff=rel, within=bool(not math.isnan(rel) and abs(rel) <= WITHIN + 1e-12))
        if math.isnan(float(row["data"])) and math.isnan(gen):
            row.update(within=None, undefined=True)
    return rows


def bootstrap_intervals(rolls: np.ndarray, songs: np.ndarray, names: Sequence[str], is_drum: Sequence[bool],
                        grid: dict, n_resamples: int, seed: int = 0) -> dict:
    """How much the held-out value of each metric depends on which songs the split holds: the
    songs are drawn again with replacement ``n_resamples`` times (all phrases of a drawn song
    come along, once per draw), the metrics computed on each draw, and the central 95%
    (``INTERVAL``) of each metric's values returned, as ``{(metric, track): (lo, hi)}`` (track: a
    track name or an "a/b" pair; NaN bounds where a metric is undefined in every draw).

    Raises:
        ValueError: ``n_resamples`` < 1, or ``songs`` not one per phrase.
    """
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"bootstrap: the number of resamples must be a whole number >= 1, got {n_resamples!r}")
    songs = np.asarray(songs).reshape(-1)
    if songs.shape[0] != rolls.shape[0]:
        raise ValueError(f"bootstrap: {songs.shape[0]} song ids for {rolls.shape[0]} phrases")
    ids, inverse = np.unique(songs, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(ids))]
    rng = np.random.default_rng(seed)
    values: dict[tuple[str, str], list[float]] = {}
    for _ in range(int(n_resamples)):
        draw = rng.integers(0, len(ids), size=len(ids))
        idx = np.concatenate([members[i] for i in draw])
        for row in compare(M.evaluate_rolls(rolls[idx], names, is_drum, grid), None):
            values.setdefault((row["metric"], row["track"]), []).append(float(row["data"]))
    tail = 100 * (1 - INTERVAL) / 2
    out = {}
    for key, v in values.items():
        arr = np.asarray(v, dtype=float)
        arr = arr[~np.isnan(arr)]
        out[key] = ((float(np.percentile(arr, tail)), float(np.percentile(arr, 100 - tail)))
                    if arr.size else (float("nan"), float("nan")))
    return out


def add_intervals(rows: list[dict], intervals: dict) -> None:
    """Give each row ``data_lo`` / ``data_hi`` (its bootstrap interval) and ``in_interval``:
    whether the generated value lies inside it (None without a generated column)."""
    for row in rows:
        lo, hi = intervals.get((row["metric"], row["track"]), (float("nan"), float("nan")))
        row["data_lo"], row["data_hi"] = lo, hi
        gen = row["generated"]
        row["in_interval"] = None if gen is None else bool(not math.isnan(gen) and lo <= gen <= hi)


def _text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Columns of strings, left-aligned two spaces apart, under the header and a line of dashes."""
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    def num(v: Any) -> str:
        if v is None:
            return "-"
        return "nan" if math.isnan(v) else f"{v:.4f}"

    def rel(v: Any) -> str:
        if v is None:
            return "-"
        return "n/a" if math.isnan(v) else f"{100 * v:+.1f}%"

    def yes(v: Any) -> str:
        return "-" if v is None else ("yes" if v else "no")

    header = ("metric", "track", "data", "generated", "rel diff", "within 10%")
    body = [(r["metric"], r["track"], num(r["data"]), num(r["generated"]), rel(r["rel_diff"]),
             "given" if r.get("given") else "undefined" if r.get("undefined") else yes(r["within"])) for r in rows]
    if rows and "data_lo" in rows[0]:
        header += ("data 95% interval", "inside")
        body = [b + (f"{num(r['data_lo'])}-{num(r['data_hi'])}", yes(r["in_interval"])) for b, r in zip(body, rows)]
    return _text_table(header, body)


def _json_safe(obj: Any) -> Any:
    """Replace NaN / inf by None and numpy scalars by Python numbers, recursively."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def generate_for_phrases(weights: str | Path, meta: dict, arrays: dict[str, np.ndarray], idx: np.ndarray, *,
                         seed: int = 0, threshold: float = 0.5, device: str = "cpu",
                         release: dict | None = None, legato: dict | None = None,
                         given: int | None = None, chords: str = "data",
                         find_key: bool = False) -> np.ndarray:
    """One generated phrase per held-out phrase ``idx`` of a split (from :func:`load_split`),
    conditioned on its chords and style, with the composer of ``weights``: bool
    [len(idx), tracks, bars, steps, pitches]. ``release`` and ``legato`` ({track: tau}; None: the
    card's) replace the composer's decoding rules. ``given`` (a track index): each phrase's own
    track is given and the composer writes the others; ``chords``: one of :data:`CHORD_SOURCES`;
    ``find_key``: the composer finds each song's key itself (:func:`song_offsets`) instead of
    taking the phrases as they are (the cache's phrases are in its home key already). UserError
    when the composer does not fit the data."""
    dev = _resolve_device(device)
    composer = _load_composer(weights, dev)
    _check_composer(composer, meta, weights)
    from symbolic.generate import check_legato, check_track_taus

    try:
        if release is not None:
            composer.release = check_track_taus(release, composer.track_names, "--release")
        if legato is not None:
            composer.legato = check_legato(legato, composer.track_names, composer.generator.monophonic, "--legato")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    style = map_styles(arrays["style"][idx], meta.get("styles"), getattr(composer, "styles", None))
    given_rolls = None if given is None else arrays["rolls"][idx, given]
    phrase_chords, has = arrays["chords"][idx], arrays["has_chords"][idx]
    if chords == "estimated":
        phrase_chords = estimated_chords(given_rolls, arrays["song"][idx], meta["grid"])
        has = np.ones(len(idx), dtype=bool)
    offsets = None
    if find_key:
        offsets = song_offsets(composer, arrays["song"][idx], None if chords == "none" else phrase_chords,
                               given_rolls)
    rolls = generate_rolls(composer, phrase_chords, style, seed=seed, threshold=threshold, device=dev,
                           has_chords=has, given=given_rolls, given_track=given, use_chords=chords != "none",
                           offsets=offsets)
    expect = _expected_shape(meta)
    if rolls.ndim != 5 or tuple(rolls.shape[1:]) != expect:
        raise UserError(f"{weights}: the composer made phrases of shape {rolls.shape[1:]}, "
                        f"the dataset's are {expect}")
    return rolls


def estimated_chords(given_rolls: np.ndarray, songs: np.ndarray, grid: dict) -> np.ndarray:
    """:func:`symbolic.chords.estimate_chords` of the given track [N, bars, steps, pitches], song by
    song (``songs`` [N]; a song's phrases in their order, as ``accompany`` reads a whole file):
    uint8 [N, bars, beats_per_bar, 12]."""
    from symbolic.chords import estimate_chords

    n, bars, steps, pitches = given_rolls.shape
    out = np.zeros((n, bars, int(grid["beats_per_bar"]), 12), dtype=np.uint8)
    for song in np.unique(songs):
        rows = np.flatnonzero(np.asarray(songs) == song)
        est = estimate_chords(given_rolls[rows].reshape(rows.size * bars, steps, pitches), int(grid["lowest_pitch"]),
                              int(grid["steps_per_beat"]), int(grid["beats_per_bar"]))
        out[rows] = est.reshape(rows.size, bars, -1, 12)
    return out


def transpose_split(arrays: dict[str, np.ndarray], semitones: int,
                    is_drum: Sequence[bool]) -> dict[str, np.ndarray]:
    """The split's phrases moved ``semitones`` up (down when negative): the rolls of the pitched
    tracks along the pitch axis (notes moved out of the range dropped) and chords along their
    pitch classes. Drum tracks (``is_drum[t]``, one per track of ``arrays["rolls"]`` [N, tracks,
    bars, steps, pitches]) stay as they are: their pitches are instruments (36 kick, 38 snare)."""
    from symbolic.chords import shift_pitches

    out = dict(arrays)
    if semitones:
        pitched = [t for t, drum in enumerate(is_drum) if not drum]
        rolls = arrays["rolls"].copy()
        rolls[:, pitched] = shift_pitches(arrays["rolls"][:, pitched], semitones)
        out["rolls"] = rolls
        out["chords"] = np.roll(arrays["chords"], semitones, axis=-1)
    return out


def other_song_phrases(songs: np.ndarray) -> np.ndarray:
    """For each phrase, a phrase of another song: the first, from half the split away on
    (wrapping), whose song id differs; -1 where the split holds one song only."""
    songs = np.asarray(songs).reshape(-1)
    n = songs.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        for k in range(n):
            j = (i + n // 2 + k) % n
            if songs[j] != songs[i]:
                out[i] = j
                break
        else:
            break  # no phrase of another song anywhere
    return out


def accompaniment_fit(data_rolls: np.ndarray, gen_rolls: np.ndarray, chords: np.ndarray, has_chords: np.ndarray,
                      names: Sequence[str], is_drum: Sequence[bool], given: int, lowest_pitch: int,
                      songs: np.ndarray | None = None) -> list[dict]:
    """How the composed tracks fit a given track and the song's harmony, one row per other
    pitched track: ``{"track", "td_data", "td_generated", "td_other_song", "ct_data",
    "ct_generated"}``. ``td_*``: tonal distance (:func:`symbolic.metrics.tonal_distance`) to
    the given track in the data, in the generated phrases, and between the generated track and
    the given track of a phrase of another song (:func:`other_song_phrases` of ``songs``, the
    phrases' song ids; without them each phrase counts as its own song): what no fit at all
    gives, NaN when the split holds one song. ``ct_*``: :func:`symbolic.metrics.chord_tone_rate`
    against the phrases' annotated chords (NaN when they have none), whether or not the composer
    saw them."""
    n = data_rolls.shape[0]
    other = other_song_phrases(np.arange(n) if songs is None else songs)
    rows = []
    for t, name in enumerate(names):
        if t == given or is_drum[t]:
            continue
        rows.append({
            "track": str(name),
            "td_data": M.tonal_distance(data_rolls[:, given], data_rolls[:, t], lowest_pitch),
            "td_generated": M.tonal_distance(gen_rolls[:, given], gen_rolls[:, t], lowest_pitch),
            "td_other_song": (M.tonal_distance(data_rolls[other, given], gen_rolls[:, t], lowest_pitch)
                              if (other >= 0).all() else float("nan")),
            "ct_data": M.chord_tone_rate(data_rolls[:, t], chords, has_chords, lowest_pitch),
            "ct_generated": M.chord_tone_rate(gen_rolls[:, t], chords, has_chords, lowest_pitch),
        })
    return rows


def evaluate_symbolic(data_dir: str | Path, *, split: str = "test", weights: str | Path | None = None,
                      generated: str | Path | None = None, midi: str | Path | None = None,
                      n: int | None = None, seed: int = 0, device: str | None = None,
                      threshold: float | None = None, track_map: str | None = None, release: dict | None = None,
                      legato: dict | None = None, bootstrap: int = 0, given: str | None = None,
                      chords: str | None = None, transpose: int | None = None) -> dict:
    """Metrics of held-out phrases and (optionally) of generated ones, side by side.

    Args:
        data_dir: dataset cache folder (meta.json + <split>.npz).
        split: "train", "valid" or "test".
        weights / generated / midi: at most one source of generated phrases (see module doc).
        n: at most this many held-out phrases (a random subset drawn with ``seed``; None: the
            whole split) and as many generated ones (one per selected phrase with ``weights``).
        seed: seeds the subset and the composer's latents.
        device: "cpu", "cuda" or "auto" (composer only; None: "cpu").
        threshold: binarization threshold of generated probabilities (``weights`` or ``generated``;
            None: 0.5).
        track_map: track map used to read ``midi`` (default: the one matching meta's tracks).
        release, legato: with ``weights``, {track: tau} in place of the card's decoding rules
            (``{}``: none; see ``symbolic.generate.release_held_notes`` and ``legato_overlaps``).
        bootstrap: when > 0, that many song-level resamples of the held-out phrases give each
            row a 95% interval of its held-out value (:func:`bootstrap_intervals`, seeded with
            ``seed``) and whether the generated value lies inside it.
        given: with ``weights``, a track name: each held-out phrase's own track is given to the
            composer, which writes the others (``musegansynth accompany``). That track's rows
            are the data's and do not count; ``report["fit"]`` (:func:`accompaniment_fit`) says
            how the other tracks fit it.
        chords: with ``weights``, which chords the composer gets (:data:`CHORD_SOURCES`): "data"
            (the held-out phrases', also for None), "none" (a bare melody's case) or "estimated"
            from the given track (needs ``given``).
        transpose: with ``weights``, move the held-out phrases (the notes of their pitched tracks,
            and their chords; drum tracks stay as they are) this many semitones (-11..11) first;
            the composer then finds each song's key itself (:func:`song_offsets`), as generation
            does. At 0 (or None) the cache's phrases are taken in the home key they were moved to
            when the cache was built.
    Returns:
        A JSON-ready report: ``{"data_dir", "split", "source", "seed", "n_data", "n_generated",
        "tracks", "is_drum", "grid", "data": metrics, "generated": metrics | None, "rows": [...],
        "summary": {"compared", "within", "undefined"[, "inside", "bootstrap"]}[, "given", "fit"][, "kit"]
        [, "skipped", "skipped_files", "meta_elsewhere_files"]}`` (metrics as from
        :func:`symbolic.metrics.evaluate_rolls`; NaN kept as float NaN here). With ``midi``:
        ``skipped`` ``{why: number of files}`` and ``skipped_files`` ``[{"file", "why"}]``, the files
        that gave no phrase, and ``meta_elsewhere_files``, those whose tempo, key or meter events on
        later tracks were not read (:func:`load_midi_phrases`). ``kit`` (with generated phrases and a drum track):
        ``{drum track: symbolic.metrics.kit_distance of held-out and generated}``.
    Raises:
        UserError: bad or missing input, or an option that does nothing with the source given
        (one named at a time, e.g. ``release`` without ``weights``).
    """
    sources = [(k, v) for k, v in (("weights", weights), ("generated", generated), ("midi", midi)) if v is not None]
    if len(sources) > 1:
        raise UserError("--weights, --generated and --midi: give at most one")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise UserError(f"--bootstrap: expected a whole number of resamples >= 0, got {bootstrap!r}")
    no_composer = weights is None
    unused = (  # (option, given where it does nothing, the source it needs, what it does)
        ("--release", no_composer and release is not None, "--weights", "it replaces the composer's decoding rule"),
        ("--legato", no_composer and legato is not None, "--weights", "it replaces the composer's decoding rule"),
        ("--device", no_composer and device is not None, "--weights", "where the composer runs"),
        ("--given", no_composer and given is not None, "--weights", "the track given to the composer"),
        ("--chords", no_composer and chords is not None, "--weights", "the chords the composer gets"),
        ("--transpose", no_composer and transpose is not None, "--weights",
         "the held-out phrases are moved so that the composer must find each song's key"),
        ("--threshold", weights is None and generated is None and threshold is not None, "--weights or --generated",
         "it binarises probabilities; held-out and MIDI notes are notes already"),
        ("--track-map", midi is None and track_map is not None, "--midi", "how the MIDI files are read"))
    for option, idle, needs, what in unused:
        if idle:
            raise UserError(f"{option}: only with {needs} ({what})")
    device = "cpu" if device is None else device
    chords = "data" if chords is None else chords
    transpose = 0 if transpose is None else transpose
    if chords not in CHORD_SOURCES:
        raise UserError(f"--chords: {chords!r} is not allowed (allowed: {', '.join(CHORD_SOURCES)})")
    if chords == "estimated" and given is None:
        raise UserError("--chords estimated: needs --given TRACK (the chords are estimated from that track)")
    if isinstance(transpose, bool) or not isinstance(transpose, int) or not -11 <= transpose <= 11:
        raise UserError(f"--transpose: expected a whole number of semitones from -11 to 11, got {transpose!r}")
    threshold = 0.5 if threshold is None else check_threshold(threshold)
    check_seed(seed)
    meta, arrays = load_split(data_dir, split)
    names = [str(t) for t in meta["tracks"]]
    is_drum = [bool(d) for d in meta["is_drum"]]
    grid = meta["grid"]
    if transpose and all(is_drum):
        raise UserError(f"--transpose {transpose}: {data_dir} has no pitched track to move (drum tracks only: "
                        f"{', '.join(names)})")
    arrays = transpose_split(arrays, transpose, is_drum)
    given_index = None
    if given is not None:
        lowered = [t.lower() for t in names]
        if str(given).lower() not in lowered:
            raise UserError(f"--given {given!r}: not a track of {data_dir} (tracks: {', '.join(names)})")
        if len(names) == 1:
            raise UserError(f"--given {given}: {names[0]} is the only track of {data_dir}, so the composer "
                            f"has nothing left to write")
        given_index = lowered.index(str(given).lower())
    idx = select_phrases(arrays["rolls"].shape[0], n, seed)
    if idx.size == 0:
        raise UserError(f"{Path(data_dir) / (split + '.npz')}: holds no phrase")
    data_rolls = arrays["rolls"][idx]
    data_metrics = M.evaluate_rolls(data_rolls, names, is_drum, grid)

    gen_rolls = None
    if weights is not None:
        gen_rolls = generate_for_phrases(weights, meta, arrays, idx, seed=seed, threshold=threshold, device=device,
                                         release=release, legato=legato, given=given_index, chords=chords,
                                         find_key=bool(transpose))
    elif generated is not None:
        gen_rolls = load_generated_npz(generated, _expected_shape(meta), threshold)
        gen_rolls = gen_rolls[select_phrases(gen_rolls.shape[0], n, seed)]
    elif midi is not None:
        skipped: list[dict] = []
        meta_elsewhere: list[str] = []
        gen_rolls = load_midi_phrases(midi, meta, track_map, skipped, meta_elsewhere)
        gen_rolls = gen_rolls[select_phrases(gen_rolls.shape[0], n, seed)]
    if gen_rolls is not None and gen_rolls.shape[0] == 0:
        raise UserError(f"{sources[0][1]}: holds no phrase")
    gen_metrics = None if gen_rolls is None else M.evaluate_rolls(gen_rolls, names, is_drum, grid)
    rows = compare(data_metrics, gen_metrics)
    if given_index is not None:  # the given track is the data's own: nothing to compare
        for r in rows:
            if r["track"] == names[given_index]:
                r["within"] = None
                r["given"] = True
    compared = [r for r in rows if r["within"] is not None]
    summary = {"compared": len(compared), "within": sum(1 for r in compared if r["within"]),
               "undefined": sum(1 for r in rows if r.get("undefined") and not r.get("given"))}
    if bootstrap:
        songs = arrays["song"][idx]
        add_intervals(rows, bootstrap_intervals(data_rolls, songs, names, is_drum, grid, bootstrap, seed=seed))
        summary.update(inside=sum(1 for r in compared if r["in_interval"]), bootstrap=int(bootstrap),
                       songs=int(np.unique(songs).size))
    extra: dict[str, Any] = {}
    if given_index is not None:
        extra["given"] = names[given_index]
        extra["fit"] = accompaniment_fit(data_rolls, gen_rolls, arrays["chords"][idx], arrays["has_chords"][idx],
                                         names, is_drum, given_index, int(grid["lowest_pitch"]), arrays["song"][idx])
    if gen_rolls is not None and any(is_drum):   # which drums play: the drum metrics cannot see it
        extra["kit"] = {names[t]: M.kit_distance(data_rolls[:, t], gen_rolls[:, t])
                        for t in range(len(names)) if is_drum[t] and t != given_index}
    if weights is not None:
        extra["chords"] = chords
        extra["transpose"] = int(transpose)
    if midi is not None:
        extra["skipped"] = skipped_counts(skipped)
        extra["skipped_files"] = skipped
        extra["meta_elsewhere_files"] = meta_elsewhere
    return {
        **extra,
        "data_dir": str(data_dir),
        "split": split,
        "source": None if not sources else {"kind": sources[0][0], "path": str(sources[0][1])},
        "seed": int(seed),
        "n_data": int(data_rolls.shape[0]),
        "n_generated": None if gen_rolls is None else int(gen_rolls.shape[0]),
        "tracks": names,
        "is_drum": is_drum,
        "grid": dict(grid),
        "data": data_metrics,
        "generated": gen_metrics,
        "rows": rows,
        "summary": summary,
    }


def _check_composer(composer: Any, meta: dict, weights: Any) -> None:
    """UserError, before anything is generated, when the composer's phrases do not have the
    cache's tracks, bars, steps a bar, beats a bar (its chords have one row a beat), pitches or
    lowest pitch. Reads ``composer.track_names``, ``n_bars``, ``steps_per_bar``, ``beats_per_bar``,
    ``n_pitches`` and ``grid`` (a dict or object with ``steps_per_beat``, ``beats_per_bar``,
    ``lowest_pitch``, ``n_pitches``); what the composer lacks is not checked."""
    names = [str(t) for t in getattr(composer, "track_names", [])]
    if names != [str(t) for t in meta["tracks"]]:
        raise UserError(f"--weights {weights}: the composer's tracks {names} differ from the cache's "
                        f"{meta['tracks']}")
    g = getattr(composer, "grid", None) or {}

    def grid(key: str) -> Any:
        return g.get(key) if isinstance(g, dict) else getattr(g, key, None)

    steps = getattr(composer, "steps_per_bar", None)
    if steps is None and grid("steps_per_beat") is not None and grid("beats_per_bar") is not None:
        steps = int(grid("steps_per_beat")) * int(grid("beats_per_bar"))
    _, bars, data_steps, pitches = _expected_shape(meta)
    mg = meta["grid"]
    checks = (  # (composer's value, cache's, message)
        (getattr(composer, "n_bars", None), bars, "the composer writes phrases of {} bars, the cache's are {} bars"),
        (steps, data_steps, "the composer writes bars of {} steps, the cache's have {} steps"),
        (getattr(composer, "beats_per_bar", None) or grid("beats_per_bar"), mg["beats_per_bar"],
         "the composer's bars have {} beats (one chord a beat), the cache's have {} beats"),
        (getattr(composer, "n_pitches", None) or grid("n_pitches"), pitches,
         "the composer writes {} pitches, the cache's phrases have {} pitches"),
        (grid("lowest_pitch"), mg["lowest_pitch"],
         "the composer's lowest pitch is MIDI {}, the cache's is MIDI {}"))
    for have, want, message in checks:
        if have is not None and int(have) != int(want):
            raise UserError(f"--weights {weights}: " + message.format(int(have), int(want)))


def map_styles(style: np.ndarray, data_styles: Sequence[str] | None, model_styles: Sequence[str] | None) -> np.ndarray:
    """Dataset style indices [N] -> the composer's indices, matched by name (case-insensitive).

    Styles the composer does not know become -1 ("unknown style"). When either side has no
    style names, the indices are passed through unchanged.
    """
    if not data_styles or not model_styles:
        return style
    model = [str(s).lower() for s in model_styles]
    table = np.array([model.index(str(s).lower()) if str(s).lower() in model else -1 for s in data_styles]
                     + [-1], dtype=np.int64)
    style = np.asarray(style, dtype=np.int64)
    safe = np.where((style >= 0) & (style < len(data_styles)), style, len(data_styles))
    return table[safe]


def report_text(report: dict) -> str:
    """The table and a one-line summary of a report from :func:`evaluate_symbolic`."""
    head = f"held-out: {report['data_dir']} [{report['split']}], {report['n_data']} phrases"
    if report["source"] is not None:
        head += (f"; generated: {report['source']['kind']} {report['source']['path']}, "
                 f"{report['n_generated']} phrases")
    how = []
    if report.get("given") is not None:
        how.append(f"{report['given']} given (its rows are the data's)")
    if report.get("chords") in ("none", "estimated"):
        how.append({"none": "no chords", "estimated": "chords estimated from the given track"}[report["chords"]])
    if report.get("transpose"):
        how.append(f"moved {report['transpose']:+d} semitones, the composer finding each song's key")
    if how:
        head += "; " + ", ".join(how)
    lines = [head]
    if report.get("skipped"):
        lines.append(skipped_text(report["skipped_files"]))
    if report.get("meta_elsewhere_files"):
        from symbolic.roll import meta_elsewhere_text

        lines.append(f"note: {meta_elsewhere_text(report['meta_elsewhere_files'])}")
    lines.append(format_table(report["rows"]))
    if report["generated"] is not None:
        s = report["summary"]
        lines.append(f"{s['within']} of {s['compared']} metrics within 10% of the held-out data"
                     + (f" ({s['undefined']} undefined on both sides, not counted)" if s.get("undefined") else ""))
        if "inside" in s:
            lines.append(f"{s['inside']} of {s['compared']} generated values inside the held-out value's 95% "
                         f"interval ({s['bootstrap']} resamples of its {s['songs']} songs)")
    for track, d in (report.get("kit") or {}).items():   # NaN, or None once through JSON: no hit on one side
        lines.append(f"{track}: kit distance {'nan' if d is None or math.isnan(d) else f'{d:.3f}'} (total "
                     f"variation between the held-out and generated shares of hits by drum; 0: every drum "
                     f"in the same proportion)")
    if report.get("fit"):
        lines.append(format_fit(report["fit"], report["given"]))
    return "\n".join(lines)


def format_fit(fit: list[dict], given: str) -> str:
    """The table of :func:`accompaniment_fit`'s rows."""
    def num(v: Any) -> str:
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    head = ("track", f"TD to {given}: data", "generated", "vs another song's", "chord tones: data", "generated")
    body = [(r["track"], num(r["td_data"]), num(r["td_generated"]), num(r["td_other_song"]), num(r["ct_data"]),
             num(r["ct_generated"])) for r in fit]
    return _text_table(head, body)


# --------------------------------------------------------------------------- CLI

def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, metavar="DIR", help="dataset cache folder (meta.json + <split>.npz)")
    p.add_argument("--split", default="test", help="which split holds the held-out phrases (default: test)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="PATH", help="composer weights: generate conditioned on the held-out chords/style")
    src.add_argument("--generated", metavar="FILE.npz", help="npz with 'rolls' [N, tracks, bars, steps, pitches]")
    src.add_argument("--midi", metavar="DIR", help="folder of MIDI files to cut into phrases")
    p.add_argument("--track-map", default=None,
                   help="with --midi: the track map the files are read with (default: the one matching the dataset)")
    p.add_argument("--n", type=int, default=None,
                   help="at most this many phrases on each side, a random subset (default: the whole split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phrase subset and the latents (default: 0)")
    p.add_argument("--threshold", type=float, default=None,
                   help="with --weights or --generated: binarization threshold of probabilities (default: 0.5)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the report as JSON")
    p.add_argument("--device", default=None, help="with --weights: cpu, cuda or auto (default: cpu)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="also give each held-out value a 95%% interval from N resamples of the split's "
                        "songs (about 1 s each for 1,800 phrases; default 0: none)")
    from symbolic.generate import add_decode_arguments

    add_decode_arguments(p, "the card's decode.{rule} (with --weights)")
    p.add_argument("--given", metavar="TRACK", default=None,
                   help="with --weights: give the composer each held-out phrase's own TRACK and let it write "
                        "the others (accompany); TRACK's rows are not compared, and a second table says how "
                        "the other tracks fit it")
    p.add_argument("--chords", choices=CHORD_SOURCES, default=None,
                   help="with --weights: the chords the composer gets: the held-out phrases' own (data, the "
                        "default), none (a bare melody's case), or estimated from the --given track (what "
                        "'musegansynth accompany' does by default)")
    p.add_argument("--transpose", type=int, default=None, metavar="K",
                   help="with --weights: move the held-out phrases K semitones (-11..11) first, so the "
                        "composer has to find each song's key (default 0: the cache's home key)")
    return p


def cli_main(argv: Sequence[str]) -> int:
    """Entry point: ``argv[0]`` is the program name, the rest the subcommand's arguments."""
    argv = list(argv)
    args = _parser(argv[0] if argv else "musegansynth evaluate symbolic").parse_args(argv[1:])
    if args.json is not None:
        check_json_out(args.json)  # before the evaluation, which can take minutes
    from symbolic.generate import parse_track_taus
    report = evaluate_symbolic(args.data, split=args.split, weights=args.weights, generated=args.generated,
                               midi=args.midi, n=args.n, seed=args.seed, device=args.device,
                               threshold=args.threshold, track_map=args.track_map,
                               release=parse_track_taus(args.release, "--release"),
                               legato=parse_track_taus(args.legato, "--legato"), bootstrap=args.bootstrap,
                               given=args.given, chords=args.chords, transpose=args.transpose)
    print(report_text(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json}")
    return 0
