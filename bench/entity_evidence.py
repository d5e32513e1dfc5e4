"""The entity evidence's rules at scale: recall on every probe family and firings on prompts about
nobody loaded, as the number of made-up people loaded grows (names.py; issue 12's finding that
sound-alike surnames fire on unrelated prompts).

    .venv/bin/python bench/entity_evidence.py                  # 3 draws of 30 demo people and 100,000 made-up names; about 3 minutes
    .venv/bin/python bench/entity_evidence.py --seeds 0        # one draw

Recall: --people demo people drawn by a seeded rule, each with build_probes' families
(--per-family probes each); a probe is found when the evidence names its own subject (positive
families) and a false positive when it does (R, N, W). Firings: EntityBank with --made-up made-up
people (bench/gate_scale.py's generator: seeded syllable names, an email, a phone number and an
address each) on --prompts prompts about other demo people and general facts; reported per prompt
and by the rule that fired (kind). Each of --seeds draws its own people, made-up names and prompts
(a result must not hang on one draw); recall is summed over the draws, firings are per draw. No
model, no encoder: names only. Writes JSON (--out).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gate_scale import choose_prompts, synthetic_matcher  # noqa: E402
from workers.engine.detector.names import EntityBank, EntityMatcher  # noqa: E402
from workers.engine.families import NEGATIVE_FAMILIES  # noqa: E402
from workers.engine.forget_set import forget_set_for_people  # noqa: E402
from workers.engine.probes import ProbeConfig, build_probes  # noqa: E402
from workers.engine.world import build_world  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "entity-evidence.json"


def run(args: argparse.Namespace, seed: int) -> dict:
    """One draw: its people's recall per family and its firings per number of made-up people."""
    started = time.perf_counter()
    world = build_world(seed=0)
    rng = random.Random(f"entity-evidence:{seed}")
    people = rng.sample(world.people, args.people)
    matchers = {}
    for person in people:
        forget = forget_set_for_people(world, [person])
        matchers[person.name] = EntityMatcher.fit([person.name], [item.answer for item in forget.items], forget.identifiers)
    bank = EntityBank(matchers)
    twice = 2 * args.per_family
    config = ProbeConfig(per_family=args.per_family, retain=twice, neighbours=twice, general=args.per_family, holdout=0, reserve_rounds=0)
    found, total = collections.Counter(), collections.Counter()
    for person in people:
        probes = build_probes(world, [person], config=config).probes
        for probe, evidence in zip(probes, bank.evidence([probe.spec.gate_text() for probe in probes])):
            total[probe.set] += 1
            found[probe.set] += person.name in evidence
    recall = {family: {"found": found[family], "of": total[family], "false_positive": family in NEGATIVE_FAMILIES} for family in sorted(total)}

    names_rng = random.Random(f"gate-scale-names:{seed}")
    made_up = {f"made-up-{i}": synthetic_matcher(names_rng) for i in range(args.made_up)}
    prompts = choose_prompts(world, set(), args.prompts, random.Random(f"entity-evidence-prompts:{seed}"))
    firings = []
    for size in args.sizes:
        made = EntityBank(dict(list(made_up.items())[:size]))
        evidence = made.evidence(prompts)
        kinds = collections.Counter(e.kind for found_here in evidence for e in found_here.values())
        firings.append(
            {
                "made_up_units": size,
                "prompts_firing": sum(bool(e) for e in evidence),
                "units_fired": sum(len(e) for e in evidence),
                "by_kind": dict(kinds),
                "examples": [p for p, e in zip(prompts, evidence) if e][:5],
            }
        )
    return {
        "seed": seed,
        "people": [p.name for p in people],
        "recall": recall,
        "prompts": len(prompts),
        "firings": firings,
        "seconds": round(time.perf_counter() - started, 1),
    }


def summed_recall(draws: list[dict]) -> dict:
    """Each family's found and total over every draw."""
    total = {}
    for draw in draws:
        for family, row in draw["recall"].items():
            into = total.setdefault(family, {"found": 0, "of": 0, "false_positive": row["false_positive"]})
            into["found"] += row["found"]
            into["of"] += row["of"]
    return dict(sorted(total.items()))


def markdown(result: dict) -> str:
    seeds = ", ".join(str(draw["seed"]) for draw in result["draws"])
    lines = [f"| family | subject found (draws {seeds}) | kind |", "|---|---|---|"]
    for family, row in result["recall"].items():
        lines.append(f"| {family} | {row['found']} of {row['of']} | {'false positive' if row['false_positive'] else 'recall'} |")
    prompts = result["draws"][0]["prompts"]
    lines += ["", f"| draw | made-up units loaded | prompts firing (of {prompts}) | units fired | by rule |", "|---|---|---|---|---|"]
    for draw in result["draws"]:
        for row in draw["firings"]:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(row["by_kind"].items())) or "-"
            lines.append(f"| {draw['seed']} | {row['made_up_units']:,} | {row['prompts_firing']} | {row['units_fired']} | {kinds} |")
    lines.append(f"\n{result['seconds']:.0f} s. Command: `{result['command']}`.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--per-family", type=int, default=8)
    parser.add_argument("--made-up", type=int, default=100_000)
    parser.add_argument("--sizes", type=lambda s: sorted({int(x) for x in s.split(",") if x.strip()}), default=[1_000, 10_000, 100_000])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",") if x.strip()], default=[0, 1, 2], help="draws, one per seed (default 0,1,2)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if max(args.sizes) > args.made_up or args.people < 1 or not args.seeds:
        parser.error("--sizes must not exceed --made-up, --people must be at least 1, and name at least one seed")
    started = time.perf_counter()
    draws = [run(args, seed) for seed in args.seeds]
    result = {
        "command": "bench/entity_evidence.py " + " ".join(args.argv),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "argv")},
        "recall": summed_recall(draws),
        "draws": draws,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
