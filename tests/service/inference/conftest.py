"""Fixtures of the gateway tests: a GatewayEngine on the tiny demo model (tests/conftest.py's
tiny_demo_model, shared with the engine tests, as is the `store` fixture), one real unit trained on
it that forgets one person, registry helpers, and the gateway's URLconf for Django's test client."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (tests/workers/conftest.py)

import pytest  # noqa: E402

from tests.torch_threads import one_intra_op_thread  # noqa: E402


@pytest.fixture(scope="session")
def one_torch_thread():
    """One intra-op torch thread for the session, once a model is loaded (tests/torch_threads.py)."""
    with one_intra_op_thread():
        yield


@pytest.fixture(scope="session")
def tiny_base(tiny_demo_model, one_torch_thread):
    from workers.engine.base_model import load_base_model

    return load_base_model(tiny_demo_model, device="cpu")


@pytest.fixture(scope="session")
def tiny_encoder(one_torch_thread):
    from workers.engine.detector import load_encoder

    return load_encoder(device="cpu")


@pytest.fixture(scope="session")
def people(tiny_world):
    """(forgotten, kept): two people of the tiny world who share no attribute value."""
    first = tiny_world.people[0]
    second = next(p for p in tiny_world.people[1:] if p not in tiny_world.neighbours(first) and not tiny_world.shared(first, p))
    return first, second


@pytest.fixture(scope="session")
def trained_unit(tiny_base, tiny_encoder, tiny_world, people, tmp_path_factory):
    """A real unit (detector + orthogonal adapter) that forgets the first person; about 3 s on a CPU."""
    return train_person_unit(tiny_base, tiny_encoder, tiny_world, people[0], tmp_path_factory.mktemp("units") / "unit-forget-first")


def train_person_unit(base, encoder, world, person, out_dir):
    from workers.engine.forget_set import ForgetSet, forget_set_for_people
    from workers.engine.pipeline import train_unit

    forget = forget_set_for_people(world, [person])
    return train_unit(base, ForgetSet(forget.items, subjects=(person.name,)), out_dir=out_dir, encoder=encoder)


@pytest.fixture
def engine(tiny_base, tiny_encoder):
    """A fresh GatewayEngine (its own gate and batch thread) over the session's tiny model."""
    from service.inference.engine import GatewayEngine

    engine = GatewayEngine(tiny_base, tiny_encoder, max_batch=8)
    yield engine
    engine.close()


@pytest.fixture
def gateway_urls(settings):
    """Django's test client talks to the gateway's URLconf, as run_gateway serves it."""
    from service.inference.server import GATEWAY_URLCONF

    settings.ROOT_URLCONF = GATEWAY_URLCONF


def clone_unit(source, out_dir, unit_id: str):
    """A copy of a trained unit under another unit id (a new manifest, same adapter and detector):
    a second real, servable unit without training again."""
    import shutil

    from workers.engine.artifacts import load_unit, write_unit

    loaded = load_unit(source)
    manifest = loaded.manifest
    write_unit(
        out_dir,
        loaded.adapter,
        unit_id=unit_id,
        config=(manifest.config or {}).get("unlearn"),
        detector_saver=lambda path: shutil.copytree(source / "detector", path, dirs_exist_ok=True),
        detector_config=(manifest.config or {}).get("detector"),
        base_fingerprint=manifest.base_fingerprint,
        forget_set_hash=manifest.forget_set_hash,
    )
    return out_dir


@pytest.fixture
def erasure_request(db, api_client_key, actor_of):
    """erasure_request('staged') -> a request of 'Elowen' in that status (the pipeline that gets it
    there is not under test here: the status is set directly)."""
    import itertools

    from service.requests.models import ErasureRequest
    from service.requests.services import request_create_api

    client, _ = api_client_key(("create", "read", "trusted_identity"))
    counter = itertools.count()

    def make(status: str = "staged", email: str = "subject@example.org"):
        request, _ = request_create_api(
            actor=actor_of(client),
            idempotency_key=f"gw-{next(counter)}",
            name="Elowen",
            email=email,
            regulation="gdpr",
            facts=["Elowen lives in Ravensway"],
            evidence_prompts=[],
        )
        ErasureRequest.objects.filter(pk=request.pk).update(status=status)
        request.refresh_from_db()
        return request

    return make


@pytest.fixture
def register(store):
    """register(unit_dir, request) -> the AdapterVersion, registered by the system with a passed
    certificate (so activated at once: FORGET['AUTO_ACTIVATE'] is on by default)."""
    from adapters_store.services import adapter_register
    from service.accounts.roles import SYSTEM

    def make(unit_dir, request=None, passed: bool = True):
        return adapter_register(unit_dir=unit_dir, actor=SYSTEM, request=request, certificate_passed=passed, certificate_metrics={"passed": passed})

    return make


@pytest.fixture
def uvicorn_gateway(engine, transactional_db, settings):
    """run_gateway's production server (uvicorn, the ASGI handler) on a free port in a thread,
    serving `engine` (no registry watcher). Yields the base URL; the Gateway is `current()`."""
    import threading
    import time

    from service.inference.gateway import Gateway, install
    from service.inference.server import make_uvicorn_server
    from tests.integration.processes import free_port

    port = free_port()
    started = threading.Event()
    server = make_uvicorn_server("127.0.0.1", port, graceful_timeout=5, access_log=False, on_started=started.set)
    install(Gateway(engine, gateway_id="uvicorn-test", request_timeout=60))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    assert started.wait(30), "uvicorn did not start"
    url = f"http://127.0.0.1:{port}"
    settings.GATEWAY_URL = url
    yield url
    server.should_exit = True
    thread.join(15)
    install(None)
    time.sleep(0.05)
