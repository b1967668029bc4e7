"""Track maps: which instruments of a MIDI file go to which pianoroll track.

A :class:`TrackMap` is an ordered list of :class:`TrackSpec`. Each MIDI instrument is assigned to
at most one track, by the first rule that matches:

1. its name (case-insensitive, stripped) is in a track's ``source_names``, or else equals a
   track's own name (with the same drum flag: files this project writes read back as written),
   or else its first word (of 2+ letters) is in a track's ``source_names``;
2. it is a drum instrument (``is_drum``) and a track is a drum track without ``source_names``;
3. its GM program (0-127) falls in one of a non-drum track's ``programs`` ranges (inclusive),
   tracks tried in order;
4. for maps built with ``by_order=True`` (SATB): the n-th non-drum instrument not yet assigned
   goes to the n-th track not yet filled.

Instruments that match nothing are left out (counted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pipeline.errors import UserError


@dataclass(frozen=True)
class TrackSpec:
    """One pianoroll track.

    Attributes:
        name: track name written to MIDI (e.g. "Piano").
        program: GM program (0-127) written to MIDI for this track.
        is_drum: a drum track (MIDI channel 10, onsets only).
        programs: inclusive GM program ranges ``((lo, hi), ...)`` merged into this track.
        source_names: instrument names (case-insensitive) that go to this track.
    """

    name: str
    program: int
    is_drum: bool = False
    programs: tuple[tuple[int, int], ...] = ()
    source_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackMap:
    """An ordered set of tracks and the rules that assign MIDI instruments to them."""

    tracks: tuple[TrackSpec, ...]
    by_order: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracks", tuple(self.tracks))
        names = [t.name for t in self.tracks]
        if not names:
            raise ValueError("a track map needs at least one track")
        if len(set(names)) != len(names):
            raise ValueError(f"track names must be unique: {names}")

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tracks]

    @property
    def programs(self) -> list[int]:
        return [t.program for t in self.tracks]

    @property
    def is_drum(self) -> list[bool]:
        return [t.is_drum for t in self.tracks]

    @property
    def drum_tracks(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.tracks) if t.is_drum)

    def index(self, name: str) -> int:
        """Index of the track called ``name`` (case-insensitive); UserError if there is none."""
        for i, t in enumerate(self.tracks):
            if t.name.lower() == name.lower():
                return i
        raise UserError(f"track '{name}': no such track (tracks are {', '.join(self.names)})")

    def assign(self, instruments: Sequence) -> list[int | None]:
        """Track index for each instrument (objects with ``name``, ``program``, ``is_drum``), or None."""
        out: list[int | None] = []
        for inst in instruments:
            out.append(self._match(getattr(inst, "name", "") or "", int(inst.program or 0), bool(inst.is_drum)))
        if self.by_order:
            taken = {i for i in out if i is not None}
            free = [i for i, t in enumerate(self.tracks) if i not in taken and not t.is_drum]
            for k, inst in enumerate(instruments):
                if out[k] is None and not inst.is_drum and free:
                    out[k] = free.pop(0)
        return out

    def _match(self, name: str, program: int, is_drum: bool) -> int | None:
        key = name.strip().lower()
        for i, t in enumerate(self.tracks):
            if key and key in (s.lower() for s in t.source_names):
                return i
        for i, t in enumerate(self.tracks):
            if key and key == t.name.lower() and t.is_drum == is_drum:
                return i
        first = key.split()[0].strip(".,:;-_") if key.split() else ""
        for i, t in enumerate(self.tracks):
            if first and len(first) > 1 and first in (s.lower() for s in t.source_names):
                return i  # "Soprano Oboe 1 Violin1" -> soprano
        if not is_drum and all(t.source_names or t.is_drum for t in self.tracks):
            return None  # name-based maps (POP909, SATB) take only named parts (SATB: then by order)
        for i, t in enumerate(self.tracks):
            if is_drum and t.is_drum and not t.source_names:
                return i
        if is_drum:
            return None
        for i, t in enumerate(self.tracks):
            if not t.is_drum and any(lo <= program <= hi for lo, hi in t.programs):
                return i
        return None


LPD5 = TrackMap(
    (
        TrackSpec("Drums", 0, is_drum=True),
        TrackSpec("Piano", 0, programs=((0, 7),)),
        TrackSpec("Guitar", 24, programs=((24, 31),)),
        TrackSpec("Bass", 32, programs=((32, 39),)),
        # "other programs below 96 and 104-111": tried last, so Piano/Guitar/Bass win first
        TrackSpec("Strings", 48, programs=((0, 95), (104, 111))),
    ),
    name="lpd5",
)

POP909 = TrackMap(
    (
        TrackSpec("melody", 0, source_names=("MELODY",)),
        TrackSpec("bridge", 0, source_names=("BRIDGE",)),
        TrackSpec("piano", 0, source_names=("PIANO",)),
    ),
    name="pop909",
)

POP909_DRUMS = TrackMap(POP909.tracks + (TrackSpec("drums", 0, is_drum=True),), name="pop909_drums")

SATB = TrackMap(
    (
        TrackSpec("soprano", 52, source_names=("soprano", "s.", "s")),
        TrackSpec("alto", 52, source_names=("alto", "a.", "a")),
        TrackSpec("tenor", 52, source_names=("tenor", "t.", "t")),
        TrackSpec("bass", 52, source_names=("bass", "b.", "b")),
    ),
    by_order=True,
    name="satb",
)

DRUMS = TrackMap((TrackSpec("drums", 0, is_drum=True),), name="drums")

#: Groove MIDI's kit (a Roland TD-11) has keys that General MIDI gives to other instruments or to
#: none: 22 and 26, the closed and open hi-hat struck on its edge (no GM sound: silent in a GM
#: kit), and 58, the third tom's rim (GM's vibraslap). Songs play them as GM's closed and open
#: hi-hat and the high floor tom (the mapping of the Groove MIDI paper's reduced kit); the data
#: and the drum composer keep the kit's own keys, whose velocities and timing differ.
GROOVE_TO_GM: dict[int, int] = {22: 42, 26: 46, 58: 43}

#: The keys of General MIDI's percussion kit (channel 10): a GM synthesizer plays nothing on others.
GM_DRUM_KEYS = range(35, 82)

@dataclass(frozen=True)
class FileTrackMap(TrackMap):
    """The tracks of one MIDI file as they are: one per instrument with notes, in the file's order
    (:func:`file_track_map`). ``members`` gives each of the file's instruments its track (None
    for one without notes); :meth:`assign` takes that file's instruments only."""

    members: tuple[int | None, ...] = ()

    def assign(self, instruments: Sequence) -> list[int | None]:
        if len(instruments) != len(self.members):
            raise ValueError(f"this track map is of a file of {len(self.members)} instruments, "
                             f"got {len(instruments)}")
        return list(self.members)


