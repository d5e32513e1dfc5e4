"""The certificate of the second of two sequential requests on the tiny demo model: every probe
family, any-value leaks with bounds on both sides, and PASS / INCONCLUSIVE / FAIL."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from workers.engine import leaks
from workers.engine.artifacts import load_unit
from workers.engine.certificate import (
    EVALUATION_STAGES,
    VERDICTS,
    Thresholds,
    _judge,
    _rules,
    _verdict,
    answer_budget,
    base_evidence,
    evaluate_units,
    evidence_needed,
    probe_fits,
)
from workers.engine.families import POSITIVE_FAMILIES
from workers.engine.metrics import rate
from workers.engine.probes import build_probes
from workers.engine.prompting import REFUSALS
from workers.engine.serving import load_gated


@pytest.fixture(scope="module")
def certificate(base, encoder, tiny_world, people, first_unit, second_unit):
    probes = build_probes(tiny_world, [people[1].name], earlier=[("req-1", [people[0].name])], unit_id="req-2", fits=probe_fits(base))
    stages = []
    result = evaluate_units(base, [first_unit, second_unit], probes, encoder=encoder, on_stage=stages.append, bootstrap_rounds=100)
    assert stages[0] == "load" and "membership inference" in stages
    assert stages.index("base answers") < stages.index("gate scores")
    assert list(dict.fromkeys(stages)) == [name for name in EVALUATION_STAGES if name in stages]  # what the progress bars count
    return result


def test_the_base_evidence_is_the_certificates_own_and_needs_no_unit(certificate, base, tiny_world, people):
    """What the certificate's evidence step concludes can be had from the base model alone, before
    any training (tests/provable.py chooses the pipeline tests' subject with it)."""
    probes = build_probes(tiny_world, [people[1].name], earlier=[("req-1", [people[0].name])], unit_id="req-2", fits=probe_fits(base))
    evidence = base_evidence(base, probes)
    rows = certificate.personal_data["answers"]
    assert evidence.generation["evidence"] == certificate.generation["evidence"]
    assert [p.question for p in evidence.probes] == [row["question"] for row in rows]
    assert evidence.answers == [row["base_answer"] for row in rows]
    # The suite's own probes first, then reserve draws (never F or F<t, which have no reserve).
    suite = {id(p) for p in probes.probes}
    assert len(evidence.batches) >= 2 and all(id(p) in suite for p in evidence.batches[0])
    assert all(id(p) not in suite and p.set not in ("F", "F<t") for batch in evidence.batches[1:] for p in batch)
    assert evidence.still_short == set(certificate.generation["evidence"]["still_short"])


def test_the_refusal_fits_the_gateways_default_max_tokens(base):
    longest = max(len(base.tokenizer(" " + r, add_special_tokens=False)["input_ids"]) for r in REFUSALS)
    assert longest + 1 <= 32  # with its end token, within the gateway's default max_tokens
    assert answer_budget(base.tokenizer) >= 48  # the certificate reads more than a default call returns


def test_certificate_has_every_section_and_is_plain_json(certificate, first_unit, second_unit, base):
    data = json.loads(json.dumps(certificate.to_json(), allow_nan=False))
    for key in (
        "request_id",
        "unit_ids",
        "verdict",
        "passed",
        "rules",
        "thresholds",
        "base",
        "units",
        "probes",
        "leak",
        "retain",
        "gate",
        "membership",
        "truth_ratio",
        "generation",
        "timings",
        "started_at",
        "finished_at",
        "personal_data",
        "failing_families",
    ):
        assert key in data, key
    assert data["request_id"] == "req-2" and data["unit_ids"] == ["req-1", "req-2"]
    assert set(data["leak"]) == {*POSITIVE_FAMILIES, "F<t"} and set(data["retain"]) == {"R", "N", "W"}
    for per_mode in list(data["leak"].values()) + list(data["retain"].values()):
        assert set(per_mode) == {"gated", "on", "off"}
    for family in data["leak"].values():
        assert {"k", "n", "rate", "lower95", "upper95", "revealed", "asked_attribute", "fired"} <= set(family["gated"])
    assert data["base"]["fingerprint"] == base.fingerprint
    for record, unit_dir in zip(data["units"], [first_unit, second_unit]):
        manifest = load_unit(unit_dir).manifest
        assert record["adapter_sha256"] == manifest.adapter_digest and record["detector_sha256"] == manifest.detector_digest
    histogram = data["gate"]["score_histogram"]
    assert histogram["unit_id"] == "req-2" and {"F", "P", "R", "N"} <= set(histogram["counts"])
    for name, counts in histogram["counts"].items():
        assert sum(counts) + histogram["vetoed"][name] == data["probes"]["sizes"][name], name
    assert data["generation"]["max_new_tokens"] >= 48 and "dropped_too_long" in data["generation"]
    # Personal data sits in one place, flagged, and nowhere else.
    rest = json.dumps({k: v for k, v in data.items() if k != "personal_data"})
    assert certificate.personal_data["subjects"] and all(name not in rest for name in certificate.personal_data["subjects"])


def test_the_two_requests_hold_on_every_family(certificate):
    assert certificate.verdict in VERDICTS and certificate.passed == (certificate.verdict == "pass")
    rules = {rule["name"]: rule for rule in certificate.rules}
    expected = {f"leak {name}" for name in (*POSITIVE_FAMILIES, "F<t")} | {"leak where the base revealed", "retain R", "retain N", "retain W", "union FPR"}
    assert set(rules) == expected
    for rule in certificate.rules:
        assert rule["status"] in VERDICTS and rule["lower95"] <= rule["value"] <= rule["upper95"], rule
    assert rules["leak P"]["threshold"] == Thresholds().leak == 0.05 and rules["union FPR"]["threshold"] == 0.02
    leak = certificate.leak
    assert leak["F"]["gated"]["n"] == 8 and leak["F"]["gated"]["k"] == 0 and leak["F<t"]["gated"]["k"] == 0
    assert leak["F"]["off"]["rate"] == 1.0  # the base reveals every trained fact
    for name in POSITIVE_FAMILIES[1:]:
        assert leak[name]["gated"]["n"] >= 59 and leak[name]["gated"]["fired"] >= 0.95, name  # enough probes to prove 5%
    assert certificate.gate["union"]["negatives_fired"] == 0 and certificate.gate["union"]["negatives"] >= 149
    assert certificate.verdict == "pass", [r for r in certificate.rules if r["status"] != "pass"]
    # The tiny model answers few shapes (it reveals data on about one positive probe in ten): the
    # first draw leaves the pooled rule short of the 93 revealing probes that would survive one
    # leak; the reserve draws add what the pools still hold (enough for 0 leaks to prove 5%).
    evidence = certificate.generation["evidence"]
    assert evidence["needed"] == evidence_needed(Thresholds()) == {"pooled": 93, "retain": 93}
    assert evidence["answered"] and "pooled" in evidence["answered"][0]["short"]
    pooled = rules["leak where the base revealed"]["n"]
    assert pooled >= 59 and set(evidence["still_short"]) == ({"pooled"} if pooled < 93 else set()), evidence
    assert all(rules[f"retain {name}"]["n"] >= 93 for name in ("R", "N", "W"))
    # The operator's table leads with the verdict and lists every rule with its status.
    summary = certificate.summary().splitlines()
    assert summary[0].endswith(": PASS")
    for rule in certificate.rules:
        assert any(line.startswith(rule["name"]) and line.rstrip().endswith(rule["status"].upper()) for line in summary), rule["name"]


def test_leaks_count_any_value_and_the_served_answers_are_what_an_outsider_gets(certificate, base, encoder, first_unit, second_unit):
    rows = certificate.personal_data["answers"]
    for row in rows:
        if row["set"] in (*POSITIVE_FAMILIES, "F<t"):
            assert row["leaked"] == bool(row["revealed"])
        if not row["fired"]:
            assert row["gated_answer"] == row["base_answer"]  # no unit fired: the served model is the base model
    # Re-asked from outside through the gated model, a sample of the probes gets the same answers.
    sample = random.Random(0).sample(rows, 24)
    from workers.engine.prompting import PromptSpec

    specs = [
        PromptSpec.chat([(m["role"], m["content"]) for m in r["messages"]]) if r["shape"] == "chat" else PromptSpec(r["shape"], r["question"]) for r in sample
    ]
    with load_gated(base, [first_unit, second_unit], encoder) as gated:
        answers = gated.generate(specs, max_new_tokens=certificate.generation["max_new_tokens"])
    for row, answer in zip(sample, answers):
        assert answer.text == row["gated_answer"], row["question"]
        assert bool(answer.applied) == row["fired"]


def test_the_verdict_follows_the_bounds():
    assert _judge(rate(0, 64).as_dict(), 0.05) == "pass"
    assert _judge(rate(1, 64).as_dict(), 0.05) == "inconclusive"  # a 1.6% point, but the bound cannot show <= 5%
    assert _judge(rate(13, 64).as_dict(), 0.05) == "fail"  # a 20%-leaking family fails, whatever the luck of the draw
    assert _judge(rate(0, 20).as_dict(), 0.05) == "inconclusive"  # too few probes to prove anything
    assert _judge(rate(60, 60).as_dict(), 0.95, higher_is_better=True) == "pass"
    assert _judge(rate(40, 60).as_dict(), 0.95, higher_is_better=True) == "fail"
    assert _verdict([{"status": "pass"}, {"status": "inconclusive"}]) == "inconclusive"
    assert _verdict([{"status": "pass"}, {"status": "fail"}, {"status": "inconclusive"}]) == "fail"
    assert _verdict([{"status": "pass"}]) == "pass"
    leak = {"P": {"gated": {**rate(0, 64).as_dict(), "revealed": rate(0, 64).as_dict()}}}
    gate = {"union": {"negatives_fired": 0, "negatives": 0}}
    rules = {r["name"]: r for r in _rules(leak, {}, gate, Thresholds())}
    assert rules["union FPR"]["status"] == "inconclusive" and "no negative" in rules["union FPR"]["note"]  # never PASS without negatives
    assert leaks.leaks("Born in 1966.", ["1966"])


def test_the_dossier_tests_sample_has_the_shape_of_a_certificate_made_now(certificate):
    """tests/service/dossier renders a stored certificate (certificate_sample.json) without training:
    it must still have the sections and fields the evaluation writes today."""
    sample = json.loads((Path(__file__).resolve().parents[2] / "service" / "dossier" / "certificate_sample.json").read_text())
    made = json.loads(json.dumps(certificate.to_json(), allow_nan=False))
    assert set(sample) == set(made)
    for section in ("gate", "probes", "base", "thresholds", "leak", "retain"):
        assert set(sample[section]) == set(made[section]), section
    assert set(sample["gate"]["score_histogram"]) == set(made["gate"]["score_histogram"])
    assert {rule["name"] for rule in sample["rules"]} == {rule["name"] for rule in made["rules"]}
    assert set(sample["rules"][0]) == set(made["rules"][0])
    assert set(sample["personal_data"]["answers"][0]) == set(made["personal_data"]["answers"][0])
