"""The mixer: stems -> a mix with per-track volume and pan, loudness-normalised and limited.

Steps of :func:`master`:

1. Each stem is scaled by its volume (dB) and, when any track has a pan, placed in stereo with
   an equal-power pan law (``left = cos((pan + 1) * pi / 4)``, ``right = sin(...)``; centre
   gives -3 dB in each channel). Without pans the mix is mono.
2. Loudness normalisation to ``target_db`` (default -16 dBFS) of *gated RMS loudness*
   (:func:`loudness_db`): the mean power of 400 ms blocks (75 % overlap) that pass an absolute
   gate of -70 dBFS and a relative gate 10 dB below the mean of those, as ITU-R BS.1770's
   gating but without its K-weighting filter; channels' powers are summed. For broadband music
   it reads within a few dB of LUFS.
3. A look-ahead peak limiter (:func:`limit`) keeps every sample within ``ceiling_db``
   (default -1 dBFS, the headroom). Gain is computed from the peaks ahead, so the gain
   reduction ramps down *before* a peak and back up after it (no clicks, no clipping). Steps 2-3
   are repeated once so heavy limiting does not leave the mix far below the target.

Arrays are float32 ``[channels, samples]``; :func:`write_wav` writes them atomically with
soundfile (PCM_16 WAV by default, FLAC on request).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from pipeline.errors import UserError
from pipeline.fileio import atomic_path

TARGET_DB = -16.0
CEILING_DB = -1.0
LOOKAHEAD_S = 0.005
BLOCK_S = 0.4
BLOCK_OVERLAP = 0.75
ABSOLUTE_GATE_DB = -70.0
RELATIVE_GATE_DB = -10.0
#: Below this peak (-120 dBFS) a mix is silence: :func:`master_with_gain` leaves it as it is.
SILENCE_PEAK = 1e-6


def db_to_gain(db: float) -> float:
    """Amplitude gain of ``db`` decibels."""
    return float(10.0 ** (db / 20.0))


def pan_gains(pan: float | None) -> tuple[float, float]:
    """(left, right) equal-power gains of ``pan`` in [-1, 1] (None = centre)."""
    p = 0.0 if pan is None else float(np.clip(pan, -1.0, 1.0))
    angle = (p + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))


def mix_stems(stems: np.ndarray, volumes_db: Sequence[float] | None = None,
              pans: Sequence[float | None] | None = None) -> np.ndarray:
    """Sum stems with their volumes (and pans).

    Args:
        stems: float array [n_stems, samples].
        volumes_db: gain of each stem in dB (default 0).
        pans: pan of each stem in [-1, 1] or None; if every pan is None (or ``pans`` is None) the
            mix is mono.

    Returns:
        float32 [1, samples] (mono) or [2, samples] (stereo).
    """
    stems = np.asarray(stems, dtype=np.float32)
    if stems.ndim != 2:
        raise ValueError(f"stems should have shape [n_stems, samples], got {stems.shape}")
    n = stems.shape[0]
    volumes_db = [0.0] * n if volumes_db is None else list(volumes_db)
    if len(volumes_db) != n:
        raise ValueError(f"{len(volumes_db)} volumes for {n} stems")
    gains = np.array([db_to_gain(v) for v in volumes_db], dtype=np.float32)
    if pans is None or all(p is None for p in pans):
        return (gains @ stems)[None].astype(np.float32)
    if len(pans) != n:
        raise ValueError(f"{len(pans)} pans for {n} stems")
    lr = np.array([pan_gains(p) for p in pans], dtype=np.float32)  # [n, 2]
    return ((lr * gains[:, None]).T @ stems).astype(np.float32)


def loudness_db(audio: np.ndarray, sample_rate: int) -> float:
    """Gated RMS loudness in dBFS of float audio [channels, samples] (see the module docstring).

    A full-scale sine reads -3.0 dB; silence reads -inf.
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    power = (audio ** 2).sum(axis=0)  # [samples]
    block = max(1, int(round(BLOCK_S * sample_rate)))
    step = max(1, int(round(block * (1 - BLOCK_OVERLAP))))
    if power.size <= block:
        blocks = np.array([power.mean()]) if power.size else np.array([0.0])
    else:
        c = np.concatenate([[0.0], np.cumsum(power)])
        starts = np.arange(0, power.size - block + 1, step)
        blocks = (c[starts + block] - c[starts]) / block
    gated = blocks[blocks > 10 ** (ABSOLUTE_GATE_DB / 10)]
    if gated.size == 0:
        return float("-inf")
    rel = gated.mean() * 10 ** (RELATIVE_GATE_DB / 10)
    gated = gated[gated > rel]
    return float(10 * np.log10(gated.mean()))


