"""GANSynth building blocks: conditional generator, critic, WGAN-GP + auxiliary losses, EMA.

Plain ``nn.Module``s with plain keyword arguments; nothing here reads a config. Imports only
torch at top level, so these modules run on a GPU machine without the audio tool chain.

Layout of a spectrogram everywhere: Float tensor of shape [B, 2, frames, bins], channel 0 the
log magnitude ``log(|X| + 1e-6)``, channel 1 the instantaneous frequency in [-1, 1]. The
networks work on the *normalised* spectrogram ``(spec - mean) / std`` (per channel and bin);
the statistics live as buffers in :class:`Generator` so they travel with the weights.

Conditioning (shared by generator and critic heads):

- pitch: a MIDI number. Pitched programs (0-127) and the drum kit (program 128, General MIDI
  drum keys) use separate vocabularies: ``pitch_index = pitch + 128 * is_drum`` indexes a
  learned embedding of 256 rows, and the auxiliary pitch classifier predicts that index.
- program: a General MIDI program 0-127, 128 for drums, through a *learned embedding*, so
  timbres between programs can be reached by mixing embeddings (see ``Generator.forward``'s
  ``program_embedding`` argument).
- velocity: MIDI velocity 1-127, fed as ``velocity / 127``.
- z: a Gaussian latent of ``latent_dim`` values, the timbre within a program.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

DRUM_PROGRAM = 128
N_PROGRAMS = 129  # 128 General MIDI programs + the drum kit
N_PITCH_INDICES = 256  # 128 pitched MIDI numbers + 128 drum keys


def pitch_index(pitch: torch.Tensor, program: torch.Tensor) -> torch.Tensor:
    """Map (pitch, program) to the joint pitch vocabulary index.

    Args:
        pitch: Long tensor of shape [B], MIDI note numbers 0-127.
        program: Long tensor of shape [B], GM program 0-127 or 128 for drums.
    Returns:
        Long tensor of shape [B] in 0-255: ``pitch`` for pitched programs, ``128 + pitch`` for drums.
    """
    return pitch.clamp(0, 127) + 128 * (program == DRUM_PROGRAM).long()


class PixelNorm(nn.Module):
    """Normalise each position's feature vector to unit root mean square (ProGAN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class UpBlock(nn.Module):
    """Nearest ×2 upsampling, one 3×3 conv, LeakyReLU, pixel norm, conditional scale/shift.

    Args:
        in_channels, out_channels: feature widths.
        cond_dim: size of the conditioning vector that sets a per-channel scale and shift.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = PixelNorm()
        self.film = nn.Linear(cond_dim, 2 * out_channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: [B, C_in, H, W], cond: [B, cond_dim] -> [B, C_out, 2H, 2W] (or [B, C_out, H, W])."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.norm(F.leaky_relu(self.conv(x), 0.2))
        scale, shift = self.film(cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1.0 + scale) + shift


class Generator(nn.Module):
    """Conditional spectrogram generator (GANSynth-style, fixed resolution).

    Args:
        latent_dim: size of the timbre latent z.
        frames: output time frames.
        bins: output frequency bins (mel or linear).
        channels: feature widths, first at the seed resolution, then one per ×2 upsampling
            stage; ``len(channels) - 1`` upsamplings, so the seed is
            ``ceil(frames / 2**n) × ceil(bins / 2**n)`` and the result is cropped to size.
        pitch_dim, program_dim: sizes of the learned pitch and program embeddings.
        output: "linear" (default) or "tanh" (then scaled by ``tanh_scale``); the output lives
            in normalised units.
        if_prior: the IF of a pitched note is a fixed harmonic prior (the IF of a harmonic tone
            at that pitch, :func:`audio.spectral.harmonic_if_prior`, set with
            :meth:`set_if_prior`) plus ``if_residual_gain`` (a learned scalar, 0 at first) times
            the network's IF output. Drums (program 128) keep the network's IF.
        if_residual: with ``if_prior``, False leaves the residual out: a pitched note's IF is the
            prior alone, and only its magnitude is learnt (``if_residual_gain`` is kept, frozen,
            so that weights of either kind load into the other).
    Buffers ``norm_mean`` and ``norm_std`` (shape [2, bins]) hold the data normalisation;
    ``if_prior_table`` ([128, frames, bins], data-space IF) is not saved with the weights, as
    it follows from the spectral config.
    """

    def __init__(self, latent_dim: int = 64, frames: int = 64, bins: int = 128,
                 channels: tuple[int, ...] | list[int] = (128, 96, 64, 48, 32),
                 pitch_dim: int = 32, program_dim: int = 32, output: str = "linear",
                 tanh_scale: float = 3.0, if_prior: bool = False, if_residual: bool = True):
        super().__init__()
        if output not in ("linear", "tanh"):
            raise ValueError(f"output must be 'linear' or 'tanh', got {output!r}")
        if not if_residual and not if_prior:
            raise ValueError("if_residual=False leaves the IF to the harmonic prior: it needs if_prior=True")
        channels = [int(c) for c in channels]
        self.latent_dim, self.frames, self.bins = int(latent_dim), int(frames), int(bins)
        self.output, self.tanh_scale = output, float(tanh_scale)
        n_up = len(channels) - 1
        self.seed_hw = (math.ceil(frames / 2 ** n_up), math.ceil(bins / 2 ** n_up))
        self.pitch_embedding = nn.Embedding(N_PITCH_INDICES, pitch_dim)
        self.program_embedding = nn.Embedding(N_PROGRAMS, program_dim)
        cond_dim = pitch_dim + program_dim + 2  # + velocity + continuous pitch
        self.cond_dim = cond_dim
        self.cond_mlp = nn.Sequential(nn.Linear(cond_dim, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                                      nn.LeakyReLU(0.2))
        in_dim = self.latent_dim + 128
        self.seed = nn.Linear(in_dim, channels[0] * self.seed_hw[0] * self.seed_hw[1])
        self.seed_block = UpBlock(channels[0], channels[0], 128, upsample=False)
        self.blocks = nn.ModuleList(UpBlock(channels[i], channels[i + 1], 128) for i in range(n_up))
        self.to_spec = nn.Conv2d(channels[-1], 2, 1)
        self.register_buffer("norm_mean", torch.zeros(2, self.bins))
        self.register_buffer("norm_std", torch.ones(2, self.bins))
        self.if_prior, self.if_residual = bool(if_prior), bool(if_residual)
        if self.if_prior:
            self.if_residual_gain = nn.Parameter(torch.zeros(()), requires_grad=self.if_residual)
            self.register_buffer("if_prior_table", torch.zeros(128, self.frames, self.bins), persistent=False)
            self.if_prior_ready = False

    def set_if_prior(self, table: torch.Tensor) -> None:
        """Set the data-space IF prior, [128, frames, bins] (see :func:`audio.spectral.harmonic_if_prior`)."""
        if not self.if_prior:
            raise ValueError("set_if_prior: this generator was built with if_prior=False")
        if tuple(table.shape) != tuple(self.if_prior_table.shape):
            raise ValueError(f"IF prior should have shape {tuple(self.if_prior_table.shape)}, got {tuple(table.shape)}")
        self.if_prior_table.copy_(table)
        self.if_prior_ready = True

    def set_if_prior_for(self, spec_config) -> None:
        """With ``if_prior``, set the prior of the representation ``spec_config`` (an
        :class:`audio.spectral.SpecConfig`) at this generator's frames; nothing otherwise."""
        if self.if_prior:
            from audio.spectral import SpecTransform, harmonic_if_prior  # noqa: PLC0415

            self.set_if_prior(harmonic_if_prior(SpecTransform(spec_config), self.frames))

    def condition(self, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor,
                  program_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Conditioning vector [B, 128] from pitch [B], program [B], velocity [B] (long).

        ``program_embedding`` ([B, program_dim]) replaces the looked-up program embedding, e.g.
        a mix of two programs' rows for timbre interpolation.
        """
        p_emb = self.pitch_embedding(pitch_index(pitch, program))
        g_emb = self.program_embedding(program.clamp(0, N_PROGRAMS - 1)) if program_embedding is None \
            else program_embedding
        extra = torch.stack([velocity.float() / 127.0, (pitch.float() - 60.0) / 24.0], dim=1)
        return self.cond_mlp(torch.cat([p_emb, g_emb, extra.to(p_emb.dtype)], dim=1))

    def forward(self, z: torch.Tensor, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor,
                program_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """z: [B, latent_dim]; pitch, program, velocity: Long [B] -> normalised spec [B, 2, frames, bins]."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z should have shape [B, {self.latent_dim}], got {tuple(z.shape)}")
        cond = self.condition(pitch, program, velocity, program_embedding)
        x = self.seed(torch.cat([z, cond], dim=1)).view(z.shape[0], -1, *self.seed_hw)
        x = self.seed_block(x, cond)
        for block in self.blocks:
            x = block(x, cond)
        x = self.to_spec(x)[:, :, : self.frames, : self.bins]
        if self.output == "tanh":
            x = self.tanh_scale * torch.tanh(x / self.tanh_scale)
        if self.if_prior:
            if not self.if_prior_ready:
                raise RuntimeError("Generator(if_prior=True): call set_if_prior() before generating")
            prior = (self.if_prior_table[pitch.clamp(0, 127)] - self.norm_mean[1]) / self.norm_std[1]
            pitched = (program != DRUM_PROGRAM).view(-1, 1, 1)
            pitched_if = prior.to(x.dtype)
            if self.if_residual:
                pitched_if = pitched_if + self.if_residual_gain.to(x.dtype) * x[:, 1]
            if_ = torch.where(pitched, pitched_if, x[:, 1])
            x = torch.stack([x[:, 0], if_], dim=1)
        return x

    def normalize(self, spec: torch.Tensor) -> torch.Tensor:
        """Data-space spec [B, 2, frames, bins] -> normalised units."""
        return (spec - self.norm_mean[:, None, :]) / self.norm_std[:, None, :]

    def denormalize(self, x: torch.Tensor, max_sigma: float = 8.0) -> torch.Tensor:
        """Normalised [B, 2, frames, bins] -> data space (log magnitude; IF clamped to [-1, 1]).

        The log magnitude is first clamped to ``max_sigma`` standard deviations of the data, so an
        untrained or extrapolating generator cannot produce astronomically loud waves.
        """
        x = torch.cat([x[:, :1].clamp(-max_sigma, max_sigma), x[:, 1:]], dim=1)
        spec = x * self.norm_std[:, None, :] + self.norm_mean[:, None, :]
        return torch.cat([spec[:, :1], spec[:, 1:].clamp(-1.0, 1.0)], dim=1)


