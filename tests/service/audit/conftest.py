"""Fixtures of the audit log tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_chain_checkpoint():
    """The page's chain check resumes from a checkpoint in Django's cache: every test starts
    without one, as a freshly started web process does."""
    from django.core.cache import cache

    from service.audit.selectors import _checkpoint_key

    cache.delete(_checkpoint_key())
    yield
    cache.delete(_checkpoint_key())


@pytest.fixture
def auditor(client, staff):
    """Django's test `client`, logged in as the auditor 'audrey' (returned)."""
    user = staff("auditor", username="audrey")
    client.force_login(user)
    return user
