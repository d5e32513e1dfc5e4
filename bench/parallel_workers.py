"""Parallel GPU workers: the throughput of one worker against several on the same queue.

    .venv/bin/python bench/parallel_workers.py                       # 4 requests, 1 then 2 workers, demo model
    .venv/bin/python bench/parallel_workers.py --workers 1,2,4 --requests 8 --preset tiny

For each worker count, on a fresh PostgreSQL database and Redis db (the registration lock needs
PostgreSQL; both are dropped/flushed first): start that many real Celery workers (`--pool solo
--concurrency 1`, one torch thread each), wait until they are ready, file and approve --requests
people at once (the story's people, then people with few neighbours: bench/pipeline.py's rule), and
wait until every job has finished. Reported per run: the makespan (first approval to last job
finished), jobs per hour, the speed-up over the first run, how many units were projected out of
units that went live while they trained (workers/engine/orthogonalise.py), the time the jobs waited
for the registration lock, and whether every unit went live. JSON to --out.

Training and certificates run in parallel; each unit's registration holds the base model's
registration lock and is certified again under it only when the live units changed while it was
certified ("re-certificate s" in the table). On a CPU machine the workers also share the cores (two here): the gain measured
there is the floor of what separate GPUs give.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo_stack import DemoStack, demo_model_dir, log, machine  # noqa: E402
from pipeline import choose_people, file_and_approve  # noqa: E402


def run_once(*, workers: int, requests: int, model_dir: Path, preset: str, database_url: str, broker_url: str, timeout: float, keep: bool) -> dict:
    env = {"OMP_NUM_THREADS": "1", "FORGET_GPU_WORKERS": str(workers)}
    with DemoStack(model_dir=model_dir, database_url=database_url, broker_url=broker_url, keep=keep, extra_env=env) as stack:
        stack.setup_django()
        stack.load_corpus()
        from django.contrib.auth.models import User

        from service.accounts.roles import Role, Scope
        from service.accounts.services import api_client_create, staff_user_ensure
        from service.audit.models import AuditEvent
        from service.unlearning.models import UnlearningJob
        from workers.engine.world import load_world

        client, _ = api_client_create(name="bench-parallel", scopes=[Scope.CREATE.value, Scope.READ.value, Scope.TRUSTED_IDENTITY.value])
        staff_user_ensure(username="bench-reviewer", password="bench-reviewer-pw", role=Role.REVIEWER, email="reviewer@bench.example")
        reviewer = User.objects.get(username="bench-reviewer")
        world = load_world(model_dir / "world.json")
        people = choose_people(world, preset, requests, [])

        names = [f"worker{n}" for n in range(workers)]
        for name in names:
            stack.start_worker(name)
        for name in names:
            stack.wait_worker_ready(name=name)
        log(f"{workers} worker(s) ready; filing {len(people)} requests")

        started = time.perf_counter()
        ids = [file_and_approve(world.person(name), client, reviewer, index).pk for index, name in enumerate(people)]
        stack.wait_for(
            "every job to finish",
            lambda: UnlearningJob.objects.filter(request_id__in=ids, finished_at__isnull=False).count() == len(ids),
            timeout,
            every=1.0,
        )
        makespan = time.perf_counter() - started
        jobs = list(UnlearningJob.objects.filter(request_id__in=ids).select_related("request"))
        projected = AuditEvent.objects.filter(action="unlearning.orthogonalised", target_id__in=[job.request.reference for job in jobs]).count()
        lock_wait = sum(value for job in jobs for key, value in (job.timings or {}).items() if key.startswith("lock_wait"))
        phases = {}  # seconds summed over the jobs: what ran in parallel (train, evaluate) and under the lock (recertify)
        for job in jobs:
            for key, value in (job.timings or {}).items():
                phase = key.removesuffix("_seconds").split("_round")[0]
                phases[phase] = round(phases.get(phase, 0.0) + value, 1)
        row = {
            "workers": workers,
            "requests": len(jobs),
            "makespan_seconds": round(makespan, 1),
            "jobs_per_hour": round(3600.0 * len(jobs) / makespan, 1),
            "projected_units": projected,
            "lock_wait_seconds": round(lock_wait, 1),
            "phase_seconds": phases,
            "statuses": sorted(job.status for job in jobs),
            "workers_used": len({job.worker.split(":")[0] for job in jobs}),
            "job_seconds": sorted(round((job.finished_at - job.started_at).total_seconds(), 1) for job in jobs if job.started_at and job.finished_at),
            "log_errors": stack.log_errors(),
        }
        from django.db import connection

        connection.close()  # the next run drops and re-creates this database
        log(f"{workers} worker(s): {row['makespan_seconds']} s for {len(jobs)} jobs, {projected} projected, lock wait {row['lock_wait_seconds']} s")
        return row


def table(rows: list[dict]) -> str:
    first = rows[0]["makespan_seconds"]
    lines = [
        "| workers | requests | makespan s | jobs/hour | speed-up | projected units | training s | certificate s "
        "| re-certificate s (locked) | lock wait s | all succeeded |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ok = "yes" if set(row["statuses"]) == {"succeeded"} else ", ".join(row["statuses"])
        lines.append(
            f"| {row['workers']} | {row['requests']} | {row['makespan_seconds']:.1f} | {row['jobs_per_hour']:.1f} | {first / row['makespan_seconds']:.2f}x | "
            f"{row['projected_units']} | {row['phase_seconds'].get('train', 0.0):.1f} | {row['phase_seconds'].get('evaluate', 0.0):.1f} | "
            f"{row['phase_seconds'].get('recertify', 0.0):.1f} | {row['lock_wait_seconds']:.1f} | {ok} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, one run each (default 1,2)")
    parser.add_argument("--requests", type=int, default=4, help="requests filed at once per run (default 4)")
    parser.add_argument("--preset", default="demo", choices=("demo", "tiny", "smol"), help="demo model preset (default demo)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/forget_bench_parallel", help="dropped and re-created per run")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/13", help="flushed per run")
    parser.add_argument("--timeout", type=float, default=1800.0, help="most seconds one run may take (default 1800)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "parallel-workers.json")
    parser.add_argument("--keep", action="store_true", help="keep the data folders and logs")
    args = parser.parse_args(argv)

    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if not counts or min(counts) < 1:
        parser.error("--workers: one or more positive integers, e.g. 1,2")
    before = machine()
    model_dir = demo_model_dir(args.preset)
    rows = [
        run_once(
            workers=n,
            requests=args.requests,
            model_dir=model_dir,
            preset=args.preset,
            database_url=args.database_url,
            broker_url=args.broker_url,
            timeout=args.timeout,
            keep=args.keep,
        )
        for n in counts
    ]
    result = {
        "benchmark": "parallel_workers",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": args.preset,
        "model": model_dir.name,
        "rows": rows,
        "machine": {**machine(), "load_average_before": before["load_average"]},
        "note": "each run on a fresh database; people drawn by bench/pipeline.py's rule; workers: celery --pool solo, OMP_NUM_THREADS=1",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nParallel GPU workers, {args.requests} requests filed at once (demo model '{args.preset}'):\n")
    print(table(rows))
    print(f"\nwritten to {args.out}")
    return 0 if all(set(row["statuses"]) == {"succeeded"} for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
