"""``musegansynth render``: voice any MIDI file with the timbre model (or FluidSynth) into a WAV.

Every instrument of the MIDI becomes a stem rendered by :class:`audio.render.NoteRenderer`
(its own timbre latent, seeded by its index), mixed and mastered by :mod:`audio.mix`. GM
programs the timbre model does not know map to the nearest it does (same family first), with one
warning line on stderr per program.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.errors import UserError, check_seed

DEFAULT_AUDIO_WEIGHTS = "data/pretrained/audio_default.safetensors"


def known_programs(timbre) -> list[int] | None:
    """Programs 0-127 the timbre model was trained on (``timbre.programs``), or None if it does not say."""
    progs = getattr(timbre, "programs", None)
    if not progs:
        return None
    return sorted({int(p) for p in progs if 0 <= int(p) <= 127})


def nearest_program(program: int, known: list[int]) -> int:
    """The known program nearest to ``program``: same family first (``audio.families``), then by number."""
    from audio.families import program_to_family

    if program in known or not known:
        return program
    fam = program_to_family(program).family
    same = [p for p in known if program_to_family(p).family == fam]
    pool = same or known
    return min(pool, key=lambda p: (abs(p - program), p))


def program_mapper(timbre, warn: bool = True) -> Callable[[int, bool], int]:
    """``f(program, is_drum) -> program`` for the timbre model, warning once per remapped program.

    A warning (one line on stderr) is printed when a program is replaced by another, or when
    its family is only the nearest one (``audio.families.program_to_family(...).exact`` False).
    """
    from audio.families import program_name, program_to_family

    known = known_programs(timbre)
    warned: set[int] = set()

    def mapper(program: int, is_drum: bool = False) -> int:
        if is_drum:
            return program
        target = nearest_program(int(program), known) if known is not None else int(program)
        if warn and program not in warned:
            if target != program:
                warned.add(program)
                print(f"musegansynth: warning: program {program} ({program_name(program)}) is unknown to the timbre "
                      f"model; playing it as {target} ({program_name(target)})", file=sys.stderr)
            elif not program_to_family(program).exact:
                warned.add(program)
                fam = program_to_family(program).family
                print(f"musegansynth: warning: program {program} ({program_name(program)}) has no matching "
                      f"instrument family; the timbre model plays it as {fam}", file=sys.stderr)
        return target

    return mapper


def unplayed_by_the_timbre_model(pm, timbre=None) -> list[str]:
    """What of a PrettyMIDI the timbre model does not play (it voices each note alone, on its
    pitch): pitch bends, the sustain pedal (CC 64) and the part of a note past
    ``audio.render.MAX_NOTE_S``; with ``timbre`` (the model), also the pitched notes outside the
    pitches it learnt (played at their pitch by resampling notes it plays whole octaves away, which
    moves their timbre too; octaves down above :func:`audio.render.highest_pitch`) and the drum
    hits on keys it did not learn (left out); one phrase each, empty when there is none."""
    from audio.render import MAX_NOTE_S, highest_pitch, playable

    bends = sum(1 for inst in pm.instruments for b in inst.pitch_bends if b.pitch != 0)
    pedal = sum(1 for inst in pm.instruments for c in inst.control_changes if c.number == 64 and c.value >= 64)
    long = sum(1 for inst in pm.instruments if not inst.is_drum for n in inst.notes if n.end - n.start > MAX_NOTE_S)
    def count(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"

    out = []
    if bends:
        out.append(count(bends, "pitch bend", "pitch bends"))
    if pedal:
        out.append(f"the sustain pedal ({count(pedal, 'press', 'presses')})")
    if long:
        out.append(f"{count(long, 'note', 'notes')} past {MAX_NOTE_S:g} s (cut there)")
    pr, keys = playable(timbre) if timbre is not None else (None, None)
    top = highest_pitch(int(timbre.sample_rate)) if timbre is not None else 127
    above = sum(1 for inst in pm.instruments if not inst.is_drum for n in inst.notes if n.pitch > top)
    if pr is not None:
        outside = sum(1 for inst in pm.instruments if not inst.is_drum for n in inst.notes
                      if not pr[0] <= n.pitch <= pr[1] and n.pitch <= top)
        if outside:
            out.append(f"{count(outside, 'note', 'notes')} outside MIDI {pr[0]}-{pr[1]} (resampled from octaves "
                       f"it learnt: their timbre moves too)")
    if above:
        out.append(f"{count(above, 'note', 'notes')} above MIDI {top}, more than its {timbre.sample_rate} Hz "
                   f"can hold (played octaves down)")
    if keys:
        unknown = sum(1 for inst in pm.instruments if inst.is_drum for n in inst.notes if n.pitch not in keys)
        if unknown:
            out.append(f"{count(unknown, 'drum hit', 'drum hits')} on keys it did not learn (left out)")
    return out


def say_unplayed(pm, timbre, hint: str) -> None:
    """One note on stderr naming what of ``pm`` the timbre model does not play as written
    (:func:`unplayed_by_the_timbre_model`), with ``hint``; nothing when it plays it all."""
    unplayed = unplayed_by_the_timbre_model(pm, timbre)
    if unplayed:
        print(f"musegansynth: note: the timbre model does not play as written: {', '.join(unplayed)} ({hint})",
              file=sys.stderr)


def render_midi_neural(pm, timbre, *, device: str = "cpu", seed: int = 0, progress: bool = False,
                       source: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Render a PrettyMIDI with the timbre model: (stem names, float32 stems [instruments, samples]).
    What the model does not play (:func:`unplayed_by_the_timbre_model`) is named in a note on stderr;
    errors name ``source`` (the file ``pm`` was read from) when given."""
    where = f"{source}: " if source is not None else ""
    from audio.render import NoteRenderer, notes_from_midi, timbre_latent

    say_unplayed(pm, timbre, "render --renderer fluidsynth plays them as a General MIDI synthesizer does")
    names, notes = notes_from_midi(pm, program_of=program_mapper(timbre))
    if not notes:
        raise UserError(f"{where}the MIDI file has no notes")
    timbres = torch.stack([timbre_latent(seed * 1000 + i, timbre.latent_dim) for i in range(max(1, len(names)))])
    renderer = NoteRenderer(timbre, device=device, progress=progress)
    if not any(renderer.plays(n) for n in notes):
        raise UserError(f"{where}nothing to play: the MIDI file's notes are all drum hits on keys the timbre model "
                        f"did not learn (a GM kit leaves keys outside 35-81 silent too)")
    return names, renderer.render(notes, timbres, n_stems=len(names), end_s=pm.get_end_time())


