"""Composer: loading shipped weights (and its errors), decoding, determinism, compose, accompany."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pipeline.errors import UserError
from symbolic.export import export_generator
from symbolic.generate import Composer
from symbolic.modules import Generator

META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 48, 1], "is_drum": [False, False, False],
        "grid": {"steps_per_beat": 2, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24},
        "n_bars": 2, "styles": ["pop", "jazz"]}


@pytest.fixture()
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    g = Generator(n_tracks=3, n_bars=2, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=48,
                  n_styles=2, z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=4,
                  track_cond_dim=4)
    with torch.no_grad():
        g.out_bias_pitch.fill_(0.0)  # ~half the cells on: outputs differ visibly between inputs
        g.chord_gain.fill_(3.0)
    st, js = export_generator(g.eval(), tmp_path, "tiny", META, training_steps=7)
    return st


def test_load_from_any_of_the_two_files_or_the_folder(weights):
    for p in (weights, weights.with_suffix(".json"), weights.parent):
        c = Composer.load(p)
        assert c.track_names == ["melody", "bridge", "piano"] and c.programs == [0, 48, 1]
        assert c.is_drum == [False] * 3 and c.n_bars == 2 and c.grid["n_pitches"] == 24
        assert c.styles == ["pop", "jazz"] and c.training_steps == 7


def test_decode_shapes_binary_and_deterministic(weights):
    c = Composer.load(weights)
    z = c.sample_latents(3, torch.Generator().manual_seed(1))
    y = c.decode(z)
    assert y.shape == (3, 3, 2, 8, 24), y.shape
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    z2 = c.sample_latents(3, torch.Generator().manual_seed(1))
    assert torch.equal(y, c.decode(z2))
    p = c.decode(z, threshold=None)
    assert float(p.min()) >= 0 and float(p.max()) <= 1 and not torch.equal(p, y)
    assert torch.equal(c.compose(2, seed=5), Composer.load(weights).compose(2, seed=5))
    assert not torch.equal(c.compose(2, seed=5), c.compose(2, seed=6))


def test_chords_and_style_change_output(weights):
    c = Composer.load(weights)
    z = c.sample_latents(1, torch.Generator().manual_seed(2))
    cmaj = torch.zeros(1, 2, 4, 12)
    cmaj[..., [0, 4, 7]] = 1
    dmaj = torch.zeros(1, 2, 4, 12)
    dmaj[..., [2, 6, 9]] = 1
    assert not torch.equal(c.decode(z, chords=cmaj), c.decode(z, chords=dmaj))
    assert not torch.equal(c.decode(z, style=torch.tensor([0])), c.decode(z, style=torch.tensor([1])))
    song = c.compose(3, seed=0, chords=torch.cat([cmaj[0], dmaj[0], cmaj[0]]), style="jazz")
    assert song.shape == (3, 6, 8, 24), song.shape
    with pytest.raises(UserError, match="unknown style 'metal'"):
        c.compose(1, seed=0, style="metal")
    with pytest.raises(UserError, match=r"chords: expected shape \[1, 2, 4, 12\]"):
        c.decode(z, chords=torch.zeros(1, 2, 3, 12))


def test_interpolate_endpoints(weights):
    c = Composer.load(weights)
    a = c.sample_latents(2, torch.Generator().manual_seed(3))
    b = c.sample_latents(2, torch.Generator().manual_seed(4))
    for key in a:
        assert torch.allclose(c.interpolate(a, b, 0.0)[key], a[key], atol=1e-5)
        assert torch.allclose(c.interpolate(a, b, 1.0)[key], b[key], atol=1e-5)
    mid = c.interpolate(a, b, torch.tensor([0.0, 1.0]))
    assert torch.allclose(mid["private"][0], a["private"][0], atol=1e-5)
    assert torch.allclose(mid["private"][1], b["private"][1], atol=1e-5)


def test_accompany_keeps_given_track_and_pads_bars(weights):
    c = Composer.load(weights)
    given = torch.zeros(3, 8, 24)  # 3 bars: 1.5 phrases
    given[:, 0:4, 12] = 1
    out = c.accompany(given, "bridge", seed=0)
    assert out.shape == (3, 3, 8, 24), out.shape
    assert torch.equal(out[1], given)
    assert torch.equal(out, c.accompany(given, 1, seed=0))
    other = torch.zeros(3, 8, 24)
    other[:, :, 3] = 1
    assert not torch.equal(out[0], c.accompany(other, "bridge", seed=0)[0]), "given track ignored"
    with pytest.raises(UserError, match="unknown track 'drums'"):
        c.accompany(given, "drums", seed=0)
    with pytest.raises(UserError, match=r"given track: expected shape \[bars, 8, 24\]"):
        c.accompany(torch.zeros(3, 8, 12), 0, seed=0)


def test_load_errors_name_the_file(weights, tmp_path):
    with pytest.raises(UserError, match="symbolic_none.json: weights card not found"):
        Composer.load(tmp_path / "symbolic_none.json")
    card = json.loads(weights.with_suffix(".json").read_text())
    # missing weights file
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "symbolic_x.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="symbolic_x.safetensors: weights file not found"):
        Composer.load(lonely / "symbolic_x.json")
    # mismatched hyper-parameters
    bad = tmp_path / "bad"
    bad.mkdir()
    card2 = dict(card, generator=dict(card["generator"], branch_channels=5))
    (bad / "symbolic_b.json").write_text(json.dumps(card2))
    (bad / "symbolic_b.safetensors").write_bytes(weights.read_bytes())
    with pytest.raises(UserError, match=r"symbolic_b.safetensors: tensor \S+ has shape"):
        Composer.load(bad / "symbolic_b.json")
    # missing tensors
    (bad / "symbolic_b.json").write_text(json.dumps(card))
    save_file({"x": torch.zeros(1)}, str(bad / "symbolic_b.safetensors"))
    with pytest.raises(UserError, match="symbolic_b.safetensors: weights do not match"):
        Composer.load(bad / "symbolic_b.json")
    # not safetensors at all, and a JSON of another kind
    (bad / "symbolic_b.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="symbolic_b.safetensors: cannot read weights"):
        Composer.load(bad / "symbolic_b.json")
    (bad / "symbolic_b.json").write_text("{\"format\": \"other\"}")
    with pytest.raises(UserError, match="symbolic_b.json: not a musegansynth symbolic generator card"):
        Composer.load(bad / "symbolic_b.json")


def test_generate_module_does_not_import_lightning():
    import subprocess

    code = "import sys, symbolic.generate; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_training_and_generation_modules_do_not_import_pretty_midi():
    """docs/CONTRACTS.md: the training modules import torch, numpy, lightning and the pure modules
    only (a machine that trains needs no MIDI library)."""
    import subprocess

    code = "import sys, symbolic.lightning, symbolic.generate; print('pretty_midi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_a_cards_drum_keys_are_checked():
    from symbolic.generate import check_drum_keys

    assert check_drum_keys(None) == {} and check_drum_keys({"26": 46, "58": 43}) == {26: 46, 58: 43}
    for bad, says in (([26, 46], "expected a mapping of MIDI keys, got list"), ({"26": 128}, "'26': 128"),
                      ({"x": 46}, "'x': 46"), ({"26": True}, "'26': True")):
        with pytest.raises(ValueError, match=rf"^drum_keys: {re.escape(says)}"):
            check_drum_keys(bad)


def test_the_shipped_drum_composer_plays_its_kit_keys_as_gm():
    """Groove's TD-11 kit: 26 (open hi-hat edge) has no GM sound (FluidSynth's GM kit is silent there)
    and 58 (tom rim) is GM's vibraslap; the shipped card has them played as 46 and 43."""
    from symbolic.generate import Composer
    from symbolic.trackmap import GROOVE_TO_GM

    drums = Composer.load(Path(__file__).resolve().parents[2] / "data" / "pretrained" / "symbolic_drums.safetensors")
    assert drums.drum_keys == GROOVE_TO_GM


@pytest.mark.parametrize("value", [float("nan"), 84.5, "84", True])
def test_a_cards_counts_must_be_whole_numbers(tmp_path, value):
    # from fuzzing: n_pitches NaN said "not all arguments converted during string formatting"
    import json
    import shutil

    from pipeline.errors import UserError
    from symbolic.generate import Composer

    src = Path(__file__).resolve().parents[2] / "data" / "pretrained"
    shutil.copy(src / "symbolic_drums.safetensors", tmp_path / "symbolic_x.safetensors")
    card = json.loads((src / "symbolic_drums.json").read_text())
    card["generator"]["n_pitches"] = value
    (tmp_path / "symbolic_x.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=rf"symbolic_x.json: generator.n_pitches: expected a whole number, got "
                                        rf"{re.escape(repr(value))}$"):
        Composer.load(tmp_path / "symbolic_x.safetensors")



def test_a_cards_decoding_rules_must_be_mappings():
    from symbolic.generate import check_track_taus

    with pytest.raises(ValueError, match=r"^decode\.release: expected a mapping \{track: tau\}, got list$"):
        check_track_taus([1], ["melody"], "decode.release")   # was an internal TypeError (found by QA)