class Critic(nn.Module):
    """WGAN critic with auxiliary classifier heads (AC-GAN style, as GANSynth).

    Args:
        channels: widths: a 3×3 conv to ``channels[0]``, then one 4×4 stride-2 conv per further
            entry (each halves frames and bins), a 3×3 conv, and a global mean over time and
            frequency (so any input size works).
        n_pitch_classes: size of the pitch head (joint pitched + drum vocabulary, 256).
        n_families: size of the instrument-family head.
        n_programs: size of the program head (0 disables it).
    No batch norm (the gradient penalty needs per-sample gradients).
    """

    def __init__(self, channels: tuple[int, ...] | list[int] = (32, 48, 64, 96, 128),
                 n_pitch_classes: int = N_PITCH_INDICES, n_families: int = 12, n_programs: int = N_PROGRAMS):
        super().__init__()
        channels = [int(c) for c in channels]
        layers: list[nn.Module] = [nn.Conv2d(2, channels[0], 3, padding=1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(channels[-1], channels[-1], 3, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        width = channels[-1]
        self.score = nn.Linear(width, 1)
        self.pitch_head = nn.Linear(width, n_pitch_classes)
        self.family_head = nn.Linear(width, n_families)
        self.program_head = nn.Linear(width, n_programs) if n_programs > 0 else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: normalised spec [B, 2, frames, bins] -> {"score": [B], "pitch": [B, 256],
        "family": [B, n_families], "program": [B, 129] (when enabled)}."""
        h = self.features(x).mean(dim=(2, 3))
        out = {"score": self.score(h).squeeze(1), "pitch": self.pitch_head(h), "family": self.family_head(h)}
        if self.program_head is not None:
            out["program"] = self.program_head(h)
        return out


def gradient_penalty(score_fn: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``mean((||grad_x D(x_hat)||_2 - 1)^2)`` at ``x_hat = a*real + (1-a)*fake``.

    Args:
        score_fn: maps [B, ...] to critic scores [B].
        real, fake: tensors of the same shape [B, ...].
        alpha: [B] mixing weights in [0, 1]; uniform random when None.
    Returns:
        Scalar tensor, differentiable with respect to the critic's parameters.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = score_fn(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


class GANSynthLoss:
    """WGAN-GP + auxiliary classifier + reconstruction losses with named weights.

    ``weights`` keys are also the names under which each term is logged
    (``train/critic/<name>`` for critic terms, ``train/gen/<name>`` for generator terms):

    - ``wgan``: Wasserstein term (critic: ``D(fake) - D(real)``; generator: ``-D(fake)``).
    - ``gp``: gradient penalty (critic only, λ = 10 in the paper).
    - ``drift``: ε·D(real)² keeping critic scores near 0 (ProGAN; critic only).
    - ``aux_pitch``, ``aux_family``, ``aux_program``: cross-entropy of the critic's heads, on real
      notes in the critic step and on generated notes in the generator step.
    - ``recon_mag``: L1 between generated and real log magnitude (normalised units) for the same
      (pitch, program, velocity) (generator only).
    - ``recon_if``: L1 between generated and real IF, weighted by the real note's magnitude
      (generator only).
    """

    CRITIC_TERMS = ("wgan", "gp", "drift", "aux_pitch", "aux_family", "aux_program")
    GENERATOR_TERMS = ("wgan", "aux_pitch", "aux_family", "aux_program", "recon_mag", "recon_if")
    DEFAULT_WEIGHTS = {"wgan": 1.0, "gp": 10.0, "drift": 1e-3, "aux_pitch": 1.0, "aux_family": 1.0,
                       "aux_program": 0.5, "recon_mag": 1.0, "recon_if": 1.0}

    def __init__(self, weights: dict[str, float] | None = None):
        merged = dict(self.DEFAULT_WEIGHTS)
        for key, value in (weights or {}).items():
            if key not in merged:
                raise ValueError(f"unknown loss weight {key!r}; known: {sorted(merged)}")
            merged[key] = float(value)
        self.weights = merged

    def _aux(self, out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = {}
        for name in ("pitch", "family", "program"):
            if name in out and self.weights[f"aux_{name}"] != 0.0:
                terms[f"aux_{name}"] = F.cross_entropy(out[name].float(), targets[name])
            else:
                terms[f"aux_{name}"] = out["score"].new_zeros(())
        return terms

    def critic_loss(self, real_out: dict[str, torch.Tensor], fake_out: dict[str, torch.Tensor], gp: torch.Tensor,
                    targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total critic loss and its unweighted terms (keys = ``CRITIC_TERMS``).

        Args:
            real_out, fake_out: critic outputs on real and generated batches.
            gp: the gradient penalty (scalar).
            targets: {"pitch": [B] pitch indices, "family": [B], "program": [B]} of the real batch.
        """
        terms = {"wgan": fake_out["score"].float().mean() - real_out["score"].float().mean(), "gp": gp.float(),
                 "drift": real_out["score"].float().pow(2).mean()}
        terms.update(self._aux(real_out, targets))
        return self._total(terms), terms

    def generator_loss(self, fake_out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                       fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total generator loss and its unweighted terms (keys = ``GENERATOR_TERMS``).

        Args:
            fake_out: critic outputs on the generated batch.
            targets: the conditioning the generator was given (as in :meth:`critic_loss`).
            fake, real: normalised specs [B, 2, frames, bins]; ``real[i]`` has the conditioning of ``fake[i]``.
        """
        terms = {"wgan": -fake_out["score"].float().mean()}
        terms.update(self._aux(fake_out, targets))
        fake, real = fake.float(), real.float()
        terms["recon_mag"] = (fake[:, 0] - real[:, 0]).abs().mean()
        # weight IF errors by the real magnitude (softmax-free: min-max of the normalised log magnitude)
        mag = real[:, 0]
        lo = mag.amin(dim=(1, 2), keepdim=True)
        hi = mag.amax(dim=(1, 2), keepdim=True)
        weight = (mag - lo) / (hi - lo + 1e-6)
        terms["recon_if"] = ((fake[:, 1] - real[:, 1]).abs() * weight).sum() / (weight.sum() + 1e-6)
        return self._total(terms), terms

    def _total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[k] * v for k, v in terms.items() if self.weights[k] != 0.0)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: ``ema_param = decay * ema_param + (1 - decay) * param``; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
