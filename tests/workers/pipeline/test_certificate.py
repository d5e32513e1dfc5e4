"""The certificate of the second of two sequential requests on the tiny demo model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.unlearning.artifacts import load_unit
from workers.unlearning.certificate import Thresholds, answer_budget, evaluate_units
from workers.unlearning.probes import ProbeConfig, build_probes
from workers.unlearning.prompting import REFUSALS


@pytest.fixture(scope="module")
def certificate(base, encoder, tiny_world, people, first_unit, second_unit):
    probes = build_probes(
        tiny_world, [people[1].name], earlier=[("req-1", [people[0].name])], unit_id="req-2",
        config=ProbeConfig(retain=24, neighbours=16, general=12, holdout=16),
    )
    stages = []
    result = evaluate_units(base, [first_unit, second_unit], probes, encoder=encoder, on_stage=stages.append, bootstrap_rounds=100)
    assert stages[0] == "load" and "membership inference" in stages
    return result


def test_refusals_fit_in_the_answer_budget(base):
    budget = answer_budget(base.tokenizer)
    longest = max(len(base.tokenizer(" " + r, add_special_tokens=False)["input_ids"]) for r in REFUSALS)
    assert budget > longest >= 20  # the demo tokenizer never saw the refusals: they are long


def test_certificate_has_every_section_and_is_plain_json(certificate, first_unit, second_unit, base):
    data = json.loads(json.dumps(certificate.to_json(), allow_nan=False))
    for key in ("request_id", "unit_ids", "passed", "rules", "thresholds", "base", "units", "probes", "leak", "retain",
                "gate", "membership", "truth_ratio", "generation", "timings", "started_at", "finished_at", "personal_data"):
        assert key in data, key
    assert data["request_id"] == "req-2" and data["unit_ids"] == ["req-1", "req-2"]
    assert set(data["leak"]) == {"F", "P", "D", "F<t"} and set(data["retain"]) == {"R", "N", "W"}
    for per_mode in list(data["leak"].values()) + list(data["retain"].values()):
        assert set(per_mode) == {"gated", "on", "off"}
    assert data["base"]["fingerprint"] == base.fingerprint
    for record, unit_dir in zip(data["units"], [first_unit, second_unit]):
        manifest = load_unit(unit_dir).manifest
        assert record["adapter_sha256"] == manifest.adapter_digest and record["detector_sha256"] == manifest.detector_digest
        assert record["manifest_sha256"] == manifest.digest and record["forget_set_hash"] == manifest.forget_set_hash
    assert set(data["gate"]["per_unit"]) == {"req-1", "req-2"}
    for section in list(data["gate"]["per_unit"].values()) + [data["gate"]["union"]]:
        for key in ("auroc", "fpr_at_95_tpr", "tpr_at_1_fpr", "positives_above_half", "negatives_above_half"):
            assert key in section
    # The auditor's plot: the certified unit's scores of every evaluated probe, binned per set.
    histogram = data["gate"]["score_histogram"]
    assert histogram["unit_id"] == "req-2" and {"F", "P", "R", "N"} <= set(histogram["counts"])
    for name, counts in histogram["counts"].items():
        assert len(counts) == len(histogram["edges"]) - 1
        assert sum(counts) + histogram["vetoed"][name] == data["probes"]["sizes"][name], name
    for label in ("served", "base"):
        for attack in ("min_k_plus_plus", "loss"):
            interval = data["membership"][label][attack]
            assert interval["low"] <= interval["auc"] <= interval["high"]
    assert "ks_F_vs_O" in data["truth_ratio"]
    # Personal data sits in one place, flagged, and nowhere else.
    answers = data["personal_data"]["answers"]
    assert answers and {"question", "base_answer", "gated_answer", "weights"} <= set(answers[0])
    rest = json.dumps({k: v for k, v in data.items() if k != "personal_data"})
    assert certificate.personal_data["subjects"] and all(name not in rest for name in certificate.personal_data["subjects"])


def test_rules_carry_thresholds_and_both_requests_hold(certificate):
    rules = {rule["name"]: rule for rule in certificate.rules}
    assert {"leak F", "leak P", "leak D", "leak F<t", "retain R", "retain N", "retain W", "union FPR"} <= set(rules)
    defaults = Thresholds()
    assert rules["leak P"]["threshold"] == defaults.leak_P == 0.05 and rules["retain R"]["threshold"] == 0.95
    assert rules["union FPR"]["threshold"] == 0.02
    for rule in certificate.rules:
        assert rule["status"] in ("pass", "fail", "n/a")
    assert certificate.passed == all(r["status"] == "pass" for r in certificate.rules if r["status"] != "n/a")
    # What the tiny model shows: no leak on either request's trained phrasings, the adapter off
    # leaks everything the base knew, and the gate keeps the other people's answers.
    leak = certificate.leak
    assert leak["F"]["gated"]["n"] == 8 and leak["F"]["gated"]["k"] == 0 and leak["F<t"]["gated"]["k"] == 0
    assert leak["F"]["gated"]["upper95"] == pytest.approx(1 - 0.05 ** (1 / 8), abs=1e-6)
    assert leak["F"]["off"]["rate"] == 1.0
    assert certificate.retain["R"]["gated"]["ratio"] >= 0.95 and certificate.retain["W"]["gated"]["ratio"] >= 0.95
    assert certificate.retain["R"]["on"]["ratio"] < certificate.retain["R"]["gated"]["ratio"]  # the gate matters
    assert rules["leak F"]["status"] == "pass"
    # The operator's table leads with the verdict the rules give and lists every rule with its status.
    summary = certificate.summary().splitlines()
    assert summary[0].endswith(": PASS" if certificate.passed else ": FAIL"), summary[0]
    for rule in certificate.rules:
        assert any(line[:16].rstrip() == rule["name"] and line.rstrip().endswith(rule["status"]) for line in summary), rule["name"]


def test_the_dossier_tests_sample_has_the_shape_of_a_certificate_made_now(certificate):
    """tests/service/dossier renders a stored certificate (certificate_sample.json) without training:
    it must still have the sections and fields the evaluation writes today."""
    sample = json.loads((Path(__file__).resolve().parents[2] / "service" / "dossier" / "certificate_sample.json").read_text())
    made = json.loads(json.dumps(certificate.to_json(), allow_nan=False))
    assert set(sample) == set(made)
    for section in ("gate", "probes", "base", "thresholds"):
        assert set(sample[section]) == set(made[section]), section
    assert set(sample["gate"]["score_histogram"]) == set(made["gate"]["score_histogram"])
    assert {rule["name"] for rule in sample["rules"]} == {rule["name"] for rule in made["rules"]}
    assert set(sample["rules"][0]) == set(made["rules"][0])
