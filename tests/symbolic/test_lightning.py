"""Lightning training: data module, inline metrics, debug config end to end, export, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.errors import UserError
from symbolic.datamodule import PhraseDataModule, write_fake_cache
from symbolic.lightning import MuseGANModule, roll_metrics

REPO = Path(__file__).resolve().parents[2]
DEBUG = REPO / "configs" / "symbolic" / "debug.yaml"


def _debug_config(tmp_path: Path, **trainer) -> Path:
    cfg = yaml.safe_load(DEBUG.read_text())
    cfg["trainer"]["default_root_dir"] = str(tmp_path / "root")
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    cfg["trainer"]["callbacks"][0]["init_args"]["out_dir"] = str(tmp_path / "pretrained")
    cfg["trainer"].update(trainer)
    cfg["data"]["data_dir"] = str(tmp_path / "data")
    out = tmp_path / "debug.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_datamodule_reads_cache(tmp_path):
    write_fake_cache(tmp_path / "data", n_train=6, n_valid=2)
    dm = PhraseDataModule(data_dir=str(tmp_path / "data"), batch_size=4)
    assert (dm.n_tracks, dm.n_bars, dm.steps_per_bar, dm.n_pitches, dm.n_styles) == (3, 4, 16, 84, 2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["roll"].shape == (4, 3, 4, 16, 84), batch["roll"].shape
    assert batch["roll"].dtype == torch.float32 and set(torch.unique(batch["roll"]).tolist()) <= {0.0, 1.0}
    assert batch["chords"].shape == (4, 4, 4, 12), batch["chords"].shape
    assert batch["style"].dtype == torch.long and batch["has_chords"].dtype == torch.bool


def test_datamodule_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="meta.json: dataset cache not found"):
        PhraseDataModule(data_dir=str(tmp_path / "nothing"))
    write_fake_cache(tmp_path / "d", n_train=2, n_valid=1, n_test=1)
    np.savez_compressed(tmp_path / "d" / "train.npz", rolls=np.zeros((2, 3, 4, 16, 12), bool))
    dm = PhraseDataModule(data_dir=str(tmp_path / "d"))
    with pytest.raises(UserError, match=r"train.npz: rolls have shape \(2, 3, 4, 16, 12\), expected \[N, 3, 4, 16, 84\]"):
        dm.setup("fit")


def test_roll_metrics_on_hand_made_roll():
    roll = torch.zeros(1, 2, 2, 8, 24)
    # track 0 bar 0: C (pitch 48) held 4 steps, E (52) one step -> 2 notes, 1 qualified (>= 2 steps)
    roll[0, 0, 0, 0:4, 0] = 1
    roll[0, 0, 0, 5, 4] = 1
    # track 0 bar 1: C an octave up (60) -> pitch class C again; held across the bar line from bar 0? no
    roll[0, 0, 1, 2:4, 12] = 1
    # track 1 both bars empty
    m = roll_metrics(roll, lowest_pitch=48, qn_min_steps=2)
    assert float(m["empty_bar_rate"]) == 0.5  # 2 of 4 (track, bar)
    assert float(m["upc"]) == pytest.approx((2 + 1) / 2)  # {C, E} and {C}
    assert float(m["qualified_note_rate"]) == pytest.approx(2 / 3)
    assert float(m["notes_per_bar"]) == pytest.approx(3 / 4)
    chords = torch.zeros(1, 2, 4, 12)
    chords[:, :, :, [0, 7]] = 1  # C and G: C notes are chord tones, E is not
    m = roll_metrics(roll, chords, torch.tensor([True]), lowest_pitch=48)
    assert float(m["chord_tone_rate"]) == pytest.approx(2 / 3)
    # a note tied over the bar line counts once
    tie = torch.zeros(1, 1, 2, 4, 12)
    tie[0, 0, 0, 3, 0] = 1
    tie[0, 0, 1, 0, 0] = 1
    assert float(roll_metrics(tie, lowest_pitch=48)["notes_per_bar"]) == 0.5


def test_training_step_updates_both_nets_and_ema(tmp_path):
    import lightning as L

    write_fake_cache(tmp_path / "data", n_train=8, n_valid=4, n_test=2)
    dm = PhraseDataModule(data_dir=str(tmp_path / "data"), batch_size=4, val_batch_size=4)
    model = MuseGANModule(n_tracks=3, n_bars=4, steps_per_bar=16, n_pitches=84, n_styles=2, data_meta=dm.meta,
                          z_dim=4, g_trunk_channels=(8, 4), g_branch_channels=4, d_channels=(4, 8), d_hidden=8,
                          n_critic=2, image_every=0, p_cond_track=0.5)
    g0 = {k: v.clone() for k, v in model.generator.state_dict().items()}
    d0 = {k: v.clone() for k, v in model.critic.state_dict().items()}
    e0 = {k: v.clone() for k, v in model.g_ema.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(tmp_path))
    trainer.fit(model, dm)
    assert int(model.d_steps) == 4 and int(model.g_steps) == 2, (int(model.d_steps), int(model.g_steps))
    assert trainer.global_step == 6
    assert any(not torch.equal(v, model.generator.state_dict()[k]) for k, v in g0.items())
    assert any(not torch.equal(v, model.critic.state_dict()[k]) for k, v in d0.items())
    assert any(not torch.equal(v, model.g_ema.state_dict()[k]) for k, v in e0.items())
    assert not model.g_ema.training


def test_debug_config_trains_exports_and_resumes(tmp_path):
    from symbolic.generate import Composer
    from symbolic.train import cli_main

    write_fake_cache(tmp_path / "data", n_train=16, n_valid=8, n_test=4)
    cfg = _debug_config(tmp_path)
    assert cli_main(["musegansynth train symbolic", "--config", str(cfg)]) == 0
    card = json.loads((tmp_path / "pretrained" / "symbolic_debug.json").read_text())
    assert card["tracks"] == ["melody", "bridge", "piano"] and card["styles"] == ["pop", "other"]
    assert card["n_bars"] == 4 and card["grid"]["n_pitches"] == 84
    assert card["training_steps"] == 4, card["training_steps"]  # 12 global steps, n_critic 2
    logs = list((tmp_path / "logs" / "symbolic_debug").glob("version_*/events.out.tfevents.*"))
    assert logs, "no TensorBoard log"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logs[0]))
    ea.Reload()
    assert "samples/ema" in ea.Tags()["images"], ea.Tags()["images"]
    for tag in ("loss/d", "loss/g", "loss/gp", "val/empty_bar_rate_fake", "val/upc_real"):
        assert tag in ea.Tags()["scalars"], (tag, ea.Tags()["scalars"])
    composer = Composer.load(tmp_path / "pretrained" / "symbolic_debug.safetensors")
    roll = composer.compose(2, seed=0)
    assert roll.shape == (3, 8, 16, 84), roll.shape
    ckpts = sorted((tmp_path / "logs" / "symbolic_debug").glob("version_*/checkpoints/*.ckpt"))
    assert ckpts, "no checkpoint"
    # resume for 6 more global steps (= 2 more generator steps)
    # a model hyper-parameter changed on the command line holds on resume (Lightning's CLI would
    # take the checkpoint's value instead)
    assert cli_main(["musegansynth train symbolic", "--config", str(cfg), "--trainer.max_steps", "18",
                     "--ckpt_path", str(ckpts[-1]), "--model.density_weight", "2.5"]) == 0
    card = json.loads((tmp_path / "pretrained" / "symbolic_debug.json").read_text())
    assert card["training_steps"] == 6, card["training_steps"]
    hparams = sorted((tmp_path / "logs" / "symbolic_debug").glob("version_*/hparams.yaml"))[-1]
    assert yaml.safe_load(hparams.read_text())["density_weight"] == 2.5


def test_train_cli_unknown_config_is_user_error(tmp_path):
    from symbolic.train import cli_main

    with pytest.raises(UserError, match="nope.yaml: config file not found"):
        cli_main(["musegansynth train symbolic", "--config", str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize("setting, message", [
    (["--model.stats_terms", "[density, swing]"], r"unknown stats_terms \['swing'\]"),
    (["--model.monophonic", "[vocals]"], r"monophonic: unknown track 'vocals' \(tracks: melody, bridge, piano\)"),
    (["--model.schedule", "[{from_step: 5, lr: 0.1}]"], r"schedule\[0\]: unknown setting 'lr'"),
    (["--model.texture", "[bridge]", "--model.arrangement", "false"], r"texture: needs arrangement conditioning"),
    (["--model.texture", "[bass]", "--model.arrangement", "true"], r"texture: unknown track 'bass'"),
])
def test_train_cli_bad_model_setting_is_user_error(tmp_path, setting, message):
    from symbolic.train import cli_main

    write_fake_cache(tmp_path / "data", n_train=4, n_valid=2, n_test=2)
    cfg = _debug_config(tmp_path)
    with pytest.raises(UserError, match="bad model, data or trainer settings: " + message):
        cli_main(["musegansynth train symbolic", "--config", str(cfg), *setting])
    assert not (tmp_path / "pretrained" / "symbolic_debug.json").exists()


@pytest.mark.parametrize("name", ["pop909.yaml", "drums.yaml", "paper_gpu.yaml", "debug.yaml"])
def test_shipped_configs_parse(name, tmp_path):
    """Every shipped config parses against the module and data module signatures."""
    from lightning.pytorch.cli import LightningCLI

    from symbolic.datamodule import PhraseDataModule as DM
    from symbolic.train import LINKED

    write_fake_cache(tmp_path / "data", n_train=2, n_valid=1, n_test=1)

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            for key in LINKED:
                parser.link_arguments(f"data.{key}", f"model.{'data_meta' if key == 'meta' else key}",
                                      apply_on="instantiate")

    cli = CLI(MuseGANModule, DM, run=False,
              args=["--config", str(REPO / "configs" / "symbolic" / name), "--data.data_dir", str(tmp_path / "data"),
                    "--trainer.logger", "false", "--trainer.callbacks", "[]"])
    assert cli.model.hparams.n_tracks == 3
    assert cli.model.hparams.n_critic >= 1


@pytest.mark.slow
def test_debug_config_trains_with_two_ddp_processes_on_cpu(tmp_path):
    """DDP without code changes: two CPU processes (gloo), export from rank zero only."""
    import subprocess
    import sys

    write_fake_cache(tmp_path / "data", n_train=16, n_valid=8, n_test=4)
    cfg = _debug_config(tmp_path)
    out = subprocess.run([sys.executable, "-m", "symbolic.train", "--config", str(cfg), "--trainer.devices", "2",
                          "--trainer.strategy", "ddp_find_unused_parameters_true"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "pretrained" / "symbolic_debug.safetensors").is_file()


@pytest.mark.parametrize("names", ["debug", "pop909", "pop909_halfbeat", "pop909_texture", "drums", "paper_gpu",
                                   "pop909_texture+pop909_texture_chords", "pop909+pop909_accompany",
                                   "drums+drums_projection+drums_by_style+drums_kit"])
def test_shipped_symbolic_configs_parse_and_build_their_model(names, capsys):
    from symbolic.train import cli_main as train_main

    folder = Path(__file__).resolve().parents[2] / "configs" / "symbolic"
    configs = [arg for name in names.split("+") for arg in ("--config", str(folder / f"{name}.yaml"))]
    with pytest.raises(SystemExit) as exit_info:
        train_main(["musegansynth train symbolic", *configs, "--print_config"])
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    model = {k: v for k, v in cfg["model"].items() if k not in ("n_tracks", "data_meta")}
    tracks = ["drums"] if "groove" in cfg["data"]["data_dir"] else ["melody", "bridge", "piano"]
    meta = {"tracks": tracks, "programs": [0] * len(tracks), "is_drum": [t == "drums" for t in tracks]}
    module = MuseGANModule(**model, n_tracks=len(tracks), data_meta=meta)   # every phase of its schedule is valid
    assert module.generator.n_tracks == len(tracks)
    if names.endswith("pop909_accompany"):  # the overlay: every phrase in accompaniment mode, its own release
        assert (model["p_cond_track"], model["p_drop_chords"], model["release"]) == (1.0, 0.3, {"bridge": 0.99})
        assert cfg["trainer"]["max_steps"] == 93000 and model["schedule"][-1]["from_step"] == 11500
    if names.endswith("drums_kit"):  # the shipped drums' part 5: parts 3-4's critic and terms, 5,000 more steps
        assert model["d_projection"] and model["stats_by_style"] and cfg["trainer"]["max_steps"] == 30000
        assert model["init_from"] == "data/pretrained/checkpoints/symbolic_drums_last.ckpt"


def test_validation_logs_the_kit_distance_of_drum_tracks(tiny_module_kw):
    meta = {"tracks": ["melody", "bridge", "drums"], "programs": [0, 0, 0], "is_drum": [False, False, True],
            "n_bars": 4, "styles": ["a", "b"], "grid": {"steps_per_beat": 4, "beats_per_bar": 4, "lowest_pitch": 24,
                                                        "n_pitches": 84}}
    model = MuseGANModule(**tiny_module_kw, data_meta=meta)
    roll = torch.zeros(4, 3, 4, 16, 84)
    roll[:, 2, :, ::4, 36 - 24] = 1.0                     # the batch's drums: kicks on the beats only

    class Plays(torch.nn.Module):
        """An EMA generator that plays ``out`` (probabilities) whatever it is given."""

        def __init__(self, out):
            super().__init__()
            self.out = out

        def sample_latents(self, n, **kw):
            return torch.zeros(n, 1)

        def forward(self, *args):
            return self.out

    fake = torch.zeros_like(roll)
    fake[:, 2, :, ::4, 36 - 24] = 0.9                     # the same kicks, and as many closed hi-hats
    fake[:, 2, :, 2::4, 42 - 24] = 0.9
    batch = {"roll": roll, "chords": torch.zeros(4, 4, 4, 12), "has_chords": torch.zeros(4),
             "style": torch.zeros(4, dtype=torch.long)}
    logged = {}
    model.log_dict = lambda logs, **kw: logged.update(logs)
    model.log = lambda key, value, **kw: logged.update({key: value})

    def epoch(*fakes):   # one validation epoch, a batch each
        logged.clear()
        model.on_validation_epoch_start()
        for i, f in enumerate(fakes):
            model.g_ema = Plays(f)
            model.validation_step(batch, i)
        model.on_validation_epoch_end()
        return logged

    # shares over the epoch: kick 1 against 1/2, hi-hat 0 against 1/2: (1/2 + 1/2) / 2
    assert epoch(fake)["val/kit_distance_drums"] == pytest.approx(0.5)
    assert [k for k in logged if k.startswith("val/kit_distance")] == ["val/kit_distance_drums"]
    assert "val/empty_bar_rate_fake" in logged
    # counted over the epoch, not averaged over batches: a batch of the kicks alone (distance 0)
    # and one of both (0.5) give kick 2/3, hi-hat 1/3 against 1 and 0: 1/3
    kicks = fake.clone()
    kicks[..., 42 - 24] = 0.0
    assert epoch(kicks, fake)["val/kit_distance_drums"] == pytest.approx(1 / 3)
    assert "val/kit_distance_drums" not in epoch(torch.zeros_like(roll))   # no generated hit: nothing to compare


def test_last_checkpoint_is_brought_up_to_the_final_step(tmp_path, tiny_module_kw):
    """A run that stops between two periodic checkpoints still leaves last.ckpt at its last step
    (ExportComposer saves it at the end of fit; Lightning alone keeps the periodic one)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from symbolic.lightning import ExportComposer

    write_fake_cache(tmp_path / "data", n_train=8, n_valid=4, n_test=2)
    dm = PhraseDataModule(data_dir=str(tmp_path / "data"), batch_size=4, val_batch_size=4)
    torch.manual_seed(0)
    model = MuseGANModule(**tiny_module_kw, data_meta=dm.meta)
    ckpt_dir = tmp_path / "ckpt"
    trainer = L.Trainer(accelerator="cpu", max_steps=10, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=str(tmp_path),
                        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=4, save_last=True),
                                   ExportComposer(name="t", out_dir=str(tmp_path / "exp"))])
    trainer.fit(model, dm)
    assert trainer.global_step == 10  # critic + generator step per batch: 5 batches; periodic at 4 and 8
    last = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 10 and last["musegan_steps"]["g_steps"] == model.g_steps == 5
    card = json.loads((tmp_path / "exp" / "symbolic_t.json").read_text())
    assert card["training_steps"] == model.g_steps


