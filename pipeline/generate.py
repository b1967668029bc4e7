"""``musegansynth generate``: a song config in, a whole song out (MIDI, WAV, stems, pictures, report).

Steps (:func:`generate_song`):

1. **Plan in latent space** (:func:`plan_phrases`). A section of ``bars`` bars takes
   ``ceil(bars / n_bars)`` phrases of the composer's ``n_bars`` bars (the last one cut). Each
   *distinct* section name draws its phrase latents once (``Composer.sample_latents`` with a
   generator seeded by the song seed and the name; an arrangement is drawn for the bars with
   and without a chord in the section's chords); a repeat reuses them, mixed with fresh
   noise by its ``variation`` v: ``sqrt(1 - v^2) * z + v * noise`` (which keeps a unit Gaussian a
   unit Gaussian). At each section boundary the last phrase moves towards the next section's
   first phrase (``Composer.interpolate`` with ``t`` = :data:`TRANSITION_T`), so transitions
   are continuous. The drums composer gets its own plan, bar for bar the same.
2. **Decode** all phrases in one batch, conditioned on the section chords (per beat; zeros where
   a section has none; the drums model gets none, it learnt from drum-only data) and, for
   drums, the style (unknown when the config gives none). A composer that learnt its music in
   C major / A minor (its card's ``transposed``) composes a song in another key there: each
   section's key is estimated from its chords (a section without chords: from all the song's;
   ``Composer.home_offset``, :func:`section_offsets`), its chords moved to C, and the decoded
   music moved back, so a song may change key between sections. A composer with arrangement
   conditioning draws which tracks play in which bars with the latents; a section's ``play``
   and ``rest`` override that for its tracks (a bar that a ``play`` track's composer still leaves
   empty repeats that track's nearest bar with notes in the section). Phrases are joined end to end (no gap), cut
   to the section lengths, binarised at 0.5. A bar where every pitched track is silent repeats
   the bar before it, so the song never falls silent between phrases; then the sections'
   ``rest`` tracks are silenced (whatever composer wrote them).
3. **Notes and MIDI**: velocities (the card's learnt table where it has a cell, drawn with the
   config's ``humanize``; else beat-accented: :func:`roll_to_multitrack`), onsets,
   ``symbolic.roll.multitrack_to_midi`` with the config's track names, GM programs and tempo ->
   ``song.mid``.
4. **Audio** (``--renderer neural``): :class:`audio.render.NoteRenderer` renders every note
   with the timbre model (each track its own timbre latent, morphing by section), then
   :mod:`audio.mix` mixes, normalises loudness and limits -> ``song.wav`` and ``stems/``.
   ``fluidsynth`` renders the MIDI with FluidSynth instead; ``none`` writes no audio.
5. **Report**: ``pianoroll.png``, ``song.json``, ``index.html`` (:mod:`pipeline.report`).

``--count N`` (N > 1) makes the songs of seeds seed..seed+N-1 into ``DIR/seed-<n>/`` with
Lightning's ``Trainer.predict`` on one or several devices (:mod:`pipeline.batch`, imported only
then: one song needs no Lightning); each is the song ``--seed n`` alone writes.

Everything is written into a staging folder first (``pipeline.fileio.staged_dir``): on any
error nothing is left behind. Same config + seed + device gives the same ``song.mid`` bytes and
the same ``song.wav`` samples.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import math
import os
import platform
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pipeline.config import DEFAULT_CONFIG, DEFAULT_SAMPLE_RATE, SongConfig, chords_to_array, load_config
from pipeline.config import resolve_weights_path as _resolve_weights_path
from pipeline.errors import UserError
from pipeline.fileio import atomic_write_text, check_out_dir_entries, staged_dir
from symbolic.modules import ARRANGEMENT_KEY

#: How far the last phrase of a section moves towards the next section's first phrase.
TRANSITION_T = 0.35
#: Note velocities written to the MIDI: base, plus an accent on each beat's first step.
BASE_VELOCITY = 88
ACCENT = 16
RENDERERS = ("neural", "fluidsynth", "none")
#: Everything ``generate_song`` may write into its folder: what an earlier song left there and
#: this one does not write (its song.wav when this one has no audio, say) is removed.
SONG_OUTPUTS = ("song.mid", "song.wav", "song.flac", "stems", "pianoroll.png", "song.json", "index.html")
#: The keys of song.json's "audio" (null where the renderer gives no such value).
AUDIO_FACTS = ("loudness_db", "peak", "channels", "samples", "notes", "unique_notes")
#: The folders among them, and the kinds of file written into those.
SONG_FOLDERS = ("stems",)
SONG_AUDIO_SUFFIXES = (".wav", ".flac")


def check_song_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, after checking (before any work) that a song can be written there
    without touching the user's files: UserError when it is a file, or when it holds a file named
    like one of the song's folders (``stems``) or such a folder with files the song did not write."""
    return check_out_dir_entries(out_dir, SONG_OUTPUTS, SONG_AUDIO_SUFFIXES, SONG_FOLDERS)


# --------------------------------------------------------------------------- models

@dataclass
class Models:
    """The generation objects a song needs.

    composer: ``symbolic.generate.Composer`` (pitched tracks); drums: the drums composer or None;
    timbre: ``audio.generate.TimbreGenerator`` or None (renderer other than neural); paths: the
    weights files used (for hashes in song.json).
    """

    composer: Any
    drums: Any | None
    timbre: Any | None
    paths: dict[str, Path]


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when available else "cpu"; "cuda" without a GPU -> UserError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    return device


