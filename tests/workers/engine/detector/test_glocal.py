"""The low-rank (Woodbury) shrinkage Mahalanobis and the 1-NN cosine against dense formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from workers.engine.detector.glocal import GlocalStack, fit_glocal, fit_layer


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)) + rng.normal(size=d)  # a cluster off the origin, like real features
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def distances(samples: np.ndarray, queries: np.ndarray):
    """Glocal distances of queries against one layer of samples, through the stacked code path."""
    fit = fit_glocal(torch.from_numpy(samples)[:, None].double())
    cosine, maha_sq = GlocalStack([fit]).distances(torch.from_numpy(queries)[:, None].float())
    return cosine[:, 0, 0].numpy(), maha_sq[:, 0, 0].numpy()


@pytest.mark.parametrize("n,d", [(12, 40), (60, 8)])  # fewer samples than dimensions, and more
def test_woodbury_mahalanobis_equals_dense_ledoit_wolf(n, d):
    rng = np.random.default_rng(0)
    samples, queries = unit_rows(rng, n, d), unit_rows(rng, 7, d)
    dense = LedoitWolf().fit(samples)
    expected = dense.mahalanobis(queries)  # squared distances with the dense precision matrix
    _, got = distances(samples, queries)
    np.testing.assert_allclose(got, expected, rtol=2e-3)


def test_woodbury_inverse_equals_dense_shrunk_covariance_in_float64():
    rng = np.random.default_rng(1)
    samples = torch.from_numpy(unit_rows(rng, 10, 30))
    mean, core, a = fit_layer(samples)
    z = samples - mean
    sigma = torch.from_numpy(LedoitWolf().fit(samples.numpy()).covariance_)
    woodbury_precision = (torch.eye(30, dtype=torch.float64) - z.T @ core @ z) / a
    torch.testing.assert_close(woodbury_precision @ sigma, torch.eye(30, dtype=torch.float64), atol=1e-8, rtol=0)


def test_mahalanobis_is_zero_at_the_mean_and_grows_away_from_it():
    rng = np.random.default_rng(2)
    samples = unit_rows(rng, 15, 32)
    mean = samples.mean(0)
    far = unit_rows(rng, 1, 32)[0]
    _, maha_sq = distances(samples, np.stack([mean, 0.5 * (mean + far), far]))
    assert maha_sq[0] == pytest.approx(0.0, abs=1e-3)
    assert 0 < maha_sq[1] < maha_sq[2]


def test_local_score_is_the_nearest_neighbour_cosine():
    rng = np.random.default_rng(3)
    samples, queries = unit_rows(rng, 9, 16), unit_rows(rng, 5, 16)
    cosine, _ = distances(samples, queries)
    np.testing.assert_allclose(cosine, (queries @ samples.T).max(1), atol=1e-5)
    own, _ = distances(samples, samples[:3])
    np.testing.assert_allclose(own, 1.0, atol=1e-5)


def test_stack_of_unequal_fits_equals_each_fit_alone():
    rng = np.random.default_rng(4)
    layer_sets = [torch.from_numpy(np.stack([unit_rows(rng, n, 24) for _ in range(2)], 1)) for n in (5, 11, 8)]
    fits = [fit_glocal(x) for x in layer_sets]
    queries = torch.from_numpy(np.stack([unit_rows(rng, 6, 24) for _ in range(2)], 1)).float()
    cosine, maha_sq = GlocalStack(fits).distances(queries)
    for unit, fit in enumerate(fits):
        alone_cos, alone_maha = GlocalStack([fit]).distances(queries)
        torch.testing.assert_close(cosine[..., unit], alone_cos[..., 0])
        torch.testing.assert_close(maha_sq[..., unit], alone_maha[..., 0], rtol=1e-4, atol=1e-2)


def test_stored_state_has_no_dense_precision():
    fit = fit_glocal(torch.from_numpy(unit_rows(np.random.default_rng(5), 10, 384))[:, None])
    assert fit.core.shape == (1, 10, 10)  # n x n, not d x d
    assert fit.features.shape == (1, 10, 384) and fit.mean.shape == (1, 384) and fit.isotropic.shape == (1,)
