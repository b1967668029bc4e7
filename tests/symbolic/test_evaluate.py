"""``musegansynth evaluate symbolic`` on small hand-made dataset caches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from symbolic import evaluate as E
from symbolic import metrics as M

ROOT = Path(__file__).resolve().parents[2]
GRID = {"steps_per_beat": 4, "beats_per_bar": 4, "lowest_pitch": 24, "n_pitches": 84, "steps_per_bar": 16}
PROG = "musegansynth evaluate symbolic"


def make_rolls(n: int = 6) -> np.ndarray:
    """[n, 3 (melody, piano, drums), 4, 16, 84] with every metric defined."""
    rolls = np.zeros((n, 3, 4, 16, 84), dtype=bool)
    for i in range(n):
        root = i % 12
        for bar in range(4):
            rolls[i, 0, bar, 0:4, 36 + root] = True  # melody: 4-step note ...
            rolls[i, 0, bar, 6 + (bar % 2):8 + (bar % 2), 40 + root] = True  # ... and a 2-step one
            rolls[i, 1, bar, 0:8, [24 + root, 28 + root, 31 + root]] = True  # piano triad, re-struck each half bar
            rolls[i, 1, bar, 8:16, [24 + root, 28 + root, 31 + root]] = False
            rolls[i, 1, bar, 9:16, [24 + root, 28 + root, 31 + root]] = True
            rolls[i, 2, bar, [0, 4, 8, 12], 12] = True  # kick on beats
            rolls[i, 2, bar, [2, 6, 10, 14 - (bar % 2)], 18] = True  # hat
    return rolls


def make_dataset(root: Path, rolls: np.ndarray, tracks=("melody", "piano", "drums"),
                 is_drum=(False, False, True), split: str = "test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    n = rolls.shape[0]
    meta = {"tracks": list(tracks), "programs": [0] * len(tracks), "is_drum": list(is_drum), "grid": GRID,
            "n_bars": 4, "styles": ["a", "b"], "counts": {split: n}}
    (root / "meta.json").write_text(json.dumps(meta))
    chords = np.zeros((n, 4, 4, 12), dtype=np.uint8)
    for i in range(n):
        chords[i, :, :, [(i + k) % 12 for k in (0, 4, 7)]] = 1
    np.savez_compressed(root / f"{split}.npz", rolls=rolls, chords=chords, has_chords=np.ones(n, bool),
                        style=np.arange(n, dtype=np.int64) % 2, song=np.arange(n, dtype=np.int64),
                        key=np.zeros(n, np.int64))
    return root


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds", make_rolls())


def test_select_phrases():
    assert E.select_phrases(5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    assert E.select_phrases(5, None, 0).tolist() == [0, 1, 2, 3, 4]
    assert E._parser("evaluate").parse_args(["--data", "d"]).n is None  # the CLI's default: all
    a = E.select_phrases(100, 7, 3)
    assert a.tolist() == sorted(a.tolist()) and len(set(a.tolist())) == 7
    assert a.tolist() == E.select_phrases(100, 7, 3).tolist()
    assert a.tolist() != E.select_phrases(100, 7, 4).tolist()
    with pytest.raises(UserError, match="--n"):
        E.select_phrases(5, 0, 0)


def test_relative_difference_and_within():
    assert E.relative_difference(2.0, 2.2) == pytest.approx(0.1)
    assert E.relative_difference(-2.0, -2.2) == pytest.approx(-0.1)
    assert E.relative_difference(0.0, 0.0) == 0.0
    assert math.isnan(E.relative_difference(0.0, 0.5))
    assert math.isnan(E.relative_difference(float("nan"), 0.5))
    data = {"m": {"EB": 0.5, "UPC": 2.0}, "pairs": {"m/p": {"TD": 1.0}}}
    gen = {"m": {"EB": 0.55, "UPC": 2.5}, "pairs": {"m/p": {"TD": float("nan")}}}
    rows = E.compare(data, gen)
    assert [(r["metric"], r["track"], r["within"]) for r in rows] == [
        ("EB", "m", True), ("UPC", "m", False), ("TD", "m/p", False)]
    assert rows[1]["rel_diff"] == pytest.approx(0.25)
    assert all(r["within"] is None for r in E.compare(data, None))
    table = E.format_table(rows)
    assert "+25.0%" in table and "n/a" in table and table.count("\n") == 4
    # undefined on both sides (a track silent in both): not a miss, not counted, said so
    both = E.compare({"b": {"UPC": float("nan"), "EB": 1.0}}, {"b": {"UPC": float("nan"), "EB": 1.0}})
    assert [(r["within"], r.get("undefined")) for r in both] == [(None, True), (True, None)]
    assert E.format_table(both).splitlines()[2].split()[-1] == "undefined"


def test_data_only_report_matches_metrics(dataset, tmp_path, capsys):
    out = tmp_path / "out" / "report.json"
    assert E.cli_main([PROG, "--data", str(dataset), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6 phrases" in printed and "UPC" in printed
    report = json.loads(out.read_text())
    expect = M.evaluate_rolls(make_rolls(), ["melody", "piano", "drums"], [False, False, True], GRID)
    assert report["generated"] is None and report["n_data"] == 6
    for track in ("melody", "piano", "drums"):
        for metric, value in expect[track].items():
            assert report["data"][track][metric] == pytest.approx(value), (track, metric)
    assert report["data"]["pairs"]["melody/piano"]["TD"] == pytest.approx(expect["pairs"]["melody/piano"]["TD"])
    assert len(report["rows"]) == 8 + 8 + 5 + 1
    assert not list(out.parent.glob(".*"))  # no temporary file left


def test_generated_npz_same_rolls_all_within(dataset, tmp_path, capsys):
    gen = tmp_path / "gen.npz"
    np.savez(gen, rolls=make_rolls().astype(np.float32) * 0.9)  # probabilities above 0.5
    out = tmp_path / "r.json"
    assert E.cli_main([PROG, "--data", str(dataset), "--generated", str(gen), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["summary"] == {"compared": 22, "within": 22, "undefined": 0}
    assert all(r["rel_diff"] == 0.0 for r in report["rows"])
    assert report["kit"] == {"drums": 0.0}                            # the same drums, each as often
    out_text = capsys.readouterr().out
    assert "22 of 22 metrics within 10%" in out_text and "drums: kit distance 0.000" in out_text


def test_generated_npz_differs(dataset, tmp_path):
    rolls = make_rolls()
    rolls[:, 0, 2:] = False  # melody silent in bars 2-3: EB 0 -> 0.5
    rolls[:, 2] = False  # no drums at all: drum metrics NaN, EB 1
    gen = tmp_path / "gen.npz"
    np.savez(gen, rolls=rolls)
    report = E.evaluate_symbolic(dataset, generated=gen)
    rows = {(r["track"], r["metric"]): r for r in report["rows"]}
    assert rows[("melody", "EB")]["generated"] == 0.5 and rows[("melody", "EB")]["within"] is False
    assert math.isnan(rows[("melody", "EB")]["rel_diff"])  # data EB is 0
    assert math.isnan(rows[("drums", "DP")]["generated"]) and rows[("drums", "DP")]["within"] is False
    assert rows[("piano", "UPC")]["within"] is True
    assert report["summary"]["within"] < report["summary"]["compared"] == 22
    # NaN is written as JSON null
    out = tmp_path / "r.json"
    E.cli_main([PROG, "--data", str(dataset), "--generated", str(gen), "--json", str(out)])
    assert json.loads(out.read_text())["generated"]["drums"]["DP"] is None
    assert json.loads(out.read_text())["kit"] == {"drums": None}          # no hit generated: no kit to compare
    moved = make_rolls()
    moved[:, 2, ..., 19] = moved[:, 2, ..., 18]                               # the hi-hat's 16 hits a phrase on
    moved[:, 2, ..., 18] = False                                              # another key, the 16 kicks kept
    np.savez(gen, rolls=moved)
    assert E.evaluate_symbolic(dataset, generated=gen)["kit"] == {"drums": 0.5}  # (1/2 + 1/2) / 2
    moved[:, 2, ..., 13] = moved[:, 2, ..., 12]
    moved[:, 2, ..., 12] = False                                              # and the kicks: no key shared
    np.savez(gen, rolls=moved)
    assert E.evaluate_symbolic(dataset, generated=gen)["kit"] == {"drums": 1.0}
    assert "kit" not in E.evaluate_symbolic(dataset)                         # no generated phrases


def test_n_selects_a_seeded_subset(dataset):
    r1 = E.evaluate_symbolic(dataset, n=3, seed=1)
    r2 = E.evaluate_symbolic(dataset, n=3, seed=1)
    assert r1["n_data"] == 3 and r1["data"] == r2["data"]
    idx = E.select_phrases(6, 3, 1)
    expect = M.evaluate_rolls(make_rolls()[idx], ["melody", "piano", "drums"], [False, False, True], GRID)
    assert r1["data"]["melody"]["SC"] == pytest.approx(expect["melody"]["SC"])


class FakeComposer:
    """Plays back given rolls as probabilities and records the conditioning it was given."""

    def __init__(self, rolls: np.ndarray):
        self.track_names = ["melody", "piano", "drums"]
        self.is_drum = [False, False, True]
        self.grid = SimpleNamespace(**GRID)
        self.rolls = rolls
        self.chords, self.style, self.z = [], [], None
        self.pos = 0

    def sample_latents(self, n, generator):
        self.z = torch.randn(n, 8, generator=generator)
        return {"z": self.z}

    def decode(self, latents, chords=None, style=None):
        n = latents["z"].shape[0]
        self.chords.append(chords.numpy())
        self.style.append(style.numpy())
        out = torch.as_tensor(self.rolls[self.pos:self.pos + n], dtype=torch.float32) * 0.8
        self.pos += n
        return out


def test_weights_condition_on_held_out_chords_and_style(dataset, monkeypatch):
    idx = E.select_phrases(6, 4, 5)
    fake = FakeComposer(make_rolls()[idx])
    seen = {}

    def load(path, device):
        seen["path"], seen["device"] = str(path), device
        return fake

    monkeypatch.setattr(E, "_load_composer", load)
    report = E.evaluate_symbolic(dataset, weights="w.safetensors", n=4, seed=5)
    assert seen == {"path": "w.safetensors", "device": "cpu"}
    with np.load(dataset / "test.npz") as z:
        assert np.array_equal(np.concatenate(fake.chords), z["chords"][idx].astype(np.float32))
        assert np.array_equal(np.concatenate(fake.style), z["style"][idx])
    assert report["n_generated"] == 4 and report["summary"]["within"] == report["summary"]["compared"] == 22
    # the latents come from a generator seeded with --seed
    assert torch.equal(fake.z, torch.randn(4, 8, generator=torch.Generator().manual_seed(5)))


def test_weights_track_mismatch(dataset, monkeypatch):
    fake = FakeComposer(make_rolls())
    fake.track_names = ["a", "b", "c"]
    monkeypatch.setattr(E, "_load_composer", lambda path, device: fake)
    with pytest.raises(UserError, match="tracks"):
        E.evaluate_symbolic(dataset, weights="w.safetensors")


def test_missing_weights(dataset, tmp_path):
    with pytest.raises(UserError, match="weights not found"):
        E.evaluate_symbolic(dataset, weights=tmp_path / "nope.safetensors")


def test_midi_folder(tmp_path, make_midi):
    # POP909 tracks: melody, bridge, piano. 8 bars of 4/4 at 120 qpm -> 2 phrases of 4 bars
    ds = make_dataset(tmp_path / "pop", make_rolls()[:, [0, 1, 1]], tracks=("melody", "bridge", "piano"),
                      is_drum=(False, False, False))
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    melody = [(60 + (b % 2) * 7, 4 * b, 4 * b + 2, 90) for b in range(8)]  # C or G, half a bar, each bar
    piano = [(p, 4 * b, 4 * b + 4, 70) for b in range(8) for p in (48, 52, 55)]  # C E G whole bars
    make_midi("midi/song.mid", [("MELODY", 0, False, melody), ("PIANO", 0, False, piano)])
    make_midi("midi/short.mid", [("MELODY", 0, False, melody[:2])])  # 2 bars: no whole phrase
    report = E.evaluate_symbolic(ds, midi=midi_dir)
    gen = report["generated"]
    assert report["n_generated"] == 2
    assert gen["melody"]["EB"] == 0.0 and gen["bridge"]["EB"] == 1.0
    assert gen["melody"]["UPC"] == 1.0  # one pitch class a bar
    assert gen["melody"]["QN"] == 1.0  # 8-step notes
    assert gen["piano"]["UPC"] == 3.0 and gen["piano"]["POLY"] == 3.0
    assert gen["piano"]["PCE"] == pytest.approx(math.log2(3))
    # melody bars alternate C and G over the C E G piano: mean of TD(C, CEG) and TD(G, CEG)
    phi = M.tonal_centroid_matrix()
    ceg = phi[:, [0, 4, 7]].mean(axis=1)
    expect_td = (np.linalg.norm(phi[:, 0] - ceg) + np.linalg.norm(phi[:, 7] - ceg)) / 2
    assert gen["pairs"]["melody/piano"]["TD"] == pytest.approx(expect_td)


def test_midi_folder_moves_kit_keys_as_a_groove_cache_did(tmp_path, make_midi):
    # a drums-only cache; 4 bars of a TD-11 groove: kick on beat 1, edge hi-hat (22) on every beat
    ds = make_dataset(tmp_path / "groove", make_rolls()[:, [2]], tracks=("drums",), is_drum=(True,))
    (tmp_path / "midi").mkdir()
    hits = [(36, 4 * b, 4 * b + 0.25, 100) for b in range(4)] + [(22, b, b + 0.25, 80) for b in range(16)]
    make_midi("midi/groove.mid", [("Drums", 0, True, hits)])
    plain = E.load_midi_phrases(tmp_path / "midi", json.loads((ds / "meta.json").read_text()))
    assert plain[0, 0, ..., 42 - 24].sum() == 0 and plain[0, 0].sum() == 4     # a plain cache drops key 22
    meta = json.loads((ds / "meta.json").read_text())
    meta["drum_keys"] = {"22": 42, "26": 46, "58": 43}
    (ds / "meta.json").write_text(json.dumps(meta))
    moved = E.load_midi_phrases(tmp_path / "midi", meta)
    assert moved[0, 0, :, ::4, 42 - 24].all() and moved[0, 0].sum() == 4 + 16   # Groove's: played as 42
    assert np.array_equal(moved[0, 0, ..., 36 - 24], plain[0, 0, ..., 36 - 24])


def test_midi_folder_errors(dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no .mid"):
        E.evaluate_symbolic(dataset, midi=empty)
    (empty / "x.mid").write_bytes(b"MThd")
    with pytest.raises(UserError, match="track map"):  # melody/piano/drums matches no known map
        E.evaluate_symbolic(dataset, midi=empty)


def test_bad_inputs(dataset, tmp_path):
    with pytest.raises(UserError, match="no such dataset folder"):
        E.evaluate_symbolic(tmp_path / "missing")
    with pytest.raises(UserError, match="valid.npz: split file not found"):
        E.evaluate_symbolic(dataset, split="valid")
    bad = tmp_path / "bad.npz"
    np.savez(bad, rolls=np.zeros((2, 3, 4, 16, 72), bool))
    with pytest.raises(UserError, match="bad.npz.*shape"):
        E.evaluate_symbolic(dataset, generated=bad)
    np.savez(bad, other=np.zeros(3))
    with pytest.raises(UserError, match="no 'rolls'"):
        E.evaluate_symbolic(dataset, generated=bad)
    (dataset / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="meta.json: not readable JSON"):
        E.evaluate_symbolic(dataset)
    (dataset / "meta.json").unlink()
    with pytest.raises(UserError, match="meta.json: dataset cache not found"):
        E.evaluate_symbolic(dataset)


def test_generated_file_that_is_not_an_npz(dataset, tmp_path, capsys):
    """A MIDI file (or any non-npz) given to --generated: one line saying what is expected, and no
    numpy advice to load the file unsafely."""
    from pipeline.cli import main as cli

    midi = tmp_path / "song.mid"
    midi.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x00")
    text = tmp_path / "notes.npz"
    text.write_text("hello, not an npz")
    npy = tmp_path / "rolls.npy"
    np.save(npy, make_rolls(2))
    objects = tmp_path / "objects.npz"
    np.savez(objects, rolls=np.array([1, "a", None], dtype=object))
    nan = tmp_path / "nan.npz"   # used to count as silence (found by QA)
    np.savez(nan, rolls=np.full((2, 3, 4, 16, 84), np.nan, np.float32))
    for path, says in ((midi, "a MIDI file, not an npz of generated phrases"), (text, "not an npz of generated phrases"),
                       (npy, "not an npz of generated phrases"), (objects, "'rolls' holds Python objects"),
                       (nan, "'rolls' holds NaN or infinite values")):
        assert cli(["evaluate", "symbolic", "--data", str(dataset), "--generated", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and says in err, err
        assert "pickle" not in err and "unsafe" not in err, err
        assert "'rolls' [N, 3, 4, 16, 84]" in err, err
        assert path is not midi or "--midi DIR" in err, err


def test_unwritable_json_is_refused_before_evaluating(dataset, tmp_path, monkeypatch, capsys):
    """--json that cannot be written is refused first, not after a long evaluation
    (``pipeline.fileio.check_json_out``, tested with every kind of bad path in tests/test_fileio.py)."""
    from pipeline.cli import main as cli

    def evaluate(*args, **kwargs):
        raise AssertionError("evaluated before checking --json")

    monkeypatch.setattr(E, "evaluate_symbolic", evaluate)
    assert cli(["evaluate", "symbolic", "--data", str(dataset), "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--json {tmp_path}: is a folder" in err and "evaluated" not in err, err


def test_json_in_new_folders_is_still_written(dataset, tmp_path):
    out = tmp_path / "new" / "deeper" / "report.json"
    assert E.cli_main([PROG, "--data", str(dataset), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n_data"] == 6
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".")) == []  # no probe left


def test_sources_are_exclusive(dataset, capsys):
    with pytest.raises(SystemExit) as exc:
        E.cli_main([PROG, "--data", str(dataset), "--weights", "a", "--generated", "b"])
    assert exc.value.code == 2
    with pytest.raises(UserError, match="at most one"):
        E.evaluate_symbolic(dataset, weights="a", generated="b")


def test_subprocess_missing_data_dir_exits_2(tmp_path):
    missing = tmp_path / "nothing_here"
    # "--data=DIR" as one token: pipeline/cli.py's REMAINDER parsing reorders "--data DIR" (reported)
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "evaluate", "symbolic", f"--data={missing}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_map_styles_by_name():
    style = np.array([0, 1, 2, 1])
    # data styles a, b, c; the composer knows B and a: a -> 1, b -> 0, c -> -1 (unknown)
    assert E.map_styles(style, ["a", "b", "c"], ["B", "a"]).tolist() == [1, 0, -1, 0]
    assert E.map_styles(style, None, ["a"]).tolist() == style.tolist()
    assert E.map_styles(np.array([-1, 5]), ["a"], ["a"]).tolist() == [-1, -1]


def test_real_composer_weights(dataset, tmp_path):
    from symbolic.export import export_generator
    from symbolic.modules import Generator

    torch.manual_seed(0)
    gen = Generator(n_tracks=3, n_styles=2, z_dim=8, trunk_channels=(16, 8), branch_channels=8, style_dim=4,
                    chord_dim=4, track_cond_dim=0)
    meta = json.loads((dataset / "meta.json").read_text())
    weights, _ = export_generator(gen, tmp_path / "w", "tiny", meta)
    out1, out2 = tmp_path / "r1.json", tmp_path / "r2.json"
    for out in (out1, out2):
        assert E.cli_main([PROG, "--data", str(dataset), "--weights", str(weights), "--n", "4", "--seed", "3",
                           "--json", str(out)]) == 0
    r1, r2 = json.loads(out1.read_text()), json.loads(out2.read_text())
    assert r1["source"] == {"kind": "weights", "path": str(weights)} and r1["n_generated"] == 4
    assert r1["generated"] == r2["generated"]  # same seed + device -> same phrases
    assert set(r1["generated"]) == {"melody", "piano", "drums", "pairs"}
    assert r1["summary"]["compared"] == 22
    # a dataset with other tracks is refused with the weights named
    other = make_dataset(tmp_path / "other", make_rolls()[:, :2], tracks=("a", "b"), is_drum=(False, False))
    with pytest.raises(UserError, match="tracks"):
        E.evaluate_symbolic(other, weights=weights)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_cuda(dataset, monkeypatch):
    monkeypatch.setattr(E, "_load_composer", lambda path, device: pytest.fail("should not load"))
    with pytest.raises(UserError, match="--device cuda: CUDA is not available"):
        E.evaluate_symbolic(dataset, weights="w.safetensors", device="cuda")


def _bench(name: str = "bench_symbolic_quality"):
    """A benchmark script of ``benchmarks/`` as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_skips_without_its_default_inputs_and_refuses_a_path_typed_wrong(tmp_path, capsys, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench, "WEIGHTS", tmp_path / "none.safetensors")
    monkeypatch.setattr(bench, "DATA", tmp_path)
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "none.safetensors" in out
    with pytest.raises(SystemExit) as exc:
        bench.main(["--weights", str(tmp_path / "typo.safetensors")])
    assert exc.value.code == 2 and "error: missing" in capsys.readouterr().err


