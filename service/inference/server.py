"""The gateway's HTTP servers, in the one process that holds the model.

`uvicorn` (the default): an ASGI server (uvicorn, h11) in front of Django's ASGI handler. One
event loop takes every connection (keep-alive, many at once, streamed answers that wait without
holding a thread); each call's view runs on a thread of its own and hands its prompts to the
engine's single batch thread; a client that disconnects is noticed at once and its rows cancelled.
On SIGTERM it stops accepting connections, lets the calls in flight finish (up to
--graceful-timeout seconds) and closes idle keep-alive connections. Never more than one process:
each worker process would load its own copy of the model (scale out with more gateways instead).

`threaded`: the previous server, Django's ThreadedWSGIServer (the standard library's wsgiref, a
thread per connection, HTTP/1.0 without keep-alive). Kept to compare against (bench/gateway.py
--servers) and as a fallback; not for production.

Both serve the same URLconf (urls_gateway.py) and answer problems raised before any view (the
shared middleware's 413) with OpenAI's `error` member, like the views' own problems.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections

from service.common.problems import PROBLEM_CONTENT_TYPE

from .openai_errors import openai_error

GATEWAY_URLCONF = "service.inference.urls_gateway"
# The gateway's middleware: the request id, the body limit and the Host check, all of them able to
# run on the event loop (no thread hop each under ASGI). The web app's sessions, CSRF, messages,
# auth and clickjacking middleware serve pages the gateway does not have (its API authenticates
# every call with a key or a staff token, docs/gateway.md).
GATEWAY_MIDDLEWARE = [
    "service.common.middleware.RequestIdMiddleware",
    "service.common.middleware.BodySizeLimitMiddleware",
    "service.common.middleware.HostCheckMiddleware",
]
SERVERS = ("uvicorn", "threaded")
logger = logging.getLogger(__name__)


def _with_openai_error(response):
    if response.get("Content-Type") == PROBLEM_CONTENT_TYPE and not getattr(response, "streaming", False):
        try:
            body = json.loads(response.content)
        except ValueError:
            return response
        if isinstance(body, dict) and "error" not in body:
            body["error"] = openai_error(body)
            response.content = json.dumps(body)
            if response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
    return response


class _GatewayMiddleware:
    def load_middleware(self, is_async=False):
        # settings.MIDDLEWARE is read here only; the gateway process serves no other handler.
        web_middleware, settings.MIDDLEWARE = settings.MIDDLEWARE, GATEWAY_MIDDLEWARE
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = web_middleware


class GatewayWSGIHandler(_GatewayMiddleware, WSGIHandler):
    """Django's WSGI handler with the gateway's URLconf and middleware."""

    def get_response(self, request):
        request.urlconf = GATEWAY_URLCONF
        return _with_openai_error(super().get_response(request))


class GatewayASGIHandler(_GatewayMiddleware, ASGIHandler):
    """Django's ASGI handler with the gateway's URLconf and middleware."""

    async def get_response_async(self, request):
        request.urlconf = GATEWAY_URLCONF
        return _with_openai_error(await super().get_response_async(request))


# --- the threaded WSGI server (the previous one) ---------------------------------------------------


class GatewayServer(ThreadedWSGIServer):
    request_queue_size = 128  # concurrent clients queue in the kernel instead of being refused


class QuietRequestHandler(WSGIRequestHandler):
    """One access-log line per request on the django.server logger (no colour codes)."""

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        logger.info("%s %s", self.address_string(), format % args)


def make_server(host: str, port: int) -> GatewayServer:
    server = GatewayServer((host, port), QuietRequestHandler, ipv6=":" in host)
    server.set_app(GatewayWSGIHandler())
    return server


# --- uvicorn ---------------------------------------------------------------------------------------


def make_uvicorn_server(
    host: str,
    port: int,
    *,
    keep_alive: float = 5.0,
    graceful_timeout: float = 30.0,
    limit_concurrency: int | None = 1024,
    access_log: bool = True,
    on_started=None,
):
    """A uvicorn server for the gateway's ASGI handler. Call .run() on the main thread: it handles
    SIGTERM and SIGINT itself (graceful shutdown), then re-raises them to the previous handlers.
    `on_started()` is called once it listens."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and on_started is not None:
                on_started()

    # Each call's view runs on a thread of its own (Django's ASGI handler): a persistent database
    # connection would stay open, unused, after its thread ends. Connections close after each call.
    for alias in connections.settings:
        connections.settings[alias]["CONN_MAX_AGE"] = 0
    config = uvicorn.Config(
        GatewayASGIHandler(),
        host=host,
        port=port,
        http="h11",
        lifespan="off",
        log_config=None,  # Django's LOGGING: uvicorn's loggers are 'uvicorn.error' and 'uvicorn.access'
        access_log=access_log,
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=graceful_timeout,
        limit_concurrency=limit_concurrency,
        backlog=2048,
        server_header=False,
    )
    return Server(config)
