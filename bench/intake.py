"""Intake benchmark: concurrent API clients filing erasure requests against the app under gunicorn.

    .venv/bin/python bench/intake.py                      # 30 s, 16 clients, gunicorn sync x 4 workers (the production shape)
    .venv/bin/python bench/intake.py --seconds 10 --clients 16 --server sync:4 --server gthread:2x8

What it does, bounded in time and on loopback only:
  1. creates a dedicated PostgreSQL database (forget_bench, dropped first: a clean state), migrates it,
     and creates one API client with the scopes create, read and trusted_identity;
  2. starts gunicorn on 127.0.0.1 on a free port, DATABASE_URL pointing at that database;
  3. runs --clients threads for --seconds, each on one keep-alive http.client connection, sending
     POST /api/v1/requests with the client's Bearer key and a unique Idempotency-Key;
  4. prints accepted requests/s, p50 / p95 / p99 latency and errors by status; then checks that every
     accepted request (by the id it was answered with) is in the database ("zero lost") and that
     the audit chain verifies;
  5. writes everything to --out (bench/results/intake.json) and stops gunicorn, also on error.

Each --server configuration gets its own fresh database, copied from a migrated template.
Targets on a 2-core machine: >= 300 accepted requests/s, p99 < 150 ms, zero lost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"accepted_per_s": 300.0, "p99_ms": 150.0, "lost": 0}


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """A gunicorn shape: 'gthread:2x4' (2 workers with 4 threads each) or 'sync:5' (5 workers)."""

    worker_class: str
    workers: int
    threads: int = 1

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        kind, _, size = text.partition(":")
        if kind == "gthread":
            workers, _, threads = size.partition("x")
            return cls("gthread", int(workers or 2), int(threads or 4))
        if kind == "sync":
            return cls("sync", int(size or 5), 1)
        raise argparse.ArgumentTypeError(f"server must look like gthread:2x4 or sync:5, not {text!r}")

    @property
    def label(self) -> str:
        return f"gthread:{self.workers}x{self.threads}" if self.worker_class == "gthread" else f"sync:{self.workers}"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration per server configuration (default 30)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring, not counted (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads, one keep-alive connection each (default 16)")
    parser.add_argument(
        "--server",
        type=ServerConfig.parse,
        action="append",
        help="gunicorn shape, repeatable: gthread:WxT or sync:W (default sync:4: what docker/compose.yaml runs, WEB_CONCURRENCY=4 sync workers behind nginx)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/forget_bench"),
        help="the dedicated database (dropped and re-created!)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each server configuration, one after the other (default 1); with more, the median run of each is reported too: "
        "run-to-run noise on a shared VM is +-10%%",
    )
    parser.add_argument("--conn-max-age", type=int, default=60, help="CONN_MAX_AGE for the app: persistent database connections (default 60)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "intake.json", help="JSON results file")
    args = parser.parse_args(argv)
    args.server = args.server or [ServerConfig("sync", 4, 1)]
    if not 0 < args.seconds <= 300:
        parser.error("--seconds must be in (0, 300]: the benchmark is bounded")
    if urlsplit(args.database_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--database-url must be on loopback")
    return args


# --- the database ------------------------------------------------------------------------------------


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _admin_sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(url, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _app_env(database_url: str, var_dir: Path, conn_max_age: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="service.config.settings",
        DATABASE_URL=database_url,
        CONN_MAX_AGE=str(conn_max_age),
        FORGET_VAR_DIR=str(var_dir),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
        DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_template(database_url: str, env: dict[str, str]) -> str:
    """A migrated, empty template database; each run copies it (CREATE DATABASE ... TEMPLATE)."""
    template = urlsplit(database_url).path.lstrip("/") + "_template"
    _admin_sql(database_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)', f'CREATE DATABASE "{template}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env={**env, "DATABASE_URL": _with_db(database_url, template)}, check=True
    )
    return template


def fresh_database(database_url: str, template: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    _admin_sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def create_client_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", "create_api_client", f"bench-{uuid.uuid4().hex[:8]}", "--scopes", "create,read,trusted_identity"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keys = [word for word in out.split() if word.startswith("fk_")]
    if not keys:
        raise RuntimeError(f"create_api_client printed no key:\n{out}")
    return keys[0]


# --- the server --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """gunicorn as a subprocess in its own process group, always stopped by stop()."""

    def __init__(self, config: ServerConfig, env: dict[str, str], log_path: Path):
        self.config, self.env, self.log_path = config, env, log_path
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    def start(self, key: str, timeout: float = 60.0) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "service.config.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.config.workers),
            "--worker-class", self.config.worker_class,
            "--threads", str(self.config.threads),
            "--keep-alive", "30",
            "--backlog", "256",
            "--timeout", "60",
            "--log-level", "warning",
            "--error-logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/v1/requests?page_size=1", headers={"Authorization": f"Bearer {key}"})
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass


# --- CPU accounting (Linux /proc): who used the cores during the measured phase ----------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


def _backend_pids(database_url: str) -> list[int]:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(_with_db(database_url, "postgres"), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", [name]).fetchall()
    return [row[0] for row in rows]


def cpu_sample(server_pid: int, database_url: str) -> dict:
    """CPU seconds so far of: gunicorn (master and workers), this database's PostgreSQL backends
    (persistent with CONN_MAX_AGE > 0), this benchmark process (the clients), and the machine."""
    backends = {pid: _process_cpu(pid) for pid in _backend_pids(database_url)}
    busy, total = _machine_cpu()
    return {
        "app": _process_cpu(server_pid) + sum(_process_cpu(pid) for pid in _children(server_pid)),
        "backends": backends,
        "client": time.process_time(),
        "machine_busy": busy,
        "machine_total": total,
    }


def cpu_usage(before: dict, after: dict, accepted: int) -> dict:
    """CPU milliseconds per accepted request, by part, and the share of the machine others used."""
    postgres = sum(after["backends"][pid] - before["backends"].get(pid, 0.0) for pid in after["backends"])
    parts = {"app": after["app"] - before["app"], "postgres": postgres, "client": after["client"] - before["client"]}
    machine_busy = after["machine_busy"] - before["machine_busy"]
    machine_total = after["machine_total"] - before["machine_total"]
    ours = sum(parts.values())
    per_request = {name: round(seconds * 1000 / accepted, 2) if accepted else None for name, seconds in parts.items()}
    total_ms = round(ours * 1000 / accepted, 2) if accepted else None
    return {
        "ms_per_accepted_request": {**per_request, "total": total_ms},
        # What the CPU alone would allow on an otherwise idle machine with this many cores.
        "cpu_bound_ceiling_per_s": round((os.cpu_count() or 1) * 1000 / total_ms, 1) if total_ms else None,
        "machine_busy_percent": round(100 * machine_busy / machine_total, 1) if machine_total else None,
        "others_percent_of_machine": round(100 * max(0.0, machine_busy - ours) / machine_total, 1) if machine_total else None,
    }


# --- the load ----------------------------------------------------------------------------------------


@dataclass
class ClientResult:
    latencies_ms: list[float] = field(default_factory=list)  # measured phase, every answered request
    accepted_ms: list[float] = field(default_factory=list)  # measured phase, 202 only
    statuses: Counter = field(default_factory=Counter)  # measured phase
    accepted_ids: list[str] = field(default_factory=list)  # warm-up included: all must be stored
    transport_errors: Counter = field(default_factory=Counter)


def _body(n: int, tag: str) -> bytes:
    return json.dumps(
        {
            "subject_name": f"Bench Subject {tag}-{n}",
            "subject_email": f"bench-{tag}-{n}@example.org",
            "regulation": "gdpr" if n % 3 else "ccpa",
            "facts": [f"Bench Subject {tag}-{n} lives at {n} Example Street", f"Bench Subject {tag}-{n} was born in {1950 + n % 50}"],
            "evidence_prompts": [f"Where does Bench Subject {tag}-{n} live?"],
        }
    ).encode()


def client_loop(port: int, key: str, tag: str, measure_from: float, stop_at: float, result: ClientResult) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
    n = 0
    while True:
        started = time.perf_counter()
        if started >= stop_at:
            break
        n += 1
        try:
            conn.request("POST", "/api/v1/requests", body=_body(n, tag), headers={**headers, "Idempotency-Key": f"{tag}-{n}-{uuid.uuid4().hex}"})
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            result.transport_errors[type(exc).__name__] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status == 202:
            result.accepted_ids.append(json.loads(payload)["id"])
        if started >= measure_from:
            result.latencies_ms.append(elapsed_ms)
            result.statuses[response.status] += 1
            if response.status == 202:
                result.accepted_ms.append(elapsed_ms)
    conn.close()


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))  # nearest-rank
    return ordered[rank]


def run_load(port: int, key: str, clients: int, warmup: float, seconds: float, sample) -> tuple[list[ClientResult], float, dict, dict]:
    """Runs the clients; sample() is called as the measured phase starts and as it ends."""
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    results = [ClientResult() for _ in range(clients)]
    threads = [threading.Thread(target=client_loop, args=(port, key, f"c{i}", measure_from, stop_at, results[i]), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    before = sample()
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    after = sample()
    for thread in threads:
        thread.join(timeout=60)
    measured = time.perf_counter() - measure_from
    return results, measured, before, after


# --- checks ------------------------------------------------------------------------------------------


def check_database(env: dict[str, str], accepted_ids: list[str]) -> dict:
    """In a child process with the app's settings: every accepted id stored, and the chain verifies."""
    script = (
        "import json, sys, django; django.setup()\n"
        "from service.requests.models import ErasureRequest\n"
        "from service.audit.models import AuditEvent\n"
        "from service.audit.selectors import audit_chain_verify\n"
        "ids = json.load(sys.stdin)\n"
        "found = set()\n"
        "for i in range(0, len(ids), 5000):\n"
        "    found |= {str(pk) for pk in ErasureRequest.objects.filter(pk__in=ids[i:i + 5000]).values_list('pk', flat=True)}\n"
        "chain = audit_chain_verify()\n"
        "print(json.dumps({'accepted': len(set(ids)), 'found': len(found), 'lost': sorted(set(ids) - found)[:20], 'lost_count': len(set(ids) - found),"
        " 'requests_in_db': ErasureRequest.objects.count(), 'submitted_events': AuditEvent.objects.filter(action='request.submitted').count(),"
        " 'audit_events': AuditEvent.objects.count(), 'chain_ok': chain.ok, 'chain_checked': chain.checked, 'chain_reason': chain.reason}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, input=json.dumps(accepted_ids), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def summarise(config: ServerConfig, results: list[ClientResult], measured: float) -> dict:
    latencies = [ms for r in results for ms in r.latencies_ms]
    statuses = sum((r.statuses for r in results), Counter())
    transport = sum((r.transport_errors for r in results), Counter())
    accepted = statuses.get(202, 0)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "server": config.label,
        "worker_class": config.worker_class,
        "workers": config.workers,
        "threads": config.threads,
        "measured_seconds": round(measured, 2),
        "requests": len(latencies),
        "accepted": accepted,
        "accepted_per_s": round(accepted / measured, 1) if measured > 0 else 0.0,
        "latency_ms": {
            "p50": ms(_percentile(latencies, 50)),
            "p95": ms(_percentile(latencies, 95)),
            "p99": ms(_percentile(latencies, 99)),
            "max": ms(max(latencies, default=None)),
            "mean": ms(statistics.fmean(latencies)) if latencies else None,
        },
        "errors_by_status": {str(code): count for code, count in sorted(statuses.items()) if code != 202},
        "transport_errors": dict(transport),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'server':<14} {'clients':>7} {'accepted/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':<12} {'lost':>5} {'chain':<6} "
        f"{'CPU ms/req app+pg+client':>25} {'others':>7} {'targets':<7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        lat, cpu = row["latency_ms"], row["cpu"]["ms_per_accepted_request"]
        errors = ", ".join(f"{code}: {n}" for code, n in {**row["errors_by_status"], **row["transport_errors"]}.items()) or "none"
        split = f"{cpu['app']}+{cpu['postgres']}+{cpu['client']}" if cpu["total"] is not None else "-"
        others = row["cpu"]["others_percent_of_machine"]
        print(
            f"{row['server']:<14} {row['clients']:>7} {row['accepted_per_s']:>10.1f} {lat['p50'] or 0:>7.1f} {lat['p95'] or 0:>7.1f} {lat['p99'] or 0:>7.1f} "
            f"{errors:<12} {row['check']['lost_count']:>5} {'OK' if row['check']['chain_ok'] else 'BROKEN':<6} {split:>25} "
            f"{others if others is not None else '-':>6}% "
            f"{'met' if row['targets_met'] else 'MISSED':<7}"
        )


