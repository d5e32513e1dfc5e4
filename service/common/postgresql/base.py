"""Django's PostgreSQL backend, health-checking a persistent connection at most once a second.

With CONN_HEALTH_CHECKS Django sends `SELECT 1` on a reused connection before the first query of
every HTTP request: one more round trip on each, the eighth of the intake's (docs/bench-intake.md).
Here a connection that passed a check (or was opened) less than HEALTH_CHECK_SECONDS ago is taken
as it is: a server that went away in that second fails the request's first query instead, which is
answered 503 with Retry-After like any outage (service/common/outages.py), and Django closes the
broken connection when the request ends; the next request connects afresh. A connection whose last
check is older (one idle for a while, the usual victim of a database restart, or a busy one once a
second) is checked before it is used.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

HEALTH_CHECK_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    _healthy_at = float("-inf")

    def connect(self):
        super().connect()
        self._healthy_at = time.monotonic()

    def close_if_health_check_failed(self):
        if self.connection is not None and self.health_check_enabled and not self.health_check_done:
            now = time.monotonic()
            if now - self._healthy_at < HEALTH_CHECK_SECONDS:
                self.health_check_done = True
                return
            super().close_if_health_check_failed()
            if self.connection is not None:
                self._healthy_at = now
            return
        super().close_if_health_check_failed()
