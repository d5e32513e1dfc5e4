"""A request's scorer: glocal layer scores -> one-class SVM score u(x) -> calibrated weight w(x).

Per layer l, s_l = local_weight * c_l - global_weight * g_l^2 (c_l the 1-NN cosine, g_l the
Mahalanobis distance). The reference writes -1000 c_l - 0.5 g_l^2: its local term rewards
DISsimilarity while its global term rewards closeness. We flip the local sign so both terms say
"higher = more like the forget data", keeping the reference's magnitudes as defaults.

The layer scores are standardised with D_used statistics and shifted so the D_used mean sits
SVM_ORIGIN standard deviations above 0 in every layer: a linear one-class SVM separates the data
from the origin, so the origin must stand for "unlike the forget data" (its weights then come out
positive and u is increasing in every s_l). Without the shift the origin would sit in the middle of
the data and the SVM would be degenerate.

Out-of-sample fitting: a D_used text's own features would be its own nearest neighbour (cosine 1)
and sit inside the fitted covariance, so the SVM and the calibration use cross-fitted D_used scores
(K folds over texts) plus the held-out D_rest scored by the final fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from sklearn.svm import OneClassSVM

from workers.unlearning.detector.calibration import empirical_cdf, gate_weight
from workers.unlearning.detector.config import DetectorConfig
from workers.unlearning.detector.glocal import GlocalFit, GlocalStack, fit_glocal

SVM_ORIGIN = 3.0
# Bounds the [layers, windows, units, samples] intermediate of one scoring chunk (elements).
CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class UnitScorer:
    """Everything one request needs to score features; plain tensors (saved as safetensors)."""

    glocal: GlocalFit
    score_shift: torch.Tensor  # [L]
    score_scale: torch.Tensor  # [L]
    svm_coef: torch.Tensor  # [L]
    svm_intercept: torch.Tensor  # [1]
    references: torch.Tensor  # [N] sorted u of the forget texts (calibration)
    local_weight: float
    global_weight: float
    zeta: float
    weight_floor: float

    TENSOR_NAMES = ("score_shift", "score_scale", "svm_coef", "svm_intercept", "references")
    GLOCAL_NAMES = ("features", "mean", "core", "isotropic")
    SCALAR_NAMES = ("local_weight", "global_weight", "zeta", "weight_floor")

    def tensors(self) -> dict[str, torch.Tensor]:
        named = {name: getattr(self, name) for name in self.TENSOR_NAMES}
        named.update({f"glocal.{name}": getattr(self.glocal, name) for name in self.GLOCAL_NAMES})
        return {name: tensor.detach().cpu().contiguous() for name, tensor in named.items()}

    def scalars(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.SCALAR_NAMES}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], scalars: dict[str, float], device: torch.device) -> "UnitScorer":
        glocal = GlocalFit(**{name: tensors[f"glocal.{name}"].to(device) for name in cls.GLOCAL_NAMES})
        arrays = {name: tensors[name].to(device) for name in cls.TENSOR_NAMES}
        return cls(glocal=glocal, **arrays, **{name: float(scalars[name]) for name in cls.SCALAR_NAMES})


def layer_scores(cosine: torch.Tensor, mahalanobis_sq: torch.Tensor, local_weight, global_weight) -> torch.Tensor:
    """s_l = local_weight * c_l - global_weight * g_l^2 (higher = more forget-like)."""
    return local_weight * cosine - global_weight * mahalanobis_sq


def segment_max(values: torch.Tensor, owner: Sequence[int], count: int) -> torch.Tensor:
    """Row-wise maximum of values [windows, ...] over the windows of each of `count` texts."""
    index = torch.as_tensor(owner, device=values.device)
    out = torch.full((count, *values.shape[1:]), -torch.inf, dtype=values.dtype, device=values.device)
    index = index.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    return out.scatter_reduce(0, index, values, reduce="amax")


class ScorerStack:
    """Several requests' scorers stacked so a batch of features is scored against all of them with
    batched matmuls (no loop over requests). Immutable once built, so safe to share between threads."""

    def __init__(self, units: Sequence[UnitScorer]):
        self.num_units = len(units)
        self.glocal = GlocalStack([unit.glocal for unit in units])
        self.shift = torch.stack([unit.score_shift for unit in units], dim=1)  # [L, U]
        self.scale = torch.stack([unit.score_scale for unit in units], dim=1)
        self.coef = torch.stack([unit.svm_coef for unit in units], dim=1)
        self.intercept = torch.cat([unit.svm_intercept for unit in units])  # [U]
        device = self.intercept.device

        def vector(name: str) -> torch.Tensor:
            return torch.tensor([getattr(unit, name) for unit in units], dtype=torch.float32, device=device)

        self.local_weight, self.global_weight = vector("local_weight"), vector("global_weight")
        self.zeta, self.weight_floor = vector("zeta"), vector("weight_floor")
        self.counts = torch.tensor([len(unit.references) for unit in units], device=device)
        self.references = torch.full((len(units), int(self.counts.max())), torch.inf, device=device)
        for row, unit in enumerate(units):
            self.references[row, : len(unit.references)] = unit.references

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """u [m, U] of features [m, L, d] (one row per window)."""
        layers = features.shape[1]
        per_window = layers * self.num_units * self.glocal.num_samples
        chunk = max(1, CHUNK_ELEMENTS // per_window)
        out = []
        for start in range(0, features.shape[0], chunk):
            cosine, mahalanobis_sq = self.glocal.distances(features[start : start + chunk])
            s = layer_scores(cosine, mahalanobis_sq, self.local_weight, self.global_weight)  # [m, L, U]
            z = (s - self.shift) / self.scale
            out.append((z * self.coef).sum(1) + self.intercept)
        if not out:
            return features.new_zeros(0, self.num_units)
        return torch.cat(out)

    def weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Gate weights [m, U] of scores u [m, U] (see calibration)."""
        return gate_weight(empirical_cdf(scores, self.references, self.counts), self.zeta, self.weight_floor)


