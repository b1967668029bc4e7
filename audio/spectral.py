"""Waveform <-> (log magnitude, instantaneous frequency) spectrograms, GANSynth style.

The representation (Engel et al. 2019, "GANSynth"):

- STFT with a periodic Hann window of ``n_fft`` samples, hop ``hop`` (``n_fft / 4`` in the
  paper), ``center=True`` with zero padding: frame ``t`` is centred on sample ``t * hop``, so a
  wave of ``T`` samples has ``frames_for(T) = 1 + T // hop`` frames. A Hann window at hop
  ``n_fft / 4`` overlap-adds to a constant, so :func:`torch.istft` inverts the STFT exactly (up
  to float rounding).
- Phase is measured relative to the *centre* of each frame (``X[k] * (-1)^k`` compared with
  :func:`torch.stft`, whose phase is relative to the frame start). This leaves every IF value
  after the first frame unchanged (the factor is constant in time) but makes the phase of a
  steady sinusoid the same in all bins of its main lobe, which is what lets the mel variant
  average neighbouring bins' phases without cancelling them.
- Channel 0: ``log(|X| + 1e-6)`` (natural log of the linear magnitude).
- Channel 1: instantaneous frequency. The phase is unwrapped along time, differenced along
  time and divided by pi; the first frame keeps its own phase / pi. Values lie in [-1, 1] (up
  to float rounding). For a
  steady sinusoid of frequency ``f`` Hz every bin of its main lobe reads
  ``wrap(2 * pi * f * hop / sample_rate) / pi``, where ``wrap`` maps to [-pi, pi). Writing
  ``f = f_k + d`` with ``f_k = k * sample_rate / n_fft`` the centre of bin ``k``, this is
  ``wrap(2 * pi * k * hop / n_fft + 2 * pi * d * hop / sample_rate) / pi``: the bin centre's own
  advance (``k * pi / 2`` at hop = n_fft / 4) plus the deviation from the centre.
- Optionally the Nyquist bin is dropped so that ``bins = n_fft / 2`` is a power of two (the
  inverse puts zeros there).

Mel-IF variant (``n_mels`` set): the *power* ``|X|^2`` and the phase are both warped with the
same mel matrix ``M`` [n_mels, bins] (HTK mel scale, 0 Hz .. sample_rate / 2, triangular filters
whose weights sum to 1, so each mel bin is a weighted mean of linear bins and keeps the same
scale). Channel 0 is ``log(sqrt(M |X|^2) + 1e-6)``, i.e. the log of the mel band's RMS magnitude
(the same units as the linear variant); channel 1 is the IF of the mel phase. The mel phase is,
by default (``mel_phase="complex"``), ``angle(M X)``: the same matrix applied to the complex STFT,
i.e. a magnitude-weighted circular mean of the bins' phases, then unwrapped along time.
GANSynth's literal recipe, ``M`` applied to the time-unwrapped phase (``mel_phase="unwrapped"``),
is kept for comparison: it averages unwrapped trajectories of bins that lie between harmonics
(and that differ by multiples of 2 pi) with equal weight, and its round trip on real notes is
~20 dB worse (measured on 22 FluidR3_GM notes: n_fft 2048 / 1024 mels 23 dB mean, 5 dB worst,
against 44 / 27 dB for "complex"; n_fft 512 / 256 mels 20 / 5 dB against 43 / 21 dB).

The inverse maps both the power and the complex mel values back with a fixed matrix ``W``
[bins, n_mels], a regularised least-squares inverse of ``M``::

    x = argmin_x ||M x - y||^2 + lam ||D x||^2   for each frame y   (D: first difference
      = W y,  W = (M^T M + lam D^T D)^-1 M^T                           across linear bins)

which, unlike the plain pseudo-inverse (the minimum-norm solution, which dips between band
centres where bands are wider than a bin), interpolates smoothly between band centres; on real
notes the two give the same SNR within ~1 dB. Power is clamped at 0 after the inverse; the linear
phase is ``angle(W (|mel| e^(i mel_phase)))`` ("complex") or ``W mel_phase`` ("unwrapped"). Mel
inversion loses frequency resolution where bands are wider than the spacing of harmonics (high
frequencies, few mel bins, long windows), so its round trip is lossy; n_mels should be at least
about half the linear bins: measured round-trip SNR on 22 FluidSynth notes is in
``benchmarks/README.md`` (``benchmarks/bench_spectral_roundtrip.py``).

Everything runs on the device and dtype of the input; no state beyond cached matrices.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

LOG_EPS = 1e-6
"""The epsilon of ``log(|X| + 1e-6)`` (GANSynth)."""


@dataclass(frozen=True)
class SpecConfig:
    """Sizes of the spectral representation.

    Args:
        sample_rate: samples per second of the waveforms (Hz).
        n_fft: STFT window / FFT size in samples (GANSynth: 2048 = 128 ms at 16 kHz).
        hop: samples between frames (GANSynth: n_fft / 4 = 512). Exact inversion needs the Hann
            window to overlap-add to a constant: hop must divide n_fft / 2 (n_fft / 4 is the
            usual choice).
        n_mels: number of mel bins for the mel-IF variant, or None for the linear variant.
        drop_nyquist: drop the top (Nyquist) bin so that bins = n_fft / 2 (a power of two when
            n_fft is one).
        mel_phase: how the mel variant warps phase. "complex" (default): the phase of the
            mel-weighted sum of the complex STFT, ``angle(M X)`` (a magnitude-weighted circular
            mean), unwrapped along time. "unwrapped": GANSynth's literal recipe, ``M`` applied to
            the time-unwrapped phase. Both use the same ``M`` as the power; "complex" inverts
            far better (see the module docstring). Ignored by the linear variant.
    """

    sample_rate: int = 16000
    n_fft: int = 2048
    hop: int = 512
    n_mels: int | None = None
    drop_nyquist: bool = True
    mel_phase: str = "complex"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft < 4 or self.n_fft % 2:
            raise ValueError(f"n_fft must be an even number >= 4, got {self.n_fft}")
        if self.hop <= 0 or self.hop > self.n_fft // 2 or (self.n_fft // 2) % self.hop:
            raise ValueError(f"hop must divide n_fft / 2 = {self.n_fft // 2} (for exact inversion), got {self.hop}")
        if self.n_mels is not None and not (2 <= self.n_mels <= 4 * self.n_fft):
            raise ValueError(f"n_mels must be None or between 2 and {4 * self.n_fft}, got {self.n_mels}")
        if self.mel_phase not in ("complex", "unwrapped"):
            raise ValueError(f"mel_phase must be 'complex' or 'unwrapped', got {self.mel_phase!r}")

    @property
    def linear_bins(self) -> int:
        """Number of linear-frequency bins kept (n_fft / 2, plus one without drop_nyquist)."""
        return self.n_fft // 2 + (0 if self.drop_nyquist else 1)

    @property
    def bins(self) -> int:
        """Number of frequency bins of a spectrogram: n_mels for the mel variant, else linear_bins."""
        return self.n_mels if self.n_mels is not None else self.linear_bins

    def frames_for(self, samples: int) -> int:
        """Number of STFT frames of a wave of ``samples`` samples: ``1 + samples // hop``."""
        if samples < 0:
            raise ValueError(f"samples must be >= 0, got {samples}")
        return 1 + samples // self.hop

    def samples_for(self, frames: int) -> int:
        """Wave length in samples whose spectrogram has exactly ``frames`` frames: ``(frames - 1) * hop``.

        (Any length from that up to ``frames * hop - 1`` gives the same number of frames.)
        """
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        return (frames - 1) * self.hop

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpecConfig":
        """Inverse of :meth:`to_dict`. Unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"SpecConfig: unknown keys {unknown}; expected some of {sorted(names)}")
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# phase helpers


def _wrap(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles (rad) into [-pi, pi)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def unwrap(phase: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Unwrap angles along ``dim`` (like :func:`numpy.unwrap`): jumps larger than pi become
    their 2 pi complement, so the result changes by at most pi between neighbours.

    Args:
        phase: float tensor of any shape, angles in rad.
        dim: the axis to unwrap along (time).

    Returns:
        Float tensor of the same shape; the first element along ``dim`` is unchanged.
    """
    if phase.shape[dim] < 2:
        return phase.clone()
    d = torch.diff(phase, dim=dim)
    correction = _unwrapped_step(d) - d
    first = phase.narrow(dim, 0, 1)
    zero = torch.zeros_like(first)
    return phase + torch.cat([zero, torch.cumsum(correction, dim=dim)], dim=dim)


