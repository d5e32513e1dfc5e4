"""Real processes for the integration tests: the commands an operator runs (a Celery worker, celery
beat, `manage.py run_gateway`, bin/demo), started with an environment that points at the test
database, polled until they are ready, and stopped in teardown.

    process = LoggedProcess(celery_worker_command("worker"), env={**os.environ, "DATABASE_URL": database_url()}, log=tmp_path / "worker.log")
    wait_for(condition, "The worker did not ...", seconds=120, logs=[process.log])
    process.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

T = TypeVar("T")

# The Redis database bin/test points the test process at (TEST_CELERY_BROKER_URL): the worker
# processes must use the same one, and engineers sharing a machine use different ones.
BROKER_URL = settings.CELERY_BROKER_URL if settings.CELERY_BROKER_URL.startswith("redis://") else "redis://127.0.0.1:6379/15"
QUEUES = ("default", "gpu")
# The workers' CELERY_VISIBILITY_TIMEOUT (tests/integration/conftest.py's start_worker): Redis hands an
# unacknowledged message back after this many seconds (production: longer than the longest job).
WORKER_VISIBILITY_TIMEOUT = 10
CELERY = str(Path(sys.executable).with_name("celery"))


def database_url() -> str:
    """The URL of the database this test runs on: the test database pytest-django created."""
    db = settings.DATABASES["default"]
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def require_postgresql(process: str) -> None:
    """Skips the test unless it runs on PostgreSQL, which another process can reach."""
    if connection.vendor != "postgresql":
        pytest.skip(f"needs PostgreSQL: the {process} process must reach the test database (bin/test sets DATABASE_URL)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def purge_queues() -> None:
    from kombu import Connection

    with Connection(BROKER_URL, connect_timeout=5) as broker:
        for queue in QUEUES:
            broker.default_channel.queue_purge(queue)


def purge_queues_or_fail() -> None:
    """Empties the queues before a test's workers start; fails clearly when Redis is not up."""
    try:
        purge_queues()
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure
        pytest.fail(f"Redis at {BROKER_URL} is not reachable ({exc}); bin/test starts it (bin/services)")


def celery_worker_command(name: str) -> list[str]:
    """A solo worker on both queues, one job at a time, named `name-<this pid>` on this host."""
    return [
        CELERY,
        "-A",
        "service.config",
        "worker",
        "-Q",
        ",".join(QUEUES),
        "--concurrency",
        "1",
        "--pool",
        "solo",
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"{name}-{os.getpid()}@%h",
    ]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def tails(logs: Iterable[Path], lines: int = 40) -> str:
    return "\n".join(f"--- {log.name} ---\n{tail(log, lines)}" for log in logs)


class LoggedProcess(subprocess.Popen):
    """A command run from the project's root in its own session (so that its process group can be
    killed), its stdout and stderr written to `log`."""

    def __init__(self, command: list[str], *, env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            super().__init__(command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, *, grace_seconds: float = 20) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL to the whole process group if it hangs."""
        if self.poll() is not None:
            return
        self.send_signal(signal.SIGTERM)
        try:
            self.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.wait(timeout=10)


def wait_for(
    condition: Callable[[], T],
    what: str,
    *,
    seconds: float,
    logs: Iterable[Path] = (),
    every: float = 0.5,
    lines: int = 40,
    alive: subprocess.Popen | None = None,
) -> T:
    """Polls `condition` until it returns something true, and returns that. Fails after `seconds`
    with the tails of `logs`, and at once when the `alive` process exits."""
    logs = list(logs)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            pytest.fail(f"{what}: the process exited ({alive.returncode}).\n{tails(logs, lines)}")
        time.sleep(every)
    pytest.fail(f"{what} within {seconds:g} s.\n{tails(logs, lines)}")


GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def app_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of an application process on the test database: DEBUG off, as deployed;
    the test process's keys (so that hashes and codes made here check there); mail to files."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "PII_HASH_KEY": settings.PII_HASH_KEY,
        "FORGET_VAR_DIR": str(tmp_path / "var"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "outbox"),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


class Gunicorn(LoggedProcess):
    """The web app under gunicorn on 127.0.0.1, as docker/compose.yaml runs it (sync workers unless
    `threads` > 1); ready once it answers HTTP."""

    def __init__(self, *, env: dict[str, str], log: Path, workers: int = 4, threads: int = 1, extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            GUNICORN,
            "service.config.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread" if threads > 1 else "sync",
            "--threads",
            str(threads),
            "--timeout",
            "60",
            *extra,
        ]
        super().__init__(command, env=env, log=log)

    def wait_ready(self, seconds: float = 90) -> None:
        import http.client

        def answers() -> bool:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/", headers={"Host": "127.0.0.1"})
                conn.getresponse().read()
                conn.close()
                return True
            except OSError:
                return False

        wait_for(answers, "gunicorn did not answer", seconds=seconds, logs=[self.log], alive=self)
