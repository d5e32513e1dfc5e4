"""Every role against every page and endpoint: the expected answer for each cell.

The URLs come from the resolver, so a route added later cannot slip through: the first test fails
until the new route is classified in MATRIX below. API keys mean nothing to HTML pages (an API
client there is as anonymous as a data subject), and staff sessions count on the API (a reviewer's
browser may call it), so both kinds of page are tried with all seven callers.

The demo accounts (seed_demo) are these roles, so their seeding is tested here as well.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from service.accounts.models import ApiClient
from service.accounts.roles import Role, actor_for_user
from service.accounts.services import api_client_for_key
from service.requests.models import ErasureRequest
from service.requests.services import request_create_api

ROLES = ("anonymous", "reviewer", "auditor", "admin", "api_read", "api_create", "api_none")
API_SCOPES = {"api_read": ("read",), "api_create": ("create",), "api_none": ()}
LOGIN = "302 to the staff login page"
ADMIN_LOGIN = "302 to the admin login page"
SUBJECT_EMAIL = "bo@example.com"


def every(answer) -> dict[str, object]:
    return dict.fromkeys(ROLES, answer)


def staff_page(*, reviewer, auditor, admin) -> dict[str, object]:
    """HTML for staff: a login first for anyone without a session (API keys count for nothing)."""
    return {**every(LOGIN), "reviewer": reviewer, "auditor": auditor, "admin": admin}


def api(*, reviewer, auditor, admin, api_read, api_create, api_none) -> dict[str, object]:
    """JSON API: 401 without credentials, otherwise what the role and scopes allow."""
    return {"anonymous": 401, "reviewer": reviewer, "auditor": auditor, "admin": admin, "api_read": api_read, "api_create": api_create, "api_none": api_none}


REVIEW_API = api(reviewer=200, auditor=403, admin=200, api_read=403, api_create=403, api_none=403)
STAFF_READ_API = api(reviewer=200, auditor=200, admin=200, api_read=403, api_create=403, api_none=403)
CLIENT_READ_API = api(reviewer=403, auditor=403, admin=403, api_read=200, api_create=403, api_none=403)


@dataclass(frozen=True)
class Case:
    method: str
    expect: dict[str, object]
    data: Callable[[World], dict] | dict | None = None
    json: bool = False  # send `data` as a JSON body (the API) instead of a form
    note: str = ""

    def body(self, world: World) -> dict:
        return self.data(world) if callable(self.data) else dict(self.data or {})


# url name -> the cases tried against it. `request_id` in a route is the sample request's id.
MATRIX: dict[str, list[Case]] = {
    # --- the data subject's pages: open to all, and a request is found only with its email -------
    "home": [Case("GET", every(200))],
    "favicon": [Case("GET", every(200)), Case("POST", every(405))],
    "request-new": [Case("GET", every(200)), Case("POST", every(400), {}, note="an empty form: field errors")],
    "request-verify": [Case("GET", every(200)), Case("POST", every(400), {}, note="an empty form: field errors")],
    "request-status": [
        Case("GET", every(200)),
        Case("POST", every(302), lambda w: {"reference": w.request.reference, "email": SUBJECT_EMAIL}, note="reference and email match: shown"),
        Case(
            "POST",
            every(404),
            lambda w: {"reference": w.request.reference, "email": "someone@else.example"},
            note="a reference without its email finds nothing, whoever asks",
        ),
    ],
    # --- staff pages ---------------------------------------------------------------------------------
    "staff-queue": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "staff-request": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "staff-request-reveal": [Case("POST", staff_page(reviewer=200, auditor=403, admin=200))],
    "staff-request-approve": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302))],
    "staff-request-reject": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), {"reason": "matrix"})],
    "staff-request-cancel": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), {"reason": "matrix"})],
    "staff-request-extend": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), {"reason": "matrix"})],
    "staff-request-retry": [
        Case("POST", staff_page(reviewer=302, auditor=403, admin=302), note="the sample request has not failed: back to its page with a message")
    ],
    "staff-request-override": [
        Case(
            "POST",
            staff_page(reviewer=302, auditor=403, admin=302),
            {"reason": "checked by hand"},
            note="the sample request is not in review: back to its page with a message",
        )
    ],
    "staff-bulk-decide": [
        Case("POST", staff_page(reviewer=302, auditor=403, admin=302), lambda w: {"request_ids": [str(w.request.pk)], "decision": "approve"}),
        Case("GET", every(405), note="actions are POST only"),
    ],
    # --- a request's dossier and signed certificate (service/dossier; the sample request is certified for these)
    "staff-dossier": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200)), Case("POST", every(405), note="read-only")],
    "staff-dossier-reveal": [Case("POST", staff_page(reviewer=200, auditor=403, admin=200))],
    "staff-dossier-scores": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "staff-certificate-json": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "staff-certificate-html": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    # --- the auditor's pages -------------------------------------------------------------------------
    "audit-log": [Case("GET", staff_page(reviewer=403, auditor=200, admin=200))],
    "audit-export": [Case("GET", staff_page(reviewer=403, auditor=200, admin=200))],
    "audit-export-json": [Case("GET", staff_page(reviewer=403, auditor=200, admin=200)), Case("POST", every(405), note="the log is read-only")],
    # --- the adapter registry: staff read, reviewers and admins change (the sample request has a live unit)
    "registry": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "registry-live": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "registry-history": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200)), Case("POST", every(405), note="read-only")],
    "registry-unit": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    "registry-unit-activate": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), note="already live: back to the unit page with a message")],
    "registry-unit-deactivate": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), {"reason": "matrix"})],
    "registry-unit-revoke": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), {"reason": "matrix"})],
    "registry-unit-rollback": [Case("POST", staff_page(reviewer=302, auditor=403, admin=302), {"reason": "matrix"})],
    # --- reports on the requests (service/reports): staff read; no API client, whatever its scopes -----
    "reports": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200)), Case("POST", every(405), note="read-only")],
    "reports-csv": [Case("GET", staff_page(reviewer=200, auditor=200, admin=200))],
    # --- the model playground: reviewers and admins ask the gated model (auditors do not; docs/gateway.md)
    "playground": [
        Case("GET", staff_page(reviewer=200, auditor=403, admin=200), note="no gateway runs here: the page says so"),
        Case("POST", staff_page(reviewer=400, auditor=403, admin=400), {}, note="an empty form: field errors"),
    ],
    # --- log in and out; Django's admin (staff flag: admins only) ------------------------------------
    "login": [Case("GET", every(200))],
    "logout": [Case("POST", every(302))],
    "admin:index": [Case("GET", {**every(ADMIN_LOGIN), "admin": 200})],
    # --- REST API ------------------------------------------------------------------------------------
    "schema": [Case("GET", every(200))],
    "api-docs": [Case("GET", every(200))],
    "api-requests": [
        Case("GET", api(reviewer=200, auditor=200, admin=200, api_read=200, api_create=403, api_none=403)),
        Case(
            "POST",
            api(reviewer=403, auditor=403, admin=403, api_read=403, api_create=202, api_none=403),
            {"subject_name": "Cy", "subject_email": "cy@example.com", "regulation": "ccpa", "facts": ["Cy is 22"]},
            json=True,
            note="filing needs the create scope: staff file through the public form",
        ),
    ],
    # The sample request belongs to api_read: api_create is not its owner, so it is absent for it.
    "api-request-detail": [Case("GET", api(reviewer=200, auditor=200, admin=200, api_read=200, api_create=403, api_none=403))],
    "api-request-cancel": [
        Case("POST", api(reviewer=200, auditor=403, admin=200, api_read=403, api_create=404, api_none=403), {"reason": "matrix"}, json=True)
    ],
    "api-request-approve": [Case("POST", REVIEW_API, {}, json=True)],
    "api-request-reject": [Case("POST", REVIEW_API, {"reason": "matrix"}, json=True)],
    "api-request-extend-deadline": [Case("POST", REVIEW_API, {"reason": "matrix"}, json=True)],
    # The pipeline (service/unlearning): the sample request has no certificate and has not failed.
    "api-request-certificate": [
        Case(
            "GET",
            api(reviewer=404, auditor=404, admin=404, api_read=404, api_create=403, api_none=403),
            note="404 no_certificate once the caller may read the request",
        )
    ],
    "api-request-certificate-signed": [
        Case("GET", api(reviewer=200, auditor=200, admin=200, api_read=200, api_create=403, api_none=403), note="api_read owns the certified sample request")
    ],
    "api-certificate-public-key": [Case("GET", every(200), note="public: a third party verifies with it"), Case("POST", every(405))],
    "api-request-retry": [
        Case(
            "POST",
            api(reviewer=409, auditor=403, admin=409, api_read=403, api_create=403, api_none=403),
            {},
            json=True,
            note="409: only a failed request (or one that needs review) can be retried",
        )
    ],
    "api-request-override": [
        Case(
            "POST",
            api(reviewer=409, auditor=403, admin=409, api_read=403, api_create=403, api_none=403),
            {"reason": "checked by hand"},
            json=True,
            note="409: the request has no unit waiting for review",
        )
    ],
    "api-requests-bulk-decide": [Case("POST", REVIEW_API, lambda w: {"ids": [str(w.request.pk)], "decision": "approve"}, json=True)],
    # The registry is the operator's: no API client reaches it, whatever its scopes.
    "api-registry-units": [Case("GET", STAFF_READ_API)],
    "api-registry-unit": [Case("GET", STAFF_READ_API)],
    "api-registry-live": [Case("GET", STAFF_READ_API)],
    "api-registry-history": [
        Case("GET", STAFF_READ_API),
        Case("POST", api(reviewer=405, auditor=405, admin=405, api_read=405, api_create=405, api_none=405), {}, json=True, note="read-only"),
    ],
    "api-registry-unit-activate": [
        Case(
            "POST",
            api(reviewer=409, auditor=403, admin=409, api_read=403, api_create=403, api_none=403),
            {},
            json=True,
            note="the sample unit is live already: 409 shows the role got through",
        )
    ],
    "api-registry-unit-deactivate": [Case("POST", REVIEW_API, {"reason": "matrix"}, json=True)],
    "api-registry-unit-revoke": [Case("POST", REVIEW_API, {"reason": "matrix"}, json=True)],
    "api-registry-request-rollback": [Case("POST", REVIEW_API, {"reason": "matrix"}, json=True)],
    "api-reports-requests": [Case("GET", STAFF_READ_API)],
    # Status webhooks (service/webhooks): an API client's own, with the read scope; staff use the Django admin.
    "api-webhook-endpoints": [
        Case("GET", CLIENT_READ_API),
        Case("POST", {**CLIENT_READ_API, "api_read": 201}, {"url": "https://product.example/hooks", "events": ["request.active"]}, json=True),
    ],
    "api-webhook-endpoint": [Case("GET", CLIENT_READ_API), Case("DELETE", CLIENT_READ_API, note="disables the sample endpoint")],
    "api-webhook-endpoint-deliveries": [Case("GET", CLIENT_READ_API)],
    "api-webhook-delivery": [Case("GET", CLIENT_READ_API)],
    "api-webhook-delivery-replay": [Case("POST", {**CLIENT_READ_API, "api_read": 202}, {}, json=True)],
    # The audit log: auditors and admins read it (session login); nothing changes an event.
    "api-audit-events": [
        Case("GET", api(reviewer=403, auditor=200, admin=200, api_read=403, api_create=403, api_none=403)),
        Case("POST", api(reviewer=405, auditor=405, admin=405, api_read=405, api_create=405, api_none=405), {}, json=True, note="read-only: no method writes"),
    ],
}


# --- discovering the routes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    params: tuple[str, ...] = field(default=())


def _walk(patterns, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}".strip(":") if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}".strip(":") if entry.name else ""
            if namespace == "admin" and name != "admin:index":
                continue  # Django admin's own pages: admin:index stands for them
            yield Route(name or f"<unnamed {prefix}{entry.pattern}>", prefix + str(entry.pattern), tuple(getattr(entry.pattern, "converters", {})))


def routes() -> dict[str, Route]:
    """Every route by name (an unnamed one cannot be classified: name it)."""
    return {route.name: route for route in _walk(get_resolver().url_patterns)}


def test_every_route_is_classified_in_the_matrix():
    routed = routes()
    unclassified = sorted(set(routed) - set(MATRIX))
    assert not unclassified, f"classify these routes in MATRIX ({__file__}): {', '.join(f'{n} ({routed[n].pattern})' for n in unclassified)}"
    stale = sorted(set(MATRIX) - set(routed))
    assert not stale, f"MATRIX names routes that no longer exist: {', '.join(stale)}"
    for name, cases in MATRIX.items():
        for case in cases:
            assert set(case.expect) == set(ROLES), f"{name} {case.method}: every role needs an expected answer"


# --- one cell ------------------------------------------------------------------------------------


@dataclass
class World:
    request: ErasureRequest
    clients: dict[str, ApiClient]
    keys: dict[str, str]


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db, api_client_key, actor_of) -> World:
    clients, keys = {}, {}
    for role, scopes in API_SCOPES.items():
        clients[role], keys[role] = api_client_key(scopes, name=role)
    owner, _ = api_client_key(("create", "read", "trusted_identity"), name="owner")
    sample, _ = request_create_api(
        actor=actor_of(owner), idempotency_key="matrix", name="Bo", email=SUBJECT_EMAIL, regulation="gdpr", facts=["Bo is 51"], evidence_prompts=[]
    )
    ErasureRequest.objects.filter(pk=sample.pk).update(api_client=clients["api_read"])  # api_read's own verified request
    sample.refresh_from_db()
    return World(sample, clients, keys)


@pytest.fixture
def sample_unit(settings, tmp_path):
    """sample_unit(world) -> the id of a live unit of the sample request, made now (registry routes only)."""

    def make(world: World) -> str:
        from adapters_store.services import adapter_register
        from service.accounts.roles import SYSTEM
        from tests.adapters_store.units import write_test_unit

        settings.ADAPTERS_STORE_URL, settings.ADAPTERS_STORE_ROOT = "", tmp_path / "store"
        ErasureRequest.objects.filter(pk=world.request.pk).update(status="active")
        unit = write_test_unit(tmp_path / "matrix-unit")
        return adapter_register(unit_dir=unit, actor=SYSTEM, request=world.request, certificate_passed=True).unit_id

    return make


# Routes tried with the sample request certified (tests/service/dossier/factories.py): its dossier,
# plot and signed certificate answer 200 instead of 404 no_certificate.
CERTIFIED_ROUTES = frozenset(
    {"staff-dossier", "staff-dossier-reveal", "staff-dossier-scores", "staff-certificate-json", "staff-certificate-html", "api-request-certificate-signed"}
)


@pytest.fixture
def sample_certificate(settings, staff):
    """sample_certificate(world): the sample request approved, trained, certified and live, and a signing key."""

    def make(world: World) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from tests.service.dossier.conftest import raw_base64
        from tests.service.dossier.factories import certify

        settings.FORGET_SIGNING_KEY, settings.FORGET_SIGNING_KEY_FILE = raw_base64(Ed25519PrivateKey.generate()), ""
        certify(world.request, approver=actor_for_user(staff("reviewer")))

    return make


@pytest.fixture
def sample_webhook(actor_of):
    """sample_webhook(world) -> {endpoint_id, delivery_id}: api_read's endpoint with one delivery."""

    def make(world: World) -> dict:
        from service.webhooks.models import WebhookDelivery
        from service.webhooks.services import webhook_endpoint_create

        endpoint, _ = webhook_endpoint_create(actor=actor_of(world.clients["api_read"]), url="https://product.example/matrix", events=["request.verified"])
        delivery = WebhookDelivery.objects.create(
            id="msg_matrix", endpoint=endpoint, event_type="request.verified", request_id=world.request.pk, payload={"type": "request.verified"}
        )
        return {"endpoint_id": endpoint.pk, "delivery_id": delivery.pk}

    return make


