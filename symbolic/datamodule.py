"""LightningDataModule over the phrase cache written by ``musegansynth data symbolic``.

Cache layout (docs/CONTRACTS.md): ``<data_dir>/meta.json`` and ``{train,valid,test}.npz`` with
``rolls`` bool [N, T, B, S, P], ``chords`` uint8 [N, B, K, 12], ``has_chords`` bool [N],
``style`` int64 [N], ``song`` int64 [N], ``key`` int64 [N].
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.errors import UserError
from pipeline.fileio import read_json_object
from pipeline.training import check_at_least_one

SPLITS = ("train", "valid", "test")
_KEYS = ("rolls", "chords", "has_chords", "style", "song")


def read_meta(data_dir: str | Path) -> dict:
    """Read and check ``<data_dir>/meta.json``; UserError naming the file on any problem."""
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise UserError(f"{path}: dataset cache not found (build it with 'musegansynth data symbolic')")
    meta = read_json_object(path)
    for key in ("tracks", "grid", "n_bars"):
        if key not in meta:
            raise UserError(f"{path}: missing key '{key}'")
    grid = meta["grid"]
    for key in ("steps_per_beat", "beats_per_bar", "lowest_pitch", "n_pitches"):
        if key not in grid:
            raise UserError(f"{path}: missing key 'grid.{key}'")
    n = len(meta["tracks"])
    meta.setdefault("programs", [0] * n)
    meta.setdefault("is_drum", [False] * n)
    meta.setdefault("styles", [])
    return meta


def load_split(data_dir: str | Path, split: str, meta: dict) -> dict[str, np.ndarray]:
    """Load one split's arrays and check their shapes against ``meta``."""
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise UserError(f"{path}: split file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _KEYS if k in z.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable npz ({exc})") from None
    if "rolls" not in arrays:
        raise UserError(f"{path}: missing array 'rolls'")
    g = meta["grid"]
    want = (len(meta["tracks"]), int(meta["n_bars"]), g["steps_per_beat"] * g["beats_per_bar"], g["n_pitches"])
    rolls = arrays["rolls"]
    if rolls.ndim != 5 or tuple(rolls.shape[1:]) != want:
        raise UserError(f"{path}: rolls have shape {tuple(rolls.shape)}, expected [N, {', '.join(map(str, want))}]")
    n = rolls.shape[0]
    arrays.setdefault("chords", np.zeros((n, want[1], g["beats_per_bar"], 12), np.uint8))
    if "has_chords" not in arrays:  # (reshape(0, -1) fails: an empty split is read too)
        arrays["has_chords"] = arrays["chords"].reshape(n, -1).any(axis=1) if n else np.zeros(0, bool)
    arrays.setdefault("style", np.zeros(n, np.int64))
    if arrays["chords"].shape != (n, want[1], g["beats_per_bar"], 12):
        raise UserError(f"{path}: chords have shape {arrays['chords'].shape}, "
                        f"expected [{n}, {want[1]}, {g['beats_per_bar']}, 12]")
    for key in ("has_chords", "style"):
        if arrays[key].shape != (n,):
            raise UserError(f"{path}: {key} has shape {arrays[key].shape}, expected [{n}]")
    n_styles = max(1, len(meta.get("styles", [])))
    bad = arrays["style"][(arrays["style"] < -1) | (arrays["style"] >= n_styles)]
    if bad.size:  # the style embedding has n_styles rows (+ one for -1, unknown)
        raise UserError(f"{path}: style index {int(bad[0])} is out of range for the {n_styles} "
                        f"style(s) of meta.json (-1 = unknown, 0..{n_styles - 1})")
    return arrays


