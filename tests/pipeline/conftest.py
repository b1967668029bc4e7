"""Shared fixtures of the pipeline tests: small song configs and fake models (see fakes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import SMALL_SONG, FakeComposer, FakeTimbreGenerator, fake_drum_composer  # noqa: E402,F401



@pytest.fixture(autouse=True)
def _cpu_and_quiet(monkeypatch):
    torch.set_num_threads(1)
    yield


@pytest.fixture
def small_config_path(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL_SONG, sort_keys=False))
    return path


@pytest.fixture
def fake_models():
    """A ``pipeline.generate.Models`` of fakes (weights paths empty)."""
    from pipeline.generate import Models

    return Models(FakeComposer(), fake_drum_composer(), FakeTimbreGenerator(clip_s=0.5), {})


@pytest.fixture
def patch_load_models(monkeypatch):
    """Make ``pipeline.generate.load_models`` return fakes; returns the list of calls."""
    import pipeline.generate as gen

    calls = []

    def fake_load(config, device, renderer):
        calls.append((device, renderer))
        return gen.Models(FakeComposer(), fake_drum_composer(),
                          FakeTimbreGenerator(clip_s=0.5) if renderer == "neural" else None, {})

    monkeypatch.setattr(gen, "load_models", fake_load)
    return calls
