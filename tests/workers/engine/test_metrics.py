"""Each evaluation formula on small inputs with known answers."""

import math

import numpy as np
import pytest

from workers.engine import metrics


def test_clopper_pearson_zero_of_40_is_7_2_percent():
    assert metrics.clopper_pearson_upper(0, 40) == pytest.approx(1 - 0.05 ** (1 / 40), abs=1e-9)
    assert metrics.clopper_pearson_upper(0, 40) == pytest.approx(0.072, abs=5e-4)
    assert metrics.clopper_pearson_upper(0, 100) == pytest.approx(0.0295, abs=5e-4)


def test_clopper_pearson_grows_with_k_and_is_one_when_all_leak():
    bounds = [metrics.clopper_pearson_upper(k, 20) for k in range(21)]
    assert bounds == sorted(bounds)
    assert bounds[-1] == 1.0
    assert metrics.clopper_pearson_upper(0, 0) == 1.0


def test_leak_rate_counts_only_probes_the_base_model_knew():
    leaked = [True, False, True, False]
    base_correct = [True, True, False, False]
    result = metrics.leak_rate(leaked, base_correct)
    assert (result.k, result.n, result.rate) == (1, 2, 0.5)


def test_retain_ratio():
    assert metrics.retain_ratio([True, True, False], [True, True, True]) == pytest.approx(2 / 3)
    assert metrics.retain_ratio([True], [False]) == 1.0


def test_auroc_known_values():
    assert metrics.auroc([3, 4], [1, 2]) == 1.0
    assert metrics.auroc([1, 2], [3, 4]) == 0.0
    assert metrics.auroc([1, 1], [1, 1]) == 0.5
    assert metrics.auroc([2, 0], [1]) == 0.5


def test_fpr_at_tpr_and_tpr_at_fpr():
    positives = np.linspace(0.6, 1.0, 20)
    negatives = np.linspace(0.0, 0.7, 100)
    fpr = metrics.fpr_at_tpr(positives, negatives, 0.95)
    assert 0 < fpr < 0.2
    assert metrics.fpr_at_tpr([0.9, 0.95], [0.1, 0.2]) == 0.0
    assert metrics.tpr_at_fpr([0.9, 0.95], [0.1, 0.2], 0.01) == 1.0
    assert metrics.tpr_at_fpr([0.1], [0.5, 0.6], 0.01) == 0.0


def test_min_k_plus_plus_takes_the_lowest_fraction():
    logprobs = np.array([-1.0, -2.0, -3.0, -4.0, -5.0])
    mu = np.zeros(5)
    sigma = np.ones(5)
    # lowest 40% of 5 tokens = 2 tokens: -5 and -4
    assert metrics.min_k_plus_plus(logprobs, mu, sigma, k=0.4) == pytest.approx(-4.5)


def test_bootstrap_interval_contains_point():
    rng = np.random.default_rng(0)
    interval = metrics.auc_with_bootstrap(rng.normal(1, 1, 50), rng.normal(0, 1, 50), rounds=200)
    assert interval.low <= interval.auc <= interval.high
    assert 0.6 < interval.auc < 0.95


def test_truth_ratio_is_one_when_equally_likely():
    assert metrics.truth_ratio(-10.0, [-10.0, -10.0]) == pytest.approx(1.0)
    assert metrics.truth_ratio(-2.0, [-4.0], lengths=(2, [2])) == pytest.approx(math.exp(-1.0))


def test_ks_identical_samples_high_pvalue():
    result = metrics.ks_test([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert result["statistic"] == 0.0 and result["pvalue"] == pytest.approx(1.0)
