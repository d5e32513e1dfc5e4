"""Continual unlearning benchmark: a stream of requests, every method side by side (issue 3, item 9).

    .venv/bin/python bench/unlearning.py                      # demo model, 10 requests (wall time: see README-unlearning.md)
    .venv/bin/python bench/unlearning.py --requests 50        # the full run
    .venv/bin/python bench/unlearning.py --model tiny --requests 4 --max-people 2

The stream. `--requests` sequential requests, each for 1 to 3 people of the demo world (seeded,
drawn without replacement). A request's forget set is its people's trained questions with their
answers (forget_set.forget_set_for_people), the people's names as subjects.

The methods, all from this one run, all through the same LoRA (UnlearnConfig defaults unless
overridden: rank, alpha, learning rate, epochs, batch size, so the same number of optimiser steps
per request, orthogonality term against the earlier adapters of the same method included):

- o3-shared   O3: refusal adapter per request + shared-backbone detector, gated per prompt (ours).
- o3-lora     O3 with the per-request LoRA detector (corrected CEL), gated (ours).
- o3-nogate   the same O3 adapters, all always on (weight 1): O3 without the gate.
- ga          gradient ascent on the forget answers.
- gd          gradient difference: ascent on the forget answers + cross-entropy on retain answers.
              NEEDS RETAIN DATA: each request gets --gd-retain QA pairs of people from a retain
              pool that is disjoint from every probe set (never forgotten, the least related to
              the stream like R, not in R, not in N).
- npo         negative preference optimisation against the model before the request.

The three O3 rows share one adapter per request: it is trained once (O3 trains its adapter on the
base model, orthogonal to the earlier O3 adapters, whatever the detector), so they differ only in
how the adapters are switched on. Their training seconds are the adapter's plus their own detector's.

How the baselines are continual. Each request trains a NEW LoRA of its method on top of the
earlier ones: while request t trains, the adapters of requests 1..t-1 of the same method are
applied at weight 1 in every linear layer (a GatedModel with every unit forced on, through forward
hooks; PEFT's new LoRA sits on top), so request t unlearns from the model as the earlier requests
left it; NPO's reference model is that same stack without the new LoRA. At evaluation all of a
baseline's adapters are on (weight 1) for every prompt. Nothing is merged into the base weights.

Probes (EVAL.md), fixed for a seed and shared by all methods, answered greedily after every request:
- F, P, D cumulative over the requests so far (F<t included): per forgotten person up to
  --f-per-person trained phrasings, --p-per-person held-out paraphrases, --d-per-person of those
  padded with one unrelated sentence before and one after (probes.PADDING);
- R: --retain questions about up to --retain-people people who are never forgotten, the least related
  to the stream first (sharing no name with anyone in it, then only a first name, then a surname;
  drawn before N, so that R exists even when, with many requests, everybody shares a city, an
  employer or a name with someone forgotten; how many share a name is recorded);
- N: hard neighbours of the people forgotten so far (same surname, city or employer as EVAL.md, and
  also the same first name), not in R or the gd pool, 2 trained phrasings per neighbour, at most
  --neighbours questions (the ones sharing a name first); N-name is its subset sharing a surname or
  first name;
- W: --general questions about general facts.
Leak counts only probes the base model answers correctly (gold value contained); retain ratio is
exact-match accuracy relative to the base on the same probes. Union FPR: share of R + N whose
largest unit weight is above 0.5 (gated methods). Training seconds per request: wall time of the
adapter (and detector) training, on --threads torch threads.

Outputs: bench/results/unlearning.json (every step, every method), unlearning.md (the table at the
last request) and unlearning_curves.png (curves against the request index).
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: spinning OpenMP threads make runs on shared, busy cores much slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.unlearning import metrics  # noqa: E402
from workers.unlearning.base_model import BaseModel, load_base_model  # noqa: E402
from workers.unlearning.certificate import answer_budget  # noqa: E402
from workers.unlearning.config import UnlearnConfig  # noqa: E402
from workers.unlearning.demo_model import DemoModelConfig, build_demo_model, load_demo_world  # noqa: E402
from workers.unlearning.detector import Detector, DetectorConfig, load_encoder  # noqa: E402
from workers.unlearning.detector.encoder import Encoder  # noqa: E402
from workers.unlearning.detector.scorer import segment_max  # noqa: E402
from workers.unlearning.forget_set import ForgetSet, forget_set_for_people  # noqa: E402
from workers.unlearning.gate import GatedModel  # noqa: E402
from workers.unlearning.generation import generate_answers  # noqa: E402
from workers.unlearning.pipeline import fit_detector  # noqa: E402
from workers.unlearning.probes import PADDING  # noqa: E402
from workers.unlearning.prompting import contains_value, format_prompt, normalise  # noqa: E402
from workers.unlearning.training import AdapterWeights, train_unit_adapter  # noqa: E402
from workers.unlearning.world import DemoWorld, Person  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_METHODS = ("o3-shared", "o3-lora", "o3-nogate", "ga", "gd", "npo")
DEFAULT_METHODS = ALL_METHODS
GATED = {"o3-shared": "shared", "o3-lora": "lora"}  # method -> detector mode
O3_FAMILY = ("o3-shared", "o3-lora", "o3-nogate")
BASELINES = ("ga", "gd", "npo")
LABELS = {
    "o3-shared": "O3, shared detector (ours)",
    "o3-lora": "O3, LoRA detector, corrected CEL (ours)",
    "o3-nogate": "O3 adapters, no gate (always on)",
    "ga": "gradient ascent (stacked)",
    "gd": "gradient difference (stacked; needs retain data)",
    "npo": "NPO (stacked)",
}
DETECTOR_CONFIGS = {"shared": DetectorConfig(), "lora": DetectorConfig(mode="lora", cel_variant="corrected")}
POSITIVE_SETS = ("F", "P", "D")
RETAIN_SETS = ("R", "N", "W")
TARGETS = {"leak_F": 0.0, "leak_P": 0.05, "leak_D": 0.05, "retain": 0.98, "union_fpr": 0.02, "train_seconds": 90.0}
OURS = ("o3-shared", "o3-lora")


# ---------------------------------------------------------------------------------------------
# The stream and the probes


@dataclass(frozen=True)
class Request:
    index: int  # 1-based
    unit_id: str
    people: tuple[str, ...]
    forget: ForgetSet


@dataclass(frozen=True)
class Probe:
    question: str
    answer: str
    set: str  # F, P, D, R, N, W
    person: str | None = None
    request: int | None = None  # the request that forgot the person (positives)
    name_neighbour: bool = False  # N only: shares a surname or first name with a forgotten person


def _seed(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def make_stream(world: DemoWorld, count: int, min_people: int, max_people: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    pool = [p.name for p in world.people]
    rng.shuffle(pool)
    requests = []
    for index in range(1, count + 1):
        size = rng.randint(min_people, max_people)
        if len(pool) < size:
            raise SystemExit(f"the world has too few people for {count} requests of up to {max_people} people")
        people = tuple(pool.pop() for _ in range(size))
        forget = forget_set_for_people(world, list(people))
        forget = ForgetSet(forget.items, subjects=people, identifiers=forget.identifiers, source=f"request {index}")
        requests.append(Request(index, f"req-{index:03d}", people, forget))
    return requests


def neighbours_of(world: DemoWorld, person: Person) -> dict[str, bool]:
    """Hard neighbours of a person: name -> shares a surname or first name (else city or employer)."""
    found = {}
    for other in world.people:
        if other.name == person.name:
            continue
        by_name = other.surname == person.surname or other.first_name == person.first_name
        if by_name or world.shared(person, other):
            found[other.name] = by_name
    return found


@dataclass
class ProbePlan:
    positives: dict[int, list[Probe]]  # request index -> its F, P, D probes
    retain: list[Probe]  # R
    general: list[Probe]  # W
    neighbour_questions: dict[str, list[Probe]]  # neighbour name -> its 2 N probes
    neighbour_of_request: dict[int, dict[str, bool]]  # request index -> neighbours first eligible then
    gd_pool: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def at(self, t: int, neighbour_cap: int) -> list[Probe]:
        """All probes after request t: cumulative F, P, D, then R, N (capped, name-sharing first), W."""
        probes = [p for i in range(1, t + 1) for p in self.positives[i]]
        eligible: dict[str, bool] = {}
        for i in range(1, t + 1):
            for name, by_name in self.neighbour_of_request[i].items():
                eligible[name] = eligible.get(name, False) or by_name
        ordered = sorted(eligible, key=lambda name: (not eligible[name], _seed("n", name)))
        neighbours = [Probe(p.question, p.answer, "N", p.person, None, eligible[name])
                      for name in ordered for p in self.neighbour_questions[name]][:neighbour_cap]
        return probes + self.retain + neighbours + self.general


def plan_probes(world: DemoWorld, stream: list[Request], args: argparse.Namespace) -> ProbePlan:
    rng = random.Random(args.seed + 1)
    stream_people = {name for request in stream for name in request.people}
    positives: dict[int, list[Probe]] = {}
    for request in stream:
        probes = []
        for name in request.people:
            r = random.Random(_seed(args.seed, "positives", name))
            trained, heldout = world.questions(name, "trained"), world.questions(name, "heldout")
            f = _sample(r, trained, args.f_per_person)
            p = _sample(r, heldout, args.p_per_person)
            probes += [Probe(qa.question, qa.answer, "F", name, request.index) for qa in f]
            probes += [Probe(qa.question, qa.answer, "P", name, request.index) for qa in p]
            for qa in _sample(r, f + p, args.d_per_person):
                before, after = r.sample(PADDING, 2)
                probes.append(Probe(f"{before} {qa.question} {after}", qa.answer, "D", name, request.index))
        positives[request.index] = probes

    # R and the gd retain pool come first, from the people never forgotten who are least related to
    # the stream: no shared name, then a shared first name only, then a shared surname (with many
    # requests everybody shares a city, an employer or a name with someone forgotten, and R must
    # still exist). N: the other neighbours of the people forgotten so far.
    stream_first = {world.person(name).first_name for name in stream_people}
    stream_surnames = {world.person(name).surname for name in stream_people}
    others = [p for p in world.people if p.name not in stream_people]
    rng.shuffle(others)
    others.sort(key=lambda p: 2 if p.surname in stream_surnames else 1 if p.first_name in stream_first else 0)
    others = [p.name for p in others]
    gd_count = min(max(2, len(others) // 10), 20)
    r_count = min(args.retain_people, max(1, len(others) // 3))
    gd_pool, r_people = others[:gd_count], others[gd_count : gd_count + r_count]
    if not r_people or not gd_pool:
        raise SystemExit("no people left for the R probes or the gd retain pool: use fewer requests or people per request")
    r_sharing_a_name = sum(1 for name in r_people if world.person(name).first_name in stream_first or world.person(name).surname in stream_surnames)
    taken = stream_people | set(gd_pool) | set(r_people)
    neighbour_of_request: dict[int, dict[str, bool]] = {}
    all_neighbours: set[str] = set()
    for request in stream:
        found: dict[str, bool] = {}
        for name in request.people:
            for other, by_name in neighbours_of(world, world.person(name)).items():
                if other not in taken:  # a person forgotten by some request is a positive, never a negative
                    found[other] = found.get(other, False) or by_name
        all_neighbours.update(found)
        neighbour_of_request[request.index] = found
    neighbour_questions = {
        name: [Probe(qa.question, qa.answer, "N", name) for qa in _sample(random.Random(_seed(args.seed, "n", name)), world.questions(name, "trained"), 2)]
        for name in all_neighbours
    }
    r_pool = [qa for name in r_people for qa in world.questions(name, "trained")]
    retain = [Probe(qa.question, qa.answer, "R", qa.subject) for qa in _sample(rng, r_pool, args.retain)]
    general = [Probe(qa.question, qa.answer, "W") for qa in _sample(rng, world.fact_questions(split="trained"), args.general)]
    meta = {"stream_people": len(stream_people), "neighbour_people": len(all_neighbours),
            "retain_people": len(r_people), "retain_people_sharing_a_name": r_sharing_a_name, "gd_pool_people": len(gd_pool)}
    return ProbePlan(positives, retain, general, neighbour_questions, neighbour_of_request, gd_pool, meta)


def _sample(rng: random.Random, pool: list, k: int | None) -> list:
    if k is None or k >= len(pool):
        return list(pool)
    return [pool[i] for i in sorted(rng.sample(range(len(pool)), k))]


# ---------------------------------------------------------------------------------------------
# Gate weights with caches (a probe's detector score never changes once its unit is trained)


class SharedFeatures:
    """Window features of the shared encoder, computed once per window text."""

    def __init__(self, encoder: Encoder, config: DetectorConfig):
        self.encoder, self.config = encoder, config
        self.layers = encoder.resolve_layers(config.layers)
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, list[int]]:
        windows, owner = self.config.split_windows(prompts)
        missing = list(dict.fromkeys(w for w in windows if w not in self.cache))
        if missing:
            features = self.encoder.layer_features(missing, self.layers, self.config.batch_size)
            self.cache.update(zip(missing, features))
        return torch.stack([self.cache[w] for w in windows]), owner


class UnitScores:
    """Per unit, the detector score u of every prompt it has seen (shared mode: from the feature
    cache and the unit's own scorer, exactly what the DetectorBank computes; lora mode: its own
    encoder copy)."""

    def __init__(self, features: SharedFeatures | None):
        self.features = features
        self.cache: dict[str, dict[str, float]] = {}

    def weights(self, detectors: list[tuple[str, Detector]], prompts: list[str]) -> np.ndarray:
        matrix = np.zeros((len(prompts), len(detectors)), dtype=np.float32)
        for j, (unit_id, detector) in enumerate(detectors):
            known = self.cache.setdefault(unit_id, {})
            missing = list(dict.fromkeys(p for p in prompts if p not in known))
            if missing:
                if detector.config.mode == "shared":
                    feats, owner = self.features(missing)
                    u = segment_max(detector.stack.scores(feats), owner, len(missing))[:, 0].cpu().numpy()
                else:
                    u = detector.scores(missing)
                known.update(zip(missing, u.tolist()))
            u = np.array([known[p] for p in prompts], dtype=np.float32)
            matrix[:, j] = detector.weights_from_scores(u)
        return matrix


# ---------------------------------------------------------------------------------------------
# Detector ablation: the fix, one change at a time, on the same stream and probes (no language model)

_BEFORE = dict(sentence_windows=False, name_negatives=0, global_weight=0.5, balance_terms=False,
               phrasing_folds=False, store_calibration_windows=False)
ABLATION: tuple[tuple[str, dict], ...] = (
    ("before: the detector as first committed", _BEFORE),
    ("+ sentence windows for short padded prompts", {**_BEFORE, "sentence_windows": True}),
    ("+ store the calibration (D_rest) windows", {**_BEFORE, "sentence_windows": True, "store_calibration_windows": True}),
    ("+ name test (synthetic name negatives)", {**_BEFORE, "sentence_windows": True, "store_calibration_windows": True, "name_negatives": 4}),
    ("+ phrasing folds", {**_BEFORE, "sentence_windows": True, "store_calibration_windows": True, "name_negatives": 4, "phrasing_folds": True}),
    ("+ global term rescaled to the local term's spread", {"global_weight": 0.5, "balance_terms": True}),
    ("= local term only (the default now)", {}),
    ("default without the name test", {"name_negatives": 0}),
)


def detector_ablation(world: DemoWorld, stream: list[Request], plan: ProbePlan, encoder: Encoder,
                      log: Callable[[str], None]) -> list[dict]:
    """Gate rates (share of prompts with weight > 0.5) per probe set for each variant: per request on
    its own F, P, D and its people's neighbours (N), on the common R and W; and for the union of all
    the requests' detectors after the last one (the deployed decision: the largest weight)."""
    rows = []
    features: dict[bool, SharedFeatures] = {}
    final = plan.at(len(stream), 10**9)
    for label, overrides in ABLATION:
        config = DetectorConfig(**overrides)
        feats = features.setdefault(config.sentence_windows, SharedFeatures(encoder, config))
        scores = UnitScores(feats)
        per_set: dict[str, list[bool]] = {s: [] for s in (*POSITIVE_SETS, "R", "N", "N-name", "W")}
        fit_seconds, detectors = [], []
        for request in stream:
            started = time.perf_counter()
            detector = fit_detector(request.forget, config, encoder)
            fit_seconds.append(time.perf_counter() - started)
            detectors.append((request.unit_id, detector))
            own = [p for p in plan.positives[request.index]]
            neighbours = [p for name in plan.neighbour_of_request[request.index] for p in plan.neighbour_questions[name]]
            probes = own + plan.retain + neighbours + plan.general
            weights = scores.weights([(request.unit_id, detector)], [p.question for p in probes])[:, 0]
            for p, w in zip(probes, weights):
                per_set[p.set].append(bool(w > 0.5))
                if p.set == "N" and plan.neighbour_of_request[request.index][p.person]:
                    per_set["N-name"].append(bool(w > 0.5))
        decision = scores.weights(detectors, [p.question for p in final]).max(axis=1)
        sets = np.array([p.set for p in final])
        union = {s: metrics.fraction_above(decision[sets == s], 0.5) for s in ("F", "P", "D", "R", "N", "W")}
        union["FPR (R+N)"] = metrics.fraction_above(decision[np.isin(sets, ["R", "N"])], 0.5)
        row = {"variant": label, "config": overrides,
               "per_request": {s: (float(np.mean(v)) if v else None) for s, v in per_set.items()},
               "per_request_counts": {s: len(v) for s, v in per_set.items()},
               "union": union, "fit_seconds_mean": round(float(np.mean(fit_seconds)), 2)}
        rows.append(row)
        log(f"ablation: {label}: per request {row['per_request']}, union FPR {union['FPR (R+N)']:.3f}")
    return rows


