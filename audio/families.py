"""Instrument families: NSynth's eleven families plus drums, and General MIDI program lookups.

``FAMILIES`` has a fixed order; a family's index in it is the label the note datasets and the
timbre model use. NSynth's own ``instrument_family`` numbers follow NSynth's alphabetical order,
which is the same order for the first eleven entries, so NSynth labels load unchanged; "drums"
(index 11) is ours, for the GM percussion kit.

GM program -> family (by the GM groups of eight programs), with the decisions that needed one:

- piano 0-7 -> keyboard (harpsichord and clavinet too); chromatic percussion 8-15 -> mallet;
  organ 16-20 and the accordions 21, 23 -> organ; harmonica 22 -> reed (a free reed, blown);
- guitar 24-31 -> guitar; bass 32-39 -> bass (synth basses too);
- strings 40-46 and string ensembles 48-51 -> string (harp included); timpani 47 -> mallet
  (nearest; flagged); choir / voice / synth choir 52-54 -> vocal; orchestra hit 55 -> brass
  (nearest; flagged);
- brass 56-63 -> brass; reed 64-71 -> reed; pipe 72-79 -> flute;
- synth lead 80-87 and synth pad 88-95 -> synth_lead: NSynth has one synthetic family besides
  keyboard/bass, and pads are sustained synth tones like leads, not keyboard notes;
- synth effects 96-103 -> synth_lead (nearest; flagged);
- ethnic 104-111: banjo -> guitar, fiddle -> string, bagpipe and shanai -> reed (exact);
  sitar, shamisen, koto -> guitar and kalimba -> mallet (nearest; flagged);
- percussive 112-119: tinkle bell and steel drums -> mallet (exact); agogo, woodblock, taiko,
  melodic tom, synth drum, reverse cymbal -> mallet (nearest pitched percussion; flagged);
- sound effects 120-127 -> nearest family (flagged): fret noise -> guitar, breath noise and
  bird tweet -> flute, the rest -> synth_lead.

A flagged ("inexact") mapping means no NSynth family describes the program; callers should
warn that the timbre model will play it with the nearest family's sound.
"""

from __future__ import annotations

import difflib
import re
from typing import NamedTuple

from pipeline.errors import UserError

#: NSynth's instrument families in NSynth's label order, then "drums". Index = label.
FAMILIES: list[str] = ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                       "synth_lead", "vocal", "drums"]
#: The program number used for the GM drum kit wherever one number per instrument is needed.
DRUM_PROGRAM = 128
#: GM percussion keys (channel 10) covered by the GM standard: 35 (Acoustic Bass Drum) to 81.
DRUM_KEYS = range(35, 82)


class FamilyMatch(NamedTuple):
    """The family of a GM program.

    Attributes:
        family: a name in :data:`FAMILIES`.
        exact: False when no family describes the program and ``family`` is only the nearest.
    """

    family: str
    exact: bool

    @property
    def index(self) -> int:
        """The family's label: its index in :data:`FAMILIES`."""
        return FAMILIES.index(self.family)


