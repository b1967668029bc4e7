"""Lightning DataModule over NSynth-format note spectrograms.

Reads the train and valid splits with :func:`audio.notes.load_note_arrays` (which renders or
caches [log magnitude, IF] spectrograms), or, when ``<data_root>/<split>.npz`` exists, straight
from that arrays file (same keys: ``spec`` float16 [N, 2, frames, bins], int64 ``pitch``,
``velocity``, ``program`` (0-127, drums 128), ``family``). Spectrograms are cut to
``clip_frames`` frames. Normalisation statistics (per channel and bin mean and standard
deviation, shape [2, bins]) are computed on the train split only.

Imports only torch, numpy and lightning at top level.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from pipeline.errors import UserError
from pipeline.training import check_at_least_one

ARRAY_KEYS = ("spec", "pitch", "velocity", "program", "family")


#: ``musegansynth data notes`` options for a small note set (2 programs, 25 pitches, 50 notes) that
#: renders in about a second: enough for ``configs/audio/debug.yaml`` and quick tries.
SMALL_NOTE_SET = "--programs Trumpet Flute --pitches 48-72 --velocities 90"


def build_hint(data_root: str | Path, sample_rate: int) -> str:
    """How to build the note set a config reads from ``data_root`` at ``sample_rate`` Hz: the
    ``musegansynth data notes`` command (its defaults: data/build/notes/fluidr3, 16000 Hz, left out)."""
    root = Path(data_root)
    options = ""
    if int(sample_rate) != 16000:
        options += f" --sample-rate {int(sample_rate)}"
    if root != Path("data/build/notes/fluidr3"):
        options += f" --out {root}"
    return (f"build it with 'musegansynth data notes{options}' (the full set), or with 'musegansynth data notes "
            f"{SMALL_NOTE_SET}{options}' (a small set, in seconds)")


def load_split_arrays(data_root: str | Path, split: str, *, sample_rate: int, n_fft: int, hop: int,
                      n_mels: int | None, clip_frames: int) -> dict[str, np.ndarray]:
    """Arrays of one split, spectrograms cut to ``clip_frames`` frames.

    Returns:
        dict with ``spec`` float16 [N, 2, clip_frames, bins] and int64 [N] ``pitch``,
        ``velocity``, ``program``, ``family``.
    Raises:
        UserError naming the file or folder when it is missing or has the wrong content.
    """
    root = Path(data_root)
    npz = root / f"{split}.npz"
    waves_npz = root / f"{split}_waves.npz"
    if not npz.is_file() and waves_npz.is_file():
        arrays = _spec_from_packed_waves(waves_npz, sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels,
                                         clip_frames=clip_frames)
        source = waves_npz
    elif npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as f:
                arrays = {k: f[k] for k in ARRAY_KEYS if k in f.files}
        except (OSError, ValueError) as exc:
            raise UserError(f"{npz}: cannot read note arrays ({exc})") from None
        missing = [k for k in ARRAY_KEYS if k not in arrays]
        if missing:
            raise UserError(f"{npz}: missing arrays {missing}")
        source = npz
    else:
        if not root.is_dir():
            raise UserError(f"{root}: note dataset folder not found; {build_hint(root, sample_rate)}")
        from audio.notes import load_note_arrays  # noqa: PLC0415  (only needed for NSynth folders)
        from audio.spectral import SpecConfig  # noqa: PLC0415

        spec_config = SpecConfig(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels)
        arrays = load_note_arrays(root, split, spec_config, spec_config.samples_for(clip_frames))
        source = root
    spec = arrays["spec"]
    if spec.ndim != 4 or spec.shape[1] != 2:
        raise UserError(f"{source}: spec should have shape [N, 2, frames, bins], got {spec.shape}")
    if spec.shape[2] < clip_frames:
        raise UserError(f"{source}: spectrograms have {spec.shape[2]} frames, fewer than clip_frames={clip_frames}")
    n = spec.shape[0]
    out = {"spec": np.ascontiguousarray(spec[:, :, :clip_frames]).astype(np.float16)}
    for key in ARRAY_KEYS[1:]:
        values = np.asarray(arrays[key]).astype(np.int64)
        if values.shape != (n,):
            raise UserError(f"{source}: {key} should have shape [{n}], got {values.shape}")
        out[key] = values
    if n == 0:
        raise UserError(f"{source}: split '{split}' has no notes")
    return out


def _spec_from_packed_waves(path: Path, *, sample_rate: int, n_fft: int, hop: int, n_mels: int | None,
                            clip_frames: int, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Arrays of a ``<split>_waves.npz`` written by :func:`pack_note_waves`, turned into spectrograms
    (on the GPU when there is one)."""
    from audio.spectral import SpecConfig, SpecTransform  # noqa: PLC0415  (pure torch/numpy)

    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in (*ARRAY_KEYS[1:], "wave", "sample_rate")}
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: cannot read packed note waves ({exc})") from None
    if int(data["sample_rate"]) != sample_rate:
        raise UserError(f"{path}: audio is {int(data['sample_rate'])} Hz, data.sample_rate is {sample_rate}")
    transform = SpecTransform(SpecConfig(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    waves = data.pop("wave")
    specs = []
    for i in range(0, len(waves), batch_size):
        w = torch.from_numpy(waves[i: i + batch_size].astype(np.float32) / 32767.0).to(device)
        specs.append(transform.wave_to_spec(w, frames=clip_frames).cpu().half().numpy())
    data["spec"] = np.concatenate(specs) if specs else np.zeros((0, 2, clip_frames, transform.bins), np.float16)
    return data


def pack_note_waves(data_root: str | Path, out_dir: str | Path, clip_samples: int,
                    splits: tuple[str, ...] = ("train", "valid"), max_notes: int = 0) -> list[Path]:
    """Write ``<out_dir>/<split>_waves.npz``: the first ``clip_samples`` of each note as int16 plus labels.

    A compact, spectrogram-config-free copy of a note set (about 16 KB a note for 0.5 s at 16 kHz)
    to take to another machine; :class:`NoteDataModule` reads it when ``data_root`` is ``out_dir``.
    """
    from audio.notes import load_note_waves  # noqa: PLC0415
    from pipeline.fileio import atomic_path  # noqa: PLC0415

    written = []
    for split in splits:
        data = load_note_waves(data_root, split, int(clip_samples))
        n = len(data["pitch"]) if max_notes <= 0 else min(max_notes, len(data["pitch"]))
        wave = np.clip(np.round(data["wave"][:n] * 32767.0), -32768, 32767).astype(np.int16)
        target = Path(out_dir) / f"{split}_waves.npz"
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, wave=wave, sample_rate=np.int64(data["sample_rate"]),
                                    **{k: np.asarray(data[k][:n], dtype=np.int64) for k in ARRAY_KEYS[1:]})
        written.append(target)
    return written


def _has_split(data_root: str | Path, split: str) -> bool:
    """Whether ``data_root`` holds ``split`` in any form :func:`load_split_arrays` reads
    (``<split>.npz``, ``<split>_waves.npz`` or an NSynth ``nsynth-<split>/`` folder)."""
    root = Path(data_root)
    return ((root / f"{split}.npz").is_file() or (root / f"{split}_waves.npz").is_file()
            or (root / f"nsynth-{split}").is_dir())


def spec_statistics(spec: torch.Tensor, min_std: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel and bin mean and standard deviation over notes and frames.

    Args:
        spec: [N, 2, frames, bins] (any float dtype).
    Returns:
        (mean, std), float32 tensors of shape [2, bins]; std floored at ``min_std``.
    """
    x = spec.float()
    mean = x.mean(dim=(0, 2))
    std = x.std(dim=(0, 2), unbiased=False).clamp_min(min_std)
    return mean, std


class NoteDataModule(L.LightningDataModule):
    """Train / valid note spectrograms for the GANSynth model.

    Args:
        data_root: NSynth-format note folder (e.g. ``data/build/notes/fluidr3``) or a folder
            with ``train.npz`` / ``valid.npz`` arrays files.
        sample_rate, n_fft, hop, n_mels: the spectral representation (linked to the model's).
        clip_frames: frames kept from the start of each note.
        batch_size: notes per batch (per device).
        num_workers: DataLoader worker processes.
        max_train_notes: use at most this many train notes (0 = all), for quick runs.
    Attributes (after ``setup``): ``norm_mean``, ``norm_std`` ([2, bins]), ``bins``.
    """

    def __init__(self, data_root: str = "data/build/notes/fluidr3", sample_rate: int = 16000, n_fft: int = 512,
                 hop: int = 128, n_mels: int | None = 128, clip_frames: int = 64, batch_size: int = 16,
                 num_workers: int = 0, max_train_notes: int = 0):
        super().__init__()
        check_at_least_one(**{"data.batch_size": batch_size, "data.clip_frames": clip_frames})
        from audio.spectral import SpecConfig

        SpecConfig(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels)   # ValueError: sizes that cannot be
        self.data_root = data_root
        self.spec_kwargs = dict(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels, clip_frames=clip_frames)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.max_train_notes = int(max_train_notes)
        self.train_set: TensorDataset | None = None
        self.valid_set: TensorDataset | None = None
        self.norm_mean: torch.Tensor | None = None
        self.norm_std: torch.Tensor | None = None
        self.bins: int | None = None

    @staticmethod
    def _to_dataset(arrays: dict[str, np.ndarray]) -> TensorDataset:
        return TensorDataset(*(torch.from_numpy(arrays[k]) for k in ARRAY_KEYS))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train = load_split_arrays(self.data_root, "train", **self.spec_kwargs)
        if self.max_train_notes > 0:
            train = {k: v[: self.max_train_notes] for k, v in train.items()}
        try:
            valid = load_split_arrays(self.data_root, "valid", **self.spec_kwargs)
        except UserError:
            if _has_split(self.data_root, "valid"):
                raise  # a valid split that is there but unusable is the user's error, not a missing split
            valid = {k: v[: max(1, min(64, len(v) // 10))] for k, v in train.items()}  # no valid split: a few train notes
        self.bins = int(train["spec"].shape[3])
        self.train_set = self._to_dataset(train)
        self.valid_set = self._to_dataset(valid)
        self.norm_mean, self.norm_std = spec_statistics(self.train_set.tensors[0])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=len(self.train_set) > self.batch_size,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.valid_set, batch_size=self.batch_size, shuffle=False, num_workers=0)


def batch_to_dict(batch: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """(spec, pitch, velocity, program, family) as the DataLoader yields them -> dict by name."""
    return dict(zip(ARRAY_KEYS, batch))


def main(argv: list[str] | None = None) -> int:
    """``python -m audio.datamodule pack --root NOTES --out DIR [--clip-samples N] [--max-notes N]``."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m audio.datamodule", description="pack note clips as int16 npz")
    sub = parser.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="write <out>/<split>_waves.npz from an NSynth-format note folder")
    pk.add_argument("--root", default="data/build/notes/fluidr3")
    pk.add_argument("--out", required=True)
    pk.add_argument("--clip-samples", type=int, default=63 * 128, help="samples kept per note (default: 64 frames at hop 128)")
    pk.add_argument("--max-notes", type=int, default=0, help="at most this many notes per split (0 = all)")
    args = parser.parse_args(argv)
    for path in pack_note_waves(args.root, args.out, args.clip_samples, max_notes=args.max_notes):
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
