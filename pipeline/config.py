"""Song configs: what to generate, as validated dataclasses loaded from YAML.

A song config names the tracks (which composer track each plays, which instrument voices it,
its timbre seed, volume and pan), the structure (sections of bars, with optional chords,
variation and timbre morph), the tempo and the weights. Every wrong value raises
:class:`pipeline.errors.UserError` naming the file, the key path (``sections[2].chords[1]``),
the value and what is allowed.

Example (see ``configs/song/default.yaml``)::

    title: My Song
    seed: 7
    tempo: 110
    time_signature: 4/4
    tracks:
      - {name: lead, source: melody, instrument: Flute, volume_db: -2, pan: -0.2}
      - {name: drums, source: drums}
    sections:
      - {name: verse, bars: 8, chords: [C, Am, F, G]}
      - {name: chorus, bars: 8, chords: [F, G, C, C], variation: 0.2, morph: 0.5}

Chords: one symbol per bar, one per beat, or a shorter list repeated (its length must divide
the number of bars). A symbol is a root ``A``-``G`` with optional ``#``/``b``, then a quality
(``""``/``maj``, ``m``/``min``, ``7``, ``maj7``, ``m7``, ``dim``, ``dim7``, ``m7b5``, ``aug``,
``sus2``, ``sus4``, ``6``, ``m6``, ``9``, ``add9``, ``5``), optionally ``/bass``; ``N`` (or
``-``) means no chord.

``humanize`` (0..1, default 0.5): how much the notes' velocities vary around the data's mean at
their step of the bar (``symbolic.velocity.play_velocities``; 0 = always the mean).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symbolic.velocity import HUMANIZE

from pipeline.errors import UserError

#: The project root (the folder holding ``configs/`` and ``data/``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "song" / "default.yaml"

DEFAULT_WEIGHTS = {
    "symbolic": "data/pretrained/symbolic_pop909.safetensors",
    "drums": "data/pretrained/symbolic_drums.safetensors",
    "audio": "data/pretrained/audio_default.safetensors",
}

#: NSynth instrument families (plus drums) -> a representative GM program (0-127).
FAMILY_PROGRAMS = {
    "bass": 33,  # Electric Bass (finger)
    "brass": 61,  # Brass Section
    "flute": 73,  # Flute
    "guitar": 24,  # Acoustic Guitar (nylon)
    "keyboard": 0,  # Acoustic Grand Piano
    "piano": 0,
    "mallet": 11,  # Vibraphone
    "organ": 16,  # Drawbar Organ
    "reed": 65,  # Alto Sax
    "string": 48,  # String Ensemble 1
    "strings": 48,
    "synth_lead": 80,  # Lead 1 (square)
    "vocal": 52,  # Choir Aahs
    "drums": 0,  # Standard kit (on the percussion channel)
}

SUPPORTED_TIME_SIGNATURES = ("4/4",)
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: The output rate of a song whose config names none, for FluidSynth (the timbre model: its own).
DEFAULT_SAMPLE_RATE = 16000
VOLUME_RANGE_DB = (-60.0, 12.0)
TEMPO_RANGE = (30.0, 300.0)
MAX_BARS = 512

_NOTE_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
CHORD_QUALITIES = {
    "": (0, 4, 7), "maj": (0, 4, 7), "M": (0, 4, 7), "major": (0, 4, 7),
    "m": (0, 3, 7), "min": (0, 3, 7), "-": (0, 3, 7), "minor": (0, 3, 7),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "M7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10), "min7": (0, 3, 7, 10), "-7": (0, 3, 7, 10),
    "mmaj7": (0, 3, 7, 11), "mM7": (0, 3, 7, 11),
    "dim": (0, 3, 6), "o": (0, 3, 6), "dim7": (0, 3, 6, 9), "o7": (0, 3, 6, 9),
    "m7b5": (0, 3, 6, 10), "-7b5": (0, 3, 6, 10), "ø": (0, 3, 6, 10), "ø7": (0, 3, 6, 10),
    "aug": (0, 4, 8), "+": (0, 4, 8), "aug7": (0, 4, 8, 10), "+7": (0, 4, 8, 10),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "sus": (0, 5, 7), "7sus4": (0, 5, 7, 10), "7sus": (0, 5, 7, 10),
    "6": (0, 4, 7, 9), "m6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2), "M9": (0, 4, 7, 11, 2), "m9": (0, 3, 7, 10, 2),
    "min9": (0, 3, 7, 10, 2), "7b9": (0, 4, 7, 10, 1), "7#9": (0, 4, 7, 10, 3),
    "11": (0, 4, 7, 10, 2, 5), "m11": (0, 3, 7, 10, 2, 5), "min11": (0, 3, 7, 10, 2, 5),
    "maj11": (0, 4, 7, 11, 2, 5), "M11": (0, 4, 7, 11, 2, 5),
    "13": (0, 4, 7, 10, 2, 9), "maj13": (0, 4, 7, 11, 2, 9), "M13": (0, 4, 7, 11, 2, 9), "m13": (0, 3, 7, 10, 2, 9),
    "add9": (0, 4, 7, 2), "add2": (0, 2, 4, 7), "madd9": (0, 3, 7, 2), "5": (0, 7),
}
"""Chord quality as written after the root -> intervals (semitones above the root). A quality
starting with a word (maj, min, dim, aug, sus, add) may be written in any case ("Maj7", "MIN");
a bare "M" (major) and "m" (minor) differ ("CM13" is major, "Cm13" minor)."""
_CHORD_RE = re.compile(r"^([A-Ga-g])([#b]?)([^/]*)(?:/([A-Ga-g][#b]?))?$")
NO_CHORD = ("N", "NC", "-", "")
"""No chord, as written with the dots left out and in any case ("N.C.", "n.c", "nc")."""


@dataclass(frozen=True)
class TrackConfig:
    """One output track.

    Attributes:
        name: track name (MIDI track name and stem file name).
        source: the composer track it plays (e.g. "melody", "bridge", "piano", "drums").
        program: GM program 0-127 (0, the standard kit, for the drums track).
        instrument: the instrument as written in the config (GM name or family).
        timbre_seed: seed of the track's timbre latent.
        morph_seed: seed of the latent the timbre morphs towards (sections' ``morph``).
        volume_db: gain in dB applied to the stem in the mix.
        pan: -1 (left) .. 1 (right), or None for centre in a mono mix.
    """

    name: str
    source: str
    program: int
    instrument: str
    timbre_seed: int = 0
    morph_seed: int = 1000
    volume_db: float = 0.0
    pan: float | None = None


@dataclass(frozen=True)
class SectionConfig:
    """One section of the song.

    Attributes:
        name: sections of the same name share their latents (a repeat).
        bars: length in bars (cut from whole phrases when not a multiple of the phrase length).
        chords: one chord symbol per beat (expanded), or None (no chord conditioning).
        variation: 0..1, how much a repeat departs from the first occurrence's latents.
        morph: 0..1, how far each track's timbre moves from its ``timbre_seed`` latent towards
            its ``morph_seed`` latent in this section.
        play: names of tracks that play in every bar of the section (their composer must have
            arrangement conditioning, else it has no effect and a note says so); rest: names of
            tracks that are silent in it. Other tracks follow the composer's own arrangement.
        style: the drums' genre in this section (a name or index, as the song's ``style``);
            None = the song's.
    """

    name: str
    bars: int
    chords: tuple[str, ...] | None = None
    variation: float = 0.0
    morph: float = 0.0
    play: tuple[str, ...] = ()
    rest: tuple[str, ...] = ()
    style: str | int | None = None


@dataclass(frozen=True)
class WeightsConfig:
    """Paths of the weights (``.safetensors``; the ``.json`` beside it holds the hyper-parameters)."""

    symbolic: str = DEFAULT_WEIGHTS["symbolic"]
    drums: str = DEFAULT_WEIGHTS["drums"]
    audio: str = DEFAULT_WEIGHTS["audio"]
    #: the kinds the config itself names (the others are the shipped weights)
    given: tuple[str, ...] = ()


@dataclass(frozen=True)
class SongConfig:
    """A whole song config (see the module docstring)."""

    title: str
    seed: int
    tempo: float
    tracks: tuple[TrackConfig, ...]
    sections: tuple[SectionConfig, ...]
    time_signature: tuple[int, int] = (4, 4)
    sample_rate: int | None = None
    style: str | int | None = None
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    source: str = "<config>"
    humanize: float = HUMANIZE

    @property
    def n_bars(self) -> int:
        return sum(s.bars for s in self.sections)

    @property
    def beats_per_bar(self) -> int:
        return self.time_signature[0]

    @property
    def slug(self) -> str:
        return slugify(self.title)

    def with_seed(self, seed: int) -> "SongConfig":
        return dataclasses.replace(self, seed=int(seed))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what ``song.json`` records)."""
        d = dataclasses.asdict(self)
        d["time_signature"] = f"{self.time_signature[0]}/{self.time_signature[1]}"
        for s in d["sections"]:
            s["chords"] = list(s["chords"]) if s["chords"] is not None else None
            s["play"], s["rest"] = list(s["play"]), list(s["rest"])
        return d


