"""Fixtures of the pipeline tests: the tiny demo model and its world, the demo corpus loaded into the
index, settings pointing the worker side at them, and requests filed through the services."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (tests/workers/conftest.py)

from io import StringIO  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from django.core.management import call_command  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_demo_model) -> Path:
    """The tiny demo model (tests/conftest.py's tiny_demo_model: built once and cached; its world is
    tests/conftest.py's tiny_world)."""
    return tiny_demo_model


@pytest.fixture
def pipeline_settings(settings, tiny_model_dir, tmp_path):
    """The worker side on the tiny model, with its scratch space and adapter store under tmp_path."""
    settings.BASE_MODEL_DIR = str(tiny_model_dir)
    settings.FORGET_DEMO_PRESET = "tiny"
    settings.UNITS_WORK_DIR = tmp_path / "units"
    settings.ADAPTERS_STORE_URL = ""
    settings.ADAPTERS_STORE_ROOT = tmp_path / "store"
    settings.FORGET = {**settings.FORGET, "JOB_HEARTBEAT_SECONDS": 0.5, "JOB_PROGRESS_SECONDS": 0.2}
    return settings


@pytest.fixture
def demo_corpus(db, tiny_model_dir):
    """The tiny world's training documents in the corpus index (the demo's `load_demo_corpus`)."""
    call_command("load_demo_corpus", "--model-dir", str(tiny_model_dir), stdout=StringIO())


@pytest.fixture
def trusted_client(db, api_client_key, actor_of):
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    return actor_of(client)


@pytest.fixture
def file_request(trusted_client):
    """file_request(name, facts=[...], evidence=[...]) -> a verified request filed through the API service."""
    from service.requests.services import request_create_api

    def make(name: str, *, email: str = "subject@example.org", facts=("placeholder fact",), evidence=()):
        request, _ = request_create_api(
            actor=trusted_client,
            idempotency_key=f"unlearning-{next(_counter)}",
            name=name,
            email=email,
            regulation="gdpr",
            facts=list(facts),
            evidence_prompts=list(evidence),
        )
        return request

    return make


@pytest.fixture
def sent_jobs(monkeypatch):
    """Records the job messages the service hands to the broker instead of sending them (the
    broker is the boundary here; the integration tests use a real one)."""
    sent = []
    fake_broker(monkeypatch, lambda args=None, task_id=None, **kwargs: sent.append({"args": args, "task_id": task_id}))
    return sent


def fake_broker(monkeypatch, send_job):
    """Job messages (the run_job task, sent by name) go to `send_job(args=..., task_id=...)`; any
    other task is sent as usual."""
    from service.common.celery_app import app
    from service.unlearning.services import RUN_JOB_TASK

    send_task = app.send_task

    def send(name, args=None, kwargs=None, **options):
        if name == RUN_JOB_TASK:
            return send_job(args=args, **options)
        return send_task(name, args=args, kwargs=kwargs, **options)

    monkeypatch.setattr(app, "send_task", send)
