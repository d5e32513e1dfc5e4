"""One signed HTTP POST of a webhook message: the Standard Webhooks headers and signature.

    webhook-id         the message id (the same on every retry and replay: receivers deduplicate on it)
    webhook-timestamp  seconds since the epoch, of this attempt
    webhook-signature  "v1," + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))

Signed with the `standardwebhooks` package (the specification's reference library). The call goes
to the registered URL only: no proxy from the environment, no redirect followed (a 3xx is a failed
attempt), and a short timeout on connecting and on each read; the answer's body is not kept.

Egress rule (SSRF): the hostname is resolved once, and the attempt is refused unless every address it
resolves to is globally routable: no loopback, private (RFC 1918), shared (100.64/10), link-local
(169.254/16: cloud metadata), unique-local IPv6, multicast, reserved or unspecified address, also
not when wrapped in IPv6 (IPv4-mapped, 6to4, NAT64). The connection then goes to the checked
address itself, not to a second lookup of the name (DNS rebinding); HTTPS still sends the hostname
for SNI and checks the certificate against it. FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS (allow_private)
lifts the rule, for receivers on a private network and for tests on loopback.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

USER_AGENT = "forget-service-webhooks/1"
MAX_ANSWER_BYTES = 4096
ALLOW_SETTING = "FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")  # RFC 4193
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


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


# --- the egress rule -----------------------------------------------------------------------------------


def _unwrapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries and leads to (IPv4-mapped, 6to4, NAT64), else itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def non_global_reason(ip: IPAddress) -> str | None:
    """Why a webhook may not go to `ip` ("a private address", ...), or None when it is globally
    routable. An IPv6 address that wraps an IPv4 one is judged by the IPv4 address."""
    ip = _unwrapped(ip)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 6 and ip in _UNIQUE_LOCAL:
        return "a unique-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if ip.version == 4 and ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if not ip.is_global:
        return "a non-global address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, read as the resolver reads it (also the old
    forms 127.1, 2130706433, 0x7f.0.0.1), without any DNS lookup; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(infos[0][4][0]) if infos else None


def is_local_name(host: str) -> bool:
    """localhost and its aliases, and any name under .localhost (RFC 6761): loopback by definition."""
    name = host.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def refusal(host: str, ip: IPAddress | str, reason: str) -> str:
    if str(ip) == host:
        return f"refused: {host} is {reason} ({ALLOW_SETTING})"
    return f"refused: {host} resolves to {ip}, {reason} ({ALLOW_SETTING})"


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (one lookup), in the resolver's order, without repeats."""
    addresses: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


def _pinned(addresses: list[str], port: int):
    """A replacement of HTTPConnection._create_connection that connects to the checked addresses
    (in order, the first that answers), whatever host the connection names."""

    def create_connection(address, timeout, source_address=None):
        error: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection((ip, port), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError(f"no address to connect to for {address[0]}")

    return create_connection


# --- one attempt -------------------------------------------------------------------------------------


def post(url: str, *, secret: str, message_id: str, body: str, timeout: float, allow_private: bool = False) -> AttemptResult:
    """One attempt; never raises for a network problem (the result says what happened). Refused,
    without connecting, when the host resolves to any address that is not globally routable,
    unless `allow_private` (FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return AttemptResult(None, 0, f"not an http(s) URL: {parts.scheme or '?'}")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return AttemptResult(None, 0, "not a valid port in the URL")
    started = time.perf_counter()
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        return AttemptResult(None, _ms(started), f"DNS lookup of {host} failed: {exc}"[:300])
    if not addresses:
        return AttemptResult(None, _ms(started), f"DNS lookup of {host} gave no address")
    if not allow_private:
        for address in addresses:
            try:
                reason = non_global_reason(ipaddress.ip_address(address))
            except ValueError:
                reason = "not an IP address"
            if reason:
                return AttemptResult(None, 0, refusal(host, address, reason)[:300])
    headers = signed_headers(secret=secret, message_id=message_id, body=body, at=datetime.now(UTC))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn._create_connection = _pinned(addresses, port)  # no second lookup of the name (DNS rebinding)
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
