"""The gateway's HTTP endpoints (served by `run_gateway` only: see urls_gateway.py). Thin views:
protocol.py parses and shapes, the Gateway object runs the prompts.

Errors are problem+json like the rest of the service; they also carry OpenAI's `error` member
({message, type, code, param}, openai_errors.py) so that OpenAI client libraries show the reason.
"""

from __future__ import annotations

import json

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from service.common.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_exception_handler

from . import protocol
from .auth import GatewayAuthentication, MayGenerate
from .gateway import current
from .openai_errors import openai_error


def gateway_exception_handler(exc, context):
    response = problem_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        response.data["error"] = openai_error(response.data)
        if response.data.get("code") == "overloaded":
            response["Retry-After"] = "1"
    return response


class GatewayView(APIView):
    authentication_classes = [GatewayAuthentication]
    permission_classes = [MayGenerate]

    def get_exception_handler(self):
        return gateway_exception_handler


class PublicGatewayView(GatewayView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


class Index(PublicGatewayView):
    def get(self, request):
        gateway = current()
        return Response(
            {
                "service": "forget inference gateway",
                "model": gateway.model,
                "endpoints": [
                    "GET /healthz",
                    "GET /v1/models",
                    "GET /v1/models/{id}",
                    "POST /v1/chat/completions",
                    "POST /v1/completions",
                    "POST /api/v1/generate",
                ],
                "docs": "docs/gateway.md",
            }
        )


class Health(PublicGatewayView):
    """Liveness and what is served: the loaded generation, the unit ids, the base fingerprint."""

    def get(self, request):
        return Response(current().health())


class Models(GatewayView):
    def get(self, request):
        return Response({"object": "list", "data": [current().model_object()]})


class Model(GatewayView):
    """GET /v1/models/{id}: the served model, or 404 model_not_found."""

    def get(self, request, model_id):
        gateway = current()
        gateway.check_model(model_id)
        return Response(gateway.model_object())


def event_stream(request, gateway, parsed, *, chat: bool) -> StreamingHttpResponse:
    """The SSE response of a streamed call (the gate has decided for every prompt by then). The ASGI
    server reads it from its event loop, where a client that disconnects cancels the reader; the
    WSGI server reads it from the connection's thread and closes it when a write fails."""
    writer = protocol.ChunkWriter(chat=chat, model=gateway.model, system_fingerprint=gateway.system_fingerprint, include_usage=parsed.include_usage)
    stream = gateway.stream(parsed, writer)
    content = stream.__aiter__() if isinstance(request._request, ASGIRequest) else iter(stream)
    response = StreamingHttpResponse(content, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


class ChatCompletions(GatewayView):
    def post(self, request):
        gateway = current()
        parsed = protocol.parse_chat_completion(request.data, max_tokens_limit=gateway.max_tokens_limit)
        gateway.check_model(parsed.model)
        if parsed.stream:
            return event_stream(request, gateway, parsed, chat=True)
        [completion] = gateway.complete(parsed)
        return Response(protocol.chat_completion_body(completion, model=gateway.model, system_fingerprint=gateway.system_fingerprint))


class Completions(GatewayView):
    def post(self, request):
        gateway = current()
        parsed = protocol.parse_completion(request.data, max_tokens_limit=gateway.max_tokens_limit)
        gateway.check_model(parsed.model)
        if parsed.stream:
            return event_stream(request, gateway, parsed, chat=False)
        completions = gateway.complete(parsed)
        return Response(protocol.completion_body(completions, model=gateway.model, system_fingerprint=gateway.system_fingerprint))


class Generate(GatewayView):
    """Answers plus the gate decision per prompt: which units fired, with what weight."""

    def post(self, request):
        gateway = current()
        parsed = protocol.parse_generate(request.data, max_tokens_limit=gateway.max_tokens_limit)
        completions = gateway.complete(parsed)
        requests = gateway.unit_requests()
        return Response(
            protocol.generate_body(parsed, completions, model=gateway.model, generation=gateway.generation, units_loaded=len(requests), unit_requests=requests)
        )


def _problem(request, **fields):
    body = problem_body(**fields)
    body["error"] = openai_error(body)
    return HttpResponse(json.dumps(body), status=fields["status"], content_type=PROBLEM_CONTENT_TYPE)


def not_found(request, exception=None):
    return _problem(request, status=404, code="not_found", title="Not found", detail=f"No endpoint at {request.path}; see GET / for the list.")


def server_error(request):
    return _problem(request, status=500, code="internal_error", title="Internal server error", detail="An unexpected error occurred; quote the request id.")
