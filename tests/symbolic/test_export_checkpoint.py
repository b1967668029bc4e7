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
    with pytest.raises(UserError, match="cannot read as a training checkpoint") as exc:
        export_checkpoint(tmp_path / "junk.ckpt", tmp_path, "x")
    assert "weights_only" not in str(exc.value) and len(str(exc.value)) < 260   # torch's advice left out
    with pytest.raises(UserError, match=r"is a folder, not a checkpoint file \(e\.g\. \.\.\./checkpoints/last\.ckpt\)"):
        export_checkpoint(tmp_path, tmp_path, "x")
    assert not list(tmp_path.glob("symbolic_x.*"))


@pytest.fixture(scope="module")
def arranged(tmp_path_factory, tiny_fit):
    """A checkpoint of a model with arrangement conditioning whose chain has the layout of
    checkpoints saved before the chord slots (one pooled chain)."""
    root = tmp_path_factory.mktemp("export_arr")
    model, trainer = tiny_fit(root, 2, arrangement=True)
    trainer.save_checkpoint(root / "run.ckpt")
    ckpt = torch.load(root / "run.ckpt", weights_only=True)
    for k in list(ckpt["state_dict"]):
        if k.endswith(".arrange_init") or k.endswith(".arrange_trans"):
            ckpt["state_dict"][k] = ckpt["state_dict"][k].sum(0)
    torch.save(ckpt, root / "old.ckpt")
    return root, model


def test_an_old_chain_exports_pooled_or_counted_again_with_arrangement_data(arranged):
    from symbolic.modules import SLOT_NO_INFO

    root, model = arranged
    export_checkpoint(root / "old.ckpt", root / "as_is", "x", raw=True)
    as_is = load_file(str(root / "as_is" / "symbolic_x.safetensors"))
    assert torch.equal(as_is["arrange_init"][SLOT_NO_INFO], model.generator.arrange_init.sum(0))
    assert float(as_is["arrange_init"][:SLOT_NO_INFO].abs().sum()) == 0
    assert cli_main(["prog", str(root / "old.ckpt"), "--out", str(root / "refit"), "--name", "x", "--raw",
                     "--arrangement-data", str(root / "data")]) == 0
    refit = load_file(str(root / "refit" / "symbolic_x.safetensors"))
    assert torch.equal(refit["arrange_init"], model.generator.arrange_init)
    assert torch.equal(refit["arrange_trans"], model.generator.arrange_trans)
    for k in refit:
        if k not in ("arrange_init", "arrange_trans"):
            assert torch.equal(refit[k], as_is[k]), k


def test_arrangement_data_errors_exit_2_and_write_nothing(arranged, trained, tmp_path, capsys):
    from pipeline.cli import main

    root, _ = arranged
    out = tmp_path / "out"
    assert main(["export", "symbolic", str(root / "old.ckpt"), "--out", str(out), "--arrangement-data",
                 str(tmp_path / "nothing")]) == 2
    assert "dataset cache not found" in capsys.readouterr().err
    gated_root, _ = trained
    assert main(["export", "symbolic", str(gated_root / "run.ckpt"), "--out", str(out), "--arrangement-data",
                 str(root / "data")]) == 2
    assert "--arrangement-data: this model has no arrangement conditioning" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())


def test_resuming_an_old_checkpoint_counts_the_chain_again(arranged, tiny_module_kw):
    import lightning as L

    from symbolic.datamodule import PhraseDataModule
    from symbolic.lightning import MuseGANModule

    root, model = arranged
    dm = PhraseDataModule(data_dir=str(root / "data"), batch_size=4, val_batch_size=4)
    resumed = MuseGANModule(**tiny_module_kw, data_meta=dm.meta, arrangement=True)
    trainer = L.Trainer(accelerator="cpu", max_steps=4, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(root / "resume"))
    trainer.fit(resumed, dm, ckpt_path=str(root / "old.ckpt"))
    assert trainer.global_step == 4
    for g in (resumed.generator, resumed.g_ema):
        assert torch.equal(g.arrange_init, model.generator.arrange_init)
        assert torch.equal(g.arrange_trans, model.generator.arrange_trans)


