"""The pitch/family classifier: front end, training on synthetic tones, save/load, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audio.classifier import (IGNORE, LogMel, PitchFamilyClassifier, cli_main, load_split, mel_filterbank,
                              split_name, train_classifier)
from pipeline.errors import UserError

SR = 16000
FAMILIES = ["keyboard", "string", "flute"]
#: Small sizes so training takes seconds.
SIZES = dict(window_samples=2048, n_fft=1024, hop=256, n_mels=48, channels=(8, 8, 16), hidden=32, dropout=0.0)


def tones(pitch, family, seed=0, samples=4096):
    """Harmonic tones, float32 [N, samples]: family 0 decaying 1/n harmonics, 1 odd harmonics
    (sustained), 2 almost pure (fundamental + weak 2nd); random phases and gains."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    n = np.arange(1, 9)
    profiles = [1.0 / n, (n % 2 == 1) / n, np.where(n == 1, 1.0, np.where(n == 2, 0.2, 0.0))]
    out = np.zeros((len(pitch), samples), np.float32)
    for i, (p, f) in enumerate(zip(pitch, family)):
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        ph = rng.uniform(0, 2 * np.pi, len(n))
        w = (profiles[f][:, None] * np.sin(2 * np.pi * f0 * n[:, None] * t + ph[:, None])).sum(0)
        env = np.exp(-t * (8.0 if f == 0 else 0.5))
        out[i] = w * env * rng.uniform(0.05, 0.5)
    return out


def labelled(n, seed):
    rng = np.random.default_rng(seed)
    pitch = rng.integers(48, 60, n)
    family = rng.integers(0, 3, n)
    return tones(pitch, family, seed=seed), pitch, family, np.zeros(n, np.int64)


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster than 2 on a busy 2-core machine
    try:
        return train_classifier(*labelled(480, 0), families=FAMILIES, valid=labelled(120, 1), epochs=15,
                                lr=5e-3, ndb_k=10, log=None, **SIZES)
    finally:
        torch.set_num_threads(threads)


def test_mel_filterbank_known_values():
    # one band from 0 to 8 kHz: HTK mel(8000) = 2840.02, centre mel 1420.01 -> 1767.8 Hz; FFT bins
    # every 1 kHz; the triangle rises 0 -> 1 over 0..1768 Hz and falls 1 -> 0 over 1768..8000 Hz
    fb = mel_filterbank(SR, 16, 1, 0.0, 8000.0)
    centre = 700.0 * (10 ** (2595.0 * np.log10(1 + 8000 / 700) / 2 / 2595.0) - 1)
    assert centre == pytest.approx(1767.8, abs=0.1)
    expected = [0.0, 1000 / centre] + [(8000 - f) / (8000 - centre) for f in range(2000, 9000, 1000)]
    assert fb.shape == (1, 9)
    assert np.allclose(fb[0], expected, atol=1e-6)


def test_mel_filterbank_triangles_are_ordered():
    fb = mel_filterbank(SR, 1024, 40, 30.0, 8000.0)
    assert fb.shape == (40, 513) and fb.max() <= 1.0 and (fb.sum(1) > 0).all()
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all() and peaks[0] < peaks[-1]


def test_mel_filterbank_rejects_bad_range():
    with pytest.raises(ValueError, match="fmax"):
        mel_filterbank(SR, 1024, 40, 100.0, 9000.0)


def test_logmel_shape_level_invariance_and_silence():
    fe = LogMel(window_samples=4096, n_fft=1024, hop=256, n_mels=64)
    w = torch.from_numpy(tones([60, 50], [0, 1]))
    y = fe(w)
    assert y.shape == (2, fe.frames, 64) == (2, 17, 64), y.shape
    assert float(y.min()) >= 0.0 and float(y.max()) == pytest.approx(1.0)
    assert torch.allclose(fe(w * 0.1), y, atol=1e-4)  # overall level does not matter
    assert float(fe(torch.zeros(1, 4096)).abs().max()) == 0.0  # silence is the floor
    # longer waves are cut, shorter ones zero-padded
    assert torch.allclose(fe(torch.cat([w, w], dim=1)), y)
    short = fe(w[:, :1024])
    assert torch.allclose(short, fe(torch.nn.functional.pad(w[:, :1024], (0, 3072))))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        fe(torch.zeros(4096))


def test_pitch_target_ignores_drums_and_out_of_range():
    clf = PitchFamilyClassifier.build(pitch_min=24, n_pitches=61, families=FAMILIES, **SIZES)
    got = clf.pitch_target([24, 84, 85, 23, 60], [0, 5, 0, 0, 128])
    assert got.tolist() == [0, 60, IGNORE, IGNORE, IGNORE]


def test_training_reaches_high_accuracy_on_held_out_tones(trained):
    wave, pitch, family, _ = labelled(200, 7)
    p_logits, f_logits = trained.predict(wave)
    assert p_logits.shape == (200, 12) and f_logits.shape == (200, 3), (p_logits.shape, f_logits.shape)
    assert trained.pitch_min == 48 and trained.n_pitches == 12
    acc = (trained.predict_pitch(wave).numpy() == pitch).mean()
    assert acc >= 0.9, acc
    assert (f_logits.argmax(1).numpy() == family).mean() >= 0.9
    hist = trained.info["history"]
    assert len(hist) == 15 and hist[-1]["loss"] < hist[0]["loss"]


