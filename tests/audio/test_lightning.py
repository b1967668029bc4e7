"""The timbre model's training: DataModule, LightningModule, debug config end to end, export, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from audio.datamodule import NoteDataModule, load_split_arrays, spec_statistics
from audio.generate import TimbreGenerator
from audio.lightning import GANSynthModule
from audio.modules import GANSynthLoss
from audio.spectral import SpecConfig, SpecTransform
from audio.train import cli_main
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
DEBUG_YAML = ROOT / "configs" / "audio" / "debug.yaml"
SPEC = dict(sample_rate=8000, n_fft=128, hop=32, n_mels=16)  # as configs/audio/debug.yaml
FRAMES = 16


def write_sine_notes(root: Path, n_train: int = 24, n_valid: int = 8, frames: int = FRAMES + 2, seed: int = 0) -> Path:
    """Write train.npz / valid.npz arrays of decaying sine tones (NSynth-like labels) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    tf = SpecTransform(SpecConfig(**SPEC))
    rng = np.random.default_rng(seed)
    for split, m in (("train", n_train), ("valid", n_valid)):
        pitch = rng.integers(48, 72, m)
        program = rng.choice([0, 40, 128], m)
        velocity = rng.integers(40, 127, m)
        t = np.arange(tf.samples_for(frames)) / SPEC["sample_rate"]
        freq = 440.0 * 2.0 ** ((pitch[:, None] - 69) / 12)
        decay = np.where(program[:, None] == 128, 30.0, 2.0)
        wave = velocity[:, None] / 127 * 0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t * decay)
        spec = tf.wave_to_spec(torch.tensor(wave, dtype=torch.float32), frames=frames).numpy().astype(np.float16)
        family = np.where(program == 128, 11, np.where(program == 40, 8, 4))
        np.savez(root / f"{split}.npz", spec=spec, pitch=pitch, velocity=velocity, program=program, family=family)
    return root


def test_datamodule_crops_and_normalises_on_train(tmp_path):
    root = write_sine_notes(tmp_path / "notes")
    dm = NoteDataModule(data_root=str(root), clip_frames=FRAMES, batch_size=4, **SPEC)
    dm.setup("fit")
    spec = dm.train_set.tensors[0]
    assert spec.shape == (24, 2, FRAMES, 16), spec.shape
    assert dm.norm_mean.shape == dm.norm_std.shape == (2, 16), (dm.norm_mean.shape, dm.norm_std.shape)
    mean, std = spec_statistics(torch.from_numpy(np.load(root / "train.npz")["spec"][:, :, :FRAMES]))
    torch.testing.assert_close(dm.norm_mean, mean)
    torch.testing.assert_close(dm.norm_std, std)
    batch = next(iter(dm.train_dataloader()))
    assert [tuple(t.shape) for t in batch] == [(4, 2, FRAMES, 16), (4,), (4,), (4,), (4,)]


def test_datamodule_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="note dataset folder not found"):
        load_split_arrays(tmp_path / "nowhere", "train", clip_frames=FRAMES, **SPEC)
    root = write_sine_notes(tmp_path / "notes")
    with pytest.raises(UserError, match=r"train\.npz: spectrograms have 18 frames, fewer than clip_frames=64"):
        load_split_arrays(root, "train", clip_frames=64, **SPEC)
    np.savez(root / "train.npz", spec=np.zeros((2, 2, 18, 16), np.float16), pitch=np.zeros(2, np.int64))
    with pytest.raises(UserError, match=r"train\.npz: missing arrays \['velocity', 'program', 'family'\]"):
        load_split_arrays(root, "train", clip_frames=FRAMES, **SPEC)


def test_logged_names_cover_loss_weights(tmp_path):
    root = write_sine_notes(tmp_path / "notes")
    dm = NoteDataModule(data_root=str(root), clip_frames=FRAMES, batch_size=4, **SPEC)
    model = GANSynthModule(latent_dim=8, frames=FRAMES, bins=16, g_channels=[16, 8], d_channels=[8, 16],
                           pitch_dim=4, program_dim=4, media_every_n_steps=0, **SPEC)
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    logged = set(trainer.logged_metrics)
    for key in GANSynthLoss.CRITIC_TERMS:
        assert f"train/critic/{key}" in logged, (key, sorted(logged))
    for key in GANSynthLoss.GENERATOR_TERMS:
        assert f"train/gen/{key}" in logged, (key, sorted(logged))
    assert int(model.gen_steps) == 1 and int(model.critic_steps) == 1
    # normalisation reached both generators
    torch.testing.assert_close(model.generator_ema.norm_mean, dm.norm_mean)