def test_release_from_the_command_line_or_the_run(trained, tmp_path, capsys, tiny_module_kw):
    from pipeline.cli import main
    from symbolic.lightning import MuseGANModule, export_module

    root, model = trained
    assert cli_main(["prog", str(root / "run.ckpt"), "--out", str(tmp_path / "a"), "--name", "x",
                     "--release", "bridge=0.9", "--release", "piano=1"]) == 0
    card = json.loads((tmp_path / "a" / "symbolic_x.json").read_text())
    assert card["decode"] == {"release": {"bridge": 0.9, "piano": 1.0}}
    assert cli_main(["prog", str(root / "run.ckpt"), "--out", str(tmp_path / "n"), "--name", "x",
                     "--release", "none"]) == 0
    assert "decode" not in json.loads((tmp_path / "n" / "symbolic_x.json").read_text())
    for bad, msg in ((["--release", "bridge"], "--release: expected TRACK=TAU (or none), got 'bridge'"),
                     (["--release", "bass=0.5"], "--release: unknown track 'bass'"),
                     (["--release", "bridge=2"], r"--release: bridge: tau should be in (0, 1], got 2.0")):
        assert main(["export", "symbolic", str(root / "run.ckpt"), "--out", str(tmp_path / "b"), *bad]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    run = MuseGANModule(**tiny_module_kw, data_meta=model.data_meta, release={"bridge": 0.8})
    export_module(run, tmp_path / "c", "y", global_step=0)
    assert json.loads((tmp_path / "c" / "symbolic_y.json").read_text())["decode"] == {"release": {"bridge": 0.8}}
    with pytest.raises(ValueError, match="model.release: unknown track 'bass'"):
        MuseGANModule(**tiny_module_kw, data_meta=model.data_meta, release={"bass": 0.8})


def test_export_by_default_leaves_the_shipped_weights_alone(monkeypatch):
    import symbolic.export as X

    seen = {}

    def fake_export(ckpt, out_dir, name, **kw):
        seen.update(out=str(out_dir), name=name)
        raise SystemExit(0)

    monkeypatch.setattr(X, "export_checkpoint", fake_export)
    with pytest.raises(SystemExit):
        X.cli_main(["export symbolic", "some.ckpt"])
    assert seen == {"out": "data/build/exported", "name": "pop909"}


def test_velocity_data_puts_the_training_means_in_the_card(trained, tmp_path, capsys):
    import shutil

    import numpy as np

    from pipeline.cli import main
    from symbolic.generate import Composer
    from symbolic.velocity import FILE

    root, model = trained
    cache = tmp_path / "cache"
    shutil.copytree(root / "data", cache)
    meta = json.loads((cache / "meta.json").read_text())
    stats = np.zeros((3, len(meta["styles"]), 3, 3, 84, 16))
    stats[0, 0, :, 2, 40, 0] = [25, 25 * 70, 25 * 70 ** 2]   # piano, training split: 25 notes of 70 on step 0
    stats[2, 0, :, 2, 40, 0] = [25, 25 * 20, 25 * 20 ** 2]   # test notes do not count
    np.savez_compressed(cache / FILE, stats=stats, styles=np.array(meta["styles"]),
                        splits=np.array(["train", "valid", "test"]))
    out = tmp_path / "out"
    assert main(["export", "symbolic", str(root / "run.ckpt"), "--out", str(out), "--name", "v",
                 "--velocity-data", str(cache)]) == 0
    card = json.loads((out / "symbolic_v.json").read_text())
    table = card["decode"]["velocity"]
    assert table["steps_per_bar"] == 16 and set(table["tracks"]) == {"melody", "bridge", "piano"}
    assert table["tracks"]["piano"]["styles"]["*"]["*"] == [70] + [None] * 15
    assert table["tracks"]["melody"]["styles"] == {}
    composer = Composer.load(out / "symbolic_v.safetensors")
    assert composer.velocity == table
    # a cache without counts, or of other tracks: one line, exit 2, nothing written
    (cache / FILE).unlink()
    bad_out = tmp_path / "bad"
    assert main(["export", "symbolic", str(root / "run.ckpt"), "--out", str(bad_out), "--velocity-data", str(cache)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--velocity-data" in err[0] and "no velocity counts" in err[0]
    meta["tracks"] = ["a", "b", "c"]
    (cache / "meta.json").write_text(json.dumps(meta))
    assert main(["export", "symbolic", str(root / "run.ckpt"), "--out", str(bad_out), "--velocity-data", str(cache)]) == 2
    assert "the cache's tracks ['a', 'b', 'c'] are not the model's" in capsys.readouterr().err
    assert not bad_out.exists() or not list(bad_out.iterdir())
