"""Speed of the GANSynth timbre model: training step and generation, with parameter counts.

    .venv/bin/python benchmarks/bench_audio_speed.py [--config configs/audio/default.yaml]
        [--threads 2] [--batch 16] [--gen-batch 64] [--steps 5] [--device cpu]

Builds the model from the config's ``model`` / ``data`` sections (random weights, random data
of the configured shape; speed does not depend on the values), then times

- one training step: critic forward on real + fake, gradient penalty, critic backward and Adam
  step, then generator forward, critic forward, generator backward and Adam step, EMA update;
- generation: EMA-generator forward in eval mode for a batch (ms a note), and the same plus the
  inverse STFT (``TimbreGenerator.generate``) when audio.spectral is importable.

Prints one line per figure, e.g. ``train_step_s batch=16: 0.61``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import device as device_arg, existing_file, positive_int  # noqa: E402
from audio.modules import (Critic, GANSynthLoss, Generator, count_parameters, ema_update,  # noqa: E402
                           gradient_penalty, pitch_index)


def build(config: dict) -> tuple[Generator, Critic, dict]:
    m, d = config.get("model", {}), config.get("data", {})
    bins = d.get("n_mels") or d.get("n_fft", 512) // 2
    g = Generator(latent_dim=m.get("latent_dim", 64), frames=d.get("clip_frames", 64), bins=bins,
                  channels=m.get("g_channels", [128, 96, 48, 24, 12]), pitch_dim=m.get("pitch_dim", 32),
                  program_dim=m.get("program_dim", 32), output=m.get("g_output", "linear"),
                  if_prior=bool(m.get("if_prior", False)))
    if g.if_prior:  # the harmonic IF prior of the configured representation (as TimbreGenerator sets it)
        from audio.spectral import SpecConfig

        g.set_if_prior_for(SpecConfig(sample_rate=d.get("sample_rate", 16000), n_fft=d.get("n_fft", 512),
                                      hop=d.get("hop", 128), n_mels=d.get("n_mels")))
    c = Critic(channels=m.get("d_channels", [12, 24, 48, 96, 128]), n_families=m.get("n_families", 12),
               n_programs=129 if m.get("program_head", True) else 0)
    return g, c, {"weights": m.get("loss_weights"), "spec": {k: d.get(k) for k in ("sample_rate", "n_fft", "hop",
                                                                                       "n_mels")}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _cond(n: int, device: torch.device, gen: torch.Generator):
    pitch = torch.randint(24, 85, (n,), generator=gen)
    program = torch.randint(0, 129, (n,), generator=gen)
    velocity = torch.randint(1, 128, (n,), generator=gen)
    return pitch.to(device), program.to(device), velocity.to(device)


def time_train_step(g: Generator, c: Critic, weights: dict | None, batch: int, steps: int,
                    device: torch.device) -> float:
    """Median seconds of one critic + generator step at ``batch``."""
    import copy

    ema = copy.deepcopy(g).requires_grad_(False)
    loss = GANSynthLoss(weights)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(c.parameters(), lr=1e-4, betas=(0.5, 0.9))
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(batch, 2, g.frames, g.bins, generator=gen).to(device)
    pitch, program, velocity = _cond(batch, device, gen)
    targets = {"pitch": pitch_index(pitch, program), "family": torch.randint(0, 12, (batch,)).to(device),
               "program": program}
    times = []
    for i in range(steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            fake = g(torch.randn(batch, g.latent_dim, device=device), pitch, program, velocity)
        gp = gradient_penalty(lambda x: c(x)["score"], real, fake)
        total, _ = loss.critic_loss(c(real), c(fake), gp, targets)
        opt_d.zero_grad(set_to_none=True)
        total.backward()
        opt_d.step()
        c.requires_grad_(False)
        fake = g(torch.randn(batch, g.latent_dim, device=device), pitch, program, velocity)
        total, _ = loss.generator_loss(c(fake), targets, fake, real)
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        c.requires_grad_(True)
        ema_update(ema, g, 0.999)
        _sync(device)
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def time_generation(g: Generator, batch: int, repeats: int, device: torch.device, spec: dict) -> tuple[float, float]:
    """(ms a note for the spectrogram, ms a note including the inverse STFT; nan without audio.spectral)."""
    g = g.eval()
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(batch, g.latent_dim, generator=gen).to(device)
    cond = _cond(batch, device, gen)
    try:
        from audio.spectral import SpecConfig, SpecTransform

        transform = SpecTransform(SpecConfig(**{k: v for k, v in spec.items() if v is not None or k == "n_mels"}))
    except Exception:  # pragma: no cover - spectral module absent
        transform = None
    spec_times, wave_times = [], []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        x = g.denormalize(g(z, *cond))
        _sync(device)
        t1 = time.perf_counter()
        if transform is not None:
            transform.spec_to_wave(x)
        _sync(device)
        t2 = time.perf_counter()
        if i:
            spec_times.append((t1 - t0) * 1000 / batch)
            wave_times.append((t2 - t0) * 1000 / batch)
    return statistics.median(spec_times), (statistics.median(wave_times) if transform is not None else float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=existing_file, default="configs/audio/default.yaml")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--batch", type=positive_int, nargs="+", default=[16, 32])
    parser.add_argument("--gen-batch", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=5)
    parser.add_argument("--device", type=device_arg, default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = yaml.safe_load(Path(args.config).read_text())
    torch.manual_seed(0)
    g, c, extra = build(config)
    g, c = g.to(device), c.to(device)
    print(f"config: {args.config}  device: {device}  threads: {args.threads}  torch {torch.__version__}")
    print(f"spectrogram: [2, {g.frames}, {g.bins}]  spec: {extra['spec']}")
    print(f"generator_params: {count_parameters(g):,}")
    print(f"critic_params: {count_parameters(c):,}")
    for b in args.batch:
        print(f"train_step_s batch={b}: {time_train_step(g, c, extra['weights'], b, args.steps, device):.3f}")
    spec_ms, wave_ms = time_generation(g, args.gen_batch, 3, device, extra["spec"])
    print(f"generate_spec_ms_per_note batch={args.gen_batch}: {spec_ms:.2f}")
    print(f"generate_wave_ms_per_note batch={args.gen_batch}: {wave_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
