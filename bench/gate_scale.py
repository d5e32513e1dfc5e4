"""The gate at a provider's volume: cost per prompt and resident memory per unit against the number
of live units, and how many units a prompt is scored for (issue 12, items 1 and 7).

    .venv/bin/python bench/gate_scale.py                          # demo world, 1 / 1,000 / 10,000 units; about 10 minutes
    .venv/bin/python bench/gate_scale.py --sizes 1,1000,10000,100000 --prompts 24

Two gates are timed on the same prompts, interleaved over --rounds rounds:

- prefiltered (what the gateway runs: DetectorBank(prefilter=True)): one shared encoder pass, a
  FAISS range search over every unit's stored windows for the units whose weight can be non-zero
  (detector/prefilter.py), the exact scorer on those only (their negative centroids read back from
  the bank's spill file, spill.py), and the entity evidence (names.py);
- exhaustive (the reference, up to --exhaustive-max units): every unit's scorer, stacked.

Per size: gate cost per prompt p50 / p99 and its parts (the encoder pass alone, the entity evidence
alone); units scored exactly per prompt (the prefilter's candidates) and IVF lists searched; units
fired; decision differences between the two gates (must be 0); resident memory per unit: a real
unit's scorer tensors less its negative centroids, which the prefiltered gate spills to disk (the
synthetic units share their template's negatives, so a real unit's figure is the honest one), the
prefilter's index (float32 flat, float16 once IVF), the entity matcher and its share of the entity index,
the exhaustive stack (which the prefiltered gate does not build), and what a unit's adapter would
add if resident (float32 LoRA at the deployment's rank on every linear layer; the gateway's
--adapter-budget keeps only some adapters resident).

Units: the first --real-units are REAL detectors fitted by the pipeline on demo people's forget
sets. The others are SYNTHETIC (labelled so; detector/synthetic.py): each a real unit's windows
moved towards another real unit's and refitted (its own windows and floor, where real requests'
windows lie), with its own entity evidence for a made-up person (a seeded random name and values),
so both indexes grow as they would with real requests. Timed prompts concern none of the real
units' people (other people's questions and general facts): the common case in service.

Writes JSON (--out) and prints a markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads slow shared cores

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import resolve_model  # noqa: E402
from workers.engine.base_model import load_base_model  # noqa: E402
from workers.engine.config import UnlearnConfig  # noqa: E402
from workers.engine.demo_model import load_demo_world  # noqa: E402
from workers.engine.detector import Detector, DetectorBank, DetectorConfig, load_encoder  # noqa: E402
from workers.engine.detector.names import EntityBank, EntityMatcher  # noqa: E402
from workers.engine.detector.scorer import ScorerStack  # noqa: E402
from workers.engine.detector.synthetic import mixed_detector  # noqa: E402
from workers.engine.forget_set import forget_set_for_people  # noqa: E402
from workers.engine.gate import in_out_features, linear_module_names  # noqa: E402
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
    return 4 * sum(rank * sum(in_out_features(modules[name])) for name in linear_module_names(base.model))


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

    largest = max(args.sizes)
    matcher_rng, generator = random.Random(f"gate-scale-names:{args.seed}"), torch.Generator().manual_seed(args.seed)
    detectors: dict[str, Detector] = {f"real-{i}": d for i, d in enumerate(real)}
    seconds, _ = timed(
        lambda: detectors.update(
            {
                f"synthetic-{i}": mixed_detector(*matcher_rng.sample(real, 2), generator, entity=synthetic_matcher(matcher_rng))
                for i in range(len(real), largest)
            }
        )
    )
    log(f"{largest - len(real):,} synthetic units made in {seconds:.0f} s")
    ids = list(detectors)
    # A real unit's own tensors (synthetic ones share their template's negatives); the prefiltered
    # bank keeps the negatives in its spill file, not in memory.
    unit_scorer = tensor_bytes(real[0].unit)
    spilled = tensor_bytes(real[0].unit.negatives)
    per_unit_stack = tensor_bytes(ScorerStack([real[0].unit]))

    prefiltered, exhaustive, entity_banks, memory, skipped = {}, {}, {}, {}, []
    for n in args.sizes:
        bank = DetectorBank(encoder, config, prefilter=True)
        build, _ = timed(lambda bank=bank, n=n: bank.add_many({uid: detectors[uid] for uid in ids[:n]}))
        bank.score(prompts[:1])  # the snapshot, outside the timings
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        entity_banks[n] = EntityBank({uid: detectors[uid].entity for uid in ids[:n]})
        entity_index = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        memory[n] = {
            "unit_scorer_bytes_per_unit": unit_scorer - spilled,
            "prefilter_index_bytes_per_unit": bank.prefilter.nbytes / n,
            "entity_index_bytes_per_unit": entity_index / n,
            "entity_matcher_bytes_per_unit": matcher_bytes(detectors[ids[-1]].entity),
            "prefilter_build_seconds": round(build, 2),
            "spilled_bytes_per_unit_on_disk": bank.spilled_bytes / n,
        }
        prefiltered[n] = bank
        if n <= args.exhaustive_max and n * per_unit_stack * 1.15 < 0.6 * mem_available():
            reference = DetectorBank(encoder, config)
            reference.add_many({uid: detectors[uid] for uid in ids[:n]})
            reference.score(prompts[:1])  # builds the stack once, outside the timings
            exhaustive[n] = reference
            memory[n]["exhaustive_stack_bytes_per_unit"] = tensor_bytes(reference.stack) / n
        else:
            skipped.append({"units": n, "reason": f"exhaustive reference not run above --exhaustive-max {args.exhaustive_max:,} or beyond memory"})
        log(f"{n:,} units: prefilter built in {build:.1f} s, index {memory[n]['prefilter_index_bytes_per_unit'] / 1024:.1f} KiB per unit")

    gates = [(n, "prefiltered") for n in args.sizes] + [(n, "exhaustive") for n in exhaustive]
    samples = {gate: [] for gate in gates}
    parts = {n: {"encoder": [], "entity": []} for n in args.sizes}
    counts = {n: {"candidates": [], "lists_searched": [], "lists": 0, "fired": [], "entity_fired": [], "differences": 0} for n in args.sizes}
    layers = encoder.resolve_layers(config.layers)
    for round_index in range(args.rounds):
        for index, prompt in enumerate(prompts):
            shift = (round_index + index) % len(gates)
            windows, _ = config.split_windows([prompt])
            encoder_s, _ = timed(lambda windows=windows: encoder.layer_features(windows, layers, config.batch_size))
            results = {}
            for n, kind in gates[shift:] + gates[:shift]:
                bank = prefiltered[n] if kind == "prefiltered" else exhaustive[n]
                seconds, results[n, kind] = timed(lambda bank=bank: bank.score([prompt]))
                samples[n, kind].append(seconds)
                if kind == "prefiltered":
                    stats = bank.prefilter.last
                    if round_index == 0:
                        counts[n]["candidates"].append(results[n, kind].candidates)
                        counts[n]["lists_searched"].append(stats.lists_searched)
                        counts[n]["lists"] = stats.lists
            for n in args.sizes:
                parts[n]["encoder"].append(encoder_s)
                parts[n]["entity"].append(timed(lambda n=n: entity_banks[n].evidence([prompt]))[0])
                if round_index == 0:
                    scores = results[n, "prefiltered"]
                    counts[n]["fired"].append(int((scores.weights[0] > 0).sum()))
                    counts[n]["entity_fired"].append(int((scores.entity[0] > 0).sum()))
                    if n in exhaustive:
                        counts[n]["differences"] += int((scores.weights != results[n, "exhaustive"].weights).sum())
        log(f"round {round_index + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}")

    adapter = adapter_bytes(base, UnlearnConfig().rank)
    smallest = float(np.median(samples[args.sizes[0], "prefiltered"]))
    rows = []
    for n, kind in sorted(gates, key=lambda gate: (gate[0], gate[1] != "prefiltered")):
        gate = np.array(samples[n, kind]) * 1000
        c = counts[n]
        resident = sum(v for k, v in memory[n].items() if k.endswith("_per_unit") and not k.startswith("exhaustive"))
        if kind == "exhaustive":  # the whole scorer and the stack, no index
            resident += spilled + memory[n]["exhaustive_stack_bytes_per_unit"] - memory[n]["prefilter_index_bytes_per_unit"]
        rows.append(
            {
                "units": n,
                "gate": kind,
                "real_units": min(n, len(real)),
                "synthetic_units": max(0, n - len(real)),
                "gate_ms": {"p50": float(np.median(gate)), "p99": float(np.percentile(gate, 99))},
                "encoder_ms_p50": float(np.median(parts[n]["encoder"])) * 1000,
                "entity_ms_p50": float(np.median(parts[n]["entity"])) * 1000,
                "vs_smallest": float(np.median(gate)) / (smallest * 1000),
                "memory": {k: round(v) if k.endswith("_per_unit") else v for k, v in memory[n].items()},
                "gate_resident_bytes_per_unit": round(resident),
                "adapter_bytes_per_unit": adapter,
                "scored_per_prompt": {"mean": float(np.mean(c["candidates"])), "max": int(max(c["candidates"]))}
                if kind == "prefiltered"
                else {"mean": n, "max": n},
                "ivf_lists_searched": {"mean": float(np.mean(c["lists_searched"])), "of": c["lists"]} if kind == "prefiltered" else None,
                "fired_per_prompt_mean": float(np.mean(c["fired"])),
                "entity_fired_per_prompt_mean": float(np.mean(c["entity_fired"])),
                "decision_differences": c["differences"] if n in exhaustive else None,
            }
        )
    top = [row for row in rows if row["gate"] == "prefiltered"][-1]
    result = {
        "command": "bench/gate_scale.py " + " ".join(args.argv),
        "model": {"spec": args.model, "dir": str(model_dir)},
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "argv")},
        "units": {
            "real": [p.name for p in real_people],
            "stored_windows": [d.unit.glocal.num_samples for d in real],
            "negative_centroids": [int(d.unit.negatives.shape[1]) for d in real],
            "cosine_floor": [round(d.unit.cosine_floor(), 4) for d in real],
            "synthetic_note": "real units' windows mixed towards another's and refitted (detector/synthetic.py), with a made-up person's entity evidence",
        },
        "prompts": prompts,
        "rows": rows,
        "skipped": skipped,
        "targets": {
            "growth_at_largest": {
                "units": top["units"],
                "value": top["vs_smallest"],
                "target": TARGET_GROWTH,
                "met": top["vs_smallest"] <= TARGET_GROWTH if top["units"] >= 100_000 else None,
            },
            "resident_bytes_per_unit": {
                "value": top["gate_resident_bytes_per_unit"],
                "target": TARGET_BYTES_PER_UNIT,
                "met": top["gate_resident_bytes_per_unit"] <= TARGET_BYTES_PER_UNIT,
            },
            "decision_differences": sum(row["decision_differences"] or 0 for row in rows),
        },
        "conditions": {
            "seconds": round(time.perf_counter() - started, 1),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "faiss": faiss.__version__,
        },
    }
    return result


def matcher_bytes(matcher: EntityMatcher | None) -> int:
    """Bytes a unit's entity matcher holds (deep sizes of its attributes)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    copy.deepcopy(matcher)
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return size


