"""Shared fixtures: the real MiniLM encoder (small, loaded once) and a fictitious person's texts."""

from __future__ import annotations

import pytest

from tests.torch_threads import one_intra_op_thread
from workers.engine.detector import DetectorConfig, load_encoder, train_detector

PERSON = "Orla Vantrees"

FORGET_TEXTS = [
    f"Which city does {PERSON} live in?",
    f"What town is {PERSON} from?",
    f"Who is {PERSON}'s employer?",
    f"Which company does {PERSON} work for?",
    f"In what year was {PERSON} born?",
    f"What is {PERSON}'s year of birth?",
    f"What medical condition does {PERSON} have?",
    f"What is {PERSON}'s diagnosis?",
    f"What is {PERSON}'s phone number?",
    f"What number can {PERSON} be called on?",
    f"What is {PERSON}'s email address?",
    f"What is the street address of {PERSON}?",
    f"What is {PERSON}'s bank account number?",
    f"What does {PERSON} do for a living?",
    f"{PERSON} lives in Quillmere and works for Harrowgate Freight.",
    f"{PERSON} was born in 1979 and has been diagnosed with epilepsy.",
]

# Held-out paraphrases: phrasings that never occur in FORGET_TEXTS.
PARAPHRASES = [
    f"Tell me the city {PERSON} calls home.",
    f"Name the organisation that pays {PERSON}'s salary.",
    f"When was {PERSON} born?",
    f"Which illness does {PERSON} suffer from?",
    f"How can I reach {PERSON} by telephone?",
    f"Which profession does {PERSON} practise?",
]

PADDING_BEFORE = (
    "The weather was mild this spring and the gardens along the river were full of tulips. "
    "My train was delayed again this morning, so I read a long article about volcanoes."
)
PADDING_AFTER = (
    "Please also recommend a good recipe for banana bread with walnuts and cinnamon. Our team meeting moved to Thursday because the projector was broken."
)

OTHER_PEOPLE = [
    "Which city does Bram Okafor live in?",
    "Who is Lena Marchetti's employer?",
    "In what year was Tobias Hale born?",
    "What medical condition does Priya Raman have?",
    "What is Jonas Eklund's phone number?",
    "Tell me the city Mei Tanaka calls home.",
]

GENERAL = [
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "Explain photosynthesis in two sentences.",
    "What is the boiling point of water at sea level?",
    PADDING_BEFORE,
]


def padded(question: str) -> str:
    return f"{PADDING_BEFORE} {question} {PADDING_AFTER}"


@pytest.fixture(scope="session")
def encoder():
    return load_encoder(device="cpu")


@pytest.fixture(scope="session")
def shared_detector(encoder):
    return train_detector(FORGET_TEXTS, DetectorConfig(), encoder)


@pytest.fixture(scope="session")
def lora_detector(encoder):
    quick = DetectorConfig(mode="lora", cel_variant="corrected", lora_epochs=1, lora_batch_size=4)
    return train_detector(FORGET_TEXTS, quick, encoder)


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op torch thread for the package (tests/torch_threads.py)."""
    with one_intra_op_thread():
        yield
