"""Benchmark of the O3 per-request detector: shared backbone vs per-request LoRA (two CEL variants).

    .venv/bin/python bench/detector.py            # about 3 minutes on 2 busy CPU cores
    .venv/bin/python bench/detector.py --people 4 --bank-units 1,10,100,1000,5000

Forget sets come from the demo world (workers.engine.world): for each target person, D_t is
the trained-template questions plus the profile text. Probes (EVAL.md):
  positives  P  held-out paraphrases,  D  paraphrases padded with unrelated text before and after;
  negatives  R  other people's questions,  N  hard neighbours (same surname, city or employer),
             W  general questions about no person,  Rpad  R padded like D.
Reported per mode (mean over the target people): AUROC and FPR at 95% TPR of the scores u(x),
the fraction of positives and of negatives with gate weight w > 0.5, fit seconds and scoring
milliseconds per prompt. Then the bank's gate cost per prompt with 1 to 1000 requests: the
encoder pass plus the stacked scoring math (requests beyond the fitted ones are clones of them:
same arrays, same cost). Prints markdown tables and writes bench/results/detector.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.engine.detector import DetectorBank, DetectorConfig, load_encoder, train_detector  # noqa: E402
from workers.engine.detector.scorer import ScorerStack, segment_max  # noqa: E402
from workers.engine.metrics import auroc, fpr_at_tpr, fraction_above  # noqa: E402
from workers.engine.world import build_world  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "detector.json"

FILLER = (
    "The weather was mild this spring and the gardens along the river were full of tulips.",
    "Please also recommend a good recipe for banana bread with walnuts and cinnamon.",
    "My train was delayed again this morning, so I read a long article about volcanoes.",
    "I am planning a short holiday by the sea and still need to buy a new suitcase.",
    "Our team meeting moved to Thursday afternoon because the projector was broken.",
    "The library downtown has extended its opening hours during the exam period.",
    "Yesterday I finally finished the puzzle with a thousand pieces of a mountain lake.",
    "Remember to water the plants on the balcony while I am away next week.",
)

MODES: dict[str, DetectorConfig] = {
    "shared, last layer (default)": DetectorConfig(),
    "shared, all layers": DetectorConfig(layers=None),
    "lora faithful, all layers (reference)": DetectorConfig(mode="lora", cel_variant="faithful", layers=None),
    "lora corrected, all layers": DetectorConfig(mode="lora", cel_variant="corrected", layers=None),
    "lora faithful, last layer": DetectorConfig(mode="lora", cel_variant="faithful"),
    "lora corrected, last layer": DetectorConfig(mode="lora", cel_variant="corrected"),
}


def pad(question: str, rng: random.Random) -> str:
    before, after = rng.sample(FILLER, 2), rng.sample(FILLER, 2)
    return " ".join(before + [question] + after)


def probe_sets(world, person, rng: random.Random, per_set: int = 20) -> dict[str, list[str]]:
    """Forget texts and probe sets for one target person."""

    def sample(items: list[str], k: int) -> list[str]:
        return rng.sample(items, min(k, len(items)))

    others = [p for p in world.people if p.name != person.name and p not in world.neighbours(person)]
    other_questions = [qa.question for p in rng.sample(others, 10) for qa in world.questions(p, "all")]
    neighbour_questions = [qa.question for p in world.neighbours(person) for qa in world.questions(p, "all")]
    paraphrases = [qa.question for qa in world.questions(person, "heldout")]
    negatives_r = sample(other_questions, per_set)
    return {
        "forget": [qa.question for qa in world.questions(person, "trained")] + [world.profile(person)],
        "P": sample(paraphrases, per_set),
        "D": [pad(q, rng) for q in sample(paraphrases, per_set // 2)],
        "R": negatives_r,
        "N": sample(neighbour_questions, per_set),
        "W": sample([qa.question for qa in world.fact_questions(split="all")], per_set),
        "Rpad": [pad(q, rng) for q in negatives_r[: per_set // 2]],
    }


def evaluate(detector, probes: dict[str, list[str]]) -> dict:
    groups = ("P", "D", "R", "N", "W", "Rpad")
    prompts = [text for group in groups for text in probes[group]]
    start = time.perf_counter()
    scores = detector.scores(prompts)
    score_ms = 1000 * (time.perf_counter() - start) / len(prompts)
    weights = detector.weights_from_scores(scores)
    by_group, at = {}, 0
    for group in groups:
        n = len(probes[group])
        by_group[group] = (scores[at : at + n], weights[at : at + n])
        at += n
    pos_u = np.concatenate([by_group[g][0] for g in ("P", "D")])
    neg_u = np.concatenate([by_group[g][0] for g in ("R", "N", "W", "Rpad")])
    pos_w = np.concatenate([by_group[g][1] for g in ("P", "D")])
    neg_w = np.concatenate([by_group[g][1] for g in ("R", "N", "W", "Rpad")])
    return {
        "auroc": auroc(pos_u, neg_u),
        "fpr_at_95tpr": fpr_at_tpr(pos_u, neg_u, 0.95),
        "pos_w_gt_half": fraction_above(pos_w),
        "neg_w_gt_half": fraction_above(neg_w),
        "neg_w_zero": float(np.mean(neg_w == 0)),
        "w_gt_half_by_set": {g: fraction_above(w) for g, (_, w) in by_group.items()},
        "score_ms_per_prompt": score_ms,
    }


def bench_modes(encoder, world, targets, modes: dict[str, DetectorConfig]) -> dict:
    results = {}
    for name, config in modes.items():
        runs = []
        for index, person in enumerate(targets):
            probes = probe_sets(world, person, random.Random(index))
            start = time.perf_counter()
            detector = train_detector(probes["forget"], config, encoder)
            fit_s = time.perf_counter() - start
            runs.append({"person": person.name, "fit_s": fit_s, **evaluate(detector, probes)})
        keys = ("auroc", "fpr_at_95tpr", "pos_w_gt_half", "neg_w_gt_half", "neg_w_zero", "fit_s", "score_ms_per_prompt")
        results[name] = {
            "config": config.to_dict(),
            "mean": {key: float(np.mean([run[key] for run in runs])) for key in keys},
            "w_gt_half_by_set": {g: float(np.mean([run["w_gt_half_by_set"][g] for run in runs])) for g in runs[0]["w_gt_half_by_set"]},
            "runs": runs,
        }
        print(f"  {name}: {results[name]['mean']}", file=sys.stderr)
    return results


def bench_bank(encoder, world, config: DetectorConfig, unit_counts: list[int], fitted: int, repeats: int) -> dict:
    """Gate cost per prompt vs number of requests, as its two parts: the encoder pass over the
    prompts' windows (the same for any number of requests) and the stacked scoring math (what
    grows with requests), each the minimum of `repeats` timings; total = encoder + scoring.
    Timing the parts apart keeps the ratio readable on a busy machine, where end-to-end timings
    swing by more than the scoring costs. Requests past `fitted` are clones (same arrays, same cost)."""
    rng = random.Random(1)
    detectors = [train_detector(probe_sets(world, p, rng)["forget"], config, encoder) for p in world.people[:fitted]]
    prompts = [qa.question for p in world.people[fitted : fitted + 40] for qa in world.questions(p, "heldout")[:1]]
    prompts += [pad(q, rng) for q in prompts[:24]]
    windows, owner = config.split_windows(prompts)
    layers = encoder.resolve_layers(config.layers)

    def best_ms(run) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return 1000 * min(times) / len(prompts)

    encoder_ms = best_ms(lambda: encoder.layer_features(windows, layers, config.batch_size))
    features = encoder.layer_features(windows, layers, config.batch_size)
    rows = []
    for count in unit_counts:
        bank = DetectorBank(encoder, config)
        bank.add_many({f"unit-{i}": detectors[i % len(detectors)] for i in range(count)})
        assert bank.score(prompts[:2]).weights.shape == (2, count)
        stack = ScorerStack([detectors[i % len(detectors)].unit for i in range(count)])
        scoring_ms = best_ms(lambda: stack.weights(segment_max(stack.scores(features), owner, len(prompts))))
        rows.append(
            {
                "units": count,
                "fitted_units": min(count, fitted),
                "synthetic_clones": max(0, count - fitted),
                "scoring_ms_per_prompt": scoring_ms,
                "total_ms_per_prompt": encoder_ms + scoring_ms,
            }
        )
    for row in rows:
        row["ratio_to_1_unit"] = row["total_ms_per_prompt"] / rows[0]["total_ms_per_prompt"]
    return {
        "prompts": len(prompts),
        "windows_per_prompt": len(windows) / len(prompts),
        "encoder_ms_per_prompt": encoder_ms,
        "layers": list(layers),
        "rows": rows,
    }


def markdown(modes: dict, banks: list[dict]) -> str:
    lines = [
        "| mode | AUROC | FPR@95%TPR | pos w>0.5 | neg w>0.5 | neg w=0 | fit s | score ms/prompt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in modes.items():
        m = result["mean"]
        lines.append(
            f"| {name} | {m['auroc']:.3f} | {m['fpr_at_95tpr']:.3f} | {m['pos_w_gt_half']:.2f} | "
            f"{m['neg_w_gt_half']:.3f} | {m['neg_w_zero']:.2f} | {m['fit_s']:.1f} | {m['score_ms_per_prompt']:.1f} |"
        )
    lines += ["", "w > 0.5 by probe set (mean over people):", "", "| mode | P | D | R | N | W | Rpad |", "|---|---|---|---|---|---|---|"]
    for name, result in modes.items():
        w = result["w_gt_half_by_set"]
        lines.append(f"| {name} | " + " | ".join(f"{w[g]:.2f}" for g in ("P", "D", "R", "N", "W", "Rpad")) + " |")
    for bank in banks:
        lines += [
            "",
            f"Bank, layers {bank['layers']} ({bank['prompts']} prompts, {bank['windows_per_prompt']:.2f} "
            f"windows/prompt; encoder pass {bank['encoder_ms_per_prompt']:.2f} ms/prompt for any number of units):",
            "",
            "| units | of which synthetic clones | scoring ms/prompt | total ms/prompt | x 1 unit |",
            "|---|---|---|---|---|",
        ]
        for row in bank["rows"]:
            lines.append(
                f"| {row['units']} | {row['synthetic_clones']} | {row['scoring_ms_per_prompt']:.3f} | "
                f"{row['total_ms_per_prompt']:.2f} | {row['ratio_to_1_unit']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2, help="target people (one request each) per mode")
    parser.add_argument("--bank-units", default="1,10,100,1000", help="request counts for the bank timing")
    parser.add_argument("--bank-fitted", type=int, default=5, help="really fitted bank requests (the rest are clones)")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (the minimum is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default); 1 keeps timings stable on a shared small CPU")
    parser.add_argument("--modes", default="", help="semicolon-separated subset of: " + "; ".join(MODES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = load_encoder()
    world = build_world(seed=0)
    rng = random.Random(0)
    # Targets with hard neighbours, so N is never empty.
    targets = rng.sample([p for p in world.people if len(world.neighbours(p)) >= 2], args.people)
    modes = {k: v for k, v in MODES.items() if not args.modes or k in args.modes.split(";")}
    encoder.layer_features(["warm up the encoder before anything is timed"], (1,))
    started = time.perf_counter()
    mode_results = bench_modes(encoder, world, targets, modes)
    unit_counts = [int(x) for x in args.bank_units.split(",")]
    banks = [bench_bank(encoder, world, config, unit_counts, args.bank_fitted, args.repeats) for config in (DetectorConfig(), DetectorConfig(layers=None))]
    table = markdown(mode_results, banks)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/detector.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "device": str(encoder.device),
                "torch_threads": torch.get_num_threads(),
                "targets": [p.name for p in targets],
                "seconds": time.perf_counter() - started,
                "modes": mode_results,
                "banks": banks,
                "table": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
