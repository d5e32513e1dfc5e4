"""The gateway's HTTP server: a threaded WSGI server in the one process that holds the model.

Not gunicorn: its workers are processes, and each would load its own copy of the model. Here one
process holds the model once; each connection gets a thread (Django's ThreadedWSGIServer, the
standard library's wsgiref underneath), and the threads hand their prompts to the engine's single
batch thread. In production, put nginx in front (docker/nginx.conf) for TLS, timeouts and slow
clients, and scale out with more gateway processes.
"""

from __future__ import annotations

import json
import logging

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

from service.common.problems import PROBLEM_CONTENT_TYPE

from .api import openai_error

GATEWAY_URLCONF = "service.inference.urls_gateway"
logger = logging.getLogger(__name__)


class GatewayWSGIHandler(WSGIHandler):
    """Django's WSGI handler with the gateway's URLconf (and the settings' middleware).

    Problems answered before any view runs (the shared middleware's 413 for a body over the limit)
    get OpenAI's `error` member here, like the views' own problems."""

    def get_response(self, request):
        request.urlconf = GATEWAY_URLCONF
        response = super().get_response(request)
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
