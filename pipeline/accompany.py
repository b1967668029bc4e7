"""``musegansynth accompany``: given one track of a MIDI file, the composer writes the others.

The MIDI track named by ``--track`` (a name, or ``#N`` for the N-th track: the way to pick one
without a name) is taken alone, directly (no name or program rule that could also take other
tracks), quantised onto the composer's grid (``symbolic.roll``) and given to
``Composer.accompany`` (which cuts it into phrases) as the composer track ``--as`` (default:
the composer's first track, "melody" for the shipped POP909 model). The composer is the
accompanist (``data/pretrained/symbolic_pop909_accompany.*``, trained on in accompaniment mode)
unless ``--weights`` names another; it composes in its home key whatever the track's key
(``Composer.home_offset``). Under the track go the chords of ``--chords``: by default (``auto``)
estimated from the track's own notes (``symbolic.chords.estimate_chords``), or given as symbols,
or none. The result keeps the given notes as played (``--given-timing grid``: as quantised; also
those outside the composer's pitch range) and adds the composer's other tracks, on the input's own
time line: its tempo changes,
time signatures and resolution (:func:`song_midi`). The composer writes 4/4 bars: a file in another
meter is refused, and a shorter first bar (a pickup, e.g. 1/4 then 4/4) is the end of bar 0
(:func:`bar_origin`). The composed tracks are played with the card's velocities and timing
(:mod:`symbolic.velocity`); the given track as played, or quantised with ``--given-timing grid``.
``--drums STYLE`` adds the drum composer's track (``--drums-weights``) in that genre, from the
same seed. ``song.mid`` (and ``song.wav``
with the neural renderer unless ``--renderer none``) are written into DIR through a staging
folder: all or nothing.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from pipeline.errors import UserError
from pipeline.fileio import check_out_dir, staged_dir

DEFAULT_SYMBOLIC_WEIGHTS = "data/pretrained/symbolic_pop909.safetensors"
#: The composer trained on in accompaniment mode (data/pretrained/README.md): the default here
#: when it is there, else the composer itself.
DEFAULT_ACCOMPANY_WEIGHTS = "data/pretrained/symbolic_pop909_accompany.safetensors"
#: The drums composer ``--drums`` uses unless ``--drums-weights`` names another.
DEFAULT_DRUMS_WEIGHTS = "data/pretrained/symbolic_drums.safetensors"


#: What ``accompany`` writes into its folder: an earlier run's that this one does not write go
#: (``song.wav`` of a run with audio when this one has ``--renderer none``).
ACCOMPANY_OUTPUTS = ("song.mid", "song.wav")


def _describe(i: int, inst) -> str:
    """How an instrument is listed in messages: its name, or ``#i (no name, program P)``."""
    name = (inst.name or "").strip()
    if name:
        return repr(name)
    return f"#{i} (no name, {'drums' if inst.is_drum else f'program {int(inst.program)}'})"


def _noteless_track_names(source: str) -> list[str]:
    """Names (stripped) of the tracks of the MIDI file ``source`` that hold no sounding note:
    pretty_midi leaves such tracks out, so a named track can be there with nothing in it. Empty
    when ``source`` is not a readable MIDI file."""
    import mido

    try:
        tracks = mido.MidiFile(source).tracks
    except Exception:  # noqa: BLE001 - only used to word an error better
        return []
    out = []
    for t in tracks:
        names = [m.name for m in t if m.is_meta and m.type == "track_name"]
        sounding = any(m.type == "note_on" and m.velocity > 0 for m in t)
        if names and not sounding and names[0].strip():
            out.append(names[0].strip())
    return out


