"""``musegansynth generate --count N``: N songs through Lightning's ``Trainer.predict`` (pipeline.batch).

Only one device is tested (this machine has no GPU and DDP would start processes that re-run
pytest); the DDP split is checked on Lightning's own prediction sampler, rank by rank.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from fakes import SMALL_SONG
from pipeline.errors import UserError
from pipeline.generate import cli_main

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

#: 4 bars, three tracks with drums: enough to tell seeds apart, quick to render.
SHORT_SONG = dict(json.loads(json.dumps(SMALL_SONG)), sections=[
    {"name": "verse", "bars": 2, "chords": ["C", "Am"]},
    {"name": "chorus", "bars": 2, "chords": ["F", "G"], "morph": 0.5},
])


@pytest.fixture
def short_config(tmp_path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(SHORT_SONG, sort_keys=False))
    return path


def _wav(path: Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="int16", always_2d=True)
    assert sr == 16000
    return data


def test_count_writes_what_single_runs_write(tmp_path, short_config, patch_load_models, capsys, monkeypatch):
    import pipeline.batch as batch

    steps = []
    original = batch.SongPredictor.predict_step

    def spy(self, batch_, batch_idx):
        steps.append((list(batch_), batch_idx, type(self.trainer).__module__))
        return original(self, batch_, batch_idx)

    monkeypatch.setattr(batch.SongPredictor, "predict_step", spy)
    monkeypatch.chdir(tmp_path)
    many = tmp_path / "many"
    assert cli_main(["g", str(short_config), "--out", str(many), "--count", "2", "--seed", "11",
                     "--device", "cpu"]) == 0
    # stdout: the two song folders, nothing from Lightning
    assert capsys.readouterr().out.splitlines() == [str(many / "seed-11"), str(many / "seed-12")]
    # one predict_step per seed, run by a Lightning Trainer; the models were loaded once, on the CPU
    assert steps == [([11], 0, "lightning.pytorch.trainer.trainer"), ([12], 1, "lightning.pytorch.trainer.trainer")]
    assert patch_load_models == [("cpu", "neural")]
    assert sorted(p.name for p in many.iterdir()) == ["seed-11", "seed-12"]  # no staging folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "short.yaml"]  # no lightning_logs etc.
    for seed in (11, 12):
        one = tmp_path / f"one-{seed}"
        assert cli_main(["g", str(short_config), "--out", str(one), "--seed", str(seed), "--device", "cpu"]) == 0
        got = many / f"seed-{seed}"
        assert sorted(str(p.relative_to(got)) for p in got.rglob("*")) == \
            sorted(str(p.relative_to(one)) for p in one.rglob("*"))
        assert (got / "song.mid").read_bytes() == (one / "song.mid").read_bytes()
        assert np.array_equal(_wav(got / "song.wav"), _wav(one / "song.wav"))
        assert np.array_equal(_wav(got / "stems" / "lead.wav"), _wav(one / "stems" / "lead.wav"))
        facts = json.loads((got / "song.json").read_text())
        assert facts["seed"] == seed and facts["device"] == "cpu"
    assert (many / "seed-11" / "song.mid").read_bytes() != (many / "seed-12" / "song.mid").read_bytes()


def test_devices_without_count_is_a_note_and_a_first_failure_leaves_no_folder(tmp_path, short_config,
                                                                             patch_load_models, capsys):
    assert cli_main(["g", str(short_config), "--out", str(tmp_path / "one"), "--renderer", "none",
                     "--devices", "2"]) == 0
    assert capsys.readouterr().err == ("musegansynth: note: --devices 2: has no effect on one song (it runs on "
                                       "--device; --count N > 1 shares N songs over devices)\n")
    with pytest.raises(UserError, match=r"^--flac: --renderer none writes no audio \(leave one of them out\)$"):
        cli_main(["g", str(short_config), "--out", str(tmp_path / "f"), "--renderer", "none", "--flac"])
    assert not (tmp_path / "f").exists()
    # a config the composer refuses (a drums style it does not know), with --count: no folder is left
    bad = tmp_path / "bad.yaml"
    bad.write_text(re.sub(r"(?m)^style: .*$", "style: polka", short_config.read_text()))
    assert "style: polka" in bad.read_text()
    with pytest.raises(UserError, match="style: 'polka' is not allowed"):
        cli_main(["g", str(bad), "--out", str(tmp_path / "new" / "deep"), "--count", "2", "--renderer", "none"])
    assert not (tmp_path / "new").exists()


def test_count_failure_keeps_the_finished_songs_only(tmp_path, short_config, patch_load_models, monkeypatch):
    import pipeline.report as report

    real = report.write_report

    def fail_on_seed_6(stage, *, facts, **kw):
        if facts["seed"] == 6:
            raise UserError("seed 6: boom")
        return real(stage, facts=facts, **kw)

    monkeypatch.setattr(report, "write_report", fail_on_seed_6)
    out = tmp_path / "o"
    # the UserError comes out of Trainer.predict as itself (the CLI turns it into exit status 2)
    with pytest.raises(UserError, match="seed 6: boom"):
        cli_main(["g", str(short_config), "--out", str(out), "--count", "3", "--seed", "5", "--renderer", "none"])
    assert sorted(p.name for p in out.iterdir()) == ["seed-5"]
    assert (out / "seed-5" / "song.mid").exists()


def test_count_checks_every_song_folder_before_the_first_song(tmp_path, short_config, patch_load_models):
    """A file where a later seed's folder goes, or a file named stems in it, used to be found only
    after the earlier songs were written (found by QA)."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "seed-6").write_text("x")
    with pytest.raises(UserError, match=r"seed-6: is a file, where --count writes the folder of the song of seed 6: "
                                        r"move it, or give another --out"):
        cli_main(["g", str(short_config), "--out", str(out), "--count", "3", "--seed", "5", "--renderer", "none"])
    (out / "seed-6").unlink()
    (out / "seed-7").mkdir()
    (out / "seed-7" / "stems").write_text("mine")
    with pytest.raises(UserError, match=r"seed-7/stems: is a file, where this command writes a folder"):
        cli_main(["g", str(short_config), "--out", str(out), "--count", "3", "--seed", "5", "--renderer", "none"])
    assert sorted(p.name for p in out.rglob("*")) == ["seed-7", "stems"]


