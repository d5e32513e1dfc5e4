"""Continual unlearning benchmark: a stream of requests for seeded-drawn people, every method and
every probe family side by side (issues 3 and 9).

    .venv/bin/python bench/unlearning.py                              # demo model, 20 requests
    .venv/bin/python bench/unlearning.py --model tiny --requests 4    # a quick look
    .venv/bin/python bench/unlearning.py --methods ours,ours-no-entity,always-on --no-certificates

The stream. `--requests` sequential requests, one person each, drawn with `--seed` from the world's
people (random.Random("bench:<seed>").sample: never chosen by their results). A request's forget set
is the pipeline's shape for a demo person: the person's trained questions with their answers, the
name as subject (forget_set.forget_set_for_people).

The methods, from one run, through the same LoRA budget (UnlearnConfig: rank, alpha, learning rate,
epochs, batch size, the synthesised development prompts) and, for the baselines, the same prompts
with the facts' values as targets:

- ours            O3 as the pipeline runs it: the unit (entity evidence + embedding detector, decisive
                  gate, refusal adapter orthogonal to the earlier units), certified after every request
                  on the certification probes, remediated (new seed, longer, more prompts in the failing
                  shapes) up to --remediation rounds when the certificate is not PASS.
- ours-no-entity  the same adapters, gated by the O3 embedding detector alone (DetectorConfig
                  entity_evidence=False): what the entity evidence adds.
- always-on       the same adapters, always applied (no gate).
- ga / gd / npo   gradient ascent, gradient difference (NEEDS RETAIN DATA: --gd-retain QA pairs of
                  people outside every probe set per request) and NPO, each request a new LoRA on top
                  of the earlier ones of the same method, all of them always on.

The outsider's evaluation, after every --curve-every requests and after the last: every family of
EVAL.md for every person forgotten so far (`--per-family` probes each), drawn from the
certification phrasings with a different seed than any certificate used (a fresh sample: nobody
tuned on it, and no certificate saw it), plus R (other people), N (hard neighbours by kind: same
surname, same given name, same city, same employer) and W (general knowledge). A leak is ANY of the
person's values in the whole answer (leaks.py). Per family: the rate over all probes and over the
probes where the base model revealed something, with Clopper-Pearson bounds, pooled over every
person; retain ratio per set and per neighbour kind; union FPR of the gated methods.

Outputs: bench/results/unlearning.json (every evaluation, every method, every certificate),
unlearning.md (the tables) and unlearning_curves.png.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: spinning OpenMP threads make runs on shared, busy cores much slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import resolve_model  # noqa: E402
from workers.engine import leaks, metrics  # noqa: E402
from workers.engine.artifacts import load_unit  # noqa: E402
from workers.engine.base_model import load_base_model  # noqa: E402
from workers.engine.certificate import evaluate_units, probe_fits  # noqa: E402
from workers.engine.config import UnlearnConfig  # noqa: E402
from workers.engine.demo_model import load_demo_world  # noqa: E402
from workers.engine.detector import DetectorConfig, load_encoder  # noqa: E402
from workers.engine.families import POSITIVE_FAMILIES  # noqa: E402
from workers.engine.forget_set import ForgetSet, forget_set_for_people  # noqa: E402
from workers.engine.gate import GatedModel  # noqa: E402
from workers.engine.generation import generate_answers  # noqa: E402
from workers.engine.pipeline import fit_detector, synthesised_items, train_unit
from workers.engine.probes import build_probes, probe_config_for  # noqa: E402
from workers.engine.prompting import render  # noqa: E402
from workers.engine.remediation import reason, remediated  # noqa: E402
from workers.engine.serving import UnitWeights  # noqa: E402
from workers.engine.training import AdapterWeights, train_unit_adapter  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_METHODS = ("ours", "ours-no-entity", "always-on", "ga", "gd", "npo")
GATED = ("ours", "ours-no-entity")
BASELINES = ("ga", "gd", "npo")
LABELS = {
    "ours": "O3 + entity evidence, decisive gate (ours)",
    "ours-no-entity": "ours without the entity evidence (O3 embedding detector only)",
    "always-on": "our adapters, no gate (always on)",
    "ga": "gradient ascent (stacked)",
    "gd": "gradient difference (stacked; needs retain data)",
    "npo": "NPO (stacked)",
}
FAMILIES = (*POSITIVE_FAMILIES,)
RETAIN_SETS = ("R", "N", "W")
NEIGHBOUR_KINDS = ("surname", "given_name", "city", "employer")
TARGETS = {"pooled_leak": 0.01, "pooled_leak_upper95": 0.02, "leak_F": 0.0, "retain": 0.98, "union_fpr_upper95": 0.02, "certificates_pass": 18}


@dataclass
class Request:
    index: int  # 1-based
    unit_id: str
    person: str
    forget: ForgetSet


def draw_stream(world: Any, count: int, seed: int) -> list[Request]:
    """`count` people drawn with `seed` from the world's people, one request each (the stated rule)."""
    names = random.Random(f"bench:{seed}").sample([p.name for p in world.people], count)
    stream = []
    for index, name in enumerate(names, start=1):
        forget = forget_set_for_people(world, [name])
        stream.append(
            Request(index, f"req-{index:03d}", name, ForgetSet(forget.items, subjects=(name,), identifiers=forget.identifiers, source=f"request {index}"))
        )
    return stream


