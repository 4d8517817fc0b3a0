"""Image-quality metrics: reconstruction MSE, the Fréchet distance between two feature sets, Inception Score.

These are pure functions of arrays; which network produced the features (our in-project classifier or
autoencoder, :mod:`tcja_deploy.generation.feature_nets`, or a real Inception network through
:mod:`tcja_deploy.generation.inception`) is the caller's choice. Fréchet distances and scores computed on
our own networks' features are **not comparable to Inception-based figures** (those of FSVAE's table and of
other papers): only their differences between models measured the same way mean something.

Definitions:

- Fréchet distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local
  Nash equilibrium"): with the sample means μ and covariances Σ (unbiased, N − 1) of two feature sets,
  ``d² = ||μ1 − μ2||² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)``. It is the squared 2-Wasserstein distance between the
  two Gaussians; the name "FID" keeps the square, as every implementation does.
- Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` with p(y) the mean prediction of
  the split, averaged over ``splits`` equal consecutive splits (mean and population std over the splits).
- Reconstruction MSE: the mean squared difference over every pixel and channel of images in [−1, 1],
  as FSVAE computes it (``F.mse_loss(recons_img, input_img)`` on its inputs ``2·x − 1`` and its tanh
  outputs; kamata1729/FullySpikingVAE, ``fsvae_models/fsvae.py`` and ``datasets/load_dataset_snn.py``).
  The same error on [0, 1] images is a quarter of it.

Numerics of the matrix square root follow the maintained implementations (pytorch-fid's
``calculate_frechet_distance``, clean-fid's ``cleanfid/fid.py:frechet_distance``): ``scipy.linalg.sqrtm``
of Σ1 Σ2; if that is not finite (a near-singular product), again with ε·I (ε = 1e-6) added to both
covariances; an imaginary part from rounding is dropped when the diagonal's is below 1e-3, anything larger
is an error.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from tcja_deploy.errors import UserError

#: Added to both covariances' diagonals when the square root of their product is not finite.
SINGULAR_EPS = 1e-6
#: Largest imaginary part on the diagonal of (Σ1 Σ2)^½ that is taken for rounding and dropped.
IMAGINARY_TOLERANCE = 1e-3
#: How far a row of predicted probabilities may sum away from 1.
PROBABILITY_TOLERANCE = 1e-3


class MetricInputError(UserError, ValueError):
    """Inputs a metric cannot be computed on (too few samples, mismatched shapes, non-finite values).

    A UserError, so that a CLI prints it as one line; a ValueError for library callers.
    """


def _features(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise MetricInputError(f"{name}: features must be a 2-D array [N, D], got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise MetricInputError(f"{name}: a covariance needs at least 2 samples, got {x.shape[0]}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise MetricInputError(f"{name}: features hold NaN or infinite values")
    return x


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], unbiased covariance [D, D]) of ``features`` [N, D], N ≥ 2, in float64."""
    x = _features("features", features)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||μ1 − μ2||² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)`` of two Gaussians (means [D], covariances [D, D]).

    Computed in float64. Mismatched shapes or non-finite values raise :class:`MetricInputError`; a square
    root with an imaginary diagonal part above :data:`IMAGINARY_TOLERANCE` (covariances that are not
    positive semi-definite) raises it as well.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise MetricInputError(f"means must be vectors of one length, got shapes {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise MetricInputError(f"covariances must be {d}×{d} like the means, got shapes {sigma1.shape} and "
                               f"{sigma2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise MetricInputError(f"{name} holds NaN or infinite values")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * SINGULAR_EPS
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        worst = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if worst > IMAGINARY_TOLERANCE:
            raise MetricInputError(f"the square root of Σ1·Σ2 has an imaginary diagonal part of {worst:.3g} "
                                   f"(covariances not positive semi-definite?)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's principal matrix square root; NaN where it fails on a singular input."""
    with np.errstate(all="ignore"):
        try:
            root, _ = linalg.sqrtm(a, disp=False)  # disp=False: no printed warning, the error estimate back
            return root
        except (ValueError, np.linalg.LinAlgError):
            return np.full_like(a, np.nan)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two feature sets a [N, D] and b [M, D] (N, M ≥ 2), see the module docstring.

    Identical sets give 0 (to rounding). Fewer than 2 samples, different D or non-finite features raise
    :class:`MetricInputError`.
    """
    a, b = _features("first set", a), _features("second set", b)
    if a.shape[1] != b.shape[1]:
        raise MetricInputError(f"feature sets differ in dimension: {a.shape[1]} and {b.shape[1]}")
    mu1, sigma1 = feature_stats(a)
    mu2, sigma2 = feature_stats(b)
    return frechet_distance_from_stats(mu1, sigma1, mu2, sigma2)


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` of ``exp(E_x KL(p(y|x) || p(y)))``.

    Args:
        probs: [N, K] predicted class probabilities of N images (rows ≥ 0 summing to 1), N ≥ splits.
        splits: number of equal consecutive splits (the last ``N mod splits`` rows are dropped, as in the
            reference code of Salimans et al.); p(y) is each split's mean prediction.

    Returns:
        The scores' mean and population standard deviation; 1 when every prediction is the same, K when
        predictions are one-hot and spread evenly over K classes within each split.
    """
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] < 1:
        raise MetricInputError(f"probabilities must be a 2-D array [N, K], got shape {tuple(p.shape)}")
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or splits < 1:
        raise MetricInputError(f"splits must be a positive integer, got {splits!r}")
    if p.shape[0] < splits:
        raise MetricInputError(f"{p.shape[0]} predictions cannot form {splits} splits")
    p = p.astype(np.float64)
    if not np.isfinite(p).all() or (p < 0).any():
        raise MetricInputError("probabilities must be finite and ≥ 0")
    sums = p.sum(axis=1)
    if np.abs(sums - 1.0).max() > PROBABILITY_TOLERANCE:
        raise MetricInputError(f"probability rows must sum to 1 (found sums from {sums.min():.4g} to {sums.max():.4g})")
    size = p.shape[0] // splits
    scores = []
    for k in range(splits):
        part = p[k * size:(k + 1) * size]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)  # 0·log 0 = 0
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def reconstruction_mse(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error over every element of two image batches [N, C, H, W] in [−1, 1] (FSVAE's scale).

    Computed in float64; shapes must be equal.
    """
    if tuple(x.shape) != tuple(y.shape):
        raise MetricInputError(f"images differ in shape: {tuple(x.shape)} and {tuple(y.shape)}")
    if x.numel() == 0:
        raise MetricInputError("no images to compare")
    diff = x.detach().to("cpu", torch.float64) - y.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(diff).all()):
        raise MetricInputError("images hold NaN or infinite values")
    return float(diff.pow(2).mean())
