"""Export a trained generator as ``symbolic_<name>.safetensors`` + ``symbolic_<name>.json``.

Pure torch + safetensors: the Lightning callback and scripts call it; ``symbolic.generate``
reads what it writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from pipeline.fileio import atomic_path, atomic_write_text

FORMAT = "musegansynth-symbolic-generator"
VERSION = 1


def weight_paths(out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """(safetensors path, json path) for model ``name`` under ``out_dir``."""
    out_dir = Path(out_dir)
    return out_dir / f"symbolic_{name}.safetensors", out_dir / f"symbolic_{name}.json"


def export_generator(generator: torch.nn.Module, out_dir: str | Path, name: str, meta: dict,
                     training_steps: int = 0, extra: dict | None = None) -> tuple[Path, Path]:
    """Write the generator's weights and a JSON card atomically.

    Args:
        generator: a :class:`symbolic.modules.Generator` (its ``config`` holds the
            constructor arguments).
        out_dir: folder, e.g. ``data/pretrained``.
        name: model name (file stem ``symbolic_<name>``).
        meta: dataset meta (``tracks``, ``programs``, ``is_drum``, ``grid``, ``n_bars``, ``styles``).
        training_steps: generator steps taken.
        extra: more JSON fields (training hyper-parameters).
    Returns:
        (weights path, json path).
    """
    st_path, js_path = weight_paths(out_dir, name)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in generator.state_dict().items()}
    with atomic_path(st_path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "version": str(VERSION)})
    card = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "generator": dict(generator.config),
        "tracks": list(meta.get("tracks", [])),
        "programs": [int(p) for p in meta.get("programs", [])],
        "is_drum": [bool(d) for d in meta.get("is_drum", [])],
        "grid": dict(meta.get("grid", {})),
        "n_bars": int(meta.get("n_bars", generator.config["n_bars"])),
        "styles": list(meta.get("styles", [])),
        "training_steps": int(training_steps),
        "weights": st_path.name,
    }
    if extra:
        card["training"] = extra
    atomic_write_text(js_path, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return st_path, js_path
