"""``musegansynth data symbolic``: cut songs into phrases and cache them as compressed npz.

Sources: POP909 (with its beat, chord and key annotations), Groove MIDI (drums, its own split),
a folder of MIDI files with a track map, LPD-5 pianoroll npz files (pypianoroll), and the Bach
chorales shipped with music21. Every song is put on the grid (4 steps a beat, 84 pitches from
MIDI 24 by default), transposed to C major / A minor (the original tonic kept as ``key``;
drum tracks are not transposed), cut into phrases of ``--bars`` bars every ``--hop`` bars, and
split into train/valid/test by song. Layout of the cache (docs/CONTRACTS.md):

``OUT/meta.json`` and ``OUT/{train,valid,test}.npz`` holding
``rolls`` bool ``[N, tracks, bars, steps_per_bar, n_pitches]``,
``chords`` uint8 ``[N, bars, beats_per_bar, 12]``, ``has_chords`` bool ``[N]``,
``style`` int64 ``[N]``, ``song`` int64 ``[N]``, ``key`` int64 ``[N]`` (-1 unknown); and
``OUT/velocity.npz``, the songs' note velocities counted by split, style, track, pitch and step
of the bar (:mod:`symbolic.velocity`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from pipeline.errors import UserError, check_seed
from pipeline.fileio import atomic_path, remove_empty_folders, staged_dir
from symbolic.chords import chord_pitch_classes, estimate_key, parse_key, shift_pitches, transpose_to_c
from symbolic.roll import (Grid, Multitrack, _beat_times_beats, check_steps_per_beat, from_pypianoroll,
                           meta_elsewhere_text, midi_to_multitrack, off_grid_meters, pickup_origin, read_midi,
                           tempo_map_beats, time_signature_beats)
from symbolic.trackmap import DRUMS, GROOVE_TO_GM, LPD5, POP909, SATB, TrackMap, get_track_map

SPLITS = ("train", "valid", "test")
POP909_URL = "https://github.com/music-x-lab/POP909-Dataset/archive/refs/heads/master.zip"


class Skip(Exception):
    """A song left out of the dataset; the message is the reason (counted in the summary)."""


@dataclass
class Song:
    """One song on the grid.

    mt: its multitrack (bar 0 at the song's first downbeat).
    chords: uint8 ``[mt.n_bars * beats_per_bar, 12]`` chord pitch classes per beat, or None.
    key: (tonic pitch class, is_minor), or None (no transposition, key label -1).
    style: style name; split: "train" / "valid" / "test", or None to draw it by seed.
    bad_bars: bool ``[n_bars]``, bars in a meter other than the grid's (phrases touching them dropped).
    meta_elsewhere: its file has tempo, key or meter events on later tracks, which are not read.
    """

    sid: int
    name: str
    mt: Multitrack
    chords: np.ndarray | None = None
    key: tuple[int, bool] | None = None
    style: str = "default"
    split: str | None = None
    bad_bars: np.ndarray | None = None
    meta_elsewhere: bool = False


# --------------------------------------------------------------------------- helpers

def _pitch_class_histogram(mt: Multitrack) -> np.ndarray:
    """Note-steps per pitch class over the non-drum tracks: float ``[12]``."""
    keep = [i for i, d in enumerate(mt.track_map.is_drum) if not d]
    per_pitch = (mt.roll[keep] > 0).sum(axis=(0, 1, 2)).astype(np.float64)  # [n_pitches]
    pcs = (np.arange(mt.grid.n_pitches) + mt.grid.lowest_pitch) % 12
    return np.bincount(pcs, weights=per_pitch, minlength=12)


def _key_of(mt: Multitrack) -> tuple[int, bool] | None:
    """The estimated key of a song's pitched notes; None (key -1 in the cache) without any."""
    hist = _pitch_class_histogram(mt)
    return estimate_key(hist) if hist.sum() > 0 else None


def _shift_pitches(roll: np.ndarray, shift: int, drum_tracks: Iterable[int]) -> np.ndarray:
    """Move non-drum tracks of ``roll [tracks, ..., pitches]`` by ``shift`` semitones (zero fill)."""
    if shift == 0:
        return roll
    drums = set(drum_tracks)
    return np.stack([roll[t] if t in drums else shift_pitches(roll[t], shift) for t in range(roll.shape[0])])


def _origin_before(first_beat: float, downbeat: float, beats_per_bar: int, tolerance: float) -> float:
    """The bar start (``downbeat`` minus whole bars) at or before the first note's beat position."""
    if first_beat + tolerance >= downbeat:
        return float(downbeat)
    return float(downbeat - beats_per_bar * math.ceil((downbeat - first_beat - tolerance) / beats_per_bar))


def _first_note_time(pm) -> float | None:
    starts = [n.start for i in pm.instruments for n in i.notes]
    return min(starts) if starts else None


def _meter_bad_bars(pm, n_bars: int, grid: Grid, origin: float, *, bar_lines: bool = True) -> np.ndarray:
    """bool ``[n_bars]``: bars that lie (partly) in a stretch of the file whose time signature does not
    fit the grid (:func:`symbolic.roll.off_grid_meters`: 3/4, 6/8, ...; with ``bar_lines``, also a 4/4
    stretch whose bar lines are not the grid's, after a 2/4 bar, say). 1/4 and 2/4 fit (POP909's
    files say so over 4/4 music); so does a pickup bar that ends bar 0 (``origin`` < 0)."""
    bad = np.zeros(n_bars, dtype=bool)
    sigs = time_signature_beats(pm)
    if not sigs:
        return bad
    bpb = grid.beats_per_bar
    end = float(tempo_map_beats(pm, np.array([pm.get_end_time() + 1.0]))[0])
    starts = [b - origin for b, _, _ in sigs] + [max(end - origin, sigs[-1][0] - origin)]
    for k in off_grid_meters(sigs, bpb, origin, bar_lines=bar_lines):
        a, b = starts[k], starts[k + 1]
        if b > 0:
            bad[max(0, int(math.floor(a / bpb + 1e-6))):min(n_bars, int(math.ceil(b / bpb - 1e-6)))] = True
    return bad


# --------------------------------------------------------------------------- POP909

def _read_text(path: Path) -> str:
    """An annotation file's text; UserError naming it when it is not UTF-8 text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not readable text ({exc.reason} at byte {exc.start})") from None


def _read_chord_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """POP909 chord file -> (starts [K] s, ends [K] s, pitch classes [K, 12])."""
    starts, ends, pcs = [], [], []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            starts.append(float(parts[0]))
            ends.append(float(parts[1]))
            pcs.append(chord_pitch_classes(parts[2]))
        except (ValueError, IndexError) as exc:
            raise UserError(f"{path}:{lineno}: bad chord line {line.strip()!r} ({exc})") from None
    return np.array(starts), np.array(ends), np.array(pcs, dtype=np.uint8).reshape(-1, 12)


def _read_key_file(path: Path) -> tuple[int, bool] | None:
    """The longest-lasting key of a POP909 key_audio.txt ("start end C:maj" lines), or None."""
    best, best_len = None, -1.0
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            key = parse_key(parts[2])
            length = float(parts[1]) - float(parts[0])
        except (ValueError, IndexError) as exc:
            raise UserError(f"{path}:{lineno}: bad key line {line.strip()!r} ({exc})") from None
        if length > best_len:
            best, best_len = key, length
    return best


def load_pop909_song(folder: Path, sid: int, grid: Grid, track_map: TrackMap = POP909) -> Song:
    """One POP909 song folder ``NNN/`` (``NNN.mid``, ``beat_midi.txt``, ``chord_midi.txt``,
    ``key_audio.txt``) on the grid, bar 0 at a 4/4 downbeat of ``beat_midi.txt``.

    The MIDI's own time signatures are not used (POP909 files say 1/4 or 2/4); the meter comes from
    the beat file: column 2 marks every 2nd beat in duple songs and every 3rd in triple ones.
    Raises :class:`Skip` for songs in triple meter.
    """
    name = folder.name
    midi = folder / f"{name}.mid"
    beat_file = folder / "beat_midi.txt"
    if not midi.is_file():
        raise Skip("no MIDI file")
    pm = read_midi(midi)
    if beat_file.is_file():
        try:
            beats = np.loadtxt(beat_file, ndmin=2)
        except ValueError as exc:
            raise UserError(f"{beat_file}: bad beat file ({exc})") from None
        if beats.shape[0] < 2 or beats.shape[1] < 3:
            raise UserError(f"{beat_file}: expected lines 'time downbeat2 downbeat4' with at least 2 beats")
        bt = beats[:, 0]
        if not np.isfinite(bt).all() or np.any(np.diff(bt) <= 0):
            raise UserError(f"{beat_file}: beat times must be finite and increase")
        marks = np.flatnonzero(beats[:, 1] == 1)
        if len(marks) > 1:
            period = Counter(np.diff(marks).tolist()).most_common(1)[0][0]
            if period != 2 or grid.beats_per_bar != 4:
                raise Skip("meter not 4/4")
        down = np.flatnonzero(beats[:, 2] == 1)
        downbeat = float(down[0]) if len(down) else (float(marks[0]) if len(marks) else 0.0)
    else:
        bt = None
        downbeat = 0.0
    first = _first_note_time(pm)
    if first is None:
        raise Skip("no notes")
    first_beat = float(_beat_times_beats(bt, np.array([first]))[0]) if bt is not None else 0.0
    origin = _origin_before(first_beat, downbeat, grid.beats_per_bar, 0.5 / grid.steps_per_beat)
    mt = midi_to_multitrack(pm, track_map, grid, beat_times=bt, origin=origin, timing=True)
    chords = None
    chord_file = folder / "chord_midi.txt"
    if chord_file.is_file() and bt is not None:
        starts, ends, pcs = _read_chord_file(chord_file)
        n_beats = mt.n_bars * grid.beats_per_bar
        beat_pos = origin + np.arange(n_beats) + 0.5  # middle of each beat
        idx = np.arange(len(bt), dtype=np.float64)
        mid = np.interp(beat_pos, idx, bt)
        over = beat_pos > idx[-1]
        mid[over] = bt[-1] + (beat_pos[over] - idx[-1]) * (bt[-1] - bt[-2])
        under = beat_pos < 0
        mid[under] = bt[0] + beat_pos[under] * (bt[1] - bt[0])
        chords = np.zeros((n_beats, 12), dtype=np.uint8)
        if len(starts):
            k = np.searchsorted(starts, mid, side="right") - 1
            hit = (k >= 0) & (mid < ends[np.clip(k, 0, None)])
            chords[hit] = pcs[k[hit]]
    key_file = folder / "key_audio.txt"
    key = _read_key_file(key_file) if key_file.is_file() else None
    if key is None:
        key = _key_of(mt)
    return Song(sid, name, mt, chords, key, "pop")


def pop909_songs(root: Path, grid: Grid, track_map: TrackMap = POP909) -> list[tuple[str, Callable[[], Song]]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / f"{p.name}.mid").is_file())
    if not folders:
        raise UserError(f"{root}: no POP909 song folders (NNN/NNN.mid) found")
    # song id = the POP909 number ("007" -> 7) where the folder is numbered; other folders are
    # numbered on from the largest, so that no two songs share an id (and a split)
    numbered = [int(f.name) for f in folders if f.name.isdigit()]
    ids, more = [], max(numbered, default=-1) + 1
    for f in folders:
        ids.append(int(f.name) if f.name.isdigit() else more)
        more += not f.name.isdigit()
    return [(f.name, (lambda f=f, sid=sid: load_pop909_song(f, sid, grid, track_map))) for f, sid in zip(folders, ids)]


def download_pop909(dest: Path) -> Path:
    """Fetch POP909 from its public GitHub archive into ``dest`` (once) and return the song root.

    The archive is unpacked into a staging folder and moved into place whole, so an interrupted
    unpacking never passes for a finished one. On failure nothing that was not there before is
    left: no archive, no partly unpacked files, no folders this call created.
    """
    import shutil
    import urllib.request
    import zipfile

    root = dest / "POP909-Dataset-master" / "POP909"
    if root.is_dir():
        return root
    created = [d for d in (dest, *dest.parents) if not d.exists()]  # deepest first: removed on failure if empty
    archive = dest / "POP909-Dataset-master.zip"
    had_archive = archive.is_file()
    staging = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if not had_archive:
            with atomic_path(archive) as tmp, urllib.request.urlopen(POP909_URL, timeout=60) as resp, \
                    open(tmp, "wb") as fh:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
        staging = Path(tempfile.mkdtemp(prefix=".POP909-unpacking.", dir=dest))
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        if not (staging / "POP909-Dataset-master" / "POP909").is_dir():
            raise UserError(f"{archive}: no POP909-Dataset-master/POP909/ folder inside")
        if root.parent.is_dir():  # an earlier unpacking without POP909/: add just that
            os.replace(staging / "POP909-Dataset-master" / "POP909", root)
        else:
            os.replace(staging / "POP909-Dataset-master", root.parent)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not had_archive:
            archive.unlink(missing_ok=True)
        remove_empty_folders(created)
        if isinstance(exc, UserError):
            raise
        if isinstance(exc, (OSError, zipfile.BadZipFile)):
            where = f" (delete {archive} to fetch it again)" if had_archive else ""
            raise UserError(f"{POP909_URL}: download or unpacking failed ({exc}){where}") from None
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return root


# --------------------------------------------------------------------------- Groove

def move_kit_keys(pm, grid: Grid, keys: dict[int, int] = GROOVE_TO_GM):
    """``pm`` with the drum notes on a kit key that ``grid`` cannot hold moved to the GM key it is
    played as (``keys``, by default :data:`symbolic.trackmap.GROOVE_TO_GM`), in place: Groove's
    closed hi-hat struck on the edge, key 22, lies below the default grid's MIDI 24 and is 8% of
    the beats' hits (more than key 42's 7%; in 82 of 491 beat files more than all their other
    hi-hat and ride hits), so without the move those grooves lose their hi-hat. Keys the grid
    holds stay the kit's own (their velocities and timing differ); songs play them as GM's
    through the card's ``drum_keys``. A key whose GM key the grid cannot hold either stays."""
    lo, hi = grid.lowest_pitch, grid.lowest_pitch + grid.n_pitches
    move = {k: v for k, v in keys.items() if not lo <= k < hi and lo <= v < hi}
    for inst in pm.instruments:
        if inst.is_drum:
            for note in inst.notes:
                note.pitch = move.get(note.pitch, note.pitch)
    return pm