def load_timbre(weights: str | None, device: str, key: str = "--audio-weights"):
    """The timbre model from ``weights`` (default: the shipped one); UserError naming ``key`` when missing."""
    from pipeline.config import resolve_weights_path

    try:
        from audio.generate import TimbreGenerator
    except ModuleNotFoundError as exc:
        raise UserError(f"the timbre model is not available ({exc})") from None
    path = resolve_weights_path(weights or DEFAULT_AUDIO_WEIGHTS, "audio", key, default=weights is None)
    return TimbreGenerator.load(path, device=device, autocast=device == "cuda")


def render_file(midi_path: str | Path, wav_path: str | Path, *, renderer: str = "neural", device: str = "cpu",
                timbre=None, weights: str | None = None, seed: int = 0, sample_rate: int | None = None) -> Path:
    """Render a MIDI file into a mastered WAV, or FLAC when ``wav_path`` ends in .flac (atomically;
    nothing written on error). UserError when ``wav_path`` ends in anything but .wav / .flac.

    ``sample_rate``: FluidSynth renders at any rate (default 44,100 Hz); the timbre model only at
    its own, so with ``neural`` any other rate is a UserError."""
    from audio.mix import master, mix_stems, write_wav
    from symbolic.roll import meta_elsewhere_note, read_midi

    midi_path, wav_path = Path(midi_path), Path(wav_path)
    check_audio_out(wav_path)
    if wav_path.exists() and midi_path.exists() and wav_path.resolve() == midi_path.resolve():
        raise UserError(f"--out {wav_path}: is the MIDI file itself; name another file")
    flac = wav_path.suffix.lower() == ".flac"  # the format the name says
    pm = read_midi(midi_path)  # UserError naming the file when unreadable
    meta_elsewhere_note(pm, midi_path)
    if not any(inst.notes for inst in pm.instruments):
        raise UserError(f"{midi_path}: the MIDI file has no notes")
    check_length(pm, midi_path, "render")
    if renderer == "fluidsynth":   # mastered like the neural path (and generate's FluidSynth songs)
        from audio.fluid import render_midi_audio

        rate = FLUID_RATE if sample_rate is None else sample_rate
        write_wav(wav_path, master(render_midi_audio(midi_path, sample_rate=rate), rate), rate, flac=flac)
        return wav_path
    if renderer != "neural":
        raise UserError(f"--renderer {renderer!r}: not allowed (allowed: neural, fluidsynth)")
    if timbre is None:
        timbre = load_timbre(weights, device, "--weights")
    sr = int(timbre.sample_rate)
    if sample_rate is not None and sample_rate != sr:
        raise UserError(f"--sample-rate {sample_rate}: the timbre model renders at {sr} Hz only "
                        f"(allowed: {sr}; --renderer fluidsynth renders at any rate)")
    _, stems = render_midi_neural(pm, timbre, device=device, seed=seed, progress=sys.stderr.isatty(),
                                  source=midi_path)
    write_wav(wav_path, master(mix_stems(stems), sr), sr, flac=flac)
    return wav_path


