"""Consolidation benchmark (issue 12, item 3): do N units consolidated into one group forget what
they forgot served apart, and what does the group cost and save?

    .venv/bin/python bench/consolidation.py                       # demo model, 4 members
    .venv/bin/python bench/consolidation.py --model tiny --members 2

N requests, one person each, drawn with --seed by bench/unlearning.py's rule (never chosen by
their results), trained one after the other as the pipeline does (each adapter orthogonal to the
earlier ones). Then one certification probe suite with all N people as the forget set (F and every
outsider family, the certification phrasings) is answered three times: by the N units served
apart, and by one group unit of each construction (workers/engine/consolidation.py): blocks
(served member by member) and sum (the summed delta at its numerical rank, served where any member
fires). Reported per configuration: the leak per family (served answers, any value), the retain
ratios, the union FPR, the verdict, and the share of F answers that are the clean refusal; per
group: rank, parameters, the largest relative error of the construction and its time.
Writes bench/results/consolidation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import resolve_model  # noqa: E402
from bench.unlearning import draw_stream  # noqa: E402
from workers.engine.base_model import load_base_model  # noqa: E402
from workers.engine.certificate import evaluate_units, probe_fits  # noqa: E402
from workers.engine.consolidation import CONSTRUCTIONS, write_group  # noqa: E402
from workers.engine.demo_model import load_demo_world  # noqa: E402
from workers.engine.detector import load_encoder  # noqa: E402
from workers.engine.families import POSITIVE_FAMILIES  # noqa: E402
from workers.engine.pipeline import train_unit  # noqa: E402
from workers.engine.probes import build_probes, probe_config_for  # noqa: E402
from workers.engine.prompting import REFUSALS  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def summary(certificate: dict, apart: dict | None) -> dict:
    answers = certificate["personal_data"]["answers"]
    reference = apart["personal_data"]["answers"] if apart is not None else answers
    f_rows = [row for row in answers if row.get("set") == "F"]
    clean = sum(1 for row in f_rows if (row.get("gated_answer") or "").strip() in REFUSALS)
    rules = {rule["name"]: rule for rule in certificate["rules"]}
    return {
        "verdict": certificate["verdict"],
        "leak": {name: {k: certificate["leak"][name]["gated"].get(k) for k in ("k", "n", "rate")} for name in POSITIVE_FAMILIES if name in certificate["leak"]},
        "retain": {name: {k: rules[f"retain {name}"].get(k) for k in ("value", "lower95", "n")} for name in ("R", "N", "W") if f"retain {name}" in rules},
        "union_fpr": {k: rules["union FPR"].get(k) for k in ("value", "upper95", "n")},
        "clean_refusals_on_F": {"clean": clean, "of": len(f_rows)},
        "answers_as_apart": {"same": sum(a["gated_answer"] == b["gated_answer"] for a, b in zip(answers, reference)), "of": len(answers)},
        "failing": certificate["failing_families"],
        "seconds": certificate["timings"]["total_seconds"],
    }


def run(args: argparse.Namespace) -> dict:
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    model_dir = resolve_model(args.model, log)
    base = load_base_model(model_dir, device="cpu")
    encoder = load_encoder(device="cpu")
    world = load_demo_world(model_dir)
    stream = draw_stream(world, args.members, args.seed)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    units, train_seconds = [], []
    for request in stream:
        started = time.perf_counter()
        out = work / request.unit_id
        reused = out.exists()  # trained by an earlier run with the same --work (same draw and seed)
        if not reused:
            train_unit(base, request.forget, out_dir=out, previous_units=units, encoder=encoder, unit_id=request.unit_id)
        units.append(out)
        train_seconds.append(None if reused else round(time.perf_counter() - started, 1))
        log(f"[{request.index}] {request.unit_id}: {'reused' if reused else f'trained in {train_seconds[-1]} s'}")
    groups = {}
    for construction in CONSTRUCTIONS:
        group_dir = work / f"group-{construction}"
        if group_dir.exists():
            shutil.rmtree(group_dir)
        started = time.perf_counter()
        group = write_group(group_dir, units, construction=construction)
        record = group.manifest.extra["group"]
        groups[construction] = {k: record[k] for k in ("rank", "ranks_summed", "numerical_rank", "parameters", "max_relative_error")} | {
            "consolidate_seconds": round(time.perf_counter() - started, 2),
            "served": record["served"],
        }
        log(f"group {construction}: rank {record['rank']} (summed {record['ranks_summed']}), error {record['max_relative_error']:.1e}")
    people = [r.person for r in stream]
    probes = build_probes(world, people, config=probe_config_for(model_dir, seed=args.seed, split="cert"), unit_id="group", fits=probe_fits(base))
    results, apart = {}, None
    for name, dirs in (("apart", units), *((c, [work / f"group-{c}"]) for c in CONSTRUCTIONS)):
        certificate = evaluate_units(base, dirs, probes, encoder=encoder, bootstrap_rounds=100).to_json()
        results[name] = summary(certificate, apart)
        apart = apart or certificate
        log(f"{name}: {results[name]['verdict']} in {results[name]['seconds']:.0f} s")
    return {
        "benchmark": "consolidation",
        "command": "bench/consolidation.py " + " ".join(args.argv),
        "conditions": {"model": args.model, "members": args.members, "seed": args.seed, "split": "cert", "device": "cpu"},
        "train_seconds": train_seconds,
        "groups": groups,
        "served": results,
    }


def markdown(result: dict) -> str:
    c = result["conditions"]
    lines = [f"`{result['command']}`: {c['members']} members on the {c['model']} model, one certification probe suite for all of them", ""]
    for name, g in result["groups"].items():
        lines.append(
            f"- group `{name}` ({g['served']}): rank {g['rank']} (members' ranks summed {g['ranks_summed']}), "
            f"{g['parameters']['group']:,} parameters (members {g['parameters']['members']:,}), "
            f"largest relative error {g['max_relative_error']:.1e}, built in {g['consolidate_seconds']} s"
        )
    families = list(result["served"]["apart"]["leak"])
    lines += [
        "",
        "| served | verdict | " + " | ".join(f"leak {f}" for f in families) + " | retain R / N / W | union FPR | clean refusals on F | answers as apart |",
        "|---|---|" + "---|" * len(families) + "---|---|---|---|",
    ]
    for name, s in result["served"].items():
        leaks = " | ".join(f"{v['k']}/{v['n']}" for v in s["leak"].values())
        retain = " / ".join(f"{s['retain'][k]['value']:.3f}" if s["retain"].get(k, {}).get("value") is not None else "-" for k in ("R", "N", "W"))
        fpr, clean, same = s["union_fpr"], s["clean_refusals_on_F"], s["answers_as_apart"]
        lines.append(
            f"| {name} | {s['verdict'].upper()} | {leaks} | {retain} | {fpr['value']:.3f} (<= {fpr['upper95']:.3f}) | "
            f"{clean['clean']}/{clean['of']} | {same['same']}/{same['of']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, or (--table FILE.json) print the table of an earlier run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="demo, tiny or a model directory")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-consolidation"), help="where the units are trained (reused if present)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "consolidation.json")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table", type=Path, metavar="FILE.json", help="only rewrite the table (.md) of an earlier run's JSON")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if args.table is not None:
        result = json.loads(args.table.read_text())
        args.table.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))
        return result
    if args.members < 1:
        parser.error("--members must be at least 1")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