def select_instrument(pm, track: str, source: str) -> int:
    """Index in ``pm.instruments`` of the instrument ``--track`` names.

    ``track`` is an instrument name (case-insensitive, stripped; refused when several have it),
    or ``#N`` / ``N`` for the N-th instrument (0-based, the file's order) -- the way to
    pick an instrument without a name. A name wins over an index ("1" is the track named "1"
    when there is one). Raises UserError listing the file's tracks otherwise.
    """
    key = str(track).strip()
    named = [i for i, inst in enumerate(pm.instruments) if (inst.name or "").strip().lower() == key.lower()]
    digits = key[1:] if key.startswith("#") else key
    if len(named) > 1 and key.startswith("#") and digits.isdigit() and int(digits) < len(pm.instruments):
        return int(digits)   # tracks named "#0" alike: the index is the way out the message below offers
    if len(named) > 1:   # a type-0 file gives every channel the file's one name
        tracks = ", ".join(f"#{i} {'drums' if pm.instruments[i].is_drum else f'program {pm.instruments[i].program}'}, "
                           f"{len(pm.instruments[i].notes)} notes" for i in named)
        raise UserError(f"{source}: --track {track!r}: {len(named)} tracks have that name ({tracks}); "
                        f"give #N for the N-th track counting from 0")
    if named:
        return named[0]
    if digits.isdigit() and int(digits) < len(pm.instruments):
        return int(digits)
    if not any(inst.notes for inst in pm.instruments):
        raise UserError(f"{source}: the MIDI file has no notes (nothing to accompany)")
    if key.lower() in (n.lower() for n in _noteless_track_names(source)):
        raise UserError(f"{source}: --track {track!r}: the track has no notes")
    names = ", ".join(_describe(i, inst) for i, inst in enumerate(pm.instruments)) or "none"
    raise UserError(f"{source}: --track {track!r}: no such track (tracks: {names}); give a name, or #N for "
                    f"the N-th track counting from 0")


def find_instrument(pm, name: str, source: str):
    """The instrument of ``pm`` that ``--track name`` selects (see :func:`select_instrument`)."""
    return pm.instruments[select_instrument(pm, name, source)]


#: How ``song_midi`` writes the given track: its notes as played, or quantised to the grid.
GIVEN_TIMINGS = ("played", "grid")


def only_instrument(pm, index: int):
    """A shallow copy of ``pm`` (same tempo map, time signatures, resolution) holding only instrument ``index``."""
    one = copy.copy(pm)
    one.instruments = [pm.instruments[index]]
    return one


def bar_origin(pm, beats_per_bar: int, source: str, end_beat: float) -> float:
    """Where the composer's bar 0 starts, in quarter notes of the file (0, or minus the beats missing
    from a pickup bar), from the file's time signatures before ``end_beat``.

    The composer writes bars of ``beats_per_bar`` quarter notes. A meter whose bar is one or more of
    those (4/4, 2/2) must keep the grid's bar lines; one whose bar divides it (1/4, 2/4: POP909's
    files and many sequencers write these over 4/4 music) fits anywhere; a first, shorter bar (an
    anacrusis: e.g. 1/4 then 4/4) puts bar 0 that many beats before the file's start, so that the
    pickup falls at its end (:func:`symbolic.roll.meter_kind`, :func:`symbolic.roll.pickup_origin`).
    UserError naming the time signature otherwise (3/4, 6/8, 4/4 bars off the grid after a 2/4 bar).
    """
    from symbolic.roll import off_grid_meters, pickup_origin, time_signature_beats

    sigs = time_signature_beats(pm, end_beat) or [(0.0, 4, 4)]
    origin = pickup_origin(sigs, beats_per_bar)
    bad = off_grid_meters(sigs, beats_per_bar, origin)
    if bad:
        beat, n, d = sigs[bad[0]]
        raise UserError(f"{source}: time signature {n}/{d} at quarter note {beat:g}: the composer writes bars of "
                        f"{beats_per_bar} quarter notes (such as {beats_per_bar}/4, or 2/4 and 1/4 bars that "
                        f"fill them), with at most a shorter first bar (a pickup)")
    return origin


def end_beat(pm, index: int) -> float:
    """Where the last note of instrument ``index`` of ``pm`` ends, in quarter notes (0 without notes)."""
    res = float(pm.resolution)
    return max((pm.time_to_tick(n.end) / res for n in pm.instruments[index].notes), default=0.0)



