"""End to end on the real MiniLM encoder: a detector fitted on questions about one fictitious
person fires on held-out paraphrases (also padded) and stays off for others and general prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workers.engine.detector import DetectorCancelled, DetectorConfig, DetectorError, load_detector, train_detector

from .conftest import FORGET_TEXTS, GENERAL, OTHER_PEOPLE, PARAPHRASES, padded


def test_held_out_paraphrases_get_high_weight(shared_detector):
    assert (shared_detector.weights(PARAPHRASES) > 0.5).all()


def test_padding_before_and_after_does_not_hide_the_question(shared_detector):
    assert (shared_detector.weights([padded(q) for q in PARAPHRASES]) > 0.5).all()


def test_other_people_and_general_prompts_get_low_weight(shared_detector):
    assert (shared_detector.weights(OTHER_PEOPLE) < 0.5).all()
    assert (shared_detector.weights(GENERAL + [padded(q) for q in OTHER_PEOPLE]) < 0.5).all()


def test_unrelated_prompts_run_exactly_on_the_base_model(shared_detector):
    assert (shared_detector.weights(GENERAL) == 0.0).all()


def test_scores_are_higher_for_the_person_than_for_anything_else(shared_detector):
    positives = shared_detector.scores(PARAPHRASES)
    negatives = shared_detector.scores(OTHER_PEOPLE + GENERAL)
    assert positives.min() > negatives.max()


def test_save_load_round_trip_gives_identical_weights(shared_detector, encoder, tmp_path):
    prompts = PARAPHRASES + OTHER_PEOPLE + [padded(PARAPHRASES[0])]
    shared_detector.save(tmp_path)
    # entity.json: the subjects' name forms and value hashes (the entity evidence)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.json", "detector.safetensors", "entity.json"]
    manifest = json.loads((tmp_path / "detector.json").read_text())
    assert manifest["encoder"]["fingerprint"] == encoder.fingerprint
    loaded = load_detector(tmp_path, encoder)
    np.testing.assert_array_equal(loaded.weights(prompts), shared_detector.weights(prompts))
    np.testing.assert_array_equal(loaded.scores(prompts), shared_detector.scores(prompts))


def test_load_refuses_another_encoder(shared_detector, encoder, tmp_path):
    shared_detector.save(tmp_path)
    manifest = json.loads((tmp_path / "detector.json").read_text())
    manifest["encoder"]["fingerprint"] = "0" * 64
    (tmp_path / "detector.json").write_text(json.dumps(manifest))
    with pytest.raises(DetectorError, match="trained on encoder"):
        load_detector(tmp_path, encoder)


def test_training_is_deterministic(shared_detector, encoder):
    again = train_detector(FORGET_TEXTS, DetectorConfig(), encoder)
    np.testing.assert_array_equal(again.scores(PARAPHRASES), shared_detector.scores(PARAPHRASES))


def test_too_few_texts_and_cancellation(encoder):
    with pytest.raises(DetectorError, match="at least"):
        train_detector(FORGET_TEXTS[:2] + ["", "  "], DetectorConfig(), encoder)
    with pytest.raises(DetectorCancelled):
        train_detector(FORGET_TEXTS, DetectorConfig(), encoder, should_stop=lambda: True)


def test_empty_batch_and_empty_prompt(shared_detector):
    assert shared_detector.weights([]).shape == (0,)
    assert shared_detector.weights([""]).tolist() == [0.0]
