"""From score u to gate weight w: empirical tail probability, monotone clamp, floor."""

from __future__ import annotations

import math

import numpy as np
import torch

from workers.engine.detector.calibration import empirical_cdf, gate_weight

REFERENCES = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
COUNTS = torch.tensor([4])


def weights(u, floor: float = 0.15, zeta: float = 10.0) -> np.ndarray:
    u = torch.as_tensor(u, dtype=torch.float32)[:, None]
    cdf = empirical_cdf(u, REFERENCES, COUNTS)
    return gate_weight(cdf, torch.tensor([zeta]), torch.tensor([floor]))[:, 0].numpy()


def test_cdf_interpolates_between_references_and_saturates_outside():
    u = torch.tensor([[0.0], [1.0], [1.5], [2.5], [3.0], [5.0]])
    cdf = empirical_cdf(u, REFERENCES, COUNTS)[:, 0]
    torch.testing.assert_close(cdf, torch.tensor([0.0, 0.125, 0.25, 0.5, 0.625, 1.0]))


def test_cdf_handles_padded_reference_rows():
    references = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, torch.inf, torch.inf]])
    cdf = empirical_cdf(torch.tensor([[2.5, 15.0], [0.5, 25.0]]), references, torch.tensor([4, 2]))
    torch.testing.assert_close(cdf, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))


def test_weight_is_monotone_in_u_even_above_the_forget_distribution():
    u = np.linspace(-5, 10, 301)
    w = weights(u, floor=0.0)
    assert np.all(np.diff(w) >= 0)
    # Above the median the two-sided tail would fall again; the clamp keeps the maximum weight.
    assert w[-1] == w[u.searchsorted(2.5)] == np.float32(1 / (1 + math.exp(-8)))


def test_typical_inputs_get_high_weight_and_far_inputs_exactly_zero():
    w = weights([2.5, 3.5, 1.5, 0.5, -100.0])
    assert w[0] > 0.99 and w[1] > 0.99
    assert 0.5 < w[2] < w[0]  # F = 0.25, c = 0.5: sigmoid(3)
    assert w[3] == 0.0 and w[4] == 0.0  # below every forget score: sigmoid(-2) = 0.119 < floor


def test_floor_sets_small_weights_to_zero_and_keeps_the_rest():
    u = np.linspace(-1, 5, 61)
    unfloored, floored = weights(u, floor=0.0), weights(u, floor=0.3)
    assert unfloored.min() >= 1 / (1 + math.exp(2)) - 1e-6  # sigmoid(-2): what the floor is for
    np.testing.assert_array_equal(floored, np.where(unfloored < 0.3, 0.0, unfloored))
