"""The name test: synthetic name negatives made from the forget texts themselves keep relatives
(same surname, or same first name) out of the gate, without any retain data."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from workers.engine import world
from workers.engine.detector import DetectorConfig, load_detector, train_detector
from workers.engine.detector.negatives import FIRST_NAMES, SURNAMES, infer_subjects, name_swaps

from .conftest import FORGET_TEXTS, GENERAL, OTHER_PEOPLE, PARAPHRASES, PERSON, padded

# Relatives of Orla Vantrees asked in her own trained phrasings: the case the glocal score alone
# ranked above her held-out paraphrases.
RELATIVES = [
    "Which city does Maren Vantrees live in?",
    "Who is Maren Vantrees's employer?",
    "What is Idris Vantrees's phone number?",
    "In what year was Idris Vantrees born?",
    "What is Orla Castellane's year of birth?",
    "Which company does Orla Castellane work for?",
]


def test_generic_names_are_not_people_of_the_demo_world():
    # A negative that were a real person of the benchmark's world would be retain data in disguise.
    assert not set(FIRST_NAMES) & set(world.FIRST_NAMES)
    assert not set(SURNAMES) & set(world.SURNAMES)
    assert not (set(FIRST_NAMES) | set(SURNAMES)) & (set(world.FIRST_NAMES) | set(world.SURNAMES))


def test_name_swaps_replace_first_name_surname_or_both():
    swaps = name_swaps(f"Where does {PERSON} live? {PERSON.split()[0]} moved in 2019.", [PERSON], random.Random(0), 3)
    assert set(swaps) == {"first", "last", "both"} and all(len(copies) == 3 for copies in swaps.values())
    for copy in swaps["first"]:
        assert "Vantrees" in copy and "Orla" not in copy  # the first name alone is replaced too
    for copy in swaps["last"]:
        assert "Orla" in copy and "Vantrees" not in copy
    for copy in swaps["both"]:
        assert "Orla" not in copy and "Vantrees" not in copy
    assert name_swaps("What is the capital of France?", [PERSON], random.Random(0), 3) == {}
    assert set(name_swaps("Ask Cher about it.", ["Cher"], random.Random(0), 2)) == {"both"}
    assert name_swaps("Orlando lives here.", [PERSON], random.Random(0), 2) == {}  # whole words only


def test_subjects_are_inferred_from_recurring_capitalised_names():
    texts = FORGET_TEXTS + ["Tell me Orla Vantrees's line of work.", "Does Orla Vantrees own a car?"]
    assert infer_subjects(texts) == [PERSON]  # Quillmere and Harrowgate Freight occur once
    two = [f"Where does {name} live?" for name in ("Ada Brightwell", "Nils Gallowglass")] * 3
    assert sorted(infer_subjects(two)) == ["Ada Brightwell", "Nils Gallowglass"]
    assert infer_subjects(["What is the capital of France?", "How do I bake bread?"]) == []


# A request like the tiny demo world's: 4 attributes x 2 phrasings, questions that differ from a
# relative's only by one name. Without the name test, relatives asked in these very phrasings got
# weights up to 0.98 (the failure measured on the tiny demo model).
SMALL_REQUEST = [
    f"Which city does {PERSON} live in?",
    f"What city is {PERSON} from?",
    f"Who is {PERSON}'s employer?",
    f"Which company does {PERSON} work for?",
    f"In what year was {PERSON} born?",
    f"What is {PERSON}'s year of birth?",
    f"What is {PERSON}'s phone number?",
    f"What number can {PERSON} be called on?",
]
SMALL_RELATIVES = [t.replace("Orla", "Maren") for t in SMALL_REQUEST] + [t.replace("Vantrees", "Castellane") for t in SMALL_REQUEST]
SMALL_PARAPHRASES = [
    f"Tell me the city {PERSON} calls home.",
    f"Name the organisation that pays {PERSON}'s salary.",
    f"When was {PERSON} born?",
    f"How can I reach {PERSON} by telephone?",
]


@pytest.fixture(scope="module")
def without_name_test(encoder):
    return train_detector(SMALL_REQUEST, DetectorConfig(name_negatives=0), encoder)


@pytest.fixture(scope="module")
def with_name_test(encoder):
    return train_detector(SMALL_REQUEST, DetectorConfig(), encoder)


def test_relatives_are_kept_out_and_the_person_is_still_caught(shared_detector, with_name_test):
    for detector, relatives, paraphrases, forget in (
        (shared_detector, RELATIVES, PARAPHRASES, FORGET_TEXTS),
        (with_name_test, SMALL_RELATIVES, SMALL_PARAPHRASES, SMALL_REQUEST),
    ):
        assert detector.metadata["name_test"]["negatives"] > 0
        assert detector.metadata["subjects"] == {"count": 1, "inferred": True}
        assert (detector.weights(relatives) < 0.5).all()
        assert (detector.weights(paraphrases + [padded(q) for q in paraphrases]) > 0.5).all()
        assert (detector.weights(forget) > 0.5).all()  # every forget text, held out for calibration or not
        assert (detector.weights(OTHER_PEOPLE + GENERAL) < 0.5).all()


def test_without_the_name_test_relatives_get_through(without_name_test, with_name_test):
    # The failure the name test fixes: a relative asked in the person's own phrasings.
    assert "name_test" not in without_name_test.metadata
    assert (without_name_test.weights(SMALL_RELATIVES) > 0.5).mean() >= 0.25
    assert (with_name_test.weights(SMALL_RELATIVES) == 0).all()


def test_explicit_subjects_and_no_subjects(encoder):
    given = train_detector(FORGET_TEXTS, DetectorConfig(), encoder, subjects=[PERSON])
    assert given.metadata["subjects"] == {"count": 1, "inferred": False}
    assert (given.weights(RELATIVES) < 0.5).all()
    none = train_detector(FORGET_TEXTS, DetectorConfig(), encoder, subjects=())
    assert "name_test" not in none.metadata and not none.unit.has_name_test


def test_a_version_1_detector_still_loads_without_the_name_test(without_name_test, encoder, tmp_path):
    without_name_test.save(tmp_path)
    manifest = json.loads((tmp_path / "detector.json").read_text())
    manifest["format_version"] = 1
    (tmp_path / "detector.json").write_text(json.dumps(manifest))
    tensors = load_file(str(tmp_path / "detector.safetensors"))
    save_file({k: v for k, v in tensors.items() if k not in ("negatives", "name_threshold")}, str(tmp_path / "detector.safetensors"))
    loaded = load_detector(tmp_path, encoder)
    prompts = PARAPHRASES + RELATIVES + GENERAL
    assert not loaded.unit.has_name_test
    np.testing.assert_allclose(loaded.weights(prompts), without_name_test.weights(prompts), atol=1e-6)


def test_svm_weights_are_positive(shared_detector, with_name_test, without_name_test):
    for detector in (shared_detector, with_name_test, without_name_test):
        assert all(c > 0 for c in detector.metadata["svm_coef"]) and not detector.metadata["svm_fallback"]


def test_the_name_test_runs_only_where_it_can_change_a_weight(shared_detector, with_name_test, encoder):
    # The veto is computed only for (window, request) pairs whose weight would be above 0; the
    # weights must equal those of the test applied everywhere, for every request of a bank.
    from workers.engine.detector.scorer import ScorerStack
    from workers.engine.detector.windows import split_all

    config = with_name_test.config
    stack = ScorerStack([shared_detector.unit, with_name_test.unit, shared_detector.unit])
    prompts = SMALL_RELATIVES + SMALL_PARAPHRASES + RELATIVES + PARAPHRASES + OTHER_PEOPLE + GENERAL
    windows, _ = split_all(prompts, config.window_words, config.window_stride, config.sentence_windows)
    features = encoder.layer_features(windows, with_name_test.layers, config.batch_size)

    lazy = stack.scores(features)
    glocal, margins = stack.scores_and_margins(features, name_test=False)
    eager = torch.where(margins < stack.name_threshold, -torch.inf, glocal)
    torch.testing.assert_close(stack.weights(lazy), stack.weights(eager))
    vetoed = torch.isinf(lazy) & (stack.weights(glocal) > 0)
    assert vetoed.any()  # relatives in the person's phrasings: the test did fire
    assert not (torch.isinf(lazy) & (stack.weights(glocal) == 0)).any()  # and only where it mattered
