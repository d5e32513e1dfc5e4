"""The gate's window prefilter (prefilter.py): with thousands of units, the prefiltered bank takes
exactly the decisions of the exhaustive bank on every probe family, in the flat and in the IVF
index, and after units leave and come back; while scoring exactly only a few units per prompt."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from workers.engine.detector import DetectorBank, DetectorConfig
from workers.engine.detector.prefilter import WindowPrefilter
from workers.engine.detector.synthetic import mixed_detector
from workers.engine.families import POSITIVE_FAMILIES
from workers.engine.forget_set import forget_set_for_people
from workers.engine.pipeline import fit_detector
from workers.engine.probes import ProbeConfig, build_probes
from workers.engine.serving import UnitWeights
from workers.engine.world import build_world

REAL_UNITS = 8
SYNTHETIC_UNITS = 2400


@pytest.fixture(scope="module")
def world():
    return build_world(seed=0)


@pytest.fixture(scope="module")
def units(world, encoder):
    """REAL_UNITS detectors fitted by the pipeline on the world's people, and SYNTHETIC_UNITS more
    mixed from them (synthetic.py: distinct windows and floors where real requests' lie)."""
    rng = random.Random("prefilter")
    people = rng.sample(world.people, REAL_UNITS)
    real = {f"real-{i}": fit_detector(forget_set_for_people(world, [p]), DetectorConfig(), encoder) for i, p in enumerate(people)}
    templates = list(real.values())
    generator = torch.Generator().manual_seed(0)
    out = dict(real)
    for index in range(SYNTHETIC_UNITS):
        out[f"synthetic-{index}"] = mixed_detector(*rng.sample(templates, 2), generator)
    return people, out


@pytest.fixture(scope="module")
def prompts(world, units):
    people, _ = units
    config = ProbeConfig(per_family=6, retain=60, neighbours=60, general=30, holdout=0, reserve_rounds=0)
    probes = build_probes(world, people[:4], config=config).probes
    assert {probe.set for probe in probes} >= set(POSITIVE_FAMILIES) | {"R", "N", "W"}
    return [probe.spec.gate_text() for probe in probes]


def _compare(prefiltered: DetectorBank, exhaustive: DetectorBank, prompts: list[str]) -> list[int]:
    candidates = []
    for start in range(0, len(prompts), 16):
        batch = prompts[start : start + 16]
        a, b = prefiltered.score(batch), exhaustive.score(batch)
        assert a.unit_ids == b.unit_ids
        different = np.argwhere(a.weights != b.weights)
        assert not len(different), [(batch[i], a.unit_ids[j], a.weights[i, j], b.weights[i, j]) for i, j in different[:3]]
        fired = b.weights > 0
        np.testing.assert_allclose(a.scores[fired], b.scores[fired], rtol=1e-5, atol=1e-5)  # a unit that fires was scored exactly
        for prompt in batch:
            candidates.append(prefiltered.score([prompt]).candidates)
    return candidates


@pytest.mark.parametrize("ivf_min_windows", [10**9, 2_000], ids=["flat", "ivf"])
def test_prefiltered_decisions_equal_the_exhaustive_ones(encoder, units, prompts, ivf_min_windows):
    _, detectors = units
    config = DetectorConfig()
    prefilter = WindowPrefilter(1, encoder.hidden_size, ivf_min_windows=ivf_min_windows)
    prefiltered, exhaustive = DetectorBank(encoder, config, prefilter=prefilter), DetectorBank(encoder, config)
    prefiltered.add_many(detectors)
    exhaustive.add_many(detectors)
    candidates = _compare(prefiltered, exhaustive, prompts)
    assert np.median(candidates) < len(detectors) / 10  # not vacuous: most units are ruled out on most prompts
    assert exhaustive.score(prompts).weights.max(axis=1).mean() > 0.2  # and many probes fire some unit
    if ivf_min_windows < 10**9:
        stats = prefilter.last
        assert stats.lists > 1 and stats.lists_searched < stats.lists  # the bound pruned lists

    # Incremental: units leave (one of them a real unit whose person the probes ask about) and come back.
    leaving = ["real-0", *[f"synthetic-{i}" for i in range(0, SYNTHETIC_UNITS, 7)]]
    for uid in leaving:
        prefiltered.remove(uid)
        exhaustive.remove(uid)
    _compare(prefiltered, exhaustive, prompts[::3])
    back = {uid: detectors[uid] for uid in leaving}
    prefiltered.add_many(back)
    exhaustive.add_many(back)
    _compare(prefiltered, exhaustive, prompts[1::3])


def test_the_prefilter_keeps_units_without_a_floor(encoder, units):
    """A unit whose weight has no cosine floor (O3's soft weights) is scored for every prompt."""
    _, detectors = units
    soft = replace(detectors["real-1"], unit=replace(detectors["real-1"].unit, gate_threshold=0.0, weight_floor=0.0))
    assert soft.unit.cosine_floor() == -np.inf
    prefilter = WindowPrefilter(1, encoder.hidden_size)
    prefilter.add_many({"soft": soft.unit, "real-2": detectors["real-2"].unit})
    assert prefilter.candidates(encoder.layer_features(["What language is spoken in Solvenia?"], (6,))) == {"soft"}
    prefilter.remove("soft")
    with pytest.raises(KeyError):
        prefilter.remove("soft")


def test_the_gateway_weights_change_in_place_and_keep_the_decisions(encoder, units, prompts):
    """UnitWeights(prefilter=True), the gateway's weight_fn, as units come and go one by one (the
    gateway's load_unit / unload_unit), gives the exhaustive gate's weights in the gate's order."""
    _, detectors = units
    chosen = ["real-0", "real-1", "real-2", *[f"synthetic-{i}" for i in range(40)]]
    gateway = UnitWeights(encoder, {}, prefilter=True)
    for uid in chosen:
        gateway.add_many({uid: detectors[uid]})
    gateway.remove("real-1")
    live = [uid for uid in chosen if uid != "real-1"][::-1]  # the gate's own column order
    reference = UnitWeights(encoder, {uid: detectors[uid] for uid in live})
    batch = prompts[::5]
    a, b = gateway.gate(batch, live), reference.gate(batch, live)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.entity, b.entity)
    assert a.weights.any()
    with pytest.raises(KeyError):
        gateway.remove("real-1")
