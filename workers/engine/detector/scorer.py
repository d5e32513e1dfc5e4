"""A request's scorer: glocal layer scores -> one-class SVM score u(x) -> calibrated weight w(x).

Per layer l, s_l = local_weight * c_l - global_weight * g_l^2 (c_l the 1-NN cosine, g_l the
Mahalanobis distance). The reference writes -1000 c_l - 0.5 g_l^2: its local term rewards
DISsimilarity while its global term rewards closeness. We flip the local sign so both terms say
"higher = more like the forget data", keeping the reference's magnitudes as defaults.

The layer scores are standardised with D_used statistics and shifted so the D_used mean sits
SVM_ORIGIN standard deviations above 0 in every layer (further when needed: the origin is also kept
one standard deviation below the lowest D_used score): a linear one-class SVM separates the data
from the origin, so the origin must stand for "unlike the forget data" (its weights then come out
positive and u is increasing in every s_l). Without the shift the origin would sit in the middle of
the data and the SVM would be degenerate.

Out-of-sample fitting: a D_used text's own features would be its own nearest neighbour (cosine 1)
and sit inside the fitted covariance, so the SVM and the calibration use cross-fitted D_used scores
(K folds over texts) plus the held-out D_rest scored by the final fit.

Name test (negatives.py): when the request has synthetic name negatives (its forget windows with
the subject's name replaced), each window also gets a name margin m = c_forget - c_negative (1-NN
cosine to the forget windows minus 1-NN cosine to the negative centroids, mean over layers). A
window with m below the request's threshold tau scores -inf: it cannot raise the prompt's maximum,
so a prompt whose every window looks more like "the same text about someone else" gets weight 0.
tau comes from forget data only (name_threshold): between the cross-fitted margins of the negatives
and those of the forget texts, at equal z-scores from the two means. Requests without negatives
(no subject found, `name_negatives=0`, or detectors saved before the name test) have tau = -inf.
The calibration references are the glocal scores without the test (the test is a veto, not a shift).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.svm import OneClassSVM

from workers.engine.detector.calibration import empirical_cdf, gate_weight
from workers.engine.detector.config import DetectorConfig
from workers.engine.detector.glocal import GlocalFit, GlocalStack, fit_glocal

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
    gate_threshold: float = 0.0  # decisive gate: w >= this -> 1, else 0; 0 = O3's soft weights (detectors before format 3)
    negatives: torch.Tensor | None = None  # [L, k, d] L2-normalised negative centroids (k may be 0)
    name_threshold: torch.Tensor | None = None  # [1] tau of the name test; -inf: no test

    TENSOR_NAMES = ("score_shift", "score_scale", "svm_coef", "svm_intercept", "references")
    OPTIONAL_TENSOR_NAMES = ("negatives", "name_threshold")  # absent in detectors saved before the name test
    GLOCAL_NAMES = ("features", "mean", "core", "isotropic")
    SCALAR_NAMES = ("local_weight", "global_weight", "zeta", "weight_floor", "gate_threshold")
    SCALAR_DEFAULTS = {"gate_threshold": 0.0}  # absent from detectors saved before the decisive gate

    def __post_init__(self) -> None:
        device = self.svm_intercept.device
        if self.negatives is None:
            layers, _, dim = self.glocal.features.shape
            object.__setattr__(self, "negatives", torch.zeros(layers, 0, dim, device=device))
        if self.name_threshold is None or self.negatives.shape[1] == 0:
            object.__setattr__(self, "name_threshold", torch.full((1,), -torch.inf, device=device))

    def cosine_floor(self) -> float:
        """c0: the embedding weight is 0 unless some layer's 1-NN cosine to the stored windows
        reaches c0 (-inf when no such floor holds). The seed of a candidate prefilter (issue 12).

        Exact: w(u) = 0 below the lowest calibration score (F = 0 gives sigmoid(-2), under the
        floor and the decisive threshold), u = sum_l coef_l (s_l - shift_l) / scale_l + intercept
        with coef_l > 0, and s_l = local c_l - global g_l^2 <= local c_l; so u <= a . c + b with
        a_l > 0, and a . c <= sum(a) max_l c_l. The name test only ever lowers u."""
        coef, scale, shift = self.svm_coef.double(), self.score_scale.double(), self.score_shift.double()
        lowest_weight = 1.0 / (1.0 + math.exp(2.0))  # sigmoid(-2), the weight of F(u) = 0
        if self.local_weight <= 0 or bool((coef <= 0).any()) or max(self.weight_floor, self.gate_threshold) <= lowest_weight:
            return -math.inf
        slope = coef * self.local_weight / scale
        offset = float(self.svm_intercept.double().sum()) - float((coef * shift / scale).sum())
        return (float(self.references.min()) - offset) / float(slope.sum())

    @property
    def has_name_test(self) -> bool:
        return self.negatives.shape[1] > 0 and bool(torch.isfinite(self.name_threshold).all())

    def tensors(self) -> dict[str, torch.Tensor]:
        named = {name: getattr(self, name) for name in self.TENSOR_NAMES + self.OPTIONAL_TENSOR_NAMES}
        named.update({f"glocal.{name}": getattr(self.glocal, name) for name in self.GLOCAL_NAMES})
        return {name: tensor.detach().cpu().contiguous() for name, tensor in named.items()}

    def scalars(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.SCALAR_NAMES}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], scalars: dict[str, float], device: torch.device) -> UnitScorer:
        glocal = GlocalFit(**{name: tensors[f"glocal.{name}"].to(device) for name in cls.GLOCAL_NAMES})
        arrays = {name: tensors[name].to(device) for name in cls.TENSOR_NAMES}
        arrays.update({name: tensors[name].to(device) for name in cls.OPTIONAL_TENSOR_NAMES if name in tensors})
        values = {name: float(scalars[name] if name in scalars else cls.SCALAR_DEFAULTS[name]) for name in cls.SCALAR_NAMES}
        return cls(glocal=glocal, **arrays, **values)


def layer_scores(cosine: torch.Tensor, mahalanobis_sq: torch.Tensor, local_weight, global_weight) -> torch.Tensor:
    """s_l = local_weight * c_l - global_weight * g_l^2 (higher = more forget-like)."""
    return local_weight * cosine - global_weight * mahalanobis_sq


class NegativeStack:
    """Many requests' negative centroids padded to a common count, for the 1-NN cosine c_negative.

    Padding repeats a real centroid (the maximum is unchanged); a request without negatives gets
    one zero vector (cosine 0) and tau = -inf, so its test never fires. Immutable once built."""

    def __init__(self, negatives: Sequence[torch.Tensor]):
        layers, _, dim = negatives[0].shape
        k_max = max(1, max(n.shape[1] for n in negatives))
        padded = []
        for n in negatives:
            if n.shape[1] == 0:
                n = n.new_zeros(layers, 1, dim)
            padded.append(torch.cat([n, n[:, :1].expand(layers, k_max - n.shape[1], dim)], dim=1))
        self.num_units, self.num_negatives = len(negatives), k_max
        self.features_t = torch.stack(padded, dim=1).reshape(layers, -1, dim).transpose(1, 2).contiguous()  # [L, d, U*k]

    def cosine(self, queries: torch.Tensor, units: torch.Tensor | None = None) -> torch.Tensor:
        """1-NN cosine of queries [m, L, d] to each request's negatives: [m, L, U], or [m, L, s]
        for the s requests indexed by `units` only (their columns are gathered first, so the cost
        grows with s, not with U)."""
        q = queries.transpose(0, 1)  # [L, m, d]
        features_t, count = self.features_t, self.num_units
        if units is not None:
            layers, dim, _ = features_t.shape
            features_t = features_t.view(layers, dim, count, self.num_negatives).index_select(2, units)
            features_t, count = features_t.reshape(layers, dim, -1), int(units.numel())
        sims = torch.bmm(q, features_t).view(q.shape[0], q.shape[1], count, self.num_negatives)
        return sims.amax(-1).transpose(0, 1)


# A window this close to a stored forget window (cosine, every layer) IS a forget text: it passes the
# name test whatever its margin (a short text's name moves its embedding little, so its own margin
# can be as small as a sibling's).
EXACT_COSINE = 0.9999


def name_margin(cosine: torch.Tensor, negative_cosine: torch.Tensor) -> torch.Tensor:
    """m = c_forget - c_negative, averaged over layers: [m, L, U] -> [m, U]; +inf for a window
    that equals a forget window (EXACT_COSINE)."""
    margin = (cosine - negative_cosine).mean(1)
    return torch.where((cosine >= EXACT_COSINE).all(1), torch.inf, margin)


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
        self.needs_mahalanobis = bool((self.global_weight != 0).any())  # the default weighs the local term only
        self.zeta, self.weight_floor = vector("zeta"), vector("weight_floor")
        self.gate_threshold = vector("gate_threshold")
        self.negatives = NegativeStack([unit.negatives for unit in units])
        self.name_threshold = torch.cat([unit.name_threshold for unit in units])  # [U]
        self.has_threshold = torch.isfinite(self.name_threshold)  # [U] requests with a name test
        self.name_test = bool(self.has_threshold.any())
        self.counts = torch.tensor([len(unit.references) for unit in units], device=device)
        self.references = torch.full((len(units), int(self.counts.max())), torch.inf, device=device)
        for row, unit in enumerate(units):
            self.references[row, : len(unit.references)] = unit.references

    def scores(self, features: torch.Tensor, name_test: bool = True) -> torch.Tensor:
        """u [m, U] of features [m, L, d] (one row per window); windows that would get a gate
        weight above 0 for a request but fail its name test score -inf for it (name_test=False:
        the glocal score alone)."""
        return self.scores_and_margins(features, name_test)[0]

    def scores_and_margins(self, features: torch.Tensor, name_test: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(u [m, U], name margin m [m, U]); margins are +inf for requests without a name test.

        With name_test, margins are computed only where the glocal score alone would give a weight
        above 0 (elsewhere +inf): the veto cannot change a zero weight, and skipping those pairs
        keeps the test's cost independent of how many requests are loaded (with 1000 units a
        prompt is a candidate for a handful at most). Without it (fitting), every margin."""
        layers = features.shape[1]
        per_window = layers * self.num_units * (self.glocal.num_samples + self.negatives.num_negatives)
        chunk = max(1, CHUNK_ELEMENTS // per_window)
        out, margins = [], []
        for start in range(0, features.shape[0], chunk):
            queries = features[start : start + chunk]
            cosine, mahalanobis_sq = self.glocal.distances(queries, self.needs_mahalanobis)
            s = layer_scores(cosine, mahalanobis_sq, self.local_weight, self.global_weight)  # [m, L, U]
            z = (s - self.shift) / self.scale
            u = (z * self.coef).sum(1) + self.intercept
            margin = torch.full_like(u, torch.inf)
            if self.name_test and not name_test:
                margin = torch.where(self.has_threshold, name_margin(cosine, self.negatives.cosine(queries)), torch.inf)
            elif self.name_test:  # margins of candidates only, each with a finite threshold
                candidate = (self.weights(u) > 0) & self.has_threshold
                units = candidate.any(0).nonzero().flatten()
                if units.numel():
                    margin[:, units] = name_margin(cosine.index_select(2, units), self.negatives.cosine(queries, units))
                u = torch.where(candidate & (margin < self.name_threshold), -torch.inf, u)
            out.append(u)
            margins.append(margin)
        if not out:
            empty = features.new_zeros(0, self.num_units)
            return empty, empty.clone()
        return torch.cat(out), torch.cat(margins)

    def soft_weights(self, scores: torch.Tensor) -> torch.Tensor:
        """O3's calibrated weights [m, U] of scores u [m, U] (see calibration), before snapping."""
        return gate_weight(empirical_cdf(scores, self.references, self.counts), self.zeta, self.weight_floor)

    def weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Gate weights [m, U]: 1 where the soft weight reaches the unit's gate_threshold, else 0
        (the soft weight itself for units with gate_threshold 0)."""
        soft = self.soft_weights(scores)
        snapped = (soft >= self.gate_threshold).to(soft.dtype)
        return torch.where(self.gate_threshold > 0, snapped, soft)


def _text_folds(owner: Sequence[int], folds: int, seed: int, groups: Sequence[int] | None = None) -> torch.Tensor:
    """Fold number of each window; all windows of a text share a fold, and so do all texts of a
    group (`groups[text]`: one phrasing about several subjects, see negatives.phrasing_key)."""
    group_of = (lambda text: groups[text]) if groups is not None else (lambda text: text)
    keys = sorted({group_of(text) for text in owner})
    generator = np.random.default_rng(seed)
    fold_of_key = dict(zip(generator.permutation(keys).tolist(), [i % folds for i in range(len(keys))]))
    return torch.tensor([fold_of_key[group_of(text)] for text in owner])


@dataclass(frozen=True)
class Negatives:
    """A request's synthetic name negatives as window features (negatives.py): `copies` [c, L, d],
    the single name-swapped copies of the D_used windows, and `centroids` [k, L, d], their average
    per window and kind of swap (what the scorer stores). `centroid_owner`: each centroid's source
    text (index in D_used); `copy_group`: each copy's centroid."""

    centroids: torch.Tensor
    centroid_owner: Sequence[int]
    copies: torch.Tensor
    copy_group: Sequence[int]
    rest_centroids: torch.Tensor | None = None  # [k2, L, d] the same for the D_rest windows (stored after calibration)


def copy_margins(negatives: Negatives, cosine: torch.Tensor) -> torch.Tensor:
    """Name margins of the single copies, as a real other person's prompt would get them: c_forget
    is `cosine` [c, L] (1-NN cosine to ALL the D_used windows, their source text included, as a
    sibling asked in a trained phrasing finds it), c_negative the 1-NN cosine to the centroids, with
    the copy's own centroid recomputed without the copy (leave-one-out; dropped for a single copy)."""
    copies, centroids = negatives.copies, negatives.centroids  # [c, L, d], [k, L, d]
    group = torch.as_tensor(list(negatives.copy_group), device=copies.device)
    sims = torch.einsum("cld,kld->clk", copies, centroids)
    sums = torch.zeros_like(centroids).index_add_(0, group, copies)  # un-normalised group sums
    counts = torch.zeros(centroids.shape[0], device=copies.device).index_add_(0, group, torch.ones_like(group, dtype=torch.float32))
    loo = torch.nn.functional.normalize(sums[group] - copies, dim=-1)
    loo_cosine = (copies * loo).sum(-1)  # [c, L]
    loo_cosine = torch.where(counts[group][:, None] > 1, loo_cosine, -torch.inf)
    own = torch.nn.functional.one_hot(group, centroids.shape[0]).bool()[:, None, :]  # [c, 1, k]
    sims = sims.masked_fill(own, -torch.inf)
    negative_cosine = torch.maximum(sims.amax(-1), loo_cosine)
    return (cosine - negative_cosine).mean(1)


def term_weights(cosine: torch.Tensor, mahalanobis_sq: torch.Tensor, config: DetectorConfig) -> tuple[float, float]:
    """(local, global) weights of s_l = local * c_l - global * g_l^2 for this request.

    With config.balance_terms, the global weight is rescaled so that the two terms have the same
    standard deviation over the cross-fitted D_used windows (all layers pooled): the reference's
    1000 and 0.5 were set for its own features; on L2-normalised sentence embeddings g^2 spreads
    about 25 times wider than 1000 c, so the global term alone decided, and it ranks a new phrasing
    of a forget question below the forget set's own phrasings about other subjects."""
    local, global_ = float(config.local_weight), float(config.global_weight)
    if not config.balance_terms or local == 0 or global_ == 0 or cosine.numel() < 2:
        return local, global_
    spread_local = float((local * cosine).std())
    spread_global = float((global_ * mahalanobis_sq).std())
    if not (spread_local > 0 and spread_global > 0):
        return local, global_
    return local, global_ * spread_local / spread_global


def _owner_max(values: torch.Tensor, keys: torch.Tensor, owner: Sequence[int], count: int) -> torch.Tensor:
    """Per text, `values` at the window where `keys` is largest (values, keys: [windows])."""
    index = torch.as_tensor(owner, device=values.device)
    best = segment_max(keys, owner, count)
    hit = keys == best[index]
    out = torch.full((count,), torch.nan, dtype=values.dtype, device=values.device)
    for window in torch.nonzero(hit).flatten().tolist():  # ties: the last window wins; texts have few windows
        out[index[window]] = values[window]
    return out


def name_threshold(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """tau of the name test from cross-fitted margins of the forget texts (positive) and of the
    synthetic negatives: the point between the two means that is the same number of each group's
    own standard deviations away from both (equal z-scores). Means and spreads, not extremes, so
    one odd forget text does not move it; with no spread at all, the midpoint of the means."""
    mean_p, mean_n = positive.mean(), negative.mean()
    sd_p = positive.std() if positive.numel() > 1 else positive.new_zeros(())
    sd_n = negative.std() if negative.numel() > 1 else negative.new_zeros(())
    total = sd_p + sd_n
    share = sd_n / total if float(total) > 0 else torch.tensor(0.5, device=positive.device)
    return mean_n + (mean_p - mean_n) * share


def _cross_fit_distances(
    used: torch.Tensor, used_owner: Sequence[int], fold: torch.Tensor, folds: int, negatives: Negatives | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each D_used window's cosine and squared Mahalanobis distances [n, L], and its name margin [n]
    (NaN without negatives), measured by a glocal fitted on the other folds only (cross-fitting)."""
    if negatives is not None:
        fold_of_text = {int(o): int(f) for o, f in zip(used_owner, fold.tolist())}
        centroid_fold = torch.tensor([fold_of_text[int(o)] for o in negatives.centroid_owner], device=used.device)
    cosine_used = torch.empty(used.shape[0], used.shape[1], dtype=torch.float32, device=used.device)
    mahalanobis_used = torch.empty_like(cosine_used)
    margin_used = torch.full((used.shape[0],), torch.nan, device=used.device)
    for k in range(folds):
        held = fold == k
        stack = GlocalStack([fit_glocal(used[~held])])
        cosine, mahalanobis_sq = stack.distances(used[held])
        cosine_used[held], mahalanobis_used[held] = cosine[..., 0], mahalanobis_sq[..., 0]
        if negatives is not None and bool((centroid_fold != k).any()):
            train_negatives = NegativeStack([negatives.centroids[centroid_fold != k].transpose(0, 1)])
            margin_used[held] = name_margin(cosine, train_negatives.cosine(used[held]))[:, 0]
    return cosine_used, mahalanobis_used, margin_used


def _fit_layer_svm(s_used: torch.Tensor, config: DetectorConfig) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor, bool]:
    """The per-layer scores standardised (shift, scale) and combined by a linear one-class SVM:
    (shift, scale, z_used as float64 numpy, coef, intercept, whether the SVM degenerated and the
    mean standardised score stands in for it)."""
    center = s_used.mean(0)
    scale = s_used.std(0) if s_used.shape[0] > 1 else torch.ones_like(center)
    scale = scale.clamp_min(1e-6 * (center.abs().max() + 1.0))
    # The origin must lie below every D_used vector: one outlier on the far side of it makes the
    # linear one-class SVM degenerate (weights ~0, with either sign; seen on a 3-person request in
    # lora mode, where every prompt then got the same score).
    shift = torch.minimum(center - SVM_ORIGIN * scale, s_used.min(0).values - scale)
    z_used = ((s_used - shift) / scale).double().cpu().numpy()
    svm = OneClassSVM(kernel="linear", nu=config.nu).fit(z_used)
    coef = torch.tensor(svm.coef_[0], dtype=torch.float32, device=s_used.device)
    intercept = torch.tensor([svm.intercept_[0]], dtype=torch.float32, device=s_used.device)
    svm_fallback = not bool((coef > 0).all() and torch.isfinite(coef).all())
    if svm_fallback:  # still degenerate: the mean standardised layer score (monotone in every s_l)
        coef = torch.full_like(coef, 1.0 / coef.numel())
        intercept = torch.zeros_like(intercept)
    return shift, scale, z_used, coef, intercept, svm_fallback


def fit_unit_scorer(
    used: torch.Tensor,
    used_owner: Sequence[int],
    rest: torch.Tensor,
    rest_owner: Sequence[int],
    config: DetectorConfig,
    negatives: Negatives | None = None,
    used_groups: Sequence[int] | None = None,
) -> tuple[UnitScorer, dict]:
    """Fit a request's scorer on D_used window features [n, L, d] and calibrate it with D_rest.

    used_owner / rest_owner give each window's text index (0-based, contiguous per split).
    negatives: the synthetic name negatives (negatives.py), or None for no name test.
    used_groups: per D_used text, its phrasing group (texts of one group share a fold), or None.
    Returns the scorer and a few diagnostics for the detector's metadata.
    """
    n_used, n_rest = max(used_owner) + 1, max(rest_owner) + 1
    if used_groups is not None:
        renumber: dict[int, int] = {}
        used_groups = [renumber.setdefault(g, len(renumber)) for g in used_groups]  # one text per group: the text folds
        if len(renumber) < 2:
            used_groups = None  # one phrasing only: fold over texts
    folds = min(config.cross_fit_folds, len(set(used_groups)) if used_groups is not None else n_used)
    fold = _text_folds(used_owner, folds, config.seed, used_groups).to(used.device)
    has_negatives = negatives is not None and negatives.centroids.shape[0] > 0
    cosine_used, mahalanobis_used, margin_used = _cross_fit_distances(used, used_owner, fold, folds, negatives if has_negatives else None)
    local_weight, global_weight = term_weights(cosine_used, mahalanobis_used, config)
    s_used = layer_scores(cosine_used, mahalanobis_used, local_weight, global_weight)
    shift, scale, z_used, coef, intercept, svm_fallback = _fit_layer_svm(s_used, config)
    u_used_windows = (torch.from_numpy(z_used).float().to(used.device) * coef).sum(1) + intercept
    u_used = segment_max(u_used_windows, used_owner, n_used)

    unit = UnitScorer(
        glocal=fit_glocal(used),
        score_shift=shift,
        score_scale=scale,
        svm_coef=coef,
        svm_intercept=intercept,
        references=torch.zeros(1, device=used.device),  # replaced below, once D_rest is scored
        local_weight=local_weight,
        global_weight=global_weight,
        zeta=config.zeta,
        weight_floor=config.weight_floor,
        gate_threshold=config.gate_threshold,
        negatives=negatives.centroids.transpose(0, 1).contiguous() if has_negatives else None,
        name_threshold=torch.zeros(1, device=used.device) if has_negatives else None,  # provisional: margins below
    )
    stack = ScorerStack([unit])
    u_rest_windows, margin_rest = stack.scores_and_margins(rest, name_test=False)
    u_rest = segment_max(u_rest_windows[:, 0], rest_owner, n_rest)
    references = torch.sort(torch.cat([u_used, u_rest])).values
    diagnostics = {
        "used_texts": n_used,
        "rest_texts": n_rest,
        "used_windows": int(used.shape[0]),
        "rest_windows": int(rest.shape[0]),
        "cross_fit_folds": folds,
        "svm_coef": coef.tolist(),
        "svm_fallback": svm_fallback,
        "term_weights": {"local": local_weight, "global": global_weight},
        "u_used_median": float(u_used.median()),
        "u_rest_median": float(u_rest.median()),
    }
    threshold = None
    if has_negatives:
        negative_margins = copy_margins(negatives, stack.glocal.distances(negatives.copies)[0][..., 0])
        positive_margins = torch.cat(
            [
                _owner_max(margin_used, u_used_windows, used_owner, n_used),
                _owner_max(margin_rest[:, 0], u_rest_windows[:, 0], rest_owner, n_rest),
            ]
        )
        positive_margins = positive_margins[torch.isfinite(positive_margins)]
        negative_margins = negative_margins[torch.isfinite(negative_margins)]
        if negative_margins.numel() and positive_margins.numel():
            threshold = name_threshold(positive_margins, negative_margins)
            diagnostics["name_test"] = {
                "negatives": int(negatives.centroids.shape[0]),
                "threshold": float(threshold),
                "negative_margin_mean": float(negative_margins.mean()),
                "negative_margin_max": float(negative_margins.max()),
                "positive_margin_mean": float(positive_margins.mean()),
                "positive_margin_min": float(positive_margins.min()),
            }
    # Calibrated out of sample, the scorer then keeps every forget window: a forget text that was
    # held out for calibration (D_rest) is still a forget text, and must find itself as its 1-NN.
    keep_rest = config.store_calibration_windows
    stored_negatives = None
    if threshold is not None:
        stored_negatives = negatives.centroids
        if keep_rest and negatives.rest_centroids is not None and negatives.rest_centroids.shape[0]:
            stored_negatives = torch.cat([stored_negatives, negatives.rest_centroids])
        stored_negatives = stored_negatives.transpose(0, 1).contiguous()
    unit = replace(
        unit,
        glocal=fit_glocal(torch.cat([used, rest])) if keep_rest else unit.glocal,
        references=references,
        negatives=stored_negatives,
        name_threshold=threshold.reshape(1).float() if threshold is not None else None,
    )
    diagnostics["stored_windows"] = int(used.shape[0] + (rest.shape[0] if keep_rest else 0))
    return unit, diagnostics