def test_features_and_reference_statistics(trained):
    wave = labelled(10, 3)[0]
    f = trained.features(wave)
    assert f.shape == (10, 32), f.shape
    ref = trained.reference
    assert ref["fd_mu"].shape == (32,) and ref["fd_sigma"].shape == (32, 32)
    assert ref["ndb_centroids"].shape[0] == 10 and ref["ndb_counts"].sum() == 480
    assert trained.spectral_features(wave).shape[1] == ref["ndb_centroids"].shape[1]
    # a wave's outputs do not depend on the batch it is in
    assert torch.allclose(trained.features(wave[:3]), f[:3], atol=1e-5)


def test_training_notes_against_their_own_reference(trained):
    wave = labelled(480, 0)[0]  # the training notes of the fixture
    res = trained.ndb().evaluate(trained.spectral_features(wave))
    assert res.ndb == 0 and np.allclose(res.sample_proportions, res.reference_proportions)


def test_save_load_round_trip(trained, tmp_path):
    st, js = trained.save(tmp_path / "clf.safetensors")
    assert st.stat().st_size < 2_000_000
    meta = json.loads(js.read_text())
    assert meta["kind"] == "audio_classifier" and meta["families"] == FAMILIES
    loaded = PitchFamilyClassifier.load(tmp_path / "clf.json")
    wave = labelled(8, 5)[0]
    for a, b in zip(trained.predict(wave), loaded.predict(wave)):
        assert torch.equal(a, b)
    assert set(loaded.reference) == set(trained.reference)
    assert np.array_equal(loaded.reference["ndb_counts"], trained.reference["ndb_counts"])


def test_load_errors_name_the_file(trained, tmp_path):
    with pytest.raises(UserError, match="missing.safetensors: classifier file not found"):
        PitchFamilyClassifier.load(tmp_path / "missing.safetensors")
    st, js = trained.save(tmp_path / "c.safetensors")
    meta = json.loads(js.read_text())
    meta["net"]["hidden"] = 64
    js.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="c.safetensors: weights do not match"):
        PitchFamilyClassifier.load(st)
    js.write_text("{not json")
    with pytest.raises(UserError, match="c.json: not readable JSON"):
        PitchFamilyClassifier.load(st)


def test_split_name():
    assert split_name("nsynth-test") == "test" and split_name("valid") == "valid"
    with pytest.raises(UserError, match="split 'nsynth-dev'"):
        split_name("nsynth-dev")


def write_note_set(root, counts=None, seed=0):
    """A tiny NSynth-format note set of synthetic tones (programs 0, 40, 73 = keyboard, string,
    flute) made with audio.notes' record and wav writers."""
    from audio.notes import _write_wav, example_record

    counts = counts or {"train": 240, "valid": 40, "test": 40}
    rng = np.random.default_rng(seed)
    programs = [0, 40, 73]
    for s, (split, n) in enumerate(counts.items()):
        folder = root / f"nsynth-{split}"
        (folder / "audio").mkdir(parents=True)
        fam = rng.integers(0, 3, n)
        pitch = rng.integers(48, 60, n)
        waves = tones(pitch, fam, seed=seed + s, samples=SR // 2)
        examples = {}
        for i in range(n):
            rec = example_record(programs[fam[i]], int(pitch[i]), 20 + i, SR, i)
            examples[rec["note_str"]] = rec
            _write_wav(folder / "audio" / f"{rec['note_str']}.wav", waves[i], SR)
        (folder / "examples.json").write_text(json.dumps(examples))
    return root


def test_cli_trains_and_writes_weights(tmp_path, capsys):
    root = write_note_set(tmp_path / "notes")
    out = tmp_path / "pre" / "audio_classifier.safetensors"
    assert cli_main(["clf", "--data", str(root), "--out", str(out), "--epochs", "2",
                     "--window-samples", "4096", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "held-out (nsynth-test) pitch accuracy" in text
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["info"]["n_train"] == 240 and meta["info"]["n_test"] == 40
    assert 0.0 <= meta["info"]["test_pitch_accuracy"] <= 1.0
    PitchFamilyClassifier.load(out)


def test_load_split_reads_all_or_a_seeded_subset(tmp_path):
    root = write_note_set(tmp_path / "notes", counts={"train": 30, "test": 5})
    full = load_split(root, "nsynth-train", 1000)
    assert full["waves"].shape == (30, 1000) and full["sample_rate"] == SR
    assert set(np.unique(full["family"])) <= {4, 8, 2}  # keyboard, string, flute
    sub = load_split(root, "train", 1000, max_notes=10, seed=1)
    assert sub["waves"].shape == (10, 1000)
    again = load_split(root, "train", 1000, max_notes=10, seed=1)
    assert np.array_equal(sub["waves"], again["waves"]) and np.array_equal(sub["pitch"], again["pitch"])
    # each chosen note is the same note as in the full read
    rows = [int(np.flatnonzero((full["waves"] == w).all(1))[0]) for w in sub["waves"]]
    assert np.array_equal(full["pitch"][rows], sub["pitch"])
    with pytest.raises(UserError, match="nowhere: note data folder not found"):
        load_split(tmp_path / "nowhere", "test", 100)


def test_cli_missing_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="examples.json: not found"):
        cli_main(["clf", "--data", str(tmp_path), "--out", str(tmp_path / "c.safetensors")])
