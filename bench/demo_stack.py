"""The demo's processes for the benchmarks (bench/pipeline.py, bench/gateway.py): a throwaway data
folder, the embedded defaults (or PostgreSQL + Redis), a real Celery worker and a real
`manage.py run_gateway`, each a subprocess in its own session with its own log, stopped (TERM, then
KILL) when the benchmark ends, also on error or Ctrl-C.

The benchmark process itself configures Django with the same environment (set before
django.setup(): settings are read from the environment), so it files requests through the same
services and reads the same rows as the worker and the gateway.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
CELERY = str(ROOT / ".venv" / "bin" / "celery")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_model_dir(preset: str) -> Path:
    """The demo model of `preset`, built (minutes for 'demo') or reused from the cache."""
    from workers.engine.demo_model import DemoModelConfig, build_demo_model

    return build_demo_model(DemoModelConfig.preset_config(preset))


def recreate_postgres_database(url: str) -> None:
    """Drops and creates the database named in `url` (loopback only: it is a benchmark's scratch)."""
    import psycopg

    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to drop a database that is not on loopback: {parts.hostname}")
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def machine() -> dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(), "load_average": load}


class DemoStack:
    """Environment, database and child processes of one benchmark run."""

    def __init__(self, *, model_dir: Path, database_url: str = "", broker_url: str = "", keep: bool = False, extra_env: dict[str, str] | None = None):
        self.var_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None))
        self.model_dir, self.database_url, self.broker_url, self.keep = model_dir, database_url, broker_url, keep
        self.processes: list[tuple[str, subprocess.Popen, Path]] = []
        self.env = {
            **os.environ,
            "FORGET_VAR_DIR": str(self.var_dir),
            "BASE_MODEL_DIR": str(model_dir),
            "FORGET_DEMO_PRESET": _preset_of(model_dir),
            "ADAPTERS_STORE_URL": "",
            "ADAPTERS_STORE_ROOT": str(self.var_dir / "adapters_store"),
            "UNITS_WORK_DIR": str(self.var_dir / "units"),
            "OMP_WAIT_POLICY": "PASSIVE",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "service.config.settings",
            **(extra_env or {}),
        }
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "GATEWAY_URL"):
            self.env.pop(name, None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        if broker_url:
            self.env["CELERY_BROKER_URL"] = broker_url

    @property
    def mode(self) -> str:
        database = "PostgreSQL" if self.database_url else "embedded SQLite"
        broker = (
            "Redis" if self.broker_url.startswith("redis") else "SQLAlchemy on SQLite (no server)" if not self.broker_url else self.broker_url.split(":")[0]
        )
        return f"{database} database, {broker} broker, filesystem unit store"

    # -- this process ----------------------------------------------------------------------------

    def setup_django(self) -> None:
        """This process joins the stack: same settings, migrated database."""
        os.environ.clear()
        os.environ.update(self.env)
        if self.database_url:
            recreate_postgres_database(self.database_url)
        if self.broker_url.startswith("redis"):
            import redis

            redis.Redis.from_url(self.broker_url).flushdb()
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        log(f"database migrated in {time.perf_counter() - started:.1f} s ({self.mode}); data folder {self.var_dir}")

    def load_corpus(self) -> None:
        from io import StringIO

        from django.core.management import call_command

        call_command("load_demo_corpus", "--model-dir", str(self.model_dir), stdout=StringIO())

    # -- child processes ---------------------------------------------------------------------------

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        path = self.var_dir / f"{name}.log"
        with open(path, "wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((name, process, path))
        return process

    def start_worker(self, name: str = "worker") -> subprocess.Popen:
        return self.start(
            name,
            [
                CELERY,
                "-A",
                "service.config",
                "worker",
                "-Q",
                "default,gpu",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench-{name}-{os.getpid()}@%h",
            ],
        )

    def start_gateway(
        self, *, port: int, torch_threads: int = 1, poll_seconds: float = 1.0, max_batch: int = 16, server: str = "uvicorn", name: str = "gateway"
    ) -> str:
        url = f"http://127.0.0.1:{port}"
        self.start(
            name,
            [
                PYTHON,
                "manage.py",
                "run_gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--poll-seconds",
                str(poll_seconds),
                "--torch-threads",
                str(torch_threads),
                "--max-batch",
                str(max_batch),
                "--gateway-id",
                f"bench-{name}",
                "--server",
                server,
            ],
        )
        return url

    def stop_process(self, name: str, timeout: float = 30.0) -> int | None:
        """SIGTERM to one process started by start() (a clean shutdown), SIGKILL if it hangs; it
        leaves the list, its log stays."""
        for entry in list(self.processes):
            if entry[0] != name:
                continue
            process = entry[1]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
            self.processes.remove(entry)
            return process.returncode
        return None

    def check_alive(self) -> None:
        for name, process, path in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"the {name} process exited ({process.returncode}); its log ends:\n{tail(path)}")

    def wait_for(self, what: str, condition, timeout: float, every: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            self.check_alive()
            time.sleep(every)
        raise RuntimeError(f"{what}: not within {timeout:g} s; logs in {self.var_dir}")

    def wait_worker_ready(self, timeout: float = 240.0, name: str = "worker") -> None:
        path = self.var_dir / f"{name}.log"
        self.wait_for("the Celery worker", lambda: " ready." in path.read_text(errors="replace"), timeout)

    def wait_gateway_ready(self, url: str, timeout: float = 300.0) -> dict[str, Any]:
        return self.wait_for("the gateway", lambda: http_json("GET", url + "/healthz", timeout=2.0)[1] if _ok(url) else None, timeout)

    def log_errors(self) -> dict[str, int]:
        """Lines that say the database was locked (SQLite) or a traceback, per process log."""
        found = {}
        for name, _, path in self.processes:
            text = path.read_text(errors="replace") if path.exists() else ""
            found[name] = {"database is locked": text.count("database is locked"), "Traceback": text.count("Traceback")}
        return found

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for _, process, _ in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        if not self.keep:
            shutil.rmtree(self.var_dir, ignore_errors=True)

    def __enter__(self) -> DemoStack:
        def interrupted(signum, frame):
            raise KeyboardInterrupt()

        signal.signal(signal.SIGTERM, interrupted)  # stop the children on TERM too
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and exc[0] is not KeyboardInterrupt:
            self.keep = True
            log(f"kept {self.var_dir} (logs) after the error")
        self.stop()


def _preset_of(model_dir: Path) -> str:
    try:
        return json.loads((model_dir / "demo_model.json").read_text())["config"]["preset"]
    except (OSError, ValueError, KeyError):
        return "demo"


def _ok(url: str) -> bool:
    try:
        return http_json("GET", url + "/healthz", timeout=2.0)[0] == 200
    except OSError:
        return False


def http_json(method: str, url: str, *, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 120.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Accept": "application/json", **({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]
