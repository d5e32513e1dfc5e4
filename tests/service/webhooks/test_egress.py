"""The egress rule of the status webhooks (SSRF): with FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS off, a
webhook goes only to globally routable addresses. A literal non-global address (or localhost) is
refused at registration; at each delivery the name is resolved once, refused if any address is not
global, and the connection goes to the checked address (no second lookup: DNS rebinding)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from service.webhooks import delivery as http_delivery
from service.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from service.webhooks.services import webhook_delivery_attempt

SETTING = "FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS"


@pytest.fixture
def private_off(settings):
    """The default of production: the setting off (the webhook tests run with it on)."""
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": False}
    return settings


def send(url: str, **kwargs) -> http_delivery.AttemptResult:
    return http_delivery.post(url, secret="whsec_" + "A" * 32, message_id="msg_egress", body='{"type": "test"}', timeout=kwargs.pop("timeout", 2), **kwargs)


# --- the classifier ----------------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.8.9.10", "a loopback address"),
    ("10.0.0.1", "a private address"),
    ("172.16.5.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.169.254", "a link-local address"),  # cloud metadata
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("0.0.0.0", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("233.252.0.1", "a multicast address"),  # is_global says True: multicast is refused on its own
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("192.0.2.1", "a private address"),  # documentation (TEST-NET-1)
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("fd00::1", "a unique-local address"),
    ("fc12:3456::1", "a unique-local address"),
    ("ff02::1", "a multicast address"),
    ("ff0e::1", "a multicast address"),
    ("2001:db8::1", "a private address"),  # documentation
    ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "a link-local address"),
    ("::ffff:10.0.0.5", "a private address"),
    ("2002:a00:1::", "a private address"),  # 6to4 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 of 169.254.169.254
    ("::127.0.0.1", "a reserved address"),  # the deprecated IPv4-compatible form
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80e::200e",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address, reason", REFUSED)
def test_the_classifier_names_why_an_address_is_not_global(address, reason):
    assert http_delivery.non_global_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_the_classifier_lets_globally_routable_addresses_through(address):
    assert http_delivery.non_global_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host, address",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("10.1", "10.0.0.1"),
        ("93.184.216.34", "93.184.216.34"),
    ],
)
def test_literal_addresses_are_read_as_the_resolver_reads_them(host, address):
    assert http_delivery.literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.org", "product.example", "bad..name", "10.0.0.1.nip.io"])
def test_a_name_is_not_a_literal_and_is_not_looked_up(host, monkeypatch):
    real = socket.getaddrinfo

    def numeric_only(*args, **kwargs):
        assert kwargs.get("flags", 0) & socket.AI_NUMERICHOST, f"a DNS lookup of {args[0]}"
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    assert http_delivery.literal_address(host) is None


@pytest.mark.parametrize(
    "host, local",
    [("localhost", True), ("LOCALHOST.", True), ("api.localhost", True), ("ip6-localhost", True), ("localhost.example", False), ("mylocalhost", False)],
)
def test_localhost_names(host, local):
    assert http_delivery.is_local_name(host) is local


# --- at delivery --------------------------------------------------------------------------------------


@pytest.fixture
def resolver(monkeypatch):
    """resolver({"name": [addresses, ...]}): names resolved to what the test says, one answer per
    lookup (the last one repeats), every lookup recorded; other names and literals as usual."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def install(answers: dict[str, list[list[str]]]):
        def getaddrinfo(host, port, *args, **kwargs):
            if host not in answers:
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            answer = answers[host][min(len(lookups) - 1, len(answers[host]) - 1)]
            return [info for ip in answer for info in real(ip, port, *args, **kwargs)]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return lookups

    return install


def test_with_the_setting_off_a_live_receiver_on_loopback_gets_nothing(subscribed, receiver, actor_of, settings):
    from service.requests.services import request_create_api

    client, _, _, _ = subscribed(receiver.url)  # registered by an operator who allowed it, then turned it off
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": False}
    request_create_api(
        actor=actor_of(client),
        idempotency_key="egress-1",
        name="Ada Lovelace",
        email="ada@example.org",
        regulation="gdpr",
        facts=["Ada lives in London"],
        evidence_prompts=[],
    )
    [delivery] = WebhookDelivery.objects.all()
    after = webhook_delivery_attempt(delivery_id=delivery.id)
    assert after.status == DeliveryStatus.PENDING and after.retries_used == 1  # a failed attempt, retried like any
    [attempt] = after.attempts.all()
    assert attempt.status_code is None and attempt.error == f"refused: 127.0.0.1 is a loopback address ({SETTING})"
    assert receiver.received == []
    # The receiver was there all along: with the setting on, the next attempt reaches it.
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": True}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_delivery_attempt(delivery_id=delivery.id).status == DeliveryStatus.DELIVERED and len(receiver.received) == 1


def test_a_name_that_resolves_to_loopback_is_refused_without_connecting(receiver):
    url = receiver.url.replace("127.0.0.1", "localhost")
    refused = send(url)
    assert refused.status_code is None and refused.latency_ms == 0 and not refused.ok
    assert refused.error.startswith("refused: localhost resolves to ") and "a loopback address" in refused.error and SETTING in refused.error
    assert receiver.received == []
    allowed = send(url, allow_private=True)  # allowed: the name is still connected to, at its checked address
    assert allowed.status_code == 204 and len(receiver.received) == 1


