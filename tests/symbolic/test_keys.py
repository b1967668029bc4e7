"""Music in any key: a composer trained on phrases moved to C major / A minor (its card's
``transposed``) estimates the key of its conditions (``Composer.home_offset``), composes at home
and moves the result back (``decode(..., transpose=)``), so moving the chords or the given track
moves the music by as much and changes nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from symbolic.chords import chord_pitch_classes, key_offset
from symbolic.export import export_generator
from symbolic.generate import Composer, shift_pitches
from symbolic.modules import Generator

SMALL = dict(n_tracks=3, n_bars=2, steps_per_bar=4, beats_per_bar=4, n_pitches=24, lowest_pitch=48, n_styles=1,
             z_dim=4, trunk_channels=(8, 4), branch_channels=4, style_dim=2, chord_dim=2, track_cond_dim=2)
META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False] * 3, "n_bars": 2,
        "styles": [], "grid": {"steps_per_beat": 1, "beats_per_bar": 4, "lowest_pitch": 48, "n_pitches": 24}}
MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11]


def _scale_histogram(tonic: int) -> np.ndarray:
    h = np.zeros(12)
    h[[(tonic + d) % 12 for d in MAJOR_SCALE]] = 1.0
    h[tonic] += 2.0  # the tonic and the fifth stand out, as in a real melody
    h[(tonic + 7) % 12] += 1.0
    return h


def test_key_offset_is_how_far_a_key_sits_above_c_major_or_a_minor():
    assert key_offset(_scale_histogram(0)) == 0
    assert key_offset(_scale_histogram(4)) == 4        # E major: 4 above C
    assert key_offset(_scale_histogram(7)) == -5       # G major: moved down 5, not up 7
    assert key_offset(_scale_histogram(6)) == 6        # F# major: the one tie goes up
    a_minor = np.zeros(12)
    a_minor[[9, 0, 4]] = [3.0, 2.0, 2.0]                # A, C, E: A minor is at home
    assert key_offset(a_minor) == 0
    assert key_offset(np.roll(a_minor, 4)) == 4        # C# minor, the relative of E major
    assert key_offset(np.zeros(12)) == 0 and key_offset(np.ones(12)) == 0   # nothing to tell a key from


def test_shift_pitches_moves_along_the_last_axis_and_drops_what_leaves_the_range():
    roll = torch.zeros(2, 6)
    roll[0, 0] = roll[0, 5] = roll[1, 2] = 1.0
    up = shift_pitches(roll, 1)
    assert up[0].tolist() == [0, 1, 0, 0, 0, 0] and up[1].tolist() == [0, 0, 0, 1, 0, 0]  # pitch 5 left
    down = shift_pitches(roll, -2)
    assert down[0].tolist() == [0, 0, 0, 1, 0, 0] and down[1].tolist() == [1, 0, 0, 0, 0, 0]
    assert shift_pitches(roll, 0) is roll
    assert not shift_pitches(roll, 6).any() and not shift_pitches(roll, -9).any()


def _composer(tmp_path, transposed: bool, name: str) -> Composer:
    torch.manual_seed(0)
    g = Generator(**SMALL).eval()
    with torch.no_grad():  # an untrained generator with notes all over the roll
        for prm in g.parameters():
            prm.normal_(0.0, 0.5)
    export_generator(g, tmp_path, name, dict(META, transposed=transposed))
    return Composer.load(tmp_path / f"symbolic_{name}.json")


def _chords(symbols: list[str]) -> torch.Tensor:
    """One chord a bar, held for its 4 beats: float [bars, 4, 12]."""
    return torch.stack([torch.as_tensor(chord_pitch_classes(s), dtype=torch.float32).expand(4, 12)
                        for s in symbols])


def test_the_card_says_whether_the_composer_learnt_in_one_key(tmp_path):
    keyed, plain = _composer(tmp_path, True, "keyed"), _composer(tmp_path, False, "plain")
    assert json.loads((tmp_path / "symbolic_keyed.json").read_text())["transposed"] is True
    assert keyed.home_key and not plain.home_key
    e_major = _chords(["E", "C#:min", "A", "B"])
    assert keyed.home_offset(chords=e_major) == 4
    assert keyed.home_offset(chords=_chords(["C", "A:min", "F", "G"])) == 0
    assert plain.home_offset(chords=e_major) == 0          # no home key: nothing is moved
    assert keyed.home_offset() == 0


def test_compose_in_another_key_is_the_same_music_moved(tmp_path):
    comp = _composer(tmp_path, True, "keyed")
    home = comp.compose(2, seed=3, chords=_chords(["C", "A:min", "F", "G"]))
    e_major = comp.compose(2, seed=3, chords=_chords(["E", "C#:min", "A", "B"]))
    assert home.any() and not torch.equal(home, e_major)
    assert torch.equal(e_major, shift_pitches(home, 4))
    # the same chords given to a composer without a home key are composed as they come
    plain = _composer(tmp_path, False, "plain")
    assert not torch.equal(plain.compose(2, seed=3, chords=_chords(["E", "C#:min", "A", "B"])),
                           shift_pitches(plain.compose(2, seed=3, chords=_chords(["C", "A:min", "F", "G"])), 4))


def _melody(tonic: int) -> torch.Tensor:
    """The scale of ``tonic`` major up from MIDI 48 + tonic, again and again, one note a step:
    [4 bars, 4 steps, 24 pitches]."""
    roll = torch.zeros(16, 24)
    for step in range(16):
        roll[step, tonic + MAJOR_SCALE[step % 7]] = 1.0
    return roll.reshape(4, 4, 24)


def test_accompany_follows_the_given_tracks_key_and_keeps_it_as_given(tmp_path):
    comp = _composer(tmp_path, True, "keyed")
    assert comp.home_offset(given=_melody(0)) == 0 and comp.home_offset(given=_melody(4)) == 4
    home = comp.accompany(_melody(0), track="melody", seed=1)
    moved = comp.accompany(_melody(4), track="melody", seed=1)
    assert torch.equal(moved[0], _melody(4))            # the given track, note for note
    assert torch.equal(moved[1:], shift_pitches(home[1:], 4))
    # a given note that moving home would push out of the range is still there afterwards
    low = _melody(4)
    low[0, 0] = 0.0
    low[0, 0, 1] = 1.0                                   # MIDI 49, below the range once moved down 4
    assert comp.home_offset(given=low) == 4
    assert torch.equal(comp.accompany(low, track="melody", seed=1)[0], low)


def test_decode_transpose_moves_probabilities_too(tmp_path):
    comp = _composer(tmp_path, True, "keyed")
    z = comp.sample_latents(2, torch.Generator().manual_seed(0))
    chords = _chords(["C", "G"]).expand(2, 2, 4, 12)
    home = comp.decode(z, chords=chords, threshold=None)
    up = comp.decode(z, chords=torch.roll(chords, 2, dims=-1), threshold=None, transpose=2)
    assert torch.equal(up, shift_pitches(home, 2))


@pytest.mark.parametrize("offset", [-5, 6])
def test_the_ends_of_the_offset_range(tmp_path, offset):
    comp = _composer(tmp_path, True, "keyed")
    home = comp.compose(2, seed=0, chords=_chords(["C", "F", "G", "C"]))
    key = {-5: ["G", "C", "D", "G"], 6: ["F#", "B", "C#", "F#"]}[offset]
    assert comp.home_offset(chords=_chords(key)) == offset
    assert torch.equal(comp.compose(2, seed=0, chords=_chords(key)), shift_pitches(home, offset))


def test_section_offsets_each_section_its_own_key_or_the_songs(tmp_path):
    from types import SimpleNamespace

    from pipeline.generate import section_offsets

    comp = _composer(tmp_path, True, "keyed")                 # 2 bars a phrase
    sections = [SimpleNamespace(bars=4, chords=("C",)), SimpleNamespace(bars=3, chords=None),
                SimpleNamespace(bars=2, chords=("E",))]
    e_major = _chords(["E", "C#:min", "A", "B"])
    chords = torch.cat([_chords(["C", "A:min", "F", "G"]),  # section 1: 2 phrases in C
                        torch.zeros(4, 4, 12),                # section 2: 2 phrases without chords
                        e_major[:2]]).reshape(5, 2, 4, 12)    # section 3: 1 phrase in E
    song = comp.home_offset(chords=chords)
    assert section_offsets(comp, SimpleNamespace(sections=sections), chords).tolist() == [0, 0, song, song, 4]
    plain = _composer(tmp_path, False, "plain")
    assert not section_offsets(plain, SimpleNamespace(sections=sections), chords).any()
    assert not section_offsets(comp, SimpleNamespace(sections=sections), None).any()


def test_decode_takes_one_shift_per_phrase(tmp_path):
    from pipeline.errors import UserError

    comp = _composer(tmp_path, True, "keyed")
    z = comp.sample_latents(3, torch.Generator().manual_seed(1))
    home = _chords(["C", "G"]).expand(3, 2, 4, 12).clone()
    shifts = torch.tensor([0, 2, -5])
    moved = torch.stack([torch.roll(home[i], int(k), dims=-1) for i, k in enumerate(shifts)])
    out = comp.decode(z, chords=moved, transpose=shifts)
    want = comp.decode(z, chords=home)
    for i, k in enumerate(shifts.tolist()):
        assert torch.equal(out[i], shift_pitches(want[i], k))
    with pytest.raises(UserError, match="transpose: expected one shift or 3, got 2"):
        comp.decode(z, chords=moved, transpose=torch.tensor([1, 2]))


def test_a_section_of_no_chords_takes_the_songs_key(tmp_path):
    """A section whose chords are all "N.C." has nothing to estimate a key from: like a section
    without chords, it takes the song's key (it used to be composed in C)."""
    from types import SimpleNamespace

    from pipeline.generate import section_offsets

    comp = _composer(tmp_path, True, "keyed")                 # 2 bars a phrase
    sections = [SimpleNamespace(bars=4, chords=("F#", "C#", "D#m", "B")), SimpleNamespace(bars=4, chords=("N.C.",))]
    chords = torch.cat([_chords(["F#", "C#", "D#:min", "B"]), torch.zeros(4, 4, 12)]).reshape(4, 2, 4, 12)
    song = comp.home_offset(chords=chords)
    assert song == 6
    assert section_offsets(comp, SimpleNamespace(sections=sections), chords).tolist() == [6, 6, 6, 6]