def song_midi(mt, pm, *, given_track: int, given_index: int, origin: float = 0.0, given_timing: str = "played"):
    """The accompanied song ``mt`` as a PrettyMIDI on the input ``pm``'s own time line.

    Grid step ``s`` is quarter note ``origin + s / steps_per_beat`` of the input, turned into seconds
    through the input's tempo map (every tempo change kept) at its resolution; the input's time
    signatures (4/4 when it has none), key signatures and lyrics are kept. Track ``given_track`` gets
    the notes of the input's instrument ``given_index`` (all 128 pitches, also those outside the
    composer's range), its control changes and pitch bends: as played (``given_timing="played"``:
    the same times and velocities) or quantised to the grid (``"grid"``). The composed tracks' notes
    sit on the grid, or off it by ``mt.timing``; those before the input's start (in a pickup bar)
    are cut there.
    """
    if given_timing not in GIVEN_TIMINGS:
        raise ValueError(f"given_timing {given_timing!r}: expected one of {', '.join(GIVEN_TIMINGS)}")
    from symbolic.roll import Grid, notes_to_roll, place_notes, quantize_notes, roll_to_notes, time_signature_beats
    from symbolic.trackmap import TrackMap, TrackSpec

    grid = mt.grid
    spb = grid.steps_per_beat
    out = copy.copy(pm)  # the tempo map and resolution; everything else replaced below
    res = float(pm.resolution)
    end_beat = origin + mt.n_bars * grid.steps_per_bar / spb
    out.time_signature_changes = [pretty_midi.TimeSignature(n, d, pm.tick_to_time(int(round(b * res))))
                                  for b, n, d in time_signature_beats(pm, end_beat) or [(0.0, 4, 4)]]
    out.key_signature_changes = list(pm.key_signature_changes)
    out.lyrics = list(pm.lyrics)
    out.instruments = []

    def seconds(step: float) -> float:
        tick = int(round((origin + step / spb) * res))
        return 0.0 if tick <= 0 else float(out.tick_to_time(tick))

    # a note that ends by the input's start on the grid (in a pickup bar's missing beats) is left out,
    # also when its timing would play it a little past the start
    composed = place_notes([n for n in mt.notes() if n.track != given_track and origin + n.end / spb > 0],
                           mt.timing, grid, seconds)
    src = pm.instruments[given_index]
    if given_timing == "played":
        given = [copy.copy(n) for n in src.notes]
    else:
        full = Grid(spb, grid.beats_per_bar, 0, 128)
        one = TrackMap((TrackSpec("given", int(src.program), programs=((0, 127),)),), name="given")
        raw, _ = quantize_notes(only_instrument(pm, given_index), one, full, origin=origin)
        vel, on = notes_to_roll(raw, n_tracks=1, grid=full, n_bars=mt.n_bars)
        given = [note for _, note in place_notes(roll_to_notes(vel, on, grid=full), None, full, seconds)]
    instruments = [pretty_midi.Instrument(program=int(spec.program), is_drum=bool(spec.is_drum), name=spec.name)
                   for spec in mt.track_map.tracks]
    song_end = seconds(mt.n_bars * grid.steps_per_bar)
    for track, note in composed:   # a note played late on the last step ends with the last bar
        note.end = min(note.end, song_end)   # (every composed note starts before it: offsets < 1/2 step)
        instruments[track].notes.append(note)
    instruments[given_track].notes = given
    for inst in instruments:
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
    instruments[given_track].control_changes = list(src.control_changes)
    instruments[given_track].pitch_bends = list(src.pitch_bends)
    out.instruments = instruments
    return out


def parse_chords(text: str, bars: int, beats_per_bar: int, pickup_beats: float = 0.0) -> np.ndarray:
    """``--chords``: chord symbols separated by spaces or commas -> float32 [bars, beats_per_bar, 12].

    One per bar: up to as many symbols as the track has whole bars, repeated from the start as often
    as the bars need ("C Am F G" over 10 bars: C Am F G C Am F G C Am); or one per beat of the
    track. With a pickup (bar 0 starts ``pickup_beats`` quarter notes before the file), the list
    starts at the first whole bar and the pickup takes its first chord, and one per beat counts the
    beats the file has (or all of bar 0's). "N" is a bar (or beat) without a chord. UserError naming
    a symbol it cannot read, or for any other number of symbols (more than the bars: some would be
    dropped unheard).
    """
    from pipeline.config import chords_to_array

    symbols = [t for t in str(text).replace(",", " ").split() if t]
    if not symbols:
        raise UserError("--chords: expected chord symbols such as 'C Am F G', got nothing")
    try:   # every symbol read before they are counted: a typo is named as such
        chords_to_array(tuple(symbols), len(symbols), 1)
    except ValueError as exc:
        raise UserError(f"--chords: {exc} (e.g. 'C', 'Am', 'G7', 'F/A', 'N')") from None
    hidden = int(round(pickup_beats)) if pickup_beats > 0 and float(pickup_beats).is_integer() else 0
    whole = bars - (1 if pickup_beats > 0 else 0)   # bars after the pickup
    if hidden and len(symbols) == bars * beats_per_bar - hidden:   # one per beat of the file
        symbols = [symbols[0]] * hidden + symbols
    elif len(symbols) != bars * beats_per_bar:  # one per bar, repeated: each held for the bar's beats
        if len(symbols) > max(1, whole):
            per_beat = bars * beats_per_bar - hidden
            raise UserError(f"--chords: {len(symbols)} chords for a track of {whole} bars"
                            f"{' after its pickup' if pickup_beats > 0 else ''}: give one per bar ({whole} or "
                            f"fewer, repeated as the bars need) or one per beat ({per_beat})")
        per_bar = [symbols[b % len(symbols)] for b in range(max(1, whole))]
        if pickup_beats > 0:
            per_bar = [symbols[0]] + per_bar
        symbols = [c for c in per_bar[:bars] for _ in range(beats_per_bar)]
    try:
        return chords_to_array(tuple(symbols), bars, beats_per_bar)
    except ValueError as exc:
        raise UserError(f"--chords: {exc} (e.g. 'C', 'Am', 'G7', 'F/A', 'N')") from None


