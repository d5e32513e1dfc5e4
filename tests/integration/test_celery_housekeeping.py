"""The periodic housekeeping in real processes: celery beat schedules it, a Celery worker on Redis
runs it against the PostgreSQL test database, and the test reads the outcome from that database.

Nothing is mocked: the worker and beat are the commands an operator runs (`celery -A service.config
worker|beat`), started as subprocesses with the environment pointing at the test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_submit_web

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BROKER_URL = "redis://127.0.0.1:6379/15"
QUEUES = ("default", "gpu")
CELERY = str(Path(sys.executable).with_name("celery"))
BEAT_SECONDS = 2
PATIENCE_SECONDS = 120  # worker start-up on a busy two-core machine, plus a few beat periods


def _database_url() -> str:
    """The URL of the database this test runs on: the test database pytest-django created."""
    db = settings.DATABASES["default"]
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _purge_queues() -> None:
    from kombu import Connection

    with Connection(BROKER_URL, connect_timeout=5) as broker:
        for queue in QUEUES:
            broker.default_channel.queue_purge(queue)


def _stop(process: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL to the process group we created if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@pytest.fixture
def celery_processes(transactional_db, tmp_path) -> Iterator[dict[str, Path]]:
    """Starts a real worker and a real beat on Redis and the test database; stops them afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker process must reach the test database (bin/test sets DATABASE_URL)")
    try:
        _purge_queues()
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure
        pytest.fail(f"Redis at {BROKER_URL} is not reachable ({exc}); bin/test starts it (bin/services)")

    outbox = tmp_path / "outbox"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "FORGET_VAR_DIR": str(tmp_path / "var"),
        "FORGET_HOUSEKEEPING_SECONDS": str(BEAT_SECONDS),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "PYTHONUNBUFFERED": "1",
    }
    logs = {"worker": tmp_path / "worker.log", "beat": tmp_path / "beat.log", "outbox": outbox}
    commands = {
        "worker": [CELERY, "-A", "service.config", "worker", "-Q", ",".join(QUEUES), "--concurrency", "1", "--pool", "solo", "-l", "info", "--without-gossip", "--without-mingle", "-n", f"housekeeping-test-{os.getpid()}@%h"],
        "beat": [CELERY, "-A", "service.config", "beat", "-l", "info", "-s", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")],
    }
    processes: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            with open(logs[name], "wb") as log:
                processes.append(subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        yield logs
    finally:
        for process in processes:
            _stop(process)
        _purge_queues()


def _wait_for(condition, what: str, logs: dict[str, Path], seconds: float = PATIENCE_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} within {seconds} s.\n--- worker log ---\n{_tail(logs['worker'])}\n--- beat log ---\n{_tail(logs['beat'])}")


def test_beat_and_worker_expire_stale_requests_and_remind_reviewers_once(staff, api_client_key, actor_of, celery_processes):
    logs = celery_processes
    reviewer = staff("reviewer")
    stale = request_submit_web(name="Al", email="al@example.com", regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)
    fresh = request_submit_web(name="Cy", email="cy@example.com", regulation="gdpr", facts=["Cy is 22"], evidence_prompts=[], attested=True)
    ErasureRequest.objects.filter(pk=stale.pk).update(received_at=timezone.now() - timedelta(days=settings.FORGET["UNVERIFIED_EXPIRY_DAYS"] + 1))
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    due, _ = request_create_api(actor=actor_of(client), idempotency_key="due", name="Bo", email="bo@example.com", regulation="ccpa", facts=["Bo is 51"], evidence_prompts=[])
    ErasureRequest.objects.filter(pk=due.pk).update(deadline_at=timezone.now() + timedelta(days=2))

    def done() -> bool:
        expired = ErasureRequest.objects.filter(pk=stale.pk, status="expired").exists()
        return expired and AuditEvent.objects.filter(action="request.deadline_reminder", target_id=due.reference).exists()

    _wait_for(done, "The worker did not expire the stale request and record the reminder", logs)

    expired_event = AuditEvent.objects.get(action="request.expired")
    assert (expired_event.target_id, expired_event.actor_kind) == (stale.reference, "system")
    assert ErasureRequest.objects.get(pk=fresh.pk).status == "submitted"  # young: left alone
    assert ErasureRequest.objects.get(pk=due.pk).reminder_sent_at is not None

    # Beat keeps firing every BEAT_SECONDS: after two more runs that found nothing to do, there is
    # still exactly one reminder and one expiry.
    def idle_runs() -> int:
        return sum(1 for line in logs["worker"].read_text().splitlines() if "expire_and_remind[" in line and "succeeded" in line and "{'expired': [], 'reminded': []}" in line)

    _wait_for(lambda: idle_runs() >= 2, "The worker did not run two later beats", logs, seconds=60)
    assert "Scheduler: Sending due task expire-and-remind" in logs["beat"].read_text()
    assert AuditEvent.objects.filter(action="request.deadline_reminder").count() == 1
    assert AuditEvent.objects.filter(action="request.expired").count() == 1

    # The reminder went out by mail, from the worker, to the reviewer.
    mails = [path.read_text() for path in logs["outbox"].glob("*.log")] if logs["outbox"].exists() else []
    reminders = [mail for mail in mails if f"Deadline reminder: {due.reference}" in mail]
    assert len(reminders) == 1 and f"To: {reviewer.email}" in reminders[0]
