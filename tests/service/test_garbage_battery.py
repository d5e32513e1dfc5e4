"""Garbage at every route of the web app, pages and API alike, as every kind of caller: never a 5xx.

The routes come from the resolver (as in the role matrix), so a route added later is covered
without a line here. Characters no request may carry (a NUL byte, a lone surrogate; in a header
any control character) are refused with exactly 400 wherever they are, in the path, the query
string or a header, before any view, session or database sees them; in a JSON body a lone surrogate
anywhere, or a NUL in a key, is 400 `malformed_body`. API errors are problem+json.

The request endpoints get a longer list of malformed bodies and headers in
tests/service/requests/test_api_errors.py; schemathesis adds generated cases from the schema
(tests/service/test_schemathesis.py).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.service.test_role_matrix import fast_passwords, routes, sample_unit, sample_webhook, world  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
NUL, SURROGATE = "%00", "%ED%A0%80"  # in a URL; U+D800 written as UTF-8 is a lone surrogate

# (query string, header) that must each be refused with 400 on any route, by any caller.
BAD_QUERIES = [f"?{NUL}=1", f"?page={NUL}", f"?status=a{SURROGATE}", f"?{SURROGATE}"]
BAD_HEADERS = [
    {"X-Anything": "\x00"},
    {"Accept": "text/html\x00"},
    {"User-Agent": "\xed\xa0\x80"},
    {"Cookie": "sessionid=\x00"},
    {"Authorization": "Bearer \x1b[31m"},
]
JSON_BODIES = [
    b'{"\\ud800": 1}',
    b'{"reason": "\\udfff"}',
    b'{"ids": ["\\ud800"], "decision": "approve"}',
    b'{"\\u0000": 1}',
    b'{"reason": "\\u0000", "ids": ["\\u0000"], "decision": "\\u0000", "subject_name": "\\u0000"}',
    b'{"reason": "' + b"\\u0000" * 3000 + b'"}',
    b"\x00",
    b"\xed\xa0\x80",
    b"{" * 1000,
]
CALLERS = ("anonymous", "reviewer", "admin", "api_read", "api_create")


def _callers(world, staff) -> dict[str, Client]:
    callers = {}
    for name in CALLERS:
        http = Client(raise_request_exception=False)
        if name in ("reviewer", "admin"):
            http.force_login(staff(name))
        elif name.startswith("api_"):
            http.defaults["HTTP_AUTHORIZATION"] = f"Bearer {world.keys[name]}"
        callers[name] = http
    return callers


def _urls(world, unit_id: str, webhook: dict) -> list[tuple[str, str, bool]]:
    """(route name, URL with the sample ids, URL with garbage in its first parameter or None)."""
    known = {"request_id": str(world.request.pk), "unit_id": unit_id, **{k: str(v) for k, v in webhook.items()}}
    urls = []
    for name, route in sorted(routes().items()):
        url = reverse(name, kwargs={p: known[p] for p in route.params})
        garbled = None
        if route.params:
            value = known[route.params[0]]
            garbled = url.replace(value, value[:4] + NUL + value[4:], 1)
        urls.append((name, url, garbled))
    return urls


def test_garbage_at_every_route_never_gives_a_5xx_and_bad_characters_are_400(world, staff, sample_unit, sample_webhook, fast_passwords):
    unit_id = sample_unit(world)
    webhook = sample_webhook(world)
    failures: list[str] = []
    sent = 0

    def check(response, what: str, *, exactly_400: bool = False) -> None:
        nonlocal sent
        sent += 1
        path = what.split(" ", 2)[2]
        if response.status_code >= 500:
            failures.append(f"{what}: {response.status_code} {response.content[:160]!r}")
        elif exactly_400 and response.status_code != 400:
            failures.append(f"{what}: {response.status_code}, expected 400")
        elif response.status_code >= 400 and path.startswith("/api/") and response["Content-Type"] != PROBLEM:
            failures.append(f"{what}: {response.status_code} with {response['Content-Type']}")

    for caller_name, http in _callers(world, staff).items():
        for _name, url, garbled in _urls(world, unit_id, webhook):
            for method in ("GET", "POST"):
                label = f"{caller_name} {method}"
                if garbled:
                    check(http.generic(method, garbled, b"{}", content_type="application/json"), f"{label} {garbled}", exactly_400=True)
                    check(
                        http.generic(method, garbled.replace(NUL, SURROGATE), b"{}", content_type="application/json"),
                        f"{label} {garbled.replace(NUL, SURROGATE)}",
                        exactly_400=True,
                    )
                for query in BAD_QUERIES:
                    check(http.generic(method, url + query, b"{}", content_type="application/json"), f"{label} {url + query}", exactly_400=True)
                for header in BAD_HEADERS:
                    check(http.generic(method, url, b"{}", content_type="application/json", headers=header), f"{label} {url} {header!r}", exactly_400=True)
            for raw in JSON_BODIES:
                response = http.generic("POST", url, raw, content_type="application/json")
                check(response, f"{caller_name} POST {url} {raw[:30]!r}")
                if response.status_code == 400 and url.startswith("/api/") and raw.startswith(b'{"\\ud800"'):
                    assert response.json()["code"] == "malformed_body", f"{caller_name} POST {url}: {response.content[:200]!r}"

    assert sent > 3000
    assert not failures, f"{len(failures)} of {sent} answers wrong:\n" + "\n".join(failures[:40])
