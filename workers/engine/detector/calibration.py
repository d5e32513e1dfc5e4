"""From a request's score u(x) to its gate weight w(x), calibrated on forget data only.

O3: c(x) = two-sided tail probability of u(x) under the empirical distribution of u over the
forget texts (D_used, scored out of sample, and the held-out D_rest); w(x) = sigmoid(zeta c(x) - 2).

Two documented departures:
- Monotone: the two-sided tail also falls for u ABOVE the forget distribution (inputs even more
  forget-like than the forget data), which would lower their weight. We clamp the CDF at its median,
  c = 2 min(F(u), 1/2), so w is non-decreasing in u and the maximum over windows of w is the weight
  of the maximum u.
- Floor: sigmoid(-2) = 0.119 is the weight of an input far from the forget data; anything below
  `weight_floor` is set to exactly 0 so unrelated prompts run on the base model, bit for bit.
F is the empirical CDF interpolated linearly between the sorted reference scores (0 below the
lowest, 1 above the highest); no dataset-specific threshold enters.
"""

from __future__ import annotations

import torch


def empirical_cdf(u: torch.Tensor, references: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """F(u) per request. u [m, U]; references [U, N] sorted, rows padded with +inf past counts [U]."""
    values = u.transpose(0, 1).contiguous()  # [U, m]
    below = torch.searchsorted(references, values, right=True)  # references <= u
    last = (counts - 1)[:, None]
    lo = (below - 1).clamp(min=0).minimum(last)
    hi = below.minimum(last)
    r_lo, r_hi = references.gather(1, lo), references.gather(1, hi)
    gap = r_hi - r_lo
    frac = torch.where(gap > 0, (values - r_lo) / torch.where(gap > 0, gap, 1.0), 0.0).clamp(0.0, 1.0)
    cdf = (lo + 0.5 + frac * (hi - lo)) / counts[:, None]
    cdf = torch.where(below == 0, 0.0, cdf)
    cdf = torch.where(below >= counts[:, None], 1.0, cdf)
    return cdf.transpose(0, 1)


def gate_weight(cdf: torch.Tensor, zeta: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """w = sigmoid(zeta c - 2) with c = 2 min(F, 1/2) (monotone clamp), zeroed below the floor."""
    tail = 2.0 * cdf.clamp(max=0.5)
    weight = torch.sigmoid(zeta * tail - 2.0)
    return torch.where(weight < floor, 0.0, weight)
