"""Quality metrics for generated notes, as in the GANSynth paper (Engel et al. 2019).

- Pitch accuracy (PA): how often a pitch classifier trained on real notes finds the pitch the
  generator was asked for.
- Pitch entropy (PE): the mean entropy (nats) of the classifier's predicted pitch distribution,
  one distribution per note; low when every note has one clear pitch.
- NDB, the number of statistically different bins (Richardson & Weiss 2018): k-means (k = 50)
  on log spectrograms of real training notes; a sample set's bin occupancy is compared with the
  training notes' occupancy bin by bin with a two-proportion z-test (alpha 0.05). NDB is the
  number of bins that differ, NDB/K the fraction.
- Fréchet distance (FD) between Gaussians fitted to classifier features of two sets of notes.

All functions take numpy arrays or torch tensors (converted to float64 numpy) and are
deterministic given their seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.stats

#: GANSynth's number of k-means bins for NDB.
NDB_K = 50
#: Significance level of NDB's per-bin proportion test.
NDB_ALPHA = 0.05


def _np(x: Any, dtype=np.float64) -> np.ndarray:
    """Numpy copy of an array or tensor (moved to CPU, detached)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# pitch accuracy and entropy


def pitch_accuracy(logits: Any, target: Any, ignore_index: int = -100) -> float:
    """Fraction of notes whose most likely class is the target.

    Args:
        logits: Float array of shape [N, C], classifier scores (logits or probabilities).
        target: Int array of shape [N], class indices in 0..C-1; entries equal to
            ``ignore_index`` are left out (e.g. drums, or pitches outside the classifier's range).
    Returns:
        Accuracy in [0, 1]; NaN when no note counts.
    """
    logits = _np(logits)
    target = _np(target, np.int64)
    if logits.ndim != 2 or target.shape != (logits.shape[0],):
        raise ValueError(f"expected logits [N, C] and target [N], got {logits.shape} and {target.shape}")
    keep = target != ignore_index
    if not keep.any():
        return float("nan")
    return float((logits[keep].argmax(axis=1) == target[keep]).mean())


def softmax(logits: Any) -> np.ndarray:
    """Row-wise softmax of Float array [N, C] (float64, numerically stable)."""
    x = _np(logits)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def entropy(probs: Any) -> np.ndarray:
    """Entropy in nats of each row of a probability array [..., C] (0 log 0 = 0). Returns [...]."""
    p = _np(probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=-1)


def pitch_entropy(logits: Any) -> float:
    """GANSynth's pitch entropy: mean over notes of the entropy (nats) of softmax(logits).

    Args:
        logits: Float array of shape [N, C], the pitch classifier's logits for N notes.
    Returns:
        Mean entropy in nats, between 0 (every note certain) and log(C) (every note uniform).
    """
    logits = _np(logits)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"expected logits of shape [N, C] with N > 0, got {logits.shape}")
    return float(entropy(softmax(logits)).mean())


# ---------------------------------------------------------------------------------------------
# NDB


def proportions_z_test(count1: Any, n1: int, count2: Any, n2: int) -> np.ndarray:
    """Two-sided two-proportion z-test with a pooled proportion, element-wise.

    Args:
        count1, count2: Int arrays of the same shape [K], successes in each sample.
        n1, n2: sample sizes (> 0).
    Returns:
        Float array [K] of p-values; 1.0 where both proportions are 0 or both are 1.
    """
    c1, c2 = _np(count1), _np(count2)
    p1, p2 = c1 / n1, c2 / n2
    pooled = (c1 + c2) / (n1 + n2)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / np.where(se > 0, se, 1.0), 0.0)
    return 2.0 * scipy.stats.norm.sf(np.abs(z))


@dataclass
class NDBResult:
    """Outcome of :meth:`NDB.evaluate`.

    Attributes:
        ndb: number of bins whose occupancy differs significantly.
        k: number of bins.
        ndb_over_k: ``ndb / k``.
        different: bool [K], which bins differ.
        p_values: float [K].
        reference_proportions, sample_proportions: float [K], bin occupancy of the reference
            (training) notes and of the evaluated sample.
    """

    ndb: int
    k: int
    ndb_over_k: float
    different: np.ndarray
    p_values: np.ndarray
    reference_proportions: np.ndarray
    sample_proportions: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"ndb": self.ndb, "k": self.k, "ndb_over_k": self.ndb_over_k}


