"""NSynth-format note datasets: build one with FluidSynth, and load NSynth's format (ours or real).

On disk (NSynth's layout)::

    <root>/nsynth-train/examples.json        {note_str: {NSynth fields...}, ...}
    <root>/nsynth-train/audio/<note_str>.wav 16 kHz mono 16-bit PCM, 4 s
    <root>/nsynth-valid/..., <root>/nsynth-test/...
    <root>/build.json                        how it was built (ours only)
    <root>/cache/notes-<split>-<hash>.npz    spectrogram caches (load_note_arrays)

Each example has NSynth's fields: ``note`` (int id), ``note_str``
("<instrument_str>-<pitch:03d>-<velocity:03d>"), ``instrument`` (int), ``instrument_str``
("<family>_<source>_<NNN>"), ``instrument_source`` (0 acoustic, 1 electronic, 2 synthetic) and
``instrument_source_str``, ``instrument_family`` (index in :data:`audio.families.FAMILIES`) and
``instrument_family_str``, ``pitch`` (MIDI), ``velocity`` (MIDI), ``sample_rate`` (Hz),
``qualities`` (10 zeros/ones) and ``qualities_str``. Our notes add ``gm_program`` (0-127, 128 =
drums); for ours ``instrument`` is also the GM program, and ``qualities`` are all 0 (not
annotated). For real NSynth data, which has no GM program, the loader uses the family's default
program (:func:`audio.families.family_default_program`).

Splits: NSynth splits by instrument. Here the conditional model must know every GM program it
will play, so notes are split instead: a note (program, pitch, velocity) goes to train / valid /
test by a hash of its note_str (90 / 5 / 5 %), the same note always to the same split whatever
else is built. Drums are the GM standard kit (preset 0 on channel 10) with pitch = GM
percussion key (35-81).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from audio.families import (DRUM_KEYS, DRUM_PROGRAM, FAMILIES, family_default_program, instrument_name_to_program,
                            program_to_family)
from pipeline.errors import UserError
from pipeline.fileio import atomic_path, atomic_write_text, read_json_object

SPLITS = ("train", "valid", "test")
#: Percent of notes in each split (by a hash of the note_str).
SPLIT_PERCENT = {"train": 90, "valid": 5, "test": 5}
#: NSynth's instrument sources and note qualities (names in NSynth's label order).
SOURCES = ["acoustic", "electronic", "synthetic"]
QUALITIES = ["bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
             "percussive", "reverb", "tempo-synced"]
#: Notes whose RMS (full scale = 1) is below this are silent (no sample at that pitch): -80 dBFS.
SILENT_RMS = 1e-4
#: GM programs recorded from electronic instruments (electric pianos, electric organs, guitars, basses).
_ELECTRONIC = {2, 4, 5, 7, 16, 17, 18, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36, 37}
#: GM programs that are synthesizers.
_SYNTHETIC = {38, 39, 50, 51, 54, 62, 63, 118, *range(80, 104)}

#: Programs per family in the order ``--per-family N`` takes them (the first two are the default).
FAMILY_PROGRAMS: dict[str, list[int]] = {
    "bass": [33, 38, 32, 34, 35, 39, 36, 37],
    "brass": [61, 56, 57, 60, 58, 62, 59, 63],
    "flute": [73, 75, 72, 74, 79, 77, 76, 78],
    "guitar": [25, 27, 24, 26, 29, 30, 28, 31],
    "keyboard": [0, 4, 1, 5, 2, 6, 7, 3],
    "mallet": [11, 12, 13, 9, 8, 14, 10, 15],
    "organ": [16, 19, 17, 18, 20, 21, 23],
    "reed": [65, 71, 66, 68, 70, 64, 67, 69],
    "string": [48, 40, 49, 42, 41, 44, 45, 50, 46, 43, 51],
    "synth_lead": [80, 81, 88, 89, 82, 83, 84, 85, 86, 87, 90, 91, 92, 93, 94, 95],
    "vocal": [52, 53, 54],
    "drums": [DRUM_PROGRAM],
}
DEFAULT_PER_FAMILY = 2
DEFAULT_PITCHES = "24-84"
DEFAULT_VELOCITIES = "50,90,127"


# ---------------------------------------------------------------------------------------------
# naming


def instrument_source(program: int) -> int:
    """NSynth source of a GM program: 0 acoustic, 1 electronic, 2 synthetic (drums: acoustic)."""
    if program in _SYNTHETIC:
        return 2
    if program in _ELECTRONIC:
        return 1
    return 0


def instrument_str(program: int) -> str:
    """NSynth-style instrument name of a GM program, e.g. 0 -> "keyboard_acoustic_000", 128 -> "drums_acoustic_128"."""
    family = program_to_family(program).family
    return f"{family}_{SOURCES[instrument_source(program)]}_{program:03d}"


def note_str(program: int, pitch: int, velocity: int) -> str:
    """NSynth note name "<instrument_str>-<pitch:03d>-<velocity:03d>"."""
    return f"{instrument_str(program)}-{pitch:03d}-{velocity:03d}"


def split_of(name: str) -> str:
    """Split of a note by a stable hash of its note_str: train / valid / test, 90 / 5 / 5 %."""
    bucket = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16) % 100
    edge = 0
    for split in SPLITS:
        edge += SPLIT_PERCENT[split]
        if bucket < edge:
            return split
    return SPLITS[-1]  # pragma: no cover


def example_record(program: int, pitch: int, velocity: int, sample_rate: int, note_id: int) -> dict[str, Any]:
    """The examples.json entry of one of our notes (NSynth's fields plus ``gm_program``)."""
    family = program_to_family(program).family
    source = instrument_source(program)
    return {
        "note": int(note_id),
        "note_str": note_str(program, pitch, velocity),
        "instrument": int(program),
        "instrument_str": instrument_str(program),
        "instrument_source": source,
        "instrument_source_str": SOURCES[source],
        "instrument_family": FAMILIES.index(family),
        "instrument_family_str": family,
        "pitch": int(pitch),
        "velocity": int(velocity),
        "sample_rate": int(sample_rate),
        "qualities": [0] * len(QUALITIES),
        "qualities_str": [],
        "gm_program": int(program),
    }


# ---------------------------------------------------------------------------------------------
# choosing notes


def _parse_int_list(text: str, key: str, lo: int, hi: int) -> list[int]:
    """Parse "24-84", "60,64,67" or "24-36,48" into a sorted list of unique ints in [lo, hi]."""
    values: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)|(\d+)", part)
        if match is None:
            raise UserError(f"{key} {text!r}: expected numbers like '24-84' or '50,90,127'")
        if match.group(1) and int(match.group(1)) > int(match.group(2)):
            raise UserError(f"{key} {text!r}: the range {part!r} runs backwards (write it low-high, e.g. "
                            f"'{match.group(2)}-{match.group(1)}')")
        if match.group(3):
            values.add(int(match.group(3)))
        else:
            values.update(range(int(match.group(1)), int(match.group(2)) + 1))
    if not values:
        raise UserError(f"{key} {text!r}: empty")
    bad = [v for v in values if not lo <= v <= hi]
    if bad:
        raise UserError(f"{key} {text!r}: values must be {lo}-{hi}, got {sorted(bad)[0]}")
    return sorted(values)


