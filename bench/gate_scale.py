"""The gate at a provider's volume: cost per prompt and resident memory per unit against the number
of live units, and how many units a prompt could fire for (issue 12, items 1 and 7).

    .venv/bin/python bench/gate_scale.py                          # demo world, 1 / 1,000 / 10,000 units; about 5 minutes
    .venv/bin/python bench/gate_scale.py --sizes 1,1000,10000,100000 --prompts 24

What is measured is the gate as the gateway runs it today: DetectorBank.score on single prompts,
one shared encoder pass, then every unit's embedding scorer (stacked, exhaustive) and the entity
evidence of every unit (names.py's EntityBank). Per size, interleaved over --rounds rounds:

- gate cost per prompt p50 / p99, and its parts: the encoder pass alone and the entity evidence
  alone (the rest is the stacked scoring);
- resident memory per unit: the unit's scorer tensors, its Detector's own one-unit stack (built
  only when a detector is used alone: 0 in a gateway), its share of the bank's stacked scorer tensors, its entity matcher and its share of the entity index, and
  what a unit's adapter would add if resident (float32 LoRA at the deployment's rank on every linear layer; the
  gateway's --adapter-budget keeps only some adapters resident);
- candidates per prompt: the units an exact prefilter would still have to score. A unit's weight is
  0 unless u(x) reaches its lowest calibration score (calibration.py), and u is increasing in the
  1-NN cosine c of the prompt's windows to the unit's stored windows, so a unit can fire only if
  max c >= c0 (UnitScorer.cosine_floor, exact). The count of units with max c >= c0 is what a
  cosine prefilter (FAISS or pgvector range search) could not prune; the units that fired by
  entity evidence and in all are counted too.

Units: the first --real-units are REAL detectors fitted by the pipeline on demo people's forget
sets. The others are SYNTHETIC (labelled so): each is a real unit's embedding scorer (the same
tensors: the same cost, and as likely to be a candidate as a real unit on any prompt) with its own
entity evidence for a made-up person (a seeded random name and values), so the name index grows
as it would with real requests. Timed prompts concern none of the real units' people (other
people's questions and general facts): the common case in service.

Writes JSON (--out) and prints a markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads slow shared cores

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import resolve_model  # noqa: E402
from workers.engine.base_model import load_base_model  # noqa: E402
from workers.engine.config import UnlearnConfig  # noqa: E402
from workers.engine.demo_model import load_demo_world  # noqa: E402
from workers.engine.detector import Detector, DetectorBank, DetectorConfig, load_encoder  # noqa: E402
from workers.engine.detector.names import EntityBank, EntityMatcher  # noqa: E402
from workers.engine.detector.scorer import ScorerStack, UnitScorer  # noqa: E402
from workers.engine.forget_set import forget_set_for_people  # noqa: E402
from workers.engine.gate import _in_out_features, linear_module_names  # noqa: E402
from workers.engine.pipeline import fit_detector  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gate-scale.json"
TARGET_GROWTH = 2.0  # issue 12: per-prompt gate cost at 100,000 units at most 2x that at 1
TARGET_BYTES_PER_UNIT = 64 * 1024  # issue 12: what the gate keeps resident per unit, adapters excluded
SYLLABLES = ("ka", "lo", "mi", "ren", "ta", "vor", "el", "sa", "dun", "bri", "qua", "zel", "mor", "ith", "pen", "gal", "ru", "ost")


def made_up_name(rng: random.Random) -> str:
    word = lambda parts: "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()  # noqa: E731
    return f"{word(2)} {word(3)}"


def synthetic_matcher(rng: random.Random) -> EntityMatcher:
    name = made_up_name(rng)
    email = f"{name.split()[0].lower()}.{rng.randrange(10**6)}@example.org"
    phone = f"+44 7{rng.randrange(10**9):09d}"
    return EntityMatcher.fit([name], values=[email, phone, f"{rng.randrange(1, 999)} {made_up_name(rng).split()[1]} Road"], identifiers=[email, phone])


def tensor_bytes(obj, seen: set[int] | None = None) -> int:
    """Bytes of every tensor reachable from obj's attributes (each storage counted once)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = obj.untyped_storage().data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(item, seen) for item in obj)
    if hasattr(obj, "__dict__"):
        return sum(tensor_bytes(value, seen) for value in vars(obj).values())
    return 0


