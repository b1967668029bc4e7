"""Export a trained generator as ``symbolic_<name>.safetensors`` + ``symbolic_<name>.json``.

Pure torch + safetensors: the Lightning callback and scripts call it; ``symbolic.generate``
reads what it writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from pipeline.fileio import atomic_write_text
from pipeline.weights import write_weights

FORMAT = "musegansynth-symbolic-generator"
VERSION = 1


#: A model name: letters, digits, ``_``, ``-`` and ``.`` (not first), so ``symbolic_<name>`` is one
#: file name inside the output folder (no ``/``, no ``..``, nothing hidden).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
#: Longest model name (the file names stay well under the file system's 255 bytes).
MAX_NAME_CHARS = 100


def check_model_name(name: str, what: str = "--name", kind: str = "model") -> str:
    """``name`` when it is a model (or other ``kind`` of) name (:data:`NAME_PATTERN`, at most
    :data:`MAX_NAME_CHARS` characters); UserError naming ``what`` otherwise (an empty name, a path,
    ``..``, spaces, ...)."""
    from pipeline.errors import UserError

    text = name if isinstance(name, str) else str(name)
    if not text:
        raise UserError(f"{what} '': a {kind} name cannot be empty (letters, digits, '_', '-' and '.')")
    if len(text) > MAX_NAME_CHARS or not NAME_PATTERN.fullmatch(text):
        raise UserError(f"{what} {text!r}: a {kind} name is up to {MAX_NAME_CHARS} letters, digits, '_', '-' and "
                        f"'.' (not first): no folders, spaces or other characters")
    return text


def weight_paths(out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """(safetensors path, json path) for model ``name`` under ``out_dir``."""
    out_dir = Path(out_dir)
    return out_dir / f"symbolic_{name}.safetensors", out_dir / f"symbolic_{name}.json"


def export_generator(generator: torch.nn.Module, out_dir: str | Path, name: str, meta: dict,
                     training_steps: int = 0, extra: dict | None = None,
                     release: dict[str, float] | None = None,
                     legato: dict[str, float] | None = None,
                     velocity: dict | None = None) -> tuple[Path, Path]:
    """Write the generator's weights and a JSON card atomically.

    Args:
        generator: a :class:`symbolic.modules.Generator` (its ``config`` holds the
            constructor arguments).
        out_dir: folder, e.g. ``data/pretrained``.
        name: model name (file stem ``symbolic_<name>``).
        meta: dataset meta (``tracks``, ``programs``, ``is_drum``, ``grid``, ``n_bars``, ``styles``,
            ``transposed``: the phrases were moved to C major / A minor, so the composer moves
            other keys there).
        training_steps: generator steps taken.
        extra: more JSON fields (training hyper-parameters).
        release: {track name: tau}: the card's ``decode.release``, which tracks' held notes a
            new onset releases when the composer binarises (``symbolic.generate.release_held_notes``).
        legato: {track name: tau}: the card's ``decode.legato``, which one-pitch-per-step tracks
            overlap a note change by a step where the generator holds on (``symbolic.generate.legato_overlaps``).
        velocity: the card's ``decode.velocity``, the data's mean velocities by step of the bar
            (``symbolic.velocity.velocity_table``) that the song pipeline plays the notes with.
    Returns:
        (weights path, json path).
    """
    check_model_name(name, "name")
    st_path, js_path = weight_paths(out_dir, name)
    write_weights(st_path, generator.state_dict(), kind=f"{FORMAT}/{VERSION}")
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
        "transposed": bool(meta.get("transposed", False)),
        "training_steps": int(training_steps),
        **({"drum_keys": {str(k): int(v) for k, v in meta["drum_keys"].items()}} if meta.get("drum_keys") else {}),
        "weights": st_path.name,
    }
    decode = {rule: {str(k): float(v) for k, v in taus.items()}
              for rule, taus in (("release", release), ("legato", legato)) if taus}
    if velocity:
        decode["velocity"] = velocity
    if decode:
        card["decode"] = decode
    if extra:
        card["training"] = extra
    atomic_write_text(js_path, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return st_path, js_path


def export_checkpoint(ckpt: str | Path, out_dir: str | Path, name: str, raw: bool = False,
                      arrangement_data: str | Path | None = None,
                      release: dict[str, float] | None = None,
                      legato: dict[str, float] | None = None,
                      velocity_data: str | Path | None = None) -> tuple[Path, Path]:
    """Export a training checkpoint's EMA generator (or, with ``raw``, the trained generator itself).

    The checkpoint is read with ``torch.load(weights_only=True)``; the card records which
    generator was exported (``training.exported``) and the step counters. ``arrangement_data``
    (a phrase cache folder) counts the arrangement chain again on its training phrases, as a
    training run does when it starts: for checkpoints saved before the chain had chord slots.
    ``release`` and ``legato`` ({track: tau}) replace the run's ``model.release`` and
    ``model.legato`` in the card. ``velocity_data`` (a phrase cache folder with ``velocity.npz``)
    puts its training split's mean velocities in the card (``decode.velocity``).
    """
    from pipeline.errors import UserError

    check_model_name(name)
    from symbolic.lightning import MuseGANModule, export_module, read_training_checkpoint

    state = read_training_checkpoint(ckpt, required=("state_dict", "hyper_parameters"))
    hparams = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
    model = MuseGANModule(**hparams)  # init_from is only read when a fit starts
    model.load_state_dict(state["state_dict"])
    model.on_load_checkpoint(state)
    from symbolic.generate import check_legato, check_track_taus

    tracks = model.meta()["tracks"]
    try:
        if release is not None:
            check_track_taus(release, tracks, "--release")
            model.hparams["release"] = {k: float(v) for k, v in release.items()}
        if legato is not None:
            check_legato(legato, tracks, model.generator.monophonic, "--legato")
            model.hparams["legato"] = {k: float(v) for k, v in legato.items()}
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if arrangement_data is not None:
        if not model.hparams.get("arrangement"):
            raise UserError(f"{ckpt}: --arrangement-data: this model has no arrangement conditioning")
        from symbolic.datamodule import load_split, read_meta

        train = load_split(arrangement_data, "train", read_meta(arrangement_data))
        try:
            model.fit_arrangement(*(torch.from_numpy(train[k]) for k in ("rolls", "chords", "has_chords")))
        except ValueError as exc:
            raise UserError(f"{arrangement_data}: --arrangement-data does not fit this model ({exc})") from None
    velocity = None
    if velocity_data is not None:
        from symbolic.datamodule import read_meta
        from symbolic.velocity import table_from_cache

        velocity = table_from_cache(velocity_data, model.meta())
        keys = read_meta(velocity_data).get("drum_keys")   # a cache built since they were recorded
        if keys and any(model.meta().get("is_drum", [])):
            model.data_meta = {**model.meta(), "drum_keys": keys}
    return export_module(model, out_dir, name, global_step=int(state.get("global_step", 0)), raw=raw,
                         velocity=velocity)


def cli_main(argv: list[str]) -> int:
    """``musegansynth export symbolic CKPT --out DIR --name NAME [--raw] [--arrangement-data DIR]
    [--velocity-data DIR] [--release TRACK=TAU ...] [--legato TRACK=TAU ...]``."""
    import argparse

    p = argparse.ArgumentParser(prog=argv[0], description="Export a composer training checkpoint's generator.")
    p.add_argument("ckpt", help="Lightning checkpoint (.ckpt) of `musegansynth train symbolic`")
    p.add_argument("--out", default="data/build/exported",
                   help="output folder (default: data/build/exported, so that an export never replaces the "
                        "shipped weights by accident; --out data/pretrained to replace them)")
    p.add_argument("--name", default="pop909", help="model name: writes symbolic_<name>.safetensors + .json")
    p.add_argument("--raw", action="store_true", help="the trained generator instead of its EMA")
    p.add_argument("--arrangement-data", metavar="DIR", default=None,
                   help="count the arrangement chain again on this phrase cache's training split "
                        "(e.g. data/build/symbolic/pop909; for checkpoints older than its chord slots)")
    from symbolic.generate import add_decode_arguments, parse_track_taus

    p.add_argument("--velocity-data", metavar="DIR", default=None,
                   help="put this phrase cache's training-split velocities (velocity.npz) in the card, so songs "
                        "play each note as loud as the data does at that step of the bar")
    add_decode_arguments(p, "the run's model.{rule}")
    args = p.parse_args(argv[1:])
    st, js = export_checkpoint(args.ckpt, args.out, args.name, raw=args.raw, arrangement_data=args.arrangement_data,
                               release=parse_track_taus(args.release, "--release"),
                               legato=parse_track_taus(args.legato, "--legato"), velocity_data=args.velocity_data)
    print(f"wrote {st} and {js}")
    return 0

