"""Probe families: seeded generators of prompts about a data subject, from the forget facts alone.

Every family (EVAL.md) is generated from `Fact`s (subject, attribute, value) by the same code for the
demo world and for an operator's own model, from the phrasings in phrasings.py, in either split:

| family      | what                                                        | shapes          |
|-------------|-------------------------------------------------------------|-----------------|
| F           | the forget questions themselves (the trained phrasings)     | question        |
| P           | paraphrases: frames around attribute noun phrases           | question        |
| statement   | a sentence about the subject to complete                    | raw, question   |
| open        | "tell me about", biographies, profiles                      | question, raw   |
| language    | the questions in German, French, Spanish (dev: + nl, it, pt)| question        |
| name_forms  | misspellings, initials, surname alone, transliterations...  | question        |
| wrapper     | role-play and instruction-override wrappers                 | question, chat  |
| chat        | the subject named in an earlier turn, asked about later     | chat            |
| D           | a question padded with unrelated sentences before and after | question        |

Sampling is deterministic for a seed; `fits(spec)` (the model's context check) filters prompts the
model could not read, while sampling, so a family still gets its count. Nothing here imports torch.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cyrtranslit
from transliterate import translit

from . import phrasings as ph
from .prompting import PromptError, PromptSpec

POSITIVE_FAMILIES = ph.POSITIVE_FAMILIES
# The families that carry a leak rule of their own (F<t, earlier units' F, is added by the certificate).
NEGATIVE_FAMILIES: tuple[str, ...] = ("R", "N", "W")
REFERENCE_FAMILIES: tuple[str, ...] = ("O",)


class FamilyError(PromptError):
    """A family or split is unknown; the message is one line."""


# --- facts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One thing about a subject that must not come out: the attribute may be unknown (None)."""

    subject: str
    attribute: str | None
    value: str
    question: str | None = None  # the forget set's own question for it, when there is one


def classify_attribute(question: str) -> str | None:
    """Which attribute an operator's question asks for, by keywords (phrasings.ATTRIBUTE_KEYWORDS)."""
    lowered = f" {question.lower()} "
    for key, words in ph.ATTRIBUTE_KEYWORDS:
        if any(word in lowered for word in words):
            return key
    return None


def facts_of_person(world: Any, person: Any) -> list[Fact]:
    """A demo-world person's facts, one per attribute."""
    person = world.person(person) if isinstance(person, str) else person
    return [Fact(person.name, key, person.attributes[key]) for key in world.attribute_keys]


def facts_from_items(items: Iterable[tuple[str, str | None]], subject: str) -> list[Fact]:
    """An operator's forget questions with answers as facts about `subject` (questions without an
    answer give no fact: there is no value to look for)."""
    facts = []
    for question, answer in items:
        if answer:
            facts.append(Fact(subject, classify_attribute(question), answer, question))
    return facts


@dataclass(frozen=True)
class Generated:
    """A generated prompt with what it is about."""

    spec: PromptSpec
    family: str
    subject: str | None
    attribute: str | None = None
    value: str | None = None
    detail: str = ""  # e.g. the name form, the wrapper's index, the language


Fits = Callable[[PromptSpec], bool]


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


def _check_split(split: str) -> None:
    if split not in ph.SPLITS:
        raise FamilyError(f"unknown split {split!r}; expected one of {', '.join(ph.SPLITS)}")


# --- name forms --------------------------------------------------------------------------------------------

_VOWEL_ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "y": "ý"}
_KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"


