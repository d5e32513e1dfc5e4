"""OpenAI's error object ({message, type, code, param}) for the gateway's problem+json errors.

The gateway answers errors as problem+json like the rest of the service; they also carry OpenAI's
`error` member so that OpenAI client libraries show the reason. The views add it to a problem body
(api.py, server.py), and a stream that has begun sends it as its last chunk (gateway.py).
"""

from __future__ import annotations

from service.common.problems import problem_exception_handler


def openai_param(field: str | None) -> str | None:
    """OpenAI names the request parameter at fault (`prompt`, `messages`, `max_tokens`), not the
    path inside it (`prompt.0`, `messages.2.content`)."""
    return field.split(".", 1)[0] if field else None


def openai_error(problem: dict) -> dict:
    """OpenAI's error object for a problem body: {message, type, code, param}."""
    errors = problem.get("errors") or []
    message = problem.get("detail", "")
    if errors and problem.get("code") != "context_length_exceeded":
        message = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in errors)
    return {
        "message": message,
        "type": "invalid_request_error" if problem.get("status", 500) < 500 else "server_error",
        "code": problem.get("code"),
        "param": openai_param(errors[0].get("field")) if errors else None,
    }


def openai_error_for(exc: BaseException) -> dict:
    """The OpenAI error object for an exception raised once a stream has begun."""
    response = problem_exception_handler(exc, {}) if isinstance(exc, Exception) else None
    if response is not None and isinstance(response.data, dict):
        return openai_error(response.data)
    return {"message": "An unexpected error occurred; quote the request id.", "type": "server_error", "code": "internal_error", "param": None}
