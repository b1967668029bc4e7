"""A small pitch-and-family classifier that judges notes from their waveform (GANSynth's metrics).

The GANSynth paper scores generated notes with a pitch classifier trained on real notes: pitch
accuracy, pitch entropy, and a Fréchet distance on the classifier's penultimate features. This
module is that classifier, sized for a CPU: a log-mel front end computed with ``torch.stft``
from the waveform (so it is independent of the GAN's own spectral representation and judges
any generated audio alike), a three-block 2D CNN, and two heads (pitch and instrument family).

The saved classifier also carries reference statistics of the real *training* notes it was
trained on: the mean and covariance of its features (for the Fréchet distance) and the k-means
bins of their log-mel spectrograms with the bin counts (for NDB). See :mod:`audio.metrics`.

Train (writes ``OUT.safetensors`` + ``OUT.json``)::

    python -m audio.classifier --data data/build/notes/fluidr3 \
        --out data/pretrained/audio_classifier.safetensors --threads 1

On the FluidR3 note set (3,752 training notes) this takes about 2.5 minutes on a 2-core CPU
(30 epochs; ``--threads 1`` is faster than 2 on a shared machine and bit-reproducible) and
reaches pitch accuracy 1.000 (195 pitched notes) and family accuracy 1.000 (207 notes) on
nsynth-test. The weights file is 1.2 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import UserError
from pipeline.fileio import read_json_object

#: Format version of the saved classifier (JSON "version").
VERSION = 1
#: General MIDI "program" of the drum kit in the note datasets.
DRUM_PROGRAM = 128
#: Pitch target of notes the pitch head does not judge (drums, out-of-range pitches).
IGNORE = -100
#: Default analysis window: the first 0.512 s of each note at 16 kHz (the default timbre model
#: makes 0.5 s notes; longer notes are judged on their first 0.512 s).
DEFAULT_WINDOW_SAMPLES = 8192


# ---------------------------------------------------------------------------------------------
# front end


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters (HTK mel scale), peak 1, on the one-sided FFT bins.

    Returns:
        float32 array [n_mels, n_fft // 2 + 1]; row m rises linearly from edge m to its peak at
        edge m + 1 and falls to edge m + 2, edges equally spaced in mel from fmin to fmax (Hz).
        Same as ``librosa.filters.mel(..., htk=True, norm=None)``.
    """
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