def _cells() -> list:
    routed = routes()
    return [
        pytest.param(name, index, role, id=f"{name}-{case.method}{index}-{role}")
        for name, cases in MATRIX.items()
        if name in routed
        for index, case in enumerate(cases)
        for role in ROLES
    ]


def _assert_answer(response, expected, *, role: str, label: str) -> None:
    where = f"{label} as {role}: got {response.status_code} {response.get('Location', '')}"
    if expected == LOGIN:
        assert response.status_code == 302 and response["Location"].startswith(settings.LOGIN_URL), where
    elif expected == ADMIN_LOGIN:
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), where
    else:
        assert response.status_code == expected, f"{where}, expected {expected}"
        if expected == 302:
            assert not response["Location"].startswith((settings.LOGIN_URL, reverse("admin:login"))), where


@pytest.mark.parametrize("name, index, role", _cells())
def test_role_gets_the_expected_answer(name, index, role, client, staff, world, fast_passwords, sample_unit, sample_certificate, sample_webhook):
    case = MATRIX[name][index]
    route = routes()[name]
    known = {"request_id": world.request.pk}
    if name.startswith(("registry", "api-registry")):
        known["unit_id"] = sample_unit(world)
    if name in CERTIFIED_ROUTES:
        sample_certificate(world)
    if name.startswith("api-webhook"):
        known.update(sample_webhook(world))
    missing = sorted(set(route.params) - set(known))
    assert not missing, f"{name}: the matrix does not know how to fill {missing}"
    url = reverse(name, kwargs={p: known[p] for p in route.params})

    headers = {}
    if role in ("reviewer", "auditor", "admin"):
        client.force_login(staff(role))
    elif role in API_SCOPES:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {world.keys[role]}"

    body = case.body(world)
    if case.method == "GET":
        response = client.get(url, **headers)
    elif case.method == "DELETE":
        response = client.delete(url, **headers)
    elif case.json:
        response = client.post(url, data=json.dumps(body), content_type="application/json", **headers)
    else:
        response = client.post(url, data=body, **headers)

    expected = case.expect[role]
    _assert_answer(response, expected, role=role, label=f"{case.method} {url}")
    if url.startswith("/api/v1/") and response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json", f"{case.method} {url} as {role}: errors are problem+json"
        if response.status_code == 401:
            assert response["WWW-Authenticate"].startswith("Bearer"), "401 names the scheme"


