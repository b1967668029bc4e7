"""From an API QA pass: the Composer's methods refuse what they cannot use with one clear
UserError (a TypeError, IndexError or reshape error before, or a silent cut)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from symbolic.generate import Composer

PRETRAINED = Path(__file__).resolve().parents[2] / "data" / "pretrained"


@pytest.fixture(scope="module")
def models():
    return (Composer.load(PRETRAINED / "symbolic_pop909.safetensors"),
            Composer.load(PRETRAINED / "symbolic_drums.safetensors"))


def _z(c, n=2):
    return c.sample_latents(n, torch.Generator().manual_seed(0))


CASES = {
    "another model's latents": (lambda c, d: c.decode(_z(d)), r"latents: private should have shape \[2, 3, 32\] "
                                r"for this composer, got \[2, 1, 32\]"),
    "a track's latents cut": (lambda c, d: c.decode({**_z(c), "private": _z(c)["private"][:, :1]}),
                              "latents: private should have shape"),
    "phrases 1.5": (lambda c, d: c.compose(1.5, 1), "n_phrases: expected a whole number >= 1, got 1.5"),
    "phrases as text": (lambda c, d: c.compose("2", 1), "n_phrases: expected a whole number"),
    "no seed": (lambda c, d: c.compose(1, None), "seed: expected a whole number from 0"),
    "chord symbols": (lambda c, d: c.compose(1, 1, chords="C Am F G"), "chords: expected an array of numbers, got "
                      "the text 'C Am F G'"),
    "NaN chords": (lambda c, d: c.compose(1, 1, chords=np.full((4, 4, 12), np.nan)), "chords: holds values that "
                   "are not numbers"),
    "more chords than bars": (lambda c, d: c.compose(1, 1, chords=np.zeros((9, 4, 12))),
                              "chords: 9 bars of chords for 4 bars of music"),
    "more chords than the given track": (lambda c, d: c.accompany(np.zeros((8, 16, 84)), 0, 1,
                                                                  chords=np.zeros((20, 4, 12))),
                                         "chords: 20 bars of chords for 8 bars of music"),
    "a given track without its index": (lambda c, d: c.decode(_z(c), cond_roll=torch.zeros(2, 4, 16, 84)),
                                        "cond_track: give the index of the given track"),
    "a given track index out of range": (lambda c, d: c.decode(_z(c), cond_roll=torch.zeros(2, 4, 16, 84),
                                                               cond_track=7), "cond_track: track indices are whole numbers from 0 to 2"),
    "negative phrases": (lambda c, d: c.sample_latents(-1), "sample_latents: n: expected a whole number >= 0"),
    "interpolating 2 and 3 phrases": (lambda c, d: c.interpolate(_z(c), _z(c, 3), 0.5),
                                      r"interpolate: shared has shape \[2, 32\] in a, \[3, 32\] in b"),
    "t past 1": (lambda c, d: c.interpolate(_z(c), _z(c), 2.0), r"interpolate: t should lie in \[0, 1\]"),
    "t of the wrong length": (lambda c, d: c.interpolate(_z(c), _z(c), torch.tensor([0.1, 0.2, 0.3])),
                              "interpolate: t should be one number or 2"),
    "11 pitch classes": (lambda c, d: c.home_offset(chords=np.zeros((4, 4, 11))),
                         "chords: expected 12 pitch classes last"),
    "threshold 2": (lambda c, d: c.decode(_z(c), threshold=2.0), "threshold: expected a number above 0 and at most 1"),
    "threshold 0": (lambda c, d: c.decode(_z(c), threshold=0), "threshold: expected a number above 0"),
    "transpose 100": (lambda c, d: c.decode(_z(c), transpose=100), "transpose: shifts are whole numbers of "
                      "semitones from -11 to 11"),
    "transpose 1.5": (lambda c, d: c.decode(_z(c), transpose=1.5), "transpose: shifts are whole numbers"),
    "style 2.7": (lambda c, d: d.compose(1, 1, style=2.7), "style: expected a whole number >= -1, got 2.7"),
    "style labels 2.7": (lambda c, d: d.decode(_z(d), style=torch.tensor([2.7, 1.0])), "style: labels are whole"),
    "3 style labels for 2 phrases": (lambda c, d: d.decode(_z(d), style=[0, 1, 1]),
                                     "style: expected one label or 2, got 3"),
    "3 style labels for 1 phrase": (lambda c, d: d.decode(_z(d, 1), style=[0, 1, 1]),
                                    "style: expected one label, got 3$"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_composer_refuses_what_it_cannot_use(models, case):
    call, says = CASES[case]
    with pytest.raises(UserError, match=says):
        call(*models)


def test_what_it_takes_still_works(models):
    c, d = models
    z = _z(c)
    assert c.decode(z).shape == (2, 3, 4, 16, 84)
    assert c.decode(z, transpose=torch.tensor([4, -3])).shape == (2, 3, 4, 16, 84)
    assert torch.equal(c.interpolate(z, z, torch.tensor([0.0, 1.0]))["shared"], z["shared"])
    assert c.compose(np.int64(2), np.int64(3)).shape == (3, 8, 16, 84)
    assert c.accompany(np.zeros((6, 16, 84)), "melody", 1, chords=np.zeros((6, 4, 12))).shape == (3, 6, 16, 84)
    assert d.compose(1, 1, style=2).shape == (1, 4, 16, 84) and d.compose(1, 1, style="funk").shape == (1, 4, 16, 84)
    # from review: what worked before the checks still does
    assert torch.equal(c.compose(1, np.array(3)), c.compose(1, 3))                    # a 0-d array seed
    assert torch.equal(d.compose(1, 1, style=np.array([2])), d.compose(1, 1, style=2))
    assert torch.equal(c.decode(z, threshold=np.float32(0.5)), c.decode(z))          # numpy / tensor thresholds
    assert c.decode(z, threshold=torch.tensor(1.0)).shape == (2, 3, 4, 16, 84)         # 1 as evaluate's --threshold
    assert torch.equal(c.interpolate(z, z, torch.tensor([0.3]))["shared"], c.interpolate(z, z, 0.3)["shared"])
