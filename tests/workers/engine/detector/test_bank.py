"""Many shared-mode detectors scored with one encoder pass: same answers as one by one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from workers.engine.detector import DetectorBank, DetectorConfig, DetectorError, train_detector

from .conftest import FORGET_TEXTS, GENERAL, OTHER_PEOPLE, PARAPHRASES, padded

OTHER_PERSON = "Bram Okafor"


@pytest.fixture(scope="module")
def detectors(shared_detector, encoder):
    other = [text.replace("Orla Vantrees", OTHER_PERSON) for text in FORGET_TEXTS]
    return {
        "orla": shared_detector,
        "bram": train_detector(other, DetectorConfig(), encoder),
        # fewer texts (a different stored sample count) and another nu / floor
        "orla-small": train_detector(FORGET_TEXTS[:8], DetectorConfig(nu=0.1, weight_floor=0.2, seed=3), encoder),
    }


PROMPTS = PARAPHRASES[:3] + OTHER_PEOPLE[:3] + GENERAL[:2] + [padded(PARAPHRASES[0])]


def test_bank_equals_each_detector_alone(detectors, encoder):
    bank = DetectorBank(encoder)
    bank.add_many(detectors)
    result = bank.score(PROMPTS)
    assert result.unit_ids == tuple(detectors) and result.weights.shape == (len(PROMPTS), 3)
    for column, detector in enumerate(detectors.values()):
        np.testing.assert_allclose(result.scores[:, column], detector.scores(PROMPTS), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(result.weights[:, column], detector.weights(PROMPTS), atol=1e-5)
    # Bram's questions fire Bram's unit only.
    bram = bank.score([f"Tell me the city {OTHER_PERSON} calls home."]).weights[0]
    assert bram[1] > 0.5 and bram[0] < 0.5


def test_units_can_be_added_and_removed_at_run_time(detectors, encoder):
    bank = DetectorBank(encoder)
    assert bank.score(PROMPTS).weights.shape == (len(PROMPTS), 0)
    bank.add("orla", detectors["orla"])
    bank.add("bram", detectors["bram"])
    bank.remove("orla")
    result = bank.score(PROMPTS)
    assert result.unit_ids == ("bram",)
    np.testing.assert_allclose(result.weights[:, 0], detectors["bram"].weights(PROMPTS), atol=1e-5)
    with pytest.raises(KeyError):
        bank.remove("orla")


def test_concurrent_calls_agree(detectors, encoder):
    bank = DetectorBank(encoder)
    bank.add_many(detectors)
    expected = bank.score(PROMPTS).weights
    batches = [PROMPTS[i:] + PROMPTS[:i] for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda prompts: bank.score(prompts).weights, batches))
    for i, weights in enumerate(results):
        np.testing.assert_allclose(weights, np.roll(expected, -i, axis=0), atol=1e-5)


def test_bank_refuses_detectors_it_cannot_score_in_its_pass(shared_detector, lora_detector, encoder):
    with pytest.raises(DetectorError, match="layers"):
        DetectorBank(encoder, DetectorConfig(layers=None)).add("orla", shared_detector)
    with pytest.raises(DetectorError, match="shared-mode"):
        DetectorBank(encoder).add("lora", lora_detector)
