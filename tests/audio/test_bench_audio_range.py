"""benchmarks/bench_audio_range.py: its pitch measure on hand-made tones, its scoring and its CLI."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_audio_range", ROOT / "benchmarks" / "bench_audio_range.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_strongest_partial_and_cents_on_hand_made_tones():
    bench = _bench()
    sr = 16000
    t = np.arange(8000) / sr
    tone = np.sin(2 * math.pi * 1760.0 * t) + 0.5 * np.sin(2 * math.pi * 3520.0 * t)
    assert bench.strongest_partial(tone, sr) == pytest.approx(1760.0, abs=1.0)
    rumble = tone + 3 * np.sin(2 * math.pi * 50.0 * t)       # below fmin: not a partial
    assert bench.strongest_partial(rumble, sr) == pytest.approx(1760.0, abs=1.0)
    assert bench.cents(880.0, 440.0) == pytest.approx(1200.0) and bench.cents(440.0, 440.0) == 0.0
    report = bench.score([(5.0, 5.0), (-1200.0, 0.0), (-30.0, -30.0), (700.0, 702.0)])
    assert report == {"notes": 4, "fundamental_within_50_cents": 2, "median_cents_from_a_harmonic": 17.5}


def test_cli_skips_without_weights_and_refuses_a_bad_range(tmp_path, capsys, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench, "WEIGHTS", tmp_path / "none.safetensors")   # the default weights missing: a skip
    assert bench.main([]) == 0
    assert "skipped" in capsys.readouterr().out
    assert bench.main(["--weights", str(tmp_path / "typo.safetensors")]) == 2   # a path typed wrong: an error
    assert "--weights" in capsys.readouterr().err
    (tmp_path / "w.safetensors").write_bytes(b"")
    assert bench.main(["--weights", str(tmp_path / "w.safetensors"), "--low", "90", "--high", "80"]) == 2
    assert "--low 90 --high 80" in capsys.readouterr().err


def test_cli_on_a_fake_model(tmp_path, monkeypatch, capsys):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "pipeline"))
    from fakes import FakeTimbreGenerator

    import audio.generate

    def load(path, device="cpu"):
        gen = FakeTimbreGenerator(clip_s=0.5)
        gen.pitch_range = (48, 72)
        return gen

    monkeypatch.setattr(audio.generate.TimbreGenerator, "load", staticmethod(load))
    (tmp_path / "w.safetensors").write_bytes(b"")
    out = tmp_path / "r.json"
    assert _bench().main(["--weights", str(tmp_path / "w.safetensors"), "--programs", "0", "--low", "73",
                          "--high", "76", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    # the fake's fundamental is its strongest partial: resampled notes at pitch, folded ones an octave off
    assert report["resampled"]["fundamental_within_50_cents"] == 4
    assert report["octaves away"]["fundamental_within_50_cents"] == 0
    assert report["inside the range"]["fundamental_within_50_cents"] == 4
    assert "resampled" in capsys.readouterr().out
    assert _bench().main(["--weights", str(tmp_path / "w.safetensors"), "--low", "100", "--high", "120"]) == 2
    assert "--high 120: above MIDI 117" in capsys.readouterr().err
