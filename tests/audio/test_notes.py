from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio import fluid, notes
from audio.families import DRUM_PROGRAM, FAMILIES, family_default_program, program_to_family
from audio.notes import (NoteSet, build_notes, choose_programs, cli_main, load_note_arrays, load_note_waves,
                         note_str, plan_notes, split_of)
from audio.spectral import SpecConfig, SpecTransform
from pipeline.errors import UserError

SR = 16000


def _nsynth_example(name: str, instrument: int, family: str, source: str, pitch: int, velocity: int) -> dict:
    """An entry exactly as NSynth's examples.json has it (field names and value types)."""
    sources = ["acoustic", "electronic", "synthetic"]
    return {
        "qualities": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "pitch": pitch,
        "note": 201034,
        "instrument_source_str": source,
        "velocity": velocity,
        "instrument_str": name.rsplit("-", 2)[0],
        "instrument": instrument,
        "sample_rate": 16000,
        "qualities_str": ["bright"],
        "instrument_source": sources.index(source),
        "note_str": name,
        "instrument_family": FAMILIES.index(family),
        "instrument_family_str": family,
    }


def _sine(pitch: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * 440.0 * 2 ** ((pitch - 69) / 12) * t)).astype(np.float32)


@pytest.fixture
def nsynth_root(tmp_path) -> Path:
    """A tiny NSynth-format folder: 3 train notes, 1 valid note, sine waves, 16-bit wavs."""
    root = tmp_path / "nsynth"
    entries = {
        "train": [("bass_synthetic_033-045-050", 417, "bass", "synthetic", 45, 50),
                  ("keyboard_acoustic_004-060-127", 327, "keyboard", "acoustic", 60, 127),
                  ("vocal_acoustic_000-069-075", 12, "vocal", "acoustic", 69, 75)],
        "valid": [("brass_acoustic_016-057-100", 5, "brass", "acoustic", 57, 100)],
    }
    for split, items in entries.items():
        folder = root / f"nsynth-{split}"
        (folder / "audio").mkdir(parents=True)
        data = {}
        for name, inst, fam, src, pitch, vel in items:
            data[name] = _nsynth_example(name, inst, fam, src, pitch, vel)
            sf.write(str(folder / "audio" / f"{name}.wav"), _sine(pitch), SR, subtype="PCM_16")
        (folder / "examples.json").write_text(json.dumps(data))
    return root


# --- naming, splits, choosing notes ---------------------------------------------------------

def test_note_names_follow_nsynth():
    assert note_str(0, 60, 127) == "keyboard_acoustic_000-060-127"
    assert note_str(38, 24, 50) == "bass_synthetic_038-024-050"
    assert note_str(DRUM_PROGRAM, 38, 90) == "drums_acoustic_128-038-090"
    rec = notes.example_record(27, 64, 90, SR, note_id=7)
    assert rec["note_str"] == "guitar_electronic_027-064-090" and rec["instrument_str"] == "guitar_electronic_027"
    assert rec["instrument_family"] == FAMILIES.index("guitar") and rec["instrument_family_str"] == "guitar"
    assert (rec["instrument_source"], rec["instrument_source_str"]) == (1, "electronic")
    assert (rec["pitch"], rec["velocity"], rec["sample_rate"], rec["note"], rec["gm_program"]) == (64, 90, SR, 7, 27)
    assert rec["qualities"] == [0] * 10 and rec["qualities_str"] == []
    assert set(_nsynth_example("a-001-002", 0, "bass", "acoustic", 1, 2)) <= set(rec)


def test_split_is_stable_and_about_90_5_5():
    names = [note_str(p, pitch, v) for p in range(0, 128, 3) for pitch in range(24, 85) for v in (50, 90, 127)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in names]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert abs(frac["train"] - 0.90) < 0.02 and abs(frac["valid"] - 0.05) < 0.01 and abs(frac["test"] - 0.05) < 0.01


