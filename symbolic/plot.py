"""Draw a multitrack pianoroll as a PNG: one panel per track, time in bars, pitch names.

``musegansynth plot pianoroll MIDI --out PNG [--track-map NAME|auto]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import UserError
from pipeline.fileio import missing_glyphs_quiet, save_png
from symbolic.roll import (Grid, Multitrack, check_steps_per_beat, meta_elsewhere_note, midi_to_multitrack,
                           off_grid_meters, read_midi, tempo_map_beats, time_signature_beats)
from symbolic.trackmap import LPD5, TRACK_MAPS, TrackMap, file_track_map, get_track_map


#: Largest ``--steps-per-beat`` (96 steps a beat is far finer than any pianoroll needs).


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_multitrack(mt_or_roll, track_names: Sequence[str] | None, out_png: str | os.PathLike,
                    title: str | None = None, *, grid: Grid | None = None) -> Path:
    """Draw a pianoroll (see :func:`draw_multitrack`) and write it to ``out_png`` atomically.

    Returns the path written.
    """
    plt = _pyplot()
    fig = draw_multitrack(mt_or_roll, track_names, title, grid=grid)
    out_png = Path(out_png)
    try:
        save_png(fig, out_png, dpi=100)
    finally:
        plt.close(fig)
    return out_png


def draw_multitrack(mt_or_roll, track_names: Sequence[str] | None = None, title: str | None = None, *,
                    grid: Grid | None = None):
    """A matplotlib Figure (Agg) of a pianoroll: one panel per track, time in bars with bar lines,
    pitch names on the y axis (the C of each octave), shading by velocity.

    Args:
        mt_or_roll: a :class:`Multitrack`, or a roll ``[tracks, bars, steps_per_bar, n_pitches]``
            (bool, uint8 velocities or float in [0, 1]; numpy or torch).
        track_names: one name per track (default: the multitrack's names, or "track i").
        title: figure title.
        grid: the roll's grid (default: the multitrack's, or pitches from MIDI 24 (from 0 for more
            than 104 rows) with the roll's steps per bar as 4 beats).

    Raises ValueError on a roll of the wrong shape or a wrong number of track names.
    """
    import pretty_midi

    plt = _pyplot()

    if isinstance(mt_or_roll, Multitrack):
        roll = mt_or_roll.roll
        grid = grid or mt_or_roll.grid
        track_names = list(track_names) if track_names is not None else mt_or_roll.track_names
    else:
        roll = mt_or_roll.detach().cpu().numpy() if hasattr(mt_or_roll, "detach") else np.asarray(mt_or_roll)
        if roll.ndim != 4:
            raise ValueError(f"roll should have 4 dimensions [tracks, bars, steps_per_bar, pitches], got {roll.shape}")
        if grid is None:
            spb = roll.shape[2]
            four = spb % 4 == 0
            grid = Grid(steps_per_beat=spb // 4 if four else spb, beats_per_bar=4 if four else 1,
                        lowest_pitch=24 if roll.shape[3] <= 104 else 0, n_pitches=roll.shape[3])
    n_tracks, n_bars, steps, n_pitches = roll.shape
    if (steps, n_pitches) != (grid.steps_per_bar, grid.n_pitches):
        raise ValueError(f"roll shape {roll.shape} does not match the grid {grid}")
    if track_names is None:
        track_names = [f"track {i}" for i in range(n_tracks)]
    if len(track_names) != n_tracks:
        raise ValueError(f"{len(track_names)} track names for {n_tracks} tracks")
    values = roll.astype(np.float32)
    if roll.dtype == np.uint8:
        values = values / 127.0
    flat = values.reshape(n_tracks, n_bars * steps, n_pitches)

    fig_w = min(24.0, 4.0 + 0.9 * n_bars)
    fig, axes = plt.subplots(n_tracks, 1, figsize=(fig_w, 1.0 + 2.0 * n_tracks), sharex=True, squeeze=False)
    cs = [p for p in range(grid.lowest_pitch, grid.lowest_pitch + n_pitches) if p % 12 == 0]
    for t, ax in enumerate(axes[:, 0]):
        img = flat[t].T  # [pitches, time]
        active = np.flatnonzero(img.any(axis=1))
        lo, hi = (active[0], active[-1]) if len(active) else (0, n_pitches - 1)
        lo, hi = max(0, lo - 3), min(n_pitches - 1, hi + 3)
        ax.imshow(img, aspect="auto", origin="lower", cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
                  extent=(0, n_bars, grid.lowest_pitch - 0.5, grid.lowest_pitch + n_pitches - 0.5))
        ax.set_ylim(grid.lowest_pitch + lo - 0.5, grid.lowest_pitch + hi + 0.5)
        ax.set_yticks([c for c in cs if grid.lowest_pitch + lo <= c <= grid.lowest_pitch + hi] or
                      [grid.lowest_pitch + lo])
        ax.set_yticklabels([pretty_midi.note_number_to_name(int(c)) for c in ax.get_yticks()])
        for b in range(1, n_bars):
            ax.axvline(b, color="0.4", linewidth=0.8)
        ax.set_ylabel(track_names[t], parse_math=False)  # names are text, '$' too
    axes[-1, 0].set_xlabel("bar")
    every = 1 if n_bars <= 32 else int(np.ceil(n_bars / 16))
    ticks = np.arange(0, n_bars, every)
    axes[-1, 0].set_xticks(ticks)  # a tick at the start of each (shown) bar, numbered from 1
    axes[-1, 0].set_xticklabels([str(int(b) + 1) for b in ticks])
    axes[-1, 0].set_xlim(0, n_bars)
    if title:
        fig.suptitle(title, parse_math=False)
    with missing_glyphs_quiet():
        fig.tight_layout()
    return fig


MAX_FILE_TRACKS = 16
"""``plot pianoroll``'s auto draws a file of up to this many instruments with notes as they are."""


def guess_track_map(pm) -> TrackMap:
    """The file's own instruments with notes, one row each under its own name
    (:func:`symbolic.trackmap.file_track_map`: a song this project wrote is drawn with its
    tracks), or LPD-5's five families for a file of more than :data:`MAX_FILE_TRACKS` of them, or
    of none."""
    playing = [i for i in pm.instruments if i.notes]
    if not playing or len(playing) > MAX_FILE_TRACKS:
        return LPD5
    return file_track_map(pm.instruments)


#: The most bars ``plot pianoroll`` draws (a stray note hours late would need a roll of many GB).
MAX_PLOT_BARS = 4096


def cli_main(argv: list[str]) -> int:
    """``musegansynth plot pianoroll MIDI --out PNG [--track-map NAME|auto]``; returns 0."""
    p = argparse.ArgumentParser(prog=argv[0] if argv else "musegansynth plot pianoroll",
                                description="Draw a MIDI file as a multitrack pianoroll PNG.")
    p.add_argument("midi", type=Path)
    p.add_argument("--out", type=Path, default=None, help="PNG path (default: MIDI with .png)")
    p.add_argument("--track-map", default="auto",
                   help=f"auto (the file's own instruments, one row each; LPD-5's families for more than "
                        f"{MAX_FILE_TRACKS}), file (its own instruments, however many), lpd5, pop909, ...")
    p.add_argument("--steps-per-beat", type=int, default=4)
    p.add_argument("--title", default=None)
    args = p.parse_args(argv[1:])
    check_steps_per_beat(args.steps_per_beat)
    if args.out is not None and args.out.name.lower() == ".png":
        raise UserError(f"--out {args.out}: give the picture a name before .png")
    if args.out is not None and (str(args.out) in ("", ".") or args.out.suffix.lower() != ".png"):
        raise UserError(f"--out {str(args.out) if str(args.out) != '.' else ''!r}: the picture is a PNG; name it *.png")
    pm = read_midi(args.midi)
    meta_elsewhere_note(pm, args.midi)
    choice = args.track_map.strip().lower()
    if choice == "auto":
        track_map = guess_track_map(pm)
    elif choice == "file":
        if not any(i.notes for i in pm.instruments):
            raise UserError(f"{args.midi}: --track-map file: no instrument of the file has notes")
        track_map = file_track_map(pm.instruments)
    else:
        try:
            track_map = get_track_map(args.track_map)
        except UserError:
            raise UserError(f"--track-map {args.track_map!r}: unknown (choose auto, file, "
                            f"{', '.join(TRACK_MAPS)})") from None
    grid = Grid(steps_per_beat=args.steps_per_beat)
    bars = int(np.ceil(float(tempo_map_beats(pm, np.array([pm.get_end_time()]))[0]) / grid.beats_per_bar))
    if bars > MAX_PLOT_BARS:
        raise UserError(f"{args.midi}: {bars} bars of {grid.beats_per_bar}/4 are too many to draw "
                        f"(at most {MAX_PLOT_BARS})")
    mt = midi_to_multitrack(pm, track_map, grid)
    left_out = [i for i, k in zip(pm.instruments, track_map.assign(pm.instruments)) if k is None and i.notes]
    if left_out:
        names = ", ".join(dict.fromkeys(i.name.strip() or ("drums" if i.is_drum else f"program {i.program}")
                                        for i in left_out))
        print(f"musegansynth: note: {args.midi}: {sum(len(i.notes) for i in left_out)} notes of {names} are on no "
              f"track of the '{track_map.name}' track map ({', '.join(track_map.names)}): not drawn (choose "
              f"another with --track-map)", file=sys.stderr)
    if mt.n_dropped:
        print(f"musegansynth: note: {args.midi}: {mt.n_dropped} notes outside MIDI {grid.lowest_pitch}-"
              f"{grid.lowest_pitch + grid.n_pitches - 1} (or before bar 1): not drawn", file=sys.stderr)
    sigs = time_signature_beats(pm)
    other = [f"{n}/{d}" for i, (_, n, d) in enumerate(sigs) if i in off_grid_meters(sigs, grid.beats_per_bar)]
    if other:
        print(f"musegansynth: note: {args.midi}: in {', '.join(dict.fromkeys(other))}; drawn on "
              f"{grid.beats_per_bar}/4 bars", file=sys.stderr)
    if not mt.roll.any():
        print(f"musegansynth: note: {args.midi}: no notes on the tracks of the '{track_map.name}' track map "
              f"({', '.join(track_map.names)}); the picture is empty", file=sys.stderr)
    out = args.out or args.midi.with_suffix(".png")
    plot_multitrack(mt, None, out, title=args.title or args.midi.name)
    print(out)
    return 0
