"""LightningModule for the GANSynth timbre model and the callback that exports its EMA generator.

Training (manual optimisation, two optimisers):

- critic step on every batch: WGAN loss on real vs generated notes, gradient penalty (every
  ``gp_every`` critic steps, scaled by ``gp_every`` as in lazy regularisation), drift term, and
  the auxiliary pitch / family / program classification of the *real* notes;
- generator step every ``n_critic`` batches: ``-D(fake)``, the auxiliary classification of the
  generated notes against the conditioning they were given, and the reconstruction L1 against
  the batch's own real notes (the generator is conditioned on the real batch's pitch, program
  and velocity, so ``real[i]`` is a note with the conditioning of ``fake[i]``);
- an exponential moving average of the generator (``generator_ema``) after each generator step:
  it is what validation, the logged samples and the exported weights use.

With ``if_prior`` the IF of pitched notes is a harmonic prior plus a learned residual
(:class:`audio.modules.Generator`): the reconstruction L1 on the IF alone left low notes a
semitone or two off (the IF, not the magnitude, decides where a low note's harmonics land).

Everything is at one fixed resolution (no progressive growing): with the reconstruction term the
fixed-resolution model trains stably from the first steps, and progressive growing's phases
would cost most of a short CPU budget at resolutions nobody listens to.

Imports only torch, numpy, lightning and the project's own pure modules at top level.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from audio.datamodule import batch_to_dict
from audio.modules import (N_PITCH_INDICES, N_PROGRAMS, Critic, GANSynthLoss, Generator, count_parameters,
                           ema_update, gradient_penalty, pitch_index)
from pipeline.errors import UserError
from pipeline.training import check_at_least_one, check_ranges


class GANSynthModule(L.LightningModule):
    """GANSynth-style conditional note GAN.

    Args:
        latent_dim: size of the timbre latent z.
        frames, bins: spectrogram size [frames, bins] (frames = the data module's clip_frames).
        g_channels: generator widths (seed, then one per ×2 upsampling).
        d_channels: critic widths (one per stride-2 stage).
        pitch_dim, program_dim: embedding sizes.
        g_output: "linear" or "tanh" output of the generator (normalised units).
        n_families: size of the family head (12: NSynth's 11 + drums).
        program_head: add the auxiliary program classifier head.
        loss_weights: weights by term name (see :class:`audio.modules.GANSynthLoss`); the keys
            are the logged names ``train/critic/<key>`` / ``train/gen/<key>``.
        lr_g, lr_d, betas: Adam settings.
        n_critic: critic steps per generator step.
        gp_every: compute the gradient penalty every this many critic steps (1 = always).
        ema_decay: generator EMA decay (warmed up as ``min(decay, (1 + n) / (10 + n))``).
        adv_start, adv_ramp: the generator's adversarial term (``wgan``) is off for the first
            ``adv_start`` generator steps, then ramps linearly to its weight over ``adv_ramp``
            steps (reconstruction-led warm-up; the critic trains from the start).
        sample_rate, n_fft, hop, n_mels: the spectral representation (for audio logging and export).
        media_every_n_steps: log spectrogram images and audio every this many generator steps (0 = never).
        if_prior, if_residual: the generator's (:class:`audio.modules.Generator`); ``if_residual``
            false trains the magnitudes alone under the prior's IF (weights with a residual load,
            their gain kept but not used).
        init_weights: optional path to an exported ``audio_<name>.safetensors`` (as
            :class:`ExportEMAGenerator` writes): the generator and its EMA copy start from those
            weights (continue training from shipped weights when no checkpoint exists; the critic
            and the optimisers start fresh, the step counters at 0). The source's step counts (from
            the JSON next to it, when present) are recorded in the export as ``init``. A resumed
            checkpoint (``--ckpt_path``) overrides these weights.
    """

    def __init__(self, latent_dim: int = 64, frames: int = 64, bins: int = 128,
                 g_channels: list[int] = [128, 96, 48, 24, 12], d_channels: list[int] = [12, 24, 48, 96, 128],
                 pitch_dim: int = 32, program_dim: int = 32, g_output: str = "linear", n_families: int = 12,
                 program_head: bool = True, loss_weights: dict[str, float] | None = None,
                 lr_g: float = 3e-4, lr_d: float = 3e-4, betas: tuple[float, float] = (0.5, 0.9),
                 n_critic: int = 1, gp_every: int = 1, ema_decay: float = 0.999,
                 adv_start: int = 0, adv_ramp: int = 0,
                 sample_rate: int = 16000, n_fft: int = 512, hop: int = 128, n_mels: int | None = 128,
                 media_every_n_steps: int = 500, init_weights: str | None = None, if_prior: bool = False,
                 if_residual: bool = True):
        super().__init__()
        check_at_least_one(**{"model.latent_dim": latent_dim, "model.n_critic": n_critic, "model.gp_every": gp_every})
        inf = math.inf
        check_ranges(**{"model.lr_g": (lr_g, 0, inf, "(]"), "model.lr_d": (lr_d, 0, inf, "(]"),
                        "model.betas[0]": (betas[0], 0, 1, "[)"), "model.betas[1]": (betas[1], 0, 1, "[)"),
                        "model.ema_decay": (ema_decay, 0, 1, "[]"), "model.adv_start": (adv_start, 0, inf, "[]"),
                        "model.adv_ramp": (adv_ramp, 0, inf, "[]"),
                        "model.media_every_n_steps": (media_every_n_steps, 0, inf, "[]"),
                        **{f"model.loss_weights.{k}": (v, 0, inf, "[]") for k, v in (loss_weights or {}).items()}})
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator_kwargs = dict(latent_dim=latent_dim, frames=frames, bins=bins, channels=list(g_channels),
                                     pitch_dim=pitch_dim, program_dim=program_dim, output=g_output)
        if if_prior:
            self.generator_kwargs["if_prior"] = True
        if not if_residual:
            if not if_prior:
                raise UserError("model.if_residual false: the IF is then the harmonic prior's alone, so it needs "
                                "model.if_prior true")
            self.generator_kwargs["if_residual"] = False
        self.generator = Generator(**self.generator_kwargs)
        if if_prior:
            from audio.spectral import SpecConfig  # noqa: PLC0415

            try:
                self.generator.set_if_prior_for(SpecConfig(sample_rate=sample_rate, n_fft=n_fft, hop=hop,
                                                           n_mels=n_mels))
            except ValueError as exc:
                raise UserError(f"model.if_prior: {exc} (model.frames / model.bins must match the data)") from None
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.critic = Critic(channels=list(d_channels), n_families=n_families,
                             n_programs=N_PROGRAMS if program_head else 0)
        weights = dict(loss_weights or {})
        if not program_head:
            weights["aux_program"] = 0.0
        try:
            self.loss = GANSynthLoss(weights)
        except ValueError as exc:
            raise UserError(f"model.loss_weights: {exc}") from None
        # vocabulary seen in training (exported so that callers know what the model was taught)
        self.register_buffer("seen_pitch", torch.zeros(N_PITCH_INDICES, dtype=torch.bool))
        self.register_buffer("seen_program", torch.zeros(N_PROGRAMS, dtype=torch.bool))
        self.register_buffer("gen_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("critic_steps", torch.zeros((), dtype=torch.long))
        self._transform = None
        self.init_info: dict[str, Any] | None = None
        if init_weights:
            state = load_generator_weights(init_weights, self.generator)
            self.generator.load_state_dict(state)
            self.generator_ema.load_state_dict(state)
            self.init_info = _init_info(init_weights)

    # ------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or getattr(dm, "norm_mean", None) is None:
            return
        if dm.bins != self.hparams.bins:
            raise UserError(f"model.bins={self.hparams.bins} but the data's spectrograms have {dm.bins} bins "
                            f"(set model.bins, or data.n_mels / data.n_fft)")
        for g in (self.generator, self.generator_ema):
            g.norm_mean.copy_(dm.norm_mean)
            g.norm_std.copy_(dm.norm_std)
        spec, pitch, velocity, program, family = dm.train_set.tensors
        self.seen_pitch[pitch_index(pitch, program)] = True
        self.seen_program[program.clamp(0, N_PROGRAMS - 1)] = True

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(self.critic.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))
        return [opt_g, opt_d]

    def forward(self, z: torch.Tensor, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """EMA generator: z [B, latent_dim], pitch/program/velocity Long [B] -> data-space spec [B, 2, frames, bins]."""
        return self.generator_ema.denormalize(self.generator_ema(z, pitch, program, velocity))

    # ------------------------------------------------------------------------------------------
    def _prepare(self, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        b = batch_to_dict(batch)
        real = self.generator.normalize(b["spec"].float())
        targets = {"pitch": pitch_index(b["pitch"], b["program"]), "family": b["family"],
                   "program": b["program"].clamp(0, N_PROGRAMS - 1)}
        return b, real, targets

    def training_step(self, batch, batch_idx: int) -> None:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        b, real, targets = self._prepare(batch)
        n = real.shape[0]
        cond = (b["pitch"], b["program"], b["velocity"])

        # critic step
        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            fake = self.generator(torch.randn(n, hp.latent_dim, device=self.device), *cond)
        real_out = self.critic(real)
        fake_out = self.critic(fake)
        if self.loss.weights["gp"] != 0.0 and int(self.critic_steps) % hp.gp_every == 0:
            gp = gradient_penalty(lambda x: self.critic(x)["score"], real, fake) * hp.gp_every
        else:
            gp = real.new_zeros(())
        loss_d, terms_d = self.loss.critic_loss(real_out, fake_out, gp, targets)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.critic_steps += 1
        logs = {f"train/critic/{k}": v.detach() for k, v in terms_d.items()}
        logs["train/critic/total"] = loss_d.detach()
        with torch.no_grad():
            logs["train/critic/real_pitch_acc"] = (real_out["pitch"].argmax(1) == targets["pitch"]).float().mean()

        # generator step, after every n_critic-th critic step (counted over the whole run, so the
        # ratio holds across epoch ends and resumed runs; batch_idx restarts every epoch)
        if int(self.critic_steps) % hp.n_critic == 0:
            self.toggle_optimizer(opt_g)
            fake = self.generator(torch.randn(n, hp.latent_dim, device=self.device), *cond)
            fake_out = self.critic(fake)
            loss_g, terms_g = self.loss.generator_loss(fake_out, targets, fake, real)
            ramp = self.adversarial_ramp(int(self.gen_steps))
            if ramp < 1.0:  # scale the adversarial term only
                loss_g = loss_g - (1.0 - ramp) * self.loss.weights["wgan"] * terms_g["wgan"]
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self.gen_steps += 1
            steps = int(self.gen_steps)
            ema_update(self.generator_ema, self.generator, min(hp.ema_decay, (1 + steps) / (10 + steps)))
            logs.update({f"train/gen/{k}": v.detach() for k, v in terms_g.items()})
            logs["train/gen/total"] = loss_g.detach()
            logs["train/gen/adv_ramp"] = torch.tensor(ramp)
            with torch.no_grad():
                logs["train/gen/fake_pitch_acc"] = (fake_out["pitch"].argmax(1) == targets["pitch"]).float().mean()
            if hp.media_every_n_steps and steps % hp.media_every_n_steps == 0:
                self._log_media(b, "train")
        self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False, batch_size=n)
        self.log("gen_steps", self.gen_steps.float(), prog_bar=True, on_step=True, on_epoch=False, batch_size=n)

    def adversarial_ramp(self, gen_step: int) -> float:
        """Factor in [0, 1] on the generator's adversarial term at generator step ``gen_step``."""
        hp = self.hparams
        if gen_step < hp.adv_start:
            return 0.0
        if hp.adv_ramp <= 0:
            return 1.0
        return min(1.0, (gen_step - hp.adv_start + 1) / hp.adv_ramp)

    @torch.no_grad()
    def validation_step(self, batch, batch_idx: int) -> None:
        hp = self.hparams
        b, real, targets = self._prepare(batch)
        n = real.shape[0]
        gen = torch.Generator(device="cpu").manual_seed(1234 + batch_idx)
        z = torch.randn(n, hp.latent_dim, generator=gen).to(self.device)
        fake = self.generator_ema(z, b["pitch"], b["program"], b["velocity"])
        real_out, fake_out = self.critic(real), self.critic(fake)
        logs = {
            "valid/recon_mag": (fake[:, 0] - real[:, 0]).abs().mean(),
            "valid/recon_if": (fake[:, 1] - real[:, 1]).abs().mean(),
            "valid/wasserstein": real_out["score"].mean() - fake_out["score"].mean(),
            "valid/real_pitch_acc": (real_out["pitch"].argmax(1) == targets["pitch"]).float().mean(),
            "valid/fake_pitch_acc": (fake_out["pitch"].argmax(1) == targets["pitch"]).float().mean(),
            "valid/fake_family_acc": (fake_out["family"].argmax(1) == targets["family"]).float().mean(),
        }
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        if batch_idx == 0 and hp.media_every_n_steps:
            self._log_media(b, "valid")

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _log_media(self, b: dict[str, torch.Tensor], tag: str, n: int = 4) -> None:
        """Real vs EMA-generated log magnitude / IF images and audio to TensorBoard (rank 0 only)."""
        logger = self.logger
        experiment = getattr(logger, "experiment", None) if logger is not None else None
        if experiment is None or not hasattr(experiment, "add_image") or not self.trainer.is_global_zero:
            return
        hp = self.hparams
        n = min(n, b["spec"].shape[0])
        gen = torch.Generator(device="cpu").manual_seed(0)
        z = torch.randn(n, hp.latent_dim, generator=gen).to(self.device)
        fake = self.generator_ema.denormalize(
            self.generator_ema(z, b["pitch"][:n], b["program"][:n], b["velocity"][:n])).float()
        real = b["spec"][:n].float()
        step = int(self.gen_steps)
        for ch, name in ((0, "logmag"), (1, "if")):
            pair = torch.cat([real[:, ch], fake[:, ch]], dim=2)  # [n, frames, 2*bins]
            img = pair.transpose(1, 2).flip(1).reshape(-1, pair.shape[1])  # freq up, notes stacked
            lo, hi = img.min(), img.max()
            experiment.add_image(f"{tag}/{name}_real_vs_fake", ((img - lo) / (hi - lo + 1e-6))[None].cpu(), step)
        try:
            from audio.spectral import SpecConfig, SpecTransform  # noqa: PLC0415

            if self._transform is None:
                self._transform = SpecTransform(SpecConfig(sample_rate=hp.sample_rate, n_fft=hp.n_fft, hop=hp.hop,
                                                           n_mels=hp.n_mels))
            waves = self._transform.spec_to_wave(torch.cat([real, fake]).cpu())
        except Exception:  # audio logging is a convenience; never stop training for it
            return
        peak = waves.abs().amax(dim=1, keepdim=True).clamp_min(1e-6)
        waves = (waves / peak * 0.9).numpy()
        labels = []
        for i in range(n):
            labels.append(f"{i}: program {int(b['program'][i])}, pitch {int(b['pitch'][i])}, "
                          f"velocity {int(b['velocity'][i])}")
            experiment.add_audio(f"{tag}/real/{i}", waves[i][None], step, sample_rate=hp.sample_rate)
            experiment.add_audio(f"{tag}/fake/{i}", waves[n + i][None], step, sample_rate=hp.sample_rate)
        experiment.add_text(f"{tag}/notes", "  \n".join(labels), step)

    # ------------------------------------------------------------------------------------------
    def export_meta(self) -> dict[str, Any]:
        """Everything :class:`audio.generate.TimbreGenerator` needs besides the weights."""
        from audio.spectral import SpecConfig  # noqa: PLC0415  (pure torch/numpy)

        hp = self.hparams
        seen_pitch = self.seen_pitch.nonzero().flatten().tolist()
        return {
            "generator": dict(self.generator_kwargs, tanh_scale=self.generator.tanh_scale),
            "spec": SpecConfig(sample_rate=hp.sample_rate, n_fft=hp.n_fft, hop=hp.hop, n_mels=hp.n_mels).to_dict(),
            "clip_frames": hp.frames,
            "pitch_vocab": {"pitched": [p for p in seen_pitch if p < 128],
                            "drums": [p - 128 for p in seen_pitch if p >= 128]},
            "programs": self.seen_program.nonzero().flatten().tolist(),
            "normalization": {"mean": self.generator_ema.norm_mean.tolist(),
                              "std": self.generator_ema.norm_std.tolist()},
            "hparams": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(hp).items()
                        if not k.startswith("_")},
            "loss_weights": dict(self.loss.weights),
            "steps": {"generator": int(self.gen_steps), "critic": int(self.critic_steps),
                      "global": int(self.global_step) if self._trainer is not None else 0},
            "parameters": {"generator": count_parameters(self.generator), "critic": count_parameters(self.critic)},
            **({"init": self.init_info} if self.init_info is not None else {}),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.init_info is not None:
            checkpoint["init_info"] = self.init_info

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "init_info" in checkpoint:
            self.init_info = checkpoint["init_info"]


