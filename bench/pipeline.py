"""Pipeline benchmark: time from a reviewer's approval to an active erasure, per request, on the demo.

    .venv/bin/python bench/pipeline.py                       # 3 requests, demo model, embedded defaults
    .venv/bin/python bench/pipeline.py --preset tiny --requests 3
    .venv/bin/python bench/pipeline.py --database-url postgres://postgres@127.0.0.1:5432/forget_bench_pipeline \\
        --broker-url redis://127.0.0.1:6379/14               # PostgreSQL + Redis instead (both dropped/flushed first)

What one run does (bounded: --timeout per request; everything it starts is stopped at the end):
  1. a throwaway data folder under var/ with the embedded defaults (SQLite database, SQLAlchemy-on-
     SQLite Celery broker, filesystem unit store), or the PostgreSQL database and Redis broker given;
     migrate, load the demo corpus, create an API client (create, read, trusted_identity) and a reviewer;
  2. start a real Celery worker (`-Q default,gpu --pool solo --concurrency 1`, as bin/demo does) and
     a real `manage.py run_gateway` (--poll-seconds 1, as bin/demo does);
  3. for each of --requests people, one after the other: file the request through the service the
     REST API calls (trusted identity: verified at once), approve it as the reviewer (the approval
     queues the job after its commit), and wait until the gateway has confirmed it (`active`);
  4. read the phases back from the rows the pipeline wrote (the job's timings, the unit's manifest,
     the registry's activation event, the request's effective time) and print a table; JSON to --out.

The phases, in seconds, of one request (approval -> active):
  queue       job sent to the broker -> a worker claimed it (includes the broker's polling)
  forget set  built and frozen (facts, evidence, corpus search, demo probes)
  model check the base model asked the evidence and probe questions ("is it in the model?")
  detector    the OOD detector fitted (from the unit's manifest)
  adapter     the orthogonal LoRA trained (from the unit's manifest)
  certificate the evaluation (probe sets, gate, membership inference, truth ratio)
  register    digests checked, unit stored, recorded and activated in the registry
  pick-up     activation in the registry -> the gateway's confirmation (poll + fetch + verify + load)
  other       the rest: enqueueing after commit, loading the model in the worker (first request),
              writing the unit, fetching earlier units, status changes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo_stack import DemoStack, demo_model_dir, free_port, log, machine  # noqa: E402

PHASES = ("queue", "forget_set", "model_check", "detector", "adapter", "certificate", "register", "pickup", "other")
LABELS = {
    "queue": "queue",
    "forget_set": "forget set",
    "model_check": "model check",
    "detector": "detector",
    "adapter": "adapter",
    "certificate": "certificate",
    "register": "register",
    "pickup": "pick-up",
    "other": "other",
}


def choose_people(world, preset: str, count: int, given: list[str]) -> list[str]:
    """The story's people first (drawn by its rule, story_people), then the people with the fewest
    neighbours who are no neighbour of anyone chosen."""
    from service.unlearning.management.commands.run_demo_story import story_people

    chosen = list(given) or list(story_people(world)[0])
    for person in sorted(world.people, key=lambda p: (len(world.neighbours(p, by=("surname",))), len(world.neighbours(p)))):
        if len(chosen) >= count:
            break
        if person.name in chosen or any(person.name in {n.name for n in world.neighbours(other)} for other in chosen):
            continue
        chosen.append(person.name)
    return chosen[:count]


def file_and_approve(person, client, reviewer, index: int):
    from service.accounts.roles import actor_for_client, actor_for_user
    from service.requests.services import request_approve, request_create_api

    attrs = person.attributes
    request, _ = request_create_api(
        actor=actor_for_client(client),
        idempotency_key=f"bench-pipeline-{index}",
        name=person.name,
        email=attrs.get("email") or f"person{index}@example.com",
        regulation="gdpr",
        facts=[f"{person.name} lives in {attrs['city']}.", f"{person.name} works for {attrs['employer']}."],
        evidence_prompts=[f"Which city does {person.name} live in?"],
    )
    return request_approve(actor=actor_for_user(reviewer), request_id=request.pk)


def measure(request_id) -> dict:
    """The phases of one finished request, from the rows the pipeline wrote."""
    from adapters_store.models import ActivationEvent
    from service.requests.models import ErasureRequest
    from service.unlearning.models import UnlearningJob

    request = ErasureRequest.objects.get(pk=request_id)
    job = UnlearningJob.objects.filter(request=request).order_by("-attempt").first()
    timings = dict(job.timings or {}) if job else {}
    unit = next((u for u in (job.certificate or {}).get("units", []) if u.get("unit_id") == job.unit_id), {}) if job else {}
    unit_timings = unit.get("timings", {})
    activated = ActivationEvent.objects.filter(version__unit_id=job.unit_id, action="activated").order_by("at").first() if job and job.unit_id else None
    row = {
        "reference": request.reference,
        "status": request.status,
        "unit_id": job.unit_id if job else None,
        "failure_reason": job.failure_reason if job and job.failure_reason else None,
        "approved_at": request.decided_at.isoformat() if request.decided_at else None,
        "effective_at": request.effective_at.isoformat() if request.effective_at else None,
        "queue": timings.get("queue_seconds"),
        "forget_set": timings.get("forget_set_seconds"),
        "model_check": timings.get("model_check_seconds"),
        "detector": unit_timings.get("detector_seconds"),
        "adapter": unit_timings.get("adapter_seconds"),
        "train_phase": timings.get("train_seconds"),
        "certificate": timings.get("evaluate_seconds"),
        "register": timings.get("register_seconds"),
        "pickup": (request.effective_at - activated.at).total_seconds() if request.effective_at and activated else None,
        "certificate_passed": job.certificate_passed if job else None,
        "probes": ((job.certificate or {}).get("probes") or {}).get("sizes") if job else None,
    }
    end = request.effective_at or (job.finished_at if job else None)
    row["total"] = (end - request.decided_at).total_seconds() if end and request.decided_at else None
    if row["total"] is not None:
        known = sum(row[k] or 0.0 for k in PHASES if k != "other")
        row["other"] = round(row["total"] - known, 3)
    for key in (*PHASES, "total", "train_phase"):
        if isinstance(row.get(key), float):
            row[key] = round(row[key], 3)
    return row


def fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(rows: list[dict]) -> str:
    head = "| # | request | status | approval -> active s | " + " | ".join(f"{LABELS[p]} s" for p in PHASES) + " |"
    lines = [head, "|" + "---|" * (4 + len(PHASES))]
    for i, row in enumerate(rows, 1):
        lines.append(f"| {i} | {row['reference']} | {row['status']} | {fmt(row['total'])} | " + " | ".join(fmt(row[p]) for p in PHASES) + " |")
    done = [r for r in rows if r["status"] == "active"]
    if len(done) > 1:
        med = {k: statistics.median([r[k] for r in done if r[k] is not None]) for k in ("total", *PHASES) if any(r[k] is not None for r in done)}
        lines.append("| median | | | " + fmt(med.get("total")) + " | " + " | ".join(fmt(med.get(p)) for p in PHASES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3, help="requests, one after the other (default 3)")
    parser.add_argument(
        "--preset",
        default="demo",
        choices=("demo", "tiny", "smol"),
        help="demo model preset (default demo, what bin/demo serves; smol: SmolLM2 fine-tuned on the demo world)",
    )
    parser.add_argument("--people", default="", help="comma-separated names (default: the story's people, then people with few neighbours)")
    parser.add_argument("--database-url", default="", help="PostgreSQL on loopback instead of SQLite (the database is dropped and re-created)")
    parser.add_argument("--broker-url", default="", help="e.g. redis://127.0.0.1:6379/14 instead of the serverless broker (the db is flushed)")
    parser.add_argument("--timeout", type=float, default=600.0, help="most seconds one request may take (default 600)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "pipeline.json")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    machine_before = machine()
    log(f"demo model '{args.preset}' (built once, then cached)")
    model_dir = demo_model_dir(args.preset)
    with DemoStack(model_dir=model_dir, database_url=args.database_url, broker_url=args.broker_url, keep=args.keep) as stack:
        stack.setup_django()
        stack.load_corpus()
        from django.contrib.auth.models import User

        from service.accounts.roles import Role, Scope
        from service.accounts.services import api_client_create, staff_user_ensure
        from workers.engine.world import load_world

        client, _ = api_client_create(name="bench-pipeline", scopes=[Scope.CREATE.value, Scope.READ.value, Scope.TRUSTED_IDENTITY.value])
        staff_user_ensure(username="bench-reviewer", password="bench-reviewer-pw", role=Role.REVIEWER, email="reviewer@bench.example")
        reviewer = User.objects.get(username="bench-reviewer")
        world = load_world(model_dir / "world.json")
        people = choose_people(world, args.preset, args.requests, [n.strip() for n in args.people.split(",") if n.strip()])

        t = time.perf_counter()
        stack.start_worker()
        gateway_url = stack.start_gateway(port=free_port())
        stack.wait_worker_ready()
        stack.wait_gateway_ready(gateway_url)
        startup = time.perf_counter() - t
        log(f"worker and gateway up in {startup:.1f} s; {len(people)} requests: {', '.join(people)}")

        from service.requests.models import ErasureRequest

        rows = []
        for index, name in enumerate(people):
            t = time.perf_counter()
            request = file_and_approve(world.person(name), client, reviewer, index)
            status = stack.wait_for(
                f"request {request.reference} to become active",
                lambda: (
                    (s := ErasureRequest.objects.filter(pk=request.pk).values_list("status", flat=True).first())
                    in ("active", "failed", "verified", "cancelled")
                    and s
                ),
                args.timeout,
            )
            row = measure(request.pk)
            row["person_index"] = index
            row["wall_seconds"] = round(time.perf_counter() - t, 3)
            rows.append(row)
            log(f"{request.reference}: {status} in {fmt(row['total'])} s" + (f" ({row['failure_reason']})" if row["failure_reason"] else ""))
        errors = stack.log_errors()

    result = {
        "benchmark": "pipeline",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": stack.mode,
        "preset": args.preset,
        "model": model_dir.name,
        "requests": len(rows),
        "startup_seconds": round(startup, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "log_errors": errors,
        "machine": {**machine(), "load_average_before": machine_before["load_average"]},
        "note": "people are not named here (personal data of the demo world); rows are in filing order",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nApproval to active, per request ({stack.mode}; demo model '{args.preset}'; worker and gateway started in {startup:.0f} s):\n")
    print(table(rows))
    print(f"\nlog lines 'database is locked' / tracebacks: {errors}")
    print(f"written to {args.out}")
    return 0 if all(r["status"] == "active" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