def _unwrapped_step(d: torch.Tensor) -> torch.Tensor:
    """The step of the unwrapped phase for a raw step ``d`` (rad): ``d`` itself when |d| < pi,
    else ``d`` wrapped into [-pi, pi), a jump of exactly +pi staying +pi (numpy's rule)."""
    d_mod = _wrap(d)
    d_mod = torch.where((d_mod == -math.pi) & (d > 0), torch.full_like(d_mod, math.pi), d_mod)
    return torch.where(d.abs() < math.pi, d, d_mod)


def instantaneous_frequency(phase: torch.Tensor, time_dim: int = -2) -> torch.Tensor:
    """Instantaneous frequency: unwrapped phase differenced along time, divided by pi.

    Args:
        phase: float tensor of angles in rad, e.g. [B, frames, bins] with ``time_dim=-2``.
        time_dim: the time (frame) axis.

    Returns:
        Float tensor of the same shape with values in [-1, 1] for wrapped input: frame 0 holds
        ``phase[0] / pi``, frame t > 0 holds ``(unwrap(phase)[t] - unwrap(phase)[t-1]) / pi``
        (radians per hop, in units of pi).
    """
    # diff(unwrap(phase)) is the wrapped step itself: computing it directly avoids summing
    # large multiples of 2 pi in float32
    first = phase.narrow(time_dim, 0, 1)
    if phase.shape[time_dim] < 2:
        return first / math.pi
    steps = _unwrapped_step(torch.diff(phase, dim=time_dim))
    return torch.cat([first, steps], dim=time_dim) / math.pi


