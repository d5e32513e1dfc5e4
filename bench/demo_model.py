"""Benchmark of the demo-model build: the full "demo" preset from scratch, no cache.

    .venv/bin/python bench/demo_model.py                 # the demo preset, Llama (a few minutes)
    .venv/bin/python bench/demo_model.py --preset tiny --arch gpt2

Builds into a fresh temporary directory (the cache is never read), then reports build wall time and
CPU time, parameters, epochs, and recall with greedy decoding (generation.generate_answers) on every
question of the world (the build itself samples the held-out paraphrases):
"contains" = the answer contains the gold value (the leak check of EVAL.md), "exact" = the answer is
the gold value. Question sets: trained phrasings (target >= 95% on the demo preset), held-out
paraphrases (informative), general facts (trained and held-out phrasings), holdout people (never
seen: anything above 0 is guessing, e.g. an email built from a name). Then the time a second call
takes to reuse the build. The machine's load average is recorded beside the timings because CPU
timings on shared cores are noisy. Prints a markdown table; writes bench/results/demo_model.json.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: spinning threads are several times slower on shared, busy cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers.utils import logging as hf_logging  # noqa: E402

from workers.engine.base_model import load_base_model  # noqa: E402
from workers.engine.demo_model import (  # noqa: E402
    DemoModelConfig,
    build_demo_model,
    evaluate_demo_model,
    load_demo_world,
    read_manifest,
)

hf_logging.disable_progress_bar()  # our own output only

RESULTS = Path(__file__).resolve().parent / "results" / "demo_model.json"
ROWS = (
    ("trained", "trained phrasings (people)"),
    ("heldout", "held-out paraphrases (people)"),
    ("facts", "general facts, trained phrasings"),
    ("facts_heldout", "general facts, held-out phrasings"),
    ("holdout_people", "holdout people (never trained)"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("demo", "tiny"), default="demo")
    parser.add_argument("--arch", choices=("llama", "gpt2"), default="llama")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default: {RESULTS})")
    args = parser.parse_args()

    config = DemoModelConfig.preset_config(args.preset, arch=args.arch, seed=args.seed)
    checks: list[str] = []

    def progress(event) -> None:
        if event.stage == "check":
            checks.append(f"epoch {event.epoch}: {event.message}")
            print(f"  {checks[-1]}  ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="demo-model-bench-") as tmp:
        started, cpu_started = time.perf_counter(), time.process_time()
        path = build_demo_model(config, cache_dir=tmp, progress=progress)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        load_after = os.getloadavg()
        reuse_started = time.perf_counter()
        build_demo_model(config, cache_dir=tmp)
        reuse = time.perf_counter() - reuse_started
        manifest = read_manifest(path)
        # The build's manifest samples the held-out paraphrases; ask every question here.
        eval_started = time.perf_counter()
        base = load_base_model(path, device="cpu")
        world = load_demo_world(path)
        metrics = {k: r.to_json() for k, r in evaluate_demo_model(base.model, base.tokenizer, world, full=True).items()}
        eval_seconds = time.perf_counter() - eval_started

    training = manifest["training"]
    lines = [
        f"demo model benchmark: preset {config.preset}, arch {config.arch}, seed {config.seed}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| build wall time (world, tokenizer, training, recall check, save) | {wall:.0f} s |",
        f"| build CPU time (all threads) | {cpu:.0f} s |",
        f"| training time | {training['train_seconds']:.0f} s |",
        f"| epochs run (stopped when memorised: {'yes' if training['memorised_at_epoch'] else 'no'}) | {training['epochs_run']} |",
        f"| optimiser steps | {training['steps']} |",
        f"| parameters | {manifest['parameters'] / 1e6:.2f} M |",
        f"| reuse of the finished build | {reuse * 1000:.0f} ms |",
        f"| full evaluation below (not part of the build) | {eval_seconds:.0f} s |",
        f"| torch threads / load average 1 min before, after | {torch.get_num_threads()} / {load_before[0]:.1f}, {load_after[0]:.1f} |",
        "",
        "| questions | n | contains gold value | exact answer |",
        "|---|---|---|---|",
    ]
    for key, label in ROWS:
        m = metrics[key]
        lines.append(f"| {label} | {m['n']} | {m['contains']:.1%} | {m['exact']:.1%} |")
    lines += ["", "| attribute | trained phrasings | held-out paraphrases |", "|---|---|---|"]
    for attr, value in metrics["trained"]["by_attribute"].items():
        lines.append(f"| {attr} | {value:.1%} | {metrics['heldout']['by_attribute'].get(attr, 0):.1%} |")
    table = "\n".join(lines)
    print(table)

    result = {
        "benchmark": "demo_model",
        "config": config.to_json(),
        "cache_key": manifest["key"],
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "reuse_seconds": round(reuse, 4),
        "full_evaluation_seconds": round(eval_seconds, 2),
        "build_manifest_metrics": manifest["metrics"],
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "parameters": manifest["parameters"],
        "training": training,
        "metrics": metrics,
        "versions": manifest["versions"],
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
