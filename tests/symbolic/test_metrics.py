"""Metrics on hand-made rolls, with the expected values worked out by hand in comments."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from symbolic import metrics as M

GRID = {"steps_per_beat": 4, "beats_per_bar": 4, "lowest_pitch": 24, "n_pitches": 84}
STEPS = 16
P = 84
# pitch indices at lowest_pitch 24 (C1): index i is pitch class i % 12
C, CS, D, E, F, FS, G, A, B = 0, 1, 2, 4, 5, 6, 7, 9, 11


def track(n: int = 1, bars: int = 4) -> np.ndarray:
    """Empty single-track roll [N, bars, 16, 84]."""
    return np.zeros((n, bars, STEPS, P), dtype=bool)


# --------------------------------------------------------------------------- pitch classes

def test_pitch_class_is_true_pitch_class_not_adjacent_grouping():
    # lowest 21 (A0): indices 0..3 are A, A#, B, C -> classes 9, 10, 11, 0
    m = M.pitch_class_matrix(4, 21)
    assert m.argmax(axis=1).tolist() == [9, 10, 11, 0]
    roll = track(bars=1)
    roll[0, 0, 0, [C, CS]] = True  # C1 and C#1: adjacent pitches, 2 classes
    assert M.used_pitch_classes(roll, 24) == 2.0
    roll = track(bars=1)
    roll[0, 0, 0, [C, C + 12]] = True  # C1 and C2: one class
    assert M.used_pitch_classes(roll, 24) == 1.0
    # chroma counts cells: C1 (2 steps) + C2 (1 step) -> 3 in class C; E -> class 4
    roll = track(bars=1)
    roll[0, 0, 0:2, C] = True
    roll[0, 0, 5, C + 12] = True
    roll[0, 0, 3, E] = True
    ch = M.chroma(roll[0, 0].sum(axis=0), 24)
    assert ch.tolist() == [3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    # with lowest_pitch 25 (C#1) the same indices are classes 1 and 5
    assert M.chroma(roll[0, 0].sum(axis=0), 25).nonzero()[0].tolist() == [1, 5]


# --------------------------------------------------------------------------- EB

def test_empty_bar_rate():
    roll = track(n=2)
    roll[0, 0, 3, C] = True
    roll[0, 2, 0, E] = True
    roll[1, 3, 15, G] = True
    # 8 bars, 3 with a note -> 5 empty / 8 = 0.625
    assert M.empty_bar_rate(roll) == pytest.approx(0.625)
    assert math.isnan(M.empty_bar_rate(track(n=0)))
    assert M.empty_bar_rate(track(n=1)) == 1.0


# --------------------------------------------------------------------------- UPC

def test_used_pitch_classes_averages_non_empty_bars():
    roll = track()
    roll[0, 0, 0:4, [C, E, G]] = True  # bar 0: C E G -> 3 classes
    roll[0, 1, 0, C] = True
    roll[0, 1, 8, C + 24] = True  # bar 1: C twice -> 1 class
    # bars 2, 3 empty, skipped: (3 + 1) / 2 = 2.0
    assert M.used_pitch_classes(roll, 24) == pytest.approx(2.0)
    assert math.isnan(M.used_pitch_classes(track(), 24))


# --------------------------------------------------------------------------- notes, QN

def test_note_spans_runs_cross_bar_lines_and_split_at_onsets():
    roll = track(bars=2)
    roll[0, 0, 14:16, C] = True
    roll[0, 1, 0:2, C] = True  # one note: steps 14..17 of the phrase, length 4
    roll[0, 1, 4, E] = True  # length 1 at step 20
    n, p, s, length = M.note_spans(roll)
    assert list(zip(n.tolist(), p.tolist(), s.tolist(), length.tolist())) == [(0, C, 14, 4), (0, E, 20, 1)]
    onsets = np.zeros_like(roll)
    onsets[0, 0, 14, C] = onsets[0, 1, 0, C] = onsets[0, 1, 4, E] = True  # re-struck at the bar line
    n, p, s, length = M.note_spans(roll, onsets)
    assert list(zip(p.tolist(), s.tolist(), length.tolist())) == [(C, 14, 2), (C, 16, 2), (E, 20, 1)]


def test_qualified_min_steps_default():
    # MuseGAN: 3 steps at 96 a bar (1/32 bar); at least 2 steps on coarser grids
    assert M.qualified_min_steps(96) == 3
    assert M.qualified_min_steps(48) == 2
    assert M.qualified_min_steps(16) == 2
    assert M.qualified_min_steps(192) == 6


def test_qualified_note_rate():
    roll = track(bars=1)
    roll[0, 0, 0, C] = True  # length 1
    roll[0, 0, 2:4, E] = True  # length 2
    roll[0, 0, 5:8, G] = True  # length 3
    roll[0, 0, 10, B] = True  # length 1
    # min 2 steps: lengths 2 and 3 qualify -> 2 / 4 = 0.5; min 3 -> 1 / 4
    assert M.qualified_note_rate(roll, 2) == pytest.approx(0.5)
    assert M.qualified_note_rate(roll, 3) == pytest.approx(0.25)
    # onsets splitting the 3-step G into 1 + 2: lengths 1, 2, 1, 2, 1 -> 2 / 5
    onsets = np.zeros_like(roll)
    onsets[0, 0, [0], C] = onsets[0, 0, 2, E] = onsets[0, 0, 5, G] = onsets[0, 0, 6, G] = onsets[0, 0, 10, B] = True
    assert M.qualified_note_rate(roll, 2, onsets) == pytest.approx(0.4)
    assert math.isnan(M.qualified_note_rate(track(), 2))
    with pytest.raises(ValueError, match="min_steps"):
        M.qualified_note_rate(roll, 0)


# --------------------------------------------------------------------------- DP

def test_drum_pattern_weights():
    # 4 steps a beat: 8ths at 0, 2 -> 1; 16ths at 1, 3 -> tolerance (MuseGAN's mask)
    assert M.drum_pattern_weights(4, 2, 0.1).tolist() == [1, 0.1, 1, 0.1] * 2
    # 12 steps a beat (48 a bar): every 16th weighs 1, a step either side of it the tolerance
    w = M.drum_pattern_weights(12, 1, 0.25)
    assert w.tolist() == [1, 0.25, 0.25] * 4
    # 24 steps a beat (96 a bar): MuseGAN's [1, tol, 0, 0, 0, tol] * 16
    assert M.drum_pattern_weights(24, 4, 0.1).tolist() == [1, 0.1, 0, 0, 0, 0.1] * 16
    # resolutions MuseGAN has no mask for: the 16th, else the 8th, else the beat as the grid
    assert M.drum_pattern_weights(32, 1, 0.1).tolist() == [1, 0.1, 0, 0, 0, 0, 0, 0.1] * 4
    assert M.drum_pattern_weights(2, 1, 0.1).tolist() == [1, 1]
    assert M.drum_pattern_weights(3, 1, 0.1).tolist() == [1, 0.1, 0.1]


@pytest.mark.parametrize("steps_per_beat", [4, 6, 8, 9, 12, 16, 18, 24])
def test_drum_pattern_weights_are_pypianoroll_masks(steps_per_beat):
    # pypianoroll's drum_in_pattern_rate (MuseGAN's masks) on one beat holding a single hit at
    # step i is that step's weight
    from pypianoroll.metrics import drum_in_pattern_rate

    ours = M.drum_pattern_weights(steps_per_beat, 1, 0.1)
    for i in range(steps_per_beat):
        beat = np.zeros((steps_per_beat, 128), bool)
        beat[i, 36] = True
        assert ours[i] == pytest.approx(drum_in_pattern_rate(beat, steps_per_beat, 0.1)), i


def test_drum_pattern_rate():
    roll = track(bars=1)
    roll[0, 0, 0:4, 36 - 24] = True  # kick on every 16th of beat 1: weights 1 + .1 + 1 + .1
    # 2.2 / 4 hits = 0.55; with tolerance 0: 2 / 4 = 0.5
    assert M.drum_pattern_rate(roll, 4, 4) == pytest.approx(0.55)
    assert M.drum_pattern_rate(roll, 4, 4, tolerance=0.0) == pytest.approx(0.5)
    roll[0, 0, 8, 38 - 24] = True  # snare on beat 3 (weight 1): (2.2 + 1) / 5 = 0.64
    assert M.drum_pattern_rate(roll, 4, 4) == pytest.approx(0.64)
    assert math.isnan(M.drum_pattern_rate(track(), 4, 4))
    with pytest.raises(ValueError, match="steps a bar"):
        M.drum_pattern_rate(roll, 3, 4)
    # 48 steps a bar: a straight 16th hi-hat is all in pattern, a hit a step late weighs 0.1
    fine = np.zeros((1, 1, 48, P), bool)
    fine[0, 0, ::3, 42 - 24] = True
    assert M.drum_pattern_rate(fine, 12, 4) == pytest.approx(1.0)
    late = np.zeros((1, 1, 48, P), bool)
    late[0, 0, 1, 42 - 24] = True
    assert M.drum_pattern_rate(late, 12, 4) == pytest.approx(0.1)


def test_key_hits_and_kit_distance():
    a = track(bars=1)
    a[0, 0, 0:16:4, 36 - 24] = True   # 4 kicks
    a[0, 0, 0:16:2, 42 - 24] = True   # 8 closed hi-hats (two on the kicks' steps: each cell a hit)
    hits = M.key_hits(a)
    assert hits[36 - 24] == 4 and hits[42 - 24] == 8 and hits.sum() == 12   # shares 4/12 and 8/12
    b = a.copy()
    b[..., 42 - 24] = False
    b[0, 0, 0:16:2, 51 - 24] = True   # the same hits on the ride: the same DP, POLY and GC
    assert M.drum_pattern_rate(a, 4, 4) == M.drum_pattern_rate(b, 4, 4)
    assert M.polyphony(a) == M.polyphony(b)
    # kick 4/12 in both; hi-hat 8/12 against 0, ride 0 against 8/12: (8/12 + 8/12) / 2
    assert M.kit_distance(a, b) == pytest.approx(8 / 12)
    assert M.kit_distance(a, a) == 0.0
    c = track(bars=1)
    c[0, 0, 0, 49 - 24] = True        # no key shared with a
    assert M.kit_distance(a, c) == pytest.approx(1.0)
    assert M.key_hits(track()).sum() == 0 and math.isnan(M.kit_distance(a, track()))
    with pytest.raises(ValueError, match="84 and 3 pitches"):
        M.kit_distance(a, np.zeros((1, 1, 16, 3), dtype=bool))


# --------------------------------------------------------------------------- polyphony

def test_polyphony():
    roll = track(bars=1)
    roll[0, 0, 0, [C, E, G]] = True  # 3 pitches
    roll[0, 0, 1, C] = True  # 1
    roll[0, 0, 2, [C, G]] = True  # 2; the other 13 steps are silent and skipped
    poly, rate = M.polyphony(roll)
    assert poly == pytest.approx((3 + 1 + 2) / 3)  # 2.0
    assert rate == pytest.approx(2 / 3)  # steps 0 and 2 have >= 2 pitches
    assert all(math.isnan(v) for v in M.polyphony(track()))


# --------------------------------------------------------------------------- PCE

def test_pitch_class_entropy():
    roll = track()
    roll[0, 0, 0:8, C] = True
    roll[0, 0, 8:16, G] = True  # bar 0: C 8 cells, G 8 cells -> p = (1/2, 1/2) -> 1 bit
    for i, pc in enumerate((C, E, G, B)):
        roll[0, 1, 4 * i:4 * i + 4, pc] = True  # bar 1: 4 classes x 4 cells -> 2 bits
    roll[0, 2, 0:8, C] = True
    roll[0, 2, 8:16, C + 12] = True  # bar 2: C1 and C2, one class -> 0 bits
    # bar 3 empty, skipped: (1 + 2 + 0) / 3 = 1.0
    assert M.pitch_class_entropy(roll, 24) == pytest.approx(1.0)
    # duration weighted: C 12 cells, G 4 cells -> -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278
    one = track(bars=1)
    one[0, 0, 0:12, C] = True
    one[0, 0, 12:16, G] = True
    assert M.pitch_class_entropy(one, 24) == pytest.approx(0.8112781245)
    assert math.isnan(M.pitch_class_entropy(track(), 24))


# --------------------------------------------------------------------------- SC

def test_scale_masks():
    masks = M.scale_masks()
    assert masks.shape == (24, 12)
    assert np.flatnonzero(masks[0]).tolist() == [0, 2, 4, 5, 7, 9, 11]  # C major
    assert np.flatnonzero(masks[12 + 9]).tolist() == [0, 2, 4, 5, 7, 9, 11]  # A minor: same set
    assert np.flatnonzero(masks[12 + 0]).tolist() == [0, 2, 3, 5, 7, 8, 10]  # C minor


def test_scale_consistency_counts_notes_not_durations():
    roll = track(n=2)
    for i, pc in enumerate((C, D, E, F, G, A, B)):
        roll[0, 0, 2 * i, pc + 24] = True  # seven one-step notes of C major
    roll[0, 1:4, :, FS] = True  # one long F#: 48 cells but one note
    # phrase 0: 8 notes, 8 classes; best scale holds 7 -> 7/8 = 0.875
    roll[1, 0, 0, [C, E, G]] = True  # phrase 1: C E G -> 1.0
    assert M.scale_consistency(roll, 24) == pytest.approx((0.875 + 1.0) / 2)
    # C# instead of C (lowest 25): phrase 1 becomes C# F G# -> in C# major -> still 1.0
    assert M.scale_consistency(roll[1:], 25) == pytest.approx(1.0)
    # one phrase of nothing is skipped, all empty is NaN
    assert M.scale_consistency(np.concatenate([roll[1:], track()]), 24) == pytest.approx(1.0)
    assert math.isnan(M.scale_consistency(track(), 24))


# --------------------------------------------------------------------------- GC

def test_groove_consistency():
    roll = track()
    roll[0, 0, 0:8, C] = True
    roll[0, 0, 8:16, E] = True  # bar 0 onsets {0, 8} (the held notes add none)
    roll[0, 1, [0, 8], G] = True  # bar 1 onsets {0, 8}
    roll[0, 2, [0, 4, 8, 12], C] = True  # bar 2 onsets {0, 4, 8, 12}
    # bar 3 empty, skipped. Hamming/16: d01 = 0, d02 = 2/16, d12 = 2/16
    # GC = 1 - (0 + 0.125 + 0.125) / 3 = 1 - 1/12
    assert M.groove_consistency(roll) == pytest.approx(1 - 1 / 12)
    # a note held across a bar line gives the next bar no onset
    held = track(bars=2)
    held[0, 0, 0:16, C] = True
    held[0, 1, 0:4, C] = True
    held[0, 1, 8, E] = True  # bar 1 onsets {8} vs bar 0 {0}: d = 2/16 -> 0.875
    assert M.groove_consistency(held) == pytest.approx(0.875)
    # as drums every cell is a hit: bar 0 all 16 steps, bar 1 {0,1,2,3,8} -> d = 11/16
    assert M.groove_consistency(held, is_drum=True) == pytest.approx(5 / 16)
    # fewer than two bars with onsets -> NaN
    assert math.isnan(M.groove_consistency(roll[:, :1]))
    assert math.isnan(M.groove_consistency(track()))


# --------------------------------------------------------------------------- TD

def test_tonal_centroid_matrix_columns():
    phi = M.tonal_centroid_matrix()
    # C (0): sin 0, cos 0 on each circle; radii 1, 1, 0.5
    assert phi[:, 0] == pytest.approx([0, 1, 0, 1, 0, 0.5])
    # G (7): 7*7pi/6 = 8pi + pi/6; 7*3pi/2 = 10pi + pi/2; 7*2pi/3 = 4pi + 2pi/3
    s3 = math.sqrt(3)
    assert phi[:, 7] == pytest.approx([0.5, s3 / 2, 1, 0, 0.5 * s3 / 2, -0.25], abs=1e-12)


def test_tonal_distance():
    a = track()
    b = track()
    a[0, 0, :, C] = True
    b[0, 0, :, FS] = True  # bar 0: C vs F#: phi(6) = (0, -1, 0, -1, 0, 0.5) -> |(0, 2, 0, 2, 0, 0)| = sqrt 8
    a[0, 1, :, C] = True
    b[0, 1, :, G] = True
    # bar 1: C vs G: diff (0.5, sqrt3/2 - 1, 1, -1, sqrt3/4, -0.75)
    # squares: 0.25 + (1.75 - sqrt3) + 1 + 1 + 0.1875 + 0.5625 = 4.75 - sqrt3 = 3.0179492
    a[0, 2, :, [C, E, G]] = True
    b[0, 2, :, [C + 12, E + 12, G + 24]] = True  # bar 2: same chord in other octaves -> 0
    a[0, 3, :, C] = True  # bar 3: b silent -> skipped
    expected = (math.sqrt(8) + math.sqrt(4.75 - math.sqrt(3)) + 0.0) / 3
    assert M.tonal_distance(a, b, 24) == pytest.approx(expected)
    # adjacent pitches are different classes: C vs C# is not 0
    c1, c2 = track(bars=1), track(bars=1)
    c1[0, 0, 0, C] = True
    c2[0, 0, 0, CS] = True
    assert M.tonal_distance(c1, c2, 24) > 1.0
    assert math.isnan(M.tonal_distance(a[:, 3:], b[:, 3:], 24))
    # duration weighted: a = C 12 steps + E 4 steps, b = C -> centroid diff 0.25 (phi(4) - phi(0))
    # phi(4) - phi(0) = (sqrt3/2, -1.5, 0, 0, sqrt3/4, -0.75): squares sum 0.75 + 2.25 + 0.1875 + 0.5625 = 3.75
    a1, b1 = track(bars=1), track(bars=1)
    a1[0, 0, 0:12, C] = True
    a1[0, 0, 12:16, E] = True
    b1[0, 0, :, C] = True
    assert M.tonal_distance(a1, b1, 24) == pytest.approx(0.25 * math.sqrt(3.75))
    with pytest.raises(ValueError, match="differ in shape"):
        M.tonal_distance(a, b[:, :2], 24)


# --------------------------------------------------------------------------- evaluate_rolls

def three_tracks() -> np.ndarray:
    rolls = np.zeros((2, 3, 4, STEPS, P), dtype=np.uint8)  # melody, piano, drums (velocities)
    rolls[:, 0, :, 0:4, G + 24] = 90
    rolls[:, 0, :, 8:10, E + 24] = 80
    rolls[:, 1, :, :, [C, E, G]] = 70
    rolls[0, 2, :, [0, 4, 8, 12], 36 - 24] = 100
    return rolls


def test_evaluate_rolls_structure_and_values():
    rolls = three_tracks()
    res = M.evaluate_rolls(rolls, ["melody", "piano", "drums"], [False, False, True], GRID)
    assert list(res) == ["melody", "piano", "drums", "pairs"]
    assert list(res["melody"]) == list(M.TRACK_METRICS)
    assert list(res["drums"]) == list(M.DRUM_METRICS)
    assert list(res["pairs"]) == ["melody/piano"]
    # melody: G 4 steps + E 2 steps each bar -> UPC 2, QN 1, POLY 1, GC 1
    assert res["melody"]["EB"] == 0.0
    assert res["melody"]["UPC"] == 2.0
    assert res["melody"]["QN"] == 1.0
    assert res["melody"]["POLY"] == 1.0 and res["melody"]["POLY_RATE"] == 0.0
    assert res["melody"]["SC"] == 1.0
    # piano: held chord over 4 bars: one note per pitch, no onset after bar 0 -> GC NaN
    assert res["piano"]["POLY"] == 3.0 and res["piano"]["POLY_RATE"] == 1.0
    assert math.isnan(res["piano"]["GC"])
    # drums: 4 bars of phrase 0 hit on beats (weight 1); phrase 1 empty -> EB 4/8
    assert res["drums"]["EB"] == 0.5
    assert res["drums"]["DP"] == 1.0
    assert res["drums"]["GC"] == 1.0
    assert res["pairs"]["melody/piano"]["TD"] == pytest.approx(
        M.tonal_distance(rolls[:, 0], rolls[:, 1], 24))
    # a Grid-like object gives the same numbers
    grid_obj = SimpleNamespace(**GRID)
    res2 = M.evaluate_rolls(rolls, ["melody", "piano", "drums"], [False, False, True], grid_obj)
    assert res2["melody"] == res["melody"]


def test_evaluate_rolls_qn_min_steps_override():
    rolls = three_tracks()
    # melody notes last 4 and 2 steps: min 3 -> half qualify
    res = M.evaluate_rolls(rolls, ["m", "p", "d"], [False, False, True], GRID, qn_min_steps=3)
    assert res["m"]["QN"] == 0.5


def test_evaluate_rolls_empty_inputs_are_nan():
    for n in (0, 3):  # no phrase at all, or three silent phrases
        res = M.evaluate_rolls(np.zeros((n, 3, 4, STEPS, P), bool), ["a", "b", "d"], [False, False, True], GRID)
        for name in ("a", "b", "d"):
            values = dict(res[name])
            eb = values.pop("EB")
            assert math.isnan(eb) if n == 0 else eb == 1.0
            assert all(math.isnan(v) for v in values.values()), (n, name, values)
        assert list(res["pairs"]) == ["a/b"] and math.isnan(res["pairs"]["a/b"]["TD"])


def test_evaluate_rolls_rejects_bad_input():
    rolls = three_tracks()
    names, drums = ["m", "p", "d"], [False, False, True]
    with pytest.raises(ValueError, match="binarize"):
        M.evaluate_rolls(rolls / 255.0, names, drums, GRID)
    with pytest.raises(ValueError, match="5 dimensions"):
        M.evaluate_rolls(rolls[0], names, drums, GRID)
    with pytest.raises(ValueError, match="3 tracks"):
        M.evaluate_rolls(rolls, names[:2], drums, GRID)
    with pytest.raises(ValueError, match="steps a bar"):
        M.evaluate_rolls(rolls, names, drums, {**GRID, "steps_per_beat": 3})
    with pytest.raises(ValueError, match="pitches"):
        M.evaluate_rolls(rolls, names, drums, {**GRID, "n_pitches": 72})
    with pytest.raises(ValueError, match="lowest_pitch"):
        M.evaluate_rolls(rolls, names, drums, {"steps_per_beat": 4, "beats_per_bar": 4})
    with pytest.raises(ValueError, match="unique"):
        M.evaluate_rolls(rolls, ["m", "m", "d"], drums, GRID)


# --------------------------------------------------------------------------- against plain loops

def naive_notes(roll, onsets=None):
    """(phrase, pitch, start, length) by walking every pitch's time line step by step."""
    n, bars, steps, pitches = roll.shape
    out = []
    for i in range(n):
        line = roll[i].reshape(bars * steps, pitches)
        ons = None if onsets is None else onsets[i].reshape(bars * steps, pitches)
        for p in range(pitches):
            start = None
            for t in range(bars * steps + 1):
                on = t < bars * steps and line[t, p]
                split = on and start is not None and ons is not None and ons[t, p]
                if start is not None and (not on or split):
                    out.append((i, p, start, t - start))
                    start = None
                if on and start is None:
                    start = t
    return sorted(out)