class LogMel(nn.Module):
    """Waveform -> level-normalised log-mel spectrogram of a fixed-length window.

    Each wave is cut (or zero-padded) to its first ``window_samples`` samples. The STFT (Hann
    window ``n_fft``, hop ``hop``, centred with zero padding) gives a power spectrogram, the mel
    filters sum it into ``n_mels`` bands, and the result in dB is taken relative to the note's
    loudest band (so the classifier ignores overall level), floored at ``-range_db``, and mapped
    to [0, 1] (1 = the loudest band, 0 = the floor or silence). A note whose loudest band is
    below ``silence_db`` (absolute dB of mel power) is referenced to ``silence_db`` instead, so
    silence stays at the floor.

    Args:
        sample_rate: Hz. n_fft, hop, window_samples: samples. n_mels: bands between fmin and
        fmax (Hz). range_db, silence_db: dB.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 2048, hop: int = 512, n_mels: int = 229,
                 fmin: float = 30.0, fmax: float = 8000.0, window_samples: int = DEFAULT_WINDOW_SAMPLES,
                 range_db: float = 80.0, silence_db: float = -20.0):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop, self.n_mels = sample_rate, n_fft, hop, n_mels
        self.window_samples, self.range_db, self.silence_db = window_samples, range_db, silence_db
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)),
                             persistent=False)

    @property
    def frames(self) -> int:
        """Frames of the output: ``1 + window_samples // hop``."""
        return 1 + self.window_samples // self.hop

    def fit_length(self, waves: torch.Tensor) -> torch.Tensor:
        """Cut or zero-pad Float tensor [B, T] to [B, window_samples]."""
        if waves.dim() != 2:
            raise ValueError(f"waves should have 2 dimensions [B, T], got shape {tuple(waves.shape)}")
        t = waves.shape[1]
        if t >= self.window_samples:
            return waves[:, : self.window_samples]
        return F.pad(waves, (0, self.window_samples - t))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Float tensor [B, T] (any T) -> Float tensor [B, frames, n_mels] in [0, 1]."""
        x = self.fit_length(waves.float())
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [B, n_fft/2+1, frames]
        mel = torch.matmul(self.mel, power).transpose(1, 2)  # [B, frames, n_mels]
        db = 10.0 * torch.log10(mel + 1e-10)
        ref = db.amax(dim=(1, 2), keepdim=True).clamp(min=self.silence_db)
        return ((db - ref).clamp(min=-self.range_db) + self.range_db) / self.range_db


# ---------------------------------------------------------------------------------------------
# network


class PitchFamilyNet(nn.Module):
    """CNN over a log-mel image: pitch logits, family logits and a feature vector.

    Three blocks of (3×3 conv, batch norm, ReLU, max pool): pools (2, 2), (2, 2), (1, 2) over
    (time, mel); then mean and max over time, a linear layer to ``hidden`` features (ReLU), and
    two linear heads. The features are the penultimate layer (for the Fréchet distance).

    Args:
        n_mels, frames: input size. n_pitches, n_families: classes. channels: conv widths.
        hidden: feature size D. dropout: before the heads, in training.
    """

    def __init__(self, n_mels: int, frames: int, n_pitches: int, n_families: int,
                 channels: Sequence[int] = (8, 16, 32), hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        pools = [(2, 2), (2, 2), (1, 2)]
        if len(channels) != len(pools):
            raise ValueError(f"channels should have {len(pools)} entries, got {list(channels)}")
        layers: list[nn.Module] = []
        c_in, t, f = 1, frames, n_mels
        for c, pool in zip(channels, pools):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d(pool)]
            c_in, t, f = c, t // pool[0], f // pool[1]
        if t < 1 or f < 1:
            raise ValueError(f"input of {frames} frames x {n_mels} mels is too small for the pooling")
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(2 * c_in * f, hidden)
        self.dropout = nn.Dropout(dropout)
        self.pitch_head = nn.Linear(hidden, n_pitches)
        self.family_head = nn.Linear(hidden, n_families)

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float tensor [B, frames, n_mels] -> (pitch logits [B, n_pitches], family logits
        [B, n_families], features [B, hidden])."""
        h = self.conv(logmel.unsqueeze(1))  # [B, C, t, f]
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1).flatten(1)
        feats = F.relu(self.embed(h))
        h = self.dropout(feats)
        return self.pitch_head(h), self.family_head(h), feats


# ---------------------------------------------------------------------------------------------
# the classifier object