def test_parse_int_list():
    assert notes._parse_int_list("24-27,30, 27", "--pitches", 0, 127) == [24, 25, 26, 27, 30]
    with pytest.raises(UserError, match="--pitches '84-24'"):
        notes._parse_int_list("84-24", "--pitches", 0, 127)
    with pytest.raises(UserError, match="--velocities '0,50'.*1-127"):
        notes._parse_int_list("0,50", "--velocities", 1, 127)
    with pytest.raises(UserError, match="expected numbers"):
        notes._parse_int_list("loud", "--velocities", 1, 127)


def test_choose_programs():
    default = choose_programs()
    assert len(default) == 11 * 2 + 1 and default[-1] == DRUM_PROGRAM
    fams = [program_to_family(p).family for p in default]
    assert sorted(set(fams)) == sorted(FAMILIES) and all(fams.count(f) == 2 for f in FAMILIES if f != "drums")
    assert all(program_to_family(p).exact for p in default)
    assert len(choose_programs(per_family=1, drums=False)) == 11
    assert choose_programs(full=True) == list(range(128)) + [DRUM_PROGRAM]
    assert choose_programs(["piano,Trumpet", "33", "drums", "piano"]) == [0, 56, 33, DRUM_PROGRAM]
    with pytest.raises(UserError, match="'trumpte'"):
        choose_programs(["trumpte"])
    for family, programs in notes.FAMILY_PROGRAMS.items():
        assert all(program_to_family(p).family == family for p in programs), family


def test_plan_notes():
    planned = plan_notes([0, DRUM_PROGRAM], range(30, 41), [50, 127])
    drums = [n for n in planned if n.program == DRUM_PROGRAM]
    assert sorted({n.pitch for n in drums}) == list(range(35, 41))  # GM percussion keys only
    assert len(planned) == 11 * 2 + 6 * 2
    assert len({n.note_str for n in planned}) == len(planned)
    limited = plan_notes([0, 40, 73], range(24, 85), [50, 90, 127], limit=30)
    assert len(limited) == 30 and {n.program for n in limited} == {0, 40, 73}


# --- building (FluidSynth replaced by a fake: pure and fast) -----------------------------------

def _fake_render(calls):
    def render(specs, sample_rate=16000, soundfont=None, workers=None, progress=False, **kw):
        calls.extend(specs)
        out = []
        for s in specs:
            n = s.n_samples(sample_rate)
            amp = 0.0 if s.pitch == 25 else s.velocity / 254  # pitch 25 plays nothing
            out.append((amp * np.sin(np.arange(n) * 2 * np.pi * 440 / sample_rate)).astype(np.float32))
        return out
    return render


def test_build_notes_writes_nsynth_format_and_skips_silence(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(fluid, "render_notes", _fake_render(calls))
    monkeypatch.setattr(fluid, "find_soundfont", lambda name=None: Path("/fake.sf2"))
    planned = plan_notes([0, 56], range(24, 30), [60, 127])
    summary = build_notes(tmp_path / "set", planned, hold_s=0.2, release_s=0.05, progress=False)
    assert summary["planned"] == 24 and summary["rendered"] == 24 and summary["silent"] == 4
    assert sorted(summary["silent_notes"]) == sorted(n.note_str for n in planned if n.pitch == 25)
    total = 0
    for split in ("train", "valid", "test"):
        path = tmp_path / "set" / f"nsynth-{split}" / "examples.json"
        examples = json.loads(path.read_text()) if path.exists() else {}
        assert len(examples) == summary["counts"][split]
        total += len(examples)
        for name, ex in examples.items():
            assert ex["note_str"] == name and split_of(name) == split and ex["pitch"] != 25
            wav = tmp_path / "set" / f"nsynth-{split}" / "audio" / f"{name}.wav"
            info = sf.info(str(wav))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, 4000, "PCM_16")
    assert total == 20
    assert json.loads((tmp_path / "set" / "build.json").read_text())["counts"] == summary["counts"]
    # a rebuild renders only what is missing (the silent notes)
    calls.clear()
    again = build_notes(tmp_path / "set", planned, hold_s=0.2, release_s=0.05, progress=False)
    assert again["reused"] == 20 and len(calls) == 4 and again["counts"] == summary["counts"]