def load_generator_weights(path: str | Path, generator: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Read an exported generator state dict and check it against ``generator``.

    Args:
        path: ``audio_<name>.safetensors`` written by :class:`ExportEMAGenerator`.
        generator: the generator the weights are meant for (its keys and shapes are the reference).
    Returns:
        The state dict (CPU tensors), ready for ``generator.load_state_dict``.
    Raises:
        UserError naming the file when it is missing, unreadable, or its tensors' names or shapes
        differ from ``generator``'s (e.g. other ``model.g_channels`` or ``data.n_mels``).
    """
    from pipeline.weights import read_matching_state  # noqa: PLC0415

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: model.init_weights file not found")
    return read_matching_state(p, generator, "model.init_weights do not match the generator",
                               what="model.init_weights", hint="check model.g_channels / latent_dim / data.n_mels",
                               optional=("if_residual_gain",))


def _init_info(path: str | Path) -> dict[str, Any]:
    """{"weights": path, "steps": the source's step counts or None} for the export's ``init`` key."""
    import json  # noqa: PLC0415

    p = Path(path)
    steps = None
    json_path = p.with_suffix(".json")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        steps = doc.get("steps") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and isinstance(doc.get("init"), dict):  # chained continuations
            return {"weights": str(p), "steps": steps, "init": doc["init"]}
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    return {"weights": str(p), "steps": steps}


class ExportEMAGenerator(Callback):
    """Write the EMA generator to ``<out_dir>/audio_<name>.safetensors`` + ``.json``.

    At the end of fit and whenever a checkpoint is saved (rank 0 only). The JSON holds all
    hyper-parameters, the spectral config, the normalisation, the pitch / program vocabulary
    seen in training and the step counts.
    """

    def __init__(self, name: str = "default", out_dir: str = "data/pretrained"):
        super().__init__()
        self.name, self.out_dir = name, out_dir
        self.last_path: Path | None = None

    def export(self, trainer: L.Trainer, pl_module: GANSynthModule) -> None:
        if not trainer.is_global_zero or not isinstance(pl_module, GANSynthModule):
            return
        from audio.generate import save_timbre_generator  # noqa: PLC0415  (pure torch/safetensors)

        self.last_path = save_timbre_generator(Path(self.out_dir) / f"audio_{self.name}", pl_module.generator_ema,
                                               pl_module.export_meta(), name=self.name)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.export(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.export(trainer, pl_module)