def groove_songs(root: Path, grid: Grid, skipped: Counter, limit: int | None = None
                 ) -> list[tuple[str, Callable[[], Song]]]:
    """Groove MIDI rows of ``info.csv``: 4/4 "beat" files only (others counted in ``skipped``),
    style = primary genre ("funk" from "funk/groove1"), split from the csv; with ``limit``, the
    first that many (and the skips among the rows before them)."""
    info = root / "info.csv"
    if not info.is_file():
        raise UserError(f"{info}: Groove MIDI info.csv not found")
    rows = list(csv.DictReader(io.StringIO(_read_text(info), newline="")))
    need = {"style", "beat_type", "time_signature", "midi_filename", "split"}
    if not rows or not need <= set(rows[0]):
        raise UserError(f"{info}: expected columns {', '.join(sorted(need))}")
    out = []
    for i, row in enumerate(rows):
        if limit is not None and len(out) == limit:
            break
        if row["beat_type"] != "beat":
            skipped["fill"] += 1
            continue
        if row["time_signature"] != "4-4":
            skipped["meter not 4/4"] += 1
            continue
        split = {"validation": "valid"}.get(row["split"], row["split"])
        if split not in SPLITS:
            raise UserError(f"{info}: row {i + 2}: bad split {row['split']!r}")
        style = row["style"].split("/")[0]

        def load(row=row, i=i, split=split, style=style):
            pm = move_kit_keys(read_midi(root / row["midi_filename"]), grid)
            mt = midi_to_multitrack(pm, DRUMS, grid, timing=True)
            return Song(i, row["midi_filename"], mt, None, None, style, split)
        out.append((row["midi_filename"], load))
    return out


