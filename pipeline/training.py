"""What ``train symbolic`` and ``train audio`` check before Lightning starts a run.

A run that fails after Lightning has set up leaves a half-made version folder (its config and an
events file) and, for bad settings, a traceback; a bad export folder found after training loses
the run's weights. So the two commands check here, before any folder is made: the checkpoint to
resume from (:func:`check_checkpoint`), settings that the types allow but the code cannot use
(:class:`SettingsErrorsCLI`, :func:`check_at_least_one`) and where the weights will be exported
(:func:`check_export_target`).
"""

from __future__ import annotations

import re
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


def check_checkpoint(path: str, command: str, marker: str) -> dict:
    """UserError naming ``--ckpt_path`` unless ``path`` is a Lightning checkpoint (a dict with a
    ``state_dict``) of the module that ``command`` trains: its state has entries under ``marker``
    (e.g. "g_ema" for the composer, "generator_ema" for the timbre model). Read with
    ``torch.load(weights_only=True)``, as Lightning reads it: a file that holds pickled Python
    objects is refused (Lightning would fail on it too). Lightning's own names ("last", "best",
    ...) are refused: each run writes a new version folder, where they find nothing ("last" would
    train from scratch with a warning). Returns the checkpoint."""
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
    return ckpt


def check_resume(ckpt: dict, path: str, model, trainer) -> None:
    """UserError, before any run folder is made, when resuming ``ckpt`` (read by
    :func:`check_checkpoint`) could not train: its state does not load into the ``model`` that the
    settings make (tried on a copy, through the model's own loading hooks, which bring older
    checkpoints up to date; Lightning would fail with a traceback after making the run folder),
    or ``trainer.max_steps`` is not past the checkpoint's step (Lightning would stop at once and
    export nothing)."""
    import copy

    try:
        copy.deepcopy(model).load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:   # "Error(s) in loading state_dict for X:\n\tsize mismatch for ...: ..."
        problems = [_load_problem(line) for line in str(exc).splitlines()[1:] if line.strip()]
        first = problems[0] if problems else " ".join(str(exc).split())[:200]
        more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
        raise UserError(f"--ckpt_path {path}: does not fit the model these settings make ({first}{more}); give "
                        f"the model and data settings it was trained with") from None
    step, max_steps = int(ckpt.get("global_step") or 0), trainer.max_steps
    if max_steps is not None and 0 <= max_steps <= step:
        raise UserError(f"--trainer.max_steps {max_steps}: the checkpoint {path} is at step {step} already; "
                        f"give more steps to train on")


def _load_problem(line: str) -> str:
    """One line of torch's load_state_dict error, short: its first three keys of a list
    ("Missing key(s) in state_dict: a, b, c and 40 more"), shapes without ``torch.Size``."""
    text = " ".join(re.sub(r"torch\.Size\((\[[^\]]*\])\)", r"\1", line).split()).rstrip(".")
    head, sep, rest = text.partition(": ")
    keys = re.findall(r'"([^"]+)"', rest)
    if sep and keys and head.endswith("key(s) in state_dict"):
        return f"{head}: {', '.join(keys[:3])}{f' and {len(keys) - 3} more' if len(keys) > 3 else ''}"
    return text[:300]


def check_ddp(trainer, command: str) -> None:
    """UserError when the trainer runs DDP over several processes without
    ``find_unused_parameters``: the critic and the generator take turns, so each step leaves one
    net without gradients, which plain DDP takes for an error (after the run folder is made)."""
    from lightning.pytorch.strategies import DDPStrategy

    strategy = trainer.strategy
    if (isinstance(strategy, DDPStrategy) and trainer.world_size > 1
            and not getattr(strategy, "_ddp_kwargs", {}).get("find_unused_parameters")):
        raise UserError(f"--trainer.devices: {trainer.world_size} processes need --trainer.strategy "
                        f"ddp_find_unused_parameters_true ({command}: the two nets take turns, so each step "
                        f"leaves one without gradients)")


def other_model(state: dict, marker: str) -> str | None:
    """None when the training state ``state`` has entries under ``marker`` (the module the caller
    trains); else what it holds instead, for the message ("its state holds critic, generator, ...")."""
    if any(str(k).startswith(marker + ".") for k in state):
        return None
    held = sorted({str(k).split(".")[0] for k in state})
    return f"its state holds {', '.join(held[:4]) or 'nothing'}{', ...' if len(held) > 4 else ''}"


def check_at_least_one(**values: Any) -> None:
    """ValueError naming the first of ``values`` (setting name -> value) that is under 1
    (:func:`check_ranges` from 1 up)."""
    import math

    check_ranges(**{name: (value, 1, math.inf, "[]") for name, value in values.items()})


def check_ranges(**settings: tuple[Any, float, float, str]) -> None:
    """ValueError naming the first setting outside its range: ``name=(value, low, high, ends)``,
    ``ends`` as in interval notation: "[]" for ``low <= value <= high``, "(]" leaves ``low`` out,
    "[)" ``high`` (``high`` may be ``math.inf``). None values pass (unset); NaN fails."""
    import math

    for name, (value, low, high, ends) in settings.items():
        if value is None:
            continue
        v = float(value)
        if (math.isnan(v) or v < low or v > high or (ends[0] == "(" and v == low)
                or (ends[1] == ")" and v == high)):
            bounds = [f"{'above' if ends[0] == '(' else 'at least'} {low:g}"]
            if not math.isinf(high):
                bounds.append(f"{'below' if ends[1] == ')' else 'at most'} {high:g}")
            raise ValueError(f"{name} {value}: must be {' and '.join(bounds)}")


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