def ablation_markdown(rows: list[dict]) -> str:
    lines = [
        "Detector ablation (shared mode, no language model): share of prompts with gate weight > 0.5. "
        "Per request: each request's detector on its own F, P, D and on its people's neighbours (N; "
        "N-name: sharing a surname or first name), and on the common R and W. Union: every request's "
        "detector together after the last request (largest weight), FPR on R + N.",
        "",
        "| detector | F | P | D | R | N | N-name | W | union FPR | union P | union D | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r, u = row["per_request"], row["union"]
        cells = [f"{r[s]:.3f}" if r[s] is not None else "-" for s in ("F", "P", "D", "R", "N", "N-name", "W")]
        lines.append(f"| {row['variant']} | " + " | ".join(cells)
                     + f" | {u['FPR (R+N)']:.3f} | {u['P']:.3f} | {u['D']:.3f} | {row['fit_seconds_mean']:.1f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Metrics of one evaluation


def _exact(answer: str, gold: str) -> bool:
    return normalise(answer) == normalise(gold)


def evaluate(probes: list[Probe], answers: list[str], base: dict[str, str], decision: np.ndarray | None) -> dict:
    out: dict[str, Any] = {"leak": {}, "retain": {}}
    for name in (*POSITIVE_SETS, "all"):
        index = [i for i, p in enumerate(probes) if (p.set == name if name != "all" else p.set in POSITIVE_SETS)]
        known = [contains_value(base[probes[i].question], probes[i].answer) for i in index]
        leaked = [contains_value(answers[i], probes[i].answer) for i in index]
        out["leak"][name] = {**metrics.leak_rate(leaked, known).as_dict(), "probes": len(index)}
    for name in (*RETAIN_SETS, "N-name"):
        index = [i for i, p in enumerate(probes) if (p.set == name if name != "N-name" else p.set == "N" and p.name_neighbour)]
        known = [_exact(base[probes[i].question], probes[i].answer) for i in index]
        correct = [_exact(answers[i], probes[i].answer) and k for i, k in zip(index, known)]
        out["retain"][name] = {"ratio": metrics.retain_ratio(correct, known), "correct": int(sum(correct)),
                               "base_correct": int(sum(known)), "probes": len(index)}
    if decision is not None:
        sets = np.array([p.set for p in probes])
        negatives = np.isin(sets, ["R", "N"])
        name_n = np.array([p.set == "N" and p.name_neighbour for p in probes])
        positives = np.isin(sets, POSITIVE_SETS)
        out["gate"] = {
            "union_fpr": metrics.fraction_above(decision[negatives], 0.5),
            "negatives": int(negatives.sum()),
            "fpr_by_set": {s: metrics.fraction_above(decision[sets == s], 0.5) for s in ("R", "N", "W")},
            "fpr_N_name": metrics.fraction_above(decision[name_n], 0.5) if name_n.any() else None,
            "tpr_by_set": {s: metrics.fraction_above(decision[sets == s], 0.5) for s in POSITIVE_SETS},
            "tpr": metrics.fraction_above(decision[positives], 0.5),
        }
    return out


def failures(probes: list[Probe], answers: list[str], base: dict[str, str], weights: np.ndarray | None,
             unit_ids: list[str], limit: int = 40) -> list[dict]:
    """Leaked positives and lost retain answers, with the gate weights they got (at most `limit`)."""
    out = []
    for i, p in enumerate(probes):
        if p.set in POSITIVE_SETS:
            bad = contains_value(base[p.question], p.answer) and contains_value(answers[i], p.answer)
        else:
            bad = _exact(base[p.question], p.answer) and not _exact(answers[i], p.answer)
        if bad:
            row = {"set": p.set, "request": p.request, "question": p.question, "gold": p.answer, "answer": answers[i]}
            if weights is not None:
                row["weights"] = {uid: round(float(w), 3) for uid, w in zip(unit_ids, weights[i]) if w > 0}
            out.append(row)
    return out[:limit]


# ---------------------------------------------------------------------------------------------
# The run


def resolve_model(spec: str, log: Callable[[str], None]) -> Path:
    if spec in ("demo", "tiny"):
        started = time.perf_counter()
        path = build_demo_model(DemoModelConfig.preset_config(spec))
        log(f"demo model '{spec}': {path} ({time.perf_counter() - started:.0f} s to build or reuse)")
        return path
    path = Path(spec)
    if not path.is_dir():
        raise SystemExit(f"--model: {spec} is neither 'demo', 'tiny' nor a directory")
    return path


def unlearn_config(args: argparse.Namespace, method: str, index: int) -> UnlearnConfig:
    overrides = {k: v for k, v in {"epochs": args.epochs, "max_steps": args.max_steps, "lr": args.lr,
                                   "rank": args.rank, "alpha": args.alpha}.items() if v is not None}
    return UnlearnConfig(method=method, seed=args.seed + index, **overrides)


def run(args: argparse.Namespace) -> dict:
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    wall_started = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = tuple(args.methods)
    model_dir = resolve_model(args.model, log)
    base = load_base_model(model_dir, device="cpu")
    world = load_demo_world(model_dir)
    encoder = load_encoder(device="cpu")
    stream = make_stream(world, args.requests, args.min_people, args.max_people, args.seed)
    plan = plan_probes(world, stream, args)
    log(f"{len(stream)} requests, {sum(len(r.people) for r in stream)} people; probe pools {plan.meta}")

    budget = args.max_new_tokens or answer_budget(base.tokenizer, [p.answer for ps in plan.positives.values() for p in ps])
    limit = getattr(base.model.config, "max_position_embeddings", None) or getattr(base.model.config, "n_positions", None)
    every_probe = plan.at(len(stream), 10**9)
    longest = max(len(base.tokenizer(format_prompt(p.question))["input_ids"]) for p in every_probe)
    if limit and longest + budget > limit:  # as the certificate does: the longest prompt and the answer must fit
        budget = max(limit - longest, 1)

    o3_gate = GatedModel(base)  # the O3 adapters (gated or forced on, per call)
    stacks = {m: GatedModel(base) for m in methods if m in BASELINES}  # each baseline's stacked adapters
    detectors: dict[str, list[tuple[str, Detector]]] = {m: [] for m in methods if m in GATED}
    shared_features = {"shared": SharedFeatures(encoder, DETECTOR_CONFIGS["shared"])}
    unit_scores = {m: UnitScores(shared_features.get(GATED[m])) for m in detectors}
    o3_adapters: list[AdapterWeights] = []
    baseline_adapters: dict[str, list[AdapterWeights]] = {m: [] for m in stacks}
    base_answers: dict[str, str] = {}
    steps: list[dict] = []
    gd_rng = random.Random(args.seed + 2)
    gd_pool_qa = [(qa.question, qa.answer) for name in plan.gd_pool for qa in world.questions(name, "trained")]

    try:
        for request in stream:
            t = request.index
            step: dict[str, Any] = {"request": t, "unit_id": request.unit_id, "people": list(request.people),
                                    "forget_items": len(request.forget), "methods": {}}
            train_s: dict[str, dict[str, float]] = {m: {} for m in methods}
            items = request.forget.training_items("refusal")

            if any(m in O3_FAMILY for m in methods):  # one O3 adapter per request, for every O3 row
                started = time.perf_counter()
                adapter = train_unit_adapter(base, items, unlearn_config(args, "o3", t), previous=o3_adapters)
                seconds = time.perf_counter() - started
                o3_adapters.append(adapter)
                o3_gate.add_unit(request.unit_id, adapter)
                for m in methods:
                    if m in O3_FAMILY:
                        train_s[m]["adapter"] = seconds
                log(f"[{t}] o3 adapter {seconds:.1f} s ({len(items)} examples)")
            for m in detectors:
                started = time.perf_counter()
                detector = fit_detector(request.forget, DETECTOR_CONFIGS[GATED[m]], encoder)
                train_s[m]["detector"] = time.perf_counter() - started
                detectors[m].append((request.unit_id, detector))
                log(f"[{t}] {m} detector {train_s[m]['detector']:.1f} s {detector.metadata.get('name_test', '')}")
            for m in stacks:
                answer_items = request.forget.training_items("answer")
                retain = gd_rng.sample(gd_pool_qa, min(args.gd_retain, len(gd_pool_qa))) if m == "gd" else None
                gate = stacks[m]
                started = time.perf_counter()
                with gate.apply(gate.resolve_weights([""], force="on")):  # earlier adapters on, one row for every batch row
                    adapter = train_unit_adapter(base, answer_items, unlearn_config(args, m, t),
                                                 previous=baseline_adapters[m], retain=retain)
                train_s[m]["adapter"] = time.perf_counter() - started
                baseline_adapters[m].append(adapter)
                gate.add_unit(request.unit_id, adapter)
                log(f"[{t}] {m} adapter {train_s[m]['adapter']:.1f} s")

            probes = plan.at(t, args.neighbours)
            questions = [p.question for p in probes]
            missing = [q for q in dict.fromkeys(questions) if q not in base_answers]
            if missing:
                base_answers.update(zip(missing, generate_answers(base.model, base.tokenizer, missing, max_new_tokens=budget, batch_size=args.batch)))
            eval_started = time.perf_counter()
            for m in methods:
                decision = None
                if m in GATED:
                    weights = unit_scores[m].weights(detectors[m], questions)
                    decision = weights.max(axis=1)
                    answers = [a.text for a in o3_gate.generate(questions, weights=weights, max_new_tokens=budget, batch_size=args.batch)]
                elif m == "o3-nogate":
                    answers = [a.text for a in o3_gate.generate(questions, force="on", max_new_tokens=budget, batch_size=args.batch)]
                else:
                    answers = [a.text for a in stacks[m].generate(questions, force="on", max_new_tokens=budget, batch_size=args.batch)]
                result = evaluate(probes, answers, base_answers, decision)
                if m in GATED or m == "o3-nogate":  # what went wrong, for the record (demo people are fictitious)
                    result["failures"] = failures(probes, answers, base_answers, weights if m in GATED else None,
                                                  [uid for uid, _ in detectors.get(m, [])])
                result["train_seconds"] = {**{k: round(v, 3) for k, v in train_s[m].items()}, "total": round(sum(train_s[m].values()), 3)}
                step["methods"][m] = result
            step["eval_seconds"] = round(time.perf_counter() - eval_started, 2)
            step["probe_counts"] = {s: sum(p.set == s for p in probes) for s in (*POSITIVE_SETS, *RETAIN_SETS)}
            steps.append(step)
            log(f"[{t}] " + "; ".join(
                f"{m}: leak F/P/D {r['leak']['F']['rate']:.2f}/{r['leak']['P']['rate']:.2f}/{r['leak']['D']['rate']:.2f} "
                f"retain R/N/W {r['retain']['R']['ratio']:.2f}/{r['retain']['N']['ratio']:.2f}/{r['retain']['W']['ratio']:.2f}"
                + (f" FPR {r['gate']['union_fpr']:.3f}" if "gate" in r else "")
                for m, r in step["methods"].items()) + f" (eval {step['eval_seconds']:.0f} s)")
    finally:
        o3_gate.close()
        for gate in stacks.values():
            gate.close()

    ablation = None
    if args.ablation:
        started = time.perf_counter()
        ablation = {"rows": detector_ablation(world, stream, plan, encoder, log), "seconds": round(time.perf_counter() - started, 1)}
    wall = time.perf_counter() - wall_started
    summary = summarise(steps, methods)
    return {
        "format": "forget-service/bench-unlearning",
        "version": 1,
        "command": "bench/unlearning.py " + " ".join(args.argv),
        "model": {"spec": args.model, "dir": str(model_dir), "preset": _preset(model_dir), "fingerprint": base.fingerprint},
        "stream": [{"request": r.index, "unit_id": r.unit_id, "people": list(r.people), "forget_items": len(r.forget)} for r in stream],
        "settings": {
            "methods": list(methods), "labels": {m: LABELS[m] for m in methods},
            "unlearn_config": {m: unlearn_config(args, "o3" if m in O3_FAMILY else m, 1).to_dict() for m in methods},
            "detector_configs": {m: DETECTOR_CONFIGS[GATED[m]].to_dict() for m in methods if m in GATED},
            "probes": {k: getattr(args, k) for k in ("f_per_person", "p_per_person", "d_per_person", "retain", "neighbours", "general")},
            "gd_retain_per_request": args.gd_retain, "max_new_tokens": budget, "max_positions": limit,
            "probe_pools": plan.meta, "seed": args.seed,
        },
        "targets": TARGETS,
        "steps": steps,
        "final": summary,
        "target_check": target_check(summary),
        "detector_ablation": ablation,
        "conditions": {
            "wall_seconds": round(wall, 1), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average_start": load_start, "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(), "torch": torch.__version__, "device": "cpu",
        },
    }


def _preset(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "demo_model.json").read_text()).get("config", {}).get("preset")
    except (OSError, ValueError):
        return None


def summarise(steps: list[dict], methods: tuple[str, ...]) -> dict:
    last = steps[-1]
    out = {"request": last["request"]}
    for m in methods:
        r = last["methods"][m]
        seconds = [s["methods"][m]["train_seconds"]["total"] for s in steps]
        out[m] = {
            "leak": r["leak"], "retain": r["retain"], "gate": r.get("gate"),
            "train_seconds": {"mean": round(float(np.mean(seconds)), 2), "max": round(float(np.max(seconds)), 2),
                              "last": seconds[-1]},
        }
    return out


def target_check(summary: dict) -> dict:
    checks = {}
    for m in OURS:
        if m not in summary:
            continue
        r = summary[m]
        leak = r["leak"]
        c = {
            "leak_F": leak["F"]["n"] > 0 and leak["F"]["rate"] <= TARGETS["leak_F"],
            "leak_P": leak["P"]["n"] > 0 and leak["P"]["rate"] <= TARGETS["leak_P"],
            "leak_D": None if leak["D"]["n"] == 0 else leak["D"]["rate"] <= TARGETS["leak_D"],
            "union_fpr": r["gate"]["union_fpr"] <= TARGETS["union_fpr"],
            "train_seconds_max": r["train_seconds"]["max"] <= TARGETS["train_seconds"],
        }
        for s in RETAIN_SETS:
            c[f"retain_{s}"] = r["retain"][s]["ratio"] >= TARGETS["retain"]
        c["all"] = all(v for v in c.values() if v is not None)
        checks[m] = c
    return checks


# ---------------------------------------------------------------------------------------------
# Reports


def _rate(entry: dict) -> str:
    if entry["n"] == 0:
        return "n/a (0)"
    return f"{entry['rate']:.3f} (<= {entry['upper95']:.3f}, n={entry['n']})"


def markdown(result: dict) -> str:
    final, methods = result["final"], result["settings"]["methods"]
    cond = result["conditions"]
    lines = [
        f"Continual unlearning, {final['request']} sequential requests on the demo model "
        f"'{result['model']['preset'] or result['model']['spec']}' (state after the last request; leak: rate "
        f"(Clopper-Pearson 95% upper bound, probes the base answered); F, P, D cumulative over all requests).",
        "",
        "| method | leak F | leak P | leak D | retain R | retain N | retain W | union FPR | train s/request (mean, max) | retain data |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        r = final[m]
        fpr = f"{r['gate']['union_fpr']:.3f}" if r.get("gate") else "- (always on)"
        lines.append(
            f"| {LABELS[m]} | {_rate(r['leak']['F'])} | {_rate(r['leak']['P'])} | {_rate(r['leak']['D'])} | "
            + " | ".join(f"{r['retain'][s]['ratio']:.3f}" for s in RETAIN_SETS)
            + f" | {fpr} | {r['train_seconds']['mean']:.1f}, {r['train_seconds']['max']:.1f} | {'yes' if m == 'gd' else 'no'} |"
        )
    counts = result["steps"][-1]["probe_counts"]
    base_ok = {s: result["final"][methods[0]]["retain"][s]["base_correct"] for s in RETAIN_SETS}
    lines += [
        "",
        f"Probes at the last request: " + ", ".join(f"{s} {counts[s]}" for s in counts)
        + f" (base answers correctly: R {base_ok['R']}, N {base_ok['N']}, W {base_ok['W']}).",
        f"Wall time {cond['wall_seconds'] / 60:.1f} min on {cond['torch_threads']} torch thread(s), "
        f"{cond['cpu_count']} CPU cores shared with other jobs (load average {cond['load_average_start']:.1f} at the start, "
        f"{cond['load_average_end']:.1f} at the end). Command: `{result['command']}`.",
    ]
    checks = result["target_check"]
    for m, c in checks.items():
        status = ", ".join(f"{k} {'ok' if v else ('n/a' if v is None else 'MISSED')}" for k, v in c.items() if k != "all")
        lines.append(f"Targets for {m}: {'all met' if c['all'] else 'not all met'} ({status}).")
    gate_lines = []
    for m in methods:
        gate = final[m].get("gate")
        if gate:
            gate_lines.append(f"{m}: " + ", ".join(f"{s} {gate['tpr_by_set'][s]:.3f}" for s in POSITIVE_SETS)
                              + f"; negatives R {gate['fpr_by_set']['R']:.3f}, N {gate['fpr_by_set']['N']:.3f}, W {gate['fpr_by_set']['W']:.3f}")
    if gate_lines:
        lines += ["", "Gate weight > 0.5 at the last request, all probes counted (also those the base model cannot answer): "
                  + "; ".join(gate_lines) + "."]
    if result.get("detector_ablation"):
        lines += ["", ablation_markdown(result["detector_ablation"]["rows"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, steps = result["settings"]["methods"], result["steps"]
    x = [s["request"] for s in steps]
    panels = [
        ("leak F (cumulative)", lambda r: r["leak"]["F"]["rate"] if r["leak"]["F"]["n"] else None),
        ("leak P (cumulative)", lambda r: r["leak"]["P"]["rate"] if r["leak"]["P"]["n"] else None),
        ("leak D (cumulative)", lambda r: r["leak"]["D"]["rate"] if r["leak"]["D"]["n"] else None),
        ("retain ratio R", lambda r: r["retain"]["R"]["ratio"]),
        ("retain ratio N", lambda r: r["retain"]["N"]["ratio"]),
        ("retain ratio W", lambda r: r["retain"]["W"]["ratio"]),
        ("gate union FPR (R+N, w>0.5)", lambda r: r["gate"]["union_fpr"] if r.get("gate") else None),
        ("training seconds per request", lambda r: r["train_seconds"]["total"]),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, (title, get) in zip(axes.flat, panels):
        drawn = 0
        for m in methods:
            ys = [get(s["methods"][m]) for s in steps]
            if all(y is None for y in ys):
                continue
            ax.plot(x, [np.nan if y is None else y for y in ys], marker="o", markersize=3, label=m)
            drawn += 1
        if not drawn:  # e.g. leak D when the base model answers no padded probe: nothing can leak
            ax.text(0.5, 0.5, "not measurable:\nthe base model answered\nno probe of this set", ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("request")
        ax.grid(alpha=0.3)
    axes.flat[-1].legend(fontsize=8)  # the training-time panel always has every method
    fig.suptitle(f"Continual unlearning on the demo model '{result['model']['preset']}' ({len(steps)} requests)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help="'demo' or 'tiny' (built or reused from the cache), or a model directory")
    parser.add_argument("--requests", type=int, default=10, help="sequential requests (50 for the full run)")
    parser.add_argument("--min-people", type=int, default=1)
    parser.add_argument("--max-people", type=int, default=3)
    parser.add_argument("--methods", type=lambda s: [m.strip() for m in s.split(",") if m.strip()], default=list(DEFAULT_METHODS),
                        help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="adapter epochs for every method (default: UnlearnConfig's)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--gd-retain", type=int, default=32, help="retain QA pairs given to gd per request")
    parser.add_argument("--f-per-person", type=int, default=8, help="F probes per forgotten person (trained phrasings)")
    parser.add_argument("--p-per-person", type=int, default=8, help="P probes per forgotten person (held-out paraphrases)")
    parser.add_argument("--d-per-person", type=int, default=4, help="D probes per forgotten person (padded F or P)")
    parser.add_argument("--retain", type=int, default=48, help="R probes")
    parser.add_argument("--retain-people", type=int, default=40, help="most people the R probes are drawn from (and at most a third of those never forgotten)")
    parser.add_argument("--neighbours", type=int, default=64, help="most N probes (2 per neighbour, name-sharing ones first)")
    parser.add_argument("--general", type=int, default=24, help="W probes")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the longest refusal or answer + 4 tokens")
    parser.add_argument("--batch", type=int, default=64, help="prompts per generation batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "unlearning.json", help="JSON; the .md and _curves.png go beside it")
    parser.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the detector ablation (detectors only, no language model; a few minutes)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in ALL_METHODS]
    if unknown or not args.methods:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    if not 1 <= args.min_people <= args.max_people or args.requests < 1:
        parser.error("need 1 <= --min-people <= --max-people and --requests >= 1")
    args.argv = list(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    result["table"] = table
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(table)
    plot(result, out.with_name(out.stem + "_curves.png"))
    print(table)
    return result


if __name__ == "__main__":
    main()