def accompany_midi(pm, composer, *, track: str, as_track: str | None = None, seed: int = 0,
                   source: str = "<midi>", chords: str = "auto", humanize: float | None = None,
                   drums=None, drums_style: str | None = None):
    """Accompany one instrument of a PrettyMIDI; returns (``symbolic.roll.Multitrack``, given track index).
    Arguments as :func:`_accompany`'s."""
    return _accompany(pm, composer, track=track, as_track=as_track, seed=seed, source=source, chords=chords,
                      humanize=humanize, drums=drums, drums_style=drums_style)[:2]


def _accompany(pm, composer, *, track: str, as_track: str | None = None, seed: int = 0,
               source: str = "<midi>", chords: str = "auto", humanize: float | None = None,
               drums=None, drums_style: str | None = None):
    """:func:`accompany_midi`, also returning the input instrument's index in ``pm.instruments`` and
    where bar 0 starts in the file (:func:`bar_origin`): what :func:`song_midi` needs.

    Args:
        pm: the input ``pretty_midi.PrettyMIDI``.
        composer: an object with ``symbolic.generate.Composer``'s contract (``accompany``).
        track: the input instrument: its name, or ``#N`` for the N-th instrument (see
            :func:`select_instrument`).
        as_track: the composer track it plays (default the composer's first track).
        seed: seed of the composer's latents and of the velocities' draws.
        humanize: how far the composed notes' velocities stray from the card's means (0..1; None =
            :data:`symbolic.velocity.HUMANIZE`; :func:`symbolic.velocity.play_velocities`). The composed
            notes are also played as early or late as the card's ``timing`` says (``Multitrack.timing``).
        chords: the chords under the given track: "auto" estimates them from its notes
            (:func:`symbolic.chords.estimate_chords`, a triad or seventh every two beats),
            "none" gives none (the composer follows the track alone), anything else is chord
            symbols (:func:`parse_chords`).
        drums: a drums composer (``Composer``'s ``compose``, ``styles``, ``velocity``) whose tracks
            are added under the others, in the genre ``drums_style`` (a name of its styles; None:
            unknown), from the same seed; None: no drums.
    """
    from symbolic.roll import Multitrack, binarize, midi_to_multitrack, roll_onsets
    from symbolic.trackmap import TrackMap, TrackSpec
    from symbolic.velocity import HUMANIZE, perform_tracks, velocity_cells

    index = select_instrument(pm, track, source)
    inst = pm.instruments[index]
    if inst.is_drum:
        raise UserError(f"{source}: --track {track!r}: a drum track cannot be accompanied")
    names = list(composer.track_names)
    if all(bool(d) for d in composer.is_drum):
        raise UserError("--weights: a drums model (it writes only drum tracks); accompany needs a composer of "
                        "pitched tracks, whose drums come from --drums STYLE")
    target = names[0] if as_track is None else as_track
    lowered = [n.lower() for n in names]
    if target.lower() not in lowered:
        raise UserError(f"--as {target!r}: not a composer track (allowed: {', '.join(names)})")
    ti = lowered.index(target.lower())
    if composer.is_drum[ti]:
        raise UserError(f"--as {names[ti]}: a drum track of the composer; the given track is pitched "
                        f"(allowed: {', '.join(n for n, d in zip(names, composer.is_drum) if not d) or 'none'})")
    if len(names) < 2:
        raise UserError(f"--weights: the composer writes only {names[0]}: it has no other track to accompany with")
    from pipeline.generate import composer_grid

    grid = composer_grid(composer)
    # the selected instrument alone (whatever its name, even none: no name rule involved), read with
    # the file's tempo map by a one-track map that takes any non-drum program
    given_map = TrackMap((TrackSpec(target, int(inst.program), programs=((0, 127),)),), name="given")
    if not inst.notes:
        raise UserError(f"{source}: --track {track!r}: the track has no notes")
    last = end_beat(pm, index)
    origin = bar_origin(pm, grid.beats_per_bar, source, end_beat=last)   # the time signatures up to it
    # the bars the track lasts, from its notes' own ends: a last note that only rounds onto the next
    # bar line (played a little early) does not add a bar of accompaniment
    half_step = 0.5 / grid.steps_per_beat
    bars = max(1, math.ceil((last - origin - half_step) / grid.beats_per_bar))
    given_mt = midi_to_multitrack(only_instrument(pm, index), given_map, grid, origin=origin, n_bars=bars)
    if not given_mt.roll.any():
        raise UserError(f"{source}: --track {track!r}: none of its {len(inst.notes)} notes is inside the "
                        f"composer's pitch range {grid.lowest_pitch}-{grid.highest_pitch}")
    given = torch.from_numpy(given_mt.roll[0] > 0).float()  # [bars, S, P]
    kw = {}
    mode = str(chords).strip().lower()
    if mode == "auto":
        from symbolic.chords import estimate_chords

        kw["chords"] = torch.from_numpy(estimate_chords(given_mt.roll[0], grid.lowest_pitch, grid.steps_per_beat,
                                                        grid.beats_per_bar))
    elif mode != "none":
        kw["chords"] = torch.from_numpy(parse_chords(chords, bars, grid.beats_per_bar, pickup_beats=-origin))
    drums_label = None
    if drums is not None:
        from pipeline.generate import check_drums, style_index

        check_drums(drums, grid, "--drums-weights")
        if any(composer.is_drum):
            raise UserError(f"--drums: the composer writes drums itself "
                            f"({', '.join(n for n, d in zip(names, composer.is_drum) if d)})")
        drums_label = style_index(drums, drums_style, "--drums")
    with torch.inference_mode():
        song = composer.accompany(given, track=ti, seed=int(seed), **kw)  # [T, bars, S, P]
    song = torch.as_tensor(song).float().cpu()
    if tuple(song.shape) != (len(names), bars, grid.steps_per_bar, grid.n_pitches):
        raise ValueError(f"Composer.accompany returned shape {tuple(song.shape)}, expected "
                         f"{(len(names), bars, grid.steps_per_bar, grid.n_pitches)}")
    # per track: its model, the style its velocities are looked up in, and (composed tracks) its program
    sources = [(composer, None, int(p)) for p in composer.programs]
    if drums is not None:
        n_phrases = -(-bars // int(drums.n_bars))
        with torch.inference_mode():
            beat = torch.as_tensor(drums.compose(n_phrases, seed=int(seed), style=drums_label)).float().cpu()
        song = torch.cat([song, beat[:, :bars]])
        names += list(drums.track_names)
        sources += [(drums, None if drums_label is None else str(drums.styles[drums_label]), int(p))
                    for p in drums.programs]
    T = song.shape[0]
    shape = (T, bars, grid.steps_per_bar, grid.n_pitches)
    flat = np.asarray(binarize(song, 0.5).numpy(), dtype=bool).reshape(T, -1, grid.n_pitches)
    is_drum = list(composer.is_drum) + (list(drums.is_drum) if drums is not None else [])
    onsets = roll_onsets(flat, is_drum)
    vel = np.where(flat, 80, 0).astype(np.uint8)
    # the data's velocity and timing at each step of the bar where the card has them
    # (symbolic.velocity): the composer's pooled over styles, as the accompaniment is composed with
    # none; the drums' of their genre
    learnt = []
    for t, (name, (model, style, _)) in enumerate(zip(names, sources)):
        cells = velocity_cells(getattr(model, "velocity", None), name, style, grid.n_pitches, grid.lowest_pitch)
        learnt.append(None if cells is None or t == ti else   # [bars * steps, pitches]
                      tuple(np.broadcast_to(x.T, shape[1:]).reshape(-1, grid.n_pitches) for x in cells))
    timing = perform_tracks(vel, onsets, learnt, HUMANIZE if humanize is None else humanize, seed)
    vel, onsets = vel.reshape(shape), onsets.reshape(shape)
    timing = None if timing is None else timing.reshape(shape)
    vel[ti], onsets[ti] = given_mt.roll[0], given_mt.onsets[0]  # the given notes as they were
    specs = []
    for t, name in enumerate(names):
        if t == ti:
            specs.append(TrackSpec((inst.name or target).strip() or target, int(inst.program)))
        else:
            other = name if name.lower() != (inst.name or "").strip().lower() else f"{name}_2"
            specs.append(TrackSpec(other, sources[t][2], is_drum=bool(is_drum[t])))
    mt = Multitrack(vel, onsets, TrackMap(tuple(specs), name="accompanied"), grid, given_mt.tempo,
                    given_mt.time_signature, timing=timing)
    if drums is not None:   # its data's own drum keys played as GM's (the card's drum_keys), on GM's kit only
        from symbolic.roll import map_drum_keys
        from symbolic.trackmap import GM_DRUM_KEYS

        first = len(composer.track_names)
        mt = map_drum_keys(mt, getattr(drums, "drum_keys", None),
                           [first + t for t, d in enumerate(drums.is_drum) if d], GM_DRUM_KEYS)
    return mt, ti, index, origin


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Given one track of a MIDI file, write the other tracks.")
    p.add_argument("midi", help="the MIDI file")
    p.add_argument("--track", required=True,
                   help="the MIDI track to keep: its name (e.g. MELODY), or #N for the N-th track counting from 0 "
                        "(for a track without a name)")
    p.add_argument("--as", dest="as_track", default=None,
                   help="the composer track it plays (default: the composer's first, melody)")
    p.add_argument("--out", default=None, help="output folder (default: out/<midi name>-accompanied)")
    p.add_argument("--renderer", choices=("neural", "none"), default="neural")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--chords", default="auto",
                   help="the chords under the track: auto (the default: a triad or seventh every two beats, "
                        "estimated from the track's notes), none (the composer follows the track alone), or "
                        "chord symbols such as \"C Am F G\": one per bar, repeated as the bars need (or one "
                        "per beat for all of them; N: no chord)")
    p.add_argument("--weights", default=None,
                   help=f"composer weights (default {DEFAULT_ACCOMPANY_WEIGHTS}, the composer trained on in "
                        f"accompaniment mode; {DEFAULT_SYMBOLIC_WEIGHTS} where that is missing)")
    p.add_argument("--drums", default=None, metavar="STYLE",
                   help="also write a drums track in this genre (one of the drums model's, e.g. rock, funk, "
                        "jazz, latin); by default no drums")
    p.add_argument("--drums-weights", default=None,
                   help=f"drums composer weights, with --drums (default {DEFAULT_DRUMS_WEIGHTS})")
    p.add_argument("--audio-weights", default=None, help="timbre model weights (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--given-timing", choices=GIVEN_TIMINGS, default="played",
                   help="the given track in song.mid: as played (the default: its notes' own times and "
                        "velocities) or quantised to the composer's 16th-note grid, as the composer read it")
    p.add_argument("--humanize", type=float, default=None, metavar="H",
                   help="0..1: how far the composed notes' velocities stray from the data's mean at their step "
                        "(default 0.5; 0 = always the mean)")
    return p