# --------------------------------------------------------------------------- MIDI folder, LPD-5, chorales

def midi_song(sid: int, name: str, pm, track_map: TrackMap, grid: Grid, style: str,
              origin: float | None = None) -> Song:
    """A song of a MIDI file; bar 0 starts at ``origin`` (quarter notes), by default at the file's
    start or, after a pickup bar, that bar's length before it (:func:`symbolic.roll.pickup_origin`); bars in
    another meter or off the file's bar lines are marked bad (:func:`_meter_bad_bars`). With an
    ``origin`` given (chorales) the file's time signature positions are not taken as bar lines."""
    bar_lines = origin is None
    origin = pickup_origin(time_signature_beats(pm), grid.beats_per_bar) if origin is None else origin
    mt = midi_to_multitrack(pm, track_map, grid, origin=origin, timing=True)
    if not (mt.roll > 0).any():
        raise Skip("no notes")
    bad = _meter_bad_bars(pm, mt.n_bars, grid, origin, bar_lines=bar_lines)
    if bad.all():
        raise Skip("meter not 4/4")
    return Song(sid, name, mt, None, _key_of(mt), style, None, bad, bool(getattr(pm, "meta_elsewhere", False)))


def midi_folder_songs(root: Path, track_map: TrackMap, grid: Grid) -> list[tuple[str, Callable[[], Song]]]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise UserError(f"{root}: no .mid / .midi files found")
    return [(str(f.relative_to(root)),
             (lambda f=f, i=i: midi_song(i, f.name, read_midi(f), track_map, grid, "midi")))
            for i, f in enumerate(files)]