def choose_programs(programs: Sequence[str | int] | None = None, per_family: int | None = None,
                    full: bool = False, drums: bool = True) -> list[int]:
    """GM programs to render (128 = the drum kit), in a fixed order.

    Args:
        programs: instrument names or numbers (see :func:`audio.families.instrument_name_to_program`);
            overrides ``per_family``.
        per_family: the first N programs of each family in :data:`FAMILY_PROGRAMS`.
        full: all 128 GM programs (plus drums).
        drums: include the drum kit (for ``per_family`` and ``full``); False with the drum kit
            named in ``programs`` is a contradiction (UserError).

    Raises:
        UserError: an unknown instrument, an empty ``programs`` list (e.g. ``--programs ""``), or
            the drum kit named with ``drums=False``.
    """
    if programs is not None:
        chosen: list[int] = []
        for item in programs:
            for part in str(item).split(","):
                if part.strip():
                    program = instrument_name_to_program(part.strip())
                    if program not in chosen:
                        chosen.append(program)
        if not chosen:
            shown = " ".join(repr(str(p)) for p in programs) or "''"
            raise UserError(f"--programs {shown}: the program list is empty; name instruments like 'piano' or 33")
        if not drums and DRUM_PROGRAM in chosen:
            raise UserError("--programs names the drum kit but --no-drums leaves it out; give one or the other")
        return chosen
    if full:
        return list(range(128)) + ([DRUM_PROGRAM] if drums else [])
    n = DEFAULT_PER_FAMILY if per_family is None else int(per_family)
    if n < 1:
        raise UserError(f"--per-family {n}: must be at least 1")
    chosen = []
    for family in FAMILIES:
        if family == "drums":
            if drums:
                chosen.append(DRUM_PROGRAM)
            continue
        chosen.extend(FAMILY_PROGRAMS[family][:n])
    return chosen


