"""Note generation from shipped GANSynth weights alone (no Lightning, no dataset, no optimiser).

Weights: ``data/pretrained/audio_<name>.safetensors`` (the EMA generator's state dict, with the
normalisation buffers) next to ``audio_<name>.json`` (format, version, generator
hyper-parameters, spectral config, clip length, pitch / program vocabulary, training steps).

Example::

    tg = TimbreGenerator.load("data/pretrained/audio_default.safetensors", device="cpu")
    z = tg.sample_z(4, torch.Generator().manual_seed(0))
    spec = tg.generate_spec(pitch, program, velocity, z)   # [4, 2, frames, bins]
    waves = tg.generate(pitch, program, velocity, z)       # [4, samples] float32
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from audio.modules import DRUM_PROGRAM, Generator
from pipeline.errors import UserError, is_whole
from pipeline.fileio import atomic_write_text, read_json_object
from pipeline.weights import read_matching_state, write_weights

FORMAT = "musegansynth-audio-generator"
VERSION = 1


def _paths(path_or_stem: str | Path) -> tuple[Path, Path]:
    """(safetensors, json) paths from either file or the common stem."""
    p = Path(path_or_stem)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def timbre_paths(path_or_dir: str | Path, name: str = "default") -> tuple[Path, Path]:
    """(safetensors, json) of a timbre model given as either file, their common stem, or a folder
    holding ``audio_<name>``; UserError for a file of another kind."""
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / f"audio_{name}"
    elif p.is_file() and p.suffix not in (".safetensors", ".json"):
        raise UserError(f"{p}: not timbre model weights (expected a .safetensors file with its .json beside it)")
    return _paths(p)


def save_timbre_generator(path_or_stem: str | Path, generator: Generator, meta: dict[str, Any],
                          name: str = "default") -> Path:
    """Write ``<stem>.safetensors`` (state dict of ``generator``) and ``<stem>.json`` atomically.

    Args:
        path_or_stem: e.g. ``data/pretrained/audio_default`` (suffix optional).
        generator: the (EMA) generator; its norm buffers must hold the data normalisation.
        meta: dict with at least "generator" (its keyword args), "spec" (SpecConfig fields) and
            "clip_frames"; more keys (hparams, vocab, steps) are stored as given.
    Returns:
        Path of the safetensors file.
    """
    st_path, json_path = _paths(path_or_stem)
    write_weights(st_path, generator.state_dict(), kind=f"{FORMAT}/{VERSION}")
    doc = {"format": FORMAT, "version": VERSION, "name": name, **meta}
    atomic_write_text(json_path, json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return st_path


def check_card(meta: dict[str, Any], where: str | Path) -> None:
    """Check a timbre model card's fields before anything is built from them: ``generator`` (an
    object; ``latent_dim``, ``frames``, ``bins``, ``pitch_dim``, ``program_dim`` whole numbers >= 1,
    ``channels`` a non-empty list of them, ``output`` a name, ``tanh_scale`` a number, ``if_prior``
    true/false), ``spec`` (an object), ``clip_frames`` (>= 1), ``programs`` (GM programs 0-127 or
    128 for drums) and ``pitch_vocab`` (``pitched`` / ``drums`` lists of MIDI numbers 0-127).
    Absent optional fields keep their defaults.

    Raises:
        UserError ``"<card>: <field>: <problem>"`` on a hand-edited card that cannot be right.
    """
    def bad(field: str, problem: str) -> UserError:
        return UserError(f"{where}: {field}: {problem}")

    gen = meta.get("generator")
    if not isinstance(gen, dict):
        raise bad("generator", f"expected an object of hyper-parameters, got {gen!r}")
    for key in ("latent_dim", "frames", "bins", "pitch_dim", "program_dim"):
        if key in gen and (not is_whole(gen[key]) or gen[key] < 1):
            raise bad(f"generator.{key}", f"expected a whole number >= 1, got {gen[key]!r}")
    if "channels" in gen:
        ch = gen["channels"]
        if not isinstance(ch, list) or not ch or not all(is_whole(c) and c >= 1 for c in ch):
            raise bad("generator.channels", f"expected a non-empty list of widths (whole numbers >= 1), got {ch!r}")
    if "output" in gen and not isinstance(gen["output"], str):
        raise bad("generator.output", f"expected 'linear' or 'tanh', got {gen['output']!r}")
    if "tanh_scale" in gen and (isinstance(gen["tanh_scale"], bool) or not isinstance(gen["tanh_scale"], (int, float))):
        raise bad("generator.tanh_scale", f"expected a number, got {gen['tanh_scale']!r}")
    if "if_prior" in gen and not isinstance(gen["if_prior"], bool):
        raise bad("generator.if_prior", f"expected true or false, got {gen['if_prior']!r}")
    if not isinstance(meta.get("spec"), dict):
        raise bad("spec", f"expected an object (the spectral config), got {meta.get('spec')!r}")
    clip = meta.get("clip_frames")
    if not is_whole(clip) or clip < 1:
        raise bad("clip_frames", f"expected a whole number of frames >= 1, got {clip!r}")
    if is_whole(gen.get("frames")) and clip != gen["frames"]:   # the generator writes that many frames
        raise bad("clip_frames", f"{clip} does not match generator.frames {gen['frames']}")
    programs = meta.get("programs")
    if programs is not None:
        if not isinstance(programs, list):
            raise bad("programs", f"expected a list of GM programs (0-127, {DRUM_PROGRAM} for drums), got {programs!r}")
        for i, v in enumerate(programs):
            if not is_whole(v) or not 0 <= v <= DRUM_PROGRAM:
                raise bad("programs", f"item {i} is {v!r}, not a GM program 0-127 ({DRUM_PROGRAM} for drums)")
    vocab = meta.get("pitch_vocab")
    if vocab is not None:
        if not isinstance(vocab, dict):
            raise bad("pitch_vocab", f"expected an object with 'pitched' and 'drums' lists, got {vocab!r}")
        for key, value in vocab.items():
            if not isinstance(value, list) or not all(is_whole(v) and 0 <= v <= 127 for v in value):
                raise bad(f"pitch_vocab.{key}", "expected a list of MIDI numbers 0-127")


class TimbreGenerator:
    """GANSynth note generator loaded from shipped weights.

    Attributes:
        sample_rate: Hz of the generated waves.
        latent_dim: size of z.
        transform: the :class:`audio.spectral.SpecTransform` of the spectrograms.
        clip_frames: frames of a generated spectrogram.
        clip_samples: samples of a generated wave (``transform.samples_for(clip_frames)``).
        bins: frequency bins of a generated spectrogram.
        pitch_vocab: {"pitched": [MIDI numbers seen in training], "drums": [drum keys seen]}.
        programs: GM programs seen in training (128 = drums).
        meta: the whole JSON document.
        device: torch device the generator runs on.
    """

    def __init__(self, generator: Generator, meta: dict[str, Any], device: str | torch.device = "cpu",
                 autocast: bool = False):
        from audio.spectral import SpecConfig, SpecTransform  # noqa: PLC0415

        self.device = torch.device(device)
        generator.set_if_prior_for(SpecConfig(**dict(meta["spec"])))
        self.model = generator.to(self.device).eval().requires_grad_(False)
        self.meta = meta
        spec = dict(meta["spec"])
        self.transform = SpecTransform(SpecConfig(**spec))
        self.sample_rate = int(self.transform.config.sample_rate)
        self.latent_dim = int(generator.latent_dim)
        self.clip_frames = int(meta["clip_frames"])
        self.bins = int(generator.bins)
        self.clip_samples = int(self.transform.samples_for(self.clip_frames))
        self.pitch_vocab = meta.get("pitch_vocab", {"pitched": [], "drums": []})
        self.programs = list(meta.get("programs", []))
        self.autocast = bool(autocast) and self.device.type == "cuda"

    # ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path_or_dir: str | Path, device: str | torch.device = "cpu", name: str = "default",
             autocast: bool = False) -> "TimbreGenerator":
        """Load ``audio_<name>.safetensors`` + ``.json``.

        Args:
            path_or_dir: the .safetensors or .json file, their common stem, or a folder holding
                ``audio_<name>.safetensors``.
            device: "cpu", "cuda", ... (a torch device).
            autocast: run the generator under bf16 autocast on CUDA.
        Raises:
            UserError naming the file when it is missing, unreadable or does not match.
        """
        st_path, json_path = timbre_paths(path_or_dir, name)
        for f in (st_path, json_path):
            if not f.is_file():
                raise UserError(f"{f}: timbre model weights not found (train with 'musegansynth train audio')")
        meta = read_json_object(json_path)
        if meta.get("format") != FORMAT:
            raise UserError(f"{json_path}: not a timbre model description (format should be {FORMAT!r})")
        if int(meta.get("version", -1)) > VERSION:
            raise UserError(f"{json_path}: format version {meta.get('version')} is newer than this program's {VERSION}")
        check_card(meta, json_path)  # spec an object, clip_frames a whole number, generator an object
        try:
            generator = Generator(**meta["generator"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"{json_path}: bad or missing hyper-parameters ({exc})") from None
        state = read_matching_state(st_path, generator, f"weights do not match {json_path.name}")
        generator.load_state_dict(state)
        try:
            return cls(generator, meta, device=device, autocast=autocast)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{json_path}: bad spectral config ({exc})") from None

    # ------------------------------------------------------------------------------------------
    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Gaussian timbre latents: Float tensor [n, latent_dim] on :attr:`device`.

        Drawn on the CPU from ``generator`` (so the same seed gives the same z on every device).
        """
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def program_embedding(self, program: int) -> torch.Tensor:
        """Learned embedding row of one program: [program_dim] (mix rows to interpolate timbres)."""
        return self.model.program_embedding.weight[int(program)].detach().clone()

    def _check(self, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor,
               z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pitch, program, velocity = (torch.as_tensor(t).long().to(self.device).reshape(-1)
                                    for t in (pitch, program, velocity))
        z = torch.as_tensor(z).float().to(self.device)
        n = pitch.shape[0]
        if program.shape[0] != n or velocity.shape[0] != n or z.shape != (n, self.latent_dim):
            raise ValueError(f"expected pitch, program, velocity of shape [B] and z of shape [B, {self.latent_dim}], "
                             f"got {tuple(pitch.shape)}, {tuple(program.shape)}, {tuple(velocity.shape)}, "
                             f"{tuple(z.shape)}")
        if n and (int(program.min()) < 0 or int(program.max()) > DRUM_PROGRAM):
            raise ValueError(f"program should be 0-127 or {DRUM_PROGRAM} (drums), got {program.tolist()}")
        if n and (int(pitch.min()) < 0 or int(pitch.max()) > 127):
            raise ValueError("pitch should be a MIDI number 0-127")
        if n and not bool(torch.isfinite(z).all()):   # NaN in, NaN audio out, silently
            raise ValueError("z should be finite (it holds NaN or infinite values)")
        return pitch, program, velocity.clamp(1, 127), z

    @torch.no_grad()
    def generate_spec(self, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor, z: torch.Tensor,
                      program_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Spectrograms of notes.

        Args:
            pitch: Long [B], MIDI numbers (drum keys for program 128).
            program: Long [B], GM program 0-127, 128 = drums.
            velocity: Long [B], 1-127.
            z: Float [B, latent_dim], e.g. from :meth:`sample_z`.
            program_embedding: optional Float [B, program_dim] replacing the programs' rows.
        Returns:
            Float32 tensor [B, 2, clip_frames, bins] on :attr:`device`: log magnitude
            ``log(|X| + 1e-6)`` and IF in [-1, 1], the layout of :attr:`transform`.
        """
        pitch, program, velocity, z = self._check(pitch, program, velocity, z)
        if len(pitch) == 0:   # no notes: no spectrograms (the network's reshapes need a row)
            return torch.zeros(0, 2, self.clip_frames, self.bins, device=self.device)
        if program_embedding is not None:
            program_embedding = program_embedding.to(self.device, torch.float32)
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with ctx:
            x = self.model(z, pitch, program, velocity, program_embedding)
        return self.model.denormalize(x.float())

    @torch.no_grad()
    def generate(self, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor, z: torch.Tensor,
                 program_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Waves of notes: Float32 tensor [B, clip_samples] (see :meth:`generate_spec` for the arguments)."""
        if len(pitch) == 0:   # no notes: no waves
            return torch.zeros(0, self.clip_samples, device=self.device)
        spec = self.generate_spec(pitch, program, velocity, z, program_embedding)
        return self.transform.spec_to_wave(spec, self.clip_samples).float()