def lpd5_songs(root: Path, grid: Grid) -> list[tuple[str, Callable[[], Song]]]:
    files = sorted(root.rglob("*.npz"))
    if not files:
        raise UserError(f"{root}: no LPD-5 .npz files found")

    def load(f: Path, i: int) -> Song:
        import pypianoroll

        try:
            ppr = pypianoroll.load(f)
        except Exception as exc:
            raise UserError(f"{f}: not a readable pypianoroll npz ({' '.join(str(exc).split())[:100]})") from None
        mt = from_pypianoroll(ppr, LPD5, grid)
        if not (mt.roll > 0).any():
            raise Skip("no notes")
        return Song(i, f.stem, mt, None, _key_of(mt), "lpd5")
    return [(str(f.relative_to(root)), (lambda f=f, i=i: load(f, i))) for i, f in enumerate(files)]


def chorale_songs(grid: Grid, limit: int | None = None) -> list[tuple[str, Callable[[], Song]]]:
    """Bach chorales of music21's corpus (offline), SATB parts; pickups shifted so bar 1 of the
    score starts a bar of the grid."""
    from music21 import corpus

    names = list(corpus.chorales.Iterator(returnType="filename"))
    if limit is not None:
        names = names[:limit]

    def load(name: str, i: int) -> Song:
        import pretty_midi
        from music21 import midi as m21midi

        score = corpus.parse(name)
        tss = list(score.recurse().getElementsByClass("TimeSignature"))
        if tss and (tss[0].numerator, tss[0].denominator) != (4, 4):
            raise Skip("meter not 4/4")
        first = score.parts[0].getElementsByClass("Measure")
        pickup = 0.0
        if len(first) and first[0].paddingLeft:
            pickup = float(first[0].duration.quarterLength)
        try:
            mf = m21midi.translate.streamToMidiFile(score)
        except Exception as exc:  # e.g. music21's ExpanderException on badly formed repeats
            raise Skip(f"music21 cannot write it as MIDI ({type(exc).__name__})") from None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.mid"
            mf.open(str(path), "wb")
            mf.write()
            mf.close()
            pm = pretty_midi.PrettyMIDI(str(path))
        origin = pickup - grid.beats_per_bar if pickup else 0.0
        # pickup: the first note sits at beat 0, bar 0 starts (bar - pickup) beats before it
        song = midi_song(i, name, pm, SATB, grid, "chorale", origin=origin)
        return song
    return [(n, (lambda n=n, i=i: load(n, i))) for i, n in enumerate(names)]