class NDB:
    """Number of statistically different bins against a fixed reference set.

    Build with :meth:`fit` (k-means on reference features) or :meth:`from_arrays` (saved
    centroids and reference bin counts), then call :meth:`evaluate` on any sample set.

    Args:
        centroids: Float array [K, D], bin centres.
        reference_counts: Int array [K], how many reference vectors fall in each bin.
    """

    def __init__(self, centroids: Any, reference_counts: Any):
        self.centroids = _np(centroids)
        self.reference_counts = _np(reference_counts, np.int64)
        if self.centroids.ndim != 2 or self.reference_counts.shape != (self.centroids.shape[0],):
            raise ValueError(f"expected centroids [K, D] and counts [K], got {self.centroids.shape} "
                             f"and {self.reference_counts.shape}")
        if self.reference_counts.sum() <= 0:
            raise ValueError("NDB reference counts are all zero")

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def fit(cls, reference: Any, k: int = NDB_K, seed: int = 0, max_fit: int | None = 20000) -> "NDB":
        """K-means (k-means++ init, fixed seed) on reference vectors [N, D] and their bin counts.

        ``max_fit`` caps how many (randomly chosen, seeded) vectors fit the centroids; all
        reference vectors are then counted.
        """
        from sklearn.cluster import KMeans

        x = _np(reference)
        if x.ndim != 2 or x.shape[0] < k:
            raise ValueError(f"NDB needs at least k={k} reference vectors of shape [N, D], got {x.shape}")
        fit_x = x
        if max_fit is not None and x.shape[0] > max_fit:
            idx = np.random.default_rng(seed).choice(x.shape[0], max_fit, replace=False)
            fit_x = x[np.sort(idx)]
        km = KMeans(n_clusters=k, n_init=1, random_state=seed, max_iter=300).fit(fit_x)
        centroids = km.cluster_centers_
        ndb = cls(centroids, np.ones(k, np.int64))
        ndb.reference_counts = ndb.bin_counts(x)
        return ndb

    def assign(self, x: Any) -> np.ndarray:
        """Index [N] of the nearest centroid (Euclidean) of each vector of Float array [N, D]."""
        x = _np(x)
        if x.ndim != 2 or x.shape[1] != self.centroids.shape[1]:
            raise ValueError(f"expected vectors of shape [N, {self.centroids.shape[1]}], got {x.shape}")
        d2 = ((x * x).sum(1)[:, None] - 2.0 * x @ self.centroids.T + (self.centroids ** 2).sum(1)[None, :])
        return d2.argmin(axis=1)

    def bin_counts(self, x: Any) -> np.ndarray:
        """Int array [K]: how many of the vectors [N, D] fall in each bin."""
        return np.bincount(self.assign(x), minlength=self.k).astype(np.int64)

    def evaluate(self, samples: Any, alpha: float = NDB_ALPHA) -> NDBResult:
        """Compare the bin occupancy of ``samples`` [N, D] with the reference occupancy."""
        counts = self.bin_counts(samples)
        n = int(counts.sum())
        if n == 0:
            raise ValueError("NDB needs at least one sample")
        n_ref = int(self.reference_counts.sum())
        p = proportions_z_test(self.reference_counts, n_ref, counts, n)
        different = p < alpha
        ndb = int(different.sum())
        return NDBResult(ndb=ndb, k=self.k, ndb_over_k=ndb / self.k, different=different, p_values=p,
                         reference_proportions=self.reference_counts / n_ref, sample_proportions=counts / n)


# ---------------------------------------------------------------------------------------------
# Fréchet distance


def feature_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased, rows are observations) of Float array [N, D]."""
    x = _np(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"expected at least 2 feature vectors of shape [N, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``. The matrix square root
    is scipy.linalg.sqrtm; when it is not finite (near-singular covariances) ``eps * I`` is added
    to both covariances, and a numerically small imaginary part is dropped.

    Args:
        mu1, mu2: Float arrays [D]; sigma1, sigma2: Float arrays [D, D].
    Returns:
        The distance (squared units of the features), >= 0 up to rounding.
    """
    mu1, mu2 = np.atleast_1d(_np(mu1)), np.atleast_1d(_np(mu2))
    s1, s2 = np.atleast_2d(_np(sigma1)), np.atleast_2d(_np(sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(covmean.imag).max()
        if imag > 1e-3 * max(1.0, np.abs(covmean.real).max()):
            raise ValueError(f"Frechet distance: sqrtm has a large imaginary component {imag:.3g}")
        covmean = covmean.real
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def frechet_distance_features(a: Any, b: Any) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))
