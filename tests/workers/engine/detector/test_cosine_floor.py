"""UnitScorer.cosine_floor: a unit's embedding weight is 0 unless a window of the prompt comes at
least that close (1-NN cosine) to its stored windows. Exact, so a prefilter may rely on it."""

from __future__ import annotations

import math

import torch

from workers.engine.detector.scorer import segment_max

from .conftest import FORGET_TEXTS, GENERAL, OTHER_PEOPLE, PARAPHRASES, padded


def test_no_prompt_below_the_floor_gets_a_weight_and_the_floor_prunes(shared_detector, encoder):
    detector = shared_detector
    prompts = FORGET_TEXTS + PARAPHRASES + [padded(q) for q in PARAPHRASES] + OTHER_PEOPLE + GENERAL
    floor = detector.unit.cosine_floor()
    assert math.isfinite(floor) and 0 < floor < 1

    windows, owner = detector.config.split_windows(prompts)
    features = encoder.layer_features(windows, detector.layers, detector.config.batch_size)  # [m, L, d]
    cosine = torch.einsum("mld,lnd->mln", features, detector.unit.glocal.features).amax(-1).amax(-1)
    best = segment_max(cosine, owner, len(prompts))
    weights = detector.stack.weights(torch.from_numpy(detector.scores(prompts))[:, None])[:, 0]

    fired = weights > 0
    assert fired.any() and bool((best[fired] >= floor).all())  # the bound holds where the unit fires
    assert bool((best < floor).any())  # and it is not vacuous: some prompts are pruned by it
    assert not bool(fired[best < floor].any())


def test_no_floor_when_the_weight_does_not_depend_on_the_cosine(shared_detector):
    from dataclasses import replace

    assert replace(shared_detector.unit, local_weight=0.0).cosine_floor() == -math.inf
    assert replace(shared_detector.unit, weight_floor=0.0, gate_threshold=0.0).cosine_floor() == -math.inf
