"""Probe sets for a certificate (EVAL.md): which questions show that a request worked.

| set | what | role |
|---|---|---|
| F   | the forgotten people's questions in the trained phrasings | positive |
| P   | held-out paraphrases of F (templates never used in training) | positive |
| D   | F or P padded with unrelated text before and after (dilution) | positive |
| F<t | a sample of F for the people of every earlier unit | positive, regression |
| R   | other people (sampled) | negative, retain |
| N   | hard neighbours: people sharing a surname, city or employer with a forgotten one (this or an earlier unit) | negative, retain |
| W   | general facts that concern no person | negative, retain |
| O   | holdout people the model never saw | reference (membership inference) |

`build_probes(world, forgotten, earlier=..., config=ProbeConfig())` derives them from a DemoWorld;
sampling is deterministic for `config.seed`. Membership-inference texts come with them: the
forgotten people's profile and trained QA texts (members) against the holdout people's (non-members).
For a model that is not the demo model, the operator supplies the same structure as JSON
(`load_probes`; see docs/engine.md). Probes hold personal data (questions and gold values).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .prompting import format_qa

PROBES_FORMAT = "forget-service/probes"
PROBES_VERSION = 1

SETS: tuple[str, ...] = ("F", "P", "D", "F<t", "R", "N", "W", "O")
POSITIVE_SETS: tuple[str, ...] = ("F", "P", "D", "F<t")  # must not leak
RETAIN_SETS: tuple[str, ...] = ("R", "N", "W")  # must keep their answers

# Unrelated text for the dilution set D: no person, place or organisation of the demo world. One
# sentence on either side keeps most padded prompts under the detector's 24-word window, the
# setting where mean pooling dilutes the question (longer prompts are split into windows), and
# short enough for the tiny demo model's 128 positions with room for a whole refusal.
PADDING: tuple[str, ...] = (
    "The kettle clicked off and the kitchen smelled of toast.",
    "It rained all morning, so the picnic moved indoors.",
    "My bicycle needs a new chain before the weekend.",
    "The library closes early on public holidays.",
    "We planted tomatoes and basil along the south fence.",
    "The train was quiet and the coffee was lukewarm.",
    "Please remember to water the plants on Sunday.",
    "The old clock in the hallway runs five minutes fast.",
)


class ProbeError(ValueError):
    """A probe file or a probe request is invalid; the message is one line."""


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class ProbeConfig:
    """Sizes and seed of the demo probe sets. Defaults keep a CPU certificate within minutes."""

    seed: int = _help("Seed of every sampling choice (same world + seed -> same probes).", 0)
    forget_per_person: int | None = _help("F questions per forgotten person; None = every trained phrasing.", None)
    paraphrase_per_person: int | None = _help("P questions per forgotten person; None = every held-out paraphrase.", None)
    dilution_per_person: int = _help("D questions per forgotten person, drawn from its F and P.", 8)
    previous_per_unit: int = _help("F<t questions per earlier unit, drawn from its people's F.", 8)
    retain: int = _help("R questions, over people neither forgotten nor neighbours.", 48)
    neighbours: int = _help("N questions, over the forgotten people's hard neighbours.", 32)
    general: int = _help("W questions about general facts.", 24)
    holdout: int = _help("O questions, over the holdout people.", 24)
    alternatives: int = _help("Wrong values per probe (other people's values) for the truth ratio.", 3)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("forget_per_person", "paraphrase_per_person"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or (value < 0):
                raise ProbeError(f"ProbeConfig.{f.name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class Probe:
    """One probe question and the gold value whose appearance in an answer counts as a leak."""

    question: str
    answer: str  # the gold value
    set: str
    person: str | None = None  # whom it is about (None for general facts)
    attribute: str | None = None
    unit: str | None = None  # positives: the unit that forgot this person (None: the unit certified)
    alternatives: tuple[str, ...] = ()  # wrong values of the same attribute (truth ratio)

    def __post_init__(self) -> None:
        if self.set not in SETS:
            raise ProbeError(f"unknown probe set {self.set!r}; known: {', '.join(SETS)}")
        for name in ("question", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ProbeError(f"probe {name} must be a non-empty string, got {value!r}")
        object.__setattr__(self, "alternatives", tuple(self.alternatives))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["alternatives"] = list(self.alternatives)
        return {k: v for k, v in data.items() if v not in (None, [])}


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
        allowed = {f.name for f in fields(Probe)}
        probes = []
        for index, item in enumerate(raw):
            where = f"{source}: probes[{index}]"
            if not isinstance(item, dict):
                raise ProbeError(f"{where}: expected an object")
            unknown = sorted(set(item) - allowed)
            if unknown:
                raise ProbeError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
            missing = [key for key in ("question", "answer", "set") if key not in item]
            if missing:
                raise ProbeError(f"{where}: missing {missing[0]!r}")
            alternatives = item.get("alternatives", [])
            if not isinstance(alternatives, list) or not all(isinstance(a, str) for a in alternatives):
                raise ProbeError(f"{where}: 'alternatives' must be a list of strings")
            try:
                probes.append(Probe(**{**item, "alternatives": tuple(alternatives)}))
            except ProbeError as exc:
                raise ProbeError(f"{where}: {exc}") from None
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
        return cls(probes, texts["members"], texts["non_members"], dict(meta) if isinstance(meta, dict) else {})


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
# From the demo world


def build_probes(
    world: Any,
    forgotten: Sequence[Any],
    *,
    earlier: Sequence[tuple[str, Sequence[Any]]] = (),
    config: ProbeConfig | None = None,
    unit_id: str | None = None,
) -> ProbeSuite:
    """Probe sets for the people `forgotten` by the unit being certified (names or Persons).

    earlier: (unit id, people) of every earlier active unit, for F<t. unit_id: the certified unit's
    id, recorded on its F, P and D probes. Raises ProbeError for a name not in the world or a
    holdout person (the model never knew them: there is nothing to forget).
    """
    config = config or ProbeConfig()
    rng = random.Random(config.seed)
    targets = _people(world, forgotten)
    earlier_people = [(uid, _people(world, people)) for uid, people in earlier]
    if not targets:
        raise ProbeError("no forgotten people to probe")
    excluded = {p.name for p in targets} | {p.name for _, people in earlier_people for p in people}
    probes: list[Probe] = []

    def alternatives(qa: Any, pool: Sequence[Any]) -> tuple[str, ...]:
        values = sorted({p.attributes[qa.attribute] for p in pool if p.attributes.get(qa.attribute) not in (None, qa.answer)})
        return tuple(rng.sample(values, min(config.alternatives, len(values))))

    everyone = list(world.people) + list(world.holdout_people)

    def probe(qa: Any, set_name: str, unit: str | None, question: str | None = None) -> Probe:
        return Probe(question or qa.question, qa.answer, set_name, qa.subject, qa.attribute, unit, alternatives(qa, everyone))

    for person in targets:
        trained = world.questions(person, "trained")
        heldout = world.questions(person, "heldout")
        f = _sample(rng, trained, config.forget_per_person)
        p = _sample(rng, heldout, config.paraphrase_per_person)
        probes += [probe(qa, "F", unit_id) for qa in f]
        probes += [probe(qa, "P", unit_id) for qa in p]
        for qa in _sample(rng, trained + heldout, config.dilution_per_person):
            before, after = rng.sample(PADDING, 2)
            probes.append(probe(qa, "D", unit_id, f"{before} {qa.question} {after}"))
    for uid, people in earlier_people:
        pool = [(qa, uid) for person in people for qa in world.questions(person, "trained")]
        probes += [probe(qa, "F<t", unit) for qa, unit in _sample(rng, pool, config.previous_per_unit)]

    # Hard neighbours of every active unit's people: the union gate must let all of them through.
    neighbours: dict[str, Any] = {}
    for person in targets + [p for _, people in earlier_people for p in people]:
        for other in world.neighbours(person):
            if other.name not in excluded:
                neighbours.setdefault(other.name, other)
    n_pool = [qa for other in neighbours.values() for qa in world.questions(other, "trained")]
    probes += [probe(qa, "N", None) for qa in _sample(rng, n_pool, config.neighbours)]

    others = [p for p in world.people if p.name not in excluded and p.name not in neighbours]
    r_pool = [qa for other in others for qa in world.questions(other, "trained")]
    probes += [probe(qa, "R", None) for qa in _sample(rng, r_pool, config.retain)]

    w_pool = world.fact_questions(split="trained")
    probes += [Probe(qa.question, qa.answer, "W", None, qa.attribute) for qa in _sample(rng, w_pool, config.general)]

    o_pool = [qa for other in world.holdout_people for qa in world.questions(other, "trained")]
    probes += [probe(qa, "O", None) for qa in _sample(rng, o_pool, config.holdout)]

    def trained_texts(people: Sequence[Any]) -> list[str]:
        """Profiles, then trained QA: the texts membership inference asks about."""
        return [world.profile(p) for p in people] + [format_qa(qa.question, qa.answer) for p in people for qa in world.questions(p, "trained")]

    members, non_members = trained_texts(targets), trained_texts(list(world.holdout_people))
    meta = {
        "source": "demo world",
        "world_digest": world.digest(),
        "seed": config.seed,
        "config": asdict(config),
        "forgotten": [p.name for p in targets],
        "earlier_units": [{"unit_id": uid, "people": [p.name for p in people]} for uid, people in earlier_people],
        "neighbours": sorted(neighbours),
    }
    return ProbeSuite(probes, members, non_members, meta)


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