def limit(audio: np.ndarray, sample_rate: int, ceiling_db: float = CEILING_DB,
          lookahead_s: float = LOOKAHEAD_S) -> np.ndarray:
    """Look-ahead peak limiter: no sample of the result exceeds ``ceiling_db`` in magnitude.

    The gain needed at each sample (``ceiling / peak`` over channels, at most 1) is turned into
    a smooth gain curve: a minimum over +-L samples (L = look-ahead) followed by a moving average
    over L + 1 samples. Every sample of that average is a minimum over a window that contains
    the sample itself, so the gain never exceeds what the sample needs.

    Args:
        audio: float [channels, samples] (or [samples]).

    Returns:
        float32 array of the same shape.
    """
    x = np.asarray(audio, dtype=np.float32)
    squeeze = x.ndim == 1
    x2 = np.atleast_2d(x)
    g = limiter_gain(x2, sample_rate, ceiling_db, lookahead_s)
    if g is None:
        out = x2.copy()
    else:
        ceiling = db_to_gain(ceiling_db)
        out = (x2 * g[None]).astype(np.float32)
        out = np.clip(out, -ceiling, ceiling)  # guards float32 rounding only
    return out[0] if squeeze else out


def limiter_gain(audio: np.ndarray, sample_rate: int, ceiling_db: float = CEILING_DB,
                 lookahead_s: float = LOOKAHEAD_S) -> np.ndarray | None:
    """The gain curve float64 ``[samples]`` that :func:`limit` applies to ``audio`` float
    ``[channels, samples]`` (shared by the channels), or None where no sample needs limiting."""
    peak = np.abs(np.atleast_2d(audio)).max(axis=0)
    need = np.minimum(1.0, db_to_gain(ceiling_db) / np.maximum(peak, 1e-12)).astype(np.float64)
    if need.min() >= 1.0:
        return None
    L = max(1, int(round(lookahead_s * sample_rate)))
    g = minimum_filter1d(need, size=2 * L + 1, mode="nearest")
    g = uniform_filter1d(g, size=L + 1, mode="nearest")
    return np.minimum(g, need)  # float rounding of the average


def master(mix: np.ndarray, sample_rate: int, target_db: float = TARGET_DB,
           ceiling_db: float = CEILING_DB, passes: int = 2) -> np.ndarray:
    """Loudness-normalise to ``target_db`` then limit to ``ceiling_db`` (repeated ``passes`` times).

    Args:
        mix: float [channels, samples].

    Returns:
        float32 [channels, samples] with ``max |x| <= 10 ** (ceiling_db / 20)``. Silence stays
        silence.
    """
    return master_with_gain(mix, sample_rate, target_db, ceiling_db, passes)[0]


def master_with_gain(mix: np.ndarray, sample_rate: int, target_db: float = TARGET_DB,
                     ceiling_db: float = CEILING_DB, passes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """:func:`master`, also returning the gain it applied at each sample, float64 ``[samples]``:
    its passes' loudness gains times the limiter's reductions. The stems of the mix, each scaled
    by that curve, add up to the mastered mix. Silence (a peak under ``SILENCE_PEAK``):
    ``(mix, ones)``. A mix too quiet for the loudness gate (every track turned far down) is first
    raised to the ceiling, then measured."""
    out = np.atleast_2d(np.asarray(mix, dtype=np.float32))
    total = np.ones(out.shape[1])
    ceiling = db_to_gain(ceiling_db)
    for _ in range(max(1, passes)):
        level = loudness_db(out, sample_rate)
        if not np.isfinite(level):
            peak = float(np.abs(out).max()) if out.size else 0.0
            raised = out * (ceiling / peak) if peak >= SILENCE_PEAK else out
            level = loudness_db(raised, sample_rate)
            if not np.isfinite(level):  # silence: nothing to normalise
                return out.astype(np.float32), total
            out = raised
            total *= ceiling / peak
        gain = db_to_gain(target_db - level)
        out = out * gain
        total *= gain
        g = limiter_gain(out, sample_rate, ceiling_db)
        if g is not None:
            out = np.clip((out * g[None]).astype(np.float32), -ceiling, ceiling)
            total *= g
    return out.astype(np.float32), total


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, flac: bool = False,
              subtype: str = "PCM_16") -> None:
    """Write float audio [channels, samples] (or [samples]) atomically: WAV (``subtype``) or FLAC.

    Integer samples read back no louder than the floats' peak: samples within one step of the
    peak are clipped to the last whole step under it (libsndfile scales negative samples by
    2**15 and rounds, so a mastered -1 dBFS peak read back at -0.99985 dBFS)."""
    import soundfile as sf

    # a NaN (a bug upstream) is written as silence: clipped as it is, libsndfile writes it at -1
    data = np.clip(np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0), -1.0, 1.0)
    data = data.T if data.ndim == 2 else data  # soundfile wants [samples, channels]
    fmt = "FLAC" if flac else "WAV"
    if flac and subtype not in ("PCM_16", "PCM_24", "PCM_S8"):
        subtype = "PCM_16"
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_S8": 8, "PCM_U8": 8}.get(subtype)
    if bits and data.size:
        steps = float(2 ** (bits - 1))
        top = np.float32(np.floor(float(np.abs(data).max()) * steps) / steps)
        data = np.clip(data, -top, top)
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), data, int(sample_rate), subtype=subtype, format=fmt)
        except sf.SoundFileError as exc:   # libsndfile says "System error." for a full disk
            import errno
            import shutil

            if shutil.disk_usage(Path(tmp).parent).free < data.size * 4 + (1 << 20):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise UserError(f"{path}: cannot write audio ({' '.join(str(exc).split())})") from None


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 [channels, samples] and its sample rate; UserError if unreadable."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types
        raise UserError(f"{path}: cannot read audio ({exc})") from None
    return data.T.copy(), int(sr)