# --- permission before validation ----------------------------------------------------------------

BAD_BODY = {"x": 1}  # an unknown field: 400 validation_error for anyone who may call the endpoint


def _bad_body_cells() -> list:
    routed = routes()
    return [
        pytest.param(name, index, role, id=f"{name}-{case.method}{index}-{role}-bad-body")
        for name, cases in MATRIX.items()
        if name in routed
        for index, case in enumerate(cases)
        if case.method == "POST" and case.json
        for role in ROLES
    ]


@pytest.mark.parametrize("name, index, role", _bad_body_cells())
def test_a_bad_body_is_judged_only_after_the_permission_check(name, index, role, client, staff, world, fast_passwords, sample_unit, sample_webhook):
    """Every JSON action endpoint with a body it refuses: a caller who may not act gets the same
    401/403 (or 405) as with a good body, so the body's rules are never revealed to it; only a
    caller who may act learns that the body is wrong (400)."""
    case = MATRIX[name][index]
    route = routes()[name]
    known = {"request_id": world.request.pk}
    if name.startswith(("registry", "api-registry")):
        known["unit_id"] = sample_unit(world)
    if name.startswith("api-webhook"):
        known.update(sample_webhook(world))
    url = reverse(name, kwargs={p: known[p] for p in route.params})
    headers = {}
    if role in ("reviewer", "auditor", "admin"):
        client.force_login(staff(role))
    elif role in API_SCOPES:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {world.keys[role]}"

    response = client.post(url, data=json.dumps(BAD_BODY), content_type="application/json", **headers)
    refused_before = case.expect[role] in (401, 403, 405)
    expected = case.expect[role] if refused_before else 400
    assert response.status_code == expected, f"POST {url} as {role} with {BAD_BODY}: got {response.status_code}, expected {expected}"
    assert response["Content-Type"] == "application/problem+json"
    if expected == 400:
        assert response.json()["code"] == "validation_error"


