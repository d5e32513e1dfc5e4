"""The attack run of issue 14, repeated against the fixes: the web app under gunicorn (4 sync
workers, DEBUG off) on a dedicated PostgreSQL database, rate limits counted in Redis as deployed,
and (where nginx is installed) docker/nginx.conf in front for the slow-client probe.

    .venv/bin/python bench/security.py            # about 2 minutes; writes bench/results/security.json

What it tries, each bounded in count and time, against 127.0.0.1 only:
  1. 30 concurrent wrong guesses at one emailed code (each from its own address), then the right
     code; 5 trials: guesses checked (audit `request.verification_failed`), right code accepted?
  2. 40 public-form submissions for one victim address within a second, from 40 addresses: code
     mails sent, 429s.
  3. 200 status look-ups from one address as fast as it can: 429s.
  4. 100 wrong passwords for `admin` from one address: where the lockout starts, 429s, audit events.
  5. NUL bytes and lone surrogates in paths, query strings, headers and JSON keys and values at
     the API and the pages: 5xx answers.
  6. 16 clients that send headers and stall their bodies: a probe of `/`, against gunicorn alone
     and through docker/nginx.conf.
  7. `manage.py check --deploy` on the production configuration (docker/compose.yaml's environment).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    def __init__(self, port: int, ip: str):
        self.port, self.ip, self.cookies = port, ip, {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None, body: bytes | None = None) -> tuple[int, str, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Host": "127.0.0.1", "X-Real-IP": self.ip, "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **(headers or {})}
        if form is not None:
            body = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        text = response.read().decode("utf-8", "replace")
        conn.close()
        return response.status, text, dict(response.headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/forget_attack"),
        help="dedicated database (dropped and re-created!)",
    )
    parser.add_argument(
        "--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/12"), help="Redis for the rate limits (keys are flushed)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "security.json")
    args = parser.parse_args(argv)

    db_name = urllib.parse.urlsplit(args.database_url).path.lstrip("/")
    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    import redis

    redis.Redis.from_url(args.cache_url).flushdb()
    work = Path(tempfile.mkdtemp(prefix="forget-attack-"))
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "CACHE_URL": args.cache_url,
        "FORGET_VAR_DIR": str(work / "var"),
        "DEBUG": "false",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(work / "outbox"),
        "FORGET_CLIENT_IP_META_KEY": "HTTP_X_REAL_IP",
        "LOG_LEVEL": "ERROR",
        "DJANGO_SETTINGS_MODULE": "service.config.settings",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from service.accounts.services import staff_user_ensure; from service.accounts.roles import Role; "
            "staff_user_ensure(username='admin', password='admin-real-password-9', role=Role.ADMIN)",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "service.config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "4",
            "--timeout",
            "60",
            "--limit-request-line",
            "8190",
            "--error-logfile",
            str(work / "gunicorn.log"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    results: dict = {
        "conditions": {"gunicorn": "sync x 4", "database": "PostgreSQL on loopback", "cache": args.cache_url.split("@")[-1], "load_average": os.getloadavg()}
    }
    nginx_proc = None
    try:
        for _ in range(300):
            try:
                Browser(port, "192.0.2.1").request("GET", "/")
                break
            except OSError:
                time.sleep(0.2)

        def audit_count(action: str, target: str | None = None) -> int:
            with psycopg.connect(args.database_url) as conn:
                sql, params = "SELECT count(*) FROM audit_auditevent WHERE action = %s", [action]
                if target:
                    sql, params = sql + " AND target_id = %s", params + [target]
                return conn.execute(sql, params).fetchone()[0]

        def outbox_codes(email: str) -> list[str]:
            codes = []
            for mail in sorted((work / "outbox").glob("*.log"), key=lambda p: p.stat().st_mtime):
                text = mail.read_text(errors="replace")
                if f"To: {email}" in text:
                    codes += re.findall(r"verification code is (\d{6})\b", text)
            return codes

        def submit(email: str, ip: str) -> tuple[int, str]:
            browser = Browser(port, ip)
            browser.request("GET", "/request/new/")
            status, page, _ = browser.request(
                "POST", "/request/new/", {"name": "Vic Tim", "email": email, "regulation": "gdpr", "facts": "Vic Tim lives in Rome", "attested": "on"}
            )
            with psycopg.connect(args.database_url) as conn:
                reference = conn.execute("SELECT reference FROM requests_erasurerequest ORDER BY received_at DESC LIMIT 1").fetchone()
            return status, reference[0] if reference else ""

        # 1. the code race
        trials = []
        for trial in range(5):
            email = f"race{trial}@example.org"
            _, reference = submit(email, f"198.51.100.{trial + 1}")
            (code,) = outbox_codes(email)
            browsers = [Browser(port, f"203.0.{trial}.{n + 1}") for n in range(30)]
            for browser in browsers:
                browser.request("GET", "/request/verify/")
            barrier = threading.Barrier(30)

            def guess(browser, n, reference=reference, code=code, email=email, barrier=barrier):
                barrier.wait()
                return browser.request("POST", "/request/verify/", {"reference": reference, "email": email, "code": f"{(int(code) + n + 1) % 10**6:06d}"})[0]

            with ThreadPoolExecutor(30) as pool:
                statuses = list(pool.map(guess, browsers, range(30)))
            right = Browser(port, f"203.0.{trial}.99")
            right.request("GET", "/request/verify/")
            right_status, _, _ = right.request("POST", "/request/verify/", {"reference": reference, "email": email, "code": code})
            with psycopg.connect(args.database_url) as conn:
                status = conn.execute("SELECT status FROM requests_erasurerequest WHERE reference = %s", [reference]).fetchone()[0]
            trials.append(
                {
                    "checked": audit_count("request.verification_failed", reference),
                    "answers_5xx": sum(s >= 500 for s in statuses),
                    "right_code_accepted": status == "verified",
                    "right_code_status": right_status,
                }
            )
        results["code_race"] = trials

        # 2. one victim's address flooded from 40 addresses within a second
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            flood = list(pool.map(lambda n: submit("victim@example.org", f"198.18.0.{n + 1}")[0], range(40)))
        results["form_flood"] = {
            "submissions": 40,
            "seconds": round(time.monotonic() - start, 2),
            "accepted": flood.count(302),
            "refused_429": flood.count(429),
            "code_mails": len(outbox_codes("victim@example.org")),
        }

        # 3. status look-ups from one address
        lookups, start = [], time.monotonic()
        looker = Browser(port, "198.51.100.200")
        looker.request("GET", "/request/status/")
        for n in range(200):
            lookups.append(looker.request("POST", "/request/status/", {"reference": f"RTBF-{n:06d}"[:11], "email": "someone@example.org"})[0])
        results["status_lookups"] = {
            "tries": 200,
            "per_second": round(200 / (time.monotonic() - start), 1),
            "refused_429": lookups.count(429),
            "first_refused": lookups.index(429) + 1 if 429 in lookups else None,
        }

        # 4. wrong passwords for admin from one address
        guesser = Browser(port, "198.51.100.250")
        guesser.request("GET", "/accounts/login/")
        logins = [guesser.request("POST", "/accounts/login/", {"username": "admin", "password": f"guess-{n}"})[0] for n in range(100)]
        right_login = guesser.request("POST", "/accounts/login/", {"username": "admin", "password": "admin-real-password-9"})[0]
        results["login_bruteforce"] = {
            "tries": 100,
            "refused_429": logins.count(429),
            "first_refused": logins.index(429) + 1 if 429 in logins else None,
            "right_password_after": right_login,
            "audit_login_failed": audit_count("staff.login_failed"),
            "audit_locked_out": audit_count("staff.locked_out"),
        }

        # 5. NUL bytes and lone surrogates everywhere
        bad, fivexx, sent = [], 0, 0
        key = subprocess.run(
            [sys.executable, "manage.py", "create_api_client", "attack", "--scopes", "create,read"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        paths = [
            "/api/v1/requests",
            "/api/v1/requests/%00",
            "/api/v1/requests/%ED%A0%80/cancel",
            "/api/v1/registry/units/%00",
            "/api/v1/registry/units/%00/activate",
            "/request/status/%00",
            "/staff/requests/%00/",
        ]
        queries = ["", "?status=%00", "?%ED%A0%80=1", "?page=%00"]
        headers = [{}, {"X-Anything": "\x00"}, {"Idempotency-Key": "\xed\xa0\x80"}]
        bodies = [b'{"\\ud800": 1}', b'{"reason": "\\udfff"}', b'{"\\u0000": "\\u0000"}']
        for path in paths:
            for query in queries:
                for extra in headers:
                    for method, body in [("GET", None)] + [("POST", b) for b in bodies]:
                        try:
                            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                            head = {"Host": "127.0.0.1", "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                            conn.putrequest(method, path + query, skip_host=True)
                            for name, value in {**head, **extra}.items():
                                conn.putheader(name, value.encode("latin-1"))
                            conn.putheader("Content-Length", str(len(body or b"")))
                            conn.endheaders(body)
                            status = conn.getresponse().status
                            conn.close()
                        except (OSError, http.client.HTTPException) as exc:
                            status = f"error {exc}"
                        sent += 1
                        if isinstance(status, int) and status >= 500:
                            fivexx += 1
                            bad.append(f"{method} {path}{query} {extra} -> {status}")
        results["bad_characters"] = {"requests": sent, "answers_5xx": fivexx, "examples": bad[:5]}

        # 6. stalled bodies
        def probe(target: int) -> float:
            start = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", target, timeout=30)
                conn.request("GET", "/", headers={"Host": "127.0.0.1"})
                conn.getresponse().read()
                conn.close()
            except OSError:
                return 30.0
            return time.monotonic() - start

        def stalled(target: int) -> float:
            socks = []
            for _ in range(16):
                sock = socket.create_connection(("127.0.0.1", target), timeout=5)
                sock.sendall(
                    b"POST /request/new/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nname=a"
                )
                socks.append(sock)
            time.sleep(0.5)
            worst = max(probe(target) for _ in range(3))
            for sock in socks:
                sock.close()
            return round(worst, 2)

        slow = {"gunicorn_alone_probe_s": stalled(port)}
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if nginx:
            nginx_port = free_port()
            conf = (ROOT / "docker" / "nginx.conf").read_text()
            conf = (
                re.sub(r"(?m)^resolver .*$", "", conf)
                .replace("http://web:8000", f"http://127.0.0.1:{port}")
                .replace("listen 8080;", f"listen 127.0.0.1:{nginx_port};")
            )
            conf = re.sub(r"(?s)server \{\s*listen 8180;.*\Z", "", conf)
            temp = work / "nginx"
            temp.mkdir()
            (temp / "nginx.conf").write_text(
                f"pid {temp}/nginx.pid; error_log {temp}/error.log; events {{ worker_connections 256; }}\n"
                f"http {{ access_log off; client_body_temp_path {temp}/b; proxy_temp_path {temp}/p; fastcgi_temp_path {temp}/f; "
                f"uwsgi_temp_path {temp}/u; scgi_temp_path {temp}/s;\n{conf}\n}}\n"
            )
            time.sleep(2)  # let the workers recover from the direct attack
            nginx_proc = subprocess.Popen([nginx, "-p", str(temp), "-c", str(temp / "nginx.conf"), "-g", "daemon off;"])
            time.sleep(1)
            slow["through_nginx_probe_s"] = stalled(nginx_port)
        results["slow_bodies"] = {"stalled_clients": 16, **slow}

        # 7. check --deploy on the production configuration
        from tests.service.test_deploy_check import production_environment  # noqa: E402 - the test's own reading of compose

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.config.settings")
        check = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env=production_environment(work),
            capture_output=True,
            text=True,
        )
        results["check_deploy"] = {
            "exit": check.returncode,
            "output": check.stdout.strip().splitlines()[-1:] if check.stdout else check.stderr.strip().splitlines()[-1:],
        }
    finally:
        if nginx_proc:
            nginx_proc.terminate()
            nginx_proc.wait(timeout=10)
        os.killpg(gunicorn.pid, 15)
        gunicorn.wait(timeout=20)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
