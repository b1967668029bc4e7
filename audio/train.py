"""``musegansynth train audio --config FILE [overrides]``: the Lightning CLI for the timbre model.

The YAML has the usual LightningCLI sections (``seed_everything``, ``trainer``, ``model``,
``data``) plus ``ckpt_path`` (resume from a checkpoint). The spectral representation is set once,
in ``data`` (``sample_rate``, ``n_fft``, ``hop``, ``n_mels``, ``clip_frames``); it is linked into
the model (``model.frames`` = ``data.clip_frames``, ``model.bins`` = ``data.n_mels`` or
``data.n_fft / 2``). Overrides use the dotted form, e.g.
``--trainer.max_steps 2000 --data.batch_size 32 --trainer.accelerator gpu``.
Two callbacks are always on and have their own sections: ``export`` (the
``audio.lightning.ExportEMAGenerator``: ``name``, ``out_dir``; e.g. ``--export.out_dir DIR``) and
``checkpoint`` (Lightning's ``ModelCheckpoint``: ``dirpath``, ``every_n_train_steps``, ...).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from pipeline.errors import UserError
from pipeline.training import option_values


def _bins(n_mels: int | None, n_fft: int) -> int:
    return int(n_mels) if n_mels else int(n_fft) // 2


def check_config_file(path: str) -> None:
    """UserError naming ``--config`` when ``path`` is a file that is not text (e.g. a MIDI file): the
    YAML parser would fail with a decoding traceback. Missing files and YAML errors are left to the
    CLI's parser, which names them on one line."""
    p = Path(path)
    if not p.is_file():
        return
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise UserError(f"--config {path}: not a YAML config (binary file); see configs/audio/*.yaml")


def cli_main(argv: list[str] | None = None) -> int:
    """Run training. ``argv[0]`` is the program name shown in usage; the rest are CLI arguments."""
    argv = list(sys.argv if argv is None else argv)
    from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: PLC0415
    from lightning.pytorch.cli import LightningCLI  # noqa: PLC0415

    from audio.datamodule import NoteDataModule  # noqa: PLC0415
    from audio.lightning import ExportEMAGenerator, GANSynthModule  # noqa: PLC0415
    from pipeline.training import (SettingsErrorsCLI, check_checkpoint, check_ddp, check_export_target,  # noqa: PLC0415
                                   check_resume)

    def check_ckpt(path: str) -> dict:
        return check_checkpoint(path, "musegansynth train audio", "generator_ema")

    class AudioCLI(SettingsErrorsCLI, LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.add_argument("--ckpt_path", type=str | None, default=None,
                                help="checkpoint to resume training from")
            # these two callbacks are always on; configure them as `export:` / `checkpoint:`
            parser.add_lightning_class_args(ExportEMAGenerator, "export")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({"checkpoint.save_last": True})
            for key in ("sample_rate", "n_fft", "hop", "n_mels"):
                parser.link_arguments(f"data.{key}", f"model.{key}")
            parser.link_arguments("data.clip_frames", "model.frames")
            parser.link_arguments(("data.n_mels", "data.n_fft"), "model.bins", compute_fn=_bins)

    # ModelCheckpoint warns that manual optimisation saves the post-step state: that is what we want
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    if not option_values(argv[1:], "--config", "-c") and not {"-h", "--help"} & set(argv[1:]):
        raise UserError(f"{argv[0] if argv else 'train audio'}: give --config FILE (see configs/audio/*.yaml)")
    for path in option_values(argv[1:], "--config", "-c"):
        check_config_file(path)
    given_ckpt = option_values(argv[1:], "--ckpt_path")
    read = {}
    if given_ckpt and given_ckpt[-1] not in ("null", "None", ""):
        read[given_ckpt[-1]] = check_ckpt(given_ckpt[-1])  # before Lightning starts (it prints as it sets up)
    cli = AudioCLI(GANSynthModule, NoteDataModule, run=False, args=argv[1:], seed_everything_default=0,
                   parser_kwargs={"prog": argv[0]}, save_config_kwargs={"overwrite": True})
    ckpt = cli.config.get("ckpt_path")
    check_ddp(cli.trainer, "train audio")
    if ckpt is not None:   # one from the config file too; before the logger makes its version folder
        check_resume(read.get(ckpt) or check_ckpt(ckpt), ckpt, cli.model, cli.trainer)
    export = cli.config.get("export") or {}
    check_export_target(export.get("out_dir", "data/pretrained"), export.get("name", "default"), "--export")
    # read the notes now: a missing or bad note set is refused before the trainer makes its logger's
    # folders (TensorBoard's events file) and checkpoints; fit's own setup then finds them read
    cli.datamodule.setup("fit")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main(["musegansynth train audio", *sys.argv[1:]]))
