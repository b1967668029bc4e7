"""MIDI <-> multitrack pianoroll.

The pianoroll of a song is ``roll``: uint8 velocities of shape
``[tracks, bars, steps_per_bar, n_pitches]`` (0 = silent), with ``onsets``: bool of the same shape,
True where a note starts. Keeping onsets lets two repeated notes of one pitch survive the round
trip MIDI -> roll -> MIDI. Drum tracks keep onsets only: every drum note is one step long.

Time is quantised on the file's own beat grid: a note's time in seconds is turned into
quarter notes through the MIDI tempo map (the same as ticks / resolution), or through given beat
times (e.g. POP909's ``beat_midi.txt``), then rounded to the nearest step. Notes whose pitch
lies outside ``[lowest_pitch, lowest_pitch + n_pitches)`` or that start before bar 0 are dropped
and counted in ``Multitrack.n_dropped``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pretty_midi

from pipeline.errors import UserError
from pipeline.fileio import atomic_path
from symbolic.trackmap import TrackMap, get_track_map


@dataclass(frozen=True)
class Grid:
    """The time and pitch grid of a pianoroll.

    Attributes:
        steps_per_beat: time steps per quarter note.
        beats_per_bar: quarter notes per bar (4 for 4/4).
        lowest_pitch: MIDI number of pitch row 0.
        n_pitches: number of pitch rows (84 from MIDI 24 covers C1-B7).
    """

    steps_per_beat: int = 4
    beats_per_bar: int = 4
    lowest_pitch: int = 24
    n_pitches: int = 84

    def __post_init__(self) -> None:
        if self.steps_per_beat < 1 or self.beats_per_bar < 1 or self.n_pitches < 1:
            raise ValueError(f"bad grid {self}")
        if not (0 <= self.lowest_pitch and self.lowest_pitch + self.n_pitches <= 128):
            raise ValueError(f"grid pitches outside MIDI 0-127: {self}")

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.beats_per_bar

    @property
    def highest_pitch(self) -> int:
        """MIDI number of the top pitch row (inclusive)."""
        return self.lowest_pitch + self.n_pitches - 1

    def to_dict(self) -> dict:
        return {"steps_per_beat": self.steps_per_beat, "beats_per_bar": self.beats_per_bar,
                "lowest_pitch": self.lowest_pitch, "n_pitches": self.n_pitches,
                "steps_per_bar": self.steps_per_bar}

    @classmethod
    def from_dict(cls, d: dict) -> "Grid":
        return cls(int(d["steps_per_beat"]), int(d["beats_per_bar"]), int(d["lowest_pitch"]), int(d["n_pitches"]))


#: The finest time grid the commands take (steps per quarter note): 96 is a MIDI file's usual
#: resolution over four; finer grids only make the rolls larger.
MAX_STEPS_PER_BEAT = 96


def check_steps_per_beat(value: int) -> int:
    """``--steps-per-beat`` when it is 1 to :data:`MAX_STEPS_PER_BEAT`; UserError naming it otherwise."""
    if not 1 <= value <= MAX_STEPS_PER_BEAT:
        raise UserError(f"--steps-per-beat {value}: should be a whole number from 1 to {MAX_STEPS_PER_BEAT} "
                        f"(time steps per quarter note)")
    return value


class Note(NamedTuple):
    """One note on the grid.

    track: track index; pitch: MIDI number (0-127); start, end: grid steps from bar 0
    (end exclusive, end > start); velocity: 1-127.
    """

    track: int
    pitch: int
    start: int
    end: int
    velocity: int


@dataclass
class Multitrack:
    """A song as a multitrack pianoroll.

    Attributes:
        roll: uint8 velocities ``[tracks, bars, steps_per_bar, n_pitches]``, 0 = silent.
        onsets: bool ``[tracks, bars, steps_per_bar, n_pitches]``, True where a note starts.
        track_map: the tracks (names, GM programs, drum flags).
        grid: the time / pitch grid.
        tempo: quarter notes per minute (the file's first tempo).
        time_signature: (numerator, denominator) of the file's first time signature.
        n_dropped: notes dropped when reading (pitch out of range, or before bar 0).
        timing: float ``[tracks, bars, steps_per_bar, n_pitches]`` or None: how far each onset
            sits from its step, in steps (-0.5 to 0.5; a performance's micro-timing, read with
            ``midi_to_multitrack(..., timing=True)``, or the data's mean for composed notes);
            :func:`multitrack_to_midi` plays each note that far off the grid. None: on the grid.
    """

    roll: np.ndarray
    onsets: np.ndarray
    track_map: TrackMap
    grid: Grid = field(default_factory=Grid)
    tempo: float = 120.0
    time_signature: tuple[int, int] = (4, 4)
    n_dropped: int = 0
    timing: np.ndarray | None = None

    def __post_init__(self) -> None:
        expect = (len(self.track_map), self.grid.steps_per_bar, self.grid.n_pitches)
        if self.roll.ndim != 4 or (self.roll.shape[0], *self.roll.shape[2:]) != expect:
            raise ValueError(f"roll should have shape [tracks={expect[0]}, bars, {expect[1]}, {expect[2]}], "
                             f"got {self.roll.shape}")
        if self.onsets.shape != self.roll.shape:
            raise ValueError(f"onsets shape {self.onsets.shape} != roll shape {self.roll.shape}")
        if self.timing is not None and self.timing.shape != self.roll.shape:
            raise ValueError(f"timing shape {self.timing.shape} != roll shape {self.roll.shape}")

    @property
    def n_bars(self) -> int:
        return int(self.roll.shape[1])

    @property
    def track_names(self) -> list[str]:
        return self.track_map.names

    @classmethod
    def from_roll(cls, roll, track_map: TrackMap | str, grid: Grid = Grid(), *, tempo: float = 120.0,
                  velocity: int = 100, threshold: float = 0.5, time_signature: tuple[int, int] = (4, 4)
                  ) -> "Multitrack":
        """A Multitrack from a generated roll ``[tracks, bars, steps_per_bar, n_pitches]``.

        ``roll`` may be bool, float probabilities in [0, 1] (sounding where > ``threshold``; numpy or
        torch) or uint8 velocities (kept). A note starts wherever a silent step turns on (uint8:
        or the velocity changes); on drum tracks every sounding step is a hit.
        """
        track_map = get_track_map(track_map)
        arr = roll.detach().cpu().numpy() if hasattr(roll, "detach") else np.asarray(roll)
        if arr.dtype != np.uint8:
            arr = np.where(binarize(arr.astype(np.float32) if arr.dtype != bool else arr,
                                    threshold if arr.dtype != bool else 0), int(velocity), 0).astype(np.uint8)
        if arr.ndim != 4:
            raise ValueError(f"roll should have 4 dimensions [tracks, bars, steps_per_bar, pitches], got {arr.shape}")
        notes = roll_to_notes(arr, grid=grid, drum_tracks=track_map.drum_tracks)
        vel_roll, onsets = notes_to_roll(notes, n_tracks=arr.shape[0], grid=grid, n_bars=arr.shape[1],
                                         drum_tracks=track_map.drum_tracks)
        return cls(vel_roll, onsets, track_map, grid, float(tempo), tuple(time_signature))

    def notes(self) -> list[Note]:
        """The notes of the roll (see :func:`roll_to_notes`)."""
        return roll_to_notes(self.roll, self.onsets, grid=self.grid, drum_tracks=self.track_map.drum_tracks)


# --------------------------------------------------------------------------- reading / writing files

def read_midi(path: str | os.PathLike) -> pretty_midi.PrettyMIDI:
    """Read a MIDI file; UserError naming the file when it is missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a MIDI file")
    if not path.is_file():
        raise UserError(f"{path}: no such MIDI file")
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pm = pretty_midi.PrettyMIDI(str(path))
        # pretty_midi reads tempo, key and meter from the first track only and warns in two raw
        # lines; the commands say it in one (meta_elsewhere_note)
        pm.meta_elsewhere = any("non-zero tracks" in str(w.message) for w in caught)
        for w in caught:
            if "non-zero tracks" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return pm
    except Exception as exc:  # mido / pretty_midi raise many kinds on garbage
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        if _smpte_division(path):
            reason = "its times are SMPTE frames, not beats; save it with beat (PPQ) timing"
        raise UserError(f"{path}: not a readable MIDI file ({reason})") from None


def meta_elsewhere_text(sources: Sequence) -> str:
    """In words: the files ``sources`` (one or more) have tempo, key or time signature events on a
    track after the first, which pretty_midi (and so this program) does not read."""
    what = f"{sources[0]}" if len(sources) == 1 else f"{len(sources)} files (the first: {sources[0]})"
    return (f"{what}: tempo, key or time signature events on tracks after the first are not read (only the "
            f"first track's are; a type-1 file keeps them there)")


def meta_elsewhere_note(pm, source) -> None:
    """One note on stderr when the file read by :func:`read_midi` has such events
    (:func:`meta_elsewhere_text`)."""
    import sys

    if getattr(pm, "meta_elsewhere", False):
        print(f"musegansynth: note: {meta_elsewhere_text([source])}", file=sys.stderr)


def _smpte_division(path: Path) -> bool:
    """Whether the file's header gives its times in SMPTE frames (the top bit of its division)."""
    try:
        with open(path, "rb") as f:
            head = f.read(14)
    except OSError:
        return False
    return len(head) == 14 and head[:4] == b"MThd" and bool(head[12] & 0x80)


MIDI_CHANNELS = tuple(c for c in range(16) if c != 9)
"""The 15 channels of pitched instruments (channel 10, index 9, is the drums')."""


def midi_channels(instruments: Sequence[pretty_midi.Instrument]) -> list[int] | None:
    """The channel of each instrument where pretty_midi's own choice would put two programs on one
    channel, else None (its choice stands). pretty_midi gives the n-th instrument channel
    ``MIDI_CHANNELS[n % 15]`` (drums 9), counting the drum tracks too, so a 16th instrument
    plays with the first one's program; here instruments of one program share a channel, each
    program its own. UserError when the pitched instruments hold more than 15 programs."""
    pretty = [9 if i.is_drum else MIDI_CHANNELS[n % len(MIDI_CHANNELS)] for n, i in enumerate(instruments)]
    held: dict[int, int] = {}
    if all(held.setdefault(c, i.program) == i.program for c, i in zip(pretty, instruments) if c != 9):
        return None
    programs = list(dict.fromkeys(i.program for i in instruments if not i.is_drum))
    if len(programs) > len(MIDI_CHANNELS):
        raise UserError(f"{len(programs)} instruments of different programs besides the drums: a MIDI file "
                        f"has {len(MIDI_CHANNELS)} channels for them")
    return [9 if i.is_drum else MIDI_CHANNELS[programs.index(i.program)] for i in instruments]


def _tempo_fixes(pm: pretty_midi.PrettyMIDI) -> dict[tuple[int, int], int]:
    """``{(tick, tempo pretty_midi writes): tempo}`` where pretty_midi's ``int()`` of a float
    drops a microsecond a quarter note from a tempo it read (461538 written as 461537)."""
    fixes = {}
    for tick, scale in pm._tick_scales:
        exact = 6e7 / (60.0 / (scale * pm.resolution))
        if int(exact) != round(exact):
            fixes[(int(tick), int(exact))] = int(round(exact))
    return fixes


def write_midi(pm: pretty_midi.PrettyMIDI, path: str | os.PathLike) -> None:
    """Write ``pm`` to ``path`` atomically (nothing half-written is left on failure), each
    program on a channel of its own (:func:`midi_channels`) and every tempo as it was read
    (:func:`_tempo_fixes`)."""
    channels = midi_channels(pm.instruments)
    tempi = _tempo_fixes(pm)
    with atomic_path(path, suffix=".mid") as tmp:
        pm.write(str(tmp))
        if channels is None and not tempi:
            return
        import mido

        mid = mido.MidiFile(str(tmp))   # pretty_midi writes a tempo track, then one track per instrument
        tick = 0
        for msg in mid.tracks[0]:
            tick += msg.time
            if msg.type == "set_tempo":
                msg.tempo = tempi.get((tick, msg.tempo), msg.tempo)
        for track, channel in zip(mid.tracks[1:], channels or ()):
            for msg in track:
                if hasattr(msg, "channel"):
                    msg.channel = channel
        mid.save(str(tmp))


# --------------------------------------------------------------------------- time -> beats

def tempo_map_beats(pm: pretty_midi.PrettyMIDI, times: np.ndarray) -> np.ndarray:
    """Quarter-note positions of ``times`` (seconds) through the file's tempo map (= ticks / resolution)."""
    change_times, tempi = pm.get_tempo_changes()
    if len(change_times) == 0:
        change_times, tempi = np.array([0.0]), np.array([120.0])
    change_beats = np.concatenate([[0.0], np.cumsum(np.diff(change_times) * tempi[:-1] / 60.0)])
    idx = np.clip(np.searchsorted(change_times, times, side="right") - 1, 0, None)
    return change_beats[idx] + (times - change_times[idx]) * tempi[idx] / 60.0


def time_signature_beats(pm: pretty_midi.PrettyMIDI, end_beat: float | None = None) -> list[tuple[float, int, int]]:
    """The file's time signatures as (quarter-note position, numerator, denominator), in order, one
    per position (the last written there); those from ``end_beat`` on are left out (one at 0 is
    always kept). The MIDI default 4/4 from 0 comes first when the first signature kept comes
    later (or none is); an empty list when the file has none."""
    tss = sorted(pm.time_signature_changes, key=lambda ts: ts.time)
    if not tss:
        return []
    beats = tempo_map_beats(pm, np.array([ts.time for ts in tss], dtype=np.float64))
    by_beat: dict[float, tuple[int, int]] = {}
    for b, ts in zip(beats, tss):
        b = round(float(b), 6)
        if end_beat is None or b < end_beat or b < 1e-6:
            by_beat[b] = (int(ts.numerator), int(ts.denominator))
    out = [(b, n, d) for b, (n, d) in sorted(by_beat.items())]
    if not out or out[0][0] > 1e-6:
        out.insert(0, (0.0, 4, 4))
    return out


def meter_kind(numerator: int, denominator: int, beats_per_bar: int) -> str:
    """How a time signature sits on a grid of ``beats_per_bar``-quarter-note bars: ``"bar"`` when its
    bar is the grid's or a whole number of them (4/4, 2/2, 8/4 on a 4/4 grid: its bar lines are the
    grid's where it starts on one), ``"part"`` when its bar divides the grid's (1/4, 2/4: POP909's
    files and many sequencers write these over 4/4 music; any start fits), ``"other"`` otherwise
    (3/4, 6/8, 12/8, 5/4)."""
    quarters = numerator * 4.0 / denominator
    if quarters <= 0:
        return "other"
    ratio = quarters / beats_per_bar
    if abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1:
        return "bar"
    inverse = beats_per_bar / quarters
    return "part" if abs(inverse - round(inverse)) < 1e-9 else "other"


def pickup_origin(sigs: list[tuple[float, int, int]], beats_per_bar: int) -> float:
    """Where bar 0 starts (quarter notes, in (-beats_per_bar, 0]) given a file's
    :func:`time_signature_beats`: so that the grid's bar lines fall on those of the file's first
    meter of kind "bar" (:func:`meter_kind`; 4/4 on a 4/4 grid). A pickup (1/4 then 4/4 at beat 1)
    then ends bar 0 (origin -3); 1/4 and 2/4 bars, which fit anywhere, move nothing (2/4, 2/4, then
    4/4 at beat 4: origin 0). A file without such a meter starts bar 0 at its start, unless it opens
    with one shorter bar of another meter followed only by bars that fit anywhere (a 3/4 pickup,
    then 2/4 bars: origin -1)."""
    for beat, num, den in sigs:
        if meter_kind(num, den, beats_per_bar) == "bar":
            lead = float(beat) % beats_per_bar
            return -((beats_per_bar - lead) % beats_per_bar) if lead > 1e-6 else 0.0
    if (len(sigs) > 1 and meter_kind(sigs[0][1], sigs[0][2], beats_per_bar) == "other"
            and all(meter_kind(n, d, beats_per_bar) == "part" for _, n, d in sigs[1:])):
        lead = float(sigs[1][0] - sigs[0][0])
        if abs(lead - sigs[0][1] * 4.0 / sigs[0][2]) < 1e-6 and lead < beats_per_bar:   # one bar of it
            return -(beats_per_bar - lead)
    return 0.0


def off_grid_meters(sigs: list[tuple[float, int, int]], beats_per_bar: int, origin: float = 0.0,
                    bar_lines: bool = True) -> list[int]:
    """Indices of the signatures in ``sigs`` (:func:`time_signature_beats`) whose stretch does not fit
    a grid of ``beats_per_bar``-quarter-note bars starting at ``origin``: a meter of kind "other"
    (:func:`meter_kind`; a pickup that ends bar 0 excepted) and, with ``bar_lines``, a "bar" meter
    whose bars start off the grid's (4/4 after one 2/4 bar, say)."""
    bad = []
    for k, (beat, num, den) in enumerate(sigs):
        kind = meter_kind(num, den, beats_per_bar)
        if kind == "other":
            if not (k == 0 and origin < 0 and len(sigs) > 1 and abs(sigs[1][0] - origin - beats_per_bar) < 1e-6):
                bad.append(k)
        elif kind == "bar" and bar_lines:
            rel = (beat - origin) / beats_per_bar
            if abs(rel - round(rel)) > 1e-6:
                bad.append(k)
    return bad


def _beat_times_beats(beat_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Beat positions of ``times`` (seconds) from beat times, linear beyond both ends."""
    bt = np.asarray(beat_times, dtype=np.float64)
    if bt.ndim != 1 or len(bt) < 2 or np.any(np.diff(bt) <= 0):
        raise ValueError("beat_times must be at least 2 increasing times in seconds")
    idx = np.arange(len(bt), dtype=np.float64)
    out = np.interp(times, bt, idx)
    before, after = times < bt[0], times > bt[-1]
    out[before] = (times[before] - bt[0]) / (bt[1] - bt[0])
    out[after] = len(bt) - 1 + (times[after] - bt[-1]) / (bt[-1] - bt[-2])
    return out


def _round(x: np.ndarray) -> np.ndarray:
    """Round half up (deterministic, unlike numpy's half-to-even)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5 + 1e-9).astype(np.int64)


def quantize_notes(pm: pretty_midi.PrettyMIDI, track_map: TrackMap, grid: Grid = Grid(), *,
                   beat_times: np.ndarray | None = None, origin: float = 0.0,
                   offsets: list[float] | None = None) -> tuple[list[Note], int]:
    """The notes of a MIDI file on the grid, before they are drawn into a roll.

    Args:
        pm: the MIDI file.
        track_map: assigns the file's instruments to tracks.
        grid: steps per beat and pitch range.
        beat_times: optional beat times in seconds (e.g. POP909 annotations); default: the MIDI
            tempo map, one beat = one quarter note.
        origin: the beat position (in beats of the chosen beat scale) where bar 0 starts.
        offsets: a list that gets, for every returned note in order, how far its start sat from
            its step before rounding (in steps, -0.5 to 0.5).

    Returns:
        (notes sorted by (track, start, pitch), number of notes dropped: pitch out of range or
        starting before bar 0).
    """
    assignment = track_map.assign(pm.instruments)
    drums = set(track_map.drum_tracks)
    notes: list[tuple[Note, float]] = []
    dropped = 0
    for inst, track in zip(pm.instruments, assignment):
        if track is None or not inst.notes:
            continue
        starts = np.array([n.start for n in inst.notes], dtype=np.float64)
        ends = np.array([n.end for n in inst.notes], dtype=np.float64)
        to_beats = (lambda t: _beat_times_beats(beat_times, t)) if beat_times is not None else \
            (lambda t: tempo_map_beats(pm, t))
        exact = (to_beats(starts) - origin) * grid.steps_per_beat
        s = _round(exact)
        e = _round((to_beats(ends) - origin) * grid.steps_per_beat)
        for n, a, b, x in zip(inst.notes, s, e, exact):
            if not grid.lowest_pitch <= n.pitch <= grid.highest_pitch or a < 0:
                dropped += 1
                continue
            b = a + 1 if track in drums else max(int(b), int(a) + 1)
            notes.append((Note(int(track), int(n.pitch), int(a), int(b), int(min(127, max(1, n.velocity)))),
                          float(x - a)))
    notes.sort(key=lambda pair: (pair[0].track, pair[0].start, pair[0].pitch, pair[0].end))
    if offsets is not None:
        offsets.extend(off for _, off in notes)
    return [n for n, _ in notes], dropped


# --------------------------------------------------------------------------- notes <-> roll

def notes_to_roll(notes: Sequence[Note], *, n_tracks: int, grid: Grid = Grid(), n_bars: int | None = None,
                  drum_tracks: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Draw notes into a roll.

    Later-starting notes overwrite earlier ones of the same pitch; notes past ``n_bars`` are cut.
    Drum notes are drawn one step long.

    Returns:
        roll: uint8 velocities ``[n_tracks, n_bars, steps_per_bar, n_pitches]``;
        onsets: bool of the same shape.
        ``n_bars`` defaults to the fewest whole bars holding every note (at least 1).
    """
    spb = grid.steps_per_bar
    if n_bars is None:
        last = max((n.end for n in notes), default=0)
        n_bars = max(1, -(-last // spb))
    T = n_bars * spb
    roll = np.zeros((n_tracks, T, grid.n_pitches), dtype=np.uint8)
    onsets = np.zeros((n_tracks, T, grid.n_pitches), dtype=bool)
    drum_set = set(drum_tracks)
    for n in sorted(notes, key=lambda n: (n.start, n.track, n.pitch)):
        p = n.pitch - grid.lowest_pitch
        if not 0 <= p < grid.n_pitches or not 0 <= n.track < n_tracks:
            raise ValueError(f"note {n} outside the grid ({n_tracks} tracks, {grid})")
        if n.start >= T or n.start < 0:
            continue
        end = n.start + 1 if n.track in drum_set else min(max(n.end, n.start + 1), T)
        roll[n.track, n.start:end, p] = max(1, min(127, n.velocity))
        onsets[n.track, n.start, p] = True
    shape = (n_tracks, n_bars, spb, grid.n_pitches)
    return roll.reshape(shape), onsets.reshape(shape)


def roll_to_notes(roll: np.ndarray, onsets: np.ndarray | None = None, *, grid: Grid = Grid(),
                  default_velocity: int = 100, drum_tracks: Sequence[int] = ()) -> list[Note]:
    """Read the notes off a roll.

    Args:
        roll: ``[tracks, bars, steps_per_bar, n_pitches]`` or ``[tracks, steps, n_pitches]``; uint8
            velocities, or bool / float (any value > 0 sounds; bool gets ``default_velocity``).
        onsets: bool of the same shape, or None. With onsets a note starts at each onset (and
            wherever a silent step turns on); without, where a silent step turns on or the
            velocity changes.
        grid: gives the pitch of row 0 (``lowest_pitch``).
        default_velocity: velocity of notes from a bool / float roll.
        drum_tracks: tracks whose notes are cut to one step; without onsets every sounding
            step of a drum track is a hit.

    Returns:
        notes sorted by (track, start, pitch).
    """
    roll = np.asarray(roll)
    if roll.ndim == 4:
        roll = roll.reshape(roll.shape[0], -1, roll.shape[-1])
    if roll.ndim != 3:
        raise ValueError(f"roll should have 3 or 4 dimensions [tracks, (bars,) steps, pitches], got {roll.shape}")
    if roll.dtype == np.uint8:
        vel = roll.astype(np.int64)
    else:
        vel = np.where(roll > 0, default_velocity, 0).astype(np.int64)
    if onsets is not None:
        onsets = np.asarray(onsets, dtype=bool).reshape(vel.shape)
    active = vel > 0
    prev_vel = np.concatenate([np.zeros_like(vel[:, :1]), vel[:, :-1]], axis=1)
    starts = active & (prev_vel == 0)
    if onsets is not None:
        starts |= onsets & active
    else:
        starts |= active & (vel != prev_vel)
    drum_set = set(drum_tracks)
    for t in drum_set:
        if onsets is None and 0 <= t < vel.shape[0]:
            starts[t] = active[t]  # drums keep onsets only: every sounding step is a hit
    T = vel.shape[1]
    notes: list[Note] = []
    for t, p in zip(*np.nonzero(starts.any(axis=1))):
        col_starts = np.flatnonzero(starts[t, :, p])
        stops = np.flatnonzero(~active[t, :, p])
        for k, s in enumerate(col_starts):
            nxt = col_starts[k + 1] if k + 1 < len(col_starts) else T
            j = np.searchsorted(stops, s)
            off = stops[j] if j < len(stops) else T
            e = s + 1 if t in drum_set else min(nxt, off)
            notes.append(Note(int(t), int(p + grid.lowest_pitch), int(s), int(e), int(vel[t, s, p])))
    notes.sort(key=lambda n: (n.track, n.start, n.pitch, n.end))
    return notes


def binarize(probs, threshold: float = 0.5):
    """``probs > threshold`` as a bool array / tensor of the same shape (numpy or torch)."""
    return probs > threshold


# --------------------------------------------------------------------------- MIDI <-> Multitrack

def midi_to_multitrack(path_or_pm, track_map: TrackMap | str, grid: Grid = Grid(), *,
                       beat_times: np.ndarray | None = None, origin: float = 0.0,
                       n_bars: int | None = None, timing: bool = False) -> Multitrack:
    """Read a MIDI file (path or PrettyMIDI) into a :class:`Multitrack`.

    Keeps the first tempo and time signature (4/4 when the file has none); bars are cut every
    ``grid.beats_per_bar`` beats from ``origin`` whatever the file's meter (the data code skips
    other meters). See :func:`quantize_notes` for ``beat_times`` and ``origin``. ``timing``: also
    keep how far each onset sat from its step (``Multitrack.timing``; where two notes share a
    cell, the one drawn last, as in the roll).
    """
    track_map = get_track_map(track_map)
    pm = path_or_pm if isinstance(path_or_pm, pretty_midi.PrettyMIDI) else read_midi(path_or_pm)
    offsets: list[float] = []
    notes, dropped = quantize_notes(pm, track_map, grid, beat_times=beat_times, origin=origin, offsets=offsets)
    roll, onsets = notes_to_roll(notes, n_tracks=len(track_map), grid=grid, n_bars=n_bars,
                                 drum_tracks=track_map.drum_tracks)
    marked = end_marker_bars(pm, grid, origin) if n_bars is None and beat_times is None else 0
    if marked > roll.shape[1]:   # silent bars at the end of a file this project wrote
        pad = ((0, 0), (0, marked - roll.shape[1]), (0, 0), (0, 0))
        roll, onsets = np.pad(roll, pad), np.pad(onsets, pad)
    late = None
    if timing:
        flat = np.zeros((roll.shape[0], roll.shape[1] * grid.steps_per_bar, grid.n_pitches))
        # the drawing order of notes_to_roll, so that a shared cell keeps the same note's offset
        for n, off in sorted(zip(notes, offsets), key=lambda pair: (pair[0].start, pair[0].track, pair[0].pitch)):
            if n.start < flat.shape[1]:
                flat[n.track, n.start, n.pitch - grid.lowest_pitch] = off
        late = flat.reshape(roll.shape)
    _, tempi = pm.get_tempo_changes()
    tempo = float(tempi[0]) if len(tempi) else 120.0
    ts = pm.time_signature_changes
    time_signature = (int(ts[0].numerator), int(ts[0].denominator)) if ts else (4, 4)
    return Multitrack(roll, onsets, track_map, grid, tempo, time_signature, dropped, late)


END_MARKER = "end"
"""Text event :func:`multitrack_to_midi` puts where the last bar ends."""


def end_marker_bars(pm: pretty_midi.PrettyMIDI, grid: Grid, origin: float = 0.0) -> int:
    """Bars up to the :data:`END_MARKER` text event of a file this project wrote (its silent last
    bars hold no note to say where the music ends); 0 without one."""
    marks = [t.time for t in pm.text_events if t.text == END_MARKER]
    if not marks:
        return 0
    beats = float(tempo_map_beats(pm, np.array([max(marks)]))[0]) - origin
    return max(0, int(math.ceil(beats / grid.beats_per_bar - 1e-6)))


def multitrack_to_midi(mt: Multitrack, *, resolution: int = 480) -> pretty_midi.PrettyMIDI:
    """A PrettyMIDI of the multitrack: one named instrument per track with its GM program
    (drum tracks on channel 10), the multitrack's tempo and time signature. With ``mt.timing``,
    each note starts (and ends) that many steps off its step (never before 0; a note still
    sounding when the next of its pitch starts ends there). The file lasts all of the roll's bars,
    also silent ones at the end: a text event "end" marks where the last bar ends.

    A step lasts ``60 / (tempo * steps_per_beat)`` seconds; ``resolution`` (ticks per quarter
    note) should be a multiple of ``steps_per_beat`` so that steps fall on whole ticks.
    """
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=float(mt.tempo))
    num, den = mt.time_signature
    pm.time_signature_changes.append(pretty_midi.TimeSignature(int(num), int(den), 0.0))
    step_s = 60.0 / (float(mt.tempo) * mt.grid.steps_per_beat)
    instruments = [pretty_midi.Instrument(program=int(spec.program), is_drum=bool(spec.is_drum), name=spec.name)
                   for spec in mt.track_map.tracks]
    for track, note in place_notes(mt.notes(), mt.timing, mt.grid, lambda step: max(0.0, step) * step_s):
        instruments[track].notes.append(note)
    pm.instruments.extend(instruments)
    pm.text_events.append(pretty_midi.Text(END_MARKER, mt.n_bars * mt.grid.steps_per_bar * step_s))
    return pm


def roll_onsets(flat: np.ndarray, is_drum: Sequence[bool]) -> np.ndarray:
    """Where notes start in a binary roll bool ``[tracks, steps, pitches]`` of consecutive bars:
    where a pitch turns on (held steps merge into one note); on a drum track every sounding step
    is a hit."""
    prev = np.concatenate([np.zeros_like(flat[:, :1]), flat[:, :-1]], axis=1)
    onsets = flat & ~prev
    for t, drum in enumerate(is_drum):
        if drum:
            onsets[t] = flat[t]
    return onsets


def map_drum_keys(mt: Multitrack, keys: dict[int, int] | None, tracks: Sequence[int],
                  keep: range | None = None) -> Multitrack:
    """``mt`` with the hits of ``tracks`` (drum tracks) on a key of ``keys`` moved to the key it maps
    to (e.g. :data:`symbolic.trackmap.GROOVE_TO_GM`); where both keys sound at a step, one hit: the
    louder one's velocity and timing. Keys outside the grid are left as they are. With ``keep``
    (e.g. GM's kit, 35-81), the hits then left on other keys are dropped. ``mt`` itself when there
    is nothing to move or drop."""
    lo, n = mt.grid.lowest_pitch, mt.grid.n_pitches
    moves = [(s - lo, d - lo) for s, d in (keys or {}).items() if 0 <= s - lo < n and 0 <= d - lo < n and s != d]
    drop = [p for p in range(n) if keep is not None and p + lo not in keep]
    if not (moves or any(mt.onsets[t][..., drop].any() for t in tracks)) or not tracks:
        return mt
    roll, onsets = mt.roll.copy(), mt.onsets.copy()
    timing = None if mt.timing is None else mt.timing.copy()
    for t in tracks:
        for s, d in moves:
            take = roll[t, ..., s] > roll[t, ..., d]
            roll[t, ..., d] = np.where(take, roll[t, ..., s], roll[t, ..., d])
            onsets[t, ..., d] |= onsets[t, ..., s]
            if timing is not None:
                timing[t, ..., d] = np.where(take, timing[t, ..., s], timing[t, ..., d])
                timing[t, ..., s] = 0.0
            roll[t, ..., s], onsets[t, ..., s] = 0, False
        roll[t, ..., drop], onsets[t, ..., drop] = 0, False
        if timing is not None:
            timing[t, ..., drop] = 0.0
    return replace(mt, roll=roll, onsets=onsets, timing=timing)


def place_notes(notes: Sequence[Note], timing: np.ndarray | None, grid: Grid,
                seconds: Callable[[float], float]) -> list[tuple[int, pretty_midi.Note]]:
    """(track, pretty_midi.Note) of each grid note, in seconds: ``seconds(step)`` maps a (fractional)
    grid step to a time, never before the file's start. With ``timing`` (``Multitrack.timing``'s
    shape), each note starts and ends that many steps off its step, and a note still sounding when
    the next of its pitch starts ends there (its note-off would cut the next one short, in a
    synthesizer and in the file read back). A note lasts at least until half a step past its
    (shifted) step. ``notes`` must come in start order within each (track, pitch), and the offsets
    lie within half a step (``Multitrack.timing``'s range), so that a note of a pitch never starts
    before the previous one of that pitch.
    """
    late = None if timing is None else timing.reshape(timing.shape[0], -1, grid.n_pitches)
    last: dict[tuple[int, int], pretty_midi.Note] = {}   # the previous note of each (track, pitch)
    out = []
    for n in notes:
        shift = 0.0 if late is None else float(np.nan_to_num(late[n.track, n.start, n.pitch - grid.lowest_pitch]))
        start = seconds(n.start + shift)
        note = pretty_midi.Note(velocity=int(n.velocity), pitch=int(n.pitch), start=start,
                                end=max(seconds(n.end + shift), seconds(n.start + shift + 0.5)))
        prev = last.get((n.track, n.pitch))
        if prev is not None and prev.start < start < prev.end:
            prev.end = start
        last[(n.track, n.pitch)] = note
        out.append((n.track, note))
    return out


# --------------------------------------------------------------------------- pypianoroll (LPD-5)

def from_pypianoroll(ppr, track_map: TrackMap | str, grid: Grid = Grid(), *, origin_step: int | None = None
                     ) -> Multitrack:
    """A pypianoroll.Multitrack (e.g. an LPD-5 npz from ``pypianoroll.load``) as a :class:`Multitrack`.

    Tracks are matched by name first (LPD-5's "Drums", "Piano", ...), then by program / drum flag.
    Each track's pianoroll ``[time, 128]`` is read as "any value > 0 sounds" (binary LPD-5 rolls
    and velocity rolls alike; pypianoroll's own ``binarize()`` is not used: after ``copy()`` it
    silently does nothing). Steps are rescaled from ``ppr.resolution`` (steps per beat) to the
    grid. Bar 0 starts at ``origin_step`` (default: the first downbeat, else 0, moved back by whole
    bars so that notes before the first downbeat, a pickup, end bar 0 instead of being dropped); the
    roll keeps the pianoroll's length in whole bars. The tempo is
    read whatever its shape (pypianoroll 1.0.4's ``read()`` gives ``(T, 1)``).
    """
    track_map = get_track_map(track_map)
    res = int(ppr.resolution)
    assignment = track_map.assign(ppr.tracks)
    if origin_step is None:
        db = getattr(ppr, "downbeat", None)
        origin_step = int(np.flatnonzero(np.asarray(db))[0]) if db is not None and np.any(db) else 0
        bar = res * grid.beats_per_bar  # pianoroll steps a bar
        sounding = [int(np.flatnonzero(np.asarray(tr.pianoroll).any(axis=1))[0])  # the tracks kept only
                    for tr, t in zip(ppr.tracks, assignment)
                    if t is not None and np.asarray(tr.pianoroll).size and np.asarray(tr.pianoroll).any()]
        if sounding and min(sounding) < origin_step:
            origin_step -= bar * -(-(origin_step - min(sounding)) // bar)
    notes: list[Note] = []
    dropped = 0
    drums = set(track_map.drum_tracks)
    for tr, t in zip(ppr.tracks, assignment):
        if t is None:
            continue
        pr = np.asarray(tr.pianoroll)
        if pr.size == 0:
            continue
        if pr.dtype == bool or (np.issubdtype(pr.dtype, np.floating) and pr.max() <= 1.0):
            vel = pr > 0  # binary (LPD-5) or probabilities: default velocity
        else:
            vel = np.clip(pr, 0, 127).astype(np.uint8)  # velocities
        for n in roll_to_notes(vel[None], grid=Grid(res, 1, 0, 128)):
            s = int(_round((n.start - origin_step) * grid.steps_per_beat / res))
            e = int(_round((n.end - origin_step) * grid.steps_per_beat / res))
            if not grid.lowest_pitch <= n.pitch <= grid.highest_pitch or s < 0:
                dropped += 1
                continue
            e = s + 1 if t in drums else max(e, s + 1)
            notes.append(Note(t, n.pitch, s, e, n.velocity))
    length = max((np.asarray(tr.pianoroll).shape[0] for tr in ppr.tracks), default=0) - origin_step
    n_bars = max(1, -(-int(length * grid.steps_per_beat) // (res * grid.steps_per_bar)),
                 -(-max((n.end for n in notes), default=0) // grid.steps_per_bar))
    roll, onsets = notes_to_roll(notes, n_tracks=len(track_map), grid=grid, n_bars=n_bars,
                                 drum_tracks=track_map.drum_tracks)
    tempo = getattr(ppr, "tempo", None)
    tempo = np.asarray([] if tempo is None else tempo, dtype=np.float64).reshape(-1)  # (T,) or 1.0.4's (T, 1)
    tempo_bpm = float(tempo[0]) if tempo.size else 120.0
    return Multitrack(roll, onsets, track_map, grid, tempo_bpm, (4, 4), dropped)


def to_pypianoroll(mt: Multitrack):
    """The multitrack as a pypianoroll.Multitrack (velocity StandardTracks, one per track, on the
    grid's resolution, all 128 pitches) with a tempo array of shape ``[time]`` and downbeats."""
    import pypianoroll

    T = mt.n_bars * mt.grid.steps_per_bar
    tracks = []
    for t, spec in enumerate(mt.track_map.tracks):
        pr = np.zeros((T, 128), dtype=np.uint8)
        for n in roll_to_notes(mt.roll[t:t + 1], mt.onsets[t:t + 1], grid=mt.grid):
            pr[n.start:n.end, n.pitch] = n.velocity
        tracks.append(pypianoroll.StandardTrack(name=spec.name, program=spec.program, is_drum=spec.is_drum,
                                                pianoroll=pr))
    downbeat = np.zeros(T, dtype=bool)
    downbeat[::mt.grid.steps_per_bar] = True
    return pypianoroll.Multitrack(resolution=mt.grid.steps_per_beat, tempo=np.full(T, float(mt.tempo)),
                                  downbeat=downbeat, tracks=tracks)
