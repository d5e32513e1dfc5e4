"""The evaluation formulas behind every certificate and benchmark (EVAL.md).

Pure functions on numbers and arrays: no model, no I/O, each tested on inputs with known answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Rate:
    """k events out of n, with the exact (Clopper-Pearson) one-sided 95% lower and upper bounds."""

    k: int
    n: int
    rate: float
    upper95: float
    lower95: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper bound of a binomial proportion. 0 of n gives 1 - (1 - confidence)^(1/n)."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    return float(stats.beta.ppf(confidence, k + 1, n - k))


def clopper_pearson_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower bound of a binomial proportion. n of n gives (1 - confidence)^(1/n)."""
    if n <= 0 or k <= 0:
        return 0.0
    return float(stats.beta.ppf(1.0 - confidence, k, n - k + 1))


def rate(k: int, n: int) -> Rate:
    return Rate(k=int(k), n=int(n), rate=(k / n) if n else 0.0, upper95=clopper_pearson_upper(k, n), lower95=clopper_pearson_lower(k, n))


def leak_rate(leaked: Sequence[bool], base_correct: Sequence[bool]) -> Rate:
    """Share of probes whose answer still contains the gold value, counting only the probes the base
    model answered correctly (otherwise "forgetting" is free)."""
    pairs = [(bool(leak), bool(base)) for leak, base in zip(leaked, base_correct, strict=True)]
    counted = [leak for leak, base in pairs if base]
    return rate(sum(counted), len(counted))


def retain_ratio(correct_now: Sequence[bool], correct_base: Sequence[bool]) -> float:
    """Accuracy now relative to the base model's accuracy on the same probes (1.0 = nothing lost)."""
    base = sum(bool(b) for b in correct_base)
    now = sum(bool(c) for c in correct_now)
    return (now / base) if base else 1.0


def auroc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(positive_scores, float), np.asarray(negative_scores, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fpr_at_tpr(positive_scores: Sequence[float], negative_scores: Sequence[float], tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold that still catches `tpr` of the positives."""
    pos, neg = np.sort(np.asarray(positive_scores, float)), np.asarray(negative_scores, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    threshold = pos[int(np.floor((1 - tpr) * len(pos)))]
    return float(np.mean(neg >= threshold))


def tpr_at_fpr(positive_scores: Sequence[float], negative_scores: Sequence[float], fpr: float = 0.01) -> float:
    """True-positive rate at the lowest threshold that lets at most `fpr` of the negatives through."""
    pos, neg = np.asarray(positive_scores, float), np.sort(np.asarray(negative_scores, float))[::-1]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allowed = int(np.floor(fpr * len(neg)))
    threshold = neg[allowed] if allowed < len(neg) else -np.inf
    return float(np.mean(pos > threshold))


def fraction_above(scores: Sequence[float], threshold: float = 0.5) -> float:
    arr = np.asarray(scores, float)
    return float(np.mean(arr > threshold)) if len(arr) else 0.0


def min_k_plus_plus(token_logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float = 0.4) -> float:
    """Min-K%++ (Zhang et al. 2024) for one text: the mean of the lowest k fraction of the per-token
    scores (log p(x_t) - mu_t) / sigma_t, where mu_t and sigma_t are the mean and standard deviation
    of log p over the vocabulary under the model's next-token distribution. Higher = more "seen"."""
    scores = (np.asarray(token_logprobs, float) - np.asarray(mu, float)) / np.maximum(np.asarray(sigma, float), 1e-6)
    if scores.size == 0:
        return 0.0
    count = max(1, int(np.ceil(k * scores.size)))
    return float(np.mean(np.sort(scores)[:count]))


def loss_score(token_logprobs: np.ndarray) -> float:
    """LOSS attack score: mean token log-likelihood (higher = more "seen")."""
    arr = np.asarray(token_logprobs, float)
    return float(arr.mean()) if arr.size else 0.0


@dataclass(frozen=True)
class AucInterval:
    auc: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return asdict(self)


def auc_with_bootstrap(members: Sequence[float], non_members: Sequence[float], *, rounds: int = 500, seed: int = 0) -> AucInterval:
    """Membership-inference AUC (members vs non-members) with a 95% percentile bootstrap interval.
    AUC near 0.5 means the forgotten texts look like texts the model never saw."""
    pos, neg = np.asarray(members, float), np.asarray(non_members, float)
    point = auroc(pos, neg)
    if len(pos) < 2 or len(neg) < 2:
        return AucInterval(point, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    samples = [auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(rounds)]
    low, high = np.percentile(samples, [2.5, 97.5])
    return AucInterval(point, float(low), float(high))


def truth_ratio(paraphrased_logprob: float, perturbed_logprobs: Sequence[float], lengths: tuple[int, Sequence[int]] | None = None) -> float:
    """TOFU truth ratio: P(perturbed)/P(paraphrased) with geometric means over tokens.

    Arguments are summed log-probs; `lengths` (paraphrase length, perturbed lengths) turns them into
    per-token means. Values near 1 mean the model no longer prefers the true answer.
    """
    if lengths is not None:
        para_len, pert_lens = lengths
        paraphrased_logprob = paraphrased_logprob / max(para_len, 1)
        perturbed_logprobs = [lp / max(n, 1) for lp, n in zip(perturbed_logprobs, pert_lens, strict=True)]
    perturbed = float(np.mean(perturbed_logprobs))
    return float(np.exp(perturbed - paraphrased_logprob))


def ks_test(sample_a: Sequence[float], sample_b: Sequence[float]) -> dict:
    """Two-sample Kolmogorov-Smirnov test (TOFU forget quality uses its p-value)."""
    if len(sample_a) < 2 or len(sample_b) < 2:
        return {"statistic": float("nan"), "pvalue": float("nan")}
    result = stats.ks_2samp(sample_a, sample_b)
    return {"statistic": float(result.statistic), "pvalue": float(result.pvalue)}