class PitchFamilyClassifier:
    """Front end + network + label maps (+ reference statistics of the real training notes).

    Args:
        frontend: :class:`LogMel`. net: :class:`PitchFamilyNet`.
        pitch_min: MIDI number of pitch class 0; the pitch head covers
            ``pitch_min .. pitch_min + n_pitches - 1``.
        families: family names, index = family class.
        reference: optional dict of numpy arrays ``fd_mu`` [D], ``fd_sigma`` [D, D],
            ``ndb_centroids`` [K, S], ``ndb_counts`` [K] (see :meth:`compute_reference`).
        info: free JSON-able facts (training data, accuracy) saved with the weights.
    """

    def __init__(self, frontend: LogMel, net: PitchFamilyNet, pitch_min: int, families: Sequence[str],
                 reference: dict[str, np.ndarray] | None = None, info: dict[str, Any] | None = None,
                 net_kwargs: dict[str, Any] | None = None, frontend_kwargs: dict[str, Any] | None = None):
        self.frontend = frontend
        self.net = net
        self.pitch_min = int(pitch_min)
        self.n_pitches = int(net.pitch_head.out_features)
        self.families = list(families)
        self.reference = dict(reference or {})
        self.info = dict(info or {})
        self.net_kwargs = dict(net_kwargs or {})
        self.frontend_kwargs = dict(frontend_kwargs or {})
        self.device = torch.device("cpu")

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def build(cls, *, pitch_min: int, n_pitches: int, families: Sequence[str], sample_rate: int = 16000,
              n_fft: int = 2048, hop: int = 512, n_mels: int = 229, fmin: float = 30.0, fmax: float = 8000.0,
              window_samples: int = DEFAULT_WINDOW_SAMPLES, channels: Sequence[int] = (8, 16, 32),
              hidden: int = 128, dropout: float = 0.3) -> "PitchFamilyClassifier":
        """A fresh (untrained) classifier from plain sizes (see :class:`LogMel`, :class:`PitchFamilyNet`)."""
        fk = dict(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels, fmin=fmin, fmax=fmax,
                  window_samples=window_samples)
        frontend = LogMel(**fk)
        nk = dict(n_mels=n_mels, frames=frontend.frames, n_pitches=n_pitches, n_families=len(families),
                  channels=list(channels), hidden=hidden, dropout=dropout)
        return cls(frontend, PitchFamilyNet(**nk), pitch_min, families, net_kwargs=nk, frontend_kwargs=fk)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def window_samples(self) -> int:
        return self.frontend.window_samples

    @property
    def feature_dim(self) -> int:
        return int(self.net.embed.out_features)

    def to(self, device: str | torch.device) -> "PitchFamilyClassifier":
        self.device = torch.device(device)
        self.frontend.to(self.device)
        self.net.to(self.device)
        return self

    # -- labels ---------------------------------------------------------------------------

    def pitch_target(self, pitch: Any, program: Any) -> torch.Tensor:
        """Pitch class of each note: Long tensor [B], ``pitch - pitch_min`` for pitched programs
        in range, :data:`IGNORE` for drums (program 128) and pitches outside the head."""
        pitch = torch.as_tensor(np.asarray(pitch), dtype=torch.long)
        program = torch.as_tensor(np.asarray(program), dtype=torch.long)
        cls_ = pitch - self.pitch_min
        ok = (program != DRUM_PROGRAM) & (cls_ >= 0) & (cls_ < self.n_pitches)
        return torch.where(ok, cls_, torch.full_like(cls_, IGNORE))

    # -- inference ------------------------------------------------------------------------

    def _check_waves(self, waves: Any) -> torch.Tensor:
        w = torch.as_tensor(np.asarray(waves) if not torch.is_tensor(waves) else waves)
        if w.dim() != 2:
            raise ValueError(f"waves should have 2 dimensions [B, T], got shape {tuple(w.shape)}")
        return w.float()

    @torch.no_grad()
    def outputs(self, waves: Any, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Run everything on Float waves [B, T] at ``sample_rate``.

        Returns:
            dict of CPU float32 tensors: ``pitch_logits`` [B, n_pitches], ``family_logits``
            [B, n_families], ``features`` [B, D] (penultimate layer) and ``spectral``
            [B, S] (the log-mel image average-pooled 4×4 and flattened, for NDB).
        """
        w = self._check_waves(waves)
        self.net.eval()
        out: dict[str, list[torch.Tensor]] = {"pitch_logits": [], "family_logits": [], "features": [],
                                              "spectral": []}
        for i in range(0, w.shape[0], batch_size):
            logmel = self.frontend(w[i:i + batch_size].to(self.device))
            p, f, feats = self.net(logmel)
            out["pitch_logits"].append(p.cpu())
            out["family_logits"].append(f.cpu())
            out["features"].append(feats.cpu())
            out["spectral"].append(spectral_summary(logmel).cpu())
        empty = {"pitch_logits": self.n_pitches, "family_logits": len(self.families), "features": self.feature_dim}
        return {k: torch.cat(v) if v else torch.zeros(0, empty.get(k, 0)) for k, v in out.items()}

    def predict(self, waves: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Float waves [B, T] -> (pitch logits [B, n_pitches], family logits [B, n_families]).

        Pitch class i is MIDI number ``pitch_min + i``; family j is ``families[j]``.
        """
        o = self.outputs(waves)
        return o["pitch_logits"], o["family_logits"]

    def predict_pitch(self, waves: Any) -> torch.Tensor:
        """Most likely MIDI pitch of each wave: Long tensor [B]."""
        return self.predict(waves)[0].argmax(dim=1) + self.pitch_min

    def features(self, waves: Any) -> torch.Tensor:
        """Penultimate-layer features of Float waves [B, T]: Float tensor [B, D]."""
        return self.outputs(waves)["features"]

    def spectral_features(self, waves: Any) -> torch.Tensor:
        """Pooled log-mel vectors [B, S] of Float waves [B, T] (what NDB bins)."""
        return self.outputs(waves)["spectral"]

    # -- reference statistics -------------------------------------------------------------

    def compute_reference(self, waves: Any, k: int = 50, seed: int = 0) -> None:
        """Store FD and NDB statistics of real training notes, Float waves [N, T]."""
        from audio.metrics import NDB, feature_stats

        o = self.outputs(waves)
        mu, sigma = feature_stats(o["features"])
        ndb = NDB.fit(o["spectral"], k=k, seed=seed)
        self.reference = {"fd_mu": mu.astype(np.float64), "fd_sigma": sigma.astype(np.float64),
                          "ndb_centroids": ndb.centroids.astype(np.float32),
                          "ndb_counts": ndb.reference_counts.astype(np.int64)}

    def ndb(self):
        """The :class:`audio.metrics.NDB` of the stored training-note bins (UserError if none)."""
        from audio.metrics import NDB

        if "ndb_centroids" not in self.reference:
            raise UserError("classifier: has no NDB reference bins (retrain it with audio.classifier)")
        return NDB(self.reference["ndb_centroids"], self.reference["ndb_counts"])

    # -- files ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``path`` (.safetensors: weights + reference arrays) and the .json beside it, atomically."""
        from pipeline.fileio import atomic_write_text
        from pipeline.weights import write_weights

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}  # write_weights copies to CPU
        for k, v in self.reference.items():
            tensors[f"ref.{k}"] = torch.from_numpy(np.ascontiguousarray(v))
        meta = {"kind": "audio_classifier", "version": VERSION, "pitch_min": self.pitch_min,
                "n_pitches": self.n_pitches, "families": self.families, "frontend": self.frontend_kwargs,
                "net": self.net_kwargs, "info": self.info}
        write_weights(path, tensors)
        json_path = path.with_suffix(".json")
        atomic_write_text(json_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return path, json_path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "PitchFamilyClassifier":
        """Load ``X.safetensors`` + ``X.json`` (``path`` may name either). UserError naming the
        file when missing or mismatched."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if path.is_file() and path.suffix not in (".safetensors", ".json"):
            raise UserError(f"{path}: not a classifier (expected a .safetensors file with its .json beside it)")
        st, js = path.with_suffix(".safetensors"), path.with_suffix(".json")
        for p in (st, js):
            if not p.is_file():
                raise UserError(f"{p}: classifier file not found (train one with "
                                f"'python -m audio.classifier --data DIR --out {st}')")
        meta = read_json_object(js)
        try:
            if meta.get("kind") != "audio_classifier":
                raise UserError(f"{js}: not an audio classifier (kind={meta.get('kind')!r})")
            if int(meta.get("version", -1)) > VERSION:
                raise UserError(f"{js}: version {meta['version']} is newer than this code ({VERSION})")
            frontend = LogMel(**meta["frontend"])
            net = PitchFamilyNet(**meta["net"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{js}: bad classifier description ({exc})") from None
        try:
            tensors = load_file(str(st))
        except (SafetensorError, OSError) as exc:
            raise UserError(f"{st}: unreadable weights ({exc})") from None
        state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise UserError(f"{st}: weights do not match {js} ({str(exc).splitlines()[0]})") from None
        reference = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("ref.")}
        obj = cls(frontend, net, meta["pitch_min"], meta["families"], reference=reference,
                  info=meta.get("info"), net_kwargs=meta["net"], frontend_kwargs=meta["frontend"])
        net.eval()
        return obj.to(device)


def spectral_summary(logmel: torch.Tensor, pool: tuple[int, int] = (4, 4)) -> torch.Tensor:
    """Float log-mel [B, frames, n_mels] -> average-pooled and flattened [B, S] (NDB's vectors)."""
    return F.avg_pool2d(logmel.unsqueeze(1), pool, ceil_mode=True).flatten(1)


# ---------------------------------------------------------------------------------------------
# training


def train_classifier(train_waves: Any, train_pitch: Any, train_family: Any, train_program: Any, *,
                     families: Sequence[str], valid: tuple[Any, Any, Any, Any] | None = None,
                     pitch_min: int | None = None, n_pitches: int | None = None, epochs: int = 30,
                     batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0,
                     truncate_prob: float = 0.3, ndb_k: int = 50, sample_rate: int = 16000,
                     log: Callable[[str], None] | None = print, **sizes: Any) -> PitchFamilyClassifier:
    """Train a :class:`PitchFamilyClassifier` on real notes and attach their reference statistics.

    Log-mel images are computed once; training then runs on them with AdamW and a one-cycle
    learning-rate schedule, cross-entropy on pitch (drums and out-of-range pitches ignored) plus
    cross-entropy on family. With probability ``truncate_prob`` an example's frames after a
    random cut are silenced, so the classifier also judges notes shorter than its window
    (generators may make short clips). The weights of the epoch with the best validation pitch
    accuracy (or the last epoch without ``valid``) are kept.

    Args:
        train_waves: Float array [N, T] at ``sample_rate`` Hz.
        train_pitch, train_family, train_program: Int arrays [N] (MIDI pitch, family index,
            GM program with 128 = drums).
        families: family names (len = number of family classes).
        valid: optional (waves, pitch, family, program) for model selection.
        pitch_min, n_pitches: pitch head range (default: from the pitched training notes).
        ndb_k: k-means bins for the NDB reference.
        sizes: passed to :meth:`PitchFamilyClassifier.build` (n_fft, hop, n_mels, window_samples, ...).
    Returns:
        The trained classifier (CPU, eval mode) with ``info`` holding the training history.
    """
    say = log or (lambda _msg: None)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pitch = np.asarray(train_pitch, dtype=np.int64)
    program = np.asarray(train_program, dtype=np.int64)
    family = np.asarray(train_family, dtype=np.int64)
    pitched = pitch[program != DRUM_PROGRAM]
    if pitch_min is None or n_pitches is None:
        if pitched.size == 0:
            raise ValueError("no pitched training notes to set the pitch range from")
        pitch_min, n_pitches = int(pitched.min()), int(pitched.max() - pitched.min() + 1)
    if family.min() < 0 or family.max() >= len(families):
        raise ValueError(f"family indices must be in 0..{len(families) - 1}, got {family.min()}..{family.max()}")
    clf = PitchFamilyClassifier.build(pitch_min=pitch_min, n_pitches=n_pitches, families=families,
                                      sample_rate=sample_rate, **sizes)
    t0 = time.time()
    x = _logmel_all(clf, train_waves)
    y_pitch = clf.pitch_target(pitch, program)
    y_family = torch.as_tensor(family)
    say(f"log-mel of {len(x)} training notes {tuple(x.shape[1:])} in {time.time() - t0:.1f} s")
    if valid is not None:
        vx = _logmel_all(clf, valid[0])
        vy_pitch = clf.pitch_target(valid[1], valid[3])
        vy_family = torch.as_tensor(np.asarray(valid[2], dtype=np.int64))

    net = clf.net
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.2)
    history: list[dict[str, float]] = []
    best: tuple[tuple[float, float], dict[str, torch.Tensor]] | None = None
    frames = x.shape[1]
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        tot, n_seen = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx].float()
            cut_mask = torch.rand(len(idx), generator=gen) < truncate_prob
            if cut_mask.any():
                cut = torch.randint(max(2, frames // 8), frames, (len(idx),), generator=gen)
                keep = torch.arange(frames)[None, :] < torch.where(cut_mask, cut, torch.full_like(cut, frames))[:, None]
                xb = xb * keep[:, :, None]
            p_logits, f_logits, _ = net(xb)
            yp = y_pitch[idx]
            loss = F.cross_entropy(f_logits, y_family[idx])
            if (yp != IGNORE).any():
                loss = loss + F.cross_entropy(p_logits, yp, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            n_seen += len(idx)
        row = {"epoch": epoch + 1, "loss": tot / max(n_seen, 1), "seconds": time.time() - t0}
        if valid is not None:
            acc = _accuracies(net, vx, vy_pitch, vy_family)
            row.update({"valid_pitch_accuracy": acc[0], "valid_family_accuracy": acc[1]})
            # ties go to the later epoch (lower training loss); family accuracy breaks pitch ties
            score = (0.0 if math.isnan(acc[0]) else acc[0], acc[1])
            if best is None or score >= best[0]:
                best = (score, {k: v.detach().clone() for k, v in net.state_dict().items()})
        history.append(row)
        say("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if best is not None:
        net.load_state_dict(best[1])
    net.eval()
    clf.info = {"history": history, "n_train": int(len(x)), "seed": seed, "epochs": epochs}
    if len(x) >= ndb_k:
        clf.compute_reference(train_waves, k=ndb_k, seed=seed)
    return clf


@torch.no_grad()
def _logmel_all(clf: PitchFamilyClassifier, waves: Any, batch_size: int = 256) -> torch.Tensor:
    """Log-mel images of all waves [N, T] -> float16 tensor [N, frames, n_mels] (saves memory)."""
    w = waves if torch.is_tensor(waves) else torch.from_numpy(np.asarray(waves, dtype=np.float32))
    parts = [clf.frontend(w[i:i + batch_size].float()).half() for i in range(0, len(w), batch_size)]
    return torch.cat(parts)


@torch.no_grad()
def _accuracies(net: PitchFamilyNet, x: torch.Tensor, y_pitch: torch.Tensor, y_family: torch.Tensor,
                batch_size: int = 512) -> tuple[float, float]:
    """(pitch accuracy, family accuracy) of the network on precomputed log-mel images."""
    from audio.metrics import pitch_accuracy

    net.eval()
    ps, fs = [], []
    for i in range(0, len(x), batch_size):
        p, f, _ = net(x[i:i + batch_size].float())
        ps.append(p)
        fs.append(f)
    p, f = torch.cat(ps), torch.cat(fs)
    return pitch_accuracy(p, y_pitch), pitch_accuracy(f, y_family)


# ---------------------------------------------------------------------------------------------
# data


def split_name(split: str) -> str:
    """``"nsynth-test"`` or ``"test"`` -> ``"test"`` (the split names of :mod:`audio.notes`)."""
    name = split[len("nsynth-"):] if split.startswith("nsynth-") else split
    if name not in ("train", "valid", "test"):
        raise UserError(f"split {split!r}: expected nsynth-train, nsynth-valid or nsynth-test")
    return name


def load_split(root: str | Path, split: str, clip_samples: int, max_notes: int | None = None,
               seed: int = 0) -> dict[str, Any]:
    """Real notes of one split of an NSynth-format note set (:mod:`audio.notes`).

    Args:
        root: the note set folder (holding ``nsynth-<split>/``).
        split: "nsynth-train" / "train", "nsynth-valid" / "valid" or "nsynth-test" / "test".
        clip_samples: samples kept from the start of each note (zero-padded when shorter).
        max_notes: read only this many notes, chosen at random with ``seed`` (sorted), so that
            big sets (NSynth's 289k training notes) need not be read whole.
    Returns:
        dict with ``waves`` float32 [N, clip_samples], int64 [N] ``pitch``, ``velocity``,
        ``program`` (128 = drums), ``family``, and ``sample_rate`` (Hz).
    """
    root = Path(root)
    name = split_name(split)
    if not root.is_dir():
        raise UserError(f"{root}: note data folder not found (build it with 'musegansynth data notes')")
    if clip_samples < 1:
        raise UserError(f"clip_samples {clip_samples}: must be positive")
    from audio.notes import NoteSet, load_note_waves

    if max_notes is None:
        data = load_note_waves(root, name, clip_samples)
        waves = data["wave"]
    else:
        notes = NoteSet(root, name)
        idx = np.arange(len(notes))
        if max_notes < len(notes):
            idx = np.sort(np.random.default_rng(seed).choice(len(notes), max_notes, replace=False))
        waves = np.stack([notes.load_wave(int(i), clip_samples) for i in idx]) if len(idx) else \
            np.zeros((0, clip_samples), np.float32)
        data = {"pitch": notes.pitch[idx], "velocity": notes.velocity[idx], "program": notes.program[idx],
                "family": notes.family[idx], "sample_rate": notes.sample_rate}
    out: dict[str, Any] = {"waves": np.asarray(waves, dtype=np.float32)}
    for k in ("pitch", "velocity", "program", "family"):
        out[k] = np.asarray(data[k], dtype=np.int64)
    out["sample_rate"] = int(data.get("sample_rate", 16000))
    if len(out["waves"]) == 0:
        raise UserError(f"{root}/nsynth-{name}: no notes")
    return out


def _subset(data: dict[str, np.ndarray], n: int | None, seed: int) -> dict[str, np.ndarray]:
    if n is None or n >= len(data["waves"]):
        return data
    idx = np.sort(np.random.default_rng(seed).choice(len(data["waves"]), n, replace=False))
    return {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in data.items()}


def cli_main(argv: list[str]) -> int:
    """``python -m audio.classifier --data DIR --out PATH [--epochs N] [--seed N] ...``"""
    parser = argparse.ArgumentParser(prog=argv[0], description="Train the pitch/family classifier used by "
                                     "'musegansynth evaluate audio' on an NSynth-format note set.")
    parser.add_argument("--data", required=True, help="note set folder (with nsynth-train, nsynth-valid, nsynth-test)")
    parser.add_argument("--out", required=True, help="output .safetensors path (a .json is written beside it)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=None, help="use at most this many training notes")
    parser.add_argument("--window-samples", type=int, default=DEFAULT_WINDOW_SAMPLES)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv[1:])
    if args.threads:
        torch.set_num_threads(args.threads)
    from audio.families import FAMILIES
    from audio.metrics import pitch_accuracy

    root = Path(args.data)
    train = _subset(load_split(root, "nsynth-train", args.window_samples), args.max_train, args.seed)
    valid = load_split(root, "nsynth-valid", args.window_samples)
    test = load_split(root, "nsynth-test", args.window_samples)
    print(f"notes: train {len(train['waves'])}, valid {len(valid['waves'])}, test {len(test['waves'])}")
    clf = train_classifier(train["waves"], train["pitch"], train["family"], train["program"],
                           families=FAMILIES, valid=(valid["waves"], valid["pitch"], valid["family"], valid["program"]),
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                           window_samples=args.window_samples, sample_rate=train["sample_rate"])
    p_logits, f_logits = clf.predict(test["waves"])
    test_pitch = pitch_accuracy(p_logits, clf.pitch_target(test["pitch"], test["program"]))
    test_family = pitch_accuracy(f_logits, test["family"])
    clf.info.update({"data": str(root), "n_valid": len(valid["waves"]), "n_test": len(test["waves"]),
                     "test_pitch_accuracy": test_pitch, "test_family_accuracy": test_family,
                     "command": "python -m audio.classifier " + " ".join(argv[1:])})
    st, js = clf.save(args.out)
    print(f"held-out (nsynth-test) pitch accuracy {test_pitch:.4f}, family accuracy {test_family:.4f}")
    print(f"wrote {st} ({st.stat().st_size / 1e6:.2f} MB) and {js}")
    return 0


def main() -> None:  # pragma: no cover - module entry
    try:
        sys.exit(cli_main(["python -m audio.classifier", *sys.argv[1:]]))
    except UserError as exc:
        print(f"audio.classifier: error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
