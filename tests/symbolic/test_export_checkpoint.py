"""symbolic.export.export_checkpoint / ``musegansynth export symbolic``: weights from a training checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from pipeline.errors import UserError
from symbolic.export import cli_main, export_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_fit):
    root = tmp_path_factory.mktemp("export")
    model, trainer = tiny_fit(root, 6, bar_gate=True)
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