def test_vectorised_metrics_match_plain_loops():
    rng = np.random.default_rng(0)
    roll = rng.random((3, 4, STEPS, 20)) < 0.15
    onsets = roll & (rng.random(roll.shape) < 0.3)
    for ons in (None, onsets):
        got = sorted(zip(*(a.tolist() for a in M.note_spans(roll, ons))))
        assert got == naive_notes(roll, ons)
    low = 29  # F1: pitch classes do not start at 0
    upc, pce = [], []
    for i in range(3):
        for b in range(4):
            counts = np.zeros(12)
            for p in range(20):
                counts[(low + p) % 12] += roll[i, b, :, p].sum()
            if counts.sum():
                upc.append((counts > 0).sum())
                q = counts[counts > 0] / counts.sum()
                pce.append(-(q * np.log2(q)).sum())
    assert M.used_pitch_classes(roll, low) == pytest.approx(np.mean(upc))
    assert M.pitch_class_entropy(roll, low) == pytest.approx(np.mean(pce))
    notes = naive_notes(roll)
    assert M.qualified_note_rate(roll, 2) == pytest.approx(np.mean([length >= 2 for *_, length in notes]))
    sc = []
    for i in range(3):
        pcs = [(low + p) % 12 for j, p, _, _ in notes if j == i]
        best = max(sum(pc in {(t + s) % 12 for s in steps} for pc in pcs)
                   for t in range(12) for steps in (M.MAJOR_STEPS, M.MINOR_STEPS))
        sc.append(best / len(pcs))
    assert M.scale_consistency(roll, low) == pytest.approx(np.mean(sc))
    gc = []
    for i in range(3):
        pats = []
        for b in range(4):
            pat = np.zeros(STEPS, bool)
            for j, _, start, _ in notes:
                if j == i and start // STEPS == b:
                    pat[start % STEPS] = True
            if pat.any():
                pats.append(pat)
        d = [np.mean(pats[x] != pats[y]) for x in range(len(pats)) for y in range(x + 1, len(pats))]
        if d:
            gc.append(1 - np.mean(d))
    assert M.groove_consistency(roll) == pytest.approx(np.mean(gc))


