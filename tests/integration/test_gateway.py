"""The inference gateway as a real process: `manage.py run_gateway` on the tiny demo model, the
PostgreSQL test database and a filesystem adapter store, driven over HTTP while this test changes
the registry the way the pipeline and the reviewers do.

- A unit registered (and activated) reaches the running gateway within 5 seconds, without a
  restart; the gateway reports it, the request becomes `active` with the confirmation time as its
  effective erasure time, and the subject gets the email. The gateway then refuses the forgotten
  person's facts on the trained and the held-out phrasings and still answers about someone else.
  Deactivated, the unit is gone from the gateway within 5 seconds.
- A unit whose stored adapter file was altered before the gateway loads it is refused: the
  registry's audit log has `adapter.integrity_failed`, the request stays unconfirmed, and the
  gateway keeps serving its other units.

Nothing is mocked. The gateway process is always stopped in teardown.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters_store.models import GatewayReport
from adapters_store.services import adapter_activate, adapter_deactivate
from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from tests.integration.processes import LoggedProcess, database_url, free_port, require_postgresql, tail, wait_for
from tests.service.inference.conftest import (  # noqa: F401 - fixtures
    clone_unit,
    erasure_request,
    one_torch_thread,
    people,
    register,
    tiny_base,
    tiny_encoder,
    trained_unit,
)
from workers.engine.prompting import contains_value, normalise

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PROPAGATION_SECONDS = 5.0  # a registry change must reach a running gateway within this
STARTUP_SECONDS = 240  # importing torch and loading two models on a busy two-core machine
GATEWAY_ID = "integration-gateway"


@dataclass
class RunningGateway:
    process: LoggedProcess
    url: str
    outbox: Path
    key: str

    def tail(self, lines: int = 60) -> str:
        return tail(self.process.log, lines)

    def call(self, method: str, path: str, body=None, *, auth: bool = True, raw: bytes | None = None) -> tuple[int, dict]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        if auth:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def health(self) -> dict:
        status, body = self.call("GET", "/healthz", auth=False)
        assert status == 200, body
        return body

    def generate(self, questions: list[str]) -> list[dict]:
        status, body = self.call("POST", "/api/v1/generate", {"prompts": questions, "max_tokens": 40})
        assert status == 200, body
        return body["results"]

    def wait_for(self, condition, what: str, seconds: float) -> float:
        """Polls `condition` until it holds; returns the seconds it took."""
        started = time.monotonic()
        wait_for(condition, what, seconds=seconds, logs=[self.process.log], every=0.1, lines=60, alive=self.process)
        return time.monotonic() - started


@pytest.fixture
def gateway(transactional_db, store, tiny_demo_model, api_client_key, tmp_path) -> Iterator[RunningGateway]:
    require_postgresql("gateway")
    _, key = api_client_key(("generate",))
    port = free_port()
    outbox = tmp_path / "outbox"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "BASE_MODEL_DIR": str(tiny_demo_model),
        "ADAPTERS_STORE_URL": "",
        "ADAPTERS_STORE_ROOT": str(store),
        "FORGET_VAR_DIR": str(tmp_path / "var"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "run_gateway", "--port", str(port), "--gateway-id", GATEWAY_ID, "--device", "cpu", "--torch-threads", "1"]
    process = LoggedProcess(command, env=env, log=tmp_path / "gateway.log")
    running = RunningGateway(process, f"http://127.0.0.1:{port}", outbox, key)
    try:

        def answering() -> bool:
            try:
                with urllib.request.urlopen(running.url + "/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        running.wait_for(answering, "the gateway did not start answering", STARTUP_SECONDS)
        yield running
    finally:
        process.stop(grace_seconds=30)  # SIGTERM: the gateway shuts down cleanly


def _sent_mail(outbox: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(outbox.glob("*"))) if outbox.exists() else ""


def _leaks(answers: list[dict], questions) -> int:
    return sum(contains_value(answer["text"], qa.answer) for answer, qa in zip(answers, questions))


def test_a_registry_change_reaches_the_running_gateway_which_then_refuses_the_forgotten_person(
    gateway, trained_unit, register, erasure_request, tiny_world, tiny_demo_model, people, staff, actor_of
):
    forgotten, other = people
    trained, heldout = tiny_world.questions(forgotten, "trained"), tiny_world.questions(forgotten, "heldout")
    kept = tiny_world.questions(other, "trained")
    started = gateway.health()
    assert started["units"] == [] and started["generation"] == 0 and started["model"] == Path(tiny_demo_model).name

    # Before: the base model reveals the person (only the facts it knows count below).
    before = gateway.generate([qa.question for qa in trained + heldout + kept])
    known_trained = [qa for qa, a in zip(trained, before) if contains_value(a["text"], qa.answer)]
    known_heldout = [qa for qa, a in zip(heldout, before[len(trained) :]) if contains_value(a["text"], qa.answer)]
    kept_before = [a["text"] for a in before[len(trained) + len(heldout) :]]
    assert len(known_trained) >= len(trained) - 1 and len(known_heldout) >= 2

    erasure = erasure_request("staged", email="elowen@example.org")
    version = register(trained_unit, erasure)
    took = gateway.wait_for(lambda: gateway.health()["units"] == [version.unit_id], "the registered unit was not loaded", PROPAGATION_SECONDS)
    print(f"registration -> loaded by the running gateway: {took:.2f} s")

    # The gateway reported it, and that confirmation made the request active and told the subject.
    gateway.wait_for(lambda: ErasureRequest.objects.get(pk=erasure.pk).status == "active", "the request did not become active", PROPAGATION_SECONDS)
    erasure.refresh_from_db()
    report = GatewayReport.objects.filter(gateway_id=GATEWAY_ID, unit_ids=[version.unit_id]).order_by("at").first()
    assert report is not None and erasure.effective_at == report.at
    assert AuditEvent.objects.filter(action="gateway.loaded", target_id=GATEWAY_ID).exists()
    assert AuditEvent.objects.get(action="request.active", target_id=erasure.reference).data["gateway_id"] == GATEWAY_ID
    gateway.wait_for(lambda: erasure.reference in _sent_mail(gateway.outbox), "the subject was not emailed", PROPAGATION_SECONDS)
    mail = _sent_mail(gateway.outbox)
    assert "elowen@example.org" in mail and f"Since {erasure.effective_at:%Y-%m-%d %H:%M} UTC the model no longer reveals" in mail

    # After: nothing the base model knew comes out on the trained phrasings, at most a quarter on
    # phrasings never trained on; the other person is answered as before; the gate says why.
    after = gateway.generate([qa.question for qa in known_trained + known_heldout + kept])
    assert _leaks(after[: len(known_trained)], known_trained) == 0
    assert _leaks(after[len(known_trained) : len(known_trained) + len(known_heldout)], known_heldout) <= len(known_heldout) * 0.25
    kept_after = [a["text"] for a in after[len(known_trained) + len(known_heldout) :]]
    assert sum(normalise(a) == normalise(b) for a, b in zip(kept_after, kept_before)) >= 0.95 * len(kept)
    assert all(a["gate"]["fired"] and a["gate"]["units"][0]["request"] == erasure.reference for a in after[: len(known_trained)])
    assert not any(a["gate"]["fired"] for a in after[len(known_trained) + len(known_heldout) :])

    # The OpenAI endpoint serves the same gated model.
    status, chat = gateway.call(
        "POST", "/v1/chat/completions", {"model": started["model"], "messages": [{"role": "user", "content": known_trained[0].question}]}
    )
    assert status == 200 and not contains_value(chat["choices"][0]["message"]["content"], known_trained[0].answer)

    # Deactivated: unloaded within 5 s, and the base model answers again.
    adapter_deactivate(version_id=version.pk, actor=actor_of(staff("reviewer")), reason="integration test")
    took = gateway.wait_for(lambda: gateway.health()["units"] == [], "the deactivated unit was not unloaded", PROPAGATION_SECONDS)
    print(f"deactivation -> unloaded by the running gateway: {took:.2f} s")
    gateway.wait_for(lambda: GatewayReport.objects.filter(gateway_id=GATEWAY_ID, unit_ids=[]).count() >= 2, "the unload was not reported", PROPAGATION_SECONDS)
    assert _leaks(gateway.generate([qa.question for qa in known_trained]), known_trained) >= len(known_trained) - 1


def test_a_unit_tampered_before_loading_is_refused_audited_and_the_gateway_keeps_serving(
    gateway, trained_unit, register, erasure_request, store, tmp_path, tiny_world, people, staff, actor_of, settings
):
    good = register(trained_unit, erasure_request("staged"))
    gateway.wait_for(lambda: gateway.health()["units"] == [good.unit_id], "the good unit was not loaded", PROPAGATION_SECONDS)

    # Registered as a candidate, its stored adapter altered, then activated by a reviewer.
    settings.FORGET = {**settings.FORGET, "AUTO_ACTIVATE": False}
    victim = erasure_request("staged")
    tampered = register(clone_unit(trained_unit, tmp_path / "clone", "unit-tampered"), victim)
    weights = store / tampered.unit_id / "adapter" / "adapter_model.safetensors"
    weights.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    adapter_activate(version_id=tampered.pk, actor=actor_of(staff("reviewer")))

    def refused() -> bool:
        return any(r["unit_id"] == tampered.unit_id for r in gateway.health()["refused"])

    took = gateway.wait_for(refused, "the tampered unit was not refused", PROPAGATION_SECONDS)
    print(f"activation of a tampered unit -> refused by the running gateway: {took:.2f} s")
    [event] = AuditEvent.objects.filter(action="adapter.integrity_failed", target_id=tampered.unit_id)
    assert event.data["file"] == "adapter/adapter_model.safetensors" and event.data["stage"] == "load"
    health = gateway.health()
    assert health["units"] == [good.unit_id] and health["refused"][0]["kind"] == "integrity"
    assert "unit-tampered" in gateway.tail(200) and "ALERT" in gateway.tail(200)
    assert GatewayReport.objects.filter(gateway_id=GATEWAY_ID).order_by("-at").first().unit_ids == [good.unit_id]
    victim.refresh_from_db()
    assert victim.status == "staged" and victim.effective_at is None  # never confirmed: not erased

    # Still serving: the good unit still gates its person, someone else is answered.
    forgotten = tiny_world.questions(people[0], "trained")[0]
    other = tiny_world.questions(people[1], "trained")[0]
    first, second = gateway.generate([forgotten.question, other.question])
    assert first["gate"]["units"] and [u["unit_id"] for u in first["gate"]["units"]] == [good.unit_id]
    assert not contains_value(first["text"], forgotten.answer) and contains_value(second["text"], other.answer)
    # The shared middleware's refusals carry OpenAI's error member over the real server too.
    status, problem = gateway.call("POST", "/v1/completions", raw=b"x" * 300_000)
    assert status == 413 and problem["code"] == "body_too_large" and problem["error"]["code"] == "body_too_large"


def test_the_production_server_streams_to_the_openai_client_and_finishes_streams_in_flight_on_sigterm(gateway, tiny_world, people):
    """run_gateway serves on uvicorn by default: the openai package streams from it over a real
    socket; on SIGTERM a stream already begun is completed (graceful shutdown), new connections are
    refused, and the process exits cleanly."""
    import http.client
    import signal

    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, timeout=60)
    model = client.models.retrieve(gateway.health()["model"]).id
    qa = tiny_world.questions(people[1], "trained")[0]
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": qa.question}], stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and contains_value("".join(c.choices[0].delta.content or "" for c in chunks), qa.answer)
    assert "(uvicorn)" in gateway.tail(200)

    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request(
        "POST",
        "/v1/completions",
        body=json.dumps({"model": model, "prompt": "and", "max_tokens": 40, "stream": True}),
        headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200
    first = response.readline()
    assert first.startswith(b"data: ")
    gateway.process.send_signal(signal.SIGTERM)
    rest = response.read()  # the stream in flight runs to its end
    assert rest.rstrip().endswith(b"data: [DONE]"), rest[-200:]
    conn.close()
    assert gateway.process.wait(timeout=60) == 0
    log = gateway.tail(80)
    assert "SIGTERM, shutting down" in log and "stopped." in log
    with pytest.raises(OSError):
        http.client.HTTPConnection(host, int(port), timeout=5).request("GET", "/healthz")
