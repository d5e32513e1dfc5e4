"""One request's forget set: what the unit must stop revealing, read from JSONL.

A forget set is a list of items, each either

- a question with an optional gold answer: `{"question": "Where does Ada live?", "answer": "Varnholm"}`
- or a raw text about the person:           `{"text": "Ada Brightwell lives in Varnholm. ..."}`

and, optionally on any line, `"subject": "Ada Brightwell"` (the data subject's name). Blank lines
are skipped; anything else (bad JSON, no question or text, unknown keys, non-string values, an
empty file) is a `ForgetSetError` whose one-line message names the file and the line.

How each kind of item is used (the two consumers need different things):

- **Detector** (`detector_texts`): the question as it is (the gate scores prompts, which are
  questions), or the raw text as it is (the detector splits long texts into sentence windows).
  The answer is left out: gold values make every question about any person look alike to the
  encoder (measured on the demo world: far more other people above the gate threshold).
- **Adapter** (`training_items`): a question becomes a (question, answer) pair; O3 replaces the
  answer by a refusal, the answer-based baselines (ga/gd/npo) train on the answer. A raw text has
  no question, so for O3 *each sentence* of the text becomes a prompt paired with a refusal
  (`Question: Ada Brightwell lives in Varnholm.\nAnswer: I can't share ...`): the adapter learns
  to refuse whenever the person's facts are the subject of the prompt, whatever its phrasing; the
  leading sentence alone would drop the facts stated later in the text. For the answer-based
  baselines the whole text is the target (methods.as_examples on a string).

The content hash (`ForgetSet.hash`) is artifacts.hash_forget_set over the items in file order:
`[question]` or `[question, answer]` for questions, the string for texts. Subjects are not part of
the hash (they are metadata about the set, and personal data the caller may choose not to record).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .detector.negatives import infer_subjects
from .families import Fact, classify_attribute
from .prompting import PromptError, PromptSpec
from .unit_manifest import hash_forget_set

ITEM_KEYS = ("question", "answer", "text", "subject")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class ForgetSetError(ValueError):
    """A forget set (or another JSONL input) cannot be read; the message is one line."""


@dataclass(frozen=True)
class ForgetItem:
    """A question (with an optional gold answer) or a raw text; exactly one of question and text."""

    question: str | None = None
    answer: str | None = None
    text: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        for name in ITEM_KEYS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ForgetSetError(f'"{name}" must be a non-empty string')
            if value is not None:
                object.__setattr__(self, name, value.strip())
        if (self.question is None) == (self.text is None):
            raise ForgetSetError('an item needs either "question" (with an optional "answer") or "text", not both')
        if self.text is not None and self.answer is not None:
            raise ForgetSetError('"answer" goes with "question", not with "text"')

    @property
    def kind(self) -> str:
        return "question" if self.question is not None else "text"

    def canonical(self) -> str | tuple[str, ...]:
        """What the content hash covers: (question,), (question, answer) or the text."""
        if self.text is not None:
            return self.text
        return (self.question, self.answer) if self.answer is not None else (self.question,)

    def sentences(self) -> list[str]:
        """A raw text's sentences (a question is one sentence)."""
        source = self.text if self.text is not None else self.question
        return [" ".join(part.split()) for part in _SENTENCE_END.split(source or "") if part.strip()]

    def to_json(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in ITEM_KEYS if getattr(self, key) is not None}