class PhraseDataset(Dataset):
    """Phrases from one split. Item: dict with ``roll`` float [T, B, S, P] in {0, 1},
    ``chords`` float [B, K, 12], ``has_chords`` bool [], ``style`` long []."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.rolls = torch.from_numpy(np.ascontiguousarray(arrays["rolls"]).astype(np.bool_))
        self.chords = torch.from_numpy(arrays["chords"].astype(np.uint8))
        self.has_chords = torch.from_numpy(arrays["has_chords"].astype(np.bool_))
        self.style = torch.from_numpy(arrays["style"].astype(np.int64))

    def __len__(self) -> int:
        return self.rolls.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"roll": self.rolls[i].float(), "chords": self.chords[i].float(),
                "has_chords": self.has_chords[i], "style": self.style[i]}


class PhraseDataModule(L.LightningDataModule):
    """Reads the npz phrase cache.

    Args:
        data_dir: folder with meta.json and {train,valid,test}.npz.
        batch_size: phrases per batch (per device under DDP).
        num_workers: DataLoader workers (0 = in the main process).
        val_batch_size: batch size of the validation loader (generated-vs-real metrics).
    The shape attributes (``n_tracks``, ``n_bars``, ``steps_per_bar``, ``beats_per_bar``,
    ``n_pitches``, ``lowest_pitch``, ``n_styles``) and ``meta`` are read in ``__init__`` so the
    training CLI can link them into the model.
    """

    def __init__(self, data_dir: str = "data/build/symbolic/pop909", batch_size: int = 64, num_workers: int = 0,
                 val_batch_size: int = 256) -> None:
        super().__init__()
        check_at_least_one(**{"data.batch_size": batch_size, "data.val_batch_size": val_batch_size})
        self.data_dir = str(data_dir)
        self.batch_size, self.num_workers, self.val_batch_size = batch_size, num_workers, val_batch_size
        self.meta = read_meta(self.data_dir)
        g = self.meta["grid"]
        self.n_tracks = len(self.meta["tracks"])
        self.n_bars = int(self.meta["n_bars"])
        self.beats_per_bar = int(g["beats_per_bar"])
        self.steps_per_bar = int(g["steps_per_beat"]) * self.beats_per_bar
        self.n_pitches = int(g["n_pitches"])
        self.lowest_pitch = int(g["lowest_pitch"])
        self.n_styles = max(1, len(self.meta["styles"]))
        self.datasets: dict[str, PhraseDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split in self.datasets:
                continue
            path = Path(self.data_dir) / f"{split}.npz"
            if split != "train" and not path.is_file():
                continue
            self.datasets[split] = PhraseDataset(load_split(self.data_dir, split, self.meta))
        if len(self.datasets["train"]) == 0:
            raise UserError(f"{Path(self.data_dir) / 'train.npz'}: no phrases")

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        return DataLoader(ds, batch_size=min(self.batch_size, len(ds)), shuffle=True, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        ds = self.datasets.get("valid") or self.datasets["train"]
        return DataLoader(ds, batch_size=min(self.val_batch_size, len(ds)), shuffle=False,
                          num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        ds = self.datasets.get("test") or self.datasets.get("valid") or self.datasets["train"]
        return DataLoader(ds, batch_size=min(self.val_batch_size, len(ds)), shuffle=False,
                          num_workers=self.num_workers)


def write_fake_cache(data_dir: str | Path, n_train: int = 16, n_valid: int = 8, n_test: int = 4,
                     tracks: tuple[str, ...] = ("melody", "bridge", "piano"), n_bars: int = 4,
                     steps_per_beat: int = 4, beats_per_bar: int = 4, lowest_pitch: int = 24, n_pitches: int = 84,
                     styles: tuple[str, ...] = ("pop", "other"), seed: int = 0) -> Path:
    """Write a small random phrase cache in the contract's layout (for tests and the debug config).

    Each track holds a few sustained notes per bar: random chord tones of a random triad per
    bar (so chord conditioning is learnable), every other phrase with ``has_chords`` False.
    """
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    t, s = len(tracks), steps_per_beat * beats_per_bar
    counts = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        rolls = np.zeros((n, t, n_bars, s, n_pitches), bool)
        chords = np.zeros((n, n_bars, beats_per_bar, 12), np.uint8)
        for i in range(n):
            for b in range(n_bars):
                root = int(rng.integers(12))
                triad = [root, (root + 4) % 12, (root + 7) % 12]
                chords[i, b, :, triad] = 1
                for k in range(t):
                    for start in range(0, s, steps_per_beat * 2):
                        pc = triad[int(rng.integers(3))]
                        octave = 2 + k + int(rng.integers(2))
                        pitch = 12 * octave + pc - lowest_pitch
                        if 0 <= pitch < n_pitches:
                            rolls[i, k, b, start:start + steps_per_beat * 2 - 1, pitch] = True
        has = np.arange(n) % 2 == 0
        chords[~has] = 0
        np.savez_compressed(data_dir / f"{split}.npz", rolls=rolls, chords=chords, has_chords=has,
                            style=(np.arange(n) % max(1, len(styles))).astype(np.int64),
                            song=np.arange(n, dtype=np.int64), key=np.full(n, -1, np.int64))
        counts[split] = n
    meta = {"tracks": list(tracks), "programs": [0] * t, "is_drum": [False] * t,
            "grid": {"steps_per_beat": steps_per_beat, "beats_per_bar": beats_per_bar,
                     "lowest_pitch": lowest_pitch, "n_pitches": n_pitches},
            "n_bars": n_bars, "styles": list(styles), "counts": counts}
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return data_dir