def load_composer(weights: str | None, device: str):
    from pipeline.config import resolve_weights_path

    try:
        from symbolic.generate import Composer
    except ModuleNotFoundError as exc:
        raise UserError(f"the composer is not available ({exc})") from None
    default = weights is None
    if default:
        try:
            weights = str(resolve_weights_path(DEFAULT_ACCOMPANY_WEIGHTS, "symbolic", default=True))
        except UserError:  # no accompanist: the composer's own accompaniment mode
            weights = DEFAULT_SYMBOLIC_WEIGHTS
    return Composer.load(resolve_weights_path(weights, "symbolic", "--weights", default=default), device=device)


def check_not_input(midi: Path, out: Path) -> None:
    """UserError when one of the files accompany writes into ``out`` is the MIDI file it reads."""
    midi, out = Path(midi), Path(out)
    if midi.is_file() and any((out / name).exists() and (out / name).resolve() == midi.resolve()
                              for name in ACCOMPANY_OUTPUTS):
        raise UserError(f"--out {out}: would write over the MIDI file {midi} itself; give another folder")


def run(midi: Path, out: Path, *, track: str, composer, timbre=None, as_track: str | None = None,
        seed: int = 0, device: str = "cpu", chords: str = "auto", humanize: float | None = None,
        given_timing: str = "played", drums=None, drums_style: str | None = None, pm=None) -> Path:
    """Accompany ``midi`` into ``out`` (song.mid, and song.wav when ``timbre`` is given). All or nothing.
    ``given_timing``: the given track as played or quantised (:func:`song_midi`); ``drums``,
    ``drums_style``: a drums composer and its genre (:func:`_accompany`); ``pm``: the file as
    :func:`symbolic.roll.read_midi` read it already (else it is read here)."""
    from audio.mix import master, mix_stems, write_wav
    from pipeline.render import check_length, render_midi_neural
    from symbolic.roll import read_midi, write_midi

    check_not_input(midi, out)
    pm = read_midi(midi) if pm is None else pm
    check_length(pm, midi, "accompany")
    mt, ti, index, origin = _accompany(pm, composer, track=track, as_track=as_track, seed=seed, source=str(midi),
                                       chords=chords, humanize=humanize, drums=drums, drums_style=drums_style)
    song = song_midi(mt, pm, given_track=ti, given_index=index, origin=origin, given_timing=given_timing)
    # no folder of those names is accompany's: one (with the user's files in it) is refused, not replaced
    with staged_dir(out, replaces=ACCOMPANY_OUTPUTS, owned_suffixes=()) as stage:
        write_midi(song, stage / "song.mid")
        if timbre is not None:
            _, stems = render_midi_neural(song, timbre, device=device, seed=seed, progress=sys.stderr.isatty())
            sr = int(timbre.sample_rate)
            write_wav(stage / "song.wav", master(mix_stems(stems), sr), sr)
    return out