@dataclass(frozen=True)
class PlannedNote:
    """One note of a build: its GM program (128 = drums), pitch, velocity, name and split."""

    program: int
    pitch: int
    velocity: int
    note_str: str
    split: str


def plan_notes(programs: Sequence[int], pitches: Sequence[int], velocities: Sequence[int],
               limit: int | None = None) -> list[PlannedNote]:
    """All (program, pitch, velocity) notes to build, in a fixed order.

    Drums (program 128) use the GM percussion keys 35-81 that are in ``pitches``. ``limit`` keeps
    that many notes spread evenly over the full list (so every program still appears).
    """
    notes = []
    for program in programs:
        keys = [p for p in pitches if p in DRUM_KEYS] if program == DRUM_PROGRAM else list(pitches)
        for pitch in keys:
            for velocity in velocities:
                name = note_str(program, pitch, velocity)
                notes.append(PlannedNote(program, pitch, velocity, name, split_of(name)))
    if limit is not None and limit < len(notes):
        if limit < 1:
            raise UserError(f"--limit {limit}: must be at least 1")
        idx = np.unique(np.linspace(0, len(notes) - 1, limit).round().astype(int))
        notes = [notes[i] for i in idx]
    return notes


# ---------------------------------------------------------------------------------------------
# building


def _write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def render_settings(soundfont: str | os.PathLike, sample_rate: int, hold_s: float, release_s: float) -> dict[str, Any]:
    """Everything that shapes a note's audio besides its (program, pitch, velocity): stored in build.json
    as ``render`` and compared on a rebuild (a wav is reused only when these match)."""
    from audio.fluid import NOTE_GAIN

    path = Path(soundfont).expanduser().resolve()
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    return {"soundfont": str(path), "soundfont_bytes": size, "sample_rate": int(sample_rate),
            "hold_s": float(hold_s), "release_s": float(release_s), "gain": float(NOTE_GAIN)}


def _whole_wav(path: Path, frames: int, sample_rate: int) -> bool:
    """Whether ``path`` is a note this build wrote whole (its length and rate): one cut short or
    damaged since is rendered again rather than reused."""
    if not path.is_file():
        return False
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:   # soundfile raises several kinds for a damaged file
        return False
    return int(info.frames) == int(frames) and int(info.samplerate) == int(sample_rate)