# --------------------------------------------------------------------------- phrases, splits, cache

def song_phrases(song: Song, *, n_bars: int, hop: int, transpose: bool = True) -> tuple[dict, int]:
    """Phrases of one song.

    Returns:
        (arrays: ``rolls`` bool ``[P, tracks, n_bars, steps_per_bar, n_pitches]``, ``chords`` uint8
        ``[P, n_bars, beats_per_bar, 12]``, ``has_chords`` bool ``[P]``, ``key`` int64 ``[P]``;
        number of empty phrases dropped). A song shorter than ``n_bars`` gives none: padded with
        silence, its bars after the recording's end would count as empty bars of the music (e.g.
        Groove's 55 beat files of one to three bars, of its 491 in 4/4), as the last bars of a longer song
        that do not fill a phrase are left out. Phrases touching ``song.bad_bars`` are left out.
    """
    mt = song.mt
    g = mt.grid
    roll = mt.roll > 0  # [tracks, bars, steps, pitches]
    chords = song.chords
    shift = 0
    if transpose and song.key is not None:
        shift = transpose_to_c(*song.key)
        roll = _shift_pitches(roll, shift, mt.track_map.drum_tracks)
        if chords is not None:
            chords = np.roll(chords, shift, axis=1)
    bars = roll.shape[1]
    rolls, chs, empty = [], [], 0
    bad = song.bad_bars
    for b in range(0, bars - n_bars + 1, hop):
        if bad is not None and bad[b:b + n_bars].any():
            continue
        r = roll[:, b:b + n_bars]
        if not r.any():
            empty += 1
            continue
        rolls.append(r)
        if chords is not None:
            chs.append(chords[b * g.beats_per_bar:(b + n_bars) * g.beats_per_bar].reshape(n_bars, g.beats_per_bar, 12))
        else:
            chs.append(np.zeros((n_bars, g.beats_per_bar, 12), np.uint8))
    P = len(rolls)
    out = {
        "rolls": np.stack(rolls) if P else np.zeros((0, roll.shape[0], n_bars, *roll.shape[2:]), bool),
        "chords": np.stack(chs).astype(np.uint8) if P else np.zeros((0, n_bars, g.beats_per_bar, 12), np.uint8),
        "has_chords": np.full(P, chords is not None, dtype=bool),
        "key": np.full(P, song.key[0] if song.key is not None else -1, dtype=np.int64),
    }
    return out, empty