def _wav_rates(root: Path) -> set[int]:
    return {sf.info(str(w)).samplerate for w in root.glob("nsynth-*/audio/*.wav")}


def test_rebuild_rerenders_when_render_settings_change(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(fluid, "render_notes", _fake_render(calls))
    font_a, font_b = tmp_path / "a.sf2", tmp_path / "b.sf2"
    font_a.write_bytes(b"RIFF0000sfbk")
    font_b.write_bytes(b"RIFF0000sfbk-other")
    monkeypatch.setattr(fluid, "find_soundfont", lambda name=None: Path(name))
    out = tmp_path / "set"
    planned = plan_notes([56], [60, 61, 62], [90])

    def build(notes_=planned, **kw):
        calls.clear()
        args = {"soundfont": font_a, "hold_s": 0.2, "release_s": 0.05, "sample_rate": 8000, **kw}
        return build_notes(out, notes_, progress=False, **args)

    assert build()["rendered"] == 3 and _wav_rates(out) == {8000}
    again = build()
    assert (again["rendered"], again["reused"], len(calls)) == (0, 3, 0)
    # a wav cut short (or damaged) since it was written is rendered again, not reused (found by QA)
    wav = sorted(out.rglob("*.wav"))[0]
    wav.write_bytes(wav.read_bytes()[:100])
    again = build()
    assert (again["rendered"], again["reused"], len(calls)) == (1, 2, 1)
    import soundfile as sf

    assert sf.info(str(wav)).frames == round(0.25 * 8000)
    # another sample rate: every note rendered again, the wavs and examples.json follow build.json
    summary = build(sample_rate=16000)
    assert (summary["rendered"], summary["reused"], len(calls)) == (3, 0, 3)
    assert _wav_rates(out) == {16000}
    assert json.loads((out / "build.json").read_text())["render"]["sample_rate"] == 16000
    assert NoteSet(out, "train").sample_rate == 16000
    # hold, release (even with the same total length) and the SoundFont count too; the spectrograms
    # cached from the old wavs go with them (same names and sizes: the cache key would not see it)
    for change in ({"hold_s": 0.1, "release_s": 0.15}, {"soundfont": font_b}):
        (out / "cache").mkdir(exist_ok=True)
        (out / "cache" / "notes-train-0123456789abcdef.npz").write_bytes(b"old spectrograms")
        summary = build(sample_rate=16000, **change)
        assert (summary["rendered"], summary["reused"]) == (3, 0), change
        assert not (out / "cache").exists()
    # wavs of notes left out of a build with new settings are deleted, never reused later
    build(planned[:2], sample_rate=8000)
    assert _wav_rates(out) == {8000} and len(list(out.glob("nsynth-*/audio/*.wav"))) == 2
    summary = build(sample_rate=8000)
    assert (summary["rendered"], summary["reused"]) == (1, 2) and _wav_rates(out) == {8000}


def test_build_refuses_folder_not_built_here(nsynth_root, monkeypatch):
    monkeypatch.setattr(fluid, "render_notes", _fake_render([]))
    monkeypatch.setattr(fluid, "find_soundfont", lambda name=None: Path("/fake.sf2"))
    before = sorted(p.name for p in nsynth_root.glob("nsynth-*/audio/*.wav"))
    with pytest.raises(UserError, match="no build.json"):
        build_notes(nsynth_root, plan_notes([0], [60], [90]), progress=False)
    assert sorted(p.name for p in nsynth_root.glob("nsynth-*/audio/*.wav")) == before


@pytest.mark.parametrize("rate", ["1000", "4000", "7999", "96001", "192000"])
def test_cli_refuses_sample_rates_fluidsynth_cannot_render(rate, tmp_path):
    with pytest.raises(UserError, match=rf"^--sample-rate {rate}: out of range \(FluidSynth renders at 8000 to 96000 Hz\)$"):
        cli_main(["prog", "--programs", "Trumpet", "--pitches", "60", "--sample-rate", rate, "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="sample_rate"):
        fluid.render_notes([fluid.NoteSpec(0, 60, 100)], sample_rate=int(rate))


def test_cli_refuses_empty_programs_contradictions_and_bad_workers(tmp_path):
    out = ["--out", str(tmp_path / "o")]
    with pytest.raises(UserError, match="program list is empty"):
        cli_main(["prog", "--programs", "", "--pitches", "60-61", *out])
    with pytest.raises(UserError, match="program list is empty"):
        cli_main(["prog", "--programs", " , ", *out])
    with pytest.raises(UserError, match="--no-drums"):
        cli_main(["prog", "--programs", "drums", "--no-drums", *out])
    with pytest.raises(UserError, match="--no-drums"):
        cli_main(["prog", "--programs", "piano,drums", "--no-drums", *out])
    for workers in ("0", "-3"):
        with pytest.raises(UserError, match=f"^--workers {workers}: must be at least 1"):
            cli_main(["prog", "--programs", "piano", "--workers", workers, *out])
    assert not (tmp_path / "o").exists()


def test_cli_errors():
    with pytest.raises(UserError, match="--pitches"):
        cli_main(["prog", "--pitches", "x"])
    with pytest.raises(UserError, match="--hold"):
        cli_main(["prog", "--hold", "0"])
    with pytest.raises(UserError, match="no notes"):
        cli_main(["prog", "--programs", "drums", "--pitches", "90-100"])
    with pytest.raises(SystemExit):
        cli_main(["prog", "--full", "--per-family", "2"])


# --- loading NSynth's format -----------------------------------------------------------------

def test_noteset_reads_real_nsynth_format(nsynth_root):
    train = NoteSet(nsynth_root, "train")
    assert len(train) == 3 and train.sample_rate == SR
    assert train.note_strs == sorted(train.note_strs)
    assert train.pitch.tolist() == [45, 60, 69] and train.velocity.tolist() == [50, 127, 75]
    assert train.family.tolist() == [FAMILIES.index(f) for f in ("bass", "keyboard", "vocal")]
    assert train.program.tolist() == [family_default_program(f) for f in ("bass", "keyboard", "vocal")]
    item = train[2]
    assert item["note_str"] == "vocal_acoustic_000-069-075" and item["wave"].dtype == np.float32
    np.testing.assert_allclose(item["wave"], _sine(69), atol=1 / 32768)
    assert len(NoteSet(nsynth_root / "nsynth-valid", "valid")) == 1  # a split folder itself


def test_noteset_errors(nsynth_root, tmp_path):
    # a set with other splits but no test notes says so (it used to advise building the set just built)
    with pytest.raises(UserError, match=r"nsynth: no test notes \(the set has train, valid only: build it with more "
                                        r"notes, or choose a split it has\)"):
        NoteSet(nsynth_root, "test")
    with pytest.raises(UserError, match="empty/nsynth-test/examples.json: not found; build notes with"):
        NoteSet(tmp_path / "empty", "test")
    with pytest.raises(UserError, match="split 'dev'"):
        NoteSet(nsynth_root, "dev")
    path = nsynth_root / "nsynth-valid" / "examples.json"
    data = json.loads(path.read_text())
    del data["brass_acoustic_016-057-100"]["pitch"]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="brass_acoustic_016-057-100: missing field 'pitch'"):
        NoteSet(nsynth_root, "valid")
    path.write_text("{not json")
    with pytest.raises(UserError, match="examples.json: not readable JSON"):
        NoteSet(nsynth_root, "valid")
    (nsynth_root / "nsynth-train" / "audio" / "bass_synthetic_033-045-050.wav").unlink()
    with pytest.raises(UserError, match="bass_synthetic_033-045-050.wav"):
        load_note_waves(nsynth_root, "train", 100)


def test_load_note_waves_pads_and_cuts(nsynth_root):
    data = load_note_waves(nsynth_root, "train", 10000)
    assert data["wave"].shape == (3, 10000) and data["wave"].dtype == np.float32
    assert np.all(data["wave"][:, 8000:] == 0)  # 0.5 s notes zero-padded
    np.testing.assert_allclose(data["wave"][0, :8000], _sine(45), atol=1 / 32768)
    assert load_note_waves(nsynth_root, "train", 100)["wave"].shape == (3, 100)
    assert data["pitch"].dtype == np.int64 and data["note_str"][1] == "keyboard_acoustic_004-060-127"


def test_load_note_arrays_matches_transform_and_caches(nsynth_root, monkeypatch):
    cfg = SpecConfig(sample_rate=SR, n_fft=256, hop=64)
    data = load_note_arrays(nsynth_root, "train", cfg, clip_samples=4096)
    assert data["spec"].shape == (3, 2, 4096 // 64 + 1, 128) and data["spec"].dtype == np.float16
    for key in ("pitch", "velocity", "program", "family"):
        assert data[key].dtype == np.int64 and data[key].shape == (3,), key
    waves = load_note_waves(nsynth_root, "train", 4096)["wave"]
    expected = SpecTransform(cfg).wave_to_spec(torch.from_numpy(waves)).numpy()
    np.testing.assert_allclose(data["spec"].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    caches = list((nsynth_root / "cache").glob("notes-train-*.npz"))
    assert len(caches) == 1

    def boom(self, wave, frames=None):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(SpecTransform, "wave_to_spec", boom)
    again = load_note_arrays(nsynth_root, "train", cfg, clip_samples=4096)
    assert np.array_equal(again["spec"], data["spec"]) and again["note_str"] == data["note_str"]
    assert np.array_equal(again["program"], data["program"])
    with pytest.raises(AssertionError, match="recomputed"):  # another config is another cache
        load_note_arrays(nsynth_root, "train", cfg, clip_samples=2048)
    with pytest.raises(AssertionError, match="recomputed"):  # so is another file list
        (nsynth_root / "nsynth-train" / "audio" / "keyboard_acoustic_004-060-127.wav").write_bytes(
            (nsynth_root / "nsynth-train" / "audio" / "bass_synthetic_033-045-050.wav").read_bytes() + b"\0\0")
        load_note_arrays(nsynth_root, "train", cfg, clip_samples=4096)


def test_load_note_arrays_sample_rate_mismatch(nsynth_root):
    with pytest.raises(UserError, match="16000 Hz but the spectrogram config expects 22050 Hz"):
        load_note_arrays(nsynth_root, "train", SpecConfig(sample_rate=22050, n_fft=256, hop=64), 1000)


# --- with FluidSynth ------------------------------------------------------------------------

def _has_timgm() -> bool:
    return fluid.can_render("timgm6mb")


@pytest.mark.fluidsynth
@pytest.mark.skipif(not _has_timgm(), reason="fluidsynth or TimGM6mb.sf2 missing")
def test_cli_builds_with_timgm(tmp_path, capsys):
    out = tmp_path / "notes"
    args = ["musegansynth data notes", "--soundfont", "timgm6mb", "--out", str(out), "--programs", "piano", "drums",
            "--pitches", "36-41", "--velocities", "100,127", "--hold", "0.5", "--release", "0.25", "--quiet"]
    assert cli_main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("notes: ") and "rendered 24" in line and "2 programs" in line
    total = 0
    for split in ("train", "valid", "test"):
        path = out / f"nsynth-{split}" / "examples.json"
        if not path.exists():
            continue
        s = NoteSet(out, split)
        total += len(s)
        assert set(s.program.tolist()) <= {0, DRUM_PROGRAM}
        for i in range(len(s)):
            wave = s.load_wave(i)
            assert wave.shape == (12000,) and np.sqrt(np.mean(wave ** 2)) > 1e-3
            assert s.family[i] == FAMILIES.index("drums" if s.program[i] == DRUM_PROGRAM else "keyboard")
    assert total == 24
    assert cli_main(args) == 0
    assert "rendered 0, reused 24" in capsys.readouterr().out