def test_adversarial_ramp():
    model = GANSynthModule(latent_dim=8, frames=FRAMES, bins=16, g_channels=[16, 8], d_channels=[8, 16],
                           adv_start=10, adv_ramp=4, **SPEC)
    assert [model.adversarial_ramp(s) for s in (0, 9, 10, 11, 12, 13, 100)] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    model = GANSynthModule(latent_dim=8, frames=FRAMES, bins=16, g_channels=[16, 8], d_channels=[8, 16], **SPEC)
    assert model.adversarial_ramp(0) == 1.0


def test_bins_mismatch_is_a_user_error(tmp_path):
    root = write_sine_notes(tmp_path / "notes")
    dm = NoteDataModule(data_root=str(root), clip_frames=FRAMES, batch_size=4, **SPEC)
    model = GANSynthModule(latent_dim=8, frames=FRAMES, bins=32, g_channels=[16, 8], d_channels=[8, 16], **SPEC)
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(UserError, match="model.bins=32 but the data's spectrograms have 16 bins"):
        trainer.fit(model, datamodule=dm)


def _run_debug(tmp_path, root, *extra):
    out = tmp_path / "run"
    args = ["musegansynth train audio", "--config", str(DEBUG_YAML), "--data.data_root", str(root),
            "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
            "--export.out_dir", str(out / "export"), "--checkpoint.dirpath", str(out / "ckpt"), *extra]
    assert cli_main(args) == 0
    return out