def test_benchmark_runs_with_weights(dataset, tmp_path, capsys):
    from symbolic.export import export_generator
    from symbolic.modules import Generator

    torch.manual_seed(0)
    gen = Generator(n_tracks=3, n_styles=2, z_dim=8, trunk_channels=(16, 8), branch_channels=8, style_dim=4,
                    chord_dim=4, track_cond_dim=0)
    weights, _ = export_generator(gen, tmp_path / "w", "tiny", json.loads((dataset / "meta.json").read_text()))
    out = tmp_path / "bench.json"
    assert _bench().main(["--weights", str(weights), "--data", str(dataset), "--n", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    s = report["summary"]
    assert f"within 10%: {s['within']}/{s['compared']} metrics (4 held-out vs 4 generated" in printed
    total = np.load(dataset / "test.npz")["rolls"].shape[0]
    assert total > 4
    assert _bench().main(["--weights", str(weights), "--data", str(dataset)]) == 0  # default: the whole split
    assert f"({total} held-out vs {total} generated" in capsys.readouterr().out


def test_rhythm_benchmark_prints_the_held_out_and_generated_tables(dataset, tmp_path, capsys):
    from symbolic import metrics as M
    from symbolic.export import export_generator
    from symbolic.modules import Generator

    bench = _bench("bench_symbolic_rhythm")
    with pytest.raises(SystemExit) as exc:   # a path typed wrong: an error, not a skip
        bench.main(["--weights", str(tmp_path / "none.safetensors"), "--data", str(dataset)])
    assert exc.value.code == 2 and "none.safetensors" in capsys.readouterr().err
    torch.manual_seed(0)
    gen = Generator(n_tracks=3, n_styles=2, z_dim=8, trunk_channels=(16, 8), branch_channels=8, style_dim=4,
                    chord_dim=4, track_cond_dim=0)
    meta = json.loads((dataset / "meta.json").read_text())
    weights, _ = export_generator(gen, tmp_path / "w", "tiny", meta)
    argv = ["--weights", str(weights), "--data", str(dataset), "--split", "test", "--track", "piano", "--max-steps", "3"]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    held = np.array([[float(v) for v in line.split()[2:]] for line in lines[2:5]])
    rolls = np.load(dataset / "test.npz")["rolls"][:, 1]
    want = M.rhythm_profile(rolls, meta["grid"]["steps_per_beat"], 3)
    np.testing.assert_allclose(held, want, atol=5e-4)
    assert lines[5].startswith("generated") and lines[9].startswith("difference")
    texture = [line for line in lines if line.startswith("held-out ")][-1]
    np.testing.assert_allclose([float(v) for v in texture.split()[1:]], M.texture_profile(rolls), atol=5e-4)
    assert bench.main(argv[:-4] + ["--split", "test", "--track", "bass"]) == 2
    assert "unknown track 'bass'" in capsys.readouterr().err


@pytest.mark.data
def test_midi_folder_on_a_real_pop909_song(shared_data, tmp_path):
    song = shared_data / "pop909" / "001" / "001.mid"
    if not song.is_file():
        pytest.skip(f"{song} is absent")
    ds = make_dataset(tmp_path / "pop", make_rolls()[:, [0, 1, 1]], tracks=("melody", "bridge", "piano"),
                      is_drum=(False, False, False))
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    (midi_dir / "001.mid").symlink_to(song)
    report = E.evaluate_symbolic(ds, midi=midi_dir)
    gen = report["generated"]
    assert report["n_generated"] >= 10  # a whole pop song is dozens of bars
    for track in ("melody", "bridge", "piano"):
        assert 0.0 <= gen[track]["EB"] < 1.0
        assert 1.0 <= gen[track]["UPC"] <= 12.0
        assert 0.0 <= gen[track]["PCE"] <= math.log2(12)
        assert 0.5 < gen[track]["SC"] <= 1.0  # tonal music stays mostly in one scale
    assert 0.0 <= gen["pairs"]["melody/piano"]["TD"] <= 3.0


def test_bootstrap_intervals_resample_whole_songs():
    rolls = make_rolls(4)
    rolls[3, 0, :2] = False                     # song 9 (phrase 3): melody silent in bars 0-1
    songs = np.array([7, 7, 7, 9])
    names, drums = ["melody", "piano", "drums"], [False, False, True]
    iv = E.bootstrap_intervals(rolls, songs, names, drums, GRID, 400, seed=3)
    # a draw of two songs: song 7 twice (melody EB 0), both (2 of 16 bars, 0.125) or song 9 twice
    # (4 of 8 bars, 0.5), a quarter of the draws at each end, so the central 95% reaches both;
    # drawing phrases instead of songs would end at 0.375 (3 of 4 phrases silent: 0.4%)
    assert iv[("EB", "melody")] == (0.0, 0.5)
    # the piano is the same in every phrase: no spread
    piano = M.evaluate_rolls(rolls, names, drums, GRID)["piano"]
    lo, hi = iv[("POLY_RATE", "piano")]
    assert lo == pytest.approx(piano["POLY_RATE"]) and hi == pytest.approx(piano["POLY_RATE"])
    assert ("TD", "melody/piano") in iv
    assert E.bootstrap_intervals(rolls, songs, names, drums, GRID, 400, seed=3) == iv   # seeded
    # one song: every draw is the split itself
    one = E.bootstrap_intervals(rolls, np.zeros(4, int), names, drums, GRID, 5)
    assert one[("EB", "melody")] == pytest.approx((0.125, 0.125))
    with pytest.raises(ValueError, match="whole number >= 1"):
        E.bootstrap_intervals(rolls, songs, names, drums, GRID, 0)
    with pytest.raises(ValueError, match="3 song ids for 4 phrases"):
        E.bootstrap_intervals(rolls, songs[:3], names, drums, GRID, 5)


def test_bootstrap_in_the_report_and_table(tmp_path, capsys):
    rolls = make_rolls(4)
    rolls[2:, 0, :2] = False
    ds = make_dataset(tmp_path / "ds", rolls)
    z = dict(np.load(ds / "test.npz"))
    z["song"] = np.array([0, 0, 1, 1])
    np.savez_compressed(ds / "test.npz", **z)
    gen = make_rolls(4)
    gen[:, 0] = False                            # melody never plays: EB 1, outside [0, 0.5]
    np.savez(tmp_path / "gen.npz", rolls=gen)
    out = tmp_path / "r.json"
    assert E.cli_main([PROG, "--data", str(ds), "--generated", str(tmp_path / "gen.npz"), "--bootstrap", "50",
                       "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "data 95% interval" in printed
    assert "inside the held-out value's 95% interval (50 resamples of its 2 songs)" in printed
    report = json.loads(out.read_text())
    rows = {(r["track"], r["metric"]): r for r in report["rows"]}
    assert rows[("melody", "EB")]["in_interval"] is False and rows[("melody", "EB")]["data_hi"] <= 0.5
    assert rows[("piano", "POLY_RATE")]["in_interval"] is True      # the piano is the data's
    assert report["summary"]["bootstrap"] == 50 and report["summary"]["songs"] == 2
    assert report["summary"]["inside"] == sum(1 for r in report["rows"] if r["in_interval"])
    with pytest.raises(UserError, match="--bootstrap: expected a whole number"):
        E.evaluate_symbolic(ds, bootstrap=-1)


def test_split_without_song_ids_counts_each_phrase_as_a_song(tmp_path):
    ds = make_dataset(tmp_path / "ds", make_rolls(3))
    z = dict(np.load(ds / "test.npz"))
    del z["song"]
    np.savez_compressed(ds / "test.npz", **z)
    _, arrays = E.load_split(ds, "test")
    assert arrays["song"].tolist() == [0, 1, 2]


def test_style_benchmark_hits_per_bar_and_fit_on_hand_made_rolls():
    bench = _bench("bench_symbolic_styles")
    rolls = np.zeros((2, 2, 2, 4, 3), dtype=bool)   # 2 phrases, 2 tracks, 2 bars of 4 steps, 3 pitches
    rolls[0, 0, 0, :, 0] = True                      # one note held across the bar line: 1 start
    rolls[0, 0, 1, :, 0] = True
    rolls[1, 0, 0, ::2, 1] = True                    # 2 hits, then 2 more in bar 1, on another pitch too
    rolls[1, 0, 1, ::2, 1] = True
    rolls[1, 0, 1, 1, 2] = True
    # track 0: 1 + 2 + 2 + 1 = 6 starts over 4 bars; track 1 silent
    np.testing.assert_allclose(bench.hits_per_bar(rolls), [1.5, 0.0])
    rows = [{"phrases": 30, "rel_diff": 0.05}, {"phrases": 10, "rel_diff": -0.2}, {"phrases": 5, "rel_diff": math.nan}]
    fit, within, cells = bench.style_fit(rows)
    assert fit == pytest.approx((30 * 0.05 + 10 * 0.2) / 40) and (within, cells) == (1, 2)
    # same-style training phrases: each from its own style's pool, any phrase for an unseen style
    pick = bench.same_style_phrases(np.array([0, 1, 1, 0, 2]), np.array([1, 0, 7, 2]), seed=0)
    assert pick[0] in (1, 2) and pick[1] in (0, 3) and 0 <= pick[2] < 5 and pick[3] == 4


def test_style_benchmark_kit_distance_and_key_table_on_hand_made_rolls():
    bench = _bench("bench_symbolic_styles")
    meta = {"tracks": ["melody", "drums"], "is_drum": [False, True]}
    data = np.zeros((3, 2, 1, 4, 5), dtype=bool)     # 3 phrases, 2 tracks, 1 bar of 4 steps, 5 keys
    data[:, 1, 0, :, 0] = True                      # 4 hits on key 0 in every phrase
    data[:, 0, 0, :, 3] = True                      # the melody is never scored here
    gen = data.copy()
    gen[2, 1, 0, :, 0] = False                      # phrase 2 (style 1) plays key 1 instead
    gen[2, 1, 0, :, 1] = True
    rows = bench.kit_rows(data, gen, np.array([0, 0, 1]), ["a", "b"], meta, min_phrases=1)
    assert [(r["style"], r["phrases"], r["track"]) for r in rows] == [("all", 3, "drums"), ("a", 2, "drums"),
                                                                     ("b", 1, "drums")]
    # all: key 0 has 12/12 of the data's hits and 8/12 of the generated, key 1 0 and 4/12: 1/3
    assert [r["kit_distance"] for r in rows] == pytest.approx([1 / 3, 0.0, 1.0])
    assert [r["style"] for r in bench.kit_rows(data, gen, np.array([0, 0, 1]), ["a", "b"], meta, 2)] == ["all", "a"]
    table = bench.key_table(data, gen, 1, lowest_pitch=35)
    assert table == [{"key": 35, "data": 4.0, "generated": pytest.approx(8 / 3)}]   # keys the data never hits left out


def test_style_benchmark_table_and_cli(dataset, tmp_path, capsys):
    bench = _bench("bench_symbolic_styles")
    with pytest.raises(SystemExit) as exc:   # a path typed wrong: an error, not a skip
        bench.main(["--weights", str(tmp_path / "none.safetensors"), "--data", str(dataset)])
    assert exc.value.code == 2 and "none.safetensors" in capsys.readouterr().err
    meta = json.loads((dataset / "meta.json").read_text())
    data = np.load(dataset / "test.npz")["rolls"] != 0
    style = np.zeros(len(data), dtype=np.int64)
    style[: len(data) // 2] = 1
    rows = bench.style_table(data, data, style, ["a", "b"], meta, ["HITS", "POLY"], min_phrases=1)
    assert {r["style"] for r in rows} == {"a", "b"}
    assert len(rows) == 2 * len(meta["tracks"]) * 2                  # styles x tracks x metrics
    assert all(r["rel_diff"] == 0.0 or math.isnan(r["rel_diff"]) for r in rows)  # the data against itself
    assert any(r["rel_diff"] == 0.0 for r in rows)
    assert bench.style_table(data, data, style, ["a", "b"], meta, ["HITS"], min_phrases=len(data)) == []
    (dataset / "train.npz").write_bytes((dataset / "test.npz").read_bytes())
    out = tmp_path / "styles.json"
    assert bench.main(["--weights", str(tmp_path / "none.safetensors"), "--data", str(dataset), "--split", "test",
                       "--baseline", "train", "--min-phrases", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["cells"] >= 1 and 0 <= report["within"] <= report["cells"]
    assert "style fit:" in capsys.readouterr().out
    drums = [t for t, d in zip(meta["tracks"], meta["is_drum"]) if d]
    assert {r["track"] for r in report["kit"]} == set(drums) and set(report["keys"]) == set(drums)
    assert all(0.0 <= r["kit_distance"] <= 1.0 for r in report["kit"])


def test_baselines_nearest_chords_on_hand_made_chords(dataset, tmp_path, capsys):
    bench = _bench("bench_symbolic_baselines")
    train = np.zeros((4, 1, 2, 12), dtype=np.uint8)   # 4 phrases of 1 bar x 2 beats
    train[0, 0, :, [0, 4, 7]] = 1                      # C major on both beats
    train[1, 0, 0, [0, 4, 7]] = 1                      # C, then A minor
    train[1, 0, 1, [9, 0, 4]] = 1
    train[2] = train[0]                                # C again, another style
    train[3] = train[1]
    style = np.array([0, 0, 1, 1])
    query = train[[1, 0]].copy()
    query[1, 0, 1, 11] = 1                             # C then Cmaj7: 1 cell from C, 3 from A minor
    got = bench.nearest_chord_phrases(train, style, query, np.array([0, 1]), seed=0)
    assert got.tolist() == [1, 2]                      # exact match in its style; nearest of style 1
    # a style the training split lacks: the nearest chords of any style, ties drawn at random
    got = {int(bench.nearest_chord_phrases(train, style, query[:1], np.array([5]), seed=s)[0]) for s in range(20)}
    assert got == {1, 3}
    (dataset / "train.npz").write_bytes((dataset / "test.npz").read_bytes())
    out = tmp_path / "b.json"
    assert bench.main(["--data", str(dataset), "--split", "test", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    # the split against copies of itself with its own chords: every metric equal
    assert all(abs(r["rel_diff"]) < 1e-12 for r in report["rows"] if r["rel_diff"] is not None)
    assert "baseline nearest-chords" in capsys.readouterr().out


def test_transpose_moves_the_pitched_tracks_and_leaves_the_drums(dataset):
    """A drum track's pitches are instruments (kick 36 moved up 2 would be a snare): --transpose
    moves the melody and piano (and the chords) only."""
    _, arrays = E.load_split(dataset)
    moved = E.transpose_split(arrays, 2, [False, False, True])
    assert np.array_equal(moved["rolls"][:, 2], arrays["rolls"][:, 2])        # drums as they were
    assert np.array_equal(moved["rolls"][:, :2, ..., 2:], arrays["rolls"][:, :2, ..., :-2])
    assert not moved["rolls"][:, :2, ..., :2].any()
    assert np.array_equal(moved["chords"], np.roll(arrays["chords"], 2, axis=-1))
    assert moved["rolls"][:, 2].any() and arrays["rolls"].sum() == moved["rolls"].sum()


def test_transpose_of_a_drums_only_cache_is_refused(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main as cli

    ds = make_dataset(tmp_path / "groove", make_rolls()[:, 2:], tracks=("drums",), is_drum=(True,))
    monkeypatch.setattr(E, "_load_composer", lambda path, device: pytest.fail("should not load"))
    assert cli(["evaluate", "symbolic", "--data", str(ds), "--weights", "w.safetensors", "--transpose", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--transpose 2: {ds} has no pitched track to move" in err, err


def test_given_the_only_track_is_refused(tmp_path, monkeypatch, capsys):
    """--given drums on a one-track cache leaves the composer nothing to write: refused, not
    "0 of 0 metrics within 10%"."""
    from pipeline.cli import main as cli

    ds = make_dataset(tmp_path / "groove", make_rolls()[:, 2:], tracks=("drums",), is_drum=(True,))
    monkeypatch.setattr(E, "_load_composer", lambda path, device: pytest.fail("should not load"))
    assert cli(["evaluate", "symbolic", "--data", str(ds), "--weights", "w.safetensors", "--given", "drums"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--given drums: drums is the only track" in err and "nothing left" in err, err


@pytest.mark.parametrize("source", ["--generated", "--midi"])
@pytest.mark.parametrize("option", [["--release", "melody=0.5"], ["--legato", "none"], ["--device", "cpu"],
                                    ["--given", "melody"], ["--chords", "data"], ["--transpose", "0"]])
def test_composer_options_without_weights_are_refused(dataset, tmp_path, capsys, source, option):
    from pipeline.cli import main as cli

    path = tmp_path / ("gen.npz" if source == "--generated" else "midi")
    assert cli(["evaluate", "symbolic", "--data", str(dataset), source, str(path), *option]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{option[0]}: only with --weights (" in err, err


def test_threshold_and_track_map_only_where_they_apply(dataset, tmp_path, capsys):
    from pipeline.cli import main as cli

    gen = tmp_path / "gen.npz"
    np.savez(gen, rolls=make_rolls().astype(np.float32) * 0.9)
    for argv, says in ((["--midi", str(tmp_path), "--threshold", "0.5"], "--threshold: only with --weights or --generated"),
                       (["--threshold", "0.3"], "--threshold: only with --weights or --generated"),   # held-out only
                       (["--generated", str(gen), "--track-map", "pop909"], "--track-map: only with --midi")):
        assert cli(["evaluate", "symbolic", "--data", str(dataset), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    # --threshold binarises the probabilities of --generated: above 0.9 no step is on
    report = E.evaluate_symbolic(dataset, generated=gen, threshold=0.95)
    assert report["generated"]["melody"]["EB"] == 1.0
    assert E.evaluate_symbolic(dataset, generated=gen)["generated"]["melody"]["EB"] == 0.0


def test_midi_folder_skips_unreadable_files_and_files_without_a_phrase(tmp_path, make_midi, capsys):
    ds = make_dataset(tmp_path / "pop", make_rolls()[:, [0, 1, 1]], tracks=("melody", "bridge", "piano"),
                      is_drum=(False, False, False))
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    melody = [(60 + (b % 2) * 7, 4 * b, 4 * b + 2, 90) for b in range(8)]
    make_midi("midi/a_song.mid", [("MELODY", 0, False, melody)])                    # 8 bars: 2 phrases
    (midi_dir / "b_broken.mid").write_bytes(b"MThd garbage")
    make_midi("midi/c_short.mid", [("MELODY", 0, False, melody[:2])])               # 2 bars: no phrase
    out = tmp_path / "r.json"
    assert E.cli_main([PROG, "--data", str(ds), "--midi", str(midi_dir), "--json", str(out)]) == 0
    assert "2 files skipped: unreadable 1, shorter than a phrase 1" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["n_generated"] == 2
    assert report["skipped"] == {"unreadable": 1, "shorter than a phrase": 1}
    assert report["skipped_files"] == [{"file": str(midi_dir / "b_broken.mid"), "why": "unreadable"},
                                       {"file": str(midi_dir / "c_short.mid"), "why": "shorter than a phrase"}]
    # no file gives a phrase: one line saying why
    (midi_dir / "a_song.mid").unlink()
    with pytest.raises(UserError, match=r"no file gives a whole phrase of 4 bars \(2 of 2 files skipped: "
                                        r"unreadable 1, shorter than a phrase 1\)"):
        E.evaluate_symbolic(ds, midi=midi_dir)


def test_composer_of_other_bars_is_refused_before_generating(dataset, monkeypatch):
    fake = FakeComposer(make_rolls())
    fake.n_bars = 2
    fake.sample_latents = lambda n, generator: pytest.fail("generated before checking the bars")
    monkeypatch.setattr(E, "_load_composer", lambda path, device: fake)
    with pytest.raises(UserError, match="--weights w.safetensors: the composer writes phrases of 2 bars, "
                                        "the cache's are 4 bars"):
        E.evaluate_symbolic(dataset, weights="w.safetensors")


@pytest.mark.parametrize("transpose", [False, True])
def test_midi_folder_reads_files_as_the_cache_builder_does(tmp_path, make_midi, transpose):
    # the files a cache was built from, given to --midi, give the cache's own phrases: an empty
    # phrase dropped, a pickup bar before bar 0, a 3/4 stretch left out, keys moved to C alike
    from symbolic.data import build_dataset, midi_folder_songs
    from symbolic.roll import Grid
    from symbolic.trackmap import POP909

    def line(first_bar, bars, root):  # melody C D E G (moved by root) each bar; piano triads
        mel = [(72 + root + p, 4 * b + i, 4 * b + i + 1, 90) for b in range(first_bar, first_bar + bars)
               for i, p in enumerate((0, 2, 4, 7))]
        pno = [(60 + root + p, 4 * b, 4 * b + 4, 70) for b in range(first_bar, first_bar + bars) for p in (0, 4, 7)]
        return [("MELODY", 0, False, mel), ("PIANO", 0, False, pno)]

    midi = tmp_path / "midi"
    midi.mkdir()
    make_midi("midi/a_rest_first.mid", line(4, 8, 2))                     # 4 bars of rest, then 8 bars in D
    pickup = [(67, 0, 1, 80)] + [(72 + p, 1 + 4 * b + i, 2 + 4 * b + i, 90) for b in range(8)
                                  for i, p in enumerate((0, 2, 4, 7))]
    make_midi("midi/b_pickup.mid", [("MELODY", 0, False, pickup)], time_signature=(1, 4),
              time_signatures=[(4, 4, 1)])                                # a one-beat pickup, then 4/4
    make_midi("midi/c_waltz_then_4.mid", line(0, 12, 5), time_signature=(3, 4),
              time_signatures=[(4, 4, 12)])                               # 4 bars of 3/4, then 4/4
    make_midi("midi/d_short.mid", line(0, 2, 0))                          # 2 bars: no phrase
    grid = Grid()
    cache = tmp_path / "cache"
    build_dataset(midi_folder_songs(midi, POP909, grid), cache, track_map=POP909, grid=grid,
                  transpose=transpose, source="midi", progress=False)
    meta = json.loads((cache / "meta.json").read_text())
    held = np.concatenate([np.load(cache / f"{s}.npz")["rolls"] for s in ("train", "valid", "test")])
    skipped: list[dict] = []
    read = E.load_midi_phrases(midi, meta, skipped=skipped)
    assert read.shape == held.shape and read.shape[0] == 2 + 2 + 2          # 8 bars each, after the rest / pickup / 3/4
    assert sorted(r.tobytes() for r in read) == sorted(h.tobytes() for h in held)
    assert skipped == [{"file": str(midi / "d_short.mid"), "why": "shorter than a phrase"}]
    report = E.evaluate_symbolic(cache, split="train", midi=midi)           # every song is in train
    # undefined on both sides, agreeing and not counted: the silent bridge's metrics but EB, and the
    # piano's GC (its triads are held over the bar lines: one onset a phrase, with no onsets kept)
    assert report["n_data"] == report["n_generated"] == 6
    assert sorted((r["metric"], r["track"]) for r in report["rows"] if r.get("undefined")) == sorted(
        [(m, "bridge") for m in ("UPC", "QN", "POLY", "POLY_RATE", "PCE", "SC", "GC")]
        + [("GC", "piano"), ("TD", "melody/bridge"), ("TD", "bridge/piano")])
    assert report["summary"] == {"compared": 17, "within": 17, "undefined": 10}
    assert "17 of 17 metrics within 10% of the held-out data (10 undefined on both sides, not counted)" in E.report_text(report)
    assert all(r["data"] == r["generated"] or (math.isnan(r["data"]) and math.isnan(r["generated"]))
               for r in report["rows"])


def test_files_whose_tempo_is_on_a_later_track_are_named_once_by_data_and_evaluate(tmp_path, capsys, recwarn):
    """pretty_midi reads tempo, key and meter events from the first track only: the cache builder
    and ``evaluate --midi`` say which files had some elsewhere, in one line, not per raw warning."""
    import mido

    from pipeline.cli import main as cli

    midi = tmp_path / "midi"
    midi.mkdir()
    for name, tempo_on_second, notes in (("a_plain.mid", False, 32), ("b_tempo_later.mid", True, 32),
                                         ("c_tempo_later_no_notes.mid", True, 0)):
        mf = mido.MidiFile(type=1, ticks_per_beat=480)
        first, second = mido.MidiTrack(), mido.MidiTrack()
        mf.tracks += [first, second]
        (second if tempo_on_second else first).append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
        second.append(mido.MetaMessage("track_name", name="MELODY", time=0))
        for i in range(notes):   # 8 bars of quarter notes
            second += [mido.Message("note_on", note=72 + (i % 4), velocity=90, time=0),
                       mido.Message("note_off", note=72 + (i % 4), time=480)]
        mf.save(str(midi / name))
    cache = tmp_path / "cache"
    assert cli(["data", "symbolic", "--source", "midi", "--track-map", "pop909", "--root", str(midi),
                "--out", str(cache), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("musegansynth: note: b_tempo_later.mid: tempo, key or time signature events on tracks "
                     "after the first are not read") == 1 and "a_plain" not in err and "c_tempo" not in err
    assert not any("non-zero tracks" in str(w.message) for w in recwarn)   # no raw warning of pretty_midi's
    noted: list[str] = []
    meta = json.loads((cache / "meta.json").read_text())
    assert E.load_midi_phrases(midi, meta, meta_elsewhere=noted).shape[0] == 4
    assert noted == [str(midi / "b_tempo_later.mid")]   # the file skipped for its lack of notes is not named
    report = E.evaluate_symbolic(cache, split="train", midi=midi)
    assert report["meta_elsewhere_files"] == noted
    assert f"note: {midi / 'b_tempo_later.mid'}: tempo, key or time signature events" in E.report_text(report)


def test_several_files_are_counted_in_the_note():
    from symbolic.roll import meta_elsewhere_text

    assert meta_elsewhere_text(["x.mid", "y.mid", "z.mid"]).startswith(
        "3 files (the first: x.mid): tempo, key or time signature events on tracks after the first are not read")
