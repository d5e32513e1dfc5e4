"""Adapters on demand: what a gateway pays when a fired unit's adapter is not resident.

    .venv/bin/python bench/adapters_on_demand.py                 # tiny demo model, 2 real units, 20 rounds
    .venv/bin/python bench/adapters_on_demand.py --model demo --rounds 30

Two real units (detector + adapter trained on one demo person each) are written to disk and loaded
into two GatewayEngines over the same base model: one with every adapter resident (budget 0), one
with room for a single adapter (budget 1). Each round asks, one prompt per call: person A's
question, then person B's, then B's again. On the budget-1 engine the first two calls are cold (the
adapter was dropped for the other person's and is loaded from the verified local copy, every digest
checked), the third is warm. Reported: end-to-end latency p50/p95 of cold and warm calls and of the
same calls with every adapter resident, and the adapter load time the gate decision carries.
Answers are compared call by call: on demand must answer exactly as all-resident. JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=("tiny", "demo"), help="demo model preset (default tiny)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of three calls (default 20)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "adapters-on-demand.json")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be positive")

    import os

    import django
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.config.settings")
    django.setup()  # the gateway's error types are the service's
    from demo_stack import demo_model_dir

    from service.inference.engine import GatewayEngine
    from service.inference.protocol import Prompt
    from workers.engine.base_model import load_base_model
    from workers.engine.detector import load_encoder
    from workers.engine.forget_set import ForgetSet, forget_set_for_people
    from workers.engine.pipeline import train_unit
    from workers.engine.world import load_world

    model_dir = demo_model_dir(args.model)
    base = load_base_model(model_dir, device="cpu")
    encoder = load_encoder(device="cpu")
    world = load_world(model_dir / "world.json")
    a = world.people[0]
    b = next(p for p in world.people[1:] if p not in world.neighbours(a) and not world.shared(a, p))  # the rule: the first person, the first unrelated one
    scratch = Path(tempfile.mkdtemp(prefix="bench-on-demand-"))
    units = []
    for index, person in enumerate((a, b)):
        forget = forget_set_for_people(world, [person])
        units.append(train_unit(base, ForgetSet(forget.items, subjects=(person.name,)), out_dir=scratch / f"unit-{index}", encoder=encoder))

    engines = {budget: GatewayEngine(base, encoder, max_batch=1, adapter_budget=budget) for budget in (0, 1)}
    for engine in engines.values():
        for path in units:
            engine.load_unit(path)
    questions = [f"Which city does {a.name} live in?", f"Which city does {b.name} live in?", f"Which city does {b.name} live in?"]
    kinds = ["cold", "cold", "warm"]
    samples: dict[str, list[float]] = {"cold": [], "warm": [], "resident_cold": [], "resident_warm": [], "load_ms": []}
    mismatches = 0
    for _ in range(args.rounds):
        for question, kind in zip(questions, kinds):
            timings = {}
            answers = {}
            for budget in (1, 0):  # back to back, the same call
                started = time.perf_counter()
                [completion] = engines[budget].complete([Prompt("question", question)], max_tokens=args.max_tokens, timeout=120)
                timings[budget] = time.perf_counter() - started
                answers[budget] = (completion.text, completion.weights)
                if budget == 1 and kind == "cold":
                    samples["load_ms"].append(1000.0 * completion.adapter_load_seconds)
            mismatches += answers[0] != answers[1]
            samples[kind].append(1000.0 * timings[1])
            samples[f"resident_{kind}"].append(1000.0 * timings[0])
    for engine in engines.values():
        engine.close()

    summary = {
        name: {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(pct(values, 95), 2), "n": len(values)}
        for name, values in samples.items()
        if values
    }
    result = {
        "benchmark": "adapters_on_demand",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_dir.name,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "summary": summary,
        "answers_differing_from_all_resident": mismatches,
        "adapter_bytes": sum(f.stat().st_size for f in (units[0] / "adapter").iterdir()),
        "note": "budget 1 against budget 0 on the same base model, one torch thread, calls back to back",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nAdapters on demand ({model_dir.name}, {args.rounds} rounds, max_tokens {args.max_tokens}):\n")
    print("| call | budget 1 p50 ms | budget 1 p95 ms | all resident p50 ms | adapter load p50 ms |")
    print("|---|---|---|---|---|")
    cold, warm, load = summary["cold"], summary["warm"], summary["load_ms"]
    print(f"| cold (adapter loaded) | {cold['p50_ms']} | {cold['p95_ms']} | {summary['resident_cold']['p50_ms']} | {load['p50_ms']} |")
    print(f"| warm (adapter resident) | {warm['p50_ms']} | {warm['p95_ms']} | {summary['resident_warm']['p50_ms']} | 0 |")
    print(f"\nanswers differing from all-resident: {mismatches}; adapter size {result['adapter_bytes']} bytes; written to {args.out}")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
