"""Building a request's forget set, and reading the "is it in the model?" check. Plain Python: the
web process, the GPU worker and the tests all use it (no torch, no database).

Sources, in order (DESIGN.md, "Building the forget set"):

1. what the subject gave: the stated facts (texts) and the evidence prompts (questions);
2. the training-corpus index searched for the subject's identifiers (name, email): each document
   found becomes a text, or a question with its answer when it is a QA pair ("Question: ...\\nAnswer: ...");
3. probe questions per found fact: with the demo world, the trained-template questions of every
   attribute of the person whose value appears in the facts, the evidence or the corpus hits.

Items are the engine's forget-set records (workers.engine.forget_set) plus a `source` key, and
`content_hash` is the engine's hash of exactly those items, so the hash in the audit log, on the
forget-set row and in the unit's manifest is one and the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.engine.forget_set import ForgetItem
from workers.engine.prompting import REFUSALS, contains_value, normalise
from workers.engine.unit_manifest import hash_forget_set

_QA = re.compile(r"\A\s*Question:\s*(?P<question>.+?)\s*\nAnswer:\s*(?P<answer>.+?)\s*\Z", re.DOTALL)
ENGINE_KEYS = ("question", "answer", "text")
# Shortest normalised answer that counts as revealing part of a stated fact ("in", "a" do not).
MIN_ANSWER_CHARS = 3


@dataclass(frozen=True)
class CorpusHit:
    """A corpus document that mentions the subject (id, kind and text)."""

    id: str
    kind: str
    text: str


@dataclass
class BuiltForgetSet:
    """The forget set before it is frozen: items, who it is about, and the values found."""

    items: list[dict[str, str]]
    people: list[str] = field(default_factory=list)  # demo-world people the request is about
    holdout_people: list[str] = field(default_factory=list)  # ...of whom the model never saw these
    values: list[str] = field(default_factory=list)  # their attribute values found in the sources
    corpus_documents: int = 0

    @property
    def content_hash(self) -> str:
        return items_hash(self.items)

    @property
    def sources(self) -> dict[str, int]:
        return source_counts(self.items, self.corpus_documents)

    def subjects_payload(self, *, name: str) -> dict[str, Any]:
        return {"name": name, "people": self.people, "holdout_people": self.holdout_people, "values": self.values}


def canonical(item: dict[str, str]) -> str | tuple[str, ...]:
    """What the engine hashes for one item: its ForgetItem.canonical, the one definition (the worker
    re-hashes the frozen items with the engine before training, so the two always meet)."""
    return ForgetItem(**{key: item[key] for key in ENGINE_KEYS if key in item}).canonical()


def items_hash(items: Iterable[dict[str, str]]) -> str:
    """The engine's forget-set hash of `items` (workers.engine.unit_manifest.hash_forget_set)."""
    return hash_forget_set(canonical(item) for item in items)


