"""Metrics on hand-made inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audio.metrics import (NDB, entropy, feature_stats, frechet_distance, frechet_distance_features,
                           pitch_accuracy, pitch_entropy, proportions_z_test, softmax)


def test_pitch_accuracy_counts_argmax_and_ignores():
    logits = np.array([[5.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 2.0], [9.0, 0.0, 0.0]])
    assert pitch_accuracy(logits, [0, 1, 0, 2]) == 0.5
    assert pitch_accuracy(logits, [0, 1, 2, -100]) == 1.0
    assert math.isnan(pitch_accuracy(logits, [-100] * 4))
    assert pitch_accuracy(torch.tensor(logits), torch.tensor([1, 1, 1, 1])) == 0.25


def test_pitch_accuracy_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits"):
        pitch_accuracy(np.zeros((3, 4)), [0, 1])


def test_entropy_of_uniform_is_log_n_and_of_one_hot_is_zero():
    for n in (2, 7, 61):
        assert entropy(np.full(n, 1.0 / n)) == pytest.approx(math.log(n))
        assert pitch_entropy(np.zeros((3, n))) == pytest.approx(math.log(n))
    assert entropy(np.array([0.0, 1.0, 0.0])) == 0.0
    assert pitch_entropy(np.array([[1000.0, 0.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)
    # two classes at probabilities 1/4, 3/4
    p = np.array([[math.log(1.0), math.log(3.0)]])
    assert pitch_entropy(p) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_softmax_rows_sum_to_one_and_are_stable():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, -1000.0]]))
    assert np.allclose(p, [[0.5, 0.5], [1.0, 0.0]])


def test_proportions_z_test_known_value():
    # 30/100 vs 50/100: pooled 0.4, se = sqrt(0.4*0.6*0.02) = 0.069282, z = 2.88675, p = 0.003892
    p = proportions_z_test(np.array([30, 0]), 100, np.array([50, 0]), 100)
    assert p[0] == pytest.approx(0.0038924, rel=1e-3)
    assert p[1] == 1.0


def _blobs(n_per: int, k: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.arange(k)[:, None] * 10.0 * np.eye(dim)[0][None, :]
    x = centres[:, None, :] + rng.normal(0, 0.5, size=(k, n_per, dim))
    return x.reshape(-1, dim)


def test_ndb_of_sample_against_itself_is_zero():
    x = _blobs(40, 10, 3, seed=0)
    ndb = NDB.fit(x, k=10, seed=0)
    assert ndb.reference_counts.sum() == len(x)
    res = ndb.evaluate(x)
    assert res.ndb == 0 and res.ndb_over_k == 0.0 and res.k == 10
    assert np.allclose(res.sample_proportions, res.reference_proportions)


def test_ndb_against_a_shifted_cluster_is_k():
    x = _blobs(40, 10, 3, seed=0)
    ndb = NDB.fit(x, k=10, seed=0)
    shifted = np.random.default_rng(1).normal(0, 0.5, size=(400, 3)) + np.array([0.0, 1000.0, 0.0])
    res = ndb.evaluate(shifted)
    assert res.ndb == 10 and res.ndb_over_k == 1.0, res.p_values


def test_ndb_detects_one_missing_mode():
    x = _blobs(100, 5, 2, seed=0)
    ndb = NDB.fit(x, k=5, seed=0)
    missing = _blobs(125, 5, 2, seed=2)[125:]  # modes 1..4 only, same total count
    res = ndb.evaluate(missing)
    # mode 0 is empty (different) and the other four hold 25% instead of 20% each (z ~ 1.9, p ~ 0.06)
    assert res.ndb == 1
    assert res.different[ndb.assign(x[:1])[0]]


def test_ndb_from_arrays_round_trip_and_validation():
    x = _blobs(30, 4, 2, seed=3)
    a = NDB.fit(x, k=4, seed=0)
    b = NDB(a.centroids.astype(np.float32), a.reference_counts)
    assert np.array_equal(a.assign(x), b.assign(x))
    with pytest.raises(ValueError, match="at least k"):
        NDB.fit(x[:3], k=4)
    with pytest.raises(ValueError, match="shape"):
        a.assign(np.zeros((2, 5)))


def test_frechet_distance_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    mu, sigma = feature_stats(a)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_mean_shift_with_identity_covariance():
    mu = np.array([1.0, -2.0, 0.5])
    assert frechet_distance(np.zeros(3), np.eye(3), mu, np.eye(3)) == pytest.approx(float(mu @ mu))


def test_frechet_distance_known_covariances():
    # diagonal: sum (sqrt(a) - sqrt(b))^2 over the diagonal
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx((1 - 3) ** 2 + (2 - 1) ** 2)


def test_frechet_distance_singular_covariances_are_handled():
    s = np.zeros((3, 3))
    s[0, 0] = 1.0  # rank 1
    d = frechet_distance(np.zeros(3), s, np.ones(3), s)
    assert d == pytest.approx(3.0, abs=1e-4)


def test_frechet_distance_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