def test_ctrl_c_in_a_batch_is_an_interrupt_and_the_finished_songs_are_listed(tmp_path, short_config,
                                                                               patch_load_models, monkeypatch,
                                                                               capsys):
    """Lightning answers Ctrl-C inside Trainer.predict with sys.exit(1): the run ended with status 1,
    no message, and no song listed though some were written (found by QA)."""
    import pipeline.generate as gen
    from pipeline.cli import main

    real = gen.generate_song

    def interrupted_at_seed_6(config, out_dir, **kw):
        if config.seed == 6:
            raise KeyboardInterrupt
        return real(config, out_dir, **kw)

    monkeypatch.setattr(gen, "generate_song", interrupted_at_seed_6)
    out = tmp_path / "o"
    assert main(["generate", str(short_config), "--out", str(out), "--count", "3", "--seed", "5",
                 "--renderer", "none"]) == 130
    captured = capsys.readouterr()
    assert captured.out == f"{out / 'seed-5'}\n" and captured.err.strip().endswith("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["seed-5"]


def test_devices_option_is_checked_before_loading_models(tmp_path, short_config, patch_load_models):
    from pipeline.batch import parse_devices

    assert parse_devices("auto") == "auto" and parse_devices("2") == 2 and parse_devices("-1") == -1
    assert parse_devices("0,1") == "0,1" and parse_devices("1,") == "1," and parse_devices(" 1 ") == 1
    for bad in ("two", "0", "1.5", "-2", ""):
        with pytest.raises(UserError, match=r"--devices .*: not allowed \(allowed: auto, a count"):
            parse_devices(bad)
    with pytest.raises(UserError, match=r"--devices 'many': not allowed"):
        cli_main(["g", str(short_config), "--out", str(tmp_path / "o"), "--count", "2", "--devices", "many"])
    assert patch_load_models == [] and not (tmp_path / "o").exists()
    # GPU indices on the CPU: Lightning refuses them, the user gets one line
    with pytest.raises(UserError, match=r"--devices 0,1: "):
        cli_main(["g", str(short_config), "--out", str(tmp_path / "o"), "--count", "2", "--devices", "0,1",
                  "--device", "cpu", "--renderer", "none"])
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match=r"--count 3: the last seed 2147483649 is past 2147483647"):
        cli_main(["g", str(short_config), "--count", "3", "--seed", str(2**31 - 1)])


