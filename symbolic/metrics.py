"""Objective metrics of multitrack pianorolls (MuseGAN, Harte et al. 2006, Wu & Yang 2020).

Pure numpy; no torch, no pypianoroll. The pypianoroll 1.0.4 metric functions and MuseGAN's
own chroma group *adjacent* pitches into a "pitch class"; here the pitch class of pitch index
``i`` is always the true one, ``(lowest_pitch + i) % 12`` (MIDI 60 = C = 0).

Layout and conventions
----------------------
- A *set of rolls* is an array of shape ``[N, tracks, bars, steps_per_bar, pitches]``; one
  track of it, ``[N, bars, steps_per_bar, pitches]``, is what the per-track functions take.
  Any non-zero cell is active (bool, 0/1 floats or uint8 velocities). Float arrays holding
  values other than 0 and 1 are refused (binarize probabilities first).
- Pitch index ``i`` is MIDI pitch ``lowest_pitch + i``; time is in grid steps.
- A *note* is a maximal run of consecutive active steps of one pitch within one phrase (runs
  continue across bar lines); when an ``onsets`` array (same shape, bool) is given, an onset
  cell starts a new note even if the step before was active. Drum tracks keep onsets only,
  so for drums every active cell is one hit.
- Empty inputs never raise: a metric whose denominator is empty (no bars, no notes, no
  sounding steps, no pair of bars or tracks to compare) is ``NaN``. Over a set of phrases,
  ratios pool the counts of all phrases (EB, QN, DP, POLY_RATE); per-bar averages (UPC, PCE,
  TD) skip bars where the metric is undefined (empty bars); per-phrase averages (SC, GC)
  skip phrases where it is undefined.

Metrics (names are the keys :func:`evaluate_rolls` returns)
-----------------------------------------------------------
- ``EB``  empty-bar rate: fraction of bars with no active cell. In [0, 1].
- ``UPC`` used pitch classes per bar: number of distinct true pitch classes sounding in a
  bar, averaged over non-empty bars. In [1, 12].
- ``QN``  qualified-note rate: fraction of notes lasting at least ``qn_min_steps`` steps.
  MuseGAN uses 3 steps at 96 steps a bar (1/32 bar); at 16 steps a bar that bound is half a
  step and every note would qualify, so the default is
  ``max(2, ceil(steps_per_bar / 32))`` steps: MuseGAN's 3 at 96 steps a bar, 2 at 48, and 2
  at 16 steps a bar, where a one-step note (a lone 16th, the typical GAN fragment) is not
  qualified.
- ``DP``  drum-pattern rate (drums only): hits weighted by their position in the beat, over
  the number of hits, with MuseGAN's masks (:func:`drum_pattern_weights`): a hit on the
  pattern's grid weighs 1 (the 8th note at 4 steps a beat, the 16th note at 8, 12, 16 and 24),
  one a step off it ``dp_tolerance`` (0.1, MuseGAN's value; at 4 steps a beat the mask is
  ``[1, 0.1, 1, 0.1]``), any other position 0. ``dp_tolerance=0`` gives the plain fraction
  of hits on the grid.
- ``POLY`` mean number of pitches sounding per sounding step (steps with >= 1 pitch).
- ``POLY_RATE`` fraction of sounding steps with >= 2 pitches.
- ``PCE`` pitch-class entropy per bar, in bits (0 to log2(12) = 3.585): Shannon entropy of
  the duration-weighted pitch-class histogram (active cells per pitch class) of a bar,
  averaged over non-empty bars.
- ``SC``  scale consistency: per phrase, the largest fraction of its notes (counted by note,
  not by duration) whose pitch class is in one of the 24 major / natural-minor scales;
  averaged over phrases with notes. In (0, 1].
- ``GC``  groove consistency (Wu & Yang 2020): per phrase, ``1 - mean`` over all pairs of
  its bars that hold at least one onset of the Hamming distance between their binary onset
  patterns (length steps_per_bar) divided by steps_per_bar; averaged over phrases with at
  least two such bars. In [0, 1].
- ``TD``  tonal distance between two tracks: per bar where both tracks sound, the Euclidean
  distance between the 6-D tonal centroids (Harte, Sandler & Gasser 2006; radii 1 for
  fifths, 1 for minor thirds, 0.5 for major thirds) of their L1-normalised,
  duration-weighted chroma; averaged over those bars. In [0, 2*sqrt(2.25)] = [0, 3].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TRACK_METRICS = ("EB", "UPC", "QN", "POLY", "POLY_RATE", "PCE", "SC", "GC")
"""Metrics computed for a pitched (non-drum) track, in table order."""
DRUM_METRICS = ("EB", "POLY", "POLY_RATE", "DP", "GC")
"""Metrics computed for a drum track, in table order."""
PAIR_METRICS = ("TD",)
"""Metrics computed for each pair of pitched tracks (under the key ``"pairs"``)."""

METRIC_DESCRIPTIONS = {
    "EB": "empty-bar rate",
    "UPC": "used pitch classes per non-empty bar",
    "QN": "qualified-note rate",
    "DP": "drum-pattern rate",
    "POLY": "pitches per sounding step",
    "POLY_RATE": "rate of sounding steps with >= 2 pitches",
    "PCE": "pitch-class entropy per bar (bits)",
    "SC": "scale consistency",
    "GC": "groove consistency",
    "TD": "tonal distance between tracks",
}

PAIRS_KEY = "pairs"

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)  # natural minor


# --------------------------------------------------------------------------- helpers

def _as_active(roll: Any, ndim: int, name: str = "roll") -> np.ndarray:
    """Return ``roll != 0`` as a bool array, checking its number of dimensions."""
    arr = np.asarray(roll)
    if arr.ndim != ndim:
        layout = ("[N, bars, steps_per_bar, pitches]" if ndim == 4
                  else "[N, tracks, bars, steps_per_bar, pitches]")
        raise ValueError(f"{name} should have {ndim} dimensions {layout}, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} holds values other than 0 and 1: binarize probabilities first")
    elif arr.dtype.kind not in "biu":
        raise ValueError(f"{name} should be a bool or numeric array, got dtype {arr.dtype}")
    return arr != 0


def _check_onsets(onsets: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if onsets is None:
        return None
    arr = np.asarray(onsets) != 0
    if arr.shape != shape:
        raise ValueError(f"onsets should have the roll's shape {shape}, got {arr.shape}")
    return arr


def pitch_class_matrix(n_pitches: int, lowest_pitch: int) -> np.ndarray:
    """One-hot map from pitch index to true pitch class.

    Returns:
        Float array of shape [n_pitches, 12]; row ``i`` is one-hot at
        ``(lowest_pitch + i) % 12``.
    """
    classes = (int(lowest_pitch) + np.arange(n_pitches)) % 12
    return np.eye(12)[classes]


def chroma(weights: Any, lowest_pitch: int) -> np.ndarray:
    """Sum per-pitch weights into true pitch classes.

    Args:
        weights: array of shape [..., pitches]: activity (bool / 0-1) or counts of active
            cells (e.g. a roll summed over its steps, which gives a duration-weighted chroma).
        lowest_pitch: MIDI pitch of pitch index 0.
    Returns:
        Float array of shape [..., 12].
    """
    w = np.asarray(weights, dtype=np.float64)
    return w @ pitch_class_matrix(w.shape[-1], lowest_pitch)


def qualified_min_steps(steps_per_bar: int) -> int:
    """Default shortest qualified note, in steps: ``max(2, ceil(steps_per_bar / 32))``."""
    return max(2, math.ceil(int(steps_per_bar) / 32))


def note_spans(roll: Any, onsets: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Notes of one track as maximal runs of active steps (split at given onsets).

    Args:
        roll: [N, bars, steps_per_bar, pitches]; non-zero = active.
        onsets: optional bool array of the same shape; an onset starts a new note.
    Returns:
        ``(phrase, pitch_index, start, length)``, int arrays of shape [notes]; ``start`` is in
        steps from the phrase start (``bar * steps_per_bar + step``), ``length`` in steps.
    """
    active = _as_active(roll, 4)
    ons = _check_onsets(onsets, active.shape)
    n, bars, steps, pitches = active.shape
    a = active.reshape(n, bars * steps, pitches).transpose(0, 2, 1)  # [N, P, T]
    prev = np.zeros_like(a)
    prev[..., 1:] = a[..., :-1]
    nxt = np.zeros_like(a)
    nxt[..., :-1] = a[..., 1:]
    if ons is not None:
        o = ons.reshape(n, bars * steps, pitches).transpose(0, 2, 1)
        o_next = np.zeros_like(o)
        o_next[..., :-1] = o[..., 1:]
        starts = a & (~prev | o)
        ends = a & (~nxt | o_next)
    else:
        starts = a & ~prev
        ends = a & ~nxt
    s_n, s_p, s_t = np.nonzero(starts)
    _, _, e_t = np.nonzero(ends)  # same (phrase, pitch, time) order: one end per start
    return s_n, s_p, s_t, e_t - s_t + 1