#: Longest slug (a folder name: file systems allow 255 bytes, temporary names add a few).
MAX_SLUG_CHARS = 80
#: Longest track name (it names the stem file).
MAX_TRACK_NAME_CHARS = 64


def slugify(text: str) -> str:
    """File-name-safe lower-case slug of at most :data:`MAX_SLUG_CHARS`: "My Song!" -> "my-song",
    accented letters without their accents ("Ünïcödé Sông" -> "unicode-song")."""
    import unicodedata

    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    slug = slug[:MAX_SLUG_CHARS].rstrip("-")
    return slug or "song"


# --------------------------------------------------------------------------- chords

def chord_pitch_classes(symbol: str) -> tuple[int, ...]:
    """Pitch classes (0 = C) of a chord symbol; () for no chord. ValueError on a bad symbol.

    >>> chord_pitch_classes("Am7")
    (9, 0, 4, 7)
    """
    s = str(symbol).strip()
    if s.upper().replace(".", "") in NO_CHORD:
        return ()
    m = _CHORD_RE.match(s)
    if not m:
        raise ValueError(f"'{symbol}' is not a chord symbol")
    root_letter, accidental, quality, bass = m.groups()
    if quality not in CHORD_QUALITIES and re.match(r"(maj|min|dim|aug|sus|add)", quality, re.IGNORECASE) \
            and quality.lower() in CHORD_QUALITIES:   # "Maj7", "MIN"; never a bare M / m ("CM13" is major)
        quality = quality.lower()
    elif quality not in CHORD_QUALITIES and re.match(r"m(maj|min)", quality, re.IGNORECASE) \
            and quality[0] + quality[1:].lower() in CHORD_QUALITIES:   # "mMaj7": the m stays minor
        quality = quality[0] + quality[1:].lower()
    if quality not in CHORD_QUALITIES:
        raise ValueError(f"'{symbol}': unknown chord quality '{quality}' (known: nothing after the root for "
                         f"major, {', '.join(q for q in CHORD_QUALITIES if q)})")
    root = (_NOTE_PC[root_letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    pcs = [(root + i) % 12 for i in CHORD_QUALITIES[quality]]
    if bass:
        b = (_NOTE_PC[bass[0].upper()] + {"#": 1, "b": -1}.get(bass[1:], 0)) % 12
        if b not in pcs:
            pcs.append(b)
    return tuple(dict.fromkeys(pcs))


def chords_to_array(chords: tuple[str, ...] | None, bars: int, beats_per_bar: int) -> np.ndarray:
    """Multi-hot chord array of a section: float32 ``[bars, beats_per_bar, 12]``.

    ``chords`` holds one symbol per beat (``bars * beats_per_bar`` of them, as
    :class:`SectionConfig` stores them); None gives all zeros (no chord).
    """
    out = np.zeros((bars, beats_per_bar, 12), dtype=np.float32)
    if chords is None:
        return out
    if len(chords) != bars * beats_per_bar:
        raise ValueError(f"expected {bars * beats_per_bar} chords (one per beat), got {len(chords)}")
    for i, sym in enumerate(chords):
        for pc in chord_pitch_classes(sym):
            out[i // beats_per_bar, i % beats_per_bar, pc] = 1.0
    return out


# --------------------------------------------------------------------------- instruments

def resolve_instrument(name: str) -> int:
    """GM program (0-127) of a GM instrument name (case-insensitive) or an NSynth family name.

    Raises ValueError naming close matches when the name is unknown.
    """
    key = str(name).strip()
    fam = key.lower().replace(" ", "_").replace("-", "_")
    if fam in FAMILY_PROGRAMS:
        return FAMILY_PROGRAMS[fam]
    try:  # the audio package's resolver when present (it may know more aliases)
        from audio.families import instrument_name_to_program  # type: ignore
    except ImportError:
        instrument_name_to_program = None
    if instrument_name_to_program is not None:
        try:
            return int(instrument_name_to_program(key))
        except UserError:
            pass
    import pretty_midi

    names = {n.lower(): i for i, n in enumerate(pretty_midi.constants.INSTRUMENT_MAP)}
    if key.lower() in names:
        return names[key.lower()]
    close = difflib.get_close_matches(key.lower(), list(dict.fromkeys([*names, *FAMILY_PROGRAMS])), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise ValueError(f"'{name}' is not a General MIDI instrument name or a family "
                     f"({', '.join(sorted(FAMILY_PROGRAMS))}){hint}")


# --------------------------------------------------------------------------- validation helpers

class _Ctx:
    """Builds error messages "<file>: <key path>: <problem>"."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> UserError:
        return UserError(f"{self.source}: {key}: {problem}")

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key or "<top>", f"expected a mapping, got {_show(value)}")
        for k in value:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), sorted(allowed), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise self.fail(_join(key, str(k)), f"unknown key (allowed: {', '.join(sorted(allowed))}){hint}")
        for k in sorted(required):
            if k not in value:
                raise self.fail(_join(key, k), "missing (required)")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"{_show(value)} is not allowed (expected a non-empty string)")
        return value.strip()

    def integer(self, value: Any, key: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"{_show(value)} is not an integer" + _range(lo, hi))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(key, f"{value} is out of range" + _range(lo, hi))
        return int(value)

    def number(self, value: Any, key: str, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"{_show(value)} is not a number" + _range(lo, hi))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(key, f"{value} is out of range" + _range(lo, hi))
        return float(value)


def _show(value: Any) -> str:
    """A config value as an error message shows it: scalars as written, lists and mappings by kind."""
    if isinstance(value, (dict, list)):
        kind = "list" if isinstance(value, list) else "mapping"
        return f"an empty {kind}" if not value else f"a {kind}"
    return repr(value)


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f" (allowed: {lo} to {hi})"
    if lo is not None:
        return f" (allowed: >= {lo})"
    return ""


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# --------------------------------------------------------------------------- parsing

_TOP_KEYS = {"title", "seed", "tempo", "time_signature", "sample_rate", "style", "humanize", "tracks", "sections",
             "weights"}
_TRACK_KEYS = {"name", "source", "instrument", "timbre_seed", "morph_seed", "volume_db", "pan"}
_SECTION_KEYS = {"name", "bars", "chords", "variation", "morph", "play", "rest", "style"}


def parse_config(data: Any, source: str = "<config>") -> SongConfig:
    """Validate a plain dict (as loaded from YAML) into a :class:`SongConfig`.

    Raises:
        UserError: "<source>: <key path>: <value> ... (allowed: ...)" for the first wrong value.
    """
    ctx = _Ctx(source)
    top = ctx.mapping(data, "", _TOP_KEYS, {"tracks", "sections"})
    title = ctx.string(top.get("title", "song"), "title")
    seed = ctx.integer(top.get("seed", 0), "seed", 0, 2**31 - 1)
    tempo = ctx.number(top.get("tempo", 120), "tempo", *TEMPO_RANGE)
    ts_raw = top.get("time_signature", "4/4")
    ts_text = f"{ts_raw[0]}/{ts_raw[1]}" if isinstance(ts_raw, (list, tuple)) and len(ts_raw) == 2 else str(ts_raw)
    if ts_text.replace(" ", "") not in SUPPORTED_TIME_SIGNATURES:
        raise ctx.fail("time_signature", f"{ts_raw!r} is not supported (allowed: {', '.join(SUPPORTED_TIME_SIGNATURES)}"
                                         f"; the composer writes 4/4 bars)")
    num, den = (int(x) for x in ts_text.replace(" ", "").split("/"))
    sample_rate = top.get("sample_rate")   # None: the renderer's own (the timbre model's rate)
    if sample_rate is not None:
        sample_rate = ctx.integer(sample_rate, "sample_rate")
    if sample_rate is not None and sample_rate not in SAMPLE_RATES:
        raise ctx.fail("sample_rate", f"{sample_rate} is not allowed (allowed: {', '.join(map(str, SAMPLE_RATES))})")
    style = _style(ctx, top.get("style"), "style")
    humanize = ctx.number(top.get("humanize", HUMANIZE), "humanize", 0.0, 1.0)

    raw_tracks = top["tracks"]
    if not isinstance(raw_tracks, list) or not raw_tracks:
        raise ctx.fail("tracks", f"{_show(raw_tracks)} is not allowed (expected a non-empty list of tracks)")
    tracks = []
    seen: set[str] = set()
    for i, t in enumerate(raw_tracks):
        key = f"tracks[{i}]"
        t = ctx.mapping(t, key, _TRACK_KEYS, {"name"})
        name = ctx.string(t["name"], f"{key}.name")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]*", name):
            raise ctx.fail(f"{key}.name", f"{name!r} is not allowed (ASCII letters, digits, space, '_', '-', '.'; "
                                          f"starting with a letter, digit or '_')")
        if len(name) > MAX_TRACK_NAME_CHARS:
            raise ctx.fail(f"{key}.name", f"{name[:20]!r}... is {len(name)} characters long (allowed: at most "
                                          f"{MAX_TRACK_NAME_CHARS}; it names the stem file)")
        if name.lower() in seen:
            raise ctx.fail(f"{key}.name", f"{name!r} is used by two tracks (track names must be unique)")
        seen.add(name.lower())
        src = ctx.string(t.get("source", name), f"{key}.source")
        instrument = t.get("instrument", "drums" if src.lower() == "drums" else "keyboard")
        if isinstance(instrument, int) and not isinstance(instrument, bool):   # a GM program number
            program = ctx.integer(instrument, f"{key}.instrument", 0, 127)
            import pretty_midi

            instrument = pretty_midi.program_to_instrument_name(program)
        else:
            instrument = ctx.string(instrument, f"{key}.instrument")
            try:
                program = resolve_instrument(instrument)
            except ValueError as exc:
                raise ctx.fail(f"{key}.instrument", str(exc)) from None
        # "drums" is also a family name (program 0); "kit", "percussion", ... resolve to program 128
        kit = instrument.strip().lower() == "drums" or program > 127
        if kit:
            program = FAMILY_PROGRAMS["drums"]
        if kit != (src.lower() == "drums"):
            raise ctx.fail(f"{key}.instrument", f"{instrument!r} is not allowed for source {src!r} " +
                           ("(the drum kit plays the drums track only)" if kit else
                            "(the drums track plays the drum kit: instrument: drums)"))
        timbre_seed = ctx.integer(t.get("timbre_seed", i), f"{key}.timbre_seed", 0, 2**31 - 1)
        morph_seed = ctx.integer(t.get("morph_seed", (timbre_seed + 1000) % 2**31), f"{key}.morph_seed", 0,
                                 2**31 - 1)
        volume = ctx.number(t.get("volume_db", 0.0), f"{key}.volume_db", *VOLUME_RANGE_DB)
        pan = t.get("pan")
        pan = None if pan is None else ctx.number(pan, f"{key}.pan", -1.0, 1.0)
        tracks.append(TrackConfig(name, src, program, instrument, timbre_seed, morph_seed, volume, pan))
    programs = list(dict.fromkeys(t.program for t in tracks if t.source.lower() != "drums"))
    if len(programs) > 15:   # song.mid gives each program a channel (symbolic.roll.midi_channels)
        raise ctx.fail("tracks", f"{len(programs)} instruments besides the drums is too many (allowed: at most 15 "
                                 f"different instruments, the channels of a MIDI file; tracks may share one)")

    raw_sections = top["sections"]
    if not isinstance(raw_sections, list) or not raw_sections:
        raise ctx.fail("sections", f"{_show(raw_sections)} is not allowed (expected a non-empty list of sections)")
    sections = []
    for i, s in enumerate(raw_sections):
        key = f"sections[{i}]"
        s = ctx.mapping(s, key, _SECTION_KEYS, {"name", "bars"})
        name = ctx.string(s["name"], f"{key}.name")
        bars = ctx.integer(s["bars"], f"{key}.bars", 1, MAX_BARS)
        chords = s.get("chords")
        if chords is not None:
            chords = _parse_chords(ctx, chords, f"{key}.chords", bars, num)
        variation = ctx.number(s.get("variation", 0.0), f"{key}.variation", 0.0, 1.0)
        morph = ctx.number(s.get("morph", 0.0), f"{key}.morph", 0.0, 1.0)
        names = [t.name for t in tracks]
        play, rest = (_track_names(ctx, s.get(k), f"{key}.{k}", names) for k in ("play", "rest"))
        both = sorted(set(play) & set(rest))
        if both:
            raise ctx.fail(f"{key}.rest", f"{both[0]!r} is also in play (a track either plays or rests)")
        sections.append(SectionConfig(name, bars, chords, variation, morph, play, rest,
                                      _style(ctx, s.get("style"), f"{key}.style")))
    total = sum(s.bars for s in sections)
    if total > MAX_BARS:
        raise ctx.fail("sections", f"{total} bars in all is too long (allowed: at most {MAX_BARS})")

    w = top.get("weights", {}) or {}
    w = ctx.mapping(w, "weights", set(DEFAULT_WEIGHTS))
    weights = WeightsConfig(**{k: ctx.string(w.get(k, DEFAULT_WEIGHTS[k]), f"weights.{k}") for k in DEFAULT_WEIGHTS},
                            given=tuple(k for k in DEFAULT_WEIGHTS if k in w))
    return SongConfig(title, seed, tempo, tuple(tracks), tuple(sections), (num, den), sample_rate, style, weights,
                      source, humanize)


def _style(ctx: _Ctx, value: Any, key: str) -> str | int | None:
    """A drums genre as a config gives it: a name or an index (checked against the drums model
    when the song is composed), or None."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
        raise ctx.fail(key, f"{_show(value)} is not allowed (expected a style name or index)")
    return value


def _track_names(ctx: _Ctx, value: Any, key: str, names: list[str]) -> tuple[str, ...]:
    """A list of the config's track names (case-insensitive), returned as they are spelt in ``tracks``."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ctx.fail(key, f"{_show(value)} is not allowed (expected a list of track names)")
    lower = [n.lower() for n in names]
    out = []
    for j, v in enumerate(value):
        if not isinstance(v, str) or v.lower() not in lower:
            raise ctx.fail(f"{key}[{j}]", f"{_show(v)} is not a track (allowed: {', '.join(names)})")
        out.append(names[lower.index(v.lower())])
    return tuple(dict.fromkeys(out))


def _parse_chords(ctx: _Ctx, chords: Any, key: str, bars: int, beats: int) -> tuple[str, ...]:
    if isinstance(chords, str):
        chords = chords.split()
    if not isinstance(chords, list) or not chords:
        raise ctx.fail(key, f"{_show(chords)} is not allowed (expected a non-empty list of chord symbols)")
    symbols = []
    for j, c in enumerate(chords):
        if not isinstance(c, str):
            raise ctx.fail(f"{key}[{j}]", f"{_show(c)} is not a chord symbol (e.g. 'C', 'Am', 'G7', 'F/A', 'N')")
        try:
            chord_pitch_classes(c)
        except ValueError as exc:
            raise ctx.fail(f"{key}[{j}]", f"{exc} (e.g. 'C', 'Am', 'G7', 'F/A', 'N')") from None
        symbols.append(c.strip())
    n = len(symbols)
    if n == bars * beats:
        per_beat = symbols
    elif bars % n == 0:  # one per bar, or a shorter cycle of bar chords
        per_bar = [symbols[b % n] for b in range(bars)]
        per_beat = [c for c in per_bar for _ in range(beats)]
    else:
        raise ctx.fail(key, f"{n} chords do not fit {bars} bars (allowed: one per bar ({bars}), one per beat "
                            f"({bars * beats}), or a cycle whose length divides {bars})")
    return tuple(per_beat)


def load_config(path: str | os.PathLike) -> SongConfig:
    """Read and validate a song config YAML file.

    Raises:
        UserError: the file is missing or not YAML, or a value is wrong (message names the key).
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the config ({exc})") from None
    try:
        data = yaml.load(text, Loader=_unique_keys_loader())
    except _DuplicateKey as exc:
        raise UserError(f"{path}: line {exc.line}: {exc.key!r} is given twice in the same mapping "
                        f"(YAML would keep only the last)") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"{path}: not valid YAML{at}") from None
    return parse_config(data, str(path))


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


def _unique_keys_loader():
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently). Keys merged in with ``<<: *anchor`` may still be overridden."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
            except TypeError:   # an unhashable key: SafeLoader's own error follows
                pass
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return UniqueKeyLoader


def resolve_weights_path(path: str, kind: str, key: str | None = None,
                         train: str = "musegansynth train", base: str | os.PathLike | None = None,
                         default: bool = False) -> Path:
    """The weights file of ``path``: absolute as is; relative to ``base`` (a song config's folder,
    when given), else to the working folder, else to the project. A ``default`` (the shipped
    weights, a path the user did not write) is the project's first, so that a ``data/pretrained``
    in the working folder does not stand in for them.

    A path without suffix gets ``.safetensors``. Raises UserError naming ``key`` (default the song
    config's ``weights.<kind>``; a command names its flag) when the file does not exist, and
    ``train``, the command that makes such weights.
    """
    key = f"weights.{kind}" if key is None else key
    p = Path(path).expanduser()
    if p.suffix == "" and not p.is_dir():
        p = p.with_suffix(".safetensors")
    if p.is_absolute():
        candidates = [p]
    elif default:
        candidates = [PROJECT_ROOT / p, p]
    else:
        candidates = ([Path(base) / p] if base is not None else []) + [p, PROJECT_ROOT / p]
    for c in candidates:
        if c.exists():
            return c.resolve()
    raise UserError(f"{key}: {path}: no such weights file (train one with `{train}`, "
                    f"or point {key} at a .safetensors file)")