def _text_folds(owner: Sequence[int], folds: int, seed: int) -> torch.Tensor:
    """Fold number of each window; all windows of a text share a fold."""
    texts = sorted(set(owner))
    generator = np.random.default_rng(seed)
    fold_of_text = dict(zip(generator.permutation(texts).tolist(), [i % folds for i in range(len(texts))]))
    return torch.tensor([fold_of_text[text] for text in owner])


def fit_unit_scorer(
    used: torch.Tensor,
    used_owner: Sequence[int],
    rest: torch.Tensor,
    rest_owner: Sequence[int],
    config: DetectorConfig,
) -> tuple[UnitScorer, dict]:
    """Fit a request's scorer on D_used window features [n, L, d] and calibrate it with D_rest.

    used_owner / rest_owner give each window's text index (0-based, contiguous per split).
    Returns the scorer and a few diagnostics for the detector's metadata.
    """
    n_used, n_rest = max(used_owner) + 1, max(rest_owner) + 1
    folds = min(config.cross_fit_folds, n_used)
    fold = _text_folds(used_owner, folds, config.seed).to(used.device)
    s_used = torch.empty(used.shape[0], used.shape[1], dtype=torch.float32, device=used.device)
    for k in range(folds):
        held = fold == k
        stack = GlocalStack([fit_glocal(used[~held])])
        cosine, mahalanobis_sq = stack.distances(used[held])
        s_used[held] = layer_scores(cosine, mahalanobis_sq, config.local_weight, config.global_weight)[..., 0]

    center = s_used.mean(0)
    scale = s_used.std(0) if s_used.shape[0] > 1 else torch.ones_like(center)
    scale = scale.clamp_min(1e-6 * (center.abs().max() + 1.0))
    shift = center - SVM_ORIGIN * scale
    z_used = ((s_used - shift) / scale).double().cpu().numpy()
    svm = OneClassSVM(kernel="linear", nu=config.nu).fit(z_used)
    coef = torch.tensor(svm.coef_[0], dtype=torch.float32, device=used.device)
    intercept = torch.tensor([svm.intercept_[0]], dtype=torch.float32, device=used.device)
    u_used = segment_max((torch.from_numpy(z_used).float().to(used.device) * coef).sum(1) + intercept, used_owner, n_used)

    unit = UnitScorer(
        glocal=fit_glocal(used),
        score_shift=shift,
        score_scale=scale,
        svm_coef=coef,
        svm_intercept=intercept,
        references=torch.zeros(1, device=used.device),  # replaced below, once D_rest is scored
        local_weight=config.local_weight,
        global_weight=config.global_weight,
        zeta=config.zeta,
        weight_floor=config.weight_floor,
    )
    u_rest = segment_max(ScorerStack([unit]).scores(rest)[:, 0], rest_owner, n_rest)
    references = torch.sort(torch.cat([u_used, u_rest])).values
    unit = replace(unit, references=references)
    diagnostics = {
        "used_texts": n_used,
        "rest_texts": n_rest,
        "used_windows": int(used.shape[0]),
        "rest_windows": int(rest.shape[0]),
        "cross_fit_folds": folds,
        "svm_coef": coef.tolist(),
        "u_used_median": float(u_used.median()),
        "u_rest_median": float(u_rest.median()),
    }
    return unit, diagnostics