def _missing_notes_error(tmp_path, monkeypatch) -> str:
    """``train audio --config configs/audio/debug.yaml`` with no note set: its one-line error."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as exc:
        cli_main(["musegansynth train audio", "--config", str(DEBUG_YAML)])
    assert list(tmp_path.iterdir()) == []  # refused before the logger made runs/audio_debug/tb/version_0/
    return str(exc.value)


def test_debug_config_without_notes_says_how_to_build_them(tmp_path, monkeypatch):
    message = _missing_notes_error(tmp_path, monkeypatch)
    assert message.startswith("data/build/notes/debug: note dataset folder not found"), message
    small = ("'musegansynth data notes --programs Trumpet Flute --pitches 48-72 --velocities 90 --sample-rate 8000 "
             "--out data/build/notes/debug'")
    assert small in message, message


def _has_fluidr3() -> bool:
    from audio import fluid

    return fluid.can_render("fluidr3_gm")


@pytest.mark.fluidsynth
@pytest.mark.skipif(not _has_fluidr3(), reason="fluidsynth or FluidR3_GM missing")
def test_debug_notes_command_from_the_error_builds_a_set_the_debug_config_trains_on(tmp_path, monkeypatch, capsys):
    """The small set the error message prints renders in seconds and the debug config trains on it as is."""
    import re
    import shlex

    from pipeline.cli import main as cli

    message = _missing_notes_error(tmp_path, monkeypatch)
    command = re.findall(r"'(musegansynth data notes [^']*)'", message)[-1]
    assert cli([*shlex.split(command)[1:], "--quiet"]) == 0
    assert cli_main(["musegansynth train audio", "--config", str(DEBUG_YAML)]) == 0
    assert (tmp_path / "runs/audio_debug/export/audio_debug.safetensors").is_file()


def test_debug_config_trains_exports_and_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's own relative paths land in tmp_path too
    root = write_sine_notes(tmp_path / "notes")
    out = _run_debug(tmp_path, root)
    st = out / "export" / "audio_debug.safetensors"
    doc = json.loads((out / "export" / "audio_debug.json").read_text())
    assert doc["steps"]["generator"] == 4 and doc["steps"]["critic"] == 4, doc["steps"]
    assert doc["spec"]["n_mels"] == 16 and doc["clip_frames"] == FRAMES
    assert doc["programs"] == [0, 40, 128]
    assert set(doc["loss_weights"]) == set(GANSynthLoss.DEFAULT_WEIGHTS)
    assert len(doc["normalization"]["mean"]) == 2 and len(doc["normalization"]["mean"][0]) == 16
    tg = TimbreGenerator.load(st)
    z = tg.sample_z(2, torch.Generator().manual_seed(0))
    spec = tg.generate_spec(torch.tensor([60, 36]), torch.tensor([0, 128]), torch.tensor([100, 100]), z)
    assert spec.shape == (2, 2, FRAMES, 16), spec.shape
    assert torch.isfinite(spec).all()
    # the exported generator is the EMA generator of the last checkpoint
    ckpt = next(out.rglob("last.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(tg.model.to_spec.weight, state["generator_ema.to_spec.weight"])
    # TensorBoard got images and audio
    events = list(out.rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 10_000


@pytest.mark.slow
def test_debug_training_resumes_from_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    out = _run_debug(tmp_path, root)
    ckpt = next(out.rglob("last.ckpt"))
    out2 = _run_debug(tmp_path, root, "--ckpt_path", str(ckpt), "--trainer.max_steps", "12")
    doc = json.loads((out2 / "export" / "audio_debug.json").read_text())
    assert doc["steps"]["generator"] == 6, doc["steps"]


def test_train_without_config_is_a_user_error():
    with pytest.raises(UserError, match="give --config FILE"):
        cli_main(["musegansynth train audio"])


def test_packed_waves_load_as_spectrograms(tmp_path):
    """<split>_waves.npz (int16 clips + labels, as pack_note_waves writes) loads like the spectrogram arrays."""
    from audio.datamodule import ARRAY_KEYS

    tf = SpecTransform(SpecConfig(**SPEC))
    rng = np.random.default_rng(1)
    n, samples = 6, tf.samples_for(FRAMES)
    wave = (rng.standard_normal((n, samples)) * 3000).astype(np.int16)
    labels = {k: rng.integers(0, 10, n) for k in ARRAY_KEYS[1:]}
    np.savez_compressed(tmp_path / "train_waves.npz", wave=wave, sample_rate=np.int64(8000), **labels)
    arrays = load_split_arrays(tmp_path, "train", clip_frames=FRAMES, **SPEC)
    expected = tf.wave_to_spec(torch.from_numpy(wave.astype(np.float32) / 32767.0), frames=FRAMES)
    assert arrays["spec"].shape == (n, 2, FRAMES, 16), arrays["spec"].shape
    torch.testing.assert_close(torch.from_numpy(arrays["spec"]).float(), expected.half().float())
    assert arrays["pitch"].tolist() == labels["pitch"].tolist()
    with pytest.raises(UserError, match=r"train_waves\.npz: audio is 8000 Hz, data.sample_rate is 16000"):
        load_split_arrays(tmp_path, "train", clip_frames=FRAMES, **dict(SPEC, sample_rate=16000))


TINY = dict(latent_dim=8, frames=FRAMES, bins=16, g_channels=[16, 8], d_channels=[8, 16], pitch_dim=4,
            program_dim=4, media_every_n_steps=0, **SPEC)


def _export_tiny(tmp_path, seed: int, **overrides) -> tuple[Path, GANSynthModule]:
    """Export the EMA generator of a freshly made tiny module (weights perturbed so they differ from init)."""
    from audio.generate import save_timbre_generator

    torch.manual_seed(seed)
    src = GANSynthModule(**dict(TINY, **overrides))
    with torch.no_grad():
        for p in src.generator_ema.parameters():
            p.add_(torch.randn_like(p))
        src.generator_ema.norm_mean.fill_(0.25)
    src.gen_steps += 7
    path = save_timbre_generator(tmp_path / "audio_src", src.generator_ema, src.export_meta(), name="src")
    return path, src


def test_init_weights_loads_generator_and_ema(tmp_path):
    path, src = _export_tiny(tmp_path, seed=1)
    torch.manual_seed(2)
    fresh = GANSynthModule(**TINY)
    model = GANSynthModule(**TINY, init_weights=str(path))
    expected = src.generator_ema.state_dict()
    for net in (model.generator, model.generator_ema):
        state = net.state_dict()
        assert set(state) == set(expected)
        for key, value in expected.items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    # without init_weights the module starts elsewhere (the test is not vacuous)
    assert not torch.equal(fresh.generator.to_spec.weight, model.generator.to_spec.weight)
    # the two copies are separate tensors: training the generator leaves the EMA alone
    with torch.no_grad():
        model.generator.to_spec.weight.add_(1.0)
    torch.testing.assert_close(model.generator_ema.to_spec.weight, expected["to_spec.weight"])
    # the export records where training started and the source's steps
    meta = model.export_meta()
    assert meta["init"] == {"weights": str(path), "steps": {"generator": 7, "critic": 0, "global": 0}}
    assert meta["hparams"]["init_weights"] == str(path)
    assert "init" not in fresh.export_meta()


def test_init_weights_mismatch_is_a_user_error(tmp_path):
    path, _ = _export_tiny(tmp_path, seed=1, g_channels=[16, 12])
    with pytest.raises(UserError, match=r"audio_src\.safetensors: model\.init_weights tensor \S+ has shape"):
        GANSynthModule(**TINY, init_weights=str(path))
    path2, _ = _export_tiny(tmp_path / "b", seed=1, g_channels=[16, 8, 8])
    with pytest.raises(UserError, match=r"model\.init_weights do not match the generator \(missing \[\], unexpected"):
        GANSynthModule(**TINY, init_weights=str(path2))
    with pytest.raises(UserError, match=r"nowhere\.safetensors: model\.init_weights file not found"):
        GANSynthModule(**TINY, init_weights=str(tmp_path / "nowhere.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match=r"bad\.safetensors: cannot read model\.init_weights"):
        GANSynthModule(**TINY, init_weights=str(bad))


def test_cli_continues_from_exported_weights(tmp_path, monkeypatch):
    """--model.init_weights: a second run starts from the first run's export and records it."""
    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    first = _run_debug(tmp_path, root)
    src = first / "export" / "audio_debug.safetensors"
    src_weight = TimbreGenerator.load(src).model.to_spec.weight.clone()
    second = tmp_path / "second"
    args = ["musegansynth train audio", "--config", str(DEBUG_YAML), "--data.data_root", str(root),
            "--trainer.default_root_dir", str(second), "--trainer.logger.init_args.save_dir", str(second),
            "--export.out_dir", str(second / "export"), "--checkpoint.dirpath", str(second / "ckpt"),
            "--model.init_weights", str(src), "--trainer.max_steps", "2"]
    assert cli_main(args) == 0
    doc = json.loads((second / "export" / "audio_debug.json").read_text())
    assert doc["steps"]["generator"] == 1, doc["steps"]
    assert doc["init"] == {"weights": str(src), "steps": {"generator": 4, "critic": 4, "global": 8}}, doc["init"]
    # one EMA step (decay min(0.9, 2/11)) away from the source, not from a fresh initialisation
    new_weight = TimbreGenerator.load(second / "export" / "audio_debug.safetensors").model.to_spec.weight
    assert (new_weight - src_weight).abs().max() < 0.1 * src_weight.abs().max()
    assert not torch.equal(new_weight, src_weight)