def test_texture_profile_of_a_hand_made_roll():
    # one phrase of 4 bars x 4 steps: bar 0 a line (rate 0), bar 1 a dyad on 1 of 4 sounding
    # steps (0.25), bar 2 silent, bar 3 a chord held over all 4 steps (1.0); a second phrase
    # with a dyad on 1 of 2 sounding steps (0.5) in its bar 0
    r = np.zeros((2, 4, 4, 12), dtype=bool)
    r[0, 0, 0:2, 0] = True
    r[0, 0, 2:4, 4] = True
    r[0, 1, :, 2] = True
    r[0, 1, 3, 9] = True
    r[0, 3, :, [0, 4, 7]] = True
    r[1, 0, 0:2, 5] = True
    r[1, 0, 1, 8] = True
    prof = M.texture_profile(r)                 # bins 0 | (0, .25) | [.25, .5) | [.5, .75) | [.75, 1]
    np.testing.assert_allclose(prof, np.array([1, 0, 1, 1, 1]) / 4)
    np.testing.assert_allclose(M.texture_profile(r, bins=(0.5,)), np.array([1, 1, 2]) / 4)
    assert M.texture_profile(np.zeros((1, 2, 4, 12), bool)).sum() == 0
    with pytest.raises(ValueError, match=r"bins: expected increasing edges inside \(0, 1\)"):
        M.texture_profile(r, bins=(0.5, 0.25))
    with pytest.raises(ValueError, match=r"roll should have 4 dimensions \[N, bars, steps_per_bar, pitches\]"):
        M.texture_profile(r[0])
    with pytest.raises(ValueError, match="binarize probabilities first"):   # as every other metric
        M.texture_profile(np.full((1, 1, 16, 84), 0.01, np.float32))


