"""Chord symbols, keys and key estimation on pitch classes (0 = C, ..., 11 = B).

Chord symbols follow POP909 / Harte syntax: ``ROOT:QUALITY(EXTENSIONS)/BASS``, e.g. "C:maj7",
"A:min", "G:7/3", "D:sus4(b7)", "Bb:min7/b7", and "N" for no chord ("X" unknown).
"""

from __future__ import annotations

import re

import numpy as np

from symbolic.metrics import chroma

NOTE_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
PC_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]

# quality -> intervals (semitones above the root)
QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "5": (0, 7), "1": (0,),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "minmaj7": (0, 3, 7, 11),
    "dim7": (0, 3, 6, 9), "hdim7": (0, 3, 6, 10), "aug7": (0, 4, 8, 10),
    "maj6": (0, 4, 7, 9), "6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2), "min9": (0, 3, 7, 10, 2),
    "11": (0, 4, 7, 10, 2, 5), "min11": (0, 3, 7, 10, 2, 5), "13": (0, 4, 7, 10, 2, 9),
    "maj13": (0, 4, 7, 11, 2, 9), "min13": (0, 3, 7, 10, 2, 9), "sus4(b7)": (0, 5, 7, 10),
}
DEGREES = {1: 0, 2: 2, 3: 4, 4: 5, 5: 7, 6: 9, 7: 11, 9: 2, 11: 5, 13: 9}

_CHORD_RE = re.compile(r"^([A-G])([#b]*)(?::([^(/]*))?(?:\(([^)]*)\))?(?:/([#b]*\d+))?$")
_DEGREE_RE = re.compile(r"^(\*?)([#b]*)(\d+)$")


def parse_root(text: str) -> int:
    """Pitch class of a note name such as "C", "F#", "Bb", "Cb"; ValueError otherwise."""
    m = re.fullmatch(r"([A-Ga-g])([#b]*)", text.strip())
    if not m:
        raise ValueError(f"not a note name: {text!r}")
    return (NOTE_PC[m.group(1).upper()] + m.group(2).count("#") - m.group(2).count("b")) % 12


def _degree(text: str) -> tuple[bool, int]:
    m = _DEGREE_RE.match(text.strip())
    if not m or int(m.group(3)) not in DEGREES:
        raise ValueError(f"bad chord degree {text!r}")
    return m.group(1) == "*", DEGREES[int(m.group(3))] + m.group(2).count("#") - m.group(2).count("b")


def chord_pitch_classes(symbol: str) -> np.ndarray:
    """Multi-hot pitch classes of a chord symbol: uint8 ``[12]`` (all zeros for "N" / "X").

    The bass of an inversion ("/3", "/b7") is added to the chord's pitch classes.
    Raises ValueError on a symbol it cannot read.
    """
    s = symbol.strip()
    out = np.zeros(12, dtype=np.uint8)
    if s in ("N", "X", ""):
        return out
    m = _CHORD_RE.match(s)
    if not m:
        raise ValueError(f"bad chord symbol {symbol!r}")
    root = parse_root(m.group(1) + m.group(2))
    quality, ext, bass = m.group(3), m.group(4), m.group(5)
    quality = "maj" if quality in (None, "") else quality
    if quality == "sus4" and ext is not None and ext.strip() == "b7":
        quality, ext = "sus4(b7)", None
    if quality not in QUALITIES:
        raise ValueError(f"bad chord quality {quality!r} in {symbol!r}")
    intervals = set(QUALITIES[quality])
    for part in (ext.split(",") if ext else []):
        omit, iv = _degree(part)
        (intervals.discard if omit else intervals.add)(iv % 12)
    if bass:
        intervals.add(_degree(bass)[1] % 12)
    for iv in intervals:
        out[(root + iv) % 12] = 1
    return out


def parse_key(text: str) -> tuple[int, bool]:
    """("C:maj" | "A:min" | "Gb:maj" | "C" | "a minor") -> (tonic pitch class, is_minor); ValueError otherwise."""
    t = text.strip().replace(" ", ":")
    root, _, mode = t.partition(":")
    mode = mode.lower()
    if mode in ("", "maj", "major"):
        return parse_root(root), False
    if mode in ("min", "minor"):
        return parse_root(root), True
    raise ValueError(f"bad key {text!r}")