def test_if_prior_run_continues_from_a_model_without_it(tmp_path, monkeypatch):
    """--model.if_prior true from a plain export: the gain starts at 0 and trains; the export
    reloads with the prior, and a pitched note's IF is the prior plus the gain times the residual."""
    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    src = _run_debug(tmp_path, root) / "export" / "audio_debug.safetensors"
    second = tmp_path / "second"
    args = ["musegansynth train audio", "--config", str(DEBUG_YAML), "--data.data_root", str(root),
            "--trainer.default_root_dir", str(second), "--trainer.logger.init_args.save_dir", str(second),
            "--export.out_dir", str(second / "export"), "--checkpoint.dirpath", str(second / "ckpt"),
            "--model.init_weights", str(src), "--model.if_prior", "true", "--trainer.max_steps", "6"]
    assert cli_main(args) == 0
    doc = json.loads((second / "export" / "audio_debug.json").read_text())
    assert doc["generator"]["if_prior"] is True and doc["hparams"]["if_prior"] is True
    tg = TimbreGenerator.load(second / "export" / "audio_debug.safetensors")
    gain = tg.model.if_residual_gain.item()
    assert gain != 0.0  # trained (it started at 0: the source has no gain)
    z = tg.sample_z(1, torch.Generator().manual_seed(0))
    pitch, program, velocity = torch.tensor([60]), torch.tensor([0]), torch.tensor([100])
    spec = tg.generate_spec(pitch, program, velocity, z)
    g = tg.model
    with torch.no_grad():
        g.if_prior = False  # the bare network's output
        raw = g(z, pitch, program, velocity)
        g.if_prior = True
    prior = (g.if_prior_table[60] - g.norm_mean[1]) / g.norm_std[1]
    expected = g.denormalize(torch.stack([raw[:, 0], prior[None] + gain * raw[:, 1]], dim=1))
    torch.testing.assert_close(spec, expected)