def load_models(config: SongConfig, device: str, renderer: str) -> Models:
    """Load the composer(s) and the timbre model named by ``config.weights``.

    The drums composer is loaded only when a track's source is not a composer track; the timbre
    model only for the neural renderer. Raises UserError for missing weights.
    """
    try:
        from symbolic.generate import Composer
    except ModuleNotFoundError as exc:
        raise UserError(f"the composer is not available ({exc})") from None

    source = Path(config.source)
    base = source.parent if source.is_file() else None   # a config's own relative paths: from its folder

    def resolve_weights_path(path: str, kind: str) -> Path:  # the message names the config file too
        try:
            return _resolve_weights_path(path, kind, base=base, default=kind not in config.weights.given)
        except UserError as exc:
            raise UserError(f"{config.source}: {exc}") from None

    paths = {"symbolic": resolve_weights_path(config.weights.symbolic, "symbolic")}
    composer = Composer.load(paths["symbolic"], device=device)
    names = {n.lower() for n in composer.track_names}
    drums = None
    if any(t.source.lower() not in names for t in config.tracks):
        paths["drums"] = resolve_weights_path(config.weights.drums, "drums")
        drums = Composer.load(paths["drums"], device=device)
    timbre = None
    if renderer == "neural":
        try:
            from audio.generate import TimbreGenerator
        except ModuleNotFoundError as exc:
            raise UserError(f"the timbre model is not available ({exc})") from None
        paths["audio"] = resolve_weights_path(config.weights.audio, "audio")
        timbre = TimbreGenerator.load(paths["audio"], device=device, autocast=device == "cuda")
    return Models(composer, drums, timbre, paths)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_facts(path: Path) -> dict[str, str]:
    """song.json's record of a weights file: its path and sha256, and those of the card beside it
    (``<name>.json``: the hyper-parameters and decode settings, which change the song too)."""
    path = Path(path)
    out = {"path": str(path), "sha256": sha256_file(path)}
    card = path.with_suffix(".json")
    if path.suffix == ".safetensors" and card.is_file():
        out["card"], out["card_sha256"] = str(card), sha256_file(card)
    return out


# --------------------------------------------------------------------------- planning

