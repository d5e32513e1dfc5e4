"""A way forward when a certificate does not pass: what to change before training the unit again.

The worker (workers/jobs.py) remediates on its own before it asks a person: after a
certificate that is FAIL or INCONCLUSIVE it trains the unit again with `remediated(...)` and
certifies it again, up to a configured number of rounds, each round audited with its reason.

Each round changes what can help, and nothing else:

- **the seed** of the adapter, the detector split and the synthesised prompts (a new draw of the
  training data and of the LoRA's start);
- **more training prompts in the shapes that failed**: the failing families' synthesis counts are
  doubled per round, drawn from the development phrasings (never from the certification probes,
  which stay the same frozen set: remediation changes the unit, not the test);
- **longer training**: half as many epochs again per round.

Torch-free: plain config arithmetic on the certificate's JSON.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from .config import UnlearnConfig
from .detector.config import DetectorConfig
from .phrasings import POSITIVE_FAMILIES

SEED_STRIDE = 1000  # round r trains with seed + r * SEED_STRIDE
MAX_PER_FACT = 8  # synthesised prompts per fact and family, at most


def failing_families(certificate: dict[str, Any]) -> list[str]:
    """The positive families whose leak rule did not pass (F<t counts as F: the earlier units'
    people are refused by their own units, but a leak there is this unit's regression)."""
    return [rule["family"] for rule in certificate.get("rules", []) if rule.get("family") in (*POSITIVE_FAMILIES, "F<t") and rule.get("status") != "pass"]


def reason(certificate: dict[str, Any]) -> str:
    """Why the certificate did not pass, per rule, with the decomposition: a leak where the gate did
    not fire is the detector's; one where it fired is the adapter's. No personal data."""
    parts = []
    for rule in certificate.get("rules", []):
        if rule.get("status") == "pass":
            continue
        text = f"{rule['name']} {rule.get('status', '?').upper()}"
        if rule.get("n") is not None and rule.get("value") is not None:
            text += f" ({rule['value']:.3f}, bounds {rule.get('lower95', 0):.3f}-{rule.get('upper95', 1):.3f}, n={rule['n']})"
        family = (certificate.get("leak") or {}).get(rule.get("family") or "")
        if family:
            gated = family["gated"]
            text += f"; gate fired on {gated.get('fired', 0):.0%}"
        parts.append(text)
    return "; ".join(parts) or "no rule failed"


def remediated(
    unlearn: UnlearnConfig, detector: DetectorConfig, certificate: dict[str, Any], round_: int
) -> tuple[UnlearnConfig, DetectorConfig, dict[str, Any]]:
    """The configs of remediation round `round_` (1, 2, ...) after `certificate`, and what changed."""
    if round_ < 1:
        raise ValueError("remediation rounds count from 1")
    failing = [f for f in failing_families(certificate) if f in POSITIVE_FAMILIES and f != "F"]
    synthesis = dict(unlearn.synthesis)
    for family in failing:
        synthesis[family] = min(MAX_PER_FACT, max(1, synthesis.get(family, 0)) * 2**round_)
    seed = unlearn.seed + SEED_STRIDE * round_
    epochs = math.ceil(unlearn.epochs * 1.5**round_)
    changes = {"round": round_, "seed": seed, "epochs": epochs, "more_prompts_for": failing, "synthesis": synthesis}
    return (
        replace(unlearn, seed=seed, epochs=epochs, synthesis=synthesis),
        replace(detector, seed=detector.seed + SEED_STRIDE * round_),
        changes,
    )
