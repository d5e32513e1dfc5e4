"""The detector-score histogram a certificate records for the auditor's plot (gate.score_histogram):
counts per probe set on shared bin edges, of the certified unit's scores, with no text in it."""

from __future__ import annotations

import json

import numpy as np

from workers.engine.certificate import SCORE_HISTOGRAM_BINS, _gate_metrics, score_histogram
from workers.engine.probes import Probe
from workers.engine.serving import GateScores

QUESTION = "Where does Orla Quist live?"


def _probes() -> list[Probe]:
    """3 F and 2 P probes of the certified unit, 2 F<t of an earlier unit, 4 R and 3 N (one vetoed)."""
    probes = [Probe(f"{QUESTION} ({i})", "Ambercliff", "F", person="Orla Quist") for i in range(3)]
    probes += [Probe(f"In which town is Orla Quist's home? ({i})", "Ambercliff", "P", person="Orla Quist") for i in range(2)]
    probes += [Probe(f"Where does Ivo Brandt work? ({i})", "Kestrel Labs", "F<t", person="Ivo Brandt", unit="req-1") for i in range(2)]
    probes += [Probe(f"Where does Someone Else live? ({i})", "Osterly", "R", person="Someone Else") for i in range(4)]
    probes += [Probe(f"Where does Orla Quistle live? ({i})", "Brackwater", "N", person="Orla Quistle") for i in range(3)]
    return probes


def test_the_certified_units_scores_are_binned_per_set_on_shared_edges():
    probes = _probes()
    # Column 0: the earlier unit (req-1), column 1: the certified unit (req-2). The certified unit
    # scores its own people high (2.0 .. 3.0) and everybody else low (-1.5 .. -0.5); one neighbour
    # is vetoed by the name test (-inf). The earlier unit's column is deliberately the opposite.
    own = [2.0, 2.5, 3.0, 2.2, 2.8, -0.5, -0.6, -1.0, -1.2, -1.4, -1.5, -0.9, -0.7, -np.inf]
    scores = np.array([[-u if np.isfinite(u) else 0.0, u] for u in own], dtype=np.float32)
    weights = np.where(scores > 0, 0.9, 0.0).astype(np.float32)

    gate = _gate_metrics(
        probes, GateScores(("req-1", "req-2"), scores, weights, np.zeros_like(weights), tuple({} for _ in probes)), ["req-1", "req-2"], "req-2"
    )
    histogram = gate["score_histogram"]

    assert histogram["unit_id"] == "req-2"
    edges = histogram["edges"]
    assert len(edges) == SCORE_HISTOGRAM_BINS + 1 and all(a < b for a, b in zip(edges, edges[1:]))
    assert edges[0] <= -1.5 and edges[-1] >= 3.0 and edges[-1] - edges[0] < 4.6  # the range of the finite scores
    assert list(histogram["counts"]) == ["F", "P", "F<t", "R", "N"]  # the probe sets present, in the sets' order
    assert {name: sum(counts) for name, counts in histogram["counts"].items()} == {"F": 3, "P": 2, "F<t": 2, "R": 4, "N": 2}
    assert histogram["vetoed"] == {"F": 0, "P": 0, "F<t": 0, "R": 0, "N": 1}
    assert histogram["positive_sets"] == ["F", "P", "F<t"]

    # The forget probes sit in the upper bins, the retain and neighbour probes in the lower ones:
    # the plot separates them exactly as the certified unit's scores do.
    middle = SCORE_HISTOGRAM_BINS // 2
    for name in ("F", "P"):
        assert sum(histogram["counts"][name][middle:]) == sum(histogram["counts"][name])
    for name in ("R", "N", "F<t"):
        assert sum(histogram["counts"][name][:middle]) == sum(histogram["counts"][name])

    # Plain, small JSON without a word of the probes.
    text = json.dumps(histogram, allow_nan=False)
    assert len(text) < 1500
    assert "Orla" not in text and "Ambercliff" not in text and "Osterly" not in text


def test_equal_scores_and_all_vetoed_still_give_a_usable_axis():
    sets = np.array(["F", "F", "R"])
    flat = score_histogram(sets, np.array([1.0, 1.0, 1.0]), "u-1", bins=4)
    assert flat["edges"][0] < 1.0 < flat["edges"][-1] and flat["counts"] == {"F": [0, 0, 2, 0], "R": [0, 0, 1, 0]}

    vetoed = score_histogram(sets, np.array([-np.inf, -np.inf, -np.inf]), "u-1", bins=4)
    assert vetoed["counts"] == {"F": [0, 0, 0, 0], "R": [0, 0, 0, 0]} and vetoed["vetoed"] == {"F": 2, "R": 1}
    json.dumps(vetoed, allow_nan=False)