# Krumhansl-Kessler key profiles (C major, C minor)
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(histogram: np.ndarray) -> tuple[int, bool]:
    """Key from a pitch-class histogram ``[12]`` (e.g. note durations per pitch class) by the
    Krumhansl-Schmuckler method: the best correlation with the 24 rotated Krumhansl-Kessler
    profiles. Returns (tonic pitch class, is_minor); (0, False) for an empty histogram."""
    h = np.asarray(histogram, dtype=np.float64).reshape(12)
    if h.sum() <= 0 or np.allclose(h, h[0]):
        return 0, False
    best = (-2.0, 0, False)
    for minor, prof in ((False, KK_MAJOR), (True, KK_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(h, np.roll(prof, tonic))[0, 1])
            if r > best[0] + 1e-12:
                best = (r, tonic, minor)
    return best[1], best[2]


def transpose_to_c(tonic: int, minor: bool) -> int:
    """Semitones (-6..5) that move the key to C major (or A minor for minor keys)."""
    target = 9 if minor else 0
    return ((target - tonic + 6) % 12) - 6


def key_offset(histogram: np.ndarray) -> int:
    """Semitones (-5..6) by which music with this pitch-class histogram ``[12]`` sits above C major
    / A minor: the opposite of :func:`transpose_to_c` of its :func:`estimate_key`. 0 for an empty
    or flat histogram (no key to tell)."""
    h = np.asarray(histogram, dtype=np.float64).reshape(12)
    if h.sum() <= 0 or np.allclose(h, h[0]):
        return 0
    return -transpose_to_c(*estimate_key(h))


# the chords :func:`estimate_chords` chooses from: major and minor triads on every root, then the
# major, minor and dominant sevenths (which win only where the track sounds the seventh)
_CHORD_TEMPLATES = np.array([[1.0 if (pc - root) % 12 in iv else 0.0 for pc in range(12)]
                    for iv in ((0, 4, 7), (0, 3, 7)) for root in range(12)]
                   + [[1.0 if (pc - root) % 12 in iv else 0.0 for pc in range(12)]
                      for iv in ((0, 4, 7, 11), (0, 3, 7, 10), (0, 4, 7, 10)) for root in range(12)])


def estimate_chords(roll: np.ndarray, lowest_pitch: int, steps_per_beat: int, beats_per_bar: int,
                    beats_per_chord: int = 2, penalty: float = 0.5) -> np.ndarray:
    """Chords for a track that comes without them (a bare melody), from its own notes.

    Every ``beats_per_chord`` beats, the 24 major and minor triads and the 36 major, minor and
    dominant sevenths are scored by the steps the track sounds their tones minus ``penalty`` times
    the steps it sounds other pitch classes; the best one holds for those beats (on a tie the
    first of: major triads, minor triads, then the sevenths, each from the tonic of the track's
    own key up (:func:`key_offset` of all its notes), so that the same melody in another key gets
    the same chords moved with it, except where two keys fit its notes exactly as well (a tune of
    two pitch classes a tritone apart), which :func:`estimate_key` tells apart from C up; and a
    seventh only where the track sounds it). Where the
    track is silent the chord before goes on (before its
    first note: the first chord), as the harmony of a song does not stop where its melody rests;
    a track with no note has no chord.

    Args:
        roll: [bars, steps_per_bar, pitches] (values > 0 sound), a whole song in order.
        lowest_pitch: MIDI pitch of pitch index 0.
    Returns:
        float32 [bars, beats_per_bar, 12] multi-hot chord pitch classes per beat.
    """
    r = np.asarray(roll) > 0
    bars, steps, _ = r.shape
    if steps != steps_per_beat * beats_per_bar or beats_per_bar % beats_per_chord:
        raise ValueError(f"roll: {steps} steps a bar do not make {beats_per_bar} beats of {steps_per_beat} steps "
                         f"in chords of {beats_per_chord} beats")
    weights = chroma(r, lowest_pitch)                                         # [bars, steps, 12]
    seg = weights.reshape(bars, beats_per_bar // beats_per_chord, beats_per_chord * steps_per_beat, 12).sum(2)
    score = seg @ _CHORD_TEMPLATES.T - penalty * (seg @ (1.0 - _CHORD_TEMPLATES).T)  # [bars, segments, chords]
    # ties go to the first chord kind, then the root nearest above the key's tonic (scores are
    # sums of whole steps and halves: exact in floats)
    index = np.arange(len(_CHORD_TEMPLATES))
    tonic = key_offset(weights.sum((0, 1))) % 12
    rank = index // 12 * 12 + (index % 12 - tonic) % 12
    tied = score == score.max(-1, keepdims=True)
    best = np.where(tied, rank, rank.size).argmin(-1).reshape(-1)   # the tied chord of the lowest rank
    sounds = seg.sum(-1).reshape(-1) > 0
    if not sounds.any():
        return np.zeros((bars, beats_per_bar, 12), dtype=np.float32)
    # each silent segment takes the chord of the last sounding one before it (the first after it at the start)
    last = np.maximum.accumulate(np.where(sounds, np.arange(best.size), -1))
    chords = _CHORD_TEMPLATES[best[np.where(last >= 0, last, np.argmax(sounds))]].reshape(bars, -1, 12)
    return np.repeat(chords, beats_per_chord, axis=1).astype(np.float32)


def shift_pitches(roll, k: int):
    """``roll`` [..., pitches] (numpy or torch) moved ``k`` pitches up (down for k < 0): what leaves
    the pitch range is dropped and the pitches that come in are zeros. ``roll`` itself for 0."""
    k = int(k)
    if k == 0:
        return roll
    out = roll.new_zeros(roll.shape) if hasattr(roll, "new_zeros") else np.zeros_like(roll)
    if abs(k) < roll.shape[-1]:
        if k > 0:
            out[..., k:] = roll[..., :-k]
        else:
            out[..., :k] = roll[..., -k:]
    return out
