"""Shipped weights: safetensors only, written byte-stably, read back checked against their module."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from pipeline.errors import UserError
from pipeline.fileio import atomic_path


def write_weights(path: str | Path, tensors: dict[str, torch.Tensor], kind: str | None = None) -> Path:
    """Write ``tensors`` to the safetensors file ``path`` atomically, as the same bytes every time.

    Args:
        path: the ``.safetensors`` file to write.
        tensors: name -> tensor (each copied to its own contiguous CPU tensor, so tied weights
            are stored twice rather than refused).
        kind: stored as the header's one metadata entry ``format`` (e.g.
            ``"musegansynth-symbolic-generator/1"``). One entry only: safetensors writes metadata
            keys in a per-process random order, so two would make equal weights differ in bytes.
    Returns:
        ``path`` as a Path.
    """
    from safetensors.torch import save_file  # noqa: PLC0415

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}  # tied weights: own copies
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=None if kind is None else {"format": kind})
    return path


def read_matching_state(path: str | Path, module: torch.nn.Module, mismatch: str, what: str = "",
                        hint: str = "", optional: Sequence[str] = (),
                        upgrade: Callable[[dict], dict] | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors state dict and check its tensor names and shapes against ``module``.

    Args:
        path: a ``.safetensors`` file.
        module: the module the weights are meant for (its keys and shapes are the reference).
        mismatch: the words that say what a mismatch means, e.g. "weights do not match audio_x.json".
        what: how the file is named in messages (e.g. "model.init_weights"); hint: what to check.
        optional: names the file may lack; they keep ``module``'s current values (a parameter
            added to a model that older weights can still initialise).
        upgrade: turns the file's state of an older layout into today's (in place) before the check.
    Returns:
        The state dict (CPU tensors), ready for ``module.load_state_dict``.
    Raises:
        UserError naming the file when it is missing, unreadable, or does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        from safetensors.torch import load_file  # noqa: PLC0415

        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise UserError(f"{path}: cannot read {what or 'weights'} ({type(exc).__name__}: {exc})") from None
    if upgrade is not None:
        state = upgrade(state)
    expected = module.state_dict()
    for key in optional:
        if key in expected and key not in state:
            state[key] = expected[key].detach().clone()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(f"{path}: {mismatch} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise UserError(f"{path}: {what + ' ' if what else ''}tensor {key} has shape {tuple(value.shape)}, "
                            f"expected {tuple(expected[key].shape)}{f' ({hint})' if hint else ''}")
    return state
