"""``musegansynth evaluate audio`` on a synthetic note set with stand-in generators of known quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import audio.evaluate as ev
from audio.classifier import load_split, train_classifier
from pipeline.cli import main as cli
from pipeline.errors import UserError

SR = 16000
PROGRAMS = [0, 40, 73]  # keyboard, string, flute
SIZES = dict(window_samples=2048, n_fft=1024, hop=256, n_mels=48, channels=(8, 8, 16), hidden=32, dropout=0.0)


def tones(pitch, kind, seed=0, samples=4096):
    """Harmonic tones float32 [N, samples]; kind 0/1/2 = decaying 1/n, odd 1/n, nearly pure."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    n = np.arange(1, 9)
    profiles = [1.0 / n, (n % 2 == 1) / n, np.where(n == 1, 1.0, np.where(n == 2, 0.2, 0.0))]
    out = np.zeros((len(pitch), samples), np.float32)
    for i, (p, k) in enumerate(zip(pitch, kind)):
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        ph = rng.uniform(0, 2 * np.pi, len(n))
        w = (profiles[k][:, None] * np.sin(2 * np.pi * f0 * n[:, None] * t + ph[:, None])).sum(0)
        out[i] = w * np.exp(-t * (8.0 if k == 0 else 0.5)) * rng.uniform(0.05, 0.5)
    return out


def write_note_set(root, counts, seed=0):
    from audio.notes import _write_wav, example_record

    rng = np.random.default_rng(seed)
    for s, (split, n) in enumerate(counts.items()):
        folder = root / f"nsynth-{split}"
        (folder / "audio").mkdir(parents=True)
        kind, pitch = rng.integers(0, 3, n), rng.integers(48, 60, n)
        waves = tones(pitch, kind, seed=seed + s)
        examples = {}
        for i in range(n):
            rec = example_record(PROGRAMS[kind[i]], int(pitch[i]), 1 + i, SR, i)
            examples[rec["note_str"]] = rec
            _write_wav(folder / "audio" / f"{rec['note_str']}.wav", waves[i], SR)
        (folder / "examples.json").write_text(json.dumps(examples))


class ToneGenerator:
    """Stand-in for audio.generate.TimbreGenerator: plays the synthetic tones at ``pitch + shift``."""

    sample_rate = SR
    latent_dim = 3

    def __init__(self, shift=0, samples=4096):
        self.shift, self.samples = shift, samples
        self.clip_samples = samples   # it has no spectrograms: it cannot be held (--hold)

    def sample_z(self, n, generator):
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, pitch, program, velocity, z):
        kind = [PROGRAMS.index(int(p)) for p in program]
        seed = int(abs(float(z[0, 0])) * 1e6)
        return torch.from_numpy(tones((pitch + self.shift).tolist(), kind, seed=seed, samples=self.samples))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    data = root / "notes"
    write_note_set(data, {"train": 480, "valid": 40, "test": 60})
    train = load_split(data, "nsynth-train", 2048)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clf = train_classifier(train["waves"], train["pitch"], train["family"], train["program"],
                               families=["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ",
                                         "reed", "string", "synth_lead", "vocal", "drums"],
                               epochs=15, lr=5e-3, ndb_k=10, log=None, **SIZES)
    finally:
        torch.set_num_threads(threads)
    clf_path, _ = clf.save(root / "audio_classifier.safetensors")
    weights = root / "audio_fake.safetensors"
    weights.write_bytes(b"stand-in")
    return {"data": data, "classifier": clf_path, "weights": weights, "clf": clf}


def _run(setup, monkeypatch, gen, **kw):
    monkeypatch.setattr(ev, "_load_generator", lambda path, device: gen)
    kw.setdefault("ndb_k", 10)
    return ev.evaluate_audio(data=setup["data"], weights=setup["weights"], classifier=setup["classifier"], **kw)


def test_a_faithful_generator_meets_the_pitch_targets(setup, monkeypatch):
    res = _run(setup, monkeypatch, ToneGenerator(), n=60)
    r, g = res["real"], res["generated"]
    assert r["n"] == g["n"] == 60 and res["clip_samples"] == 2048
    assert r["pitch_accuracy"] >= 0.9 and g["pitch_accuracy"] >= 0.9, (r, g)
    assert res["targets"]["generated_pitch_accuracy"]["met"] and res["targets"]["pitch_accuracy_ratio"]["met"]
    assert res["pitch_accuracy_ratio"] == pytest.approx(g["pitch_accuracy"] / r["pitch_accuracy"])
    assert g["ndb_k"] == 10 and 0 <= g["ndb"] <= 10 and g["ndb_over_k"] == g["ndb"] / 10
    assert 0.0 <= g["pitch_entropy"] < np.log(12)


