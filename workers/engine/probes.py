"""Probe suites for a certificate (EVAL.md): which prompts show that a request worked.

Positive families (must not reveal the subject's data; families.py generates them from the forget
facts): F, P, statement, open, language, name_forms, wrapper, chat, D, and F<t (the trained
phrasings of every earlier unit's people: regression). Negative families (must keep their answers,
and must not fire the gate): R (other people), N (hard neighbours: same surname, same given name,
same city or same employer, `detail` says which), W (general knowledge). O: holdout people the
model never saw (membership-inference reference).

Certificates use the **certification** phrasings, which no default was ever chosen on; the
development phrasings are for tuning and for the training prompts remediation synthesises
(phrasings.py). `ProbeSuite.meta["split"]` records which.

`build_probes(world, forgotten, ...)` derives a suite from the demo world; `facts_suite(...)` builds
the same families from any forget facts, with negatives sampled from whatever other people's
facts the caller has (an operator's corpus index). Without negatives the certificate cannot show
that other people are unaffected: it is INCONCLUSIVE, never PASS. Probes hold personal data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import families as fam
from . import general_knowledge
from .config_fields import help_field
from .families import Fact, Fits, Generated
from .leaks import revealed
from .prompting import PromptError, PromptSpec, format_qa

PROBES_FORMAT = "forget-service/probes"
PROBES_VERSION = 2  # 2: shapes, families, the subject's values; version 1 files (questions only) still load

POSITIVE_SETS: tuple[str, ...] = (*fam.POSITIVE_FAMILIES, "F<t")
RETAIN_SETS: tuple[str, ...] = ("R", "N", "W")
SETS: tuple[str, ...] = (*POSITIVE_SETS, *RETAIN_SETS, "O")
# The families drawn from a pool, which another seed draws again: F (every trained phrasing) and
# F<t (a fixed sample) are complete as they are.
RESERVE_SETS: tuple[str, ...] = (*(s for s in fam.POSITIVE_FAMILIES if s != "F"), *RETAIN_SETS)
RESERVE_SEED_STEP = 1_000_003  # round r of the reserve draws with seed + r * step
NEIGHBOUR_KINDS: tuple[str, ...] = ("surname", "given_name", "city", "employer")


class ProbeError(ValueError):
    """A probe file or a probe request is invalid; the message is one line."""


@dataclass(frozen=True)
class ProbeConfig:
    """Sizes, split and seed of a probe suite. A family needs about 60 probes for a clean unit to
    prove a 5% leak bound (0 of 59 bounds it at 4.9%), so every positive family gets `per_family`."""

    seed: int = help_field("Seed of every sampling choice (same facts + seed -> same probes).", 0)
    split: str = help_field("Phrasings: 'cert' (certificates, never tuned on) or 'dev' (tuning, benchmarks' dev runs).", "cert")
    per_family: int = help_field("Probes per positive family and request (over its subjects).", 64)
    previous_per_unit: int = help_field("F<t probes per earlier unit, from its people's trained phrasings.", 8)
    retain: int = help_field(
        "R probes: other people, in the positive families' shapes (about half are answered by the base: the retain rule needs some 60).", 200
    )
    neighbours: int = help_field("N probes: hard neighbours of every active unit's people, spread over the kinds.", 240)
    general: int = help_field("W probes: general knowledge (the world's facts, both phrasings).", 120)
    holdout: int = help_field("O questions, over the holdout people.", 24)
    general_knowledge: int = help_field(
        "W probes from general_knowledge.EVALUATION (real-world questions): a pretrained model's own abilities, "
        "which a unit must keep. 0 for a model trained from scratch, which has none (probe_config_for decides).",
        0,
    )
    alternatives: int = help_field("Wrong values per F probe (other people's values) for the truth ratio.", 3)
    reserve_rounds: int = help_field(
        "Further draws (other seeds) of the drawn families held in reserve: the certificate answers them, a round at a "
        "time, only while the base model's own answers leave the pooled leak rule or a retain rule short of the "
        "evidence that could prove its bound (docs/engine.md, 'Enough evidence'). 0: the first draw only.",
        3,
    )

    def __post_init__(self) -> None:
        if self.split not in ("cert", "dev"):
            raise ProbeError(f"ProbeConfig.split must be 'cert' or 'dev', got {self.split!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "split":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProbeError(f"ProbeConfig.{f.name} must be a non-negative integer, got {value!r}")


def probe_config_for(base_dir: str | Path, **values: Any) -> ProbeConfig:
    """The probe configuration for a base model: `values` as given, and, for a pretrained model (any
    but a demo model trained from scratch), the general-knowledge questions in W unless set."""
    from .base_model import trained_from_scratch

    if "general_knowledge" not in values and not trained_from_scratch(base_dir):
        values["general_knowledge"] = len(general_knowledge.EVALUATION)
    return ProbeConfig(**values)


@dataclass(frozen=True)
class Probe:
    """One probe: a prompt in a served shape, the gold value, and (positives) every value of its
    subject, any of which in the answer is a leak."""

    question: str  # the prompt's text (a chat: its last user message), for tables
    answer: str  # the gold value: what the probe asks for ("" for an open request)
    set: str  # the family
    person: str | None = None  # whom it is about (None for general knowledge)
    attribute: str | None = None
    unit: str | None = None  # positives: the unit that forgot this person (None: the unit certified)
    alternatives: tuple[str, ...] = ()  # wrong values of the same attribute (truth ratio)
    shape: str = "question"
    messages: tuple[tuple[str, str], ...] = ()
    values: tuple[str, ...] = ()  # positives: all of the subject's values
    detail: str = ""  # the family's variant (name form, neighbour kind, wrapper shape, ...)

    def __post_init__(self) -> None:
        if self.set not in SETS:
            raise ProbeError(f"unknown probe set {self.set!r}; known: {', '.join(SETS)}")
        if not isinstance(self.question, str) or not self.question.strip():
            raise ProbeError(f"probe question must be a non-empty string, got {self.question!r}")
        if not isinstance(self.answer, str) or (not self.answer.strip() and self.set not in POSITIVE_SETS):
            raise ProbeError(f"probe answer must be a non-empty string, got {self.answer!r}")
        object.__setattr__(self, "alternatives", tuple(self.alternatives))
        object.__setattr__(self, "messages", tuple((r, c) for r, c in self.messages))
        object.__setattr__(self, "values", tuple(dict.fromkeys(v for v in self.values if v)))
        try:
            self.spec  # noqa: B018 - validates the shape
        except PromptError as exc:
            raise ProbeError(str(exc)) from None

    @property
    def spec(self) -> PromptSpec:
        if self.shape == "chat":
            return PromptSpec.chat(self.messages)
        return PromptSpec(self.shape, self.question)

    @property
    def leak_values(self) -> tuple[str, ...]:
        """The values whose appearance in the answer counts as a leak: every value of the subject
        (or the gold value alone when none are known), minus those the prompt itself contains."""
        values = self.values or ((self.answer,) if self.answer else ())
        in_prompt = set(revealed(self.spec.gate_text(), values))
        return tuple(v for v in values if v not in in_prompt)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["alternatives"] = list(self.alternatives)
        data["values"] = list(self.values)
        data["messages"] = [{"role": r, "content": c} for r, c in self.messages]
        if self.shape == "question":
            data.pop("shape")
        return {k: v for k, v in data.items() if v not in (None, [], "")}

    @classmethod
    def from_generated(cls, item: Generated, set_name: str, values: Sequence[str], unit: str | None = None, alternatives: Sequence[str] = ()) -> Probe:
        spec = item.spec
        text = spec.text if spec.shape != "chat" else next(c for r, c in reversed(spec.messages) if r == "user")
        return cls(
            text, item.value or "", set_name, item.subject, item.attribute, unit, tuple(alternatives), spec.shape, spec.messages, tuple(values), item.detail
        )


@dataclass
class ProbeSuite:
    """The probes of one certificate, plus the membership-inference texts.

    members: texts about the forgotten people that the model was trained on (profiles, QA).
    non_members: the same kind of texts about people the model never saw (holdout, set O).
    """

    probes: list[Probe]
    members: list[str] = field(default_factory=list)
    non_members: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # Further draws of the drawn families (RESERVE_SETS), one list per round, none of them in
    # `probes`: answered only while the base model's answers leave a rule short of evidence.
    reserve: list[list[Probe]] = field(default_factory=list)

    def by_set(self, name: str) -> list[Probe]:
        return [p for p in self.probes if p.set == name]

    def sizes(self) -> dict[str, int]:
        return {name: len(self.by_set(name)) for name in SETS}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PROBES_FORMAT,
            "version": PROBES_VERSION,
            "meta": self.meta,
            "probes": [p.to_json() for p in self.probes],
            "membership": {"members": list(self.members), "non_members": list(self.non_members)},
            "reserve": [[p.to_json() for p in draw] for draw in self.reserve],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, data: Any, source: str = "probes") -> ProbeSuite:
        if not isinstance(data, dict):
            raise ProbeError(f"{source}: expected a JSON object with a 'probes' list")
        if data.get("format", PROBES_FORMAT) != PROBES_FORMAT:
            raise ProbeError(f"{source}: format is {data.get('format')!r}, expected {PROBES_FORMAT!r}")
        raw = data.get("probes")
        if not isinstance(raw, list) or not raw:
            raise ProbeError(f"{source}: 'probes' must be a non-empty list")
        probes = _probes_from_json(raw, f"{source}: probes")
        reserve = data.get("reserve") or []
        if not isinstance(reserve, list) or not all(isinstance(draw, list) for draw in reserve):
            raise ProbeError(f"{source}: 'reserve' must be a list of probe lists")
        reserve = [_probes_from_json(draw, f"{source}: reserve[{r}]") for r, draw in enumerate(reserve)]
        if any(p.set not in RESERVE_SETS for draw in reserve for p in draw):
            raise ProbeError(f"{source}: reserve probes must be of the drawn families ({', '.join(RESERVE_SETS)})")
        membership = data.get("membership") or {}
        if not isinstance(membership, dict):
            raise ProbeError(f"{source}: 'membership' must be an object with 'members' and 'non_members'")
        texts = {}
        for key in ("members", "non_members"):
            value = membership.get(key, [])
            if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
                raise ProbeError(f"{source}: membership.{key} must be a list of non-empty strings")
            texts[key] = list(value)
        meta = data.get("meta") or {}
        return cls(probes, texts["members"], texts["non_members"], dict(meta) if isinstance(meta, dict) else {}, reserve)


def _probes_from_json(raw: list, source: str) -> list[Probe]:
    """Probes from their JSON objects; `source` names the list in errors."""
    allowed = {f.name for f in fields(Probe)}
    probes = []
    for index, item in enumerate(raw):
        where = f"{source}[{index}]"
        if not isinstance(item, dict):
            raise ProbeError(f"{where}: expected an object")
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise ProbeError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        missing = [key for key in ("question", "set") if key not in item]
        if missing:
            raise ProbeError(f"{where}: missing {missing[0]!r}")
        for key in ("alternatives", "values"):
            value = item.get(key, [])
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise ProbeError(f"{where}: {key!r} must be a list of strings")
        messages = item.get("messages", [])
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
        ):
            raise ProbeError(f"{where}: 'messages' must be a list of {{role, content}} objects")
        try:
            probes.append(
                Probe(
                    **{
                        **item,
                        "answer": item.get("answer", ""),
                        "alternatives": tuple(item.get("alternatives", [])),
                        "values": tuple(item.get("values", [])),
                        "messages": tuple((m["role"], m["content"]) for m in messages),
                    }
                )
            )
        except (ProbeError, TypeError) as exc:
            raise ProbeError(f"{where}: {exc}") from None
    return probes


def load_probes(path: str | Path) -> ProbeSuite:
    """Read an operator-supplied probe file (the JSON that ProbeSuite.save writes)."""
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"{path}: probe file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path}: not valid JSON ({exc})") from None
    suite = ProbeSuite.from_json(data, str(path))
    suite.meta.setdefault("source", str(path))
    return suite


# ---------------------------------------------------------------------------------------------
# From forget facts (any model)


def facts_suite(
    facts: Sequence[Fact],
    *,
    earlier: Sequence[tuple[str, Sequence[Fact]]] = (),
    others: Sequence[Fact] = (),
    neighbours: Sequence[tuple[str, Fact]] = (),
    general: Sequence[tuple[str, str]] = (),
    config: ProbeConfig | None = None,
    unit_id: str | None = None,
    world: Any = None,
    fits: Fits | None = None,
) -> ProbeSuite:
    """Every family for the certified unit's `facts`, F<t for the `earlier` units' facts, and the
    negatives: `others` (R: other people's facts), `neighbours` ((kind, fact) pairs: N) and
    `general` ((question, answer) pairs about no person: W). `world` lends its trained templates
    to F (the demo model's trained phrasings); `fits` drops prompts the model cannot read."""
    config = config or ProbeConfig()
    if not facts:
        raise ProbeError("no forget facts to probe (the forget set has no question with an answer)")
    values_of: dict[str, list[str]] = {}
    for fact in [*facts, *(f for _, group in earlier for f in group)]:
        values_of.setdefault(fact.subject, []).append(fact.value)
    everyone = [*facts, *(f for _, group in earlier for f in group), *others, *(f for _, f in neighbours)]
    rng = random.Random(f"alternatives:{config.seed}")

    def alternatives(item: Generated) -> tuple[str, ...]:
        pool = sorted({f.value for f in everyone if f.attribute == item.attribute and f.value != item.value})
        return tuple(rng.sample(pool, min(config.alternatives, len(pool)))) if item.attribute and item.value else ()

    probes: list[Probe] = []
    for family in fam.POSITIVE_FAMILIES:
        if family == "F":
            items = _f_items(facts, world)
        else:
            items = fam.generate(family, facts, config.per_family, split=config.split, seed=config.seed, world=world, fits=fits)
        for item in items:
            probes.append(Probe.from_generated(item, family, values_of[item.subject], unit_id, alternatives(item) if family == "F" else ()))
    for unit, group in earlier:
        items = _f_items(group, world)
        for item in random.Random(f"F<t:{unit}:{config.seed}").sample(items, min(config.previous_per_unit, len(items))):
            probes.append(Probe.from_generated(item, "F<t", values_of[item.subject], unit))
    if others:
        for item in fam.negatives_about(others, config.retain, split=config.split, seed=config.seed, label="R", world=world, fits=fits):
            probes.append(Probe.from_generated(item, "R", ()))
    if neighbours:
        by_kind: dict[str, list[Fact]] = {}
        for kind, fact in neighbours:
            by_kind.setdefault(kind, []).append(fact)
        per_kind = max(1, config.neighbours // len(by_kind))
        for kind, group in by_kind.items():
            for item in fam.negatives_about(group, per_kind, split=config.split, seed=config.seed, label=f"N:{kind}", world=world, fits=fits):
                probes.append(Probe.from_generated(Generated(item.spec, "N", item.subject, item.attribute, item.value, f"{kind}:{item.detail}"), "N", ()))
    for question, answer in _sample(random.Random(f"W:{config.seed}"), list(general), config.general):
        probes.append(Probe(question, answer, "W"))
    # Any of a general question's right words counts (values): "New Delhi" and "Delhi" alike.
    for question, words in _sample(random.Random(f"W-general:{config.seed}"), list(general_knowledge.EVALUATION), config.general_knowledge):
        probes.append(Probe(question, words[0], "W", values=words, detail="general knowledge"))
    meta = {
        "source": "forget facts",
        "split": config.split,
        "seed": config.seed,
        "config": asdict(config),
        "forgotten": sorted({f.subject for f in facts}),
        "earlier_units": [{"unit_id": unit, "people": sorted({f.subject for f in group})} for unit, group in earlier],
        "neighbours": sorted({f.subject for _, f in neighbours}),
        "negatives": bool(others or neighbours),
    }
    suite = ProbeSuite(probes, meta=meta)
    seen = {_identity(p) for p in probes}
    for r in range(1, config.reserve_rounds + 1):
        again = facts_suite(
            facts,
            earlier=earlier,
            others=others,
            neighbours=neighbours,
            general=general,
            unit_id=unit_id,
            world=world,
            fits=fits,
            config=replace(config, seed=config.seed + r * RESERVE_SEED_STEP, reserve_rounds=0),
        )
        draw = [p for p in again.probes if p.set in RESERVE_SETS and _identity(p) not in seen]
        seen.update(_identity(p) for p in draw)
        suite.reserve.append(draw)
    meta["reserve"] = [len(draw) for draw in suite.reserve]
    return suite


def _identity(probe: Probe) -> tuple:
    """What makes two probes the same question: a reserve draw skips those already drawn."""
    return probe.set, probe.shape, probe.question, probe.messages, probe.person, probe.attribute


def _f_items(facts: Sequence[Fact], world: Any) -> list[Generated]:
    """F: every trained phrasing of each fact (the world's templates), or the forget question."""
    out = []
    for fact in facts:
        attribute = next((a for a in getattr(world, "attributes", ()) if a.key == fact.attribute), None)
        questions = [t.format(name=fact.subject) for t in attribute.trained_templates] if attribute else [fact.question or ""]
        out += [Generated(PromptSpec.question(q), "F", fact.subject, fact.attribute, fact.value) for q in questions if q]
    return out


# ---------------------------------------------------------------------------------------------
# From the demo world


def build_probes(
    world: Any,
    forgotten: Sequence[Any],
    *,
    earlier: Sequence[tuple[str, Sequence[Any]]] = (),
    config: ProbeConfig | None = None,
    unit_id: str | None = None,
    fits: Fits | None = None,
) -> ProbeSuite:
    """The suite for the people `forgotten` by the unit being certified (names or Persons).

    earlier: (unit id, people) of every earlier active unit, for F<t. N: people who share a surname,
    a given name, a city or an employer with any active unit's people; R: the others. Raises
    ProbeError for a name not in the world or a holdout person (nothing to forget)."""
    config = config or ProbeConfig()
    targets = _people(world, forgotten)
    earlier_people = [(uid, _people(world, people)) for uid, people in earlier]
    if not targets:
        raise ProbeError("no forgotten people to probe")
    active = targets + [p for _, people in earlier_people for p in people]
    excluded = {p.name for p in active}
    neighbours: list[tuple[str, Fact]] = []
    neighbour_names: set[str] = set()
    for other in world.people:
        if other.name in excluded:
            continue
        kinds = [kind for kind in NEIGHBOUR_KINDS if any(_shares(world, person, other, kind) for person in active)]
        if kinds:
            neighbour_names.add(other.name)
            neighbours += [(kinds[0], f) for f in fam.facts_of_person(world, other)]
    others = [f for p in world.people if p.name not in excluded and p.name not in neighbour_names for f in fam.facts_of_person(world, p)]
    general = [(qa.question, qa.answer) for qa in world.fact_questions(split="all")]
    suite = facts_suite(
        [f for p in targets for f in fam.facts_of_person(world, p)],
        earlier=[(uid, [f for p in people for f in fam.facts_of_person(world, p)]) for uid, people in earlier_people],
        others=others,
        neighbours=neighbours,
        general=general,
        config=config,
        unit_id=unit_id,
        world=world,
        fits=fits,
    )
    rng = random.Random(f"O:{config.seed}")
    o_pool = [qa for other in world.holdout_people for qa in world.questions(other, "trained")]
    suite.probes += [Probe(qa.question, qa.answer, "O", qa.subject, qa.attribute) for qa in _sample(rng, o_pool, config.holdout)]

    def trained_texts(people: Sequence[Any]) -> list[str]:
        """Profiles, then trained QA: the texts membership inference asks about."""
        return [world.profile(p) for p in people] + [format_qa(qa.question, qa.answer) for p in people for qa in world.questions(p, "trained")]

    suite.members, suite.non_members = trained_texts(targets), trained_texts(list(world.holdout_people))
    suite.meta.update({"source": "demo world", "world_digest": world.digest()})
    return suite


def _shares(world: Any, a: Any, b: Any, kind: str) -> bool:
    if kind == "surname":
        return a.surname == b.surname
    if kind == "given_name":
        return a.first_name == b.first_name
    return kind in a.attributes and a.attributes.get(kind) == b.attributes.get(kind)


def _people(world: Any, people: Iterable[Any]) -> list[Any]:
    result = []
    for person in people:
        name = person if isinstance(person, str) else person.name
        try:
            found = world.person(name)
        except KeyError:
            raise ProbeError(f"no person named {name!r} in the demo world") from None
        if found.holdout:
            raise ProbeError(f"{name!r} is a holdout person: the model never saw them, there is nothing to forget")
        if found not in result:
            result.append(found)
    return result


def _sample(rng: random.Random, pool: Sequence[Any], k: int | None) -> list[Any]:
    """k items of pool without replacement, in pool order (all of them when k is None or larger)."""
    if k is None or k >= len(pool):
        return list(pool)
    chosen = sorted(rng.sample(range(len(pool)), k))
    return [pool[i] for i in chosen]
