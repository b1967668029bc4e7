"""What ``train symbolic`` and ``train audio`` check before Lightning starts a run.

A run that fails after Lightning has set up leaves a half-made version folder (its config and an
events file) and, for bad settings, a traceback; a bad export folder found after training loses
the run's weights. So the two commands check here, before any folder is made: the checkpoint to
resume from (:func:`check_checkpoint`), settings that the types allow but the code cannot use
(:class:`SettingsErrorsCLI`, :func:`check_at_least_one`) and where the weights will be exported
(:func:`check_export_target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import UserError

#: ``ckpt_path`` values Lightning resolves itself, to a checkpoint of the current run's callbacks:
#: every run writes a new version folder, so none finds an earlier run's checkpoint.
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def option_values(args: list[str], *flags: str) -> list[str]:
    """The values given to any of ``flags`` in ``args`` (``FLAG VALUE`` or ``--flag=VALUE``), in order."""
    values = []
    for i, arg in enumerate(args):
        if arg in flags and i + 1 < len(args):
            values.append(args[i + 1])
        elif any(arg.startswith(f + "=") for f in flags if f.startswith("--")):
            values.append(arg.split("=", 1)[1])
    return values


def check_checkpoint(path: str, command: str, marker: str) -> None:
    """UserError naming ``--ckpt_path`` unless ``path`` is a Lightning checkpoint (a dict with a
    ``state_dict``) of the module that ``command`` trains: its state has entries under ``marker``
    (e.g. "g_ema" for the composer, "generator_ema" for the timbre model). Read with
    ``torch.load(weights_only=True)``, as Lightning reads it: a file that holds pickled Python
    objects is refused (Lightning would fail on it too). Lightning's own names ("last", "best",
    ...) are refused: each run writes a new version folder, where they find nothing ("last" would
    train from scratch with a warning)."""
    p = Path(path).expanduser()
    if str(path) in LIGHTNING_CKPT_NAMES and not p.exists():
        raise UserError(f"--ckpt_path {path}: give the checkpoint file (e.g. .../version_N/checkpoints/last.ckpt); "
                        f"a new run has no '{path}' checkpoint of its own")
    if not p.exists():
        raise UserError(f"--ckpt_path {path}: no such checkpoint file")
    if not p.is_file():
        raise UserError(f"--ckpt_path {path}: is a folder, not a checkpoint file")
    if p.stat().st_size == 0:
        raise UserError(f"--ckpt_path {path}: the file is empty, not a checkpoint")
    import pickle

    import torch

    saved_by = f"give a .ckpt file saved by '{command}'"
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds for a file that is not a checkpoint
        # "Unsupported global: ...", "unsupported GLOBAL posix.system": objects a safe load refuses
        if isinstance(exc, pickle.UnpicklingError) and "unsupported global" in str(exc).lower():
            raise UserError(f"--ckpt_path {path}: holds pickled Python objects, which are not loaded (only "
                            f"tensors and plain values are); {saved_by}") from None
        raise UserError(f"--ckpt_path {path}: not a Lightning checkpoint (torch cannot load it: "
                        f"{type(exc).__name__}); {saved_by}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"--ckpt_path {path}: not a Lightning checkpoint (no state_dict); {saved_by}")
    other = other_model(ckpt["state_dict"], marker)
    if other:
        raise UserError(f"--ckpt_path {path}: a checkpoint of another model ({other}); {saved_by}")


def other_model(state: dict, marker: str) -> str | None:
    """None when the training state ``state`` has entries under ``marker`` (the module the caller
    trains); else what it holds instead, for the message ("its state holds critic, generator, ...")."""
    if any(str(k).startswith(marker + ".") for k in state):
        return None
    held = sorted({str(k).split(".")[0] for k in state})
    return f"its state holds {', '.join(held[:4]) or 'nothing'}{', ...' if len(held) > 4 else ''}"


def check_at_least_one(**values: Any) -> None:
    """ValueError naming the first of ``values`` (setting name -> value) that is under 1."""
    for name, value in values.items():
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} {value}: must be at least 1")


def check_export_target(out_dir: str | Path, name: str, option: str) -> None:
    """UserError before training when the run could not export its weights: a bad model name, or an
    ``out_dir`` that is (or lies under) a file. ``option`` names the setting (e.g. "--export")."""
    from pipeline.fileio import nearest_existing_is_folder
    from symbolic.export import check_model_name

    check_model_name(name, f"{option}.name")
    folder = Path(out_dir)

    def message(p: Path) -> str:
        return f"{option}.out_dir {out_dir}: {'it' if p == folder else p} is a file, not a folder"

    nearest_existing_is_folder([folder, *folder.parents], message)


class SettingsErrorsCLI:
    """Mixin for a ``LightningCLI``: a setting its types allow but a class refuses (a ValueError or
    Lightning's MisconfigurationException from a module, data module or the Trainer, e.g.
    ``--trainer.max_steps -5``, ``--trainer.accelerator gpu`` without one) is the user's error:
    one line, exit status 2, before any run folder is made."""

    def instantiate_classes(self) -> None:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        try:
            super().instantiate_classes()  # type: ignore[misc]
        except (ValueError, MisconfigurationException) as exc:
            first = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
            raise UserError(f"bad model, data or trainer settings: {first}") from None