def test_rhythm_profile_of_a_hand_made_roll():
    # one phrase, 2 bars of 2 beats x 4 steps: C on beat 0 for a whole beat, E and G as two
    # eighth notes on beat 1 (offsets 0 and 2), a one-step D at offset 3 of beat 2 and a B held
    # from beat 3 (offset 1) over 3 steps
    r = np.zeros((1, 2, 8, 12), dtype=bool)
    r[0, 0, 0:4, 0] = True
    r[0, 0, 4:6, 4] = True
    r[0, 0, 6:8, 7] = True
    r[0, 1, 3, 2] = True
    r[0, 1, 5:8, 11] = True
    table = M.rhythm_profile(r, steps_per_beat=4, max_steps=4)
    want = np.zeros((4, 4))
    want[3, 0] = 1          # C: 4 steps from offset 0
    want[1, 0] = 1          # E: 2 steps from offset 0
    want[1, 2] = 1          # G: 2 steps from offset 2
    want[0, 3] = 1          # D: 1 step at offset 3
    want[2, 1] = 1          # B: 3 steps from offset 1
    np.testing.assert_allclose(table, want / 5)
    capped = M.rhythm_profile(r, steps_per_beat=4, max_steps=2)     # 3 and 4 steps share the last row
    np.testing.assert_allclose(capped, np.array([[0, 0, 0, 1], [2, 1, 1, 0]]) / 5)
    assert M.rhythm_profile(np.zeros((1, 1, 4, 12), bool), 2).sum() == 0
    with pytest.raises(ValueError, match="steps_per_beat and max_steps should be >= 1"):
        M.rhythm_profile(r, steps_per_beat=0)