def misspell(word: str, rng: random.Random, edits: int = 1) -> str:
    """`edits` typing errors (substitution, deletion, doubling, transposition), never at the first
    letter, so the result stays a misspelling of this word and not another name."""
    chars = list(word)
    for _ in range(edits):
        if len(chars) < 3:
            break
        position = rng.randrange(1, len(chars))
        op = rng.choice(("substitute", "delete", "double", "transpose"))
        if op == "substitute":
            lower = chars[position].lower()
            index = _KEYBOARD.find(lower)
            replacement = _KEYBOARD[(index + rng.choice((-1, 1))) % len(_KEYBOARD)] if index >= 0 else "e"
            chars[position] = replacement.upper() if chars[position].isupper() else replacement
        elif op == "delete" and len(chars) > 3:
            del chars[position]
        elif op == "double":
            chars.insert(position, chars[position])
        elif position + 1 < len(chars):
            chars[position], chars[position + 1] = chars[position + 1], chars[position]
        else:
            chars[position - 1], chars[position] = chars[position], chars[position - 1]
    result = "".join(chars)
    return result if result != word else word[:-1] + ("a" if word[-1] != "a" else "e")


def _split_name(name: str) -> tuple[str, str]:
    parts = name.split()
    return (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", parts[0])


def name_form(name: str, kind: str, rng: random.Random, split: str, context: str | None = None) -> str | None:
    """The subject's name written the way `kind` says (phrasings.NAME_FORM_KINDS); None when the
    kind does not apply (a one-word name has no initials)."""
    given, surname = _split_name(name)
    if kind in ("misspelt_given", "given_initial", "reversed", "initial_surname", "given_with_context") and not given:
        return None
    if kind == "misspelt_given":
        return f"{misspell(given, rng)} {surname}"
    if kind == "misspelt_surname":
        return f"{given} {misspell(surname, rng)}".strip()
    if kind == "misspelt_twice":
        if len(surname) >= 7 or not given:
            return f"{given} {misspell(surname, rng, 2)}".strip()
        return f"{misspell(given, rng)} {misspell(surname, rng)}"
    if kind == "initial_surname":
        return f"{given[0]}. {surname}"
    if kind == "given_initial":
        return f"{given} {surname[0]}."
    if kind == "uppercase":
        return name.upper()
    if kind == "lowercase":
        return name.lower()
    if kind == "accented":
        return "".join(_VOWEL_ACCENTS.get(ch, ch) if i % 2 else ch for i, ch in enumerate(name))
    if kind == "reversed":
        return f"{surname}, {given}"
    if kind == "surname_only":
        return surname
    if kind == "surname_titled":
        return f"{_pick(rng, ph.TITLES[split])} {surname}"
    if kind == "given_with_context":
        return f"{given} (the one from {context})" if context else None
    if kind == "transliterated":
        # Different libraries for the two splits: the gate's own variants come from cyrtranslit,
        # so certifying on them would certify the gate against itself.
        return translit(name, "ru") if split == "cert" else cyrtranslit.to_cyrillic(name, "ru")
    raise FamilyError(f"unknown name form {kind!r}")


# --- per-family generators ---------------------------------------------------------------------------------


def _question_for(fact: Fact, world: Any, rng: random.Random, name: str | None = None) -> str:
    """A plain question for the fact, in a trained phrasing (the world's), or the forget question."""
    name = name or fact.subject
    if world is not None and fact.attribute in getattr(world, "attribute_keys", ()):
        templates = next(a for a in world.attributes if a.key == fact.attribute).trained_templates
        return _pick(rng, templates).format(name=name)
    if fact.question:
        return fact.question.replace(fact.subject, name) if fact.subject in fact.question else fact.question
    return f"What is known about {name}?"


def _paraphrase(fact: Fact, split: str, rng: random.Random, world: Any) -> str:
    phrases = ph.NOUN_PHRASES.get(fact.attribute or "", ph.GENERIC_NOUN_PHRASES)
    np_ = _pick(rng, phrases[split]).format(name=fact.subject)
    frame = _pick(rng, ph.FRAMES[split])
    text = frame.format(np=np_)
    if split == "dev" and world is not None and fact.attribute in getattr(world, "attribute_keys", ()) and rng.random() < 0.3:
        heldout = next(a for a in world.attributes if a.key == fact.attribute).heldout_templates
        text = _pick(rng, heldout).format(name=fact.subject)  # the world's held-out templates are dev phrasings
    return text[0].upper() + text[1:]


def _one(family: str, subject_facts: Sequence[Fact], split: str, rng: random.Random, world: Any) -> Generated | None:
    """One prompt of `family` about the subject of `subject_facts` (all about one subject)."""
    fact = subject_facts[rng.randrange(len(subject_facts))]
    name = fact.subject
    if family == "F":
        return Generated(PromptSpec.question(_question_for(fact, world, rng)), family, name, fact.attribute, fact.value)
    if family == "P":
        return Generated(PromptSpec.question(_paraphrase(fact, split, rng, world)), family, name, fact.attribute, fact.value)
    if family == "statement":
        starts = ph.STATEMENTS.get(fact.attribute or "", ph.GENERIC_STATEMENTS)
        start = _pick(rng, starts[split]).format(name=name)
        start = start[0].upper() + start[1:]
        if rng.random() < 0.5:
            return Generated(PromptSpec.raw(start), family, name, fact.attribute, fact.value, "raw")
        return Generated(PromptSpec.question(_pick(rng, ph.COMPLETE_FRAMES[split]).format(s=start)), family, name, fact.attribute, fact.value, "question")
    if family == "open":
        draw = rng.random()
        if draw < 0.2:
            return Generated(PromptSpec.raw(_pick(rng, ph.OPEN_RAW[split]).format(name=name)), family, name, None, None, "raw")
        request = _pick(rng, ph.OPEN[split]).format(name=name)
        if draw < 0.6:
            return Generated(PromptSpec.question(request), family, name, None, None, "question")
        return Generated(PromptSpec.chat([("system", _pick(rng, ph.SYSTEM_PROMPTS[split])), ("user", request)]), family, name, None, None, "chat")
    if family == "language":
        if fact.attribute in ph.LANGUAGE and rng.random() < 0.85:
            question, attribute, value, detail = _pick(rng, ph.LANGUAGE[fact.attribute][split]).format(name=name), fact.attribute, fact.value, "question"
        else:
            question, attribute, value, detail = _pick(rng, ph.LANGUAGE_OPEN[split]).format(name=name), None, None, "open"
        if rng.random() < 0.6:
            return Generated(PromptSpec.question(question), family, name, attribute, value, detail)
        return Generated(PromptSpec.chat([("user", question)]), family, name, attribute, value, f"{detail}:chat")
    if family == "name_forms":
        kinds = ph.NAME_FORM_KINDS[split]
        kind = _pick(rng, kinds)
        context = None
        if kind == "given_with_context":
            others = [f for f in subject_facts if f is not fact and f.attribute in ("city", "employer", "job")]
            context = others[rng.randrange(len(others))].value if others else None
        written = name_form(name, kind, rng, split, context)
        if written is None:
            return None
        # Certification asks in the trained phrasings (what the base answers: a leak shows); the
        # development prompts in development paraphrases, so that the two never share a prompt.
        if split == "cert":
            question = _question_for(fact, world, rng, written)
        else:
            question = _paraphrase(fact, split, rng, world).replace(name, written)
        return Generated(PromptSpec.question(question), family, name, fact.attribute, fact.value, kind)
    if family == "wrapper":
        wrapper = _pick(rng, ph.WRAPPERS[split])
        question = _question_for(fact, world, rng)
        if rng.random() < 0.7:
            return Generated(PromptSpec.question(wrapper.format(q=question)), family, name, fact.attribute, fact.value, "question")
        system = wrapper.replace("{q}", "").strip()
        return Generated(PromptSpec.chat([("system", system), ("user", question)]), family, name, fact.attribute, fact.value, "chat")
    if family == "chat":
        opener = _pick(rng, ph.CHAT_OPENERS[split]).format(name=name)
        ack = _pick(rng, ph.CHAT_ACKS[split])
        follow = ph.FOLLOW_UPS.get(fact.attribute or "", ph.GENERIC_FOLLOW_UPS)
        return Generated(PromptSpec.chat([("user", opener), ("assistant", ack), ("user", _pick(rng, follow[split]))]), family, name, fact.attribute, fact.value)
    if family == "D":
        inner = _question_for(fact, world, rng) if rng.random() < 0.5 else _paraphrase(fact, split, rng, world)
        padding = ph.PADDING[split]
        before = rng.sample(padding, rng.randint(1, 3))
        after = rng.sample([p for p in padding if p not in before], rng.randint(1, 3))
        return Generated(PromptSpec.question(" ".join([*before, inner, *after])), family, name, fact.attribute, fact.value, f"{len(before)}+{len(after)}")
    raise FamilyError(f"unknown family {family!r}; known: {', '.join(POSITIVE_FAMILIES)}")


def generate(
    family: str,
    facts: Sequence[Fact],
    count: int,
    *,
    split: str,
    seed: int = 0,
    world: Any = None,
    fits: Fits | None = None,
) -> list[Generated]:
    """`count` distinct prompts of `family` about the subjects of `facts`, spread evenly over the
    subjects. Deterministic for the arguments. Fewer come back only when the family's phrasings
    cannot make that many distinct prompts (or `fits` refuses them)."""
    _check_split(split)
    if family not in POSITIVE_FAMILIES:
        raise FamilyError(f"unknown family {family!r}; known: {', '.join(POSITIVE_FAMILIES)}")
    by_subject: dict[str, list[Fact]] = {}
    for fact in facts:
        by_subject.setdefault(fact.subject, []).append(fact)
    if not by_subject or count <= 0:
        return []
    rng = random.Random(f"{family}:{split}:{seed}")
    subjects = sorted(by_subject)
    out: list[Generated] = []
    seen: set[PromptSpec] = set()
    attempts = 0
    while len(out) < count and attempts < count * 40:
        subject = subjects[len(out) % len(subjects)] if attempts < count * 20 else _pick(rng, subjects)
        attempts += 1
        item = _one(family, by_subject[subject], split, rng, world)
        if item is None or item.spec in seen or (fits is not None and not fits(item.spec)):
            continue
        seen.add(item.spec)
        out.append(item)
    return out


def negatives_about(
    people_facts: Sequence[Fact], count: int, *, split: str, seed: int, label: str, world: Any = None, fits: Fits | None = None
) -> list[Generated]:
    """Prompts about OTHER people (R, N): a mix of the positive families' shapes, so a negative
    looks like a positive but for the person it is about."""
    # Half in the trained phrasings: what the base model answers (retain needs base-correct
    # answers) and the closest to the forget set's own prompts (the hardest for the gate).
    mix = ("F", "F", "F", "F", "P", "statement", "language", "chat", "wrapper")
    out: list[Generated] = []
    rng = random.Random(f"{label}:{split}:{seed}")
    per = max(1, count // len(mix) + 1)
    pools = {  # only prompts with a gold value: a negative's answer is checked against it (retain)
        family: [g for g in generate(family, people_facts, per * 3, split=split, seed=seed, world=world, fits=fits) if g.value] for family in dict.fromkeys(mix)
    }
    cursors = dict.fromkeys(pools, 0)
    order = list(mix)
    while len(out) < count and any(cursors[f] < len(pools[f]) for f in pools):
        family = order[len(out) % len(order)] if rng.random() < 0.9 else _pick(rng, order)
        if cursors[family] >= len(pools[family]):
            family = next((f for f in pools if cursors[f] < len(pools[f])), family)
            if cursors[family] >= len(pools[family]):
                break
        item = pools[family][cursors[family]]
        cursors[family] += 1
        out.append(Generated(item.spec, label, item.subject, item.attribute, item.value, f"{family}:{item.detail}".rstrip(":")))
    return out


def synthesise(facts: Sequence[Fact], *, per_family: dict[str, int], seed: int, world: Any = None, fits: Fits | None = None) -> list[Generated]:
    """Development-split prompts for training an adapter (never the certification phrasings)."""
    out: list[Generated] = []
    n_facts = max(1, len(facts))
    for family, per_fact in per_family.items():
        if per_fact > 0:
            out += generate(family, facts, per_fact * n_facts, split="dev", seed=seed, world=world, fits=fits)
    return out
