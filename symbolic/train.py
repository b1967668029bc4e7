"""``musegansynth train symbolic --config FILE [overrides]``: Lightning CLI over the MuseGAN module.

Examples::

    musegansynth train symbolic --config configs/symbolic/debug.yaml
    musegansynth train symbolic --config configs/symbolic/pop909.yaml --trainer.max_steps 600
    musegansynth train symbolic --config configs/symbolic/pop909.yaml --ckpt_path last.ckpt   # resume
    musegansynth train symbolic fit --config ... --print_config                                # show all

Resuming (``--ckpt_path``) restores weights, optimisers, step counters and Lightning's Timer
(so ``trainer.max_time`` counts the earlier runs' time too); the model's hyper-parameters come
from the configs and overrides given now, not from the checkpoint (Lightning's CLI would
otherwise override them with the checkpoint's), so a resumed run can change e.g. a loss weight.
Without a subcommand ``fit`` is assumed (``validate`` also works; ``test`` and ``predict`` are
refused: the module has no such steps, ``musegansynth evaluate symbolic`` scores held-out data).
Several GPUs (DDP, no code change)::

    musegansynth train symbolic --config configs/symbolic/pop909.yaml --trainer.devices 4 \
        --trainer.strategy ddp_find_unused_parameters_true

(the two nets take turns, so each step leaves one net without gradients: DDP must be told).
The data module's shapes and meta are linked into the model, so configs give only the data
folder, model widths and training settings.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError
from pipeline.training import option_values

SUBCOMMANDS = ("fit", "validate")
UNSUPPORTED = ("test", "predict")  # Lightning's, but MuseGANModule defines no test_step / predict_step
LINKED = ("n_tracks", "n_bars", "steps_per_bar", "beats_per_bar", "n_pitches", "lowest_pitch", "n_styles", "meta")


def cli_main(argv: list[str]) -> int:
    """Run the Lightning CLI. ``argv[0]`` is the program name, the rest its arguments."""
    args = list(argv[1:])
    if not option_values(args, "--config", "-c") and not {"-h", "--help"} & set(args):
        # Lightning's defaults would train for 1,000 epochs into ./lightning_logs, exporting nothing
        raise UserError(f"{argv[0] if argv else 'train symbolic'}: give --config FILE (see configs/symbolic/*.yaml)")
    for f in option_values(args, "--config", "-c"):
        if not Path(f).is_file():
            raise UserError(f"{f}: config file not found")
    if args and args[0] in UNSUPPORTED:
        raise UserError(f"train symbolic {args[0]}: not available (the composer has no {args[0]} step); "
                        f"use 'fit' or 'validate', and 'musegansynth evaluate symbolic' for held-out metrics")
    if not args or args[0] not in SUBCOMMANDS and args[0] not in ("-h", "--help"):
        args = ["fit", *args]

    import warnings

    from lightning.pytorch.cli import LightningCLI

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # ModelCheckpoint warns (a dozen lines) that manual optimisation saves the post-step state: that is what we want
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")

    from pipeline.training import SettingsErrorsCLI, check_checkpoint, check_ddp, check_export_target, check_resume
    from symbolic.datamodule import PhraseDataModule
    from symbolic.lightning import ExportComposer, MuseGANModule

    class SymbolicCLI(SettingsErrorsCLI, LightningCLI):
        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            # only those the module has steps for (the --help lists these)
            return {k: v for k, v in LightningCLI.subcommands().items() if k in SUBCOMMANDS}

        def _parse_ckpt_path(self) -> None:
            # Lightning's CLI would replace the model section of the config with the
            # hyper-parameters stored in the checkpoint, silently dropping the user's changes
            # (e.g. --model.density_weight on a resumed run). Here the config and overrides
            # given on the command line define the model; the checkpoint gives its state.
            return

        def before_fit(self) -> None:
            # before the logger makes its run folder: the checkpoint to resume from, where the
            # weights go, the phrases and their velocities (fit's own setup then finds them read)
            ckpt = self.config[self.subcommand].get("ckpt_path")
            check_ddp(self.trainer, "train symbolic")
            if ckpt is not None:
                state = check_checkpoint(str(ckpt), "musegansynth train symbolic", "g_ema")
                check_resume(state, str(ckpt), self.model, self.trainer)
            self.datamodule.setup("fit")
            export = self.config[self.subcommand].get("export") or {}
            for cb in self.trainer.callbacks:
                if isinstance(cb, ExportComposer):
                    cb.out_dir = export.get("out_dir") or cb.out_dir
                    cb.name = export.get("name") or cb.name
                    check_export_target(cb.out_dir, cb.name, "--export")
                    cb.read_velocity(self.datamodule.data_dir, self.model.meta())

        def add_arguments_to_parser(self, parser) -> None:
            # where the config's ExportComposer writes the weights, without editing the config
            parser.add_argument("--export.out_dir", type=str | None, default=None,
                                help="folder of the exported weights (default: the config's ExportComposer out_dir)")
            parser.add_argument("--export.name", type=str | None, default=None,
                                help="name of the exported weights, symbolic_<name>.* (default: the config's)")
            for key in LINKED:
                target = "data_meta" if key == "meta" else key
                parser.link_arguments(f"data.{key}", f"model.{target}", apply_on="instantiate")

    SymbolicCLI(MuseGANModule, PhraseDataModule, args=args, save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": argv[0] if argv else "musegansynth train symbolic"})
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    try:
        sys.exit(cli_main(["musegansynth train symbolic", *sys.argv[1:]]))
    except UserError as exc:
        print(f"musegansynth train symbolic: error: {exc}", file=sys.stderr)
        sys.exit(2)