@dataclass(frozen=True)
class ForgetSet:
    """A request's forget items, plus who they are about.

    subjects: names of the data subjects (personal data: record them only where allowed).
    identifiers: other strings that single the subjects out (emails, phone numbers), optional.
    values: more of the subjects' data than the answers carry (e.g. values found in stated facts).
    """

    items: tuple[ForgetItem, ...]
    subjects: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    source: str | None = None  # where it was read from, for messages
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        if not self.items:
            raise ForgetSetError(f"{self.source or 'forget set'}: no forget items")
        named = [item.subject for item in self.items if item.subject]
        object.__setattr__(self, "subjects", tuple(dict.fromkeys([*self.subjects, *named])))
        object.__setattr__(self, "identifiers", tuple(dict.fromkeys(self.identifiers)))
        object.__setattr__(self, "values", tuple(dict.fromkeys(v for v in self.values if v and v.strip())))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ForgetItem]:
        return iter(self.items)

    @property
    def hash(self) -> str:
        """SHA-256 of the items' canonical JSON (artifacts.hash_forget_set)."""
        return hash_forget_set(item.canonical() for item in self.items)

    @property
    def questions(self) -> list[ForgetItem]:
        return [item for item in self.items if item.kind == "question"]

    @property
    def texts(self) -> list[ForgetItem]:
        return [item for item in self.items if item.kind == "text"]

    def resolved_subjects(self) -> tuple[tuple[str, ...], bool]:
        """(the data subjects, inferred?): the subjects given, else the names that recur in the
        items (detector.negatives.infer_subjects)."""
        if self.subjects:
            return self.subjects, False
        return tuple(infer_subjects(self.detector_texts())), True

    def facts(self) -> list[Fact]:
        """What must not come out: one Fact per question with an answer, about the subject the
        question names (or the only subject), its attribute classified from the question."""
        subjects, _ = self.resolved_subjects()
        facts: dict[tuple[str, str | None, str], Fact] = {}
        for item in self.questions:
            if not item.answer:
                continue
            subject = item.subject or _subject_named(item.question or "", subjects)
            if subject:
                fact = Fact(subject, classify_attribute(item.question or ""), item.answer, item.question)
                facts.setdefault((fact.subject, fact.attribute, fact.value), fact)  # one per value, its first question
        return list(facts.values())

    def all_values(self) -> list[str]:
        """Every value the subjects' data holds: the answers, the extra values and identifiers."""
        return list(dict.fromkeys([*(i.answer for i in self.questions if i.answer), *self.values, *self.identifiers]))

    def detector_texts(self) -> list[str]:
        """What the request's detector is fitted on: questions and raw texts as they are, deduplicated."""
        return list(dict.fromkeys(item.question if item.kind == "question" else item.text for item in self.items))

    def training_items(self, target: str = "refusal") -> list[tuple[str, str] | str]:
        """Items for training.train_unit_adapter, for a method whose target is 'refusal' or 'answer'.

        Questions: (question, answer) pairs; a question without an answer gets "" (fine for O3,
        whose target is a refusal; the answer-based methods need answers). Texts: for 'refusal',
        one (sentence, "") pair per sentence; for 'answer', the text itself.
        """
        if target not in ("refusal", "answer"):
            raise ValueError(f"target must be 'refusal' or 'answer', got {target!r}")
        out: list[tuple[str, str] | str] = []
        for item in self.items:
            if item.kind == "question":
                if target == "answer" and item.answer is None:
                    raise ForgetSetError(
                        f"{self.source or 'forget set'}: the question {item.question!r} has no answer, which answer-based methods (ga, gd, npo) need"
                    )
                out.append((item.question, item.answer or ""))
            elif target == "refusal":
                out += [(sentence, "") for sentence in item.sentences()]
            else:
                out.append(item.text)
        return out

    def to_jsonl(self) -> str:
        return "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in self.items)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_jsonl(), encoding="utf-8")
        return path

    @classmethod
    def from_records(
        cls,
        records: Iterable[dict[str, Any]],
        *,
        subjects: Sequence[str] = (),
        identifiers: Sequence[str] = (),
        source: str | None = None,
    ) -> ForgetSet:
        """From dicts shaped like the JSONL lines (`source` names them in error messages)."""
        items = []
        for number, record in enumerate(records, start=1):
            items.append(_item(record, f"{source or 'forget set'} item {number}"))
        return cls(tuple(items), tuple(subjects), tuple(identifiers), source)

    @classmethod
    def from_jsonl(cls, path: str | Path, *, subjects: Sequence[str] = (), identifiers: Sequence[str] = ()) -> ForgetSet:
        """Read a forget file: one JSON object per line (see the module docstring)."""
        items = [_item(record, f"{path} line {number}") for number, record in iter_jsonl(path)]
        if not items:
            raise ForgetSetError(f"{path}: no forget items (the file is empty)")
        return cls(tuple(items), tuple(subjects), tuple(identifiers), str(path))