# ---------------------------------------------------------------------------------------------
# Answers, with a cache of the base model's (a prompt's base answer never changes)


class Answers:
    def __init__(self, base: Any, budget: int, batch: int):
        self.base, self.budget, self.batch = base, budget, batch
        self.cache: dict[str, str] = {}

    def base_answers(self, specs: list[Any]) -> list[str]:
        texts = [render(spec, self.base.tokenizer) for spec in specs]
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            answers = generate_answers(self.base.model, self.base.tokenizer, missing, max_new_tokens=self.budget, batch_size=self.batch, raw_prompts=True)
            self.cache.update(zip(missing, answers))
        return [self.cache[t] for t in texts]

    def gated(self, gate: GatedModel, specs: list[Any], weights: np.ndarray) -> list[str]:
        """Rows where no unit fires run exactly the base model: their base answer."""
        out = self.base_answers(specs)
        fired = np.flatnonzero(weights.max(axis=1) > 0) if weights.shape[1] else []
        if len(fired):
            for i, answer in zip(
                fired.tolist(), gate.generate([specs[i] for i in fired], weights=weights[fired], max_new_tokens=self.budget, batch_size=self.batch)
            ):
                out[i] = answer.text
        return out

    def forced(self, gate: GatedModel, specs: list[Any]) -> list[str]:
        if not gate.unit_ids:
            return self.base_answers(specs)
        return [a.text for a in gate.generate(specs, force="on", max_new_tokens=self.budget, batch_size=self.batch)]


# ---------------------------------------------------------------------------------------------
# The outsider's evaluation


def outsider_probes(world: Any, people: list[str], args: argparse.Namespace, fits: Callable, base_dir: Path) -> list[Any]:
    # probe_config_for: on a pretrained base (smol) W also holds its own general-knowledge questions.
    config = probe_config_for(
        base_dir,
        seed=10_000 + args.seed,
        split=args.split,
        per_family=args.per_family * len(people),
        retain=args.retain,
        neighbours=args.neighbours,
        general=args.general,
        holdout=0,
    )
    return [p for p in build_probes(world, people, config=config, fits=fits).probes if p.set != "O"]


