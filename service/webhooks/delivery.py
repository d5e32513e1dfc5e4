"""One signed HTTP POST of a webhook message: the Standard Webhooks headers and signature.

    webhook-id         the message id (the same on every retry and replay: receivers deduplicate on it)
    webhook-timestamp  seconds since the epoch, of this attempt
    webhook-signature  "v1," + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))

Signed with the `standardwebhooks` package (the specification's reference library). The call goes
to the registered URL only: no proxy from the environment, no redirect followed (a 3xx is a failed
attempt), and a short timeout on connecting and on each read; the answer's body is not kept.
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

USER_AGENT = "forget-service-webhooks/1"
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(*, secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def post(url: str, *, secret: str, message_id: str, body: str, timeout: float) -> AttemptResult:
    """One attempt; never raises for a network problem (the result says what happened)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return AttemptResult(None, 0, f"not an http(s) URL: {parts.scheme or '?'}")
    headers = signed_headers(secret=secret, message_id=message_id, body=body, at=datetime.now(UTC))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("POST", path, body=body.encode(), headers=headers)
        response = conn.getresponse()
        response.read(MAX_ANSWER_BYTES)
        elapsed = _ms(started)
        if 200 <= response.status < 300:
            return AttemptResult(response.status, elapsed)
        return AttemptResult(response.status, elapsed, f"HTTP {response.status}" + (" (redirects are not followed)" if 300 <= response.status < 400 else ""))
    except TimeoutError:
        return AttemptResult(None, _ms(started), f"timed out after {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return AttemptResult(None, _ms(started), f"{type(exc).__name__}: {exc}"[:300])
    finally:
        conn.close()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
