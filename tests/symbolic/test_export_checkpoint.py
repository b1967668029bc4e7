"""symbolic.export.export_checkpoint / ``musegansynth export symbolic``: weights from a training checkpoint."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from pipeline.errors import UserError
from symbolic.datamodule import PhraseDataModule, write_fake_cache
from symbolic.export import cli_main, export_checkpoint
from symbolic.lightning import MuseGANModule


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_fake_cache(root / "data", n_train=8, n_valid=4, n_test=2)
    dm = PhraseDataModule(data_dir=str(root / "data"), batch_size=4, val_batch_size=4)
    torch.manual_seed(0)
    model = MuseGANModule(n_tracks=3, n_bars=4, steps_per_bar=16, n_pitches=84, n_styles=2, data_meta=dm.meta,
                          z_dim=4, g_trunk_channels=(8, 4), g_branch_channels=4, d_channels=(4, 8), d_hidden=8,
                          n_critic=1, image_every=0, bar_gate=True)
    trainer = L.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(root))
    trainer.fit(model, dm)
    trainer.save_checkpoint(root / "run.ckpt")
    return root, model


def test_exports_the_ema_or_the_raw_generator(trained):
    root, model = trained
    export_checkpoint(root / "run.ckpt", root / "ema", "x")
    assert cli_main(["prog", str(root / "run.ckpt"), "--out", str(root / "raw"), "--name", "x", "--raw"]) == 0
    ema = load_file(str(root / "ema" / "symbolic_x.safetensors"))
    raw = load_file(str(root / "raw" / "symbolic_x.safetensors"))
    for k, v in model.g_ema.state_dict().items():
        assert torch.equal(ema[k], v), k
    for k, v in model.generator.state_dict().items():
        assert torch.equal(raw[k], v), k
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)
    card = json.loads((root / "raw" / "symbolic_x.json").read_text())
    assert card["training"]["exported"] == "generator" and card["training_steps"] == model.g_steps == 3
    assert card["generator"]["bar_gate"] is True and card["tracks"] == ["melody", "bridge", "piano"]
    assert json.loads((root / "ema" / "symbolic_x.json").read_text())["training"]["exported"] == "ema"


def test_missing_or_unreadable_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        export_checkpoint(tmp_path / "nope.ckpt", tmp_path, "x")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read as a training checkpoint"):
        export_checkpoint(tmp_path / "junk.ckpt", tmp_path, "x")
    assert not list(tmp_path.glob("symbolic_x.*"))