def test_a_detuned_generator_fails_and_is_farther(setup, monkeypatch):
    good = _run(setup, monkeypatch, ToneGenerator(), n=60)
    bad = _run(setup, monkeypatch, ToneGenerator(shift=6), n=60)
    assert bad["generated"]["pitch_accuracy"] < 0.3, bad["generated"]
    assert not bad["targets"]["generated_pitch_accuracy"]["met"]
    assert not bad["targets"]["pitch_accuracy_ratio"]["met"]
    assert bad["fd_generated_vs_real"] > good["fd_generated_vs_real"]
    assert bad["real"] == good["real"]  # the real side does not depend on the generator


def test_silence_lands_in_few_bins_and_fails_ndb(setup, monkeypatch):
    class Silent(ToneGenerator):
        def generate(self, pitch, program, velocity, z):
            return torch.zeros(len(pitch), 4096)

    res = _run(setup, monkeypatch, Silent(), n=60)
    assert res["generated"]["ndb_over_k"] > 0.3 and not res["targets"]["generated_ndb_over_k"]["met"]


def test_a_waves_only_generators_short_notes_cut_the_real_notes_too(setup, monkeypatch):
    res = _run(setup, monkeypatch, ToneGenerator(samples=1024), n=20)
    assert res["clip_samples"] == 1024 and res["n"] == 20 and res["generated_samples"] == 1024
    # the NDB bins and FD reference are refitted on training notes of the same length
    assert res["reference"] == {"source": "nsynth-train", "n": 480, "clip_samples": 1024, "k": 10}
    # the real notes were cut to 1024 samples as well
    test = load_split(setup["data"], "nsynth-test", 2048)
    idx = ev.choose_notes(60, 20, 0)
    clf = setup["clf"]
    logits = clf.predict(test["waves"][idx, :1024])[0]
    expected = (logits.argmax(1).numpy() + clf.pitch_min == test["pitch"][idx]).mean()
    assert res["real"]["pitch_accuracy"] == pytest.approx(expected)


def test_reference_notes_caps_the_training_notes_read(setup, monkeypatch):
    res = _run(setup, monkeypatch, ToneGenerator(), n=10, reference_notes=100)
    assert res["reference"]["n"] == 100


def test_same_seed_same_result(setup, monkeypatch):
    a = _run(setup, monkeypatch, ToneGenerator(), n=30, seed=3)
    b = _run(setup, monkeypatch, ToneGenerator(), n=30, seed=3)
    a.pop("seconds"), b.pop("seconds")
    assert json.dumps(ev._jsonable(a), sort_keys=True) == json.dumps(ev._jsonable(b), sort_keys=True)