def split_by_song(n_songs: int, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[str]:
    """Split name for each song index: a seeded permutation, then the first ~80% train, ~10% valid, rest test."""
    order = np.random.default_rng(seed).permutation(n_songs)
    n_valid = int(round(fractions[1] * n_songs))
    n_test = int(round(fractions[2] * n_songs))
    n_train = n_songs - n_valid - n_test
    out = [""] * n_songs
    for rank, idx in enumerate(order):
        out[idx] = "train" if rank < n_train else ("valid" if rank < n_train + n_valid else "test")
    return out


def build_dataset(songs: list[tuple[str, Callable[[], Song]]], out: Path, *, track_map: TrackMap, grid: Grid,
                  n_bars: int = 4, hop: int | None = None, seed: int = 0, transpose: bool = True,
                  skipped: Counter | None = None, source: str = "", progress: bool = True) -> dict:
    """Load every song, cut phrases, split by song and write the cache into ``out``.

    ``songs`` is a list of (name, loader) with loaders returning a :class:`Song` or raising
    :class:`Skip`. Returns the summary dict stored as ``meta["counts"]``, with the ``seconds`` the
    build took (which the cache leaves out, so that its bytes do not depend on the machine's speed).
    """
    from tqdm import tqdm

    t0 = time.time()
    hop = n_bars if hop is None else hop
    if n_bars < 1 or hop < 1:
        raise UserError(f"--bars / --hop: must be at least 1 (got {n_bars}, {hop})")
    skipped = Counter() if skipped is None else skipped
    drawn = split_by_song(len(songs), seed)
    parts: dict[str, list[dict]] = {s: [] for s in SPLITS}
    song_counts = Counter()
    styles: list[str] = []
    empty_total = 0
    notes_dropped = 0   # notes outside the pitch range (or before bar 0) of the songs read
    meta_elsewhere = []   # songs whose tempo / key / meter events on later tracks were not read
    from symbolic.velocity import FILE as VELOCITY_FILE, VelocityCounter, save_counts

    velocities = VelocityCounter(len(track_map), grid.n_pitches, grid.steps_per_bar)
    for k, (name, load) in enumerate(tqdm(songs, desc="songs", unit="song", disable=not progress)):
        try:
            song = load()
        except Skip as why:
            skipped[str(why)] += 1
            continue
        except UserError as exc:
            if source in ("pop909", "groove") or len(songs) == 1:
                raise
            skipped["unreadable"] += 1
            if progress:
                tqdm.write(f"skipping: {exc}")
            continue
        if song.mt.roll.shape[0] != len(track_map):
            raise ValueError("song track count does not match the track map")
        notes_dropped += int(song.mt.n_dropped)
        if song.meta_elsewhere:
            meta_elsewhere.append(name)
        arrays, empty = song_phrases(song, n_bars=n_bars, hop=hop, transpose=transpose)
        empty_total += empty
        short = song.mt.n_bars < n_bars
        if short:   # no phrase; its notes still count for the velocities
            skipped["shorter than a phrase"] += 1
        elif len(arrays["rolls"]) == 0:
            skipped["no phrases"] += 1
            continue
        split = song.split or drawn[k]
        if not short:   # a style is a label of phrases: one that only short songs have is none
            if song.style not in styles:
                styles.append(song.style)
            P = len(arrays["rolls"])
            arrays["style"] = np.full(P, styles.index(song.style), dtype=np.int64)
            arrays["song"] = np.full(P, song.sid, dtype=np.int64)
            parts[split].append(arrays)
            song_counts[split] += 1
        velocities.add(song.mt, song.style, split)
    # styles sorted by name so indices do not depend on song order
    order = sorted(styles)
    remap = np.array([order.index(s) for s in styles], dtype=np.int64) if styles else np.zeros(0, np.int64)
    if not any(parts[split] for split in SPLITS):  # nothing to train on: write no empty cache
        sk = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) or "none"
        what = f"--source {source}: " if source else ""
        short = skipped.get("shorter than a phrase")
        hint = f"; {short} songs are shorter than {n_bars} bars: --bars N sets a shorter phrase" if short else ""
        raise UserError(f"{what}no phrases to write to {out}: none of the {len(songs)} songs gave a phrase of "
                        f"{n_bars} bars (skipped: {sk}; empty phrases dropped: {empty_total}){hint}")
    phrase_counts = {}
    # meta.json marks a whole cache: taken away first and put in last, so that a run stopped while
    # its files move in leaves no cache that mixes two runs' files (a reader refuses a folder without it)
    with staged_dir(out, commit_last="meta.json") as stage:
        for split in SPLITS:
            arrs = parts[split]
            g = grid
            if arrs:
                data = {k: np.concatenate([a[k] for a in arrs]) for k in ("rolls", "chords", "has_chords", "style",
                                                                           "song", "key")}
                data["style"] = remap[data["style"]]
            else:
                data = {"rolls": np.zeros((0, len(track_map), n_bars, g.steps_per_bar, g.n_pitches), bool),
                        "chords": np.zeros((0, n_bars, g.beats_per_bar, 12), np.uint8),
                        "has_chords": np.zeros(0, bool), "style": np.zeros(0, np.int64),
                        "song": np.zeros(0, np.int64), "key": np.zeros(0, np.int64)}
            phrase_counts[split] = int(len(data["rolls"]))
            np.savez_compressed(stage / f"{split}.npz", **data)
        counts = {"songs": {s: int(song_counts[s]) for s in SPLITS},
                  "phrases": phrase_counts,
                  "skipped": dict(sorted(skipped.items())),
                  "empty_phrases_dropped": int(empty_total),
                  "notes_dropped": int(notes_dropped)}
        meta = {"tracks": track_map.names, "programs": track_map.programs, "is_drum": track_map.is_drum,
                "grid": grid.to_dict(), "n_bars": n_bars, "hop": hop, "styles": order, "counts": counts,
                "source": source, "track_map": track_map.name, "seed": seed, "transposed": transpose}
        if source == "groove":   # the GM key each of the kit's own keys is played as (in songs)
            meta["drum_keys"] = {str(k): v for k, v in GROOVE_TO_GM.items()}
        (stage / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        save_counts(stage / VELOCITY_FILE, velocities, order)
    # the time taken is reported, not stored: the same songs and settings give the same bytes
    return {**counts, "seconds": round(time.time() - t0, 1), "meta_elsewhere": meta_elsewhere}


def load_split(folder: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """Read one split of a cache (``train``/``valid``/``test``) as a dict of arrays."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise UserError(f"{path}: no such dataset split (build it with 'musegansynth data symbolic')")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- command line

def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Build the symbolic phrase dataset (cached as npz).")
    p.add_argument("--source", required=True, choices=["pop909", "groove", "midi", "lpd5", "chorales"])
    p.add_argument("--root", type=Path, help="dataset folder (not for chorales)")
    p.add_argument("--download", action="store_true", help="pop909: fetch it into data/downloads when no --root")
    p.add_argument("--track-map", default=None, help="midi source: lpd5, pop909, pop909_drums, satb, drums")
    p.add_argument("--out", default=None, help="output folder (default data/build/symbolic/<name>)")
    p.add_argument("--name", default=None, help="dataset name (default: the source)")
    p.add_argument("--bars", type=int, default=4, help="bars per phrase")
    p.add_argument("--hop", type=int, default=None, help="bars between phrase starts (default: --bars)")
    p.add_argument("--steps-per-beat", type=int, default=4)
    p.add_argument("--lowest-pitch", type=int, default=24)
    p.add_argument("--n-pitches", type=int, default=84)
    p.add_argument("--seed", type=int, default=0, help="seed of the song split")
    p.add_argument("--no-transpose", action="store_true", help="keep songs in their own key")
    p.add_argument("--limit", type=int, default=None, help="use only the first N songs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cli_main(argv: list[str]) -> int:
    """``musegansynth data symbolic --source ... [--root DIR] [--out DIR] ...``; returns 0."""
    from symbolic.export import check_model_name

    args = _parser(argv[0] if argv else "musegansynth data symbolic").parse_args(argv[1:])
    check_seed(args.seed)
    if args.name is not None:
        check_model_name(args.name, "--name", kind="dataset")
    if args.track_map is not None and args.source != "midi":
        raise UserError(f"--track-map {args.track_map}: only for --source midi (--source {args.source} has its "
                        f"own tracks); leave it out")
    check_steps_per_beat(args.steps_per_beat)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: expected a number of songs >= 1 (leave it out for all songs)")
    try:
        grid = Grid(steps_per_beat=args.steps_per_beat, beats_per_bar=4, lowest_pitch=args.lowest_pitch,
                    n_pitches=args.n_pitches)
    except ValueError as exc:
        raise UserError(f"--steps-per-beat/--lowest-pitch/--n-pitches: {exc}") from None
    root = args.root
    if args.source == "chorales" and root is not None:
        raise UserError(f"--root {root}: not used by --source chorales (the chorales come from music21's "
                        f"bundled corpus); leave it out")
    if args.download and args.source != "pop909":
        raise UserError(f"--download: only for --source pop909, not {args.source}")
    if args.download and root is not None:
        raise UserError(f"--download and --root {root}: give one (--root builds from that folder, --download "
                        f"fetches POP909 into data/downloads)")
    if args.source != "chorales":
        if root is None and args.source == "pop909" and args.download:
            root = download_pop909(Path("data/downloads"))
        if root is None:
            raise UserError(f"--root: needed for --source {args.source}")
        if not root.is_dir():
            raise UserError(f"{root}: " + ("is a file, not a folder (--root takes the dataset's folder)"
                                           if root.exists() else "no such folder"))
    skipped: Counter = Counter()
    if args.source == "pop909":
        track_map = POP909
        songs = pop909_songs(root, grid, track_map)
    elif args.source == "groove":
        track_map = DRUMS
        songs = groove_songs(root, grid, skipped, args.limit)
    elif args.source == "midi":
        if not args.track_map:
            raise UserError("--track-map: needed for --source midi (lpd5, pop909, pop909_drums, satb, drums)")
        track_map = get_track_map(args.track_map)
        songs = midi_folder_songs(root, track_map, grid)
    elif args.source == "lpd5":
        track_map = LPD5
        songs = lpd5_songs(root, grid)
    else:
        track_map = SATB
        songs = chorale_songs(grid, args.limit)
    if args.limit is not None:
        songs = songs[:args.limit]
    name = args.name or args.source
    if args.out == "":
        raise UserError("--out '': an empty path is not an output folder")
    out = Path(args.out) if args.out is not None else Path("data/build/symbolic") / name
    if args.source in ("midi", "lpd5") and out.resolve().is_relative_to(root.resolve()):
        raise UserError(f"--out {out}: inside --root {root}, where the next run would read the cache's own "
                        f"files as songs; give an --out outside it")
    counts = build_dataset(songs, out, track_map=track_map, grid=grid, n_bars=args.bars, hop=args.hop,
                           seed=args.seed, transpose=not args.no_transpose, skipped=skipped,
                           source=args.source, progress=not args.quiet)
    sk = ", ".join(f"{k}: {v}" for k, v in counts["skipped"].items()) or "none"
    if counts["meta_elsewhere"]:
        print(f"musegansynth: note: {meta_elsewhere_text(counts['meta_elsewhere'])}", file=sys.stderr)
    if not counts["phrases"]["train"]:
        print(f"musegansynth: note: {out}: the train split has no phrases (the cache can be evaluated, not "
              f"trained on)", file=sys.stderr)
    print(f"{name}: {sum(counts['songs'].values())} songs "
          f"(train {counts['songs']['train']}, valid {counts['songs']['valid']}, test {counts['songs']['test']}); "
          f"phrases train {counts['phrases']['train']}, valid {counts['phrases']['valid']}, "
          f"test {counts['phrases']['test']}; skipped {sk}; empty phrases dropped "
          f"{counts['empty_phrases_dropped']}; notes out of range dropped {counts['notes_dropped']}; "
          f"{counts['seconds']} s -> {out}")
    return 0
