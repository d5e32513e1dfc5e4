"""The web app's HTTP client for the gateway (GATEWAY_URL). Standard library only, torch-free.

Every failure comes out as GatewayUnreachable (no HTTP answer: down, refused, timed out) or
GatewayError (an HTTP error answer, with the gateway's problem detail), each with a message a
reviewer can act on.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings

from .auth import STAFF_SCHEME, staff_token_for


class GatewayUnreachable(Exception):
    pass


class GatewayError(Exception):
    def __init__(self, message: str, *, status: int, code: str = ""):
        super().__init__(message)
        self.status, self.code = status, code


def gateway_url() -> str:
    return settings.GATEWAY_URL.rstrip("/")


def _call(method: str, path: str, *, body: dict | None = None, headers: dict[str, str] | None = None, timeout: float) -> dict[str, Any]:
    url = gateway_url() + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json", **(headers or {})})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - GATEWAY_URL is the operator's setting
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read() or b"{}")
        except ValueError:
            problem = {}
        detail = problem.get("detail") or exc.reason or "no detail"
        errors = problem.get("errors") or []
        if errors:
            detail = "; ".join(e.get("message", "") for e in errors if isinstance(e, dict)) or detail
        raise GatewayError(f"The gateway answered {exc.code}: {detail}", status=exc.code, code=problem.get("code", "")) from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise GatewayUnreachable(f"The inference gateway at {gateway_url()} is not reachable ({reason}).") from None
    except ValueError:
        raise GatewayError(f"The gateway at {gateway_url()} answered something that is not JSON.", status=502) from None


def gateway_health(*, timeout: float = 2.0) -> dict[str, Any]:
    """GET /healthz (no credentials): the loaded generation, units and base model."""
    return _call("GET", "/healthz", timeout=timeout)


def gateway_generate(*, user, prompts: list[str], max_tokens: int, timeout: float | None = None) -> dict[str, Any]:
    """POST /api/v1/generate on behalf of a staff user (a short-lived signed token)."""
    return _call(
        "POST",
        "/api/v1/generate",
        body={"prompts": prompts, "max_tokens": max_tokens},
        headers={"Authorization": f"{STAFF_SCHEME} {staff_token_for(user)}"},
        timeout=timeout or settings.GATEWAY_TIMEOUT_SECONDS,
    )
