"""Training and generation speed of the MuseGAN composer on this machine.

Prints seconds per training iteration (n_critic critic steps with gradient penalty + 1 generator
step) for the model sizes of configs/symbolic/{pop909,paper_gpu}.yaml, measured both on the bare
modules and through the Lightning loop, plus generation time.

    .venv/bin/python benchmarks/bench_symbolic_speed.py [--threads 2] [--iters 5] [--batch 64]
        [--device cpu|cuda] [--configs pop909 paper_gpu] [--lightning]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import device as device_arg, positive_int  # noqa: E402
from symbolic.modules import Critic, Generator, count_parameters, gradient_penalty  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHAPE = dict(n_tracks=3, n_bars=4, steps_per_bar=16, beats_per_bar=4, n_pitches=84, lowest_pitch=24, n_styles=1)
CONFIGS = ("pop909", "paper_gpu")


def model_args(name: str) -> dict:
    m = yaml.safe_load((REPO / "configs" / "symbolic" / f"{name}.yaml").read_text())["model"]
    return m


def build(m: dict, device: str, binarize: str | None = None):
    g = Generator(**SHAPE, z_dim=m["z_dim"], trunk_channels=tuple(m["g_trunk_channels"]),
                  branch_channels=m["g_branch_channels"], style_dim=m["style_dim"], chord_dim=m["chord_dim"],
                  track_cond_dim=m["track_cond_dim"], binarize=binarize or m["binarize"],
                  half_beat_channels=m.get("g_half_beat_channels", 0), arrangement=m.get("arrangement", False)).to(device)
    d = Critic(**SHAPE, channels=tuple(m["d_channels"]), hidden=m["d_hidden"], style_dim=m["style_dim"]).to(device)
    return g, d


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_modules(name: str, batch: int, iters: int, device: str, n_critic: int = 5) -> float:
    m = model_args(name)
    g, d = build(m, device)
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.9))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.9))
    real = (torch.rand(batch, 3, 4, 16, 84, device=device) < 0.05).float()
    chords = (torch.rand(batch, 4, 4, 12, device=device) < 0.25).float()
    cond = dict(chords=chords, has_chords=torch.ones(batch, dtype=torch.bool, device=device),
                style=torch.zeros(batch, dtype=torch.long, device=device))

    def iteration() -> None:
        for _ in range(n_critic):
            with torch.no_grad():
                fake = g(g.sample_latents(batch), **cond)
            loss = d(fake, **cond).mean() - d(real, **cond).mean() + 10 * gradient_penalty(d, real, fake, **cond)
            od.zero_grad()
            loss.backward()
            od.step()
        loss = -d(g(g.sample_latents(batch), **cond), **cond).mean()
        og.zero_grad()
        loss.backward()
        og.step()

    iteration()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        iteration()
    sync(device)
    per = (time.perf_counter() - t0) / iters
    g.eval()
    k = min(8, batch)   # the conditions hold batch phrases
    with torch.no_grad():
        g(g.sample_latents(k), **{key: v[:k] for key, v in cond.items()})
        sync(device)
        t0 = time.perf_counter()
        g(g.sample_latents(k), **{key: v[:k] for key, v in cond.items()})
        sync(device)
        gen = time.perf_counter() - t0
    print(f"{name:10s} G {count_parameters(g):>9,} params  D {count_parameters(d):>9,} params  batch {batch}: "
          f"{per:.3f} s/iteration ({n_critic} critic + 1 generator steps) = {1 / per:.2f} it/s; "
          f"generation: {4 * k} bars ({k} phrases) in {gen * 1000:.1f} ms", flush=True)
    return per


def bench_lightning(name: str, batch: int, iters: int, device: str, tmp: Path) -> float:
    import lightning as L

    from symbolic.datamodule import PhraseDataModule, write_fake_cache
    from symbolic.lightning import MuseGANModule

    write_fake_cache(tmp / "data", n_train=max(4 * batch, 64), n_valid=4, n_test=4)
    dm = PhraseDataModule(data_dir=str(tmp / "data"), batch_size=batch)
    m = model_args(name)
    m["image_every"] = 0
    model = MuseGANModule(**{k: getattr(dm, k) for k in ("n_tracks", "n_bars", "steps_per_bar", "beats_per_bar",
                                                        "n_pitches", "lowest_pitch", "n_styles")},
                          data_meta=dm.meta, **m)

    class Timer(L.Callback):
        t0 = None
        marks: list = []

        def on_train_batch_start(self, trainer, *a):
            if trainer.global_step == 6 and self.t0 is None:
                self.t0 = time.perf_counter()

        def on_train_end(self, trainer, *a):
            self.marks.append(time.perf_counter())

    timer = Timer()
    steps = 6 * (iters + 1)
    trainer = L.Trainer(accelerator="cpu" if device == "cpu" else "gpu", devices=1, max_steps=steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[timer], default_root_dir=str(tmp))
    trainer.fit(model, dm)
    per = (timer.marks[-1] - timer.t0) / iters
    print(f"{name:10s} through Lightning (data loading, logging included): {per:.3f} s/iteration = "
          f"{1 / per:.2f} it/s", flush=True)
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--iters", type=positive_int, default=5)
    ap.add_argument("--batch", type=positive_int, default=64)
    ap.add_argument("--device", type=device_arg, default="cpu")
    ap.add_argument("--configs", nargs="+", default=["pop909"], choices=CONFIGS)
    ap.add_argument("--lightning", action="store_true", help="also time the Lightning loop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    for name in args.configs:
        bench_modules(name, args.batch, args.iters, args.device)
        if args.lightning:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                bench_lightning(name, args.batch, args.iters, args.device, Path(tmp))


if __name__ == "__main__":
    main()
