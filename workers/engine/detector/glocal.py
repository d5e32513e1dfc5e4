"""The "glocal" distances of O3: 1-NN cosine (local) and shrinkage Mahalanobis (global), per layer.

Memory: a dense d x d precision per layer per request (6 x 384^2 floats, 3.5 GB for 1000 requests)
is never formed. The Ledoit-Wolf covariance of n samples is Sigma = a I + b Z^T Z (Z the n x d
centred samples, a = shrinkage * trace(S)/d, b = (1 - shrinkage)/n), so by the Woodbury identity

    Sigma^-1 = (I - Z^T K Z) / a,        K = b (a I_n + b Z Z^T)^-1   (n x n).

With v = q - mean, every term of v^T Sigma^-1 v comes from the similarities X q that the 1-NN
cosine computes anyway (Z v = X q - (mean . q) - X mean + |mean|^2), so the global distance costs
one n x n product on top of the local one. Stored per layer: the samples, their mean, the n x n
core K and the scalar a.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sklearn.covariance import ledoit_wolf_shrinkage

# Keeps a > 0 when the samples have no spread (a single sample, or exact duplicates).
MIN_ISOTROPIC_VARIANCE = 1e-8


@dataclass(frozen=True)
class GlocalFit:
    """One request's fitted statistics, all layers stacked (float32)."""

    features: torch.Tensor  # [L, n, d] L2-normalised samples of D_used
    mean: torch.Tensor  # [L, d]
    core: torch.Tensor  # [L, n, n] the Woodbury core K
    isotropic: torch.Tensor  # [L] the scalar a of Sigma = a I + b Z^T Z

    @property
    def num_samples(self) -> int:
        return int(self.features.shape[1])


def fit_layer(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mean, Woodbury core K and isotropic part a of the Ledoit-Wolf covariance of [n, d] samples."""
    x = samples.double()
    n, d = x.shape
    mean = x.mean(0)
    z = x - mean
    shrinkage = float(ledoit_wolf_shrinkage(z.cpu().numpy(), assume_centered=True)) if n > 1 else 1.0
    trace = float((z * z).sum()) / n
    a = max(shrinkage * trace / d, MIN_ISOTROPIC_VARIANCE)
    b = (1.0 - shrinkage) / n
    eigenvalues, eigenvectors = torch.linalg.eigh(z @ z.T)
    scale = b / (a + b * eigenvalues.clamp_min(0.0))
    core = (eigenvectors * scale) @ eigenvectors.T
    return mean, core, a


def fit_glocal(features: torch.Tensor) -> GlocalFit:
    """Fit every layer of features [n, L, d] (the D_used samples)."""
    per_layer = [fit_layer(features[:, layer]) for layer in range(features.shape[1])]
    return GlocalFit(
        features=features.transpose(0, 1).float().contiguous(),
        mean=torch.stack([mean for mean, _, _ in per_layer]).float(),
        core=torch.stack([core for _, core, _ in per_layer]).float(),
        isotropic=torch.tensor([a for _, _, a in per_layer], dtype=torch.float32, device=features.device),
    )


class GlocalStack:
    """Many requests' fits padded to a common sample count, scored together with batched matmuls.

    Padding rows repeat the request's first sample (so the 1-NN maximum is unchanged) and get zero
    rows and columns in K (so they add nothing to the Mahalanobis term). Immutable once built.
    """

    def __init__(self, fits: Sequence[GlocalFit]):
        if not fits:
            raise ValueError("GlocalStack needs at least one fit")
        n_max = max(fit.num_samples for fit in fits)
        layers, _, dim = fits[0].features.shape
        samples, cores = [], []
        for fit in fits:
            n = fit.num_samples
            pad = fit.features[:, :1].expand(layers, n_max - n, dim)
            samples.append(torch.cat([fit.features, pad], dim=1))
            cores.append(torch.nn.functional.pad(fit.core, (0, n_max - n, 0, n_max - n)))
        self.num_units = len(fits)
        self.num_samples = n_max
        features = torch.stack(samples, dim=1)  # [L, U, n, d]
        self.mean = torch.stack([fit.mean for fit in fits], dim=1)  # [L, U, d]
        self.core = torch.stack(cores, dim=1)  # [L, U, n, n]
        self.inv_isotropic = 1.0 / torch.stack([fit.isotropic for fit in fits], dim=1)  # [L, U]
        self.mean_sq = (self.mean * self.mean).sum(-1)  # [L, U]
        # Z mean = X mean - |mean|^2, per sample: the constant part of Z v.
        self.z_mean = torch.einsum("lund,lud->lun", features, self.mean) - self.mean_sq[..., None]
        self.features_t = features.reshape(layers, -1, dim).transpose(1, 2).contiguous()  # [L, d, U*n]

    def distances(self, queries: torch.Tensor, mahalanobis: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """1-NN cosine and squared Mahalanobis distance of queries [m, L, d]: each [m, L, U].
        mahalanobis=False skips the second (returned as zeros) when no request weighs it."""
        q = queries.transpose(0, 1)  # [L, m, d]
        layers, m, _ = q.shape
        sims = torch.bmm(q, self.features_t).view(layers, m, self.num_units, self.num_samples)
        cosine = sims.amax(-1)
        if not mahalanobis:
            return cosine.transpose(0, 1), torch.zeros_like(cosine).transpose(0, 1)
        q_mean = torch.bmm(q, self.mean.transpose(1, 2))  # [L, m, U]
        zv = (sims - q_mean[..., None] - self.z_mean[:, None]).transpose(1, 2)  # [L, U, m, n]
        quadratic = (torch.matmul(zv, self.core) * zv).sum(-1).transpose(1, 2)  # [L, m, U]
        v_sq = (q * q).sum(-1, keepdim=True) - 2.0 * q_mean + self.mean_sq[:, None]
        mahalanobis_sq = ((v_sq - quadratic) * self.inv_isotropic[:, None]).clamp_min(0.0)
        return cosine.transpose(0, 1), mahalanobis_sq.transpose(0, 1)