def _medians(rows: list[dict]) -> dict[str, dict]:
    """Per server configuration: the median run's figures over its repeats (the targets judged on those)."""
    medians = {}
    for label in dict.fromkeys(row["server"] for row in rows):
        runs = [row for row in rows if row["server"] == label]
        rate = statistics.median(row["accepted_per_s"] for row in runs)
        p99 = statistics.median(row["latency_ms"]["p99"] or math.inf for row in runs)
        medians[label] = {
            "runs": len(runs),
            "accepted_per_s": round(rate, 1),
            "accepted_per_s_range": [min(row["accepted_per_s"] for row in runs), max(row["accepted_per_s"] for row in runs)],
            "p99_ms": round(p99, 1),
            "app_cpu_ms": statistics.median(row["cpu"]["ms_per_accepted_request"]["app"] or math.inf for row in runs),
            "targets_met": bool(
                rate >= TARGETS["accepted_per_s"]
                and p99 < TARGETS["p99_ms"]
                and all(row["check"]["lost_count"] == TARGETS["lost"] and row["check"]["chain_ok"] for row in runs)
            ),
        }
    return medians


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    var_dir = ROOT / "var" / "bench"
    var_dir.mkdir(parents=True, exist_ok=True)
    env = _app_env(args.database_url, var_dir, args.conn_max_age)
    conditions = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": _load_average(),
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "conn_max_age": args.conn_max_age,
        "database": urlsplit(args.database_url).path.lstrip("/"),
    }
    print(f"==> preparing {conditions['database']} (dropped and re-created), load average {conditions['load_average_before']}", flush=True)
    template = prepare_template(args.database_url, env)
    rows = []
    try:
        for config in [config for config in args.server for _ in range(args.repeat)]:
            fresh_database(args.database_url, template)
            key = create_client_key(env)
            server = Gunicorn(config, env, var_dir / f"gunicorn-{config.label.replace(':', '-')}.log")
            try:
                server.start(key)
                print(
                    f"==> {config.label} on 127.0.0.1:{server.port}: {args.clients} clients, {args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured",
                    flush=True,
                )
                load_before = _load_average()
                results, measured, cpu_before, cpu_after = run_load(
                    server.port, key, args.clients, args.warmup, args.seconds, lambda: cpu_sample(server.process.pid, args.database_url)
                )
                load_after = _load_average()
            finally:
                server.stop()
            row = summarise(config, results, measured)
            row["clients"] = args.clients
            row["load_average"] = {"before": load_before, "after": load_after}
            row["cpu"] = cpu_usage(cpu_before, cpu_after, row["accepted"])
            row["check"] = check_database(env, [i for r in results for i in r.accepted_ids])
            row["targets_met"] = bool(
                row["accepted_per_s"] >= TARGETS["accepted_per_s"]
                and row["latency_ms"]["p99"] is not None
                and row["latency_ms"]["p99"] < TARGETS["p99_ms"]
                and row["check"]["lost_count"] == TARGETS["lost"]
                and row["check"]["chain_ok"]
            )
            rows.append(row)
    finally:
        _admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    print()
    print_table(rows)
    best = max(rows, key=lambda row: (row["targets_met"], row["accepted_per_s"]))
    conditions["load_average_after"] = _load_average()
    conditions["repeat"] = args.repeat
    medians = _medians(rows)
    if args.repeat > 1:
        print()
        for label, median in medians.items():
            print(
                f"{label}: median of {median['runs']} runs {median['accepted_per_s']:.1f} accepted/s (range {median['accepted_per_s_range'][0]:.1f}-"
                f"{median['accepted_per_s_range'][1]:.1f}), p99 {median['p99_ms']:.1f} ms, app CPU {median['app_cpu_ms']} ms/request: "
                f"{'met' if median['targets_met'] else 'MISSED'}"
            )
    report = {"benchmark": "intake", "targets": TARGETS, "conditions": conditions, "runs": rows, "medians": medians, "best": best["server"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nzero lost: {'yes' if all(r['check']['lost_count'] == 0 for r in rows) else 'NO'}; "
        f"audit chain: {'verified' if all(r['check']['chain_ok'] for r in rows) else 'BROKEN'}; "
        f"results in {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )
    return 0 if all(r["check"]["lost_count"] == 0 and r["check"]["chain_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