def _seed_for(*parts: Any) -> int:
    """A deterministic 63-bit seed from the parts (stable across runs and machines)."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode()) * 2654435761 % (2**63 - 1)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _take(latents: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {k: v[i:i + 1] for k, v in latents.items()}


def _cat(rows: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([r[k] for r in rows], dim=0) for k in rows[0]}


def _vary(latents: dict[str, torch.Tensor], noise: dict[str, torch.Tensor], v: float) -> dict[str, torch.Tensor]:
    a, b = math.sqrt(max(0.0, 1.0 - v * v)), v
    return {k: (a * x + b * noise[k]) if x.is_floating_point() else x for k, x in latents.items()}


def plan_phrases(composer, config: SongConfig, seed: int, tag: str,
                 use_chords: bool = False) -> list[dict[str, torch.Tensor]]:
    """Latents of every phrase of the song, in order: one dict of tensors ``[1, ...]`` each.

    Section ``s`` has ``ceil(bars / composer.n_bars)`` phrases; see the module docstring for
    repeats, variation and transitions. ``tag`` separates the composers' random streams. With
    ``use_chords`` (the composer decodes with the song's chords) a composer whose
    ``sample_latents`` takes ``chords`` gets each section's (from the longest occurrence of its
    name), so its arrangement follows the bars with and without a chord.
    """
    n_bars = int(composer.n_bars)
    need: dict[str, int] = {}
    longest: dict[str, Any] = {}
    for s in config.sections:
        n = -(-s.bars // n_bars)
        if n > need.get(s.name, 0):
            need[s.name], longest[s.name] = n, s
    takes_chords = use_chords and "chords" in inspect.signature(composer.sample_latents).parameters

    def draw(name: str, n: int) -> dict[str, torch.Tensor]:
        gen = _generator(_seed_for(seed, tag, "section", name))
        s = longest[name]
        if not takes_chords or s.chords is None:
            return composer.sample_latents(n, gen)
        return composer.sample_latents(n, gen, chords=_section_chords(composer, s))

    base = {name: draw(name, n) for name, n in need.items()}
    per_section: list[list[dict[str, torch.Tensor]]] = []
    seen: dict[str, int] = {}
    for si, s in enumerate(config.sections):
        occurrence = seen.get(s.name, 0)
        seen[s.name] = occurrence + 1
        lat = base[s.name]
        if occurrence > 0 and s.variation > 0:
            noise = composer.sample_latents(need[s.name],
                                            _generator(_seed_for(seed, tag, "variation", s.name, occurrence)))
            lat = _vary(lat, noise, s.variation)
        per_section.append([_take(lat, i) for i in range(-(-s.bars // n_bars))])
    for si in range(len(per_section) - 1):
        last, nxt = per_section[si][-1], per_section[si + 1][0]
        per_section[si][-1] = composer.interpolate(last, nxt, TRANSITION_T)
    return [p for phrases in per_section for p in phrases]


def plan_chords(composer, config: SongConfig) -> torch.Tensor | None:
    """Chords of every phrase: float [phrases, n_bars, beats_per_bar, 12], or None when no section has any.

    A section's chords repeat over its padded last phrase; sections without chords get zeros.
    """
    if all(s.chords is None for s in config.sections):
        return None
    return torch.cat([_section_chords(composer, s) for s in config.sections])


def _section_chords(composer, s) -> torch.Tensor:
    """One section's chords per phrase, float [phrases, n_bars, beats, 12] (zeros without any)."""
    n_bars, beats = int(composer.n_bars), int(composer_grid(composer).beats_per_bar)
    n_ph = -(-s.bars // n_bars)
    arr = chords_to_array(s.chords, s.bars, beats)  # [bars, beats, 12]
    idx = np.arange(n_ph * n_bars) % s.bars
    return torch.from_numpy(np.ascontiguousarray(arr[idx].reshape(n_ph, n_bars, beats, 12)))


def section_offsets(model, config: SongConfig, chords: torch.Tensor | None) -> np.ndarray:
    """Per phrase, how far its section's key sits above the model's home key: int [phrases].

    A section with chords: ``model.home_offset`` of its own chords (so a song may change key
    from one section to the next); a section without, or whose chords are all "no chord"
    (``N.C.``): that of all the song's chords. All 0 for a model without a home key or a song
    without chords.
    """
    n_bars = int(model.n_bars)
    counts = [-(-s.bars // n_bars) for s in config.sections]
    out = np.zeros(sum(counts), dtype=np.int64)
    if chords is None or not getattr(model, "home_key", False):
        return out
    song = model.home_offset(chords=chords)
    k = 0
    for s, n_ph in zip(config.sections, counts):
        own = chords[k:k + n_ph]
        out[k:k + n_ph] = song if s.chords is None or not bool(own.any()) else model.home_offset(chords=own)
        k += n_ph
    return out


def composer_grid(model):
    """The composer's grid as a ``symbolic.roll.Grid`` (the Composer may hold a dict of its fields)."""
    from symbolic.roll import Grid

    g = model.grid
    if isinstance(g, Grid):
        return g
    return Grid(int(g["steps_per_beat"]), int(g["beats_per_bar"]), int(g["lowest_pitch"]), int(g["n_pitches"]))


def style_index(drums, style: str | int | None, where: str) -> int | None:
    """Style label for the drums composer: None (unknown) when none is given. A name is looked up
    among the model's styles (any case); an index is checked against them, or the generator's
    ``n_styles`` when the card names none. UserError starting with ``where`` (a config's
    "song.yaml: style", a command's "--drums")."""
    styles = getattr(drums, "styles", None)
    if style is None:
        return None
    if isinstance(style, int):
        count = len(styles) if styles else getattr(getattr(drums, "generator", None), "config", {}).get("n_styles")
        if count == 0:
            raise UserError(f"{where}: {style}: the drums model has no styles")
        if count is not None and not 0 <= style < count:
            raise UserError(f"{where}: {style} is out of range (allowed: 0 to {count - 1})")
        return style
    if not styles:
        raise UserError(f"{where}: {style!r}: the drums model has no named styles")
    lowered = [str(s).lower() for s in styles]
    if style.strip().lower() not in lowered:
        raise UserError(f"{where}: {style!r} is not allowed (allowed: {', '.join(map(str, styles))})")
    return lowered.index(style.strip().lower())


def check_drums(drums, grid, where: str) -> None:
    """UserError starting with ``where`` unless ``drums`` writes drum tracks only, on ``grid``'s
    steps and pitches (those of the composer it plays with)."""
    if not all(drums.is_drum):
        raise UserError(f"{where}: not a drums model (its tracks: {', '.join(drums.track_names)})")
    dgrid = composer_grid(drums)
    if (dgrid.steps_per_bar, dgrid.n_pitches, dgrid.lowest_pitch) != (grid.steps_per_bar, grid.n_pitches,
                                                                        grid.lowest_pitch):
        raise UserError(f"{where}: the drums model's grid {dgrid} does not match the composer's {grid}")


def section_styles(drums, config: SongConfig) -> list[int | None]:
    """The drums' style index of every section: its own ``style``, else the song's; None where
    neither is given (each checked by :func:`style_index`, errors naming its key)."""
    song = style_index(drums, config.style, f"{config.source}: style")
    return [song if s.style is None else style_index(drums, s.style, f"{config.source}: sections[{i}].style")
            for i, s in enumerate(config.sections)]


def phrase_styles(drums, config: SongConfig) -> list[int] | None:
    """The drums' style index of every phrase (:func:`section_styles`), -1 (unknown) where none is
    given; None when neither the song nor any section names one."""
    n_bars = int(drums.n_bars)
    out: list[int] = []
    for s, label in zip(config.sections, section_styles(drums, config)):
        out += [-1 if label is None else label] * -(-s.bars // n_bars)
    return None if all(x == -1 for x in out) else out


def compose(models: Models, config: SongConfig, seed: int, device: str) -> np.ndarray:
    """The song's binary pianoroll, one row per config track: bool [tracks, bars, steps_per_bar, n_pitches]."""
    comp = models.composer
    comp_names = [n.lower() for n in comp.track_names]
    drum_names = [n.lower() for n in models.drums.track_names] if models.drums is not None else []
    grid = composer_grid(comp)
    if models.drums is not None and any(t.source.lower() not in comp_names for t in config.tracks):
        check_drums(models.drums, grid, f"{config.source}: weights.drums")   # before naming a source it lacks
    for i, t in enumerate(config.tracks):   # first: the note below would name a track that cannot be
        if t.source.lower() not in comp_names and t.source.lower() not in drum_names:
            allowed = list(dict.fromkeys([*comp.track_names, *drum_names]))
            raise UserError(f"{config.source}: tracks[{i}].source: {t.source!r} is not a composer track "
                            f"(allowed: {', '.join(allowed)})")
    arranged = {t.name for t in config.tracks
                if getattr(getattr(track_model(models, t.source), "generator", None), "has_arrangement", False)}
    seen: set[str] = set()
    for i, sec in enumerate(config.sections):
        if sec.name not in seen and sec.variation:
            print(f"musegansynth: note: sections[{i}] ({sec.name}): variation {sec.variation:g} has no effect on a "
                  f"section's first occurrence (it varies the repeats)", file=sys.stderr)
        seen.add(sec.name)
    unplayable = sorted({t.name for s in config.sections for t in config.tracks if t.name in s.play
                         and t.name not in arranged})
    if unplayable:
        print(f"musegansynth: note: {', '.join(unplayable)}: 'play' has no effect, the composer was trained "
              f"without arrangement conditioning (it writes notes where it will)", file=sys.stderr)
    if grid.beats_per_bar != config.beats_per_bar:
        raise UserError(f"{config.source}: time_signature: the composer writes {grid.beats_per_bar} beats a bar")

    def song_roll(model, tag: str, style: int | list[int] | None, use_chords: bool) -> np.ndarray:
        phrases = plan_phrases(model, config, seed, tag, use_chords)
        lat = {k: v.to(device) for k, v in _cat(phrases).items()}
        if ARRANGEMENT_KEY in lat:
            lat[ARRANGEMENT_KEY] = section_arrangement(lat[ARRANGEMENT_KEY], model, config)
        chords = plan_chords(model, config) if use_chords else None
        kwargs: dict[str, Any] = {}
        if chords is not None:
            kwargs["chords"] = chords.to(device)
        if isinstance(style, int):
            kwargs["style"] = torch.full((len(phrases),), style, dtype=torch.long, device=device)
        elif style is not None:  # one per phrase
            kwargs["style"] = torch.tensor(style, dtype=torch.long, device=device)
        offsets = section_offsets(model, config, chords)
        if offsets.any():  # composed in the model's home key, each section from its own key, then moved back
            kwargs["transpose"] = torch.from_numpy(offsets)
        with torch.inference_mode():
            probs = model.decode(lat, **kwargs).float().cpu()  # [N, tracks, n_bars, steps, pitches]
        n, T, B, S, P = probs.shape
        # join phrases, then cut each section to its length
        rolls, k = [], 0
        for s in config.sections:
            n_ph = -(-s.bars // B)
            part = probs[k:k + n_ph].permute(1, 0, 2, 3, 4).reshape(T, n_ph * B, S, P)[:, : s.bars]
            rolls.append(part)
            k += n_ph
        from symbolic.roll import binarize

        return np.asarray(binarize(torch.cat(rolls, dim=1), 0.5).numpy(), dtype=bool)

    # the composer learnt one style per dataset; condition on its first (POP909's "pop"), as in training
    main = song_roll(comp, "composer", 0 if getattr(comp, "styles", None) else None, use_chords=True)
    drums = None
    if models.drums is not None and any(t.source.lower() in drum_names and t.source.lower() not in comp_names
                                        for t in config.tracks):
        # the drums model learnt from drum-only data: no chords for it (its "no chord" path)
        drums = song_roll(models.drums, "drums", phrase_styles(models.drums, config), use_chords=False)
    else:
        styles = [x for x in (config.style, *(sec.style for sec in config.sections)) if x is not None]
        if styles:
            print(f"musegansynth: note: {config.source}: style {', '.join(map(repr, dict.fromkeys(styles)))} has "
                  f"no effect: the song has no drums track (a style is the drums' genre)", file=sys.stderr)
    rows = []
    for t in config.tracks:
        src = t.source.lower()
        if src in comp_names:
            rows.append(main[comp_names.index(src)])
        else:
            rows.append(drums[drum_names.index(src)])
    roll = np.stack(rows)
    drum_rows = [i for i, t in enumerate(config.tracks) if t.source.lower() not in comp_names
                 or comp.is_drum[comp_names.index(t.source.lower())]]
    roll = fill_silent_bars(roll, drum_rows, bar_chords(config, grid.beats_per_bar))
    roll = fill_play_bars(roll, config, [i for i, t in enumerate(config.tracks) if t.name in arranged],
                          grid.beats_per_bar)
    # sections' rests hold for every track (the arrangement already silenced those of an
    # arrangement-conditioned composer; this also covers the others and the filled bars)
    bar = 0
    for s in config.sections:
        for i, t in enumerate(config.tracks):
            if t.name in s.rest:
                roll[i, bar:bar + s.bars] = False
        bar += s.bars
    return roll


def section_arrangement(arrangement: torch.Tensor, model, config: SongConfig) -> torch.Tensor:
    """Apply the sections' ``play`` / ``rest`` to phrase arrangements bool [phrases, T, n_bars] of ``model``.

    Phrases follow :func:`plan_phrases`' order (each section ``ceil(bars / n_bars)`` of them).
    Tracks of the config whose source is not one of ``model``'s tracks are left to their model.
    Config tracks that share a source share its row: it plays where any of them is in ``play``,
    and rests only where all of them are in ``rest`` (each track's own rests silence it later,
    in :func:`compose`). A bar where none of the song's pitched tracks of ``model`` would play
    (the chain drew only tracks the song leaves out, e.g. the piano under a melody-only song)
    gets the first of them that its section does not rest, so that the composer writes that bar
    for its chords (rather than a bar being copied in from elsewhere).
    """
    names = [n.lower() for n in model.track_names]
    rows_of = {row: [t.name for t in config.tracks if t.source.lower() == name] for row, name in enumerate(names)}
    is_drum = list(getattr(model, "is_drum", [False] * len(names)))
    pitched = [row for row in dict.fromkeys(names.index(t.source.lower()) for t in config.tracks
                                            if t.source.lower() in names) if not is_drum[row]]
    out = arrangement.clone()
    k = 0
    for s in config.sections:
        n_ph = -(-s.bars // int(model.n_bars))
        for row, tracks in rows_of.items():
            if any(t in s.play for t in tracks):
                out[k:k + n_ph, row] = True
            elif tracks and all(t in s.rest for t in tracks):
                out[k:k + n_ph, row] = False
        awake = [row for row in pitched if not all(t in s.rest for t in rows_of[row])]
        if awake:
            out[k:k + n_ph, awake[0]] |= ~out[k:k + n_ph][:, awake].any(dim=1)
        k += n_ph
    return out


def bar_chords(config: SongConfig, beats_per_bar: int) -> list[tuple[int, bytes]]:
    """Per bar of the song: (its section's index, its chords beat by beat as bytes); two bars
    with equal pairs are in one section under the same chords."""
    out = []
    for i, s in enumerate(config.sections):
        arr = chords_to_array(s.chords, s.bars, beats_per_bar)
        out += [(i, arr[b].tobytes()) for b in range(s.bars)]
    return out


def fill_silent_bars(roll: np.ndarray, drum_tracks: Sequence[int] = (),
                     chords: Sequence[Any] | None = None) -> np.ndarray:
    """Repeat an earlier bar wherever every pitched track is silent for a whole bar: the nearest
    one before it with notes whose ``chords`` entry is equal (:func:`bar_chords`: in the same
    section, under the same chords); a bar with no such bar before it stays silent.

    Args:
        roll: bool [tracks, bars, steps, pitches].
        drum_tracks: rows that do not count as pitched (and are left as they are).
        chords: one entry per bar (None: every bar alike).

    Returns:
        A copy of ``roll``; bar 0 is never changed (nothing before it).
    """
    out = roll.copy()
    pitched = [i for i in range(roll.shape[0]) if i not in set(drum_tracks)]
    if not pitched:
        return out
    same = (lambda a, b: True) if chords is None else (lambda a, b: chords[a] == chords[b])
    for b in range(1, out.shape[1]):
        if not out[pitched, b].any():
            source = next((a for a in range(b - 1, -1, -1) if same(a, b) and out[pitched, a].any()), None)
            if source is not None:
                out[pitched, b] = out[pitched, source]
    return out


def fill_play_bars(roll: np.ndarray, config: SongConfig, rows: Sequence[int],
                   beats_per_bar: int | None = None) -> np.ndarray:
    """Give every bar of a section's ``play`` tracks notes: an empty one repeats that track's nearest bar
    with notes in the same section under the same chords (the one before it first, else the one after).

    The arrangement only lets a track sound in a bar; its composer may still write nothing there
    (rarely: about 2 bars in 1,000). Only ``rows`` (tracks whose composer has arrangement
    conditioning, for which ``play`` is honoured) are filled; a bar whose chords no bar of the
    section with the track's notes has stays silent, and a section where the track has no
    notes at all is left as it is (both said on stderr).

    Args:
        roll: bool [tracks, bars, steps, pitches], one row per config track.
        beats_per_bar: of the chords (default the config's).

    Returns:
        A copy of ``roll``.
    """
    out = roll.copy()
    chords = bar_chords(config, beats_per_bar or config.beats_per_bar)
    bar = 0
    for k, s in enumerate(config.sections):
        for i in rows:
            if config.tracks[i].name not in s.play:
                continue
            part = out[i, bar:bar + s.bars]  # a view: filled in place
            full = [b for b in range(s.bars) if part[b].any()]
            if not full:   # nothing to repeat: say so rather than leave the 'play' unexplained
                print(f"musegansynth: note: sections[{k}] ({s.name}): {config.tracks[i].name} wrote no notes "
                      f"although 'play' asks for it (another seed gives other notes)", file=sys.stderr)
                continue
            for b in range(s.bars):
                if part[b].any():
                    continue
                alike = [f for f in full if chords[bar + f] == chords[bar + b]]
                if not alike:
                    print(f"musegansynth: note: sections[{k}] ({s.name}): {config.tracks[i].name} wrote no notes "
                          f"in its bar {b + 1} although 'play' asks for it, and no bar of the section under "
                          f"the same chords has any to repeat (another seed gives other notes)", file=sys.stderr)
                    continue
                before = [f for f in alike if f < b]
                part[b] = roll[i, bar + (before[-1] if before else min(alike))]
        bar += s.bars
    return out


def track_model(models: Models, source: str):
    """The model that composes the config's track of ``source``: the composer when it has such a
    track, else the drums composer."""
    comp = models.composer
    return comp if source.lower() in [n.lower() for n in comp.track_names] else models.drums


def play_drum_keys(mt, models: Models, config: SongConfig, is_drum: Sequence[bool]):
    """``mt`` with each drum track's hits on the GM keys its model's card says its data's keys are
    played as (``drum_keys``: Groove's edge hi-hats and tom rim, see
    :data:`symbolic.trackmap.GROOVE_TO_GM`), and without the rare hits a drum composer writes on
    keys outside GM's kit (:data:`symbolic.trackmap.GM_DRUM_KEYS`), which no GM synthesizer plays."""
    from symbolic.roll import map_drum_keys
    from symbolic.trackmap import GM_DRUM_KEYS

    for t, (tc, drum) in enumerate(zip(config.tracks, is_drum)):
        if drum:
            mt = map_drum_keys(mt, getattr(track_model(models, tc.source), "drum_keys", None), [t], GM_DRUM_KEYS)
    return mt


def learnt_velocities(models: Models, config: SongConfig) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Per track of the config: (means, spreads, timings), float ``[bars, pitches, steps]`` each,
    the velocity the data plays at each cell, its standard deviation and the cell's mean offset
    from the step (``decode.velocity`` of the card of the model composing it,
    :mod:`symbolic.velocity`; the drums by the genre of each bar's section), NaN where the table
    has none; None for a track whose model has no table."""
    from symbolic.velocity import velocity_cells

    comp = models.composer
    out: list[np.ndarray | None] = []
    for t in config.tracks:
        src = t.source.lower()
        model = track_model(models, src)
        table = getattr(model, "velocity", None)
        name = model.track_names[[n.lower() for n in model.track_names].index(src)]
        grid = composer_grid(model)
        if velocity_cells(table, name, None, grid.n_pitches, grid.lowest_pitch) is None:
            out.append(None)
            continue
        styles = list(getattr(model, "styles", None) or [])
        # the composer composes as its first style (see compose), the drums as each section's
        indices = [0] * len(config.sections) if model is comp else section_styles(model, config)
        bars = []
        for s, index in zip(config.sections, indices):
            key = str(styles[index]) if index is not None and 0 <= index < len(styles) else None
            bars += [velocity_cells(table, name, key, grid.n_pitches, grid.lowest_pitch)] * s.bars
        out.append(tuple(np.stack([b[i] for b in bars]) for i in range(3)))
    return out


def roll_to_multitrack(roll: np.ndarray, config: SongConfig, grid, is_drum: Sequence[bool],
                       velocities: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None = None):
    """Binary roll -> ``symbolic.roll.Multitrack`` with velocities, onsets and the config's tracks.

    Pitched notes start where a pitch turns on (held steps merge); every drum step is a hit.
    Velocity: :data:`BASE_VELOCITY`, plus :data:`ACCENT` for onsets on a beat's first step; where
    ``velocities`` (:func:`learnt_velocities`) gives a track's cell, the data's velocity there,
    varied by the config's ``humanize`` (seeded by the song's seed and the track's index), and
    played its mean offset from the step early or late (``Multitrack.timing``).
    """
    from symbolic.roll import Multitrack, roll_onsets
    from symbolic.trackmap import TrackMap, TrackSpec
    from symbolic.velocity import perform_tracks

    T, B, S, P = roll.shape
    flat = roll.reshape(T, B * S, P)
    onsets = roll_onsets(flat, is_drum)
    on_beat = (np.arange(B * S) % grid.steps_per_beat == 0)[None, :, None]
    # held steps carry the base velocity; roll_to_notes reads a note's velocity at its onset
    vel = np.where(flat, BASE_VELOCITY, 0).astype(np.uint8)
    vel[onsets & on_beat] = BASE_VELOCITY + ACCENT
    per_step = [None if cells is None else tuple(x.transpose(0, 2, 1).reshape(B * S, P) for x in cells)
                for cells in velocities or ()]   # [bars * steps, pitches]
    timing = perform_tracks(vel, onsets, per_step, config.humanize, config.seed)
    tm = TrackMap(tuple(TrackSpec(tc.name, tc.program if not d else 0, is_drum=bool(d))
                        for tc, d in zip(config.tracks, is_drum)), name="song")
    shape = (T, B, S, P)
    return Multitrack(vel.reshape(shape), onsets.reshape(shape), tm, grid, float(config.tempo),
                      tuple(config.time_signature), timing=None if timing is None else timing.reshape(shape))


def section_table(config: SongConfig, drums: bool = True, styles: Sequence[str] | None = None
                  ) -> list[dict[str, Any]]:
    """Sections with their first bar, length and times in seconds (and, when the song has
    ``drums``, the drums' style of each, a style index shown by its name in ``styles``; None
    otherwise).

    ``chords``: one per bar, or one per beat when a bar of the section changes chord (the two
    forms a config accepts); None without chords.
    """
    bar_s = config.beats_per_bar * 60.0 / config.tempo

    def style_name(style):
        if isinstance(style, int) and styles and 0 <= style < len(styles):
            return str(styles[style])
        return style

    out, bar = [], 0
    for s in config.sections:
        chords = None
        if s.chords is not None:
            beats = config.beats_per_bar
            per_bar = [s.chords[b * beats] for b in range(s.bars)]
            if any(c != per_bar[i // beats] for i, c in enumerate(s.chords)):
                chords = list(s.chords)  # a chord change inside a bar: keep every beat's
            else:
                chords = per_bar
        out.append({"name": s.name, "start_bar": bar, "bars": s.bars, "start_s": round(bar * bar_s, 4),
                    "end_s": round((bar + s.bars) * bar_s, 4), "chords": chords, "variation": s.variation,
                    "morph": s.morph,
                    "style": None if not drums else style_name(config.style if s.style is None else s.style)})
        bar += s.bars
    return out


def section_at(config: SongConfig, time_s: float, early_s: float = 1e-6) -> int:
    """Index of the section sounding at ``time_s`` seconds (0 before the song, the last after it).

    Computed from the exact bar times (``section_table``'s ``start_s`` is rounded to 0.1 ms: a
    note on a section's first step could read as the section before, with its timbre morph).
    A time up to ``early_s`` before a section's start counts as in it (by default a microsecond,
    float rounding; a note played ahead of its step, ``Multitrack.timing``, needs half a step).
    """
    bar_s = config.beats_per_bar * 60.0 / config.tempo
    bars = np.cumsum([0] + [s.bars for s in config.sections[:-1]])
    si = int(np.searchsorted(bars * bar_s, float(time_s) + float(early_s), side="right") - 1)
    return min(max(0, si), len(config.sections) - 1)


# --------------------------------------------------------------------------- audio

def render_song_neural(pm, config: SongConfig, timbre, device: str, progress: bool = False,
                       steps_per_beat: int = 4) -> tuple[np.ndarray, dict[str, Any]]:
    """Render the song's MIDI with the timbre model: float32 stems [tracks, samples] and facts.
    ``steps_per_beat``: the composer's grid (a note up to half a step ahead of a section's first
    step, played early by the learnt timing, takes that section's timbre).

    Track ``i`` of the config is instrument ``i`` of ``pm``. Each track has a timbre latent
    from its ``timbre_seed``; in a section with ``morph`` m it is the slerp (by m) towards the
    latent of its ``morph_seed``.
    """
    from audio.render import NoteRenderer, notes_from_midi, slerp, timbre_latent
    from pipeline.render import program_mapper, say_unplayed

    say_unplayed(pm, timbre, "--renderer fluidsynth plays them as written")   # e.g. melody notes above its pitches
    mapper = program_mapper(timbre, warn=False)
    _, notes = notes_from_midi(pm, program_of=mapper)
    sections = section_table(config)
    table: list[torch.Tensor] = []
    index: dict[tuple[int, float], int] = {}
    for ti, t in enumerate(config.tracks):
        za, zb = timbre_latent(t.timbre_seed, timbre.latent_dim), timbre_latent(t.morph_seed, timbre.latent_dim)
        for s in sections:
            if (ti, s["morph"]) not in index:
                index[(ti, s["morph"])] = len(table)
                table.append(slerp(za, zb, s["morph"]))
    half_step = 60.0 / float(config.tempo) / int(steps_per_beat) / 2

    def timbre_of(n) -> int:
        # a note played up to half a step early belongs to the step (and section) it was written on
        return index[(n.stem, sections[section_at(config, n.start_s, early_s=half_step)]["morph"])]

    from dataclasses import replace

    notes = [replace(n, timbre=timbre_of(n)) for n in notes]
    renderer = NoteRenderer(timbre, device=device, progress=progress)
    stems = renderer.render(notes, torch.stack(table), n_stems=len(config.tracks), end_s=pm.get_end_time())
    return stems, {"unique_notes": renderer.generated, "notes": len(notes)}


def _audio_name(stem: str, flac: bool) -> str:
    return f"{stem}.flac" if flac else f"{stem}.wav"


def write_audio(stage: Path, stems: np.ndarray, names: Sequence[str], config: SongConfig, sample_rate: int,
                flac: bool) -> dict[str, Any]:
    """Mix, master and write ``song.wav`` and ``stems/<name>.wav`` into ``stage``; returns facts.

    Each stem is its track as it sits in the mix: its volume, its pan (a stereo stem when the mix
    is stereo, i.e. when any track has a pan) and the mix's mastering gain at each sample (its
    loudness passes and the limiter's reductions), so the stems add up to the mix.
    """
    from audio.mix import loudness_db, master_with_gain, mix_stems, write_wav

    volumes = [t.volume_db for t in config.tracks]
    pans = [t.pan for t in config.tracks]
    raw = mix_stems(stems, volumes, pans)
    song, gain = master_with_gain(raw, sample_rate)
    write_wav(stage / _audio_name("song", flac), song, sample_rate, flac=flac)
    (stage / "stems").mkdir(exist_ok=True)
    for i, name in enumerate(names):
        # the mixer itself places the stem (mono, or panned into stereo like the song)
        pan = None if raw.shape[0] == 1 else [0.0 if pans[i] is None else pans[i]]  # None pans centre
        placed = mix_stems(stems[i:i + 1], volumes[i:i + 1], pan)
        write_wav(stage / "stems" / _audio_name(name, flac), placed * gain[None], sample_rate, flac=flac)
    level = loudness_db(song, sample_rate)  # -inf for a silent song: null in song.json (JSON has no -Infinity)
    return {"loudness_db": round(level, 2) if np.isfinite(level) else None, "peak": round(float(np.abs(song).max()), 4),
            "channels": int(song.shape[0]), "samples": int(song.shape[1])}


def render_song_fluidsynth(stage: Path, pm, config: SongConfig, flac: bool, sample_rate: int | None = None
                           ) -> dict[str, Any]:
    """Render each track with FluidSynth at ``sample_rate`` (default: :func:`song_sample_rate`'s),
    then mix and master like the neural path.

    The stems are FluidSynth's float output as it comes (``audio.fluid.render_midi_audio``): not
    peak-normalised one by one (which would change their balance) nor rounded to 16 bits.
    """
    import tempfile

    import pretty_midi

    from audio.fluid import render_midi_audio
    from symbolic.roll import write_midi

    sr = sample_rate or song_sample_rate(config, None, "fluidsynth")
    stems = []
    with tempfile.TemporaryDirectory(prefix="musegansynth-stems-") as tmp:
        for i, inst in enumerate(pm.instruments):
            one = pretty_midi.PrettyMIDI(resolution=pm.resolution, initial_tempo=float(config.tempo))
            one.instruments.append(inst)
            mid = Path(tmp) / f"{i}.mid"
            write_midi(one, mid)
            if inst.notes:
                stems.append(render_midi_audio(mid, sample_rate=sr).mean(axis=0))
            else:
                stems.append(np.zeros(1, dtype=np.float32))
    # at least as long as the song's bars (a stem ends with its last note's tail)
    n = max(max(len(s) for s in stems), int(math.ceil(pm.get_end_time() * sr)))
    stems_arr = np.stack([np.pad(s, (0, n - len(s))) for s in stems]).astype(np.float32)
    return write_audio(stage, stems_arr, [t.name for t in config.tracks], config, sr, flac)


# --------------------------------------------------------------------------- the whole song

def _versions() -> dict[str, str]:
    import pretty_midi

    try:
        from importlib.metadata import version

        own = version("musegansynth")
    except Exception:  # not installed as a distribution
        own = "0.1.0"
    return {"musegansynth": own, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "pretty_midi": getattr(pretty_midi, "__version__", "?")}


def _make_readable(folder: Path) -> None:
    """Give the outputs the usual permissions (temporary files are created private): rw-r--r-- less umask."""
    mask = os.umask(0)
    os.umask(mask)
    for p in folder.rglob("*"):
        if p.is_file():
            p.chmod(0o644 & ~mask)


def song_sample_rate(config: SongConfig, models: Models | None, renderer: str) -> int | None:
    """The song's audio rate: the timbre model's for the neural renderer (UserError when the config
    asks for another, or there is no timbre model), the config's (default
    :data:`pipeline.config.DEFAULT_SAMPLE_RATE`) for FluidSynth, which renders at any rate; None
    without audio."""
    if renderer == "neural":
        if models.timbre is None:
            raise UserError("--renderer neural: no timbre model loaded")
        sr = int(models.timbre.sample_rate)
        if config.sample_rate is not None and sr != config.sample_rate:
            raise UserError(f"{config.source}: sample_rate: {config.sample_rate} does not match the timbre "
                            f"model's {sr} Hz (allowed: {sr})")
        return sr
    return (config.sample_rate or DEFAULT_SAMPLE_RATE) if renderer == "fluidsynth" else None


def generate_song(config: SongConfig, out_dir: str | Path, *, models: Models, device: str = "cpu",
                  renderer: str = "neural", flac: bool = False, progress: bool = False) -> Path:
    """Generate one song into ``out_dir`` (staged: all files or none). Returns ``out_dir``.

    Files: song.mid, song.wav (or .flac; not with renderer "none"), stems/<track>.wav,
    pianoroll.png, song.json, index.html.
    """
    from pipeline.report import write_report
    from symbolic.roll import multitrack_to_midi, write_midi

    if renderer not in RENDERERS:
        raise UserError(f"--renderer {renderer!r}: not allowed (allowed: {', '.join(RENDERERS)})")
    audio_rate = song_sample_rate(config, models, renderer)
    out_dir = Path(out_dir)
    seed = int(config.seed)
    if str(device).startswith("cuda"):  # deterministic cuBLAS (read when CUDA starts its first handle)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with staged_dir(out_dir, replaces=SONG_OUTPUTS, owned_suffixes=SONG_AUDIO_SUFFIXES,
                        folders=SONG_FOLDERS, commit_last="song.json") as stage:
            roll = compose(models, config, seed, device)
            comp_names = [n.lower() for n in models.composer.track_names]
            is_drum = [t.source.lower() not in comp_names or bool(models.composer.is_drum[comp_names.index(
                t.source.lower())]) for t in config.tracks]
            mt = roll_to_multitrack(roll, config, composer_grid(models.composer), is_drum,
                                    learnt_velocities(models, config))
            mt = play_drum_keys(mt, models, config, is_drum)
            pm = multitrack_to_midi(mt)
            write_midi(pm, stage / "song.mid")
            timings["compose_s"] = round(time.perf_counter() - t0, 3)
            note_counts = {t.name: len(inst.notes) for t, inst in zip(config.tracks, pm.instruments)}

            t1 = time.perf_counter()
            audio_facts: dict[str, Any] = {}
            if renderer == "neural":
                stems, facts = render_song_neural(pm, config, models.timbre, device, progress,
                                                  steps_per_beat=composer_grid(models.composer).steps_per_beat)
                audio_facts = write_audio(stage, stems, [t.name for t in config.tracks], config, audio_rate, flac)
                audio_facts.update(facts)
            elif renderer == "fluidsynth":
                audio_facts = render_song_fluidsynth(stage, pm, config, flac, audio_rate)
            timings["render_s"] = round(time.perf_counter() - t1, 3)

            sections = section_table(config, drums=any(is_drum), styles=getattr(models.drums, "styles", None))
            facts = {
                "title": config.title,
                "seed": seed,
                "device": device,
                "renderer": renderer,
                "config": config.to_dict(),
                "weights": {k: weights_facts(p) for k, p in models.paths.items()},
                "tempo": config.tempo,
                "bars": config.n_bars,
                "duration_s": round(float(pm.get_end_time()), 3),
                "sample_rate": audio_rate,
                "note_counts": note_counts,
                "sections": sections,
                # the same keys whatever the renderer: null where it has no value (none: no audio)
                "audio": {**dict.fromkeys(AUDIO_FACTS), **audio_facts},
                "versions": _versions(),
                "timings": timings,
            }
            t2 = time.perf_counter()
            write_report(stage, mt=mt, sections=sections, facts=facts, audio_ext=None if renderer == "none"
                         else (".flac" if flac else ".wav"))
            timings["report_s"] = round(time.perf_counter() - t2, 3)
            timings["total_s"] = round(time.perf_counter() - t0, 3)
            import json

            atomic_write_text(stage / "song.json", json.dumps(facts, indent=2, sort_keys=False, allow_nan=False) + "\n")
            _make_readable(stage)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return out_dir


# --------------------------------------------------------------------------- CLI

def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Generate a whole song (MIDI, WAV, stems, pictures, report) "
                                                       "from a song config.")
    p.add_argument("config", nargs="?", default=None,
                   help=f"song config YAML (default: the project's configs/song/{DEFAULT_CONFIG.name})")
    p.add_argument("--out", default=None, help="output folder (default: out/<title-slug>)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--renderer", choices=RENDERERS, default="neural")
    p.add_argument("--count", type=int, default=1,
                   help="songs to make, seeds seed..seed+N-1, into OUT/seed-<n>/ (N > 1: Lightning's batched "
                        "prediction on one or several devices)")
    p.add_argument("--devices", default=None,
                   help="with --count N > 1: devices for Lightning (auto, a count, -1 for all, or GPU indices "
                        "such as 0,1); several devices share the seeds (DDP)")
    p.add_argument("--flac", action="store_true", help="write FLAC instead of 16-bit WAV")
    return p


def cli_main(argv: list[str]) -> int:
    """``musegansynth generate [CONFIG] [--out DIR] [--seed N] [--device D] [--renderer R] [--count N]
    [--devices D] [--flac]``.

    One song goes into DIR. ``--count N`` (N > 1) makes N songs, seeds seed..seed+N-1, into
    ``DIR/seed-<n>/`` with Lightning's ``Trainer.predict`` (:mod:`pipeline.batch`; Lightning is
    imported only then), on ``--devices``; each is the song ``--seed n`` alone would write.
    Prints each song folder on stdout.
    """
    args = build_parser(argv[0]).parse_args(argv[1:])
    if args.flac and args.renderer == "none":
        raise UserError("--flac: --renderer none writes no audio (leave one of them out)")
    config = load_config(args.config if args.config is not None else DEFAULT_CONFIG)
    if args.count < 1:
        raise UserError(f"--count {args.count}: must be at least 1")
    if args.seed is not None:
        if not 0 <= args.seed < 2**31:
            raise UserError(f"--seed {args.seed}: must be 0 to {2**31 - 1}")
        config = config.with_seed(args.seed)
    if config.seed + args.count - 1 >= 2**31:
        raise UserError(f"--count {args.count}: the last seed {config.seed + args.count - 1} is past {2**31 - 1}")
    device = resolve_device(args.device)
    out = args.out if args.out is not None else Path("out") / config.slug   # checked below ('' too)
    progress = sys.stderr.isatty()
    if args.count == 1:
        out = check_song_dir(out)
        if args.devices is not None:
            print(f"musegansynth: note: --devices {args.devices}: has no effect on one song (it runs on --device; "
                  f"--count N > 1 shares N songs over devices)", file=sys.stderr)
        models = load_models(config, device, args.renderer)
        generate_song(config, out, models=models, device=device, renderer=args.renderer, flac=args.flac,
                      progress=progress)
        print(out)
        return 0
    from pipeline.batch import check_song_dirs, generate_batch, parse_devices

    check_song_dirs(out, range(config.seed, config.seed + args.count))   # before the models load (generate_batch
    out = Path(out)                                                       # checks again, for its other callers)
    devices = parse_devices("auto" if args.devices is None else args.devices)  # checked before any model is loaded
    # on the CPU every rank shares the device: load once here (bad weights fail before Lightning
    # starts); each GPU rank loads its own on its GPU (SongPredictor.setup)
    models = load_models(config, device, args.renderer) if device == "cpu" else None
    # each song's folder is printed as soon as it is written (a script sees what an interrupted run made)
    generate_batch(config, out, count=args.count, device=device, devices=devices, renderer=args.renderer,
                   flac=args.flac, progress=progress, models=models, loader=load_models, announce=True)
    return 0