def phase_from_if(if_: torch.Tensor, time_dim: int = -2) -> torch.Tensor:
    """Inverse of :func:`instantaneous_frequency`: the unwrapped phase, ``cumsum(if_ * pi)``.

    Args:
        if_: float tensor, IF in units of pi per hop, time along ``time_dim``.
        time_dim: the time (frame) axis.

    Returns:
        Float tensor of the same shape: unwrapped phase in rad (summed in float64 where the
        device supports it, since the phase of a high bin grows to thousands of rad).
    """
    return _phase_from_if_wide(if_, time_dim).to(if_.dtype)


def _wide(x: torch.Tensor) -> torch.Tensor:
    return x if x.device.type == "mps" else x.to(torch.float64)


def _phase_from_if_wide(if_: torch.Tensor, time_dim: int) -> torch.Tensor:
    return torch.cumsum(_wide(if_) * math.pi, dim=time_dim)


# ---------------------------------------------------------------------------------------------
# mel matrices


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * np.expm1(np.asarray(m, dtype=np.float64) / 1127.0)


def mel_matrix(sample_rate: int, n_fft: int, n_mels: int, linear_bins: int) -> np.ndarray:
    """Linear -> mel averaging matrix (HTK mel scale, 0 Hz .. sample_rate / 2).

    Triangular filters with centres equally spaced in mel; each row is normalised to sum to 1
    (a weighted mean). A band narrower than one linear bin, which would have no weight at all,
    takes the nearest linear bin instead, so no row is empty.

    Returns:
        float64 array of shape [n_mels, linear_bins].
    """
    freqs = np.arange(linear_bins) * sample_rate / n_fft
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None, :]) / np.maximum(hi - mid, 1e-9)
    m = np.clip(np.minimum(up, down), 0.0, None)
    for i in np.flatnonzero(m.sum(axis=1) <= 1e-12):
        m[i, int(np.argmin(np.abs(freqs - mid[i, 0])))] = 1.0
    return m / m.sum(axis=1, keepdims=True)