def _previous_settings(out: Path) -> dict[str, Any] | None:
    """The render settings of the wavs already in ``out`` (from its build.json), or None when it has none.

    A build.json from before ``render`` was stored gives its soundfont, sample rate, hold and release
    (compared alone). UserError when ``out`` holds split folders but no readable build.json of ours:
    such wavs (perhaps real NSynth) are neither reused nor overwritten.
    """
    path = out / "build.json"
    has_splits = any((out / f"nsynth-{split}").exists() for split in SPLITS)
    if not path.is_file():
        if has_splits:
            raise UserError(f"--out {out}: holds nsynth-* folders but no build.json, so it was not built by "
                            f"'musegansynth data notes'; choose an empty or new folder")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise UserError(f"{path}: unreadable build record; delete the folder {out} to rebuild it")
    if isinstance(data.get("render"), dict):
        return data["render"]
    return {k: data.get(k) for k in ("soundfont", "sample_rate", "hold_s", "release_s")}


def _same_settings(old: dict[str, Any], new: dict[str, Any]) -> bool:
    if set(old) - set(new):
        return False
    for key, value in old.items():
        if key == "soundfont":
            if value is None or Path(str(value)).expanduser().resolve() != Path(new[key]):
                return False
        elif value != new[key]:
            return False
    return True


def build_notes(out: str | os.PathLike, notes: Sequence[PlannedNote], soundfont: str | os.PathLike | None = None,
                hold_s: float = 3.0, release_s: float = 1.0, sample_rate: int = 16000, workers: int | None = None,
                progress: bool = True, chunk: int | None = None) -> dict[str, Any]:
    """Render ``notes`` into an NSynth-format folder ``out``.

    A rebuild keeps the wavs that exist when they were rendered with the same settings
    (:func:`render_settings`: SoundFont, sample rate, hold, release, gain) as this build; when the
    settings differ, every wav of the old build is deleted and all notes are rendered again. The
    settings are written to ``out/build.json`` before rendering starts, so an interrupted build
    resumes. Silent notes (RMS < :data:`SILENT_RMS`) are not written and not listed. Returns the
    summary that is also written to ``out/build.json``: counts per split, rendered / reused / silent
    counts, silent note names, bytes, seconds, and ``render`` (the settings).
    """
    from audio.fluid import NoteSpec, check_sample_rate, find_soundfont, render_notes

    t0 = time.perf_counter()
    out = Path(out)
    sample_rate = check_sample_rate(sample_rate, "sample_rate")
    sf_path = find_soundfont(soundfont)
    workers = max(1, int(workers or os.cpu_count() or 1))
    settings = render_settings(sf_path, sample_rate, hold_s, release_s)
    previous = _previous_settings(out)
    if previous is None or not _same_settings(previous, settings):
        # wavs made with other settings: remove them all (planned or not), so none is reused later,
        # and the spectrograms cached from them (their key sees file names and sizes, not the audio)
        for split in SPLITS:
            for old in (out / f"nsynth-{split}" / "audio").glob("*.wav"):
                old.unlink()
        shutil.rmtree(out / "cache", ignore_errors=True)
        atomic_write_text(out / "build.json", json.dumps({"render": settings, "complete": False}, indent=1) + "\n")
    wav_of = {n.note_str: out / f"nsynth-{n.split}" / "audio" / f"{n.note_str}.wav" for n in notes}
    length = NoteSpec(program=0, pitch=60, velocity=100, hold_s=hold_s, release_s=release_s).n_samples(sample_rate)
    todo = [n for n in notes if not _whole_wav(wav_of[n.note_str], length, sample_rate)]
    silent: list[str] = []
    peak = 0.0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(notes), initial=len(notes) - len(todo), unit="note", desc="rendering notes")
    step = chunk or 256

    def render_and_write(part: list[PlannedNote]) -> tuple[list[str], float]:
        """Render one batch in one fluidsynth run and write its wavs (runs in a worker thread)."""
        specs = [NoteSpec(program=0 if n.program == DRUM_PROGRAM else n.program, pitch=n.pitch,
                          velocity=n.velocity, hold_s=hold_s, release_s=release_s,
                          is_drum=n.program == DRUM_PROGRAM) for n in part]
        waves = render_notes(specs, sample_rate=sample_rate, soundfont=sf_path, workers=1)
        quiet, loudest = [], 0.0
        for n, wave in zip(part, waves):
            if float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) < SILENT_RMS:
                quiet.append(n.note_str)
                continue
            loudest = max(loudest, float(np.abs(wave).max()))
            _write_wav(wav_of[n.note_str], wave, sample_rate)
        return quiet, loudest

    try:
        # fluidsynth runs in its own processes and soundfile releases the GIL: threads overlap
        # rendering and writing.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = [todo[i:i + step] for i in range(0, len(todo), step)]
            futures = {pool.submit(render_and_write, part): len(part) for part in parts}
            for fut in as_completed(futures):
                quiet, loudest = fut.result()
                silent.extend(quiet)
                peak = max(peak, loudest)
                if bar is not None:
                    bar.update(futures[fut])
    finally:
        if bar is not None:
            bar.close()

    counts: dict[str, int] = {}
    total_bytes = 0
    note_ids = {n.note_str: i for i, n in enumerate(sorted(notes, key=lambda n: n.note_str))}
    for split in SPLITS:
        examples = {}
        for n in notes:
            if n.split != split or not wav_of[n.note_str].is_file():
                continue
            examples[n.note_str] = example_record(n.program, n.pitch, n.velocity, sample_rate, note_ids[n.note_str])
            total_bytes += wav_of[n.note_str].stat().st_size
        counts[split] = len(examples)
        if examples or (out / f"nsynth-{split}").is_dir():
            atomic_write_text(out / f"nsynth-{split}" / "examples.json",
                              json.dumps(dict(sorted(examples.items())), indent=1) + "\n")
    seconds = time.perf_counter() - t0
    summary = {
        "render": settings,
        "soundfont": str(sf_path),
        "sample_rate": sample_rate,
        "hold_s": hold_s,
        "release_s": release_s,
        "programs": sorted({n.program for n in notes}),
        "planned": len(notes),
        "rendered": len(todo),
        "reused": len(notes) - len(todo),
        "silent": len(silent),
        "silent_notes": sorted(silent),
        "peak_rendered": round(peak, 4),
        "counts": counts,
        "bytes": total_bytes,
        "seconds": round(seconds, 2),
    }
    atomic_write_text(out / "build.json", json.dumps(summary, indent=1) + "\n")
    return summary