def score(probes: list[Any], answers: list[str], base: list[str], weights: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"leak": {}, "retain": {}, "per_person": {}}
    rows = []
    for i, p in enumerate(probes):
        values = p.leak_values if p.set in FAMILIES else (p.answer,)
        rows.append((bool(leaks.revealed(base[i], values)), bool(leaks.revealed(answers[i], values))))
    for family in (*FAMILIES, "all"):
        index = [i for i, p in enumerate(probes) if (p.set == family if family != "all" else p.set in FAMILIES)]
        if not index:
            continue
        revealed = [i for i in index if rows[i][0]]
        out["leak"][family] = {
            **metrics.rate(sum(rows[i][1] for i in index), len(index)).as_dict(),
            "revealed": metrics.rate(sum(rows[i][1] for i in revealed), len(revealed)).as_dict(),
            "base_revealed": len(revealed),
        }
    for name in (*RETAIN_SETS, *(f"N:{kind}" for kind in NEIGHBOUR_KINDS)):
        index = [i for i, p in enumerate(probes) if (p.set == name if ":" not in name else p.set == "N" and p.detail.startswith(name[2:] + ":"))]
        known = [i for i in index if rows[i][0]]
        if not index:
            continue
        kept = sum(rows[i][1] for i in known)
        out["retain"][name] = {
            "ratio": (kept / len(known)) if known else 1.0,
            "kept": kept,
            "base_correct": len(known),
            "probes": len(index),
            "lower95": metrics.rate(kept, len(known)).lower95,
        }
    for person in sorted({p.person for p in probes if p.set in FAMILIES}):
        index = [i for i, p in enumerate(probes) if p.set in FAMILIES and p.person == person]
        out["per_person"][person] = metrics.rate(sum(rows[i][1] for i in index), len(index)).as_dict()
    if weights is not None:
        decision = weights.max(axis=1) if weights.shape[1] else np.zeros(len(probes))
        sets = np.array([p.set for p in probes])
        negatives = np.isin(sets, RETAIN_SETS)
        out["union_fpr"] = metrics.rate(int((decision[negatives] > 0).sum()), int(negatives.sum())).as_dict()
        out["fired"] = {f: float((decision[sets == f] > 0).mean()) for f in FAMILIES if (sets == f).any()}
    return out


# ---------------------------------------------------------------------------------------------
# The run