#: The longest file ``render`` voices (s): a stray note hours after the rest would need tens of GB.
MAX_RENDER_S = 90 * 60.0

#: FluidSynth's output rate when none is asked for.
FLUID_RATE = 44100

#: File name endings ``render`` writes (the format follows the ending).
AUDIO_SUFFIXES = (".wav", ".flac")


def check_length(pm, source: str | Path, command: str) -> None:
    """UserError when the MIDI file lasts longer than :data:`MAX_RENDER_S` (a stray note hours
    after the rest would need tens of GB)."""
    end = pm.get_end_time()
    if end > MAX_RENDER_S:
        raise UserError(f"{source}: lasts {end / 3600:.1f} hours; {command} takes files of up to "
                        f"{MAX_RENDER_S / 60:.0f} minutes")


def check_audio_out(path: str | Path) -> Path:
    """``path`` as a Path when it ends in .wav or .flac (any case); UserError naming it otherwise, so
    that no file gets data of another format than its name says."""
    path = Path(path)
    if path.name.lower() in AUDIO_SUFFIXES:   # ".wav": a hidden file without a suffix to pathlib
        raise UserError(f"--out {path}: give the file a name before {path.name}")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise UserError(f"--out {path}: unsupported audio file type {path.suffix or '(none)'!r}: "
                        f"name it *.wav or *.flac")
    return path


def build_parser(prog: str) -> argparse.ArgumentParser:
    from audio.fluid import SAMPLE_RATE_RANGE

    p = argparse.ArgumentParser(prog=prog, description="Voice a MIDI file with the timbre model (or FluidSynth).")
    p.add_argument("midi", help="the MIDI file")
    p.add_argument("--out", default=None, help="output .wav or .flac (default: the MIDI's name with .wav)")
    p.add_argument("--renderer", choices=("neural", "fluidsynth"), default="neural")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--weights", default=None, help=f"timbre model weights (default {DEFAULT_AUDIO_WEIGHTS})")
    p.add_argument("--seed", type=int, default=None, help="seed of the instruments' timbre latents (default 0)")
    p.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help=f"output rate: FluidSynth renders at any rate from {SAMPLE_RATE_RANGE[0]} to {SAMPLE_RATE_RANGE[1]} "
                        f"(default {FLUID_RATE}); the timbre model at its own only (the default)")
    return p


def cli_main(argv: list[str]) -> int:
    """``musegansynth render MIDI [--out WAV] [--renderer neural|fluidsynth] [--device D] [--weights PATH]
    [--seed N] [--sample-rate HZ]``."""
    from pipeline.generate import resolve_device

    args = build_parser(argv[0]).parse_args(argv[1:])
    midi = Path(args.midi)
    if args.out == "":
        raise UserError("--out '': an empty path is not a file name")
    out = Path(args.out) if args.out is not None else midi.with_suffix(".wav")
    if args.renderer == "fluidsynth":   # options of the timbre model only: refused by name, as explain-phase does
        for flag, value in (("--weights", args.weights), ("--seed", args.seed)):
            if value is not None:
                raise UserError(f"{flag} is for the timbre model; it has no effect with --renderer fluidsynth")
    seed = 0 if args.seed is None else args.seed
    check_seed(seed)
    check_audio_out(out)
    if args.sample_rate is not None and args.renderer == "fluidsynth":   # the neural renderer checks its own rate
        from audio.fluid import check_sample_rate

        check_sample_rate(args.sample_rate)
    device = resolve_device(args.device)
    from symbolic.roll import read_midi

    read_midi(midi)  # fail on an unreadable MIDI before loading any model
    render_file(midi, out, renderer=args.renderer, device=device, weights=args.weights, seed=seed,
                sample_rate=args.sample_rate)
    print(out)
    return 0
