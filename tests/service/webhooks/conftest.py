"""Fixtures of the webhook tests: a local HTTP receiver that records what it is sent (and can be
told to answer 500, be slow, or not listen at all), and an API client with an endpoint.

The receivers listen on loopback, which the egress rule refuses by default: every test here runs
with FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS on, except those that turn it off (test_egress.py)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture(autouse=True)
def _private_networks_allowed(settings):
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": True}


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    status: int = 204
    delay: float = 0.0
    received: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/forget"


@pytest.fixture
def receiver():
    holder: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec: Receiver = holder["receiver"]
            rec.received.append({"headers": dict(self.headers), "body": body, "path": self.path})
            if rec.delay:
                time.sleep(rec.delay)
            try:
                self.send_response(rec.status)
                self.end_headers()
            except OSError:
                pass  # the sender gave up (timeout)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["receiver"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder["receiver"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def subscribed(api_client_key, actor_of, settings):
    """subscribed(url, events=...) -> (client, key, endpoint, secret): an API client (create, read,
    trusted_identity) with one endpoint."""
    from service.webhooks.services import webhook_endpoint_create

    settings.FORGET = {**settings.FORGET, "WEBHOOK_TIMEOUT_SECONDS": 0.5}

    def make(
        url: str,
        events=(
            "request.verified",
            "request.approved",
            "request.rejected",
            "request.failed",
            "request.active",
            "request.rolled_back",
            "request.cancelled",
            "request.expired",
        ),
    ):
        client, key = api_client_key(("create", "read", "trusted_identity"))
        endpoint, secret = webhook_endpoint_create(actor=actor_of(client), url=url, events=list(events))
        return client, key, endpoint, secret

    return make


def payload_of(delivery_body: bytes) -> dict:
    return json.loads(delivery_body)