def test_a_run_puts_its_caches_velocities_in_the_exported_card(tmp_path, tiny_module_kw):
    import lightning as L

    from symbolic.lightning import ExportComposer
    from symbolic.velocity import FILE

    write_fake_cache(tmp_path / "data", n_train=8, n_valid=4, n_test=2)
    stats = np.zeros((3, 2, 3, 3, 84, 16))
    stats[0, 1, :, 0, 36, 4] = [20, 20 * 90, 20 * 90 ** 2]   # melody, style 1, training split: 20 notes of 90
    np.savez_compressed(tmp_path / "data" / FILE, stats=stats, styles=np.array(["a", "b"]),
                        splits=np.array(["train", "valid", "test"]))
    dm = PhraseDataModule(data_dir=str(tmp_path / "data"), batch_size=4, val_batch_size=4)
    model = MuseGANModule(**tiny_module_kw, data_meta=dm.meta)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                        default_root_dir=str(tmp_path), callbacks=[ExportComposer(name="v", out_dir=str(tmp_path / "exp"))])
    trainer.fit(model, dm)
    velocity = json.loads((tmp_path / "exp" / "symbolic_v.json").read_text())["decode"]["velocity"]
    assert velocity["tracks"]["melody"]["styles"]["b"]["*"] == [None] * 4 + [90] + [None] * 11
    assert velocity["tracks"]["melody"]["styles"]["*"]["*"][4] == 90 and "a" not in velocity["tracks"]["melody"]["styles"]


def test_a_bad_velocity_file_stops_the_run_before_its_first_step(tmp_path, tiny_module_kw):
    import lightning as L

    from symbolic.lightning import ExportComposer
    from symbolic.velocity import FILE

    write_fake_cache(tmp_path / "data", n_train=8, n_valid=4, n_test=2)
    (tmp_path / "data" / FILE).write_bytes(b"not a zip")
    dm = PhraseDataModule(data_dir=str(tmp_path / "data"), batch_size=4, val_batch_size=4)
    model = MuseGANModule(**tiny_module_kw, data_meta=dm.meta)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                        default_root_dir=str(tmp_path), callbacks=[ExportComposer(name="v", out_dir=str(tmp_path / "exp"))])
    with pytest.raises(UserError, match="velocity.npz: not readable velocity counts"):
        trainer.fit(model, dm)
    assert trainer.global_step == 0 and not (tmp_path / "exp").exists()