def _subject_named(question: str, subjects: Sequence[str]) -> str | None:
    """The subject a question names (full name first, then any part), or the only subject."""
    for subject in subjects:
        if subject in question:
            return subject
    for subject in subjects:
        if any(part in question for part in subject.split() if len(part) > 2):
            return subject
    return subjects[0] if len(subjects) == 1 else None


def _item(record: Any, where: str) -> ForgetItem:
    if not isinstance(record, dict):
        raise ForgetSetError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(ITEM_KEYS))
    if unknown:
        raise ForgetSetError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(ITEM_KEYS)})")
    if "question" not in record and "text" not in record:
        raise ForgetSetError(f'{where}: needs "question" (with an optional "answer") or "text"')
    try:
        return ForgetItem(**{key: record.get(key) for key in ITEM_KEYS})
    except ForgetSetError as exc:
        raise ForgetSetError(f"{where}: {exc}") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; ForgetSetError names a bad line."""
    path = Path(path)
    if not path.exists():
        raise ForgetSetError(f"{path}: file not found")
    if not path.is_file():
        raise ForgetSetError(f"{path}: not a file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ForgetSetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ForgetSetError(f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def read_prompts(path: str | Path) -> list[PromptSpec]:
    """The prompt of every line of a JSONL file: {"question"}, {"prompt"} (raw) or {"messages"}
    (a chat); other keys are ignored."""
    prompts = []
    for number, record in iter_jsonl(path):
        try:
            prompts.append(PromptSpec.from_json(record, f"{path} line {number}"))
        except PromptError as exc:
            raise ForgetSetError(str(exc)) from None
    if not prompts:
        raise ForgetSetError(f"{path}: no prompts (the file is empty)")
    return prompts


def read_questions(path: str | Path) -> list[str]:
    """The `question` of every line of a JSONL file (other keys are ignored)."""
    prompts = read_prompts(path)
    bad = next((i for i, p in enumerate(prompts) if p.shape != "question"), None)
    if bad is not None:
        raise ForgetSetError(f'{path}: entry {bad + 1} is not a "question"')
    return [p.text.strip() for p in prompts]


def read_facts(path: str | Path) -> list[Fact]:
    """Facts about people from JSONL lines {"question", "answer", "subject"} (e.g. other people's
    data sampled from a corpus index, for a certificate's negatives)."""
    facts = []
    for number, record in iter_jsonl(path):
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record[k].strip() for k in ("question", "answer", "subject")):
            raise ForgetSetError(f'{path} line {number}: needs non-empty strings "question", "answer" and "subject"')
        facts.append(Fact(record["subject"].strip(), classify_attribute(record["question"]), record["answer"].strip(), record["question"].strip()))
    if not facts:
        raise ForgetSetError(f"{path}: no facts (the file is empty)")
    return facts


def forget_set_for_people(world: Any, people: Sequence[Any], *, include_profile: bool = False) -> ForgetSet:
    """The demo request for some people of a DemoWorld: their trained questions with answers
    (and, with include_profile, their profile text), with their names as subjects and their
    contact data as identifiers."""
    items: list[ForgetItem] = []
    identifiers: list[str] = []
    for person in people:
        person = world.person(person) if isinstance(person, str) else person
        items += [ForgetItem(question=qa.question, answer=qa.answer, subject=person.name) for qa in world.questions(person, "trained")]
        if include_profile:
            items.append(ForgetItem(text=world.profile(person), subject=person.name))
        identifiers += list(person.identifiers()[1:])
    return ForgetSet(tuple(items), identifiers=tuple(identifiers), source="demo world")