def _build_program_families() -> list[tuple[str, bool]]:
    table: list[tuple[str, bool]] = []
    groups = ["keyboard", "mallet", "organ", "guitar", "bass", "string", "string", "brass", "reed", "flute",
              "synth_lead", "synth_lead", "synth_lead", None, None, None]
    for program in range(128):
        table.append((groups[program // 8] or "synth_lead", True))
    overrides: dict[int, tuple[str, bool]] = {
        21: ("organ", True), 22: ("reed", True), 23: ("organ", True),
        47: ("mallet", False),
        52: ("vocal", True), 53: ("vocal", True), 54: ("vocal", True), 55: ("brass", False),
        **{p: ("synth_lead", False) for p in range(96, 104)},
        104: ("guitar", False), 105: ("guitar", True), 106: ("guitar", False), 107: ("guitar", False),
        108: ("mallet", False), 109: ("reed", True), 110: ("string", True), 111: ("reed", True),
        112: ("mallet", True), 113: ("mallet", False), 114: ("mallet", True), 115: ("mallet", False),
        116: ("mallet", False), 117: ("mallet", False), 118: ("mallet", False), 119: ("mallet", False),
        120: ("guitar", False), 121: ("flute", False), 122: ("synth_lead", False), 123: ("flute", False),
        124: ("synth_lead", False), 125: ("synth_lead", False), 126: ("synth_lead", False),
        127: ("synth_lead", False),
    }
    for program, value in overrides.items():
        table[program] = value
    return table


_PROGRAM_FAMILIES = _build_program_families()

#: Each family's default GM program (drums: :data:`DRUM_PROGRAM`).
FAMILY_DEFAULT_PROGRAMS: dict[str, int] = {
    "bass": 33, "brass": 61, "flute": 73, "guitar": 24, "keyboard": 0, "mallet": 11, "organ": 16, "reed": 65,
    "string": 48, "synth_lead": 80, "vocal": 52, "drums": DRUM_PROGRAM,
}

#: Short and common names beside the 128 GM names (normalised: lower case, alphanumerics only).
SHORT_NAMES: dict[str, int] = {
    "piano": 0, "grandpiano": 0, "acousticpiano": 0, "electricpiano": 4, "epiano": 4, "rhodes": 4,
    "keys": 0, "keyboard": 0, "organ": 16, "churchorgan": 19, "accordion": 21,
    "guitar": 24, "acousticguitar": 24, "nylonguitar": 24, "steelguitar": 25, "electricguitar": 27,
    "distortedguitar": 30, "bass": 33, "electricbass": 33, "bassguitar": 33, "synthbass": 38,
    "strings": 48, "string": 48, "stringensemble": 48, "harp": 46, "doublebass": 43,
    "choir": 52, "voice": 53, "vocal": 52, "vocals": 52,
    "brass": 61, "horn": 60, "frenchhorn": 60, "sax": 65, "saxophone": 65, "altosax": 65, "tenorsax": 66,
    "reed": 65, "flute": 73, "pipe": 73, "synth": 80, "lead": 80, "synthlead": 80, "synth_lead": 80, "pad": 88,
    "synthpad": 88, "mallet": 11, "vibes": 11, "bells": 14,
    "drums": DRUM_PROGRAM, "drum": DRUM_PROGRAM, "drumkit": DRUM_PROGRAM, "kit": DRUM_PROGRAM,
    "percussion": DRUM_PROGRAM,
}


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _gm_names() -> list[str]:
    import pretty_midi

    return list(pretty_midi.constants.INSTRUMENT_MAP)


def program_name(program: int) -> str:
    """GM name of ``program`` (0-127), or "Drums" for :data:`DRUM_PROGRAM`."""
    if program == DRUM_PROGRAM:
        return "Drums"
    if not 0 <= int(program) <= 127:
        raise UserError(f"program {program}: must be 0-127 (or {DRUM_PROGRAM} for drums)")
    return _gm_names()[int(program)]


def program_to_family(program: int, is_drum: bool = False) -> FamilyMatch:
    """The family of a GM program.

    Args:
        program: GM program 0-127, or :data:`DRUM_PROGRAM` (128) for the drum kit.
        is_drum: the part plays on the percussion channel (then ``program`` is the kit).
    Returns:
        ``FamilyMatch(family, exact)``; ``exact`` is False when the family is only the nearest
        one (sound effects, unpitched percussion, ...), so callers can warn.
    Raises:
        UserError: when ``program`` is out of range.
    """
    if isinstance(program, bool) or not isinstance(program, int):
        try:
            program = int(program)  # numpy integers
        except (TypeError, ValueError):
            raise UserError(f"program {program!r}: must be an integer 0-127") from None
    if is_drum or program == DRUM_PROGRAM:
        if not 0 <= program <= DRUM_PROGRAM:
            raise UserError(f"program {program}: must be 0-127 (or {DRUM_PROGRAM} for drums)")
        return FamilyMatch("drums", True)
    if not 0 <= program <= 127:
        raise UserError(f"program {program}: must be 0-127 (or {DRUM_PROGRAM} for drums)")
    family, exact = _PROGRAM_FAMILIES[program]
    return FamilyMatch(family, exact)


def family_index(family: str) -> int:
    """Index of ``family`` in :data:`FAMILIES` (its label); UserError for an unknown name."""
    try:
        return FAMILIES.index(family)
    except ValueError:
        raise UserError(f"family {family!r}: unknown; expected one of {', '.join(FAMILIES)}") from None


def family_default_program(family: str) -> int:
    """A representative GM program for ``family`` (drums: :data:`DRUM_PROGRAM`)."""
    family_index(family)
    return FAMILY_DEFAULT_PROGRAMS[family]


def family_programs(family: str) -> list[int]:
    """All GM programs (0-127) whose nearest family is ``family`` ([DRUM_PROGRAM] for drums)."""
    family_index(family)
    if family == "drums":
        return [DRUM_PROGRAM]
    return [p for p, (f, _) in enumerate(_PROGRAM_FAMILIES) if f == family]


def instrument_name_to_program(name: str | int) -> int:
    """GM program for an instrument name.

    Accepts the 128 GM names (case, spaces and punctuation ignored, via pretty_midi), the short
    names in :data:`SHORT_NAMES` ("piano" -> 0 Acoustic Grand Piano, "trumpet", "violin",
    "drums" -> :data:`DRUM_PROGRAM`), and program numbers 0-128 as int or digit string.

    Raises:
        UserError: for an unknown name, listing close matches.
    """
    import pretty_midi

    if isinstance(name, int) and not isinstance(name, bool):
        if 0 <= name <= DRUM_PROGRAM:
            return name
        raise UserError(f"instrument {name}: program must be 0-127 (or {DRUM_PROGRAM} for drums)")
    text = str(name).strip()
    if text.isdigit():
        return instrument_name_to_program(int(text))
    key = _normalize(text)
    if key in SHORT_NAMES:
        return SHORT_NAMES[key]
    try:
        return int(pretty_midi.instrument_name_to_program(text))
    except ValueError:
        pass
    candidates = {n.lower(): n for n in _gm_names()}
    candidates.update({k: k for k in SHORT_NAMES})
    close = difflib.get_close_matches(text.lower(), list(candidates), n=4, cutoff=0.5)
    close += [c for c in difflib.get_close_matches(key, list(candidates), n=4, cutoff=0.6) if c not in close]
    hint = f"; did you mean {', '.join(repr(candidates[c]) for c in close[:4])}?" if close else \
        "; use a General MIDI instrument name (e.g. 'Acoustic Grand Piano', 'Trumpet') or 'drums'"
    raise UserError(f"instrument {text!r}: unknown instrument name{hint}")


def drum_key_name(key: int) -> str:
    """GM percussion name of ``key`` (35-81), e.g. 38 -> "Acoustic Snare"."""
    import pretty_midi

    if not (isinstance(key, int) or hasattr(key, "__index__")) or int(key) not in DRUM_KEYS:
        raise UserError(f"drum key {key!r}: GM percussion keys are {DRUM_KEYS.start}-{DRUM_KEYS.stop - 1}")
    return pretty_midi.note_number_to_drum_name(int(key))


def drum_key_names() -> dict[int, str]:
    """The GM percussion key map: {35: "Acoustic Bass Drum", ..., 81: "Open Triangle"}."""
    return {k: drum_key_name(k) for k in DRUM_KEYS}