def mel_inverse_matrix(mel: np.ndarray, smoothness: float = 1e-3) -> np.ndarray:
    """Regularised least-squares inverse ``(M^T M + lam D^T D)^-1 M^T`` of a mel matrix.

    Args:
        mel: [n_mels, linear_bins] matrix from :func:`mel_matrix`.
        smoothness: ``lam``, weight of the squared first difference across linear bins; small
            enough not to disturb bands that resolve single bins, large enough to interpolate
            between band centres where bands are wide.

    Returns:
        float64 array of shape [linear_bins, n_mels].
    """
    n_bins = mel.shape[1]
    diff = np.diff(np.eye(n_bins), axis=0)
    gram = mel.T @ mel + smoothness * diff.T @ diff + 1e-12 * np.eye(n_bins)
    return np.linalg.solve(gram, mel.T)


# ---------------------------------------------------------------------------------------------
# the transform


class SpecTransform:
    """Waveform <-> [log magnitude, IF] spectrogram with the sizes of a :class:`SpecConfig`.

    A plain object (no parameters, no training); works on the device and dtype of its input.
    """

    def __init__(self, config: SpecConfig | None = None, *, mel_smoothness: float = 1e-3) -> None:
        self.config = config if config is not None else SpecConfig()
        self.mel_smoothness = mel_smoothness
        self._cache: dict[tuple, torch.Tensor] = {}
        cfg = self.config
        if cfg.n_mels is not None:
            self._mel_np = mel_matrix(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.linear_bins)
            self._mel_inv_np = mel_inverse_matrix(self._mel_np, mel_smoothness)

    # sizes --------------------------------------------------------------------------------
    @property
    def bins(self) -> int:
        return self.config.bins

    def frames_for(self, samples: int) -> int:
        """See :meth:`SpecConfig.frames_for`."""
        return self.config.frames_for(samples)

    def samples_for(self, frames: int) -> int:
        """See :meth:`SpecConfig.samples_for`."""
        return self.config.samples_for(frames)

    def bin_frequencies(self) -> np.ndarray:
        """Centre frequency in Hz of each bin: [bins] (mel band centres for the mel variant)."""
        cfg = self.config
        if cfg.n_mels is None:
            return np.arange(cfg.linear_bins) * cfg.sample_rate / cfg.n_fft
        edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(cfg.sample_rate / 2.0), cfg.n_mels + 2))
        return edges[1:-1]

    def frame_times(self, frames: int) -> np.ndarray:
        """Centre time in seconds of each frame: [frames]."""
        return np.arange(frames) * self.config.hop / self.config.sample_rate

    # cached tensors -----------------------------------------------------------------------
    def _get(self, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (name, str(device), dtype)
        if key not in self._cache:
            cfg = self.config
            if name == "window":
                value = torch.hann_window(cfg.n_fft, periodic=True, dtype=dtype, device=device)
            elif name == "sign":  # (-1)^k: phase relative to the frame centre
                k = torch.arange(cfg.n_fft // 2 + 1, device=device)
                value = (1 - 2 * (k % 2)).to(dtype)
            elif name == "mel":
                value = torch.as_tensor(self._mel_np, dtype=dtype, device=device)
            elif name == "mel_inv":
                value = torch.as_tensor(self._mel_inv_np, dtype=dtype, device=device)
            else:  # pragma: no cover
                raise KeyError(name)
            self._cache[key] = value
        return self._cache[key]

    # forward ------------------------------------------------------------------------------
    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Complex STFT with the phase relative to each frame's centre.

        Args:
            wave: float tensor [B, T] (samples in [-1, 1]).

        Returns:
            Complex tensor [B, frames, linear_bins], frames = ``frames_for(T)``.
        """
        if wave.dim() != 2 or not wave.is_floating_point():
            raise ValueError(f"wave should be a float tensor of shape [B, T], got {tuple(wave.shape)} {wave.dtype}")
        cfg = self.config
        window = self._get("window", wave.device, wave.dtype)
        spec = torch.stft(wave, n_fft=cfg.n_fft, hop_length=cfg.hop, window=window, center=True,
                          pad_mode="constant", return_complex=True)  # [B, n_fft/2 + 1, frames]
        spec = spec * self._get("sign", wave.device, wave.dtype)[:, None]
        spec = spec.transpose(1, 2)
        return spec[..., : cfg.linear_bins]

    def wave_to_spec(self, wave: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Waveform -> [log magnitude, IF].

        Args:
            wave: float tensor [B, T], samples in [-1, 1].
            frames: if given, the wave is first zero-padded or cut to ``samples_for(frames)``
                samples so that the result has exactly this many frames.

        Returns:
            Float tensor [B, 2, frames, bins]: channel 0 the natural log of the magnitude plus
            1e-6 (of the mel band RMS for the mel variant), channel 1 the IF in [-1, 1]
            (units of pi rad per hop).
        """
        if wave.dim() != 2 or not wave.is_floating_point():
            raise ValueError(f"wave should be a float tensor of shape [B, T], got {tuple(wave.shape)} {wave.dtype}")
        if frames is not None:
            n = self.samples_for(frames)
            wave = wave[:, :n] if wave.shape[1] >= n else torch.nn.functional.pad(wave, (0, n - wave.shape[1]))
        spec = self.stft(wave)  # [B, frames, linear_bins]
        mag = spec.abs()
        if self.config.n_mels is None:
            logmag = torch.log(mag + LOG_EPS)
            phase = torch.angle(spec)
        else:
            mel_t = self._get("mel", wave.device, wave.dtype).T  # [linear_bins, n_mels]
            logmag = torch.log(torch.sqrt(torch.clamp(mag.square() @ mel_t, min=0.0)) + LOG_EPS)
            if self.config.mel_phase == "complex":
                phase = torch.atan2(spec.imag @ mel_t, spec.real @ mel_t)
            else:
                unwrapped = unwrap(_wide(torch.angle(spec)), dim=1)
                phase = (unwrapped @ _wide(mel_t)).to(wave.dtype)
        if_ = instantaneous_frequency(phase, time_dim=1)
        return torch.stack([logmag, if_], dim=1)

    # inverse ------------------------------------------------------------------------------
    def check_spec(self, spec: torch.Tensor) -> None:
        """Raise ValueError unless ``spec`` is a float tensor [B, 2, frames, bins]."""
        if spec.dim() != 4 or spec.shape[1] != 2 or spec.shape[3] != self.bins or not spec.is_floating_point():
            raise ValueError(f"spec should be a float tensor of shape [B, 2, frames, {self.bins}] "
                             f"(log magnitude, IF), got {tuple(spec.shape)} {spec.dtype}")

    def spec_to_complex(self, spec: torch.Tensor) -> torch.Tensor:
        """[log magnitude, IF] -> complex STFT [B, frames, linear_bins] (phase relative to frame centre)."""
        self.check_spec(spec)
        logmag, if_ = spec[:, 0], spec[:, 1]
        if self.config.n_mels is None:
            mag = torch.clamp(torch.exp(logmag) - LOG_EPS, min=0.0)
            phase = _wrap(_phase_from_if_wide(if_, time_dim=1)).to(spec.dtype)
        else:
            inv_t = self._get("mel_inv", spec.device, spec.dtype).T  # [n_mels, linear_bins]
            mel_mag = torch.clamp(torch.exp(logmag) - LOG_EPS, min=0.0)
            mag = torch.sqrt(torch.clamp(mel_mag.square() @ inv_t, min=0.0))
            mel_phase = _phase_from_if_wide(if_, time_dim=1)
            if self.config.mel_phase == "complex":
                mel_phase = _wrap(mel_phase).to(spec.dtype)
                re, im = mel_mag * torch.cos(mel_phase), mel_mag * torch.sin(mel_phase)
                phase = torch.atan2(im @ inv_t, re @ inv_t)
            else:
                phase = _wrap(mel_phase @ _wide(inv_t)).to(spec.dtype)
        return torch.polar(mag, phase)

    def spec_to_wave(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[log magnitude, IF] -> waveform by inverse STFT (overlap-add).

        Args:
            spec: float tensor [B, 2, frames, bins] as made by :meth:`wave_to_spec`.
            length: samples of the result; default ``samples_for(frames)``.

        Returns:
            Float tensor [B, length] on the device and dtype of ``spec``.
        """
        cfg = self.config
        x = self.spec_to_complex(spec)  # [B, frames, linear_bins]
        if cfg.drop_nyquist:
            x = torch.nn.functional.pad(x, (0, 1))
        x = x * self._get("sign", spec.device, spec.dtype)
        x = x.transpose(1, 2)  # [B, n_fft/2 + 1, frames]
        if length is None:
            length = self.samples_for(spec.shape[2])
        window = self._get("window", spec.device, spec.dtype)
        return torch.istft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, window=window, center=True, length=length)


def snr_db(reference: torch.Tensor | np.ndarray, estimate: torch.Tensor | np.ndarray) -> float:
    """Signal-to-noise ratio in dB of ``estimate`` against ``reference`` (same shape):
    ``10 log10(sum(ref^2) / sum((ref - est)^2))``; inf when they are equal."""
    ref = np.asarray(reference.detach().cpu() if isinstance(reference, torch.Tensor) else reference, dtype=np.float64)
    est = np.asarray(estimate.detach().cpu() if isinstance(estimate, torch.Tensor) else estimate, dtype=np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"snr_db: shapes differ, {ref.shape} vs {est.shape}")
    noise = float(np.sum((ref - est) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


# ---------------------------------------------------------------------------------------------
# harmonic IF prior


#: Harmonics of :func:`harmonic_tone` stop below this fraction of the Nyquist frequency.
HARMONIC_CEILING = 0.99
#: Samples in the one-period wavetable :func:`harmonic_tone` interpolates.
WAVETABLE_SIZE = 1 << 15


def harmonic_tone(pitch: float, samples: int, sample_rate: int) -> torch.Tensor:
    """A sawtooth-like test tone: ``sum_h sin(2 pi h f0 t) / h`` over the harmonics ``h f0`` below
    :data:`HARMONIC_CEILING` of the Nyquist frequency, ``f0 = 440 * 2**((pitch - 69) / 12)``.

    Returns a float32 tensor [samples] (float64 arithmetic; silent when ``f0`` is above the
    ceiling). Its spectrogram's IF marks where the harmonics of that pitch lie, precise to a
    fraction of a bin: the timbre model's IF prior (:func:`harmonic_if_prior`).
    """
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    f0 = 440.0 * 2.0 ** ((float(pitch) - 69.0) / 12.0)
    n_harm = int(math.floor(HARMONIC_CEILING * sample_rate / 2.0 / f0))
    if n_harm < 1:
        return torch.zeros(samples)
    # one period of the band-limited wave (exact: its harmonics are whole multiples of the
    # period), then read at the tone's phase with linear interpolation
    size = WAVETABLE_SIZE
    spectrum = torch.zeros(size // 2 + 1, dtype=torch.complex128)
    h = torch.arange(1, n_harm + 1, dtype=torch.float64)
    spectrum[1: n_harm + 1] = -0.5j * size / h  # sin(2 pi h x) / h
    table = torch.fft.irfft(spectrum, n=size)
    pos = torch.remainder(torch.arange(samples, dtype=torch.float64) * (f0 / sample_rate), 1.0) * size
    i0 = pos.floor().long()
    frac = pos - i0
    wave = table[i0 % size] * (1.0 - frac) + table[(i0 + 1) % size] * frac
    return wave.float()


def harmonic_if_prior(transform: "SpecTransform", frames: int, pitches: int = 128) -> torch.Tensor:
    """IF of :func:`harmonic_tone` for MIDI pitches ``0 .. pitches - 1``: float32 [pitches, frames, bins].

    The tone starts at sample 0 and lasts ``transform.samples_for(frames)`` samples, as the
    training clips do. The timbre generator's IF output for a pitched note is this map plus a
    learned residual (:class:`audio.modules.Generator` with ``if_prior=True``): a pitch decides
    where its harmonics are, and regression to the IF alone places them too vaguely for low
    notes, where a semitone moves a harmonic by a fraction of a bin.
    """
    key = (tuple(sorted(transform.config.to_dict().items())), int(frames), int(pitches))
    if key not in _IF_PRIOR_CACHE:
        n = transform.samples_for(frames)
        sr = transform.config.sample_rate
        tones = torch.stack([harmonic_tone(p, n, sr) for p in range(pitches)])
        _IF_PRIOR_CACHE[key] = transform.wave_to_spec(tones, frames=frames)[:, 1].contiguous()
    return _IF_PRIOR_CACHE[key].clone()


#: harmonic_if_prior's results by (spectral config, frames, pitches): a process computes each once.
_IF_PRIOR_CACHE: dict[tuple, torch.Tensor] = {}
