"""``musegansynth export audio``: a timbre model written again with its IF residual scaled.

A generator with the harmonic IF prior (``if_prior``) writes a pitched note's instantaneous
frequency as the prior plus ``if_residual_gain`` times the network's own IF channel
(:class:`audio.modules.Generator`). Training with auxiliary classifiers can pull that gain far
enough to move notes off pitch; scaling it afterwards trades the residual's timbre for the
prior's exact pitch (0 leaves the prior alone). This command does that to a shipped or exported
model, so the choice is a command a card can give rather than an edited file:

    musegansynth export audio SRC.safetensors --out DIR --name NAME --residual-scale G

It writes ``DIR/audio_NAME.safetensors`` and ``.json`` (atomically): the same weights with the
gain multiplied by G, and the same card with an ``export`` field saying so (source file, its
SHA-256, G, the gain before and after).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipeline.errors import UserError

#: Card fields that :func:`audio.generate.save_timbre_generator` writes itself.
_OWN_FIELDS = ("format", "version", "name")


def scale_residual(src: str | Path, out_dir: str | Path, name: str, scale: float) -> Path:
    """Write timbre model ``src`` again as ``out_dir/audio_<name>`` with its IF residual's gain
    times ``scale``.

    Args:
        src: a timbre model's .safetensors (its .json beside it), their stem, or a folder holding
            ``audio_default``.
        out_dir: output folder (made if missing); may be ``src``'s own with another name.
        name: model name (``audio_<name>``; letters, digits, ``_``, ``-``, ``.``).
        scale: finite and >= 0; 1 copies the model, 0 leaves pitched notes' IF to the prior.
    Returns:
        Path of the written .safetensors.
    Raises:
        UserError: bad scale or name, a source that does not load, or a model without the
            residual (no IF prior, or trained with ``if_residual: false``).
    """
    from audio.generate import TimbreGenerator, save_timbre_generator, timbre_paths  # noqa: PLC0415
    from pipeline.generate import sha256_file  # noqa: PLC0415
    from symbolic.export import check_model_name  # noqa: PLC0415

    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise UserError(f"--residual-scale {scale!r}: expected a finite number >= 0")
    check_model_name(name)
    tg = TimbreGenerator.load(src)
    gen = tg.model
    st_src = timbre_paths(src)[0]
    if not gen.if_prior:
        raise UserError(f"{st_src}: this timbre model has no harmonic IF prior, so no IF residual to scale")
    if not gen.if_residual:
        raise UserError(f"{st_src}: this timbre model leaves its IF residual out (if_residual false): nothing to scale")
    gain = gen.if_residual_gain
    before = float(gain)
    with torch.no_grad():
        gain.mul_(float(scale))
    meta = {k: v for k, v in tg.meta.items() if k not in _OWN_FIELDS}
    meta["export"] = {"source": st_src.name, "source_sha256": sha256_file(st_src), "residual_scale": float(scale),
                      "residual_gain_before": before, "residual_gain": float(gain)}
    if "export" in tg.meta:  # a model this command wrote: keep how that one was made
        meta["export"]["source_export"] = tg.meta["export"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return save_timbre_generator(out / f"audio_{name}", gen, meta, name=name)


def cli_main(argv: list[str]) -> int:
    """``musegansynth export audio SRC --out DIR [--name NAME] --residual-scale G``."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog=argv[0], description="Write a timbre model again with its IF residual's gain "
                                                          "scaled (0: pitched notes' IF is the harmonic prior alone).")
    p.add_argument("src", help="the timbre model, audio_<name>.safetensors (its .json beside it)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--name", default="default", help="model name: writes DIR/audio_NAME.safetensors and .json")
    p.add_argument("--residual-scale", required=True, type=float, metavar="G",
                   help="multiply the IF residual's gain by G (finite, >= 0)")
    args = p.parse_args(argv[1:])
    path = scale_residual(args.src, args.out, args.name, args.residual_scale)
    print(f"wrote {path} and {path.with_suffix('.json')} (IF residual gain x {args.residual_scale:g})")
    return 0