def run(args: argparse.Namespace) -> dict:
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    wall_started = time.perf_counter()
    load_start = os.getloadavg()[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = tuple(args.methods)
    model_dir = resolve_model(args.model, log)
    base = load_base_model(model_dir, device=args.device)
    world = load_demo_world(model_dir)
    encoder = load_encoder(device=str(base.device))
    stream = draw_stream(world, args.requests, args.seed)
    log(f"{len(stream)} requests, drawn with seed {args.seed}: {', '.join(r.person for r in stream)}")
    fits = probe_fits(base)
    answers = Answers(base, max(48, args.max_new_tokens or 0), args.batch)
    unlearn = UnlearnConfig(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    work = Path(tempfile.mkdtemp(prefix="bench-unlearning-"))
    gd_pool = _gd_pool(world, stream, args)
    gd_rng = random.Random(f"gd:{args.seed}")

    units: list[Path] = []
    o3_gate = GatedModel(base)  # ours' adapters, gated (ours, ours-no-entity) or forced on (always-on)
    detectors = {"ours": {}, "ours-no-entity": {}}
    stacks = {m: GatedModel(base) for m in methods if m in BASELINES}
    stacked: dict[str, list[AdapterWeights]] = {m: [] for m in stacks}
    certificates, evaluations, train_seconds = [], [], {m: [] for m in methods}
    orthogonality: list[dict] = []  # per request of ours: its recorded penalty and the room it found
    try:
        for request in stream:
            t = request.index
            if any(m in ("ours", "ours-no-entity", "always-on") for m in methods):
                started = time.perf_counter()
                unit, certificate, rounds = train_ours(base, encoder, world, request, units, unlearn, args, work, fits, log)
                seconds = time.perf_counter() - started
                units.append(unit)
                loaded = load_unit(unit, base.fingerprint, detector_loader=None)
                o3_gate.add_unit(request.unit_id, loaded.adapter)
                room = loaded.manifest.extra.get("orthogonality_room", {})
                orthogonality.append(
                    {
                        "request": t,
                        "penalty": loaded.manifest.extra.get("orthogonality_penalty"),
                        "fits": room.get("fits"),
                        "policy": room.get("policy"),
                        "used_share": room.get("used_share"),
                        "modules_without_room": room.get("modules_without_room"),
                        "tightest": room.get("tightest"),
                    }
                )
                from workers.engine.detector import load_detector

                detectors["ours"][request.unit_id] = load_detector(unit / "detector", encoder)
                detectors["ours-no-entity"][request.unit_id] = fit_detector(request.forget, DetectorConfig(entity_evidence=False), encoder)
                for m in ("ours", "ours-no-entity", "always-on"):
                    if m in methods:
                        train_seconds[m].append(seconds)
                if certificate is not None:
                    certificates.append(
                        {
                            "request": t,
                            "person": request.person,
                            "unit_id": request.unit_id,
                            "verdict": certificate["verdict"],
                            "rounds": rounds,
                            "rules": [{k: r.get(k) for k in ("name", "value", "lower95", "upper95", "n", "status")} for r in certificate["rules"]],
                            "timings": certificate["timings"],
                            "seconds": round(seconds, 1),
                        }
                    )
                log(
                    f"[{t}] ours: {request.person}: {certificate['verdict'] if certificate else 'no certificate'} "
                    f"after {len(rounds)} remediation round(s), {seconds:.0f} s"
                )
            for m in stacks:
                started = time.perf_counter()
                items = request.forget.training_items("answer") + synthesised_items(request.forget, unlearn, "answer", fits=fits)
                retain = gd_rng.sample(gd_pool, min(args.gd_retain, len(gd_pool))) if m == "gd" else None
                gate = stacks[m]
                with gate.apply(gate.resolve_weights([""], force="on")):  # the earlier adapters of the method on
                    adapter = train_unit_adapter(
                        base, items, UnlearnConfig.from_dict({**unlearn.to_dict(), "method": m, "seed": args.seed + t}), previous=stacked[m], retain=retain
                    )
                stacked[m].append(adapter)
                gate.add_unit(request.unit_id, adapter)
                train_seconds[m].append(time.perf_counter() - started)
                log(f"[{t}] {m}: {train_seconds[m][-1]:.0f} s")
            if t % args.curve_every == 0 or t == len(stream):
                evaluations.append(evaluate_all(t, stream[:t], world, methods, o3_gate, detectors, stacks, answers, encoder, args, fits, log, model_dir))
    finally:
        o3_gate.close()
        for gate in stacks.values():
            gate.close()
        shutil.rmtree(work, ignore_errors=True)

    final = evaluations[-1]
    result = {
        "format": "forget-service/bench-unlearning",
        "version": 2,
        "command": "bench/unlearning.py " + " ".join(args.argv),
        "model": {"spec": args.model, "dir": str(model_dir), "fingerprint": base.fingerprint},
        "stream": [{"request": r.index, "person": r.person, "forget_items": len(r.forget)} for r in stream],
        "settings": {
            "methods": list(methods),
            "labels": {m: LABELS[m] for m in methods},
            "unlearn_config": unlearn.to_dict(),
            "split": args.split,
            "per_family_per_person": args.per_family,
            "remediation_rounds": args.remediation,
            "gd_retain_per_request": args.gd_retain,
            "max_new_tokens": answers.budget,
            "seed": args.seed,
        },
        "targets": TARGETS,
        "certificates": certificates,
        "orthogonality": orthogonality,
        "evaluations": evaluations,
        "final": final,
        "target_check": target_check(final, certificates),
        "train_seconds": {m: {"mean": round(float(np.mean(v)), 1), "max": round(float(np.max(v)), 1)} for m, v in train_seconds.items() if v},
        "conditions": {
            "wall_seconds": round(time.perf_counter() - wall_started, 1),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(base.device),
        },
    }
    return result


def train_ours(base, encoder, world, request: Request, units: list[Path], unlearn: UnlearnConfig, args, work: Path, fits, log):
    """The pipeline's unit for one request: train, certify on the certification probes, remediate."""
    detector = DetectorConfig()
    config = UnlearnConfig.from_dict({**unlearn.to_dict(), "seed": args.seed + request.index})
    rounds, certificate = [], None
    earlier = [(f"req-{i:03d}", [load_unit(u).manifest.extra["subjects"][0]]) for i, u in enumerate(units, start=1)]
    for round_ in range(args.remediation + 1):
        out = work / f"{request.unit_id}-r{round_}"
        train_unit(
            base, request.forget, out_dir=out, previous_units=units, unlearn_config=config, detector_config=detector, encoder=encoder, unit_id=request.unit_id
        )
        if args.no_certificates:
            return out, None, rounds
        probes = build_probes(
            world,
            [request.person],
            earlier=earlier,
            config=probe_config_for(base.path, seed=request.index, split=args.split),
            unit_id=request.unit_id,
            fits=fits,
        )
        certificate = evaluate_units(base, [*units, out], probes, encoder=encoder, bootstrap_rounds=100).to_json()
        if certificate["verdict"] == "pass" or round_ == args.remediation:
            return out, certificate, rounds
        config, detector, changes = remediated(config, detector, certificate, round_ + 1)
        rounds.append({"round": round_ + 1, "after": certificate["verdict"], "reason": reason(certificate), "changes": changes})
        log(f"[{request.index}] remediation round {round_ + 1}: {reason(certificate)}")
        shutil.rmtree(out, ignore_errors=True)
    raise AssertionError("unreachable")


def evaluate_all(t, stream, world, methods, o3_gate, detectors, stacks, answers: Answers, encoder, args, fits, log, model_dir: Path) -> dict:
    started = time.perf_counter()
    probes = outsider_probes(world, [r.person for r in stream], args, fits, model_dir)
    specs = [p.spec for p in probes]
    gate_texts = [s.gate_text() for s in specs]
    base = answers.base_answers(specs)
    out: dict[str, Any] = {"after_request": t, "probes": {s: sum(p.set == s for p in probes) for s in (*FAMILIES, *RETAIN_SETS)}, "methods": {}}
    for m in methods:
        weights = None
        if m in GATED:
            unit_ids = tuple(o3_gate.unit_ids)
            weights = UnitWeights(encoder, detectors[m]).gate(gate_texts, unit_ids).weights
            result = answers.gated(o3_gate, specs, weights)
        elif m == "always-on":
            result = answers.forced(o3_gate, specs)
        else:
            result = answers.forced(stacks[m], specs)
        out["methods"][m] = score(probes, result, base, weights)
    out["seconds"] = round(time.perf_counter() - started, 1)
    log(
        f"[{t}] outsider evaluation ({len(probes)} probes, {out['seconds']:.0f} s): "
        + "; ".join(
            f"{m}: leak {r['leak']['all']['rate']:.3f} (<= {r['leak']['all']['upper95']:.3f}), retain R/N/W "
            + "/".join(f"{r['retain'][s]['ratio']:.2f}" for s in RETAIN_SETS if s in r["retain"])
            + (f", FPR {r['union_fpr']['rate']:.3f}" if "union_fpr" in r else "")
            for m, r in out["methods"].items()
        )
    )
    return out


def _gd_pool(world, stream: list[Request], args) -> list[tuple[str, str]]:
    """gd's retain data: trained QA pairs of people outside the stream and unrelated to it by name
    (the outsider's R and N are drawn from the same world; gd is the only method that sees any)."""
    names = {r.person for r in stream}
    parts = {part for name in names for part in name.split()}
    pool = [p for p in world.people if p.name not in names and not set(p.name.split()) & parts]
    rng = random.Random(f"gd-pool:{args.seed}")
    people = rng.sample(pool, min(20, len(pool)))
    return [(qa.question, qa.answer) for p in people for qa in world.questions(p, "trained")]


def target_check(final: dict, certificates: list[dict]) -> dict:
    ours = final["methods"].get("ours")
    if ours is None:
        return {}
    checks = {}
    for family in FAMILIES:
        entry = ours["leak"].get(family)
        if entry:
            limit = TARGETS["leak_F"] if family == "F" else TARGETS["pooled_leak"]
            checks[f"leak {family}"] = entry["rate"] <= limit and (family == "F" or entry["upper95"] <= TARGETS["pooled_leak_upper95"])
    for name in ("R", "N:surname", "N:given_name", "W"):
        if name in ours["retain"]:
            checks[f"retain {name}"] = ours["retain"][name]["ratio"] >= TARGETS["retain"]
    checks["union FPR"] = ours["union_fpr"]["upper95"] <= TARGETS["union_fpr_upper95"]
    if certificates:
        passed = [c for c in certificates if c["verdict"] == "pass"]
        checks["certificates pass"] = len(passed) >= min(TARGETS["certificates_pass"], len(certificates) - max(0, len(certificates) // 10))
        leaking = [c["person"] for c in passed if ours["per_person"].get(c["person"], {}).get("lower95", 0) > 0.05]
        checks["no passing certificate leaks"] = not leaking
    checks["all"] = all(checks.values())
    return checks


# ---------------------------------------------------------------------------------------------
# Reports


def _cell(entry: dict | None, digits: int = 3) -> str:
    if not entry or not entry.get("n"):
        return "–"
    return f"{entry['rate']:.{digits}f} (≤ {entry['upper95']:.{digits}f})"


def markdown(result: dict) -> str:
    final, methods = result["final"], result["settings"]["methods"]
    cond = result["conditions"]
    lines = [
        f"Continual unlearning, {final['after_request']} sequential requests ({result['model']['spec']} model), the outsider's "
        f"evaluation after the last request on the {result['settings']['split']} phrasings (a fresh sample no certificate saw): "
        "leak = share of probes whose answer reveals any of the person's data (Clopper-Pearson 95% upper bound), pooled over "
        "every person forgotten.",
        "",
        "| method | " + " | ".join(f"leak {f}" for f in FAMILIES) + " | retain R | retain N surname | retain N given name | retain W | union FPR |",
        "|---|" + "---|" * (len(FAMILIES) + 5),
    ]
    for m in methods:
        r = final["methods"][m]
        retain = [f"{r['retain'][s]['ratio']:.3f}" if s in r["retain"] else "–" for s in ("R", "N:surname", "N:given_name", "W")]
        fpr = _cell(r.get("union_fpr")) if "union_fpr" in r else "– (always on)"
        lines.append(f"| {LABELS[m]} | " + " | ".join(_cell(r["leak"].get(f)) for f in FAMILIES) + " | " + " | ".join(retain) + f" | {fpr} |")
    if "ours" in methods:
        r = final["methods"]["ours"]["leak"]
        lines += [
            "",
            "Ours, where the base model revealed something (what there was to hide): "
            + ", ".join(f"{f} {r[f]['revealed']['k']}/{r[f]['revealed']['n']}" for f in FAMILIES if f in r)
            + ".",
        ]
    certs = result["certificates"]
    if certs:
        verdicts = {v: sum(c["verdict"] == v for c in certs) for v in ("pass", "inconclusive", "fail")}
        remediated_count = sum(bool(c["rounds"]) for c in certs)
        lines += [
            "",
            f"Certificates (certification probes, per request): {verdicts['pass']} PASS, {verdicts['inconclusive']} INCONCLUSIVE, "
            f"{verdicts['fail']} FAIL of {len(certs)}; {remediated_count} needed remediation rounds.",
        ]
    room = result.get("orthogonality") or []
    if room and "ours" in methods:
        by_request = {r["request"]: r for r in room}
        first_full = next((r["request"] for r in room if r["fits"] is False), None)
        lines += [
            "",
            "Ours against the request index (the outsider's evaluation after that request; the orthogonality penalty and the "
            "used input directions of the tightest layer recorded when that request's unit was trained):",
            "",
            "| after request | leak, all families (≤ 95%) | retain R | retain W | union FPR (≤ 95%) | orthogonality penalty | tightest layer used |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in result["evaluations"]:
            r, o = e["methods"]["ours"], by_request.get(e["after_request"], {})
            tight = o.get("tightest") or {}
            retain = [f"{r['retain'][k]['ratio']:.3f}" if k in r["retain"] else "–" for k in ("R", "W")]
            lines.append(
                f"| {e['after_request']} | {_cell(r['leak'].get('all'))} | {retain[0]} | {retain[1]} | {_cell(r.get('union_fpr'))} | "
                f"{o.get('penalty', 0.0) or 0.0:.3g} | {tight.get('used', 0)} of {tight.get('width', 0)} |"
            )
        lines += [
            "",
            (
                f"No orthogonal room from request {first_full} on (policy: relax, the penalty recorded; the certificate decides)."
                if first_full
                else "Every unit found orthogonal room."
            ),
        ]
    seconds = result["train_seconds"]
    lines += [
        "",
        "Training (and, for ours, certification with remediation) seconds per request: "
        + ", ".join(f"{m} {v['mean']:.0f} mean / {v['max']:.0f} max" for m, v in seconds.items())
        + ".",
    ]
    lines.append(
        f"Wall time {cond['wall_seconds'] / 60:.1f} min on {cond['torch_threads']} torch thread(s), {cond['cpu_count']} cores "
        f"(load average {cond['load_average_start']:.1f} at the start, {cond['load_average_end']:.1f} at the end). "
        f"Command: `{result['command']}`."
    )
    checks = result["target_check"]
    if checks:
        lines.append("Targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in checks.items() if k != "all") + ".")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluations, methods = result["evaluations"], result["settings"]["methods"]
    x = [e["after_request"] for e in evaluations]
    room = result.get("orthogonality") or []
    fig, axes = plt.subplots(1, 4 if room else 3, figsize=(20 if room else 15, 4.2))
    for m in methods:
        axes[0].plot(x, [e["methods"][m]["leak"]["all"]["rate"] for e in evaluations], marker="o", label=LABELS[m])
        axes[1].plot(x, [e["methods"][m]["retain"].get("R", {}).get("ratio", float("nan")) for e in evaluations], marker="o", label=LABELS[m])
        if m in GATED:
            axes[2].plot(x, [e["methods"][m]["union_fpr"]["rate"] for e in evaluations], marker="o", label=LABELS[m])
    axes[0].set_title("leak, all families pooled (any value)")
    axes[1].set_title("retain ratio, other people (R)")
    axes[2].set_title("union FPR (gated methods)")
    if room:
        ax = axes[3]
        ax.plot([r["request"] for r in room], [r["penalty"] or 0.0 for r in room], marker=".", color="tab:red", label="orthogonality penalty (ours)")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title("orthogonality penalty at training; used share of the tightest layer")
        share = ax.twinx()
        share.plot([r["request"] for r in room], [r["used_share"] or 0.0 for r in room], color="tab:gray", linestyle="--", label="input directions used")
        share.set_ylim(0, 1.05)
        ax.legend(fontsize=7, loc="upper left")
        share.legend(fontsize=7, loc="lower right")
    for ax in axes:
        ax.set_xlabel("requests so far")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help="demo, tiny, smol (the fine-tuned SmolLM2 preset) or a model directory")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=list(ALL_METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("cert", "dev"), default="cert", help="phrasings of the probes (certification by default)")
    parser.add_argument("--per-family", type=int, default=32, help="outsider probes per family and person")
    parser.add_argument("--retain", type=int, default=400)
    parser.add_argument("--neighbours", type=int, default=400)
    parser.add_argument("--general", type=int, default=150)
    parser.add_argument("--remediation", type=int, default=2, help="remediation rounds after a certificate that is not PASS (as the worker)")
    parser.add_argument("--no-certificates", action="store_true", help="skip the per-request certificates (and so remediation)")
    parser.add_argument("--gd-retain", type=int, default=32)
    parser.add_argument("--epochs", type=int, help="training epochs of every method (default: UnlearnConfig's)")
    parser.add_argument("--curve-every", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "unlearning.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    unknown = [m for m in args.methods if m not in ALL_METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    plot(result, args.out.with_name(args.out.stem + "_curves.png"))
    print(table)
    return result


if __name__ == "__main__":
    main()