def _onset_cells(active: np.ndarray, onsets: np.ndarray | None, is_drum: bool) -> np.ndarray:
    """Bool [N, bars, steps, pitches]: where a note (or, for drums, a hit) starts."""
    if is_drum:
        return active
    n, bars, steps, pitches = active.shape
    s_n, s_p, s_t, _ = note_spans(active, onsets)
    out = np.zeros((n, bars * steps, pitches), dtype=bool)
    out[s_n, s_t, s_p] = True
    return out.reshape(active.shape)


def _safe_ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def _mean_or_nan(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else float("nan")


# --------------------------------------------------------------------------- per-track metrics

def empty_bar_rate(roll: Any) -> float:
    """EB: fraction of bars with no active cell.

    Args:
        roll: [N, bars, steps_per_bar, pitches].
    Returns:
        In [0, 1]; NaN when there are no bars.
    """
    active = _as_active(roll, 4)
    n, bars = active.shape[:2]
    empty = ~active.any(axis=(2, 3))
    return _safe_ratio(empty.sum(), empty.size)


def used_pitch_classes(roll: Any, lowest_pitch: int) -> float:
    """UPC: distinct true pitch classes per non-empty bar, averaged over non-empty bars.

    Args:
        roll: [N, bars, steps_per_bar, pitches]; lowest_pitch: MIDI pitch of index 0.
    Returns:
        In [1, 12]; NaN when every bar is empty.
    """
    active = _as_active(roll, 4)
    per_bar = chroma(active.any(axis=2), lowest_pitch) > 0  # [N, bars, 12]
    used = per_bar.sum(axis=-1)
    return _mean_or_nan(used[used > 0])


def qualified_note_rate(roll: Any, min_steps: int, onsets: Any = None) -> float:
    """QN: fraction of notes lasting at least ``min_steps`` steps.

    Args:
        roll: [N, bars, steps_per_bar, pitches]; onsets: optional, same shape.
        min_steps: shortest qualified note in steps (see :func:`qualified_min_steps`).
    Returns:
        In [0, 1]; NaN when there is no note.
    """
    if int(min_steps) < 1:
        raise ValueError(f"min_steps should be >= 1, got {min_steps}")
    _, _, _, length = note_spans(roll, onsets)
    return _safe_ratio((length >= int(min_steps)).sum(), length.size)


def rhythm_profile(roll: Any, steps_per_beat: int, max_steps: int = 5, onsets: Any = None) -> np.ndarray:
    """Share of one track's notes by length and by where in the beat they start.

    Not one of the issue's metrics: a diagnostic of what QN and POLY_RATE summarise (whole-beat
    notes against eighth-note lines, say).

    Args:
        roll: [N, bars, steps_per_bar, pitches]; onsets: optional, same shape (see :func:`note_spans`).
        steps_per_beat: steps in a beat (the start offset is ``start % steps_per_beat``).
        max_steps: lengths of ``max_steps`` steps or more share the last row.
    Returns:
        Float array [max_steps, steps_per_beat]: row ``L - 1`` and column ``j`` hold the fraction
        of all notes that last ``L`` steps (the last row: at least ``max_steps``) and start ``j``
        steps after a beat; it sums to 1 (all zeros when there is no note).
    """
    if int(steps_per_beat) < 1 or int(max_steps) < 1:
        raise ValueError(f"steps_per_beat and max_steps should be >= 1, got {steps_per_beat} and {max_steps}")
    _, _, start, length = note_spans(roll, onsets)
    table = np.zeros((int(max_steps), int(steps_per_beat)))
    np.add.at(table, (np.minimum(length, max_steps) - 1, start % steps_per_beat), 1.0)
    return table / max(len(length), 1)


TEXTURE_BINS = (0.25, 0.5, 0.75)
"""Upper edges of :func:`texture_profile`'s middle bins (the last runs to 1 inclusive)."""


def texture_profile(roll: Any, bins: tuple[float, ...] = TEXTURE_BINS) -> np.ndarray:
    """How one track's sounding bars split between single notes and chords.

    Not one of the issue's metrics: a diagnostic of what POLY_RATE averages. For each bar with
    a note, its chord-step rate is the share of its sounding steps that sound two or more
    pitches. Returns float [len(bins) + 2]: the share of sounding bars whose rate is exactly 0
    (single-note bars), then in ``(0, bins[0])``, ``[bins[0], bins[1])``, ... and
    ``[bins[-1], 1]``; it sums to 1 (all zeros when no bar sounds).

    Args:
        roll: [N, bars, steps_per_bar, pitches] (nonzero = sounding).
        bins: increasing edges inside (0, 1).
    """
    edges = [float(b) for b in bins]
    if any(not 0 < b < 1 for b in edges) or edges != sorted(set(edges)):
        raise ValueError(f"bins: expected increasing edges inside (0, 1), got {list(bins)}")
    x = _as_active(roll, 4)
    count = x.sum(-1)                                        # [N, B, S] pitches a step
    sounding = (count > 0).sum(-1)                           # [N, B]
    rate = (count > 1).sum(-1)[sounding > 0] / sounding[sounding > 0]
    out = np.zeros(len(edges) + 2)
    if rate.size == 0:
        return out
    out[0] = np.mean(rate == 0)
    out[1:] = np.histogram(rate[rate > 0], bins=[0.0, *edges, 1.0])[0] / rate.size
    return out


DP_PATTERN_STEPS = {4: 2, 6: 3, 8: 2, 9: 3, 12: 3, 16: 4, 18: 6, 24: 6}
"""Steps per beat -> steps between the grid positions DP weighs 1, as MuseGAN's masks have them
(pypianoroll 1.0.4's ``drum_in_pattern_rate``, by its author): the 8th note at 4 steps a beat
(its 16-steps-a-bar mask ``[1, tol] * 8``), the 16th note at 8, 12, 16 and 24, the 8th note at
6, and the third of a beat at 9 and 18."""


def drum_pattern_weights(steps_per_beat: int, beats_per_bar: int, tolerance: float = 0.1) -> np.ndarray:
    """Weight of a drum hit at each step of a bar for DP, MuseGAN's mask.

    1 on the pattern's grid (every :data:`DP_PATTERN_STEPS` steps; for a resolution MuseGAN has
    no mask for, the 16th note when 4 divides the steps a beat, else the 8th note when 2 does,
    else the beat), ``tolerance`` one step before or after it, else 0. At 24 steps a beat (96 a
    bar) that is MuseGAN's ``[1, tol, 0, 0, 0, tol] * 16``; at 4 steps a beat ``[1, tol] * 8``.

    Returns:
        Float array of shape [steps_per_beat * beats_per_bar].
    """
    r = int(steps_per_beat)
    unit = DP_PATTERN_STEPS.get(r) or (r // 4 if r % 4 == 0 else r // 2 if r % 2 == 0 else r)
    pos = np.arange(r) % unit
    w = np.where(pos == 0, 1.0, np.where((pos == 1) | (pos == unit - 1), float(tolerance), 0.0))
    return np.tile(w, int(beats_per_bar))


def drum_pattern_rate(roll: Any, steps_per_beat: int, beats_per_bar: int, tolerance: float = 0.1) -> float:
    """DP: position-weighted fraction of drum hits on the pattern grid (:func:`drum_pattern_weights`).

    Args:
        roll: [N, bars, steps_per_bar, pitches]; every active cell is one hit.
        steps_per_beat, beats_per_bar: the grid (steps_per_bar must be their product).
        tolerance: weight of a hit one step off the grid (MuseGAN: 0.1).
    Returns:
        In [0, 1]; NaN when there is no hit.
    """
    active = _as_active(roll, 4)
    steps = active.shape[2]
    if steps != steps_per_beat * beats_per_bar:
        raise ValueError(f"roll has {steps} steps a bar, the grid {steps_per_beat} x {beats_per_bar}")
    hits_per_step = active.sum(axis=(0, 1, 3)).astype(np.float64)  # [steps]
    weights = drum_pattern_weights(steps_per_beat, beats_per_bar, tolerance)
    return _safe_ratio((hits_per_step * weights).sum(), hits_per_step.sum())


def key_hits(roll: Any) -> np.ndarray:
    """A drum track's hits on each key (pitch row): int [pitches]. Every active cell is one hit,
    as for DP.

    Args:
        roll: [N, bars, steps_per_bar, pitches].
    """
    return _as_active(roll, 4).sum(axis=(0, 1, 2))


def share_distance(hits_a: Any, hits_b: Any) -> float:
    """The total variation distance between two counts of hits by key (float [pitches] each):
    half the sum of the absolute differences of their shares; NaN when either has no hit."""
    a, b = np.asarray(hits_a, dtype=np.float64), np.asarray(hits_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the rolls have {a.shape[-1]} and {b.shape[-1]} pitches")
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())


def kit_distance(roll_a: Any, roll_b: Any) -> float:
    """How differently two drum rolls use the kit: the total variation distance between the shares
    of their :func:`key_hits` (:func:`share_distance`), half the sum of the shares' absolute
    differences. 0 when every key has the same share of hits, 1 when no key is shared; NaN when either roll has no hit. The drum metrics
    of :data:`DRUM_METRICS` do not see which drum plays: a closed hi-hat played as a ride scores
    the same there, not here."""
    return share_distance(key_hits(roll_a), key_hits(roll_b))


def polyphony(roll: Any) -> tuple[float, float]:
    """POLY and POLY_RATE over the steps where at least one pitch sounds.

    Args:
        roll: [N, bars, steps_per_bar, pitches].
    Returns:
        ``(mean pitches per sounding step, fraction of sounding steps with >= 2 pitches)``;
        both NaN when nothing sounds.
    """
    active = _as_active(roll, 4)
    count = active.sum(axis=-1)
    sounding = count[count > 0]
    if sounding.size == 0:
        return float("nan"), float("nan")
    return float(sounding.mean()), float((sounding >= 2).mean())


def _entropy_bits(hist: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of a non-negative histogram [..., K] (sum > 0)."""
    p = hist / hist.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=-1)


def pitch_class_entropy(roll: Any, lowest_pitch: int) -> float:
    """PCE: entropy (bits) of each non-empty bar's duration-weighted pitch-class histogram.

    Args:
        roll: [N, bars, steps_per_bar, pitches]; lowest_pitch: MIDI pitch of index 0.
    Returns:
        Mean over non-empty bars, in [0, log2 12]; NaN when every bar is empty.
    """
    active = _as_active(roll, 4)
    hist = chroma(active.sum(axis=2), lowest_pitch)  # [N, bars, 12]
    hist = hist[hist.sum(axis=-1) > 0]
    return _mean_or_nan(_entropy_bits(hist)) if hist.size else float("nan")


def scale_masks() -> np.ndarray:
    """The 24 scales (12 major, then 12 natural minor, tonic C first) as bool [24, 12]."""
    masks = np.zeros((24, 12), dtype=bool)
    for tonic in range(12):
        masks[tonic, [(tonic + s) % 12 for s in MAJOR_STEPS]] = True
        masks[12 + tonic, [(tonic + s) % 12 for s in MINOR_STEPS]] = True
    return masks


def scale_consistency(roll: Any, lowest_pitch: int, onsets: Any = None) -> float:
    """SC: per phrase, the best fraction of notes inside one major / minor scale.

    Args:
        roll: [N, bars, steps_per_bar, pitches]; onsets: optional, same shape.
        lowest_pitch: MIDI pitch of index 0.
    Returns:
        Mean over phrases that hold a note; NaN when no phrase does.
    """
    active = _as_active(roll, 4)
    s_n, s_p, _, _ = note_spans(active, onsets)
    n = active.shape[0]
    counts = np.zeros((n, 12))
    np.add.at(counts, (s_n, (int(lowest_pitch) + s_p) % 12), 1.0)
    total = counts.sum(axis=-1)
    has = total > 0
    if not has.any():
        return float("nan")
    in_scale = counts[has] @ scale_masks().T.astype(np.float64)  # [n_has, 24]
    return float((in_scale.max(axis=-1) / total[has]).mean())


def groove_consistency(roll: Any, onsets: Any = None, is_drum: bool = False) -> float:
    """GC (Wu & Yang 2020): 1 - mean normalised Hamming distance of bar onset patterns.

    A bar's onset pattern is bool [steps_per_bar]: True where any note starts (for drums,
    where any hit is). Per phrase, pairs of bars holding at least one onset are compared.

    Args:
        roll: [N, bars, steps_per_bar, pitches]; onsets: optional, same shape.
        is_drum: every active cell is a hit.
    Returns:
        Mean over phrases with >= 2 bars holding onsets, in [0, 1]; NaN when there are none.
    """
    active = _as_active(roll, 4)
    ons = _check_onsets(onsets, active.shape)
    steps = active.shape[2]
    pattern = _onset_cells(active, ons, is_drum).any(axis=-1)  # [N, bars, steps]
    values = []
    for bars in pattern:
        bars = bars[bars.any(axis=-1)]
        k = bars.shape[0]
        if k < 2:
            continue
        dist = (bars[:, None, :] != bars[None, :, :]).sum(axis=-1) / steps  # [k, k]
        iu = np.triu_indices(k, 1)
        values.append(1.0 - dist[iu].mean())
    return _mean_or_nan(np.array(values))


# --------------------------------------------------------------------------- tonal distance

def tonal_centroid_matrix() -> np.ndarray:
    """Harte et al. (2006) 6-D tonal space: float [6, 12], columns are pitch classes.

    Rows: circle of fifths (r=1), of minor thirds (r=1), of major thirds (r=0.5), each as
    (sin, cos) of ``l * 7pi/6``, ``l * 3pi/2``, ``l * 2pi/3``.
    """
    pcs = np.arange(12)
    rows = []
    for radius, angle in ((1.0, 7 * np.pi / 6), (1.0, 3 * np.pi / 2), (0.5, 2 * np.pi / 3)):
        rows.append(radius * np.sin(pcs * angle))
        rows.append(radius * np.cos(pcs * angle))
    return np.stack(rows)


def tonal_centroid(chroma_vectors: Any) -> np.ndarray:
    """Tonal centroid of chroma vectors [..., 12] (any non-negative weights, sum > 0) -> [..., 6]."""
    c = np.asarray(chroma_vectors, dtype=np.float64)
    c = c / c.sum(axis=-1, keepdims=True)
    return c @ tonal_centroid_matrix().T


def tonal_distance(roll_a: Any, roll_b: Any, lowest_pitch: int) -> float:
    """TD: mean Euclidean distance of per-bar tonal centroids of two tracks.

    Args:
        roll_a, roll_b: [N, bars, steps_per_bar, pitches], same shape (one track each).
        lowest_pitch: MIDI pitch of index 0.
    Returns:
        Mean over bars where both tracks sound; NaN when there is none.
    """
    a = _as_active(roll_a, 4, "roll_a")
    b = _as_active(roll_b, 4, "roll_b")
    if a.shape != b.shape:
        raise ValueError(f"tracks differ in shape: {a.shape} vs {b.shape}")
    ca = chroma(a.sum(axis=2), lowest_pitch).reshape(-1, 12)
    cb = chroma(b.sum(axis=2), lowest_pitch).reshape(-1, 12)
    both = (ca.sum(axis=-1) > 0) & (cb.sum(axis=-1) > 0)
    if not both.any():
        return float("nan")
    d = np.linalg.norm(tonal_centroid(ca[both]) - tonal_centroid(cb[both]), axis=-1)
    return float(d.mean())


def chord_tone_rate(roll: Any, chords: Any, has_chords: Any, lowest_pitch: int) -> float:
    """CT: share of a track's sounding cells whose pitch class belongs to the chord of their beat.

    Args:
        roll: [N, bars, steps_per_bar, pitches] one track.
        chords: [N, bars, beats_per_bar, 12] multi-hot chord pitch classes of every beat.
        has_chords: bool [N], which phrases have chord annotations.
        lowest_pitch: MIDI pitch of index 0.
    Returns:
        Over the cells of annotated phrases on beats with a chord ("N" beats and phrases without
        annotations do not count); NaN when no such cell sounds.
    """
    a = _as_active(roll, 4, "roll")
    c = np.asarray(chords) > 0
    n, bars, steps, pitches = a.shape
    if c.ndim != 4 or c.shape[:2] != (n, bars) or c.shape[3] != 12 or steps % c.shape[2]:
        raise ValueError(f"chords: expected [{n}, {bars}, beats, 12] with beats dividing {steps} steps, "
                         f"got {list(c.shape)}")
    per_step = np.repeat(c, steps // c.shape[2], axis=2)                      # [N, bars, steps, 12]
    pcs = (int(lowest_pitch) + np.arange(pitches)) % 12
    tone = per_step[..., pcs]                                                 # [N, bars, steps, pitches]
    counted = a & per_step.any(-1, keepdims=True) & np.asarray(has_chords, dtype=bool).reshape(n, 1, 1, 1)
    total = int(counted.sum())
    return float((counted & tone).sum()) / total if total else float("nan")


# --------------------------------------------------------------------------- all at once

def _grid_value(grid: Any, key: str) -> int:
    value = grid.get(key) if isinstance(grid, Mapping) else getattr(grid, key, None)
    if value is None:
        raise ValueError(f"grid has no '{key}'")
    return int(value)


def evaluate_rolls(rolls: Any, track_names: Sequence[str], is_drum: Sequence[bool], grid: Any,
                   onsets: Any = None, qn_min_steps: int | None = None,
                   dp_tolerance: float = 0.1) -> dict[str, dict[str, float]]:
    """Every metric for every track of a set of phrases.

    Args:
        rolls: [N, tracks, bars, steps_per_bar, pitches], non-zero = active.
        track_names: one name per track.
        is_drum: one flag per track.
        grid: a ``symbolic.roll.Grid`` or a mapping (``meta.json``'s "grid") with
            ``steps_per_beat``, ``beats_per_bar`` and ``lowest_pitch`` (and optionally
            ``n_pitches``, checked against the roll).
        onsets: optional bool array of the rolls' shape.
        qn_min_steps: shortest qualified note in steps; default
            :func:`qualified_min_steps` of the grid.
        dp_tolerance: DP weight of a hit one step off the pattern grid (:func:`drum_pattern_weights`).
    Returns:
        ``{track: {metric: value}}`` with :data:`TRACK_METRICS` for pitched tracks and
        :data:`DRUM_METRICS` for drum tracks, plus ``result["pairs"]["a/b"] = {"TD": value}``
        for each pair of pitched tracks ``a`` before ``b``. Undefined values are NaN.
    """
    active = _as_active(rolls, 5, "rolls")
    ons = _check_onsets(onsets, active.shape)
    n_tracks = active.shape[1]
    names = [str(t) for t in track_names]
    drums = [bool(d) for d in is_drum]
    if len(names) != n_tracks or len(drums) != n_tracks:
        raise ValueError(f"rolls have {n_tracks} tracks, got {len(names)} names and {len(drums)} drum flags")
    if len(set(names)) != len(names) or PAIRS_KEY in names:
        raise ValueError(f"track names should be unique and not '{PAIRS_KEY}': {names}")
    spb = _grid_value(grid, "steps_per_beat")
    bpb = _grid_value(grid, "beats_per_bar")
    low = _grid_value(grid, "lowest_pitch")
    if active.shape[3] != spb * bpb:
        raise ValueError(f"rolls have {active.shape[3]} steps a bar, the grid {spb} x {bpb} = {spb * bpb}")
    n_pitches = grid.get("n_pitches") if isinstance(grid, Mapping) else getattr(grid, "n_pitches", None)
    if n_pitches is not None and active.shape[4] != int(n_pitches):
        raise ValueError(f"rolls have {active.shape[4]} pitches, the grid {n_pitches}")
    min_steps = qualified_min_steps(spb * bpb) if qn_min_steps is None else int(qn_min_steps)

    result: dict[str, dict[str, float]] = {}
    for t, (name, drum) in enumerate(zip(names, drums)):
        roll = active[:, t]
        track_ons = None if ons is None else ons[:, t]
        poly, poly_rate = polyphony(roll)
        values = {"EB": empty_bar_rate(roll), "POLY": poly, "POLY_RATE": poly_rate,
                  "GC": groove_consistency(roll, track_ons, is_drum=drum)}
        if drum:
            values["DP"] = drum_pattern_rate(roll, spb, bpb, dp_tolerance)
            order = DRUM_METRICS
        else:
            values["UPC"] = used_pitch_classes(roll, low)
            values["QN"] = qualified_note_rate(roll, min_steps, track_ons)
            values["PCE"] = pitch_class_entropy(roll, low)
            values["SC"] = scale_consistency(roll, low, track_ons)
            order = TRACK_METRICS
        result[name] = {k: values[k] for k in order}
    pairs: dict[str, dict[str, float]] = {}
    pitched = [t for t in range(n_tracks) if not drums[t]]
    for i, ta in enumerate(pitched):
        for tb in pitched[i + 1:]:
            pairs[f"{names[ta]}/{names[tb]}"] = {"TD": tonal_distance(active[:, ta], active[:, tb], low)}
    result[PAIRS_KEY] = pairs
    return result