def adapter_bytes(base, rank: int) -> int:
    modules = dict(base.model.named_modules())
    return 4 * sum(rank * sum(_in_out_features(modules[name])) for name in linear_module_names(base.model))


def choose_prompts(world, excluded_people: set[str], count: int, rng: random.Random) -> list[str]:
    others = [p for p in world.people if p.name not in excluded_people]
    questions = [qa.question for p in rng.sample(others, min(len(others), count)) for qa in world.questions(p, "all")]
    facts = [qa.question for qa in world.fact_questions(split="all")]
    prompts = rng.sample(questions, min(len(questions), count - count // 4)) + rng.sample(facts, min(len(facts), count // 4))
    rng.shuffle(prompts)
    return prompts


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def mem_available() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def run(args: argparse.Namespace) -> dict:
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    torch.set_num_threads(args.threads)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    model_dir = resolve_model(args.model, log)
    base = load_base_model(model_dir, device="cpu")
    world = load_demo_world(model_dir)
    encoder = load_encoder(device="cpu")
    config = DetectorConfig()
    rng = random.Random(f"gate-scale:{args.seed}")
    real_people = rng.sample(world.people, args.real_units)
    real = []
    for person in real_people:
        seconds, detector = timed(lambda person=person: fit_detector(forget_set_for_people(world, [person]), config, encoder))
        real.append(detector)
        log(f"real unit for {person.name}: detector fitted in {seconds:.1f} s, {detector.unit.glocal.num_samples} stored windows")
    excluded = {p.name for person in real_people for p in [person, *world.neighbours(person)]}
    prompts = choose_prompts(world, excluded, args.prompts, rng)

    # What a loaded unit holds: its scorer's tensors and its share of the bank's stack (a Detector's
    # own one-unit stack is built only if the detector is used alone, which a gateway never does).
    per_unit_stack = tensor_bytes(ScorerStack([real[0].unit]))
    unit_scorer = tensor_bytes(real[0].unit)
    sizes, skipped = [], []
    for n in args.sizes:
        need = n * per_unit_stack * 1.15
        if need > 0.75 * mem_available():
            skipped.append(
                {"units": n, "reason": f"the units' stacked scorers alone would take about {need / 2**30:.1f} GiB of {mem_available() / 2**30:.1f} available"}
            )
            log(f"{n} units skipped: {skipped[-1]['reason']}")
            continue
        sizes.append(n)
    if not sizes:
        raise SystemExit("no size fits in memory")

    matcher_rng = random.Random(f"gate-scale-names:{args.seed}")
    detectors: dict[str, Detector] = {f"real-{i}": d for i, d in enumerate(real)}
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(len(real), max(sizes)):
        template = real[index % len(real)]
        detectors[f"synthetic-{index}"] = replace(template, entity=synthetic_matcher(matcher_rng), metadata={"synthetic": True})
    matcher_bytes = (tracemalloc.get_traced_memory()[0] - before) / max(1, max(sizes) - len(real))
    tracemalloc.stop()
    ids = list(detectors)

    banks, entity_banks, memory = {}, {}, {}
    for n in sizes:
        bank = DetectorBank(encoder, config)
        bank.add_many({uid: detectors[uid] for uid in ids[:n]})
        seconds, _ = timed(lambda bank=bank: bank.score(prompts[:1]))  # builds the stack once, outside the timings
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        entity_banks[n] = EntityBank({uid: detectors[uid].entity for uid in ids[:n]})
        entity_bytes = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        stack = bank._current().stack  # the bank's snapshot: what its score() calls read
        memory[n] = {
            "unit_scorer_bytes_per_unit": unit_scorer,  # synthetic units share their template's; a real unit has its own
            "detector_stack_bytes_per_unit": sum(tensor_bytes(detectors[uid].__dict__["stack"]) for uid in ids[:n] if "stack" in detectors[uid].__dict__) / n,
            "stack_bytes_per_unit": tensor_bytes(stack) / n,
            "entity_index_bytes_per_unit": entity_bytes / n,
            "entity_matcher_bytes_per_unit": matcher_bytes,
            "build_seconds": round(seconds, 2),
        }
        banks[n] = bank
        log(f"{n} units: bank built in {seconds:.1f} s, {memory[n]['stack_bytes_per_unit'] / 1024:.1f} KiB of stacked scorer per unit")

    floors = torch.tensor([detectors[uid].unit.cosine_floor() for uid in ids[: max(sizes)]])
    layers = encoder.resolve_layers(config.layers)
    samples = {n: {"gate": [], "encoder": [], "entity": []} for n in sizes}
    counts = {n: {"cosine_candidates": [], "entity_fired": [], "fired": []} for n in sizes}
    for round_index in range(args.rounds):
        for index, prompt in enumerate(prompts):
            order = sizes[(round_index + index) % len(sizes) :] + sizes[: (round_index + index) % len(sizes)]
            windows, _ = config.split_windows([prompt])
            encoder_s, features = timed(lambda windows=windows: encoder.layer_features(windows, layers, config.batch_size))
            for n in order:
                seconds, scores = timed(lambda n=n: banks[n].score([prompt]))
                samples[n]["gate"].append(seconds)
                samples[n]["encoder"].append(encoder_s)
                samples[n]["entity"].append(timed(lambda n=n: entity_banks[n].evidence([prompt]))[0])
                if round_index == 0:
                    counts[n]["fired"].append(int((scores.weights[0] > 0).sum()))
                    counts[n]["entity_fired"].append(int((scores.entity[0] > 0).sum()))
            if round_index == 0:
                best = max_cosine(features, [detectors[uid].unit for uid in ids[: max(sizes)]])
                for n in sizes:
                    counts[n]["cosine_candidates"].append(int((best[:n] >= floors[:n]).sum()))
        log(f"round {round_index + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}")

    adapter = adapter_bytes(base, UnlearnConfig().rank)
    rows = []
    gate_at_1 = float(np.median(samples[sizes[0]]["gate"])) if sizes else None
    for n in sizes:
        gate = np.array(samples[n]["gate"]) * 1000
        resident = sum(memory[n][key] for key in memory[n] if key.endswith("_per_unit"))
        rows.append(
            {
                "units": n,
                "real_units": min(n, len(real)),
                "synthetic_units": max(0, n - len(real)),
                "gate_ms": {"p50": float(np.median(gate)), "p99": float(np.percentile(gate, 99))},
                "encoder_ms_p50": float(np.median(samples[n]["encoder"])) * 1000,
                "entity_ms_p50": float(np.median(samples[n]["entity"])) * 1000,
                "vs_smallest": float(np.median(gate)) / (gate_at_1 * 1000) if gate_at_1 else None,
                "memory": {**{k: round(v) if k != "build_seconds" else v for k, v in memory[n].items()}, "gate_resident_bytes_per_unit": round(resident)},
                "adapter_bytes_per_unit": adapter,
                "candidates_per_prompt": {key: {"mean": float(np.mean(v)), "max": int(max(v))} for key, v in counts[n].items()},
            }
        )
    largest = rows[-1] if rows else None
    result = {
        "command": "bench/gate_scale.py " + " ".join(args.argv),
        "model": {"spec": args.model, "dir": str(model_dir)},
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "argv")},
        "units": {
            "real": [p.name for p in real_people],
            "stored_windows": [d.unit.glocal.num_samples for d in real],
            "negative_centroids": [int(d.unit.negatives.shape[1]) for d in real],
            "cosine_floor": [round(d.unit.cosine_floor(), 4) for d in real],
            "synthetic_note": "a real unit's embedding scorer (same tensors) with the entity evidence of a made-up person",
        },
        "prompts": prompts,
        "rows": rows,
        "skipped": skipped,
        "targets": {
            "growth_at_largest": (
                {"units": largest["units"], "value": largest["vs_smallest"], "target": TARGET_GROWTH, "met": largest["vs_smallest"] <= TARGET_GROWTH}
                if largest and largest["units"] >= 100_000
                else {"units": largest["units"] if largest else 0, "value": largest["vs_smallest"] if largest else None, "target": TARGET_GROWTH, "met": None}
            ),
            "resident_bytes_per_unit": {
                "value": largest["memory"]["gate_resident_bytes_per_unit"],
                "target": TARGET_BYTES_PER_UNIT,
                "met": largest["memory"]["gate_resident_bytes_per_unit"] <= TARGET_BYTES_PER_UNIT,
            }
            if largest
            else None,
        },
        "conditions": {
            "seconds": round(time.perf_counter() - started, 1),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    return result


def max_cosine(features: torch.Tensor, units: list[UnitScorer]) -> torch.Tensor:
    """Per unit, the largest 1-NN cosine over the prompt's windows and layers (features [m, L, d])."""
    distinct: dict[int, float] = {}
    out = []
    for unit in units:
        key = id(unit.glocal.features)  # synthetic units share their template's tensors
        if key not in distinct:
            distinct[key] = float(torch.einsum("mld,lnd->mln", features, unit.glocal.features).max())
        out.append(distinct[key])
    return torch.tensor(out)


def markdown(result: dict) -> str:
    lines = [
        "| units (real + synthetic) | gate p50 ms | gate p99 ms | x smallest | encoder ms | entity evidence ms "
        "| scorer + own stack + bank stack KiB/unit | entity KiB/unit | gate resident KiB/unit | adapter KiB/unit (if resident) "
        "| cosine candidates/prompt (mean, max) | fired/prompt (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        m, c = row["memory"], row["candidates_per_prompt"]
        lines.append(
            f"| {row['units']:,} ({row['real_units']} + {row['synthetic_units']:,}) | {row['gate_ms']['p50']:.1f} | {row['gate_ms']['p99']:.1f} | "
            f"{row['vs_smallest']:.2f} | {row['encoder_ms_p50']:.1f} | {row['entity_ms_p50']:.2f} | "
            f"{m['unit_scorer_bytes_per_unit'] / 1024:.0f} + {m['detector_stack_bytes_per_unit'] / 1024:.0f} + {m['stack_bytes_per_unit'] / 1024:.0f} | "
            f"{(m['entity_index_bytes_per_unit'] + m['entity_matcher_bytes_per_unit']) / 1024:.1f} | {m['gate_resident_bytes_per_unit'] / 1024:.1f} | "
            f"{row['adapter_bytes_per_unit'] / 1024:.0f} | {c['cosine_candidates']['mean']:.1f}, {c['cosine_candidates']['max']} | {c['fired']['mean']:.2f} |"
        )
    t = result["targets"]
    if result["rows"]:
        g, r = t["growth_at_largest"], t["resident_bytes_per_unit"]
        growth = "met" if g["met"] else ("MISSED" if g["met"] is False else "not measured at 100,000 units")
        lines += [
            "",
            f"Targets (issue 12): gate cost at {g['units']:,} units {g['value']:.2f}x the smallest size (target: at most {g['target']}x at 100,000 "
            f"units: {growth}); resident per unit {r['value'] / 1024:.1f} KiB (target 64 KiB) {'met' if r['met'] else 'MISSED'}.",
        ]
    for skip in result["skipped"]:
        lines.append(f"Not run at {skip['units']:,} units: {skip['reason']} (today's gate keeps every unit's detector resident).")
    c = result["conditions"]
    lines.append(
        f"{c['seconds']:.0f} s on {c['torch_threads']} torch threads, {c['cpu_count']} cores, "
        f"load average {c['load_average_start']:.1f} at the start, {c['load_average_end']:.1f} at the end. Command: `{result['command']}`."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help="demo or tiny (a demo preset: the world's people are the units' subjects)")
    parser.add_argument("--sizes", type=lambda s: sorted({int(x) for x in s.split(",") if x.strip()}), default=[1, 1000, 10000])
    parser.add_argument("--real-units", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.sizes or args.sizes[0] < 1 or args.real_units < 1:
        parser.error("--sizes must be positive and --real-units at least 1")
    args.argv = list(argv if argv is not None else sys.argv[1:])
    result = run(args)
    table = markdown(result)
    result["table"] = table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table)
    return result


if __name__ == "__main__":
    main()
