"""The note renderer: notes -> one waveform stem per track, voiced by the timbre model.

Pipeline for a list of :class:`RenderNote`:

1. Each note gets a *key* ``(program, pitch, velocity step, timbre)``: velocity is quantised to
   ``velocity_steps`` steps (the model is asked for the step's centre velocity); ``timbre``
   indexes a table of latent vectors (one per track, or per track and section when the timbre
   morphs). Identical keys are rendered once and cached (also across calls).
2. Unique keys go to :meth:`TimbreGenerator.generate_spec` in batches (on the GPU when there is
   one, under autocast), giving ``[B, 2, clip_frames, bins]`` log magnitude + IF spectrograms.
3. Sustain extension (:func:`extend_spec`): a note longer than the clip's steady part keeps the
   clip up to the end of a *steady window* (by default 45-65 % of the clip: the training notes
   were held for 3 of 4 s, so this is well before their note-off), blending across the window
   into a *held frame* (mean log magnitude, circular mean IF of the window), then repeats that
   held frame. Because the inverse transform integrates the IF into phase, the phase just keeps
   advancing at each partial's frequency: no seam, no click. Everything happens in the spectral
   domain; one inverse STFT per key gives the wave.
4. Envelope (:func:`envelope`, as GANSynth's reference MIDI renderer): 10 ms linear attack,
   sustain to the note's end (notes capped at ``max_note_s``), 0.3 s linear release. Velocity is
   a gain (``velocity / 127``). Drum notes (program :data:`DRUM_PROGRAM`, pitch = GM percussion
   key) sound for ``drum_hold_s`` whatever their written length, and are never extended: a hit
   keeps the model's own frames and decays, and past the clip's end it is silent. A drum key the
   model never learnt (its card's ``pitch_vocab``) is left out, as a GM kit leaves keys outside
   35-81 silent.
5. A pitched note outside the pitches the model learnt (its card's ``pitch_range``) is played at
   its own pitch: the model plays it whole octaves into its range, and that wave is resampled by
   a power of two (``soxr.resample``, which filters against aliasing): an octave
   up plays the model's note twice as fast, so it is asked for twice the samples. The timbre
   moves with the pitch (its formants an octave up too), and an octave up keeps only the model's
   partials below a quarter of the sample rate. A note whose fundamental the sample rate cannot
   hold (above MIDI 117 at 16 kHz) sounds whole octaves lower.
6. The note is added into its stem at sample ``round(start_s * sample_rate)``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

#: Program number the timbre model uses for drum notes (pitch = GM percussion key).
DRUM_PROGRAM = 128
#: Envelope of GANSynth's reference renderer.
ATTACK_S = 0.010
RELEASE_S = 0.3
#: Longest held part of a note, in seconds (longer notes are cut there, then released).
MAX_NOTE_S = 8.0
#: How long a drum hit sounds before its release, in seconds (None: the model's clip less the
#: release, so that the hit decays as the model made it and fades out by the clip's end).
DRUM_HOLD_S = None
VELOCITY_STEPS = 8
#: Fractions of the clip whose frames define the held (steady) sound of a sustained note.
STEADY_WINDOW = (0.45, 0.65)


@dataclass(frozen=True)
class RenderNote:
    """One note to render.

    Attributes:
        stem: index of the output stem (track) 0..n_stems-1.
        program: GM program 0-127, or :data:`DRUM_PROGRAM` for drums.
        pitch: MIDI number 0-127 (for drums the GM percussion key).
        velocity: MIDI velocity 1-127.
        start_s: onset in seconds.
        end_s: note-off in seconds (> start_s).
        timbre: row of the timbre table (``timbres`` argument of :meth:`NoteRenderer.render`).
    """

    stem: int
    program: int
    pitch: int
    velocity: int
    start_s: float
    end_s: float
    timbre: int = 0

    @property
    def is_drum(self) -> bool:
        return self.program == DRUM_PROGRAM


def quantize_velocity(velocity: int, steps: int = VELOCITY_STEPS) -> tuple[int, int]:
    """(step 0..steps-1, the step's centre velocity 1..127) of a MIDI velocity 1-127."""
    v = int(min(127, max(1, velocity)))
    step = min(steps - 1, v * steps // 128)
    return step, step_velocity(step, steps)


def step_velocity(step: int, steps: int = VELOCITY_STEPS) -> int:
    """The centre velocity (1..127) of velocity step ``step`` of ``steps``."""
    return int(min(127, max(1, round((step + 0.5) * 128 / steps))))


def envelope(hold_samples: int, sample_rate: int, attack_s: float = ATTACK_S,
             release_s: float = RELEASE_S) -> np.ndarray:
    """Amplitude envelope of one note: float32 ``[hold_samples + release samples]``.

    Linear attack from 0 over ``attack_s`` (sample ``i`` of the attack is ``i / attack``), 1.0
    until ``hold_samples``, then a linear release to 0 over ``release_s``: sample
    ``hold_samples + j`` is ``level * (1 - j / release)`` where ``level`` is the envelope at the
    note-off (below 1 only for notes shorter than the attack).
    """
    attack = max(1, int(round(attack_s * sample_rate)))
    release = max(1, int(round(release_s * sample_rate)))
    hold = max(0, int(hold_samples))
    env = np.ones(hold + release, dtype=np.float32)
    a = min(attack, hold)
    env[:a] = np.arange(a, dtype=np.float32) / attack
    level = min(1.0, hold / attack)
    env[hold:] = level * (1.0 - np.arange(release, dtype=np.float32) / release)
    return env


def _circular_mean_if(if_: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of IF values (units of pi rad) on the circle: wrapping at +-1 does not bias it."""
    ang = if_ * math.pi
    return torch.atan2(torch.sin(ang).mean(dim), torch.cos(ang).mean(dim)) / math.pi


def _blend_if(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """IF interpolation on the circle: ``w`` = 0 gives ``a``, 1 gives ``b``."""
    za = torch.polar(torch.ones_like(a), a * math.pi)
    zb = torch.polar(torch.ones_like(b), b * math.pi)
    return torch.angle((1 - w) * za + w * zb) / math.pi


def extend_spec(spec: torch.Tensor, frames: int, steady: tuple[float, float] = STEADY_WINDOW) -> torch.Tensor:
    """Lengthen (or cut) note spectrograms to ``frames`` frames by holding their steady sound.

    Args:
        spec: float tensor [B, 2, clip_frames, bins] (log magnitude, IF in units of pi per hop).
        frames: frames wanted.
        steady: the steady window as fractions of ``clip_frames``.

    Returns:
        Float tensor [B, 2, frames, bins]. Where ``frames`` <= the window's end frame the clip is
        just cut. Else frames before the window are kept, frames in the window blend linearly
        into the held frame (log magnitude: the window's mean; IF: its circular mean), and every
        frame after it is the held frame, so magnitude and phase advance are continuous.
    """
    if spec.dim() != 4 or spec.shape[1] != 2:
        raise ValueError(f"spec should have shape [B, 2, frames, bins], got {tuple(spec.shape)}")
    clip = spec.shape[2]
    lo = max(0, min(clip - 1, int(round(steady[0] * clip))))
    hi = max(lo + 1, min(clip, int(round(steady[1] * clip))))
    if frames <= hi:
        if frames <= clip:
            return spec[:, :, :frames]
    window = spec[:, :, lo:hi]
    held_mag = window[:, 0].mean(dim=1)  # [B, bins]
    held_if = _circular_mean_if(window[:, 1], dim=1)
    w = torch.linspace(0.0, 1.0, hi - lo + 1, device=spec.device, dtype=spec.dtype)[1:, None]  # [n, 1]
    blend_mag = (1 - w) * window[:, 0] + w * held_mag[:, None]
    blend_if = _blend_if(window[:, 1], held_if[:, None].expand_as(window[:, 1]), w)
    n_hold = frames - hi
    hold_mag = held_mag[:, None].expand(-1, n_hold, -1)
    hold_if = held_if[:, None].expand(-1, n_hold, -1)
    mag = torch.cat([spec[:, 0, :lo], blend_mag, hold_mag], dim=1)
    if_ = torch.cat([spec[:, 1, :lo], blend_if, hold_if], dim=1)
    return torch.stack([mag, if_], dim=1)


def sounding_spec(spec: torch.Tensor, frames: int, drums: torch.Tensor,
                  steady: tuple[float, float] = STEADY_WINDOW) -> torch.Tensor:
    """Note spectrograms [B, 2, clip_frames, bins] as they sound for ``frames`` frames in a song.

    A pitched note holds its steady sound (:func:`extend_spec`); a drum hit (``drums``: Bool [B])
    keeps its own frames and decays: silence after its clip.
    """
    clip = spec.shape[2]
    out = extend_spec(spec, frames, steady)
    if bool(drums.any()):
        out = out.clone() if out.data_ptr() == spec.data_ptr() else out
        out[drums, :, :min(clip, frames)] = spec[drums, :, :min(clip, frames)]
        out[drums, 0, clip:] = math.log(1e-6)
    return out


def timbre_latent(seed: int, latent_dim: int) -> torch.Tensor:
    """A timbre latent drawn from N(0, 1) with its own seed: float32 [latent_dim] (CPU)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(latent_dim, generator=g)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between two latents [D] (keeps a Gaussian latent's norm typical)."""
    if t <= 0:
        return a.clone()
    if t >= 1:
        return b.clone()
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos(torch.clamp((an * bn).sum(), -1.0, 1.0))
    if float(omega) < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


#: The highest fundamental a resampled note is given, as a share of the sample rate (below the
#: Nyquist frequency, half of it, with room for the resampler's filter).
TOP_FUNDAMENTAL = 0.45


def highest_pitch(sample_rate: int) -> int:
    """The highest MIDI pitch whose fundamental is at most :data:`TOP_FUNDAMENTAL` of
    ``sample_rate`` (117 at 16 kHz)."""
    return int(math.floor(69 + 12 * math.log2(TOP_FUNDAMENTAL * sample_rate / 440.0)))


def model_samples(samples: int, shift: int) -> int:
    """Samples of the model's note that give ``samples`` once moved ``shift`` octaves by
    resampling (an octave up halves its length)."""
    return samples * 2 ** shift if shift >= 0 else -(-samples // 2 ** -shift)


def playable(generator) -> tuple[tuple[int, int] | None, set[int] | None]:
    """What a timbre model plays as it is: the range of pitched notes it learnt (``pitch_range``,
    else its ``pitch_vocab``'s) and the set of drum keys it learnt; None for what its card does
    not say. A pitched note outside the range is played octaves into it and resampled back to its
    pitch; a drum key outside the set is left out (:class:`NoteRenderer`)."""
    vocab = getattr(generator, "pitch_vocab", None) or {}
    pr = getattr(generator, "pitch_range", None)
    if pr is None and vocab.get("pitched"):
        pr = (min(vocab["pitched"]), max(vocab["pitched"]))
    drums = {int(k) for k in vocab.get("drums") or []}
    return (None if pr is None else (int(pr[0]), int(pr[1]))), (drums or None)


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class NoteRenderer:
    """Renders notes with a timbre model into stems, caching identical notes.

    Args:
        generator: an object following ``audio.generate.TimbreGenerator``'s contract
            (``sample_rate``, ``latent_dim``, ``transform``, ``clip_frames``, ``generate_spec``).
        device: "auto", "cpu" or "cuda" (the generator must already live there).
        batch_size: notes per ``generate_spec`` / inverse STFT call.
        velocity_steps: velocity quantisation steps of the cache key.
        attack_s, release_s: envelope (seconds).
        max_note_s: notes held longer are cut to this (seconds).
        drum_hold_s: how long drum notes sound before the release (seconds).
        steady: the steady window of :func:`extend_spec`.
        progress: show a tqdm bar over the batches.
    """

    def __init__(self, generator, *, device: str | torch.device = "cpu", batch_size: int = 32,
                 velocity_steps: int = VELOCITY_STEPS, attack_s: float = ATTACK_S, release_s: float = RELEASE_S,
                 max_note_s: float = MAX_NOTE_S, drum_hold_s: float | None = DRUM_HOLD_S,
                 steady: tuple[float, float] = STEADY_WINDOW, progress: bool = False) -> None:
        self.generator = generator
        self.device = _resolve_device(device)
        self.batch_size = int(batch_size)
        self.velocity_steps = int(velocity_steps)
        self.attack_s, self.release_s = float(attack_s), float(release_s)
        clip_s = getattr(generator, "clip_samples", 0) / generator.sample_rate
        self.max_note_s = float(max_note_s)
        self.drum_hold_s = float(drum_hold_s) if drum_hold_s is not None else max(0.0, clip_s - self.release_s)
        self.steady = steady
        self.progress = progress
        self.sample_rate = int(generator.sample_rate)
        self.transform = generator.transform
        self._cache: dict[tuple, np.ndarray] = {}
        self._shifted: dict[tuple, np.ndarray] = {}   # (key, octaves) -> resampled wave
        self._timbres: torch.Tensor | None = None
        #: notes the model has generated so far (rows given to ``generate_spec``).
        self.generated = 0
        #: the pitched notes' range and the drum keys the model learnt (None: unknown)
        self.pitch_range, self.drum_keys = playable(generator)

    # -------------------------------------------------------------------------------------- keys
    def hold_samples(self, note: RenderNote) -> int:
        """Samples from the onset to the start of the release."""
        held = self.drum_hold_s if note.is_drum else min(self.max_note_s, max(0.0, note.end_s - note.start_s))
        return int(round(held * self.sample_rate))

    def model_pitch(self, note: RenderNote) -> int:
        """The pitch asked of the model: out-of-range pitched notes move by octaves into range
        (and are resampled back to their pitch: :meth:`octave_shift`), from the pitch they sound at
        (:meth:`sounding_pitch`)."""
        return self._into_range(note, self.sounding_pitch(note))

    def _into_range(self, note: RenderNote, p: int) -> int:
        """A pitched note's sounding pitch ``p`` moved whole octaves into the model's range."""
        if note.is_drum or self.pitch_range is None:
            return p
        lo, hi = self.pitch_range
        while p < lo:
            p += 12
        while p > hi:
            p -= 12
        return p

    def sounding_pitch(self, note: RenderNote) -> int:
        """The pitch a note sounds at: its own, or whole octaves lower where its fundamental is
        above :data:`TOP_FUNDAMENTAL` of the sample rate, which the sample rate cannot hold
        (MIDI 117 is the highest at 16 kHz; a note of 118 would be filtered away)."""
        p, top = int(note.pitch), highest_pitch(self.sample_rate)
        while not note.is_drum and p > top:
            p -= 12
        return p

    def octave_shift(self, note: RenderNote) -> int:
        """Octaves from the pitch asked of the model to the pitch the note sounds at
        (:meth:`sounding_pitch`): positive above the range the model learnt, negative below, 0
        inside it (and for drums)."""
        p = self.sounding_pitch(note)
        return (p - self._into_range(note, p)) // 12

    def shifted(self, k: tuple, shift: int, samples: int) -> np.ndarray:
        """The cached note ``k`` moved ``shift`` octaves by resampling, at least ``samples`` long
        when the model's note was long enough (:func:`model_samples`); cached too."""
        if shift == 0:
            return self._cache[k]
        got = self._shifted.get((k, shift))
        if got is None or len(got) < samples:
            import soxr

            # read at 2**shift times the rate: an octave up is twice as fast, half as long
            got = soxr.resample(self._cache[k], 2 ** max(shift, 0), 2 ** max(-shift, 0))
            got = self._shifted[(k, shift)] = np.ascontiguousarray(got, dtype=np.float32)
        return got

    def key(self, note: RenderNote) -> tuple[int, int, int, int]:
        """Cache key ``(program, model pitch, velocity step, timbre)``."""
        step, _ = quantize_velocity(note.velocity, self.velocity_steps)
        return (int(note.program), self.model_pitch(note), step, int(note.timbre))

    # ------------------------------------------------------------------------------- rendering
    def render_keys(self, needs: dict[tuple, int], timbres: torch.Tensor) -> None:
        """Render every key of ``needs`` (key -> samples needed) that the cache lacks (or has shorter)."""
        todo = sorted((k for k, n in needs.items() if k not in self._cache or len(self._cache[k]) < n),
                      key=lambda k: (needs[k], k))
        if not todo:
            return
        tr = self.transform
        batches = [todo[i:i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        it: Iterable = batches
        if self.progress:
            from tqdm import tqdm

            it = tqdm(batches, desc="rendering notes", unit="batch", leave=False)
        timbres = timbres.to(self.device, torch.float32)
        for batch in it:
            pitch = torch.tensor([k[1] for k in batch], dtype=torch.long, device=self.device)
            program = torch.tensor([k[0] for k in batch], dtype=torch.long, device=self.device)
            velocity = torch.tensor([step_velocity(k[2], self.velocity_steps) for k in batch],
                                    dtype=torch.long, device=self.device)
            z = timbres[torch.tensor([k[3] for k in batch], device=self.device)]
            autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                        else contextlib.nullcontext())
            with torch.inference_mode(), autocast:
                spec = self.generator.generate_spec(pitch, program, velocity, z)
            spec = spec.float()
            self.generated += len(batch)
            samples = max(needs[k] for k in batch)
            frames = tr.frames_for(samples)
            with torch.inference_mode():
                drums = torch.tensor([k[0] == DRUM_PROGRAM for k in batch], device=spec.device)
                spec = sounding_spec(spec, frames, drums, self.steady)
                waves = tr.spec_to_wave(spec, samples).float().cpu().numpy()
            for k, w in zip(batch, waves):
                self._cache[k] = np.ascontiguousarray(w[: needs[k]], dtype=np.float32)

    @staticmethod
    def check_note(note: RenderNote) -> None:
        """ValueError naming a note whose times or pitch cannot be rendered: a start that is not a
        number >= 0, an end not at or after it, a pitch outside MIDI 0-127."""
        if not (math.isfinite(note.start_s) and note.start_s >= 0):
            raise ValueError(f"note {note} starts at {note.start_s} s (expected a number of seconds >= 0)")
        if not (math.isfinite(note.end_s) and note.end_s >= note.start_s):
            raise ValueError(f"note {note} ends at {note.end_s} s, before it starts")
        if not 0 <= int(note.pitch) <= 127:
            raise ValueError(f"note {note} has pitch {note.pitch} outside MIDI 0-127")

    def plays(self, note: RenderNote) -> bool:
        """Whether the note is heard: not a drum hit on a key the model never learnt (silent, as a
        GM kit is outside its keys)."""
        return not (note.is_drum and self.drum_keys is not None and int(note.pitch) not in self.drum_keys)

    def render(self, notes: Sequence[RenderNote], timbres: torch.Tensor, n_stems: int,
               n_samples: int | None = None, end_s: float | None = None) -> np.ndarray:
        """Render notes into stems.

        Args:
            notes: the notes (``stem`` < ``n_stems``; ``timbre`` < ``len(timbres)``).
            timbres: float tensor [K, latent_dim], the timbre latents notes index.
            n_stems: number of stems.
            n_samples: length of the stems; default: the end of the last heard note's release (a
                drum hit sounds for ``drum_hold_s`` whatever its written length), so that no note
                is cut short, and with ``end_s`` (a file's end, in seconds) at least to that end
                and the release.

        Returns:
            float32 array [n_stems, n_samples]: the sum of each stem's notes.
        """
        if timbres.dim() != 2 or timbres.shape[1] != self.generator.latent_dim:
            raise ValueError(f"timbres should have shape [K, {self.generator.latent_dim}], got {tuple(timbres.shape)}")
        sr = self.sample_rate
        release = max(1, int(round(self.release_s * sr)))
        placed = []
        needs: dict[tuple, int] = {}
        for n in notes:
            self.check_note(n)
            if not self.plays(n):
                continue
            if not 0 <= n.stem < n_stems:
                raise ValueError(f"note {n} has stem {n.stem} outside 0..{n_stems - 1}")
            if not 0 <= n.timbre < len(timbres):
                raise ValueError(f"note {n} has timbre {n.timbre} outside 0..{len(timbres) - 1}")
            hold = self.hold_samples(n)
            k, shift = self.key(n), self.octave_shift(n)
            needs[k] = max(needs.get(k, 0), model_samples(hold + release, shift))
            placed.append((n, k, shift, hold, int(round(n.start_s * sr))))
        self.render_keys(needs, timbres)
        ends = [onset + hold + release for _, _, _, hold, onset in placed]
        if end_s is not None:
            ends.append(int(math.ceil((end_s + self.release_s) * sr)))
        total = max(ends, default=0) if n_samples is None else int(n_samples)
        stems = np.zeros((n_stems, total), dtype=np.float32)
        envs: dict[int, np.ndarray] = {}
        for n, k, shift, hold, onset in placed:
            if onset >= total:
                continue
            env = envs.get(hold)
            if env is None:
                env = envs[hold] = envelope(hold, sr, self.attack_s, self.release_s)
            wave = self.shifted(k, shift, len(env))[: len(env)] * env * (min(127, max(1, n.velocity)) / 127.0)
            stop = min(total, onset + len(wave))
            stems[n.stem, onset:stop] += wave[: stop - onset]
        return stems


def notes_from_midi(pm, *, program_of=None) -> tuple[list[str], list[RenderNote]]:
    """Stems and notes of a PrettyMIDI: one stem per instrument.

    Args:
        pm: ``pretty_midi.PrettyMIDI``.
        program_of: optional ``f(program, is_drum) -> program`` mapping a MIDI program to the one
            rendered (e.g. the nearest the model knows). Drums always use :data:`DRUM_PROGRAM`.

    Returns:
        (stem names, notes with ``timbre`` = stem index).
    """
    names: list[str] = []
    notes: list[RenderNote] = []
    used: set[str] = set()
    for i, inst in enumerate(pm.instruments):
        base = (inst.name or "").strip() or ("drums" if inst.is_drum else f"track{i}")
        name, j = base, 2
        while name.lower() in used:
            name, j = f"{base}_{j}", j + 1
        used.add(name.lower())
        names.append(name)
        prog = DRUM_PROGRAM if inst.is_drum else int(inst.program)
        if program_of is not None and not inst.is_drum:
            prog = int(program_of(prog, False))
        for n in inst.notes:
            if n.end > n.start and n.velocity > 0:
                notes.append(RenderNote(i, prog, int(n.pitch), int(n.velocity), float(n.start), float(n.end), i))
    notes.sort(key=lambda n: (n.start_s, n.stem, n.pitch))
    return names, notes