def test_a_run_without_the_residual_trains_the_magnitudes_under_the_priors_if(tmp_path, monkeypatch):
    """--model.if_residual false: the export says so, reloads so, and its gain has not moved; without
    the prior the flag is refused in one line."""
    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    out = tmp_path / "run"
    base = ["musegansynth train audio", "--config", str(DEBUG_YAML), "--data.data_root", str(root),
            "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
            "--export.out_dir", str(out / "export"), "--checkpoint.dirpath", str(out / "ckpt"),
            "--model.if_residual", "false", "--trainer.max_steps", "4"]
    assert cli_main(base + ["--model.if_prior", "true"]) == 0
    doc = json.loads((out / "export" / "audio_debug.json").read_text())
    assert doc["generator"]["if_residual"] is False and doc["hparams"]["if_residual"] is False
    tg = TimbreGenerator.load(out / "export" / "audio_debug.safetensors")
    assert not tg.model.if_residual and tg.model.if_residual_gain.item() == 0.0
    with pytest.raises(UserError, match="model.if_residual false: .* it needs model.if_prior true"):
        cli_main(base + ["--model.if_prior", "false"])


@pytest.mark.parametrize("configs", [["default.yaml"], ["paper_gpu.yaml"], ["debug.yaml"],
                                     ["default.yaml", "finetune_cpu.yaml"],
                                     ["default.yaml", "finetune_cpu.yaml", "finetune_prior.yaml"]])
def test_shipped_configs_parse(configs, capsys):
    """Every shipped config (and the documented chains) parses against the module's signature."""
    args = ["musegansynth train audio"]
    for name in configs:
        args += ["--config", str(ROOT / "configs" / "audio" / name)]
    with pytest.raises(SystemExit) as exc:
        cli_main([*args, "--print_config"])
    assert exc.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    default = yaml.safe_load((ROOT / "configs" / "audio" / configs[-1]).read_text())
    for key, value in (default.get("model") or {}).items():
        if not isinstance(value, dict):
            assert printed["model"][key] == value, key


