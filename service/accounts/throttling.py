"""Each API client's quota (DRF throttle): its own `rate_limit`, or FORGET_API_CLIENT_RATE.

Counted per client across every worker in the shared cache, one round trip per call
(service.common.ratelimits.quota_wait); over the quota DRF raises Throttled, which the problem
handler answers 429 `rate_limited` with Retry-After.
Staff sessions have no quota here (their pages and logins have their own limits).
"""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from service.common import ratelimits


class ApiClientQuota(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        client = getattr(request._request, "api_client", None)
        self._wait = None
        if client is None:
            return True
        self._wait = ratelimits.quota_wait("api_client", str(client.pk), client.rate_limit or ratelimits.rate_of("api_client"))
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
