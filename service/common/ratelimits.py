"""Rate limits: how many calls of one kind one caller, address or API client may make per period.

Counted by django-ratelimit in the Django cache (`CACHE_URL`: Redis in production, so that every
gunicorn worker and host shares the counts; the process's local memory in the embedded mode).
Each limit has a name and a rate from the settings (`FORGET['RATE_LIMITS']`, e.g. "5/h": five
per hour; "" switches that limit off); `hit` counts one call and raises RateLimited (429, with the
seconds until the window ends as Retry-After) once the rate is exceeded.

    ratelimits.hit("submit_per_ip", ratelimits.client_ip(request))

The values counted are kept only as a SHA-256 inside the cache key (django-ratelimit hashes the
key), never as an email address or IP in clear.

API clients' quotas run on every API call, so they are counted with one round trip instead
(`count_in_window`: INCR and EXPIRE pipelined on Redis; django-ratelimit's add-then-incr costs two,
which took a tenth of the intake's CPU), in the same cache and with the same fixed windows.
"""

from __future__ import annotations

import re
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django_ratelimit.core import get_usage

from .errors import RateLimited

# What each limit counts, for the refusal's wording (the rates are in settings.FORGET["RATE_LIMITS"]).
WHAT = {
    "submit_per_ip": "requests filed from your connection",
    "submit_per_email": "requests filed for this email address",
    "code_mails_per_email": "verification codes sent to this email address",
    "status_per_ip": "status look-ups from your connection",
    "verify_per_ip": "verification attempts from your connection",
    "api_client": "calls by this API client",
}


def client_ip(request) -> str:
    """The caller's address: REMOTE_ADDR, or the header FORGET_CLIENT_IP_HEADER names when a
    trusted proxy sets it (compose's nginx sends X-Real-IP; docs/docker.md)."""
    meta_key = settings.FORGET["CLIENT_IP_META_KEY"]
    value = request.META.get(meta_key) or request.META.get("REMOTE_ADDR") or ""
    return value.split(",")[0].strip()


def client_ip_for_axes(request) -> str:
    """django-axes' AXES_CLIENT_IP_CALLABLE: the same address the other limits count."""
    return client_ip(request)


def rate_of(limit: str) -> str:
    return settings.FORGET["RATE_LIMITS"].get(limit, "")


def wait_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = (seconds + 59) // 60
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def hit(limit: str, value: str, *, rate: str | None = None) -> None:
    """Counts one call of `limit` for `value`; raises RateLimited when that exceeds the rate."""
    usage = _usage(limit, value, rate=rate)
    if usage is not None and usage["should_limit"]:
        wait = max(int(usage["time_left"]), 1)
        raise RateLimited(f"Too many {WHAT.get(limit, 'calls')}; please try again in {wait_text(wait)}.", retry_after=wait, extra={"limit": limit})


def over(limit: str, value: str, *, rate: str | None = None) -> int | None:
    """Counts one call; the seconds to wait when that exceeds the rate, else None (for callers
    that answer the refusal themselves, like the API throttle)."""
    usage = _usage(limit, value, rate=rate)
    if usage is not None and usage["should_limit"]:
        return max(int(usage["time_left"]), 1)
    return None


def _usage(limit: str, value: str, *, rate: str | None) -> dict | None:
    rate = rate_of(limit) if rate is None else rate
    if not rate:
        return None  # get_usage itself answers None when RATELIMIT_ENABLE is off
    return get_usage(None, group=f"forget.{limit}", key=lambda group, request: value, rate=rate, increment=True)


_RATE = re.compile(r"([1-9][0-9]*)/([0-9]*)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "600/m" -> (600, 60); "100/5m" -> (100, 300)."""
    match = _RATE.fullmatch(rate.strip())
    if match is None:
        raise ValueError(f"not a rate: {rate!r} (600/m, 10000/h, 100/5m)")
    calls, multiple, unit = match.groups()
    return int(calls), int(multiple or 1) * _SECONDS[unit]


def count_in_window(key: str, seconds: int) -> int:
    """Adds one to `key`'s counter, which expires `seconds` after its first count; returns the
    count. One pipelined round trip on Redis (Django's RedisCache client), add-then-incr on other
    caches (the embedded local memory)."""
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        pipe = cache._cache.get_client(full_key, write=True).pipeline(transaction=False)
        pipe.incr(full_key)
        pipe.expire(full_key, seconds, nx=True)
        return int(pipe.execute()[0])
    if cache.add(key, 1, seconds):
        return 1
    return cache.incr(key)


def quota_wait(name: str, value: str, rate: str) -> int | None:
    """Counts one call against `rate` for `value` in the current fixed window; the seconds until
    the window ends when that exceeds it, else None."""
    if not rate or not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    calls, seconds = parse_rate(rate)
    now = time.time()
    window = int(now // seconds)
    if count_in_window(f"quota:{name}:{value}:{seconds}:{window}", seconds + 1) <= calls:
        return None
    return max(int(seconds - now % seconds), 1)