def test_cli_prints_table_and_writes_json(setup, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ev, "_load_generator", lambda path, device: ToneGenerator())
    out = tmp_path / "res" / "audio.json"
    code = cli(["evaluate", "audio", "--data", str(setup["data"]), "--weights", str(setup["weights"]),
                "--classifier", str(setup["classifier"]), "--n", "25", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "pitch accuracy" in text and "NDB/K" in text and "targets:" in text
    saved = json.loads(out.read_text())
    assert saved["n"] == 25 and saved["split"] == "nsynth-test"
    assert set(saved["generated"]) >= {"pitch_accuracy", "pitch_entropy", "ndb", "ndb_over_k", "fd_train"}
    assert not list(out.parent.glob(".*"))  # no temporary file left


@pytest.mark.parametrize("what,pattern", [
    ("data", "nowhere: note data folder not found"),
    ("weights", "nothing.safetensors: timbre model weights not found"),
    ("classifier", "^--classifier: .*noclf.safetensors: no such weights file \\(train one with `python -m "
                   "audio.classifier --data NOTES --out FILE`"),
    ("split", "split 'nsynth-dev'"),
    ("n", "--n 0: must be at least 1"),
])
def test_bad_input_is_a_user_error(setup, monkeypatch, tmp_path, capsys, what, pattern):
    monkeypatch.setattr(ev, "_load_generator", lambda path, device: ToneGenerator())
    args = {"--data": str(setup["data"]), "--weights": str(setup["weights"]),
            "--classifier": str(setup["classifier"]), "--split": "nsynth-test", "--n": "5"}
    bad = {"data": ("--data", str(tmp_path / "nowhere")), "weights": ("--weights", str(tmp_path / "nothing.safetensors")),
           "classifier": ("--classifier", str(tmp_path / "noclf.safetensors")), "split": ("--split", "nsynth-dev"),
           "n": ("--n", "0")}[what]
    args[bad[0]] = bad[1]
    argv = ["prog"] + [f"{k}={v}" for k, v in args.items()]
    with pytest.raises(UserError, match=pattern):
        ev.cli_main(argv)
    # through the real CLI: one line on stderr, exit status 2
    assert cli(["evaluate", "audio", *argv[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("musegansynth: error:")


@pytest.mark.parametrize("device,pattern", [
    ("tpu", "--device tpu: expected cpu or cuda"),
    ("gpu", "--device gpu: expected cpu or cuda"),
    ("cpu:3", "--device cpu:3: expected cpu or cuda"),
    ("cuda:99", "--device cuda:99: (CUDA is not available|no such GPU)"),
])
def test_bad_device_is_one_line_exit_2(setup, monkeypatch, capsys, device, pattern):
    monkeypatch.setattr(ev, "_load_generator", lambda path, device: ToneGenerator())
    argv = ["--data", str(setup["data"]), "--weights", str(setup["weights"]), "--classifier",
            str(setup["classifier"]), "--n", "5", "--device", device]
    with pytest.raises(UserError, match=pattern):
        ev.cli_main(["prog", *argv])
    with pytest.raises(UserError, match=pattern):
        ev.evaluate_audio(data=setup["data"], weights=setup["weights"], classifier=setup["classifier"], n=5,
                          device=device)
    capsys.readouterr()
    assert cli(["evaluate", "audio", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("musegansynth: error: --device"), err


def test_default_classifier_is_found_in_the_project_from_any_folder(setup, monkeypatch, tmp_path, capsys):
    import shutil

    import pipeline.config

    project = tmp_path / "project"
    (project / ev.DEFAULT_CLASSIFIER.parent).mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(Path(setup["classifier"]).with_suffix(suffix), project / ev.DEFAULT_CLASSIFIER.with_suffix(suffix))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(pipeline.config, "PROJECT_ROOT", project)
    monkeypatch.setattr(ev, "_load_generator", lambda path, device: ToneGenerator())
    argv = ["--data", str(setup["data"]), "--weights", str(setup["weights"]), "--n", "5"]
    assert cli(["evaluate", "audio", *argv]) == 0, capsys.readouterr().err
    # without it in the project either, the error names the flag
    (project / ev.DEFAULT_CLASSIFIER).unlink()
    capsys.readouterr()
    assert cli(["evaluate", "audio", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--classifier" in err[0] and str(ev.DEFAULT_CLASSIFIER) in err[0], err


def test_unwritable_json_is_refused_before_evaluating(setup, monkeypatch, tmp_path, capsys):
    """--json that cannot be written is refused first, not after minutes of evaluation
    (``pipeline.fileio.check_json_out``, tested with every kind of bad path in tests/test_fileio.py)."""
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "r.json"

    def evaluate(**kwargs):
        raise AssertionError("evaluated before checking --json")

    monkeypatch.setattr(ev, "evaluate_audio", evaluate)
    code = cli(["evaluate", "audio", "--data", str(setup["data"]), "--weights", str(setup["weights"]),
                "--classifier", str(setup["classifier"]), "--n", "5", "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"--json {out}" in err and "evaluated" not in err, err


def test_missing_generator_module_is_a_user_error(setup, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "audio.generate":
            raise ModuleNotFoundError("No module named 'audio.generate'", name="audio.generate")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(UserError, match="audio.generate is not available"):
        ev._load_generator(setup["weights"], "cpu")


def _tiny_timbre_weights(tmp_path):
    """An untrained tiny timbre model's weights file: 960-sample (15 x 64) notes."""
    from audio.generate import save_timbre_generator
    from audio.modules import Generator

    torch.manual_seed(0)
    kwargs = dict(latent_dim=8, frames=16, bins=32, channels=[16, 8], pitch_dim=4, program_dim=4)
    meta = {"generator": kwargs, "spec": {"sample_rate": SR, "n_fft": 256, "hop": 64, "n_mels": 32},
            "clip_frames": 16}
    return save_timbre_generator(tmp_path / "audio_tiny", Generator(**kwargs), meta)


def test_with_a_real_timbre_generator_file(setup, tmp_path):
    """End to end through audio.generate.TimbreGenerator.load (an untrained tiny model)."""
    weights = _tiny_timbre_weights(tmp_path)
    runs = [ev.evaluate_audio(data=setup["data"], weights=weights, classifier=setup["classifier"], n=12, seed=1,
                              ndb_k=10) for _ in range(2)]
    res = runs[0]
    assert res["generated_samples"] == 15 * 64 == res["clip_samples"] == res["held_to_samples"]
    assert res["generated"]["n"] == 12
    assert not res["targets"]["generated_pitch_accuracy"]["met"]  # an untrained model has no pitch
    assert "under half the judge's 2048: --hold" in ev.format_table(res)
    for r in runs:
        r.pop("seconds")
    assert json.dumps(ev._jsonable(runs[0]), sort_keys=True) == json.dumps(ev._jsonable(runs[1]), sort_keys=True)
    # --hold: the model's 960-sample notes are held to the judge's 2048-sample window, as a song
    # holds them; the real notes are judged whole, not cut to the model's clip
    res = ev.evaluate_audio(data=setup["data"], weights=weights, classifier=setup["classifier"], n=12, seed=1,
                            ndb_k=10, hold=True)
    assert res["generated_samples"] == 15 * 64 and res["held_to_samples"] == 2048 == res["clip_samples"]
    assert res["reference"]["clip_samples"] == 2048
    test = load_split(setup["data"], "nsynth-test", 2048)
    idx = ev.choose_notes(60, 12, 1)
    clf = setup["clf"]
    logits = clf.predict(test["waves"][idx])[0]
    assert res["real"]["pitch_accuracy"] == pytest.approx((logits.argmax(1).numpy() + clf.pitch_min
                                                           == test["pitch"][idx]).mean())
    assert "were held to the judge's 2048 samples" in ev.format_table(res)


def test_the_hold_flag_reaches_evaluate(setup, tmp_path, capsys):
    weights = _tiny_timbre_weights(tmp_path)
    assert cli(["evaluate", "audio", "--data", str(setup["data"]), "--weights", str(weights), "--classifier",
                str(setup["classifier"]), "--n", "12", "--ndb-k", "10", "--hold"]) == 0
    assert "note: the model's 960-sample notes were held to the judge's 2048 samples" in capsys.readouterr().out


def test_training_labels_are_seeded_draws_from_the_training_split(setup):
    train = load_split(setup["data"], "nsynth-train", 16)
    got = ev.training_labels(setup["data"], 50, seed=0)
    assert all(v.shape == (50,) for v in got.values())
    pairs = set(zip(train["pitch"].tolist(), train["program"].tolist(), train["velocity"].tolist()))
    drawn = list(zip(got["pitch"].tolist(), got["program"].tolist(), got["velocity"].tolist()))
    assert set(drawn) <= pairs and len(set(drawn)) == 50  # without replacement
    again = ev.training_labels(setup["data"], 50, seed=0)
    assert all(np.array_equal(got[k], again[k]) for k in got)
    assert len(ev.training_labels(setup["data"], 1000, seed=0)["pitch"]) == 1000  # more than the split


def test_more_notes_than_the_split(setup, monkeypatch):
    res = _run(setup, monkeypatch, ToneGenerator(), n=150)
    assert res["n"] == 150 and res["n_real"] == 60 and res["n_train_labels"] == 90
    assert res["generated"]["n"] == 150 and res["real"]["n"] == 60
    assert res["generated"]["pitch_accuracy"] >= 0.9


def test_frechet_needs_more_notes_than_feature_dimensions(setup, monkeypatch):
    assert ev.enough_for_frechet(np.zeros((129, 128))) and not ev.enough_for_frechet(np.zeros((128, 128)))
    assert not ev.enough_for_frechet(np.zeros(5))
    dim = _run(setup, monkeypatch, ToneGenerator(), n=60)
    few = _run(setup, monkeypatch, ToneGenerator(), n=3)  # fewer notes than the classifier's features
    assert dim["fd_generated_vs_real"] is not None
    assert few["fd_generated_vs_real"] is None and few["generated"]["fd_train"] is None
