"""The person the happy-path pipeline tests file a request for, chosen by a stated rule, not by name.

A PASS needs evidence the unit cannot supply: the base model must reveal the subject's data (or
there is nothing to hide) and must answer enough of the negatives, the hard neighbours above all,
for the retain bounds to be provable (certificate.base_evidence). What the tiny model knows
depends on the build, and the build is bit-identical only on machines of the same kind: a person
named because their unit passed on one build (Greta Northcott, until 2026-12) came out
INCONCLUSIVE on another, whose base answered 41 of her neighbours' probes where 93 are needed.

The rule: the first person of the world, in the world's order, whose city the base model reveals
on every certification phrasing and whose suite leaves no rule short of evidence. It reads the base
model's answers only, exactly as the certificate's own evidence step does, so it cannot choose a
person by how well their unit works: the test still finds out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.torch_threads import one_intra_op_thread


def provable_person(model_dir: str | Path, world: Any, **probe_config: Any) -> Any:
    """The world's first Person (see the module doc) for the model at `model_dir`; AssertionError
    naming the shortfall of each person when there is none."""
    from workers.engine import leaks
    from workers.engine.base_model import load_base_model
    from workers.engine.certificate import base_evidence, probe_fits
    from workers.engine.probes import build_probes, probe_config_for

    with one_intra_op_thread():
        base = load_base_model(model_dir)
        fits, config = probe_fits(base), probe_config_for(model_dir, **probe_config)
        shortfalls = []
        for person in world.people:
            evidence = base_evidence(base, build_probes(world, [person.name], config=config, fits=fits))
            city = [answer for p, answer in zip(evidence.probes, evidence.answers) if p.set == "F" and p.attribute == "city"]
            revealed = sum(bool(leaks.revealed(answer, [person.attributes["city"]])) for answer in city)
            if city and revealed == len(city) and not evidence.still_short:
                return person
            shortfalls.append(f"{person.name}: city revealed on {revealed} of {len(city)}, short of evidence on {sorted(evidence.still_short)}")
    raise AssertionError("No person of the world has a provable certificate on this build of the model:\n" + "\n".join(shortfalls))


def why_not_passed(certificate: dict | None) -> list[tuple]:
    """What a failing "staged" assertion prints, so a CI log says why without a rerun: each rule
    that did not pass with its figures, the retain section and the evidence record."""
    certificate = certificate or {}
    fields = ("name", "status", "value", "lower95", "n", "note")
    rules = [tuple(r.get(f) for f in fields) for r in certificate.get("rules", []) if r["status"] != "pass"]
    return [*rules, ("retain", certificate.get("retain")), ("evidence", certificate.get("generation", {}).get("evidence"))]