@pytest.mark.parametrize("kind,pattern", [
    ("missing", "no such checkpoint file"),
    ("folder", "is a folder, not a checkpoint file"),
    ("empty", "the file is empty, not a checkpoint"),
    ("text", "not a Lightning checkpoint"),
    ("tensor", "not a Lightning checkpoint \\(no state_dict\\)"),
    ("last", "give the checkpoint file \\(e\\.g\\. \\.\\.\\./version_N/checkpoints/last\\.ckpt\\); a new run "
             "has no 'last' checkpoint of its own"),
    ("composer", "a checkpoint of another model \\(its state holds critic, g_ema, generator\\); give a \\.ckpt file "
                 "saved by 'musegansynth train audio'"),
    ("pickled", "holds pickled Python objects, which are not loaded"),
    ("best", "give the checkpoint file"),
    ("misfit", "does not fit the model these settings make \\(Missing key\\(s\\) in state_dict: seen_pitch, "
               "seen_program, gen_steps and \\d+ more; 1 more\\); give the "
               "model and data settings it was trained with"),
])
def test_bad_ckpt_path_is_refused_before_the_run_folder_is_made(tmp_path, monkeypatch, capsys, kind, pattern):
    from pipeline.cli import main as cli

    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    ckpt = tmp_path / "afile" if kind not in ("last", "best") else Path(kind)
    if kind == "folder":
        ckpt.mkdir()
    elif kind == "empty":
        ckpt.write_bytes(b"")
    elif kind == "text":
        ckpt.write_text("hello\n")
    elif kind == "tensor":
        torch.save({"weights": torch.zeros(2)}, ckpt)
    elif kind == "composer":   # a `train symbolic` checkpoint (found by QA: a state_dict traceback, a run folder)
        torch.save({"state_dict": {f"{k}.w": torch.zeros(1) for k in ("generator", "g_ema", "critic")}}, ckpt)
    elif kind == "pickled":
        torch.save({"state_dict": {"generator_ema.w": torch.zeros(1)}, "extra": Path("x")}, ckpt)
    elif kind == "misfit":     # from QA: a checkpoint of other widths was a size-mismatch traceback
        torch.save({"state_dict": {"generator_ema.w": torch.zeros(1)}}, ckpt)
    out = tmp_path / "run"
    args = ["--config", str(DEBUG_YAML), "--data.data_root", str(root), "--trainer.default_root_dir", str(out),
            "--trainer.logger.init_args.save_dir", str(out), "--ckpt_path", str(ckpt)]
    with pytest.raises(UserError, match=f"^--ckpt_path {ckpt}: {pattern}"):
        cli_main(["musegansynth train audio", *args])
    capsys.readouterr()
    assert cli(["train", "audio", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"musegansynth: error: --ckpt_path {ckpt}"), err
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_ckpt_path_from_the_config_file_is_checked_before_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    config = tmp_path / "resume.yaml"
    config.write_text(DEBUG_YAML.read_text() + "ckpt_path: nothere.ckpt\n")
    with pytest.raises(UserError, match="^--ckpt_path nothere.ckpt: no such checkpoint file"):
        cli_main(["musegansynth train audio", "--config", str(config), "--data.data_root", str(root)])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("form", ["--config", "--config="])
def test_binary_config_is_a_user_error(tmp_path, capsys, form):
    from pipeline.cli import main as cli

    song = tmp_path / "some.mid"
    song.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xdc\x00")
    args = [form + str(song)] if form.endswith("=") else [form, str(song)]
    with pytest.raises(UserError, match=f"^--config {song}: not a YAML config"):
        cli_main(["musegansynth train audio", *args])
    assert cli(["train", "audio", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"musegansynth: error: --config {song}"), err


@pytest.mark.parametrize("option,value,says", [
    ("--data.batch_size", "0", "bad model, data or trainer settings: data.batch_size 0: must be at least 1"),
    ("--data.clip_frames", "0", "bad model, data or trainer settings: data.clip_frames 0: must be at least 1"),
    ("--model.latent_dim", "-1", "bad model, data or trainer settings: model.latent_dim -1: must be at least 1"),
    ("--trainer.max_steps", "-5", "bad model, data or trainer settings: `max_steps` must be a non-negative integer"),
    ("--data.n_fft", "100", "bad model, data or trainer settings: hop must divide n_fft / 2 = 50"),
    ("--export.name", "../x", "--export.name '../x': a model name is up to 100 letters"),
    ("--export.out_dir", "afile", "--export.out_dir afile: it is a file, not a folder"),
])
def test_settings_that_cannot_train_or_export_are_refused_before_the_run(tmp_path, monkeypatch, capsys, option,
                                                                          value, says):
    """From QA: each was an internal error, most after the run folder was made; a bad export folder
    was found only after training, and the run's weights were lost."""
    from pipeline.cli import main as cli

    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "run"
    args = ["train", "audio", "--config", str(DEBUG_YAML), "--data.data_root", str(root), "--trainer.max_steps", "2",
            "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
            "--export.out_dir", str(tmp_path / "exported"), option, value]
    assert cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"musegansynth: error: {says}"), err
    assert "Traceback" not in "".join(err)
    assert not out.exists() and not (tmp_path / "runs").exists() and not (tmp_path / "exported").exists()


@pytest.mark.parametrize("args,says", [
    (["--model.lr_d", "0"], "model.lr_d 0.0: must be above 0"),
    (["--model.lr_g", "-1"], "model.lr_g -1.0: must be above 0"),
    (["--model.adv_start", "-5"], "model.adv_start -5: must be at least 0"),
    (["--model.betas", "[0.5, 1.0]"], "model.betas[1] 1.0: must be at least 0 and below 1"),
])
def test_settings_out_of_range_are_refused_before_the_run_folder(tmp_path, monkeypatch, args, says):
    """From QA: a negative learning rate was an internal error after the run folder was made; lr_d 0
    and adv_start -5 trained as if nothing were wrong."""
    monkeypatch.chdir(tmp_path)
    root = write_sine_notes(tmp_path / "notes")
    with pytest.raises(UserError, match=f"^bad model, data or trainer settings: {re.escape(says)}"):
        cli_main(["musegansynth train audio", "--config", str(DEBUG_YAML), "--data.data_root", str(root), *args])
    assert not (tmp_path / "runs").exists()
