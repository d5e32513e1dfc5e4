"""The API's error contract: every error is application/problem+json (RFC 9457) with a stable code
and the request id, and no input, however malformed, produces a 5xx."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.test import Client

from service.requests.models import ErasureRequest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
COLLECTION = "/api/v1/requests"
BODY = {"subject_name": "Bo Test", "subject_email": "bo@example.com", "regulation": "ccpa", "facts": ["Bo lives in Rome"]}


@pytest.fixture
def key(api_client_key):
    return api_client_key(("create", "read", "trusted_identity"))[1]


@pytest.fixture
def http(key):
    # raise_request_exception=False: an unhandled error shows up as the 500 a caller would get.
    return Client(headers={"Authorization": f"Bearer {key}"}, raise_request_exception=False)


def send(http: Client, raw: bytes | str, content_type: str = "application/json", url: str = COLLECTION, **headers):
    return http.generic("POST", url, raw, content_type=content_type, headers=headers)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"].endswith("/" + code)
    assert problem["title"] and problem["detail"]
    assert problem["request_id"] == response["X-Request-ID"]
    return problem


def fields(problem: dict) -> dict[str, str]:
    return {error["field"]: error["code"] for error in problem["errors"]}


# --- malformed bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"subject_name": "Bo",}',
        b"{'single': 'quotes'}",
        b"\xff\xfe\x00garbage",
        b'{"subject_name": NaN}',
        b'{"n": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's recursion limit, yet only 200 kB
        b'{"n": ' + b"9" * 5000 + b"}",  # longer than Python's int-parsing limit
    ],
    ids=["truncated", "trailing-comma", "single-quotes", "not-utf8", "nan", "infinity", "deeply-nested", "huge-int"],
)
def test_malformed_json_is_400_malformed_body(http, raw):
    assert_problem(send(http, raw), 400, "malformed_body")
    assert ErasureRequest.objects.count() == 0


def test_unknown_charset_is_refused(http):
    assert_problem(send(http, json.dumps(BODY), content_type="application/json; charset=bz2_codec"), 400, "malformed_body")


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null", b"true"])
def test_a_body_that_is_not_an_object_is_a_validation_error(http, raw):
    problem = assert_problem(send(http, raw), 400, "validation_error")
    assert problem["errors"][0]["field"] == ""


def test_missing_fields_are_listed_each_by_name(http):
    problem = assert_problem(send(http, b"{}"), 400, "validation_error")
    assert fields(problem) == {"subject_name": "required", "subject_email": "required", "regulation": "required", "facts": "required"}
    assert all(error["message"] for error in problem["errors"])


def test_unknown_fields_are_refused_not_ignored(http):
    problem = assert_problem(send(http, json.dumps({**BODY, "subjet_email": "typo@example.com", "priority": 1})), 400, "validation_error")
    assert fields(problem) == {"priority": "unknown_field", "subjet_email": "unknown_field"}
    assert ErasureRequest.objects.count() == 0


def test_all_problems_of_a_body_come_in_one_answer(http):
    body = {k: v for k, v in BODY.items() if k != "subject_email"}
    problem = assert_problem(send(http, json.dumps({**body, "subject_name": 5, "facts": [], "subjet_email": "cy@example.com"})), 400, "validation_error")
    assert fields(problem) == {"subject_name": "invalid", "subject_email": "required", "facts": "min_length", "subjet_email": "unknown_field"}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"subject_name": 42}, {"subject_name": "invalid"}),
        ({"subject_name": ["Bo"]}, {"subject_name": "invalid"}),
        ({"subject_name": None}, {"subject_name": "null"}),
        ({"subject_name": ""}, {"subject_name": "blank"}),
        ({"subject_name": "x" * 201}, {"subject_name": "max_length"}),
        ({"subject_name": "Bo\x00Test"}, {"subject_name": "null_characters_not_allowed"}),
        ({"subject_email": "not-an-email"}, {"subject_email": "invalid"}),
        ({"subject_email": 7}, {"subject_email": "invalid"}),
        ({"regulation": "hipaa"}, {"regulation": "invalid_choice"}),
        ({"regulation": ["gdpr"]}, {"regulation": "invalid_choice"}),
        ({"facts": "Bo lives in Rome"}, {"facts": "not_a_list"}),
        ({"facts": []}, {"facts": "min_length"}),
        ({"facts": ["ok"] * 51}, {"facts": "max_length"}),
        ({"facts": ["ok", 3, "x" * 1001, ""]}, {"facts.1": "invalid", "facts.2": "max_length", "facts.3": "blank"}),
        ({"facts": [{"text": "Bo"}]}, {"facts.0": "invalid"}),
        ({"evidence_prompts": ["p"] * 21}, {"evidence_prompts": "max_length"}),
        ({"evidence_prompts": [True]}, {"evidence_prompts.0": "invalid"}),
        ({"evidence_prompts": None}, {"evidence_prompts": "null"}),
    ],
)
def test_wrong_values_are_reported_per_field(http, change, expected):
    problem = assert_problem(send(http, json.dumps({**BODY, **change})), 400, "validation_error")
    assert fields(problem) == expected
    assert ErasureRequest.objects.count() == 0


# --- size, media type, headers --------------------------------------------------------------------


def test_oversized_body_is_413(http):
    limit = settings.FORGET["MAX_BODY_BYTES"]
    raw = json.dumps({**BODY, "facts": ["x" * 1000] * (limit // 1000 + 1)})
    problem = assert_problem(send(http, raw), 413, "body_too_large")
    assert str(limit) in problem["detail"]


def test_body_limit_is_configurable(http, settings):
    settings.FORGET = {**settings.FORGET, "MAX_BODY_BYTES": 100}
    assert_problem(send(http, json.dumps(BODY)), 413, "body_too_large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "application/jsonx"]
)
def test_wrong_content_type_is_415(http, content_type):
    assert_problem(send(http, json.dumps(BODY), content_type=content_type), 415, "unsupported_media_type")


@pytest.mark.parametrize("length", ["-1", "ten", "1e3"])
def test_bad_content_length_is_400(http, length):
    assert_problem(http.generic("POST", COLLECTION, json.dumps(BODY), content_type="application/json", CONTENT_LENGTH=length), 400, "bad_header")


def test_request_id_is_taken_from_the_caller_or_made(http):
    mine = assert_problem(send(http, b"{", **{"X-Request-ID": "trace-123"}), 400, "malformed_body")
    assert mine["request_id"] == "trace-123"
    made = assert_problem(send(http, b"{", **{"X-Request-ID": "bad id with spaces"}), 400, "malformed_body")
    assert made["request_id"] != "bad id with spaces" and len(made["request_id"]) == 32


# --- authentication and authorisation ------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization, code",
    [
        (None, "not_authenticated"),
        ("Bearer fk_000000000000_nope", "authentication_failed"),
        ("Bearer", "authentication_failed"),
        ("Bearer a b", "authentication_failed"),
        ("bearer fk_000000000000_nope", "authentication_failed"),
        ("Basic YWxpY2U6c2VjcmV0", "authentication_failed"),
        ("Bearer " + "fk_" + "a" * 5000, "authentication_failed"),
    ],
)
def test_bad_or_missing_credentials_are_401_with_a_challenge(authorization, code):
    http = Client(raise_request_exception=False)
    headers = {"Authorization": authorization} if authorization is not None else {}
    for response in (http.get(COLLECTION, headers=headers), http.post(COLLECTION, BODY, content_type="application/json", headers=headers)):
        assert_problem(response, 401, code)
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_revoked_key_is_401(api_client_key):
    client, key = api_client_key()
    http = Client(headers={"Authorization": f"Bearer {key}"})
    assert http.get(COLLECTION).status_code == 200
    type(client).objects.filter(pk=client.pk).update(is_active=False)  # revoked by an admin
    assert_problem(http.get(COLLECTION), 401, "authentication_failed")


def test_missing_scope_is_403(api_client_key):
    reader = Client(headers={"Authorization": f"Bearer {api_client_key(('read',))[1]}"})
    problem = assert_problem(reader.post(COLLECTION, BODY, content_type="application/json"), 403, "forbidden")
    assert "'create' scope" in problem["detail"]
    creator = Client(headers={"Authorization": f"Bearer {api_client_key(('create',))[1]}"})
    assert_problem(creator.get(COLLECTION), 403, "forbidden")


# --- characters no request may carry: NUL bytes and lone surrogates -------------------------------

NUL, SURROGATE = "%00", "%ED%A0%80"  # U+D800 written as UTF-8: a lone surrogate


@pytest.mark.parametrize(
    "path",
    [
        f"{COLLECTION}/{NUL}",
        f"{COLLECTION}/{SURROGATE}/cancel",
        f"/api/v1/registry/units/{NUL}",
        f"/api/v1/registry/units/a{SURROGATE}b/activate",
        f"/request/{NUL}/",
    ],
)
def test_a_nul_or_a_lone_surrogate_in_the_path_is_400(http, path):
    for response in (http.get(path), http.post(path, b"{}", content_type="application/json")):
        if path.startswith("/api/"):
            assert_problem(response, 400, "bad_characters")
        else:
            assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("query", [f"?status={NUL}", f"?{NUL}=1", f"?regulation=gdpr{SURROGATE}", f"?page={SURROGATE}"])
def test_a_nul_or_a_lone_surrogate_in_the_query_is_400(http, query):
    problem = assert_problem(http.get(COLLECTION + query), 400, "bad_characters")
    assert "query string" in problem["detail"]


@pytest.mark.parametrize(
    "header", [{"Authorization": "Bearer fk_\x00\x00_\x00"}, {"Idempotency-Key": "k\x00"}, {"X-Request-ID": "\xed\xa0\x80"}, {"User-Agent": "a\x01b"}]
)
def test_a_nul_a_control_character_or_a_lone_surrogate_in_a_header_is_400(http, header):
    problem = assert_problem(send(http, json.dumps(BODY), **header), 400, "bad_characters")
    assert "header" in problem["detail"]
    assert ErasureRequest.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"\\ud800": 1}', b'{"subject_name": "\\udfff"}', b'{"facts": ["ok", "\\ud800x"]}', b'{"a": {"b": ["\\udc00"]}}', b'{"\\u0000": 1}'],
    ids=["surrogate-key", "surrogate-value", "surrogate-in-list", "surrogate-nested", "nul-key"],
)
def test_a_lone_surrogate_anywhere_or_a_nul_key_in_json_is_a_malformed_body(http, raw):
    problem = assert_problem(send(http, raw), 400, "malformed_body")
    assert "surrogate" in problem["detail"] or "NUL" in problem["detail"]
    assert ErasureRequest.objects.count() == 0


def test_a_lone_surrogate_key_is_refused_on_the_reviewers_actions_too(http, staff_client):
    created = http.post(COLLECTION, BODY, content_type="application/json").json()["id"]
    reviewer = staff_client("reviewer")
    reviewer.raise_request_exception = False
    for path in (f"{COLLECTION}/{created}/cancel", f"{COLLECTION}/bulk-decide", f"{COLLECTION}/{created}/reject"):
        assert_problem(reviewer.post(path, b'{"\\ud800": 1}', content_type="application/json"), 400, "malformed_body")
    assert_problem(http.post(f"{COLLECTION}/{created}/cancel", b'{"\\ud800": 1}', content_type="application/json"), 400, "malformed_body")


def test_a_url_longer_than_the_limit_is_414(http, settings):
    limit = settings.FORGET["MAX_URL_BYTES"]
    problem = assert_problem(http.get(COLLECTION + "?status=" + "a" * limit), 414, "uri_too_long")
    assert str(limit) in problem["detail"]
    assert http.get(COLLECTION + "?status=" + "verified," * ((limit - 100) // 9) + "verified").status_code == 200
    page = http.get("/request/status/?x=" + "a" * limit)
    assert page.status_code == 414 and page["Content-Type"].startswith("text/html")


# --- addresses and methods ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{COLLECTION}/{uuid.uuid4()}", f"{COLLECTION}/{uuid.uuid4()}/cancel"])
def test_unknown_id_is_404(http, path):
    response = http.get(path) if not path.endswith("cancel") else http.post(path, {}, content_type="application/json")
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1", "3b0f6d4e-8a51-4c36-9a3e-5c1d2b7e9f1", "..%2F..%2Fetc", "3b0f6d4e-8a51-4c36-9a3e-5c1d2b7e9f10x"])
def test_malformed_id_is_404(http, bad_id):
    assert_problem(http.get(f"{COLLECTION}/{bad_id}"), 404, "not_found")
    assert_problem(http.post(f"{COLLECTION}/{bad_id}/cancel", {}, content_type="application/json"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/nothing", "/api/v2/requests", "/api/v1/requests/", "/api/v1/requests/bulk-decide/x"])
def test_unknown_api_path_is_a_404_problem(http, path):
    assert_problem(http.get(path), 404, "not_found")


def test_wrong_method_is_405_with_allow(http):
    created = http.post(COLLECTION, BODY, content_type="application/json").json()
    detail = f"{COLLECTION}/{created['id']}"
    for response, allowed in (
        (http.put(detail, BODY, content_type="application/json"), "GET"),
        (http.delete(detail), "GET"),
        (http.patch(detail, {}, content_type="application/json"), "GET"),
        (http.get(f"{detail}/cancel"), "POST"),
        (http.delete(COLLECTION), "GET, POST"),
    ):
        assert_problem(response, 405, "method_not_allowed")
        assert set(allowed.split(", ")) <= {m.strip() for m in response["Allow"].split(",")}


def test_accept_header_the_api_cannot_serve_is_406(http):
    assert_problem(http.get(COLLECTION, headers={"Accept": "text/csv"}), 406, "not_acceptable")


# --- the battery: garbage at every endpoint, never a 5xx -----------------------------------------


def _endpoints(request_id: str) -> list[tuple[str, str]]:
    detail = f"{COLLECTION}/{request_id}"
    return [
        ("GET", COLLECTION),
        ("POST", COLLECTION),
        ("GET", detail),
        ("POST", f"{detail}/cancel"),
        ("POST", f"{detail}/approve"),
        ("POST", f"{detail}/reject"),
        ("POST", f"{detail}/extend-deadline"),
        ("POST", f"{COLLECTION}/bulk-decide"),
    ]


GARBAGE_BODIES: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"{", "application/json"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b'""', "application/json"),
    (b"-0", "application/json"),
    (b'{"": ""}', "application/json"),
    (b'{"reason": null, "ids": null, "decision": null}', "application/json"),
    (b'{"reason": {"$gt": ""}, "ids": [null, 1, "x"], "decision": ["approve"]}', "application/json"),
    (b'{"ids": ["00000000-0000-0000-0000-000000000000"], "decision": "approve", "reason": "\\u0000"}', "application/json"),
    (b'{"reason": "' + b"r" * 5000 + b'"}', "application/json"),
    (b'{"reason": "\\ud800"}', "application/json"),
    (b'{"subject_name": "\\u202e", "subject_email": "a@b.c", "regulation": "gdpr", "facts": ["\\u0000"]}', "application/json"),
    (json.dumps({**BODY, "facts": [[["deep"]]]}).encode(), "application/json"),
    (b"\x00\x01\x02\x03", "application/json"),
    (b"\xef\xbb\xbf{}", "application/json"),  # UTF-8 byte order mark
    (b"{}", "application/json; charset=utf-16"),
    (b"{}", "application/json; charset=nonsense"),
    (b"{}", "application/json; ==="),
    (b"{}", "\x00"),
    (b"{}", ""),
    (b"a=1&b=2", "application/x-www-form-urlencoded"),
    (b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n', "multipart/form-data; boundary=x"),
    (b"[" * 50_000, "application/json"),
    (b'{"\\ud800": 1}', "application/json"),  # a lone surrogate as a key (used to be a 500 on create, cancel, bulk-decide)
    (b'{"reason": "ok", "\\udfff": "\\ud800"}', "application/json"),
    (b'{"\\u0000": "\\u0000"}', "application/json"),
]

GARBAGE_HEADERS: list[dict[str, str]] = [
    {"Idempotency-Key": "\x00"},
    {"Idempotency-Key": "k" * 10_000},
    {"X-Request-ID": "\x00" * 100},
    {"Accept": "\x00"},
    {"Accept": "application/json; q=nonsense"},
    {"Accept": "*/*;;;"},
    {"Accept-Language": "\x00"},
    {"Authorization": "Bearer \x00"},
    {"Authorization": "Bearer fk_" + "\x00" * 12 + "_" + "a" * 43},
    {"Authorization": "Bearer fk_zzzzzzzzzzzz_" + "é" * 43},
    {"Cookie": "sessionid=\x00; csrftoken=%%%"},
    {"Content-Encoding": "gzip"},
    {"Host": "evil.example"},
    {"X-Anything": "\x00"},
    {"Idempotency-Key": "\xed\xa0\x80"},
    {"Referer": "http://x/\xed\xbf\xbf"},
]

GARBAGE_QUERIES = [
    "?%00=1",
    "?status=%ED%A0%80",
    "?page=%00",
    "?page_size=-5",
    "?page=99999999999999999999999",
    "?status=%00",
    "?status=,,,",
    "?regulation[]=gdpr",
    "?overdue=%ff",
    "?due_within_days=1e309",
    "?" + "a=1&" * 2000,
]


def test_garbage_never_produces_a_5xx(http, key):
    target = http.post(COLLECTION, BODY, content_type="application/json").json()["id"]
    staff_http = Client(raise_request_exception=False)
    from service.accounts.roles import Role
    from service.accounts.services import staff_user_ensure

    staff_http.force_login(staff_user_ensure(username="battery-reviewer", password="pass-for-tests-123", role=Role.REVIEWER))

    failures = []

    def check(response, what: str) -> None:
        if response.status_code >= 500:
            failures.append(f"{what}: {response.status_code} {response.content[:200]!r}")
        elif response.status_code >= 400 and response["Content-Type"] != PROBLEM:
            failures.append(f"{what}: {response.status_code} with {response['Content-Type']}")

    for caller_name, caller in (("client", http), ("reviewer", staff_http)):
        for method, path in _endpoints(target) + _endpoints(str(uuid.uuid4())):
            for raw, content_type in GARBAGE_BODIES:
                what = f"{caller_name} {method} {path} {content_type!r} {raw[:40]!r}"
                check(caller.generic(method, path, raw, content_type=content_type), what)
            for headers in GARBAGE_HEADERS:
                check(caller.generic(method, path, b"{}", content_type="application/json", headers=headers), f"{caller_name} {method} {path} {headers!r:.80}")
            if method == "GET":
                for query in GARBAGE_QUERIES:
                    check(caller.get(path + query), f"{caller_name} GET {path}{query[:60]}")
            for other in ("PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "BREW"):
                check(caller.generic(other, path, b"{}", content_type="application/json"), f"{caller_name} {other} {path}")
    for path in (
        "/api/v1/requests/%00",
        "/api/v1/requests/%ED%A0%80",
        "/api/v1/requests/" + "a" * 5000,
        "/api/v1/%ff%fe",
        "/api/v1/requests/../../etc/passwd",
        "/api/v1/requests;x=1",
    ):
        check(http.get(path), f"GET {path[:60]}")
        check(http.post(path, b"{", content_type="application/json"), f"POST {path[:60]}")

    assert not failures, "\n".join(failures[:30])