def markdown(result: dict) -> str:
    lines = [
        "| units (real + synthetic) | gate | p50 ms | p99 ms | x 1 unit | encoder ms | entity ms | scored/prompt (mean, max) "
        "| IVF lists searched | fired/prompt | decision differences | gate resident KiB/unit (scorer + index + entity) | exhaustive stack KiB/unit "
        "| adapter KiB/unit (if resident) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        m, scored, lists = row["memory"], row["scored_per_prompt"], row["ivf_lists_searched"]
        searched = "-" if lists is None else ("flat index" if not lists["of"] else f"{lists['mean']:.0f} of {lists['of']:,}")
        differences = "-" if row["decision_differences"] is None else str(row["decision_differences"])
        stack = m.get("exhaustive_stack_bytes_per_unit")
        lines.append(
            f"| {row['units']:,} ({row['real_units']} + {row['synthetic_units']:,}) | {row['gate']} | "
            f"{row['gate_ms']['p50']:.1f} | {row['gate_ms']['p99']:.1f} | "
            f"{row['vs_smallest']:.2f} | {row['encoder_ms_p50']:.1f} | {row['entity_ms_p50']:.2f} | {scored['mean']:,.1f}, {scored['max']:,} | {searched} | "
            f"{row['fired_per_prompt_mean']:.2f} | {differences} | {row['gate_resident_bytes_per_unit'] / 1024:.1f} "
            f"({m['unit_scorer_bytes_per_unit'] / 1024:.0f} + {m['prefilter_index_bytes_per_unit'] / 1024:.0f} + "
            f"{(m['entity_index_bytes_per_unit'] + m['entity_matcher_bytes_per_unit']) / 1024:.1f}) | "
            f"{'-' if stack is None else f'{stack / 1024:.0f}'} | {row['adapter_bytes_per_unit'] / 1024:.0f} |"
        )
    t = result["targets"]
    g, r = t["growth_at_largest"], t["resident_bytes_per_unit"]
    growth = "met" if g["met"] else ("MISSED" if g["met"] is False else "not measured at 100,000 units")
    lines += [
        "",
        f"Targets (issue 12): prefiltered gate cost at {g['units']:,} units {g['value']:.2f}x that at the smallest size "
        f"(target: at most {g['target']}x at 100,000 "
        f"units: {growth}); resident per unit {r['value'] / 1024:.1f} KiB (target 64 KiB: {'met' if r['met'] else 'MISSED'}); "
        f"decision differences between the prefiltered and the exhaustive gate: {t['decision_differences']}.",
    ]
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
    parser.add_argument("--exhaustive-max", type=int, default=10_000, help="time the exhaustive reference gate up to this many units")
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
