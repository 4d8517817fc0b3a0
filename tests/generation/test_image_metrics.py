"""The image-quality metrics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from tcja_deploy.errors import UserError
from tcja_deploy.generation.metrics import (MetricInputError, feature_stats, frechet_distance,
                                            frechet_distance_from_stats, inception_score, reconstruction_mse)


def closed_form(mu1, sigma1, mu2, sigma2) -> float:
    """||μ1 − μ2||² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½): the symmetric form, independent of the code under test."""
    r1 = linalg.sqrtm(sigma1).real
    middle = linalg.sqrtm(r1 @ sigma2 @ r1).real
    d = mu1 - mu2
    return float(d @ d + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(middle))


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_identical_sets_give_zero():
    x = np.random.default_rng(0).normal(size=(500, 16)) * 3 + 1
    assert abs(frechet_distance(x, x)) < 1e-6
    assert abs(frechet_distance(x, x[::-1].copy())) < 1e-6  # order does not matter


def test_identical_sets_give_zero_with_rank_deficient_features():
    # 10 features that live in a 4-dimensional subspace: a singular covariance
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 10))
    assert abs(frechet_distance(x, x)) < 1e-6


def test_shift_of_the_mean_adds_its_squared_norm():
    x = np.random.default_rng(2).normal(size=(400, 8))
    shift = np.arange(8, dtype=np.float64)
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("diagonal", [True, False])
def test_two_gaussian_samples_match_the_closed_form(diagonal):
    rng = np.random.default_rng(3)
    d, n = 6, 200_000
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    if diagonal:
        sigma1, sigma2 = np.diag(rng.uniform(0.5, 2.0, d)), np.diag(rng.uniform(0.5, 2.0, d))
    else:
        sigma1, sigma2 = random_covariance(rng, d), random_covariance(rng, d)
    a = rng.multivariate_normal(mu1, sigma1, size=n)
    b = rng.multivariate_normal(mu2, sigma2, size=n)
    expected = closed_form(mu1, sigma1, mu2, sigma2)
    assert expected > 1.0
    # sampling error of means and covariances from 200k samples in 6 dimensions: well below 1 %
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.01)


def test_from_stats_equals_the_closed_form_for_commuting_covariances():
    # diagonal covariances commute: (Σ1 Σ2)^½ = diag(√(s1 s2)) exactly
    s1, s2 = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 1.0, 16.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, -1.0])
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
    assert frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-12)
    # a shared eigenbasis that is not the identity commutes too
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(4, 4)))
    got = frechet_distance_from_stats(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert got == pytest.approx(expected, abs=1e-9)


def test_from_stats_agrees_with_the_closed_form_for_general_covariances():
    rng = np.random.default_rng(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    sigma1, sigma2 = random_covariance(rng, 5), random_covariance(rng, 5)
    assert frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) == pytest.approx(
        closed_form(mu1, sigma1, mu2, sigma2), rel=1e-9)


def test_feature_stats_are_float64_and_unbiased():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]], dtype=np.float32)
    mu, sigma = feature_stats(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False))
    assert sigma[0, 0] == pytest.approx(4.0)  # Σ (x − 2)² / (N − 1) = 8 / 2


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 samples"),
    (np.zeros((5, 3)), np.zeros((1, 3)), "at least 2 samples"),
    (np.zeros((5, 3)), np.zeros((5, 4)), "differ in dimension: 3 and 4"),
    (np.zeros(5), np.zeros((5, 1)), "2-D array"),
    (np.full((4, 2), np.nan), np.zeros((4, 2)), "NaN"),
])
def test_bad_feature_sets_raise_one_line_errors(a, b, match):
    with pytest.raises(MetricInputError, match=match) as info:
        frechet_distance(a, b)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_bad_stats_raise():
    with pytest.raises(MetricInputError, match="one length"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(MetricInputError, match="3×3"):
        frechet_distance_from_stats(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_inception_score_is_one_for_identical_predictions():
    p = np.tile(np.array([0.1, 0.6, 0.3]), (100, 1))
    mean, std = inception_score(p, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 10])
def test_inception_score_is_k_for_one_hot_predictions_spread_over_k_classes(k):
    splits, per_class = 5, 3
    labels = np.tile(np.arange(k), splits * per_class)  # each consecutive split holds every class equally
    p = np.eye(k)[labels]
    mean, std = inception_score(p, splits=splits)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_a_direct_kl_computation():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(60, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(p, 3):
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(row * np.log(row / py)) for row in part])))
    mean, std = inception_score(p, splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)
    assert 1.0 < mean < 4.0


def test_inception_score_bad_inputs():
    with pytest.raises(MetricInputError, match="sum to 1"):
        inception_score(np.ones((20, 3)), splits=2)
    with pytest.raises(MetricInputError, match="cannot form 10 splits"):
        inception_score(np.eye(3), splits=10)
    with pytest.raises(MetricInputError, match="positive integer"):
        inception_score(np.eye(3), splits=0)


def test_reconstruction_mse_is_the_mean_over_all_pixels():
    x = torch.zeros(2, 1, 2, 2)
    y = torch.zeros(2, 1, 2, 2)
    y[0, 0, 0, 0] = 1.0  # one pixel off by 1 of 8
    y[1, 0, 1, 1] = -2.0  # one pixel off by 2
    assert reconstruction_mse(x, y) == pytest.approx((1 + 4) / 8)
    assert reconstruction_mse(x, x) == 0.0
    # [−1, 1] images: the error is 4× that of the same images on [0, 1]
    a, b = torch.rand(3, 1, 4, 4) * 2 - 1, torch.rand(3, 1, 4, 4) * 2 - 1
    assert reconstruction_mse(a, b) == pytest.approx(4 * reconstruction_mse((a + 1) / 2, (b + 1) / 2), rel=1e-9)
    with pytest.raises(MetricInputError, match="differ in shape"):
        reconstruction_mse(x, torch.zeros(2, 1, 2, 3))