def default_out(soundfont: Path) -> Path:
    """Default build folder: ``data/build/notes/fluidr3`` for FluidR3_GM, else ``data/build/notes/<sf2 stem>``."""
    stem = soundfont.stem.lower()
    return Path("data/build/notes") / ("fluidr3" if stem == "fluidr3_gm" else stem)


def cli_main(argv: list[str]) -> int:
    """``musegansynth data notes``: render an NSynth-format note set with FluidSynth."""
    parser = argparse.ArgumentParser(
        prog=argv[0] if argv else "musegansynth data notes",
        description="Render an NSynth-format note dataset (examples.json + 16-bit wavs, train/valid/test) "
                    "with FluidSynth. Notes are split 90/5/5 by a hash of their name; silent notes are skipped; "
                    "a rebuild keeps wavs that exist.")
    parser.add_argument("--soundfont", default=None, help="fluidr3_gm (default), timgm6mb, or a path to an .sf2")
    parser.add_argument("--out", default=None, help="output folder (default: data/build/notes/fluidr3 for FluidR3_GM, else data/build/notes/<sf2 name>)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--programs", nargs="+", default=None, metavar="NAME",
                       help="GM instruments by name or number ('piano', 'Trumpet', 33, 'drums'), space or comma separated")
    which.add_argument("--per-family", type=int, default=None, metavar="N",
                       help=f"the first N programs of each family (default {DEFAULT_PER_FAMILY}) plus the drum kit")
    which.add_argument("--full", action="store_true", help="all 128 GM programs plus the drum kit")
    parser.add_argument("--no-drums", action="store_true", help="leave out the drum kit")
    parser.add_argument("--pitches", default=DEFAULT_PITCHES, help=f"MIDI pitches (default {DEFAULT_PITCHES})")
    parser.add_argument("--velocities", default=DEFAULT_VELOCITIES,
                        help=f"MIDI velocities (default {DEFAULT_VELOCITIES})")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds held before note-off (default 3)")
    parser.add_argument("--release", type=float, default=1.0, help="seconds kept after note-off (default 1)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel fluidsynth processes, at least 1 (default: the number of CPUs)")
    parser.add_argument("--limit", type=int, default=None, help="build only N notes, spread over all programs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv[1:])

    if not (args.hold > 0 and args.release >= 0 and args.hold + args.release <= 60):
        raise UserError(f"--hold {args.hold} --release {args.release}: need hold > 0, release >= 0, total <= 60 s")
    from audio.fluid import check_sample_rate

    check_sample_rate(args.sample_rate, "--sample-rate")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1 (leave it out for one per CPU)")
    pitches = _parse_int_list(args.pitches, "--pitches", 0, 127)
    velocities = _parse_int_list(args.velocities, "--velocities", 1, 127)
    programs = choose_programs(args.programs, args.per_family, args.full, drums=not args.no_drums)
    notes = plan_notes(programs, pitches, velocities, limit=args.limit)
    if not notes:
        raise UserError("no notes to render: the drum kit needs pitches in 35-81")
    from audio.fluid import check_soundfont, find_soundfont

    sf_path = check_soundfont(find_soundfont(args.soundfont))
    out = Path(args.out) if args.out else default_out(sf_path)
    summary = build_notes(out, notes, soundfont=sf_path, hold_s=args.hold, release_s=args.release,
                          sample_rate=args.sample_rate, workers=args.workers, progress=not args.quiet)
    c = summary["counts"]
    rate = summary["rendered"] / summary["seconds"] if summary["seconds"] > 0 else 0.0
    print(f"notes: {sum(c.values())} in {out} (train {c['train']}, valid {c['valid']}, test {c['test']}); "
          f"{len(summary['programs'])} programs; rendered {summary['rendered']}, reused {summary['reused']}, "
          f"silent {summary['silent']} skipped; {summary['bytes'] / 1e6:.1f} MB; "
          f"{summary['seconds']:.1f} s ({rate:.0f} notes/s)")
    return 0


# ---------------------------------------------------------------------------------------------
# loading


_REQUIRED = ("note_str", "pitch", "velocity", "instrument_family", "sample_rate")


class NoteSet:
    """One split of an NSynth-format note set (ours or the real NSynth), sorted by note_str.

    Args:
        root: the dataset folder holding ``nsynth-<split>/``, or a split folder itself (holding
            ``examples.json`` and ``audio/``).
        split: "train", "valid" or "test".

    Attributes:
        folder: the split folder. examples: the examples.json entries, sorted by note_str.
        note_strs: list of names. pitch, velocity, program, family: int64 arrays [N]
        (program: GM program, 128 = drums; for NSynth data the family's default program;
        family: index into :data:`audio.families.FAMILIES`). sample_rate: Hz.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        if split not in SPLITS:
            raise UserError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
        root = Path(root)
        folder = root if (root / "examples.json").is_file() else root / f"nsynth-{split}"
        path = folder / "examples.json"
        if not path.is_file():
            built = [s for s in SPLITS if (root / f"nsynth-{s}" / "examples.json").is_file()]
            if built:   # a note set too small to give this split any note
                raise UserError(f"{root}: no {split} notes (the set has {', '.join(built)} only: build it with "
                                f"more notes, or choose a split it has)")
            raise UserError(f"{path}: not found; build notes with 'musegansynth data notes --out {root}' "
                            f"or point at an NSynth folder")
        data = read_json_object(path)
        self.folder = folder
        self.split = split
        self.examples: list[dict[str, Any]] = []
        for key in sorted(data):
            ex = data[key]
            if not isinstance(ex, dict):
                raise UserError(f"{path}: {key}: expected an object")
            for field in _REQUIRED:
                if field not in ex:
                    raise UserError(f"{path}: {key}: missing field '{field}'")
            family = ex["instrument_family"]
            if not (isinstance(family, int) and 0 <= family < len(FAMILIES)):
                raise UserError(f"{path}: {key}: instrument_family {family!r} is not 0-{len(FAMILIES) - 1}")
            if "instrument_family_str" in ex and ex["instrument_family_str"] != FAMILIES[family]:
                raise UserError(f"{path}: {key}: instrument_family {family} is '{FAMILIES[family]}', "
                                f"not {ex['instrument_family_str']!r}")
            self.examples.append(ex)
        rates = {int(ex["sample_rate"]) for ex in self.examples}
        if len(rates) > 1:
            raise UserError(f"{path}: mixed sample rates {sorted(rates)}")
        self.sample_rate = rates.pop() if rates else 16000
        self.note_strs = [str(ex["note_str"]) for ex in self.examples]
        self.pitch = np.array([int(ex["pitch"]) for ex in self.examples], dtype=np.int64)
        self.velocity = np.array([int(ex["velocity"]) for ex in self.examples], dtype=np.int64)
        self.family = np.array([int(ex["instrument_family"]) for ex in self.examples], dtype=np.int64)
        self.program = np.array([int(ex["gm_program"]) if "gm_program" in ex
                                 else family_default_program(FAMILIES[int(ex["instrument_family"])])
                                 for ex in self.examples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.examples)

    def wav_path(self, i: int) -> Path:
        """Path of note ``i``'s wav: ``<folder>/audio/<note_str>.wav``."""
        return self.folder / "audio" / f"{self.note_strs[i]}.wav"

    def load_wave(self, i: int, clip_samples: int | None = None) -> np.ndarray:
        """Note ``i`` as float32 [clip_samples] (cut or zero-padded; whole file when None), in [-1, 1]."""
        import soundfile as sf

        path = self.wav_path(i)
        try:
            with sf.SoundFile(str(path)) as f:
                if f.samplerate != self.sample_rate:
                    raise UserError(f"{path}: {f.samplerate} Hz, examples.json says {self.sample_rate} Hz")
                wave = f.read(frames=-1 if clip_samples is None else clip_samples, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise UserError(f"{path}: cannot read audio ({exc})") from None
        wave = wave.mean(axis=1) if wave.shape[1] > 1 else wave[:, 0]
        if clip_samples is not None and len(wave) < clip_samples:
            wave = np.pad(wave, (0, clip_samples - len(wave)))
        return np.ascontiguousarray(wave, dtype=np.float32)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Note ``i``: its labels and ``wave`` float32 [samples]."""
        return {"note_str": self.note_strs[i], "pitch": int(self.pitch[i]), "velocity": int(self.velocity[i]),
                "program": int(self.program[i]), "family": int(self.family[i]), "wave": self.load_wave(i)}


def _read_waves(notes: NoteSet, idx: Sequence[int], clip_samples: int, workers: int = 4) -> np.ndarray:
    """float32 [len(idx), clip_samples], read in parallel threads (libsndfile releases the GIL)."""
    out = np.zeros((len(idx), clip_samples), dtype=np.float32)

    def read(j: int) -> None:
        out[j] = notes.load_wave(idx[j], clip_samples)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(read, range(len(idx))))
    return out


def _labels(notes: NoteSet) -> dict[str, Any]:
    return {"pitch": notes.pitch.copy(), "velocity": notes.velocity.copy(), "program": notes.program.copy(),
            "family": notes.family.copy(), "note_str": list(notes.note_strs)}


def load_note_waves(root: str | os.PathLike, split: str, clip_samples: int) -> dict[str, Any]:
    """All notes of a split as waveforms, for evaluation.

    Returns:
        dict with ``wave`` float32 [N, clip_samples] (cut or zero-padded), int64 [N] ``pitch``,
        ``velocity``, ``program`` (128 = drums), ``family`` (index into FAMILIES), ``note_str``
        list, ``sample_rate`` int.
    """
    notes = NoteSet(root, split)
    if clip_samples < 1:
        raise UserError(f"clip_samples {clip_samples}: must be positive")
    data = _labels(notes)
    data["wave"] = _read_waves(notes, range(len(notes)), int(clip_samples))
    data["sample_rate"] = notes.sample_rate
    return data


def _cache_key(notes: NoteSet, split: str, spec_config: Any, clip_samples: int) -> str:
    files = []
    for i in range(len(notes)):
        path = notes.wav_path(i)
        try:
            size = path.stat().st_size
        except OSError:
            raise UserError(f"{path}: listed in examples.json but missing") from None
        files.append((notes.note_strs[i], size, int(notes.program[i]), int(notes.pitch[i]),
                      int(notes.velocity[i]), int(notes.family[i])))
    cfg = spec_config.to_dict() if hasattr(spec_config, "to_dict") else dict(vars(spec_config))
    blob = json.dumps({"version": 1, "split": split, "spec": cfg, "clip_samples": int(clip_samples),
                       "files": files}, sort_keys=True)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def load_note_arrays(root: str | os.PathLike, split: str, spec_config: Any, clip_samples: int, cache: bool = True,
                     batch_size: int = 256, progress: bool = False) -> dict[str, Any]:
    """A split as spectrograms for training, cached under ``<root>/cache/``.

    Args:
        root: dataset folder (see :class:`NoteSet`).
        split: "train", "valid" or "test".
        spec_config: an ``audio.spectral.SpecConfig``; its sample_rate must match the audio.
        clip_samples: samples of each note kept (cut or zero-padded) before the STFT.
        cache: read / write ``<root>/cache/notes-<split>-<hash>.npz``; the hash covers the split,
            the spec config, clip_samples and the file list (names, sizes, labels).
        batch_size: notes per STFT batch.
    Returns:
        dict with ``spec`` float16 [N, 2, frames, bins] (log magnitude, IF; frames =
        1 + clip_samples // hop), int64 [N] ``pitch``, ``velocity``, ``program`` (GM, 128 = drums),
        ``family`` (index into FAMILIES), and ``note_str`` list of N names.
    """
    import torch

    from audio.spectral import SpecTransform

    notes = NoteSet(root, split)
    if clip_samples < 1:
        raise UserError(f"clip_samples {clip_samples}: must be positive")
    if int(spec_config.sample_rate) != notes.sample_rate and len(notes):
        raise UserError(f"{notes.folder}: audio is {notes.sample_rate} Hz but the spectrogram config "
                        f"expects {spec_config.sample_rate} Hz")
    cache_root = Path(root) if (Path(root) / f"nsynth-{split}").is_dir() else notes.folder
    cache_path = cache_root / "cache" / f"notes-{split}-{_cache_key(notes, split, spec_config, clip_samples)}.npz"
    if cache and cache_path.is_file():
        try:
            with np.load(cache_path, allow_pickle=False) as z:
                data = {k: z[k] for k in ("spec", "pitch", "velocity", "program", "family")}
                data["note_str"] = [str(s) for s in z["note_str"]]
            if len(data["note_str"]) == len(notes):
                return data
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache: rebuild it
    transform = SpecTransform(spec_config)
    frames = spec_config.frames_for(clip_samples) if hasattr(spec_config, "frames_for") else None
    n = len(notes)
    spec = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="note", desc=f"spectrograms ({split})")
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            waves = _read_waves(notes, idx, int(clip_samples))
            s = transform.wave_to_spec(torch.from_numpy(waves)).numpy().astype(np.float16)
            if spec is None:
                spec = np.empty((n, *s.shape[1:]), dtype=np.float16)
            spec[start:start + len(idx)] = s
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    if spec is None:
        frames = frames if frames is not None else 1
        spec = np.zeros((0, 2, frames, transform.bins), dtype=np.float16)
    data = _labels(notes)
    data["spec"] = spec
    if cache:
        with atomic_path(cache_path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, spec=spec, pitch=data["pitch"], velocity=data["velocity"], program=data["program"],
                         family=data["family"], note_str=np.array(data["note_str"], dtype=str))
    return data
