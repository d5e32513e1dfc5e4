"""Status webhooks with a real Celery worker: a product's endpoint receives the signed
`request.verified` of its request (after one 500, retried by the worker), then `request.active`
with the effective erasure time, and verifies both with the receiver code of docs/api.md.

The worker is the command an operator runs (`celery -A service.config worker`) on Redis and the
PostgreSQL test database; the endpoint is a real HTTP server on loopback in this process (so the
worker runs with FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1)."""

from __future__ import annotations

import io
import json
import os
import re
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from service.accounts.roles import SYSTEM
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api, request_mark_active
from service.webhooks.models import WebhookDelivery
from service.webhooks.services import webhook_endpoint_create
from tests.integration.processes import (
    BROKER_URL,
    LoggedProcess,
    celery_worker_command,
    database_url,
    purge_queues,
    purge_queues_or_fail,
    require_postgresql,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def documented_receiver(secret: str, failures: int):
    """The Receiver class of docs/api.md, run as written, behind a first answer of 500 (`failures` times)."""
    source = re.search(r"<!-- webhook-receiver:start -->\n```python\n(.*?)```\n<!-- webhook-receiver:end -->", DOCS.read_text(), re.S).group(1)
    os.environ["WEBHOOK_SECRET"] = secret
    namespace: dict = {"__name__": "receiver"}
    exec(compile(source, "docs/api.md receiver", "exec"), namespace)  # noqa: S102 - our own docs
    received: list[dict] = []
    left = [failures]

    class Flaky(namespace["Receiver"]):
        def do_POST(self):
            if left[0] > 0:
                left[0] -= 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(500)
                self.end_headers()
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"headers": dict(self.headers), "body": body})
            self.rfile = io.BytesIO(body)  # the documented handler reads the body itself
            super().do_POST()

        def log_message(self, *args):
            pass

    return Flaky, received


def test_a_product_receives_signed_status_webhooks_from_the_worker(transactional_db, api_client_key, actor_of, tmp_path, settings):
    require_postgresql("worker")
    purge_queues_or_fail()
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": True}  # the endpoint is on loopback (here and in the worker)
    client, _ = api_client_key(("create", "read", "trusted_identity"))
    endpoint, secret = webhook_endpoint_create(actor=actor_of(client), url="http://127.0.0.1:9/placeholder", events=["request.verified", "request.active"])
    handler, received = documented_receiver(secret, failures=1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    type(endpoint).objects.filter(pk=endpoint.pk).update(url=f"http://127.0.0.1:{server.server_address[1]}/hooks")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "FORGET_VAR_DIR": str(tmp_path / "var"),
        "FORGET_WEBHOOK_RETRY_SECONDS": "1,1,1",
        "FORGET_WEBHOOK_TIMEOUT_SECONDS": "3",
        "FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    worker = LoggedProcess(celery_worker_command("webhooks-test"), env=env, log=tmp_path / "worker.log")
    try:
        request, _ = request_create_api(
            actor=actor_of(client),
            idempotency_key="wh-int",
            name="Ada Lovelace",
            email="ada@example.org",
            regulation="gdpr",
            facts=["Ada Lovelace lives in Marylebone"],
            evidence_prompts=[],
        )
        delivered = lambda event: WebhookDelivery.objects.filter(event_type=event, status="delivered").first()  # noqa: E731
        verified = wait_for(lambda: delivered("request.verified"), "request.verified was not delivered", seconds=150, logs=[worker.log], alive=worker)
        assert [(a.number, a.status_code) for a in verified.attempts.order_by("number")] == [(1, 500), (2, 204)]
        ErasureRequest.objects.filter(pk=request.pk).update(status="staged")
        effective = timezone.now().replace(microsecond=0)
        request_mark_active(request_id=request.pk, effective_at=effective, actor=SYSTEM)
        wait_for(lambda: delivered("request.active"), "request.active was not delivered", seconds=60, logs=[worker.log], alive=worker)
    finally:
        worker.stop()
        server.shutdown()
        server.server_close()
        purge_queues()
    events = [Webhook(secret).verify(r["body"], r["headers"]) for r in received]  # every delivery verifies
    assert [e["type"] for e in events] == ["request.verified", "request.active"]
    assert events[1]["data"]["effective_at"] == effective.isoformat().replace("+00:00", "Z") and events[1]["data"]["reference"] == request.reference
    assert len({r["headers"]["webhook-id"] for r in received}) == 2
    assert "Ada" not in json.dumps(events)