def test_seed_dataset_and_the_ddp_split():
    """Each DDP rank gets its own seeds, every seed exactly once (Lightning's prediction sampler)."""
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSamplerWrapper
    from torch.utils.data import DataLoader, SequentialSampler

    from pipeline.batch import SeedDataset, collate_seeds, song_dir

    ds = SeedDataset(40, 5)
    assert len(ds) == 5 and [ds[k] for k in range(5)] == [40, 41, 42, 43, 44]
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError):
        SeedDataset(1, 0)
    batches = list(DataLoader(ds, batch_size=2, collate_fn=collate_seeds))
    assert batches == [[40, 41], [42, 43], [44]] and all(type(s) is int for b in batches for s in b)
    assert song_dir("out", 41) == Path("out") / "seed-41"
    per_rank = []
    for rank in range(2):
        sampler = UnrepeatedDistributedSamplerWrapper(SequentialSampler(ds), num_replicas=2, rank=rank,
                                                      shuffle=False)
        per_rank.append([ds[i] for i in sampler])
    assert sorted(per_rank[0] + per_rank[1]) == [40, 41, 42, 43, 44]  # all seeds, none twice
    assert not set(per_rank[0]) & set(per_rank[1]) and all(per_rank)


def test_single_song_path_does_not_import_lightning(tmp_path, small_config_path):
    code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import pipeline.generate as gen
from fakes import FakeComposer, fake_drum_composer
gen.load_models = lambda config, device, renderer: gen.Models(FakeComposer(), fake_drum_composer(), None, {{}})
assert gen.cli_main(["g", {str(small_config_path)!r}, "--out", {str(tmp_path / 'one')!r}, "--renderer", "none",
                     "--device", "cpu"]) == 0
loaded = sorted(m for m in sys.modules if m == "lightning" or m.startswith(("lightning.", "pytorch_lightning")))
print("LIGHTNING", loaded)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LIGHTNING []" in proc.stdout, proc.stdout
    assert (tmp_path / "one" / "song.mid").exists()


def test_generate_batch_loads_models_on_its_device_when_none_given(tmp_path, short_config):
    """The path every GPU rank takes: no models handed in, SongPredictor.setup loads them there."""
    from fakes import FakeComposer, fake_drum_composer

    from pipeline.batch import generate_batch
    from pipeline.config import load_config
    from pipeline.generate import Models

    calls = []

    def loader(config, device, renderer):
        calls.append((config.seed, device, renderer))
        return Models(FakeComposer(), fake_drum_composer(), None, {})

    config = load_config(short_config).with_seed(20)
    got = generate_batch(config, tmp_path / "b", count=3, device="cpu", devices=1, renderer="none", models=None,
                         loader=loader, batch_size=2)
    assert got == [tmp_path / "b" / f"seed-{s}" for s in (20, 21, 22)]
    assert calls == [(20, "cpu", "none")]  # once, on the Trainer's device
    assert all((p / "song.mid").exists() and not (p / "song.wav").exists() for p in got)
    with pytest.raises(UserError, match=r"--device 'mps': not allowed with --count"):
        generate_batch(config, tmp_path / "c", count=2, device="mps", loader=loader)
    # -1 ("all devices") on the CPU: its one device (Lightning takes only a count there)
    got = generate_batch(config, tmp_path / "d", count=2, device="cpu", devices=-1, renderer="none", models=None,
                         loader=loader)
    assert got == [tmp_path / "d" / f"seed-{s}" for s in (20, 21)] and all((p / "song.mid").exists() for p in got)