def test_a_name_resolving_to_a_private_address_is_refused_and_any_bad_address_refuses_all(resolver):
    lookups = resolver({"example.internal": [["10.0.0.5"]], "mixed.example": [["93.184.216.34", "169.254.169.254"]]})
    assert send("https://example.internal/hooks").error == f"refused: example.internal resolves to 10.0.0.5, a private address ({SETTING})"
    mixed = send("http://mixed.example/hooks")  # refused before any connection (none to 93.184.216.34 either)
    assert mixed.status_code is None and mixed.error == f"refused: mixed.example resolves to 169.254.169.254, a link-local address ({SETTING})"
    assert lookups == ["example.internal", "mixed.example"]


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(receiver, resolver):
    """DNS rebinding: the name answers 127.0.0.1 (where the receiver listens) once, then 127.0.0.2
    (nothing there). One lookup, and the attempt reaches the receiver."""
    lookups = resolver({"rebind.example": [["127.0.0.1"], ["127.0.0.2"]]})
    result = send(receiver.url.replace("127.0.0.1", "rebind.example"), allow_private=True)
    assert result.status_code == 204 and lookups == ["rebind.example"]
    [received] = receiver.received
    assert received["headers"]["Host"].startswith("rebind.example:")  # the request still names the host


def test_a_dns_failure_is_a_failed_attempt_not_an_exception():
    for url in ("http://bad..name/hooks", "http://\udcff.example/hooks"):
        result = send(url)
        assert result.status_code is None and not result.ok and result.error.startswith("DNS lookup of ") and "failed" in result.error


def test_a_port_out_of_range_is_a_failed_attempt():
    assert send("http://93.184.216.34:99999/hooks").error == "not a valid port in the URL"


def _certificate(tmp_path, name: str):
    """A CA (its file) and a server certificate for `name` signed by it (cert and key files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"


@pytest.mark.parametrize("certified", ["pinned.example", "other.example"])
def test_https_to_the_checked_address_keeps_sni_and_the_certificate_check_on_the_hostname(certified, tmp_path, monkeypatch, resolver):
    ca, cert, key = _certificate(tmp_path, certified)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the default context of post() trusts the test CA
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    resolver({"pinned.example": [["127.0.0.1"]]})
    try:
        result = send(f"https://pinned.example:{server.server_address[1]}/hooks", allow_private=True)
    finally:
        server.shutdown()
        server.server_close()
    assert names == ["pinned.example"]  # SNI names the host, not the address connected to
    if certified == "pinned.example":
        assert result.status_code == 204 and json.loads(received[0]) == {"type": "test"}
    else:
        assert result.status_code is None and "CERTIFICATE_VERIFY_FAILED" in result.error and received == []


# --- at registration (the API) ---------------------------------------------------------------------------


def register(client, key, url):
    return client.post(
        "/api/v1/webhooks/endpoints",
        data=json.dumps({"url": url, "events": ["request.active"]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hooks",
        "http://[::1]:8080/hooks",
        "http://localhost:8080/hooks",
        "http://127.0.0.1:9000/hooks",
        "http://0.0.0.0/",
        "https://[::ffff:10.0.0.1]/hooks",
        "https://[fd00::1]/hooks",
        "http://192.168.0.10:9000/",
    ],
)
def test_a_literal_non_global_address_is_refused_at_registration(url, client, api_client_key, private_off):
    _, key = api_client_key(("read",))
    response = register(client, key, url)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_webhook_url" and [e["field"] for e in problem["errors"]] == ["url"], problem
    assert "globally routable" in problem["detail"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://127.1/hooks", "http://2130706433/hooks", "http://0x7f.0.0.1/hooks", "http://LOCALHOST./hooks", "http://api.localhost/hooks"]
)
def test_the_service_refuses_the_old_numeric_forms_and_localhost_names_too(url, api_client_key, actor_of, private_off):
    """Forms the API's URL field already refuses, but the service (also the admin's) is the rule."""
    from service.common.errors import ApplicationError
    from service.webhooks.services import webhook_endpoint_create

    owner, _ = api_client_key(("read",))
    with pytest.raises(ApplicationError) as refused:
        webhook_endpoint_create(actor=actor_of(owner), url=url, events=["request.active"])
    assert refused.value.code == "invalid_webhook_url" and "globally routable" in refused.value.detail
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://93.184.216.34/hooks", "https://[2606:2800:220:1:248:1893:25c8:1946]/hooks", "https://internal.example/hooks"])
def test_a_public_literal_or_a_name_is_accepted_at_registration(url, client, api_client_key, private_off):
    """No network: nothing is resolved at registration (a name is judged at each delivery)."""
    _, key = api_client_key(("read",))
    response = register(client, key, url)
    assert response.status_code == 201, response.content
    assert WebhookEndpoint.objects.get().url == url


@pytest.mark.django_db
def test_with_the_setting_on_a_private_receiver_can_be_registered(client, api_client_key, settings):
    settings.FORGET = {**settings.FORGET, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": True}
    _, key = api_client_key(("read",))
    assert register(client, key, "http://10.0.0.1/hooks").status_code == 201
