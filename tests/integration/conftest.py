"""Fixtures of the integration tests that run real Celery workers (tests/integration/processes.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.integration.processes import (
    BROKER_URL,
    WORKER_VISIBILITY_TIMEOUT,
    LoggedProcess,
    celery_worker_command,
    database_url,
    purge_queues,
    purge_queues_or_fail,
    require_postgresql,
)


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_demo_model) -> Path:
    """The tiny demo model (tests/conftest.py: built once and cached)."""
    return tiny_demo_model


@pytest.fixture
def start_worker(transactional_db, tmp_path, settings, tiny_model_dir) -> Callable[[str], LoggedProcess]:
    """start_worker(name, **env) -> a real GPU-queue worker on Redis db 15 and the test database
    (`env`: more variables for it); every worker started is stopped afterwards, and the queues are
    purged before and after."""
    require_postgresql("worker")
    from service.config.celery import app

    if app.conf.broker_url != BROKER_URL:
        pytest.skip(f"the test process must send to the workers' broker: run with CELERY_BROKER_URL={BROKER_URL} (bin/test sets it)")
    purge_queues_or_fail()

    store = tmp_path / "store"
    settings.ADAPTERS_STORE_URL, settings.ADAPTERS_STORE_ROOT = "", store  # this process reads what the workers store
    call_command("load_demo_corpus", "--model-dir", str(tiny_model_dir), stdout=StringIO())
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_VISIBILITY_TIMEOUT": str(WORKER_VISIBILITY_TIMEOUT),
        "FORGET_VAR_DIR": str(tmp_path / "var"),
        "BASE_MODEL_DIR": str(tiny_model_dir),
        "FORGET_DEMO_PRESET": "tiny",
        "UNITS_WORK_DIR": str(tmp_path / "units"),
        "ADAPTERS_STORE_URL": "",
        "ADAPTERS_STORE_ROOT": str(store),
        "FORGET_JOB_PROGRESS_SECONDS": "0.3",
        "FORGET_JOB_HEARTBEAT_SECONDS": "1",
        "FORGET_JOB_STALE_SECONDS": "5",
        "OMP_NUM_THREADS": "1",  # two shared cores (tests/workers/conftest.py)
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONUNBUFFERED": "1",
    }
    processes: list[LoggedProcess] = []

    def start(name: str, **extra_env: str) -> LoggedProcess:
        process = LoggedProcess(celery_worker_command(name), env={**env, **extra_env}, log=tmp_path / f"{name}.log")
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            process.stop()
        purge_queues()
