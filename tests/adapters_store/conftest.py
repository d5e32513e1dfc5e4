"""Fixtures for the registry tests: real unit directories (units.py) and
erasure requests in a chosen status."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from .units import write_test_unit

_counter = itertools.count()


@pytest.fixture
def make_unit(tmp_path):
    """make_unit('unit-a') -> the path of a freshly written unit directory with that id."""

    def make(unit_id: str | None = None, *, detector: bool = True, base_fingerprint: str = "f" * 64) -> Path:
        unit_id = unit_id or f"unit-{next(_counter)}"
        return write_test_unit(tmp_path / "engine-out" / unit_id, seed=next(_counter), detector=detector, base_fingerprint=base_fingerprint)

    return make


@pytest.fixture
def erasure(db, api_client_key, actor_of, staff):
    """erasure(status='staged', approver=user) -> an ErasureRequest approved by `approver` (a new
    reviewer by default), then put in `status` directly (the request pipeline is not under test)."""
    from service.requests.models import ErasureRequest
    from service.requests.services import request_approve, request_create_api

    client, _ = api_client_key(("create", "read", "trusted_identity"))

    def make(status: str = "staged", approver=None):
        approver = approver or staff("reviewer")
        request, _ = request_create_api(
            actor=actor_of(client),
            idempotency_key=f"k{next(_counter)}",
            name="Alice Marlow",
            email="alice@example.org",
            regulation="gdpr",
            facts=["Alice Marlow lives in Lisbon"],
            evidence_prompts=[],
        )
        request_approve(actor=actor_of(approver), request_id=request.pk)
        ErasureRequest.objects.filter(pk=request.pk).update(status=status)
        request.refresh_from_db()
        return request

    return make


@pytest.fixture
def register(store, make_unit):
    """register('unit-a', request=..., passed=True) -> the AdapterVersion of a new, registered unit."""
    from adapters_store.services import adapter_register
    from service.accounts.roles import SYSTEM

    def make(unit_id: str | None = None, *, request=None, passed: bool = True, metrics: dict | None = None):
        return adapter_register(
            unit_dir=make_unit(unit_id),
            actor=SYSTEM,
            request=request,
            certificate_passed=passed,
            certificate_metrics=metrics if metrics is not None else {"leak_upper_bound": 0.02, "retain_ratio": 0.97},
        )

    return make