def engine_records(items: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """The items as workers.engine.forget_set.ForgetSet.from_records takes them (no `source`,
    no subject: the unit's manifest must not carry names)."""
    return [{key: item[key] for key in ENGINE_KEYS if key in item} for item in items]


def source_counts(items: Iterable[dict[str, str]], corpus_documents: int) -> dict[str, int]:
    counts = {"facts": 0, "evidence_prompts": 0, "corpus_items": 0, "probe_questions": 0}
    names = {"fact": "facts", "evidence": "evidence_prompts", "corpus": "corpus_items", "probe": "probe_questions"}
    for item in items:
        counts[names[item["source"].split(":", 1)[0]]] += 1
    counts["corpus_documents"] = corpus_documents
    return counts


def _clean(text: str) -> str:
    return str(text or "").strip()


def qa_pair(text: str) -> tuple[str, str] | None:
    """(question, answer) of a corpus QA document ("Question: ...\nAnswer: ..."), else None."""
    match = _QA.match(text)
    return (match["question"].strip(), match["answer"].strip()) if match else None


def corpus_item(hit: CorpusHit) -> dict[str, str]:
    """A QA pair becomes a question with its answer; anything else a text."""
    match = _QA.match(hit.text)
    if match:
        return {"question": match["question"].strip(), "answer": match["answer"].strip(), "source": f"corpus:{hit.id}"}
    return {"text": hit.text.strip(), "source": f"corpus:{hit.id}"}


def matched_people(world: Any, *, name: str, email: str, texts: Sequence[str]) -> list[Any]:
    """The demo-world people the request is about: the subject's exact name, or anyone whose unique
    identifiers (name, email, phone, account, address) occur in the name, email, facts or evidence."""
    found: dict[str, Any] = {}
    try:
        person = world.person(name)
        found[person.name] = person
    except KeyError:
        pass
    for person in world.find_people(" \n ".join([name, email, *texts])):
        found.setdefault(person.name, person)
    return list(found.values())


def build_forget_set(
    *, name: str, email: str, facts: Sequence[str], evidence_prompts: Sequence[str], hits: Sequence[CorpusHit], world: Any = None
) -> BuiltForgetSet:
    """The forget set of one request (see the module docstring). `world` is the demo world when the
    base model is the demo model (it has the question templates), else None: then the probes are
    the evidence prompts alone."""
    facts = [f for f in map(_clean, facts) if f]
    evidence = [p for p in map(_clean, evidence_prompts) if p]
    items: list[dict[str, str]] = [{"text": f, "source": "fact"} for f in facts]
    items += [{"question": p, "source": "evidence"} for p in evidence]
    items += [corpus_item(hit) for hit in hits if hit.text.strip()]

    people, holdout, values = [], [], []
    if world is not None:
        haystack = "\n".join([*facts, *evidence, *(hit.text for hit in hits)])
        for person in matched_people(world, name=name, email=email, texts=[*facts, *evidence]):
            keys = [key for key in world.attribute_keys if contains_value(haystack, person.attributes[key])]
            (holdout if person.holdout else people).append(person.name)
            values += [person.attributes[key] for key in keys]
            for qa in world.questions(person, "trained", attributes=keys) if keys else []:
                items.append({"question": qa.question, "answer": qa.answer, "source": f"probe:{qa.attribute}"})

    unique: dict[Any, dict[str, str]] = {}
    for item in items:
        unique.setdefault(canonical(item), item)  # the first source that brought an item keeps it
    return BuiltForgetSet(list(unique.values()), people, holdout, list(dict.fromkeys(values)), corpus_documents=len(hits))


# --- "is it in the model?" --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckPrompt:
    """A prompt the base model is asked, and the values whose appearance in its answer counts."""

    prompt: str
    values: tuple[str, ...]


def check_prompts(items: Sequence[dict[str, str]], values: Sequence[str], limit: int = 64) -> list[CheckPrompt]:
    """The evidence prompts (any found value counts) and the probe questions (their own answer),
    at most `limit` (evidence first)."""
    prompts: dict[str, CheckPrompt] = {}
    for item in items:
        if item["source"] == "evidence":
            prompts.setdefault(item["question"], CheckPrompt(item["question"], tuple(values)))
    for item in items:
        if item["source"].startswith("probe:") or (item["source"].startswith("corpus:") and "answer" in item):
            prompts.setdefault(item["question"], CheckPrompt(item["question"], (item["answer"],)))
    return list(prompts.values())[:limit]


def _reveals_a_fact(answer: str, facts: Sequence[str], name: str) -> bool:
    """The answer is part of a stated fact (and not just the subject's name): "Where does Alice
    live?" -> "Utrecht", with the fact "Alice Example lives in Utrecht"."""
    said = normalise(answer)
    if len(said) < MIN_ANSWER_CHARS or any(said == normalise(r) for r in REFUSALS) or said in normalise(name):
        return False
    return any(f" {said} " in f" {normalise(fact)} " for fact in facts)


def read_model_check(
    prompts: Sequence[CheckPrompt], answers: Sequence[str], *, facts: Sequence[str], name: str, corpus_documents: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(findings, details). findings has no personal data (counts and the verdict, for the audit
    log and the page); details lists each prompt, the model's answer and the value it revealed
    (personal: stored encrypted). The data is in the model when an answer reveals a stated or
    found value, or when the corpus holds documents about the subject."""
    details = []
    for check, answer in zip(prompts, answers, strict=True):
        value = next((v for v in check.values if contains_value(answer, v)), None)
        if value is None and _reveals_a_fact(answer, facts, name):
            value = answer.strip()
        details.append({"prompt": check.prompt, "answer": answer, "revealed": value})
    reproduced = sum(1 for d in details if d["revealed"] is not None)
    findings = {
        "prompts_checked": len(details),
        "answers_revealing_data": reproduced,
        "corpus_documents": corpus_documents,
        "in_model": bool(reproduced or corpus_documents),
    }
    return findings, details