def file_track_map(instruments: Sequence) -> FileTrackMap:
    """A :class:`FileTrackMap` of a file's instruments (pretty_midi's): each with notes a track of
    its own name (a nameless one "drums" or its GM program's name; a name met before gets
    " (2)", " (3)", ...), program and drum flag. ValueError when no instrument has notes."""
    import pretty_midi

    tracks: list[TrackSpec] = []
    members: list[int | None] = []
    used: set[str] = set()
    for inst in instruments:
        if not inst.notes:
            members.append(None)
            continue
        base = (inst.name or "").strip() or ("drums" if inst.is_drum else
                                             pretty_midi.program_to_instrument_name(int(inst.program)))
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base} ({k})", k + 1
        used.add(name.lower())
        members.append(len(tracks))
        tracks.append(TrackSpec(name, int(inst.program), bool(inst.is_drum)))
    if not tracks:
        raise ValueError("no instrument has notes")
    return FileTrackMap(tuple(tracks), name="file", members=tuple(members))


TRACK_MAPS: dict[str, TrackMap] = {
    "lpd5": LPD5,
    "pop909": POP909,
    "pop909_drums": POP909_DRUMS,
    "satb": SATB,
    "drums": DRUMS,
}


def get_track_map(name: str | TrackMap) -> TrackMap:
    """The track map called ``name`` (case-insensitive; "lpd-5" = "lpd5"); UserError on unknown names."""
    if isinstance(name, TrackMap):
        return name
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = {"lpd_5": "lpd5", "pop909drums": "pop909_drums"}.get(key, key)
    if key not in TRACK_MAPS:
        raise UserError(f"track map '{name}': unknown (choose one of {', '.join(TRACK_MAPS)})")
    return TRACK_MAPS[key]