# --- the demo accounts ---------------------------------------------------------------------------


@pytest.fixture
def demo_dir(settings, tmp_path, fast_passwords):
    settings.VAR_DIR = tmp_path
    return tmp_path


def _seed(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("seed_demo", "--force", *args, stdout=out)
    return out.getvalue()


def _printed_key(output: str) -> str:
    return next(line.strip() for line in output.splitlines() if line.strip().startswith("fk_"))


@pytest.mark.django_db
def test_seed_demo_creates_one_login_per_role_and_an_api_client(client, demo_dir):
    output = _seed()
    for role, username, password in (("reviewer", "reviewer", "reviewer-demo"), ("auditor", "auditor", "auditor-demo"), ("admin", "admin", "admin-demo")):
        assert f"username {username:<9} password {password}" in output
        assert client.login(username=username, password=password)
        from django.contrib.auth.models import User

        assert actor_for_user(User.objects.get(username=username)).roles == {Role(role)}
    key = _printed_key(output)
    found = api_client_for_key(key)
    assert found is not None and found.name == "demo-client" and sorted(found.scopes) == ["create", "generate", "read", "trusted_identity"]
    key_file = demo_dir / "demo-api-key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert "demo only" in output


@pytest.mark.django_db
def test_seed_demo_twice_keeps_the_users_and_the_key(client, demo_dir, django_user_model):
    first = _printed_key(_seed())
    reviewer = django_user_model.objects.get(username="reviewer")
    reviewer.set_password("changed-by-someone")
    reviewer.save()

    output = _seed()
    assert _printed_key(output) == first and "unchanged since the first seeding" in output
    assert api_client_for_key(first) is not None
    assert django_user_model.objects.filter(username__in=["reviewer", "auditor", "admin"]).count() == 3
    assert ApiClient.objects.filter(name="demo-client").count() == 1
    assert client.login(username="reviewer", password="reviewer-demo")  # demo passwords are set back


@pytest.mark.django_db
def test_seed_demo_gives_an_older_demo_client_the_generate_scope_and_keeps_its_key(demo_dir):
    first = _printed_key(_seed())
    ApiClient.objects.filter(name="demo-client").update(scopes=["create", "read", "trusted_identity"])  # seeded before bin/demo's story

    output = _seed()
    assert _printed_key(output) == first
    assert "scopes: create, generate, read, trusted_identity" in output
    assert "generate" in api_client_for_key(first).scopes  # the story asks the gateway with this key


@pytest.mark.django_db
def test_seed_demo_rotates_the_key_only_when_asked_or_when_it_was_lost(demo_dir):
    first = _printed_key(_seed())
    rotated = _printed_key(_seed("--rotate-key"))
    assert rotated != first and api_client_for_key(first) is None and api_client_for_key(rotated) is not None

    (demo_dir / "demo-api-key").unlink()
    output = _seed()
    recovered = _printed_key(output)
    assert "the saved one was missing or stale" in output
    assert recovered != rotated and api_client_for_key(recovered) is not None


@pytest.mark.django_db
def test_seed_demo_refuses_a_real_database_without_force(settings, demo_dir):
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("the embedded database is the one seed_demo is meant for")
    settings.DEBUG = False
    with pytest.raises(CommandError, match="passwords are published"):
        call_command("seed_demo")
    assert not ApiClient.objects.exists()