def cli_main(argv: list[str]) -> int:
    """``musegansynth accompany MIDI --track NAME|#N [--out DIR] [--renderer neural|none] [--humanize H]
    [--given-timing played|grid] [--drums STYLE [--drums-weights W]]``."""
    from pipeline.generate import resolve_device
    from pipeline.errors import check_seed
    from pipeline.render import check_length, load_timbre
    from symbolic.roll import meta_elsewhere_note, read_midi

    args = build_parser(argv[0]).parse_args(argv[1:])
    check_seed(args.seed)
    if args.humanize is not None and not 0.0 <= args.humanize <= 1.0:  # also refuses nan
        raise UserError(f"--humanize {args.humanize:g}: out of range (allowed: 0 to 1)")
    midi = Path(args.midi)
    out = check_out_dir(args.out if args.out is not None else Path("out") / f"{midi.stem}-accompanied")
    check_not_input(midi, out)
    device = resolve_device(args.device)
    pm = read_midi(midi)
    meta_elsewhere_note(pm, midi)
    check_length(pm, midi, "accompany")
    find_instrument(pm, args.track, str(midi))  # fail early, before loading models
    if args.audio_weights is not None and args.renderer == "none":
        raise UserError("--audio-weights: --renderer none writes no audio (leave one of them out)")
    if args.drums_weights is not None and args.drums is None:
        raise UserError("--drums-weights: give the drums' genre too (--drums STYLE, e.g. --drums rock)")
    composer = load_composer(args.weights, device)
    drums = None
    if args.drums is not None:
        from pipeline.config import resolve_weights_path
        from symbolic.generate import Composer

        drums = Composer.load(resolve_weights_path(args.drums_weights or DEFAULT_DRUMS_WEIGHTS, "drums",
                                                   "--drums-weights", default=args.drums_weights is None),
                              device=device)
    timbre = load_timbre(args.audio_weights, device) if args.renderer == "neural" else None
    run(midi, out, track=args.track, composer=composer, timbre=timbre, as_track=args.as_track, seed=args.seed,
        device=device, chords=args.chords, humanize=args.humanize, given_timing=args.given_timing, drums=drums,
        drums_style=args.drums, pm=pm)
    print(out)
    return 0
