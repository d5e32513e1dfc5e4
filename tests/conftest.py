"""Fixtures shared by all tests. Service tests run on the real database that DATABASE_URL names
(bin/test points it at PostgreSQL); engine tests need no database."""

from __future__ import annotations

import itertools

import pytest

_counter = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Each test starts with no call counted against any rate limit (they count in the cache,
    the process's memory here; tests/service/common/test_ratelimits.py runs them on Redis)."""
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        cache.clear()
    yield


@pytest.fixture
def mailoutbox_codes(mailoutbox):
    """The six-digit codes in the emails sent so far, oldest first."""
    import re

    def codes() -> list[str]:
        # Anchored on the sentence that carries the code: a reference can be all digits too
        # (RTBF-742483), and it appears in the same email.
        return [m for mail in mailoutbox for m in re.findall(r"verification code is (\d{6})\b", mail.body)]

    return codes


@pytest.fixture
def staff(db):
    """staff('reviewer') -> a user with that role (also 'auditor', 'admin')."""
    from service.accounts.roles import Role
    from service.accounts.services import staff_user_ensure

    def make(role: str, username: str | None = None):
        name = username or f"{role}{next(_counter)}"
        return staff_user_ensure(username=name, password="pass-for-tests-123", role=Role(role), email=f"{name}@staff.example")

    return make


@pytest.fixture
def staff_client(staff):
    """staff_client('reviewer') -> a test Client logged in as a new user with that role
    (staff_client('reviewer', user=u): logged in as `u`)."""
    from django.test import Client

    def make(role: str, *, user=None) -> Client:
        http = Client()
        http.force_login(user or staff(role))
        return http

    return make


@pytest.fixture
def actor_of():
    from service.accounts.roles import actor_for_client, actor_for_user

    def make(who):
        return actor_for_client(who) if who.__class__.__name__ == "ApiClient" else actor_for_user(who)

    return make


@pytest.fixture
def api_client_key(db):
    """api_client_key(scopes=('create','read')) -> (ApiClient, key)."""
    from service.accounts.services import api_client_create

    def make(scopes=("create", "read"), name: str | None = None):
        return api_client_create(name=name or f"client{next(_counter)}", scopes=list(scopes))

    return make


@pytest.fixture
def store(settings, tmp_path):
    """The adapter registry's filesystem store (the default backend), under tmp_path."""
    settings.ADAPTERS_STORE_URL = ""
    settings.ADAPTERS_STORE_ROOT = tmp_path / "store"
    return tmp_path / "store"


@pytest.fixture(scope="session")
def tiny_config():
    """The DemoModelConfig of the tiny Llama preset (24 people, 4 attributes)."""
    from workers.engine.demo_model import DemoModelConfig

    return DemoModelConfig.preset_config("tiny")


@pytest.fixture(scope="session")
def tiny_world(tiny_config):
    """The demo world the tiny demo model is trained on (a DemoWorld)."""
    return tiny_config.build_world()


@pytest.fixture(scope="session")
def tiny_demo_model(tiny_config):
    """Directory of the tiny Llama demo model (Hugging Face format), built once into the demo-model
    cache ($UNLEARN_CACHE_DIR, see tests/workers/conftest.py) and reused from there."""
    from workers.engine.demo_model import build_demo_model

    return build_demo_model(tiny_config)


@pytest.fixture(scope="session")
def tiny_subject(tiny_demo_model, tiny_world):
    """The tiny-world Person the happy-path pipeline tests forget: chosen by a stated rule on the
    base model's answers (tests/provable.py), since who is provable depends on the build."""
    from tests.provable import provable_person

    return provable_person(tiny_demo_model, tiny_world)


@pytest.fixture(scope="session", autouse=True)
def _audit_log_flushable():
    """Transactional tests (transactional_db, live_server) end with Django's flush, a TRUNCATE of
    every table, which the audit log's append-only trigger rightly refuses. Let that one statement
    through: the flush runs with session_replication_role=replica (SET LOCAL, so only inside the
    flush's own transaction; needs the PostgreSQL superuser that bin/test uses). The trigger stays
    active for everything the tests themselves do."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        if self.connection.vendor == "postgresql" and any("audit_auditevent" in sql for sql in sql_list):
            sql_list = ["SET LOCAL session_replication_role = replica", *sql_list]
        return original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original
