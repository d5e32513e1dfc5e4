"""The periodic housekeeping in real processes: celery beat schedules it, a Celery worker on Redis
runs it against the PostgreSQL test database, and the test reads the outcome from that database.

Nothing is mocked: the worker and beat are the commands an operator runs (`celery -A service.config
worker|beat`), started as subprocesses with the environment pointing at the test database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_submit_web
from tests.integration.processes import (
    BROKER_URL,
    CELERY,
    LoggedProcess,
    celery_worker_command,
    database_url,
    purge_queues,
    purge_queues_or_fail,
    require_postgresql,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BEAT_SECONDS = 2
PATIENCE_SECONDS = 120  # worker start-up on a busy two-core machine, plus a few beat periods


@pytest.fixture
def celery_processes(transactional_db, tmp_path) -> Iterator[dict[str, Path]]:
    """Starts a real worker and a real beat on Redis and the test database; stops them afterwards."""
    require_postgresql("worker")
    purge_queues_or_fail()

    outbox = tmp_path / "outbox"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "FORGET_VAR_DIR": str(tmp_path / "var"),
        "FORGET_HOUSEKEEPING_SECONDS": str(BEAT_SECONDS),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "PYTHONUNBUFFERED": "1",
    }
    logs = {"worker": tmp_path / "worker.log", "beat": tmp_path / "beat.log", "outbox": outbox}
    commands = {
        "worker": celery_worker_command("housekeeping-test"),
        "beat": [CELERY, "-A", "service.config", "beat", "-l", "info", "-s", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")],
    }
    processes: list[LoggedProcess] = []
    try:
        for name, command in commands.items():
            processes.append(LoggedProcess(command, env=env, log=logs[name]))
        yield logs
    finally:
        for process in processes:
            process.stop()
        purge_queues()


def _wait_for(condition, what: str, logs: dict[str, Path], seconds: float = PATIENCE_SECONDS) -> None:
    wait_for(condition, what, seconds=seconds, logs=[logs["worker"], logs["beat"]])


def test_beat_and_worker_expire_stale_requests_and_remind_reviewers_once(staff, api_client_key, actor_of, celery_processes):
    logs = celery_processes
    reviewer = staff("reviewer")
    stale = request_submit_web(name="Al", email="al@example.com", regulation="gdpr", facts=["Al is 40"], evidence_prompts=[], attested=True)
    fresh = request_submit_web(name="Cy", email="cy@example.com", regulation="gdpr", facts=["Cy is 22"], evidence_prompts=[], attested=True)
    ErasureRequest.objects.filter(pk=stale.pk).update(received_at=timezone.now() - timedelta(days=settings.FORGET["UNVERIFIED_EXPIRY_DAYS"] + 1))
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    due, _ = request_create_api(
        actor=actor_of(client), idempotency_key="due", name="Bo", email="bo@example.com", regulation="ccpa", facts=["Bo is 51"], evidence_prompts=[]
    )
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
        return sum(
            1
            for line in logs["worker"].read_text().splitlines()
            if "expire_and_remind[" in line and "succeeded" in line and "{'expired': [], 'reminded': []}" in line
        )

    _wait_for(lambda: idle_runs() >= 2, "The worker did not run two later beats", logs, seconds=60)
    assert "Scheduler: Sending due task expire-and-remind" in logs["beat"].read_text()
    assert AuditEvent.objects.filter(action="request.deadline_reminder").count() == 1
    assert AuditEvent.objects.filter(action="request.expired").count() == 1

    # The reminder went out by mail, from the worker, to the reviewer.
    mails = [path.read_text() for path in logs["outbox"].glob("*.log")] if logs["outbox"].exists() else []
    reminders = [mail for mail in mails if f"Deadline reminder: {due.reference}" in mail]
    assert len(reminders) == 1 and f"To: {reviewer.email}" in reminders[0]
