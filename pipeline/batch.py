"""``musegansynth generate --count N``: N songs with Lightning's batched prediction.

The songs are the items of a dataset of seeds (:class:`SeedDataset`: ``seed .. seed + N - 1``).
``lightning.Trainer(...).predict`` runs :class:`SongPredictor` over it on one or several
devices; each ``predict_step`` writes the songs of its batch, each one into ``DIR/seed-<n>/``
through :func:`pipeline.generate.generate_song` (staged: all of a song's files or none), so a
song made here has the same ``song.mid`` bytes and ``song.wav`` samples as
``musegansynth generate --seed n`` on the same device.

Several devices (``--devices 2``, ``--devices 0,1`` or ``auto`` on a multi-GPU machine): the
Trainer's DDP strategy starts one process per device and gives each rank its own share of the
seeds (for prediction Lightning wraps the sampler in an *unrepeated* distributed sampler: every
seed goes to exactly one rank, none twice), so every rank writes only its own ``seed-<n>``
folders; no two ranks touch the same folder. Each rank loads the models on its own device in
:meth:`SongPredictor.setup`. Nothing is trained: the module has no parameters and DDP does not
wrap it for prediction.

This module imports Lightning at top level; :mod:`pipeline.generate` imports it only on the
``--count`` path, so the single-song path works without Lightning.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import lightning
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from torch.utils.data import DataLoader, Dataset

from pipeline.errors import UserError

#: What ``--devices`` accepts: "auto", a device count (-1: all), or GPU indices "0,1" ("0," for GPU 0 alone).
_DEVICES_RE = re.compile(r"^(auto|-1|[1-9][0-9]*|[0-9]+(,[0-9]+)*,|[0-9]+(,[0-9]+)+)$")


class SeedDataset(Dataset):
    """The seeds of the songs to make: item ``k`` is the int ``first + k``, for ``k < count``."""

    def __init__(self, first: int, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.first, self.count = int(first), int(count)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> int:
        if not 0 <= k < self.count:
            raise IndexError(k)
        return self.first + int(k)


def collate_seeds(items: Sequence[int]) -> list[int]:
    """A batch of seeds as a plain list of ints (the default collate would make a tensor)."""
    return [int(s) for s in items]


def song_dir(out_root: str | Path, seed: int) -> Path:
    """The folder of the song of ``seed`` under ``out_root``: ``out_root/seed-<seed>``."""
    return Path(out_root) / f"seed-{int(seed)}"


def check_song_dirs(out_root: str | Path, seeds: Sequence[int]) -> None:
    """Before any song is made: UserError when ``out_root`` cannot hold the song folders, or when
    the folder of one of ``seeds`` cannot take its song (see ``pipeline.generate.check_song_dir``)."""
    from pipeline.fileio import check_out_dir
    from pipeline.generate import check_song_dir

    check_out_dir(out_root)
    for seed in seeds:
        target = song_dir(out_root, seed)
        if (target.exists() or target.is_symlink()) and not target.is_dir():
            raise UserError(f"{target}: is a file, where --count writes the folder of the song of seed {seed}: "
                            f"move it, or give another --out")
        check_song_dir(target)


def _device_name(device: torch.device) -> str:
    """The device string ``generate_song`` gets: "cuda" for the process's current CUDA device.

    Lightning makes each rank's GPU the current CUDA device, so "cuda" names it there; keeping
    the plain name keeps ``song.json`` and the timbre model's autocast as a single
    ``generate --device cuda`` run has them.
    """
    device = torch.device(device)
    if device.type == "cuda" and (device.index is None or device.index == torch.cuda.current_device()):
        return "cuda"
    return str(device)


class SongPredictor(lightning.LightningModule):
    """Generates one song per seed of its batch into ``out_root/seed-<n>/``.

    Args:
        config: the ``pipeline.config.SongConfig`` (its seed is replaced by each item's).
        out_root: folder that receives the ``seed-<n>`` folders.
        renderer: "neural", "fluidsynth" or "none" (as ``generate --renderer``).
        flac: write FLAC instead of 16-bit WAV.
        progress: show the note renderer's progress bar.
        models: ``pipeline.generate.Models`` already loaded on ``models_device`` (optional).
        models_device: where ``models`` live ("cpu", or "cuda" meaning the current CUDA device
            at the time they were loaded).
        loader: ``(config, device, renderer) -> Models``; default ``pipeline.generate.load_models``.
            Used in :meth:`setup` when no models were given or they live on another device
            (a DDP rank other than the one that loaded them).
        announce: print each song's folder on stdout once it is written.
    """

    def __init__(self, config, out_root: str | Path, *, renderer: str = "neural", flac: bool = False,
                 progress: bool = False, models=None, models_device: str | torch.device | None = None,
                 loader: Callable[..., Any] | None = None, announce: bool = False) -> None:
        super().__init__()
        self.config = config
        self.out_root = Path(out_root)
        self.renderer = renderer
        self.flac = bool(flac)
        self.progress = bool(progress)
        self.models = models
        self.models_device = None if models_device is None else _resolve_torch_device(models_device)
        self.loader = loader
        self.announce = bool(announce)
        self.written: list[Path] = []

    # the device generate_song runs on, once the Trainer has placed this module
    @property
    def song_device(self) -> str:
        return _device_name(self.trainer.strategy.root_device)

    def setup(self, stage: str) -> None:
        """Load the models on this rank's device unless the given ones already live there."""
        here = _resolve_torch_device(self.trainer.strategy.root_device)
        if self.models is None or self.models_device != here:
            if self.loader is None:
                from pipeline import generate

                loader = generate.load_models
            else:
                loader = self.loader
            self.models = None  # let the other device's copy go before loading this one
            self.models = loader(self.config, self.song_device, self.renderer)
            self.models_device = here

    def predict_step(self, batch: Sequence[int], batch_idx: int) -> list[str]:
        """Write the song of every seed of ``batch``; returns their folders (as strings)."""
        from pipeline.generate import generate_song

        done = []
        for seed in batch:
            target = song_dir(self.out_root, seed)
            generate_song(self.config.with_seed(int(seed)), target, models=self.models, device=self.song_device,
                          renderer=self.renderer, flac=self.flac, progress=self.progress)
            self.written.append(target)
            done.append(str(target))
            if self.announce:
                print(target, flush=True)
        return done

    def on_predict_end(self) -> None:
        # every rank has written its songs before any rank reports them all done
        self.trainer.strategy.barrier("musegansynth-songs-written")


class SongProgressBar(TQDMProgressBar):
    """Lightning's bar, counting songs, on stderr (Lightning's own writes to stdout, where the CLI
    prints the song folders)."""

    def init_predict_tqdm(self) -> Tqdm:
        return Tqdm(desc="songs", unit="song", position=2 * self.process_position, disable=self.is_disabled,
                    leave=True, dynamic_ncols=True, file=sys.stderr, bar_format=self.BAR_FORMAT)


def _resolve_torch_device(device: str | torch.device) -> torch.device:
    """``torch.device`` with the CUDA index filled in ("cuda" -> the current CUDA device)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def parse_devices(text: str) -> str | int:
    """``--devices`` as Lightning takes it: "auto", an int (-1: all), or "0,1" (GPU indices)."""
    value = str(text).strip().replace(" ", "")
    if not _DEVICES_RE.match(value):
        raise UserError(f"--devices {text!r}: not allowed (allowed: auto, a count such as 2, -1 for all, "
                        f"or GPU indices such as 0,1 or 1,)")
    if value == "auto" or "," in value:
        return value
    return int(value)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up chatter (INFO lines, the few-workers hint) from the CLI's stderr."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            # Lightning 2.6's own use of a torch API that torch 2.13 deprecates: not the user's concern
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
            yield
    finally:
        logger.setLevel(level)


def generate_batch(config, out_root: str | Path, *, count: int, device: str = "cpu", devices: str | int = "auto",
                   renderer: str = "neural", flac: bool = False, progress: bool = False, models=None,
                   loader: Callable[..., Any] | None = None, batch_size: int = 1, announce: bool = False
                   ) -> list[Path]:
    """Make ``count`` songs, seeds ``config.seed .. config.seed + count - 1``, with ``Trainer.predict``.

    Args:
        config: the song config (``pipeline.config.SongConfig``).
        out_root: folder that receives ``seed-<n>/`` for each seed.
        count: number of songs (>= 1).
        device: "cpu" or "cuda" (as resolved by ``pipeline.generate.resolve_device``): the
            Trainer's accelerator.
        devices: the Trainer's ``devices`` ("auto", a count, -1, or "0,1").
        renderer, flac, progress: as :func:`pipeline.generate.generate_song`.
        models: ``Models`` already loaded on ``device`` (reused by a rank on that same device).
        loader: ``(config, device, renderer) -> Models`` for ranks that must load their own.
        batch_size: seeds per ``predict_step`` (songs are generated one after the other).
        announce: print each song's folder on stdout as soon as it is written (so that a script
            sees the songs an interrupted run finished).

    Returns:
        The song folders ``out_root/seed-<n>`` in seed order, once every rank has finished; on
        DDP ranks other than global rank 0, an empty list (rank 0 reports them all).
    """
    if count < 1:
        raise UserError(f"--count {count}: must be at least 1")
    check_song_dirs(out_root, range(int(config.seed), int(config.seed) + count))
    if isinstance(devices, str):
        devices = parse_devices(devices)
    accelerator = {"cpu": "cpu", "cuda": "cuda"}.get(str(device).split(":")[0])
    if accelerator is None:
        raise UserError(f"--device {device!r}: not allowed with --count (allowed: cpu, cuda)")
    if accelerator == "cpu" and devices == -1:   # "all" of a CPU (Lightning takes only a count there)
        devices = "auto"
    loader_ = DataLoader(SeedDataset(int(config.seed), count), batch_size=int(batch_size), shuffle=False,
                         num_workers=0, collate_fn=collate_seeds)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    def make_trainer(devices_: str | int) -> lightning.Trainer:
        try:
            return lightning.Trainer(accelerator=accelerator, devices=devices_, strategy="auto", logger=False,
                                     enable_checkpointing=False, enable_model_summary=False,
                                     enable_progress_bar=bool(progress),
                                     callbacks=[SongProgressBar()] if progress else None)
        except (MisconfigurationException, TypeError, ValueError) as exc:  # Lightning's checks of devices
            raise UserError(f"--devices {devices}: {str(exc).splitlines()[0]}") from None

    with _quiet_lightning():
        trainer = make_trainer(devices)
        # Lightning's prediction sampler needs a seed for every rank: a rank without one fails (an
        # AssertionError in each process). "auto" / -1 use only as many devices as there are songs;
        # an explicit number of devices above the number of songs is the user's to fix.
        ranks = int(trainer.num_devices) * int(trainer.num_nodes)
        if ranks > count:
            if devices not in ("auto", -1):
                raise UserError(f"--devices {devices}: {ranks} devices for {count} songs (--count {count}); give "
                                f"--devices {count} or fewer, or make more songs")
            trainer = make_trainer(count)
        module = SongPredictor(config, out_root, renderer=renderer, flac=flac, progress=progress, models=models,
                               models_device=device if models is not None else None, loader=loader,
                               announce=announce)
        try:
            trainer.predict(module, dataloaders=loader_, return_predictions=False)
        except SystemExit:
            # Lightning answers Ctrl-C by exiting with status 1: an interrupt it is (status 130)
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
    if not trainer.is_global_zero:
        return []
    return [song_dir(out_root, int(config.seed) + k) for k in range(count)]


__all__ = ["SeedDataset", "SongPredictor", "SongProgressBar", "check_song_dirs", "collate_seeds", "generate_batch",
           "parse_devices", "song_dir"]
