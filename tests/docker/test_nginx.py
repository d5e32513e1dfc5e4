"""The compose file's proxy (docker/nginx.conf) in front of gunicorn's sync workers: it buffers
request bodies and times out slow clients, so that slow clients cannot tie up the workers; its own
refusals (a request line too long, a body too large, the app unreachable) are problem+json; and
gunicorn lets request lines through to the app's own 414 up to 8190 bytes.

The structural checks always run. With nginx installed (Debian's `nginx` package) the same file
runs for real in front of gunicorn on the test database: 16 clients that send headers and then
stall their bodies do not slow a probe of `/` down (they did, to 7.5 s, against gunicorn alone),
and the long-URL answers are problem+json from the app and from the proxy.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.docker.test_compose import COMPOSE, command_of, option

NGINX_CONF = Path(__file__).resolve().parents[2] / "docker" / "nginx.conf"


def server_block(port: int) -> str:
    text = NGINX_CONF.read_text()
    start = text.index(f"listen {port};")
    return text[text.rfind("server {", 0, start) : text.find("\nserver {", start)]


def directive(text: str, name: str) -> str | None:
    match = re.search(rf"(?m)^\s*{name}\s+([^;]+);", text)
    return match.group(1).strip() if match else None


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


# --- the file ---------------------------------------------------------------------------------------


def test_the_proxy_times_out_slow_clients():
    text = NGINX_CONF.read_text()
    for name, most in (("client_header_timeout", 30), ("client_body_timeout", 30), ("send_timeout", 60), ("keepalive_timeout", 75)):
        value = directive(text, name)
        assert value is not None and seconds(value) <= most, f"{name} {value}: slow clients must be cut off"
    assert directive(text, "reset_timedout_connection") == "on"


def test_the_web_server_buffers_whole_bodies_before_gunicorn_sees_them():
    web = server_block(8080)
    assert directive(web, "proxy_request_buffering") == "on"
    assert directive(web, "proxy_buffering") == "on"
    assert directive(web, "client_body_buffer_size") is not None
    assert "X-Real-IP $remote_addr" in web  # the address the rate limits count, set by the proxy


def test_the_proxys_own_refusals_are_problem_json():
    web = server_block(8080)
    for status, code in ((414, "uri_too_long"), (413, "body_too_large"), (503, "service_unavailable")):
        assert re.search(rf"error_page[^;]*\b{status}\b[^;]* /\.problems/", web), status
        assert re.search(rf"return {status} '\{{[^']*\"code\":\"{code}\"", web), code
    assert "default_type application/problem+json" in web
    assert directive(NGINX_CONF.read_text(), "large_client_header_buffers") == "4 8k"


def test_gunicorn_lets_long_request_lines_through_to_the_apps_414():
    assert option(command_of("web"), "--limit-request-line") == "8190"
    assert "docker/nginx.conf" in COMPOSE.read_text() or "proxy" in COMPOSE.read_text()


# --- nginx for real ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def proxied_web(tmp_path, transactional_db):
    """gunicorn (4 sync workers, as compose runs it) behind docker/nginx.conf on loopback."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (Debian's nginx package): docker/nginx.conf is checked structurally only")
    from tests.integration.processes import Gunicorn, app_env, require_postgresql

    require_postgresql("gunicorn")
    web = Gunicorn(env=app_env(tmp_path), log=tmp_path / "gunicorn.log", workers=4, extra=("--limit-request-line", "8190"))
    port = _free_port()
    conf = NGINX_CONF.read_text()
    conf = re.sub(r"(?m)^resolver .*$", "", conf)
    conf = conf.replace("http://web:8000", f"http://127.0.0.1:{web.port}").replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = re.sub(r"(?s)server \{\s*listen 8180;.*\Z", "", conf)  # the gateway's server: no gateway here
    conf = conf.replace("alias /srv/static/;", f"alias {tmp_path}/static/;")
    temp = tmp_path / "nginx"
    temp.mkdir()
    wrapper = (
        f"pid {temp}/nginx.pid; error_log {temp}/error.log; worker_processes 1; events {{ worker_connections 256; }}\n"
        f"http {{ access_log off; client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fcgi;"
        f" uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;\n{conf}\n}}\n"
    )
    (temp / "nginx.conf").write_text(wrapper)
    proc = None
    try:
        web.wait_ready()
        proc = subprocess.Popen([nginx, "-p", str(temp), "-c", str(temp / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.PIPE)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"nginx did not start: {proc.stderr.read().decode()}")
                time.sleep(0.1)
        yield port, web.port
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        web.stop()


def _stalled_bodies(port: int, count: int) -> list[socket.socket]:
    """Clients that send their headers and a few bytes of a 100 kB form body, then stall."""
    stalled = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /request/new/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nname=a")
        stalled.append(sock)
    return stalled


def probe_seconds(port: int, timeout: float = 30) -> float:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": "127.0.0.1"})
        assert conn.getresponse().status == 200
    except (TimeoutError, OSError):
        return timeout
    finally:
        conn.close()
    return time.monotonic() - start


def test_stalled_bodies_do_not_slow_the_site_down_behind_the_proxy(proxied_web):
    proxy_port, gunicorn_port = proxied_web
    stalled = _stalled_bodies(proxy_port, 16)
    try:
        time.sleep(0.5)
        behind_proxy = max(probe_seconds(proxy_port) for _ in range(3))
    finally:
        for sock in stalled:
            sock.close()
    assert behind_proxy < 1.0, f"a probe took {behind_proxy:.2f} s behind the proxy with 16 stalled bodies"


def test_long_urls_are_414_problem_json_from_the_app_and_from_the_proxy(proxied_web):
    proxy_port, _ = proxied_web
    for length, origin in ((5000, "app"), (9000, "proxy")):
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        conn.request("GET", "/api/v1/requests?q=" + "a" * length, headers={"Host": "127.0.0.1"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 414, (origin, response.status, body[:200])
        assert response.getheader("Content-Type").startswith("application/problem+json"), (origin, response.getheader("Content-Type"))
        assert b'"code": "uri_too_long"' in body or b'"code":"uri_too_long"' in body, (origin, body[:200])
        conn.close()
