"""CPU profile of the intake request path, in-process: POST /api/v1/requests through the WSGI handler.

    .venv/bin/python bench/intake_profile.py                 # 300 requests (after 30 warm-up), cProfile top 25
    .venv/bin/python bench/intake_profile.py -n 1000 --no-cprofile

Unlike bench/intake.py this measures no throughput: it reports the app's CPU milliseconds per accepted
request (time.process_time of this process, which runs the whole Django request: middleware,
authentication, DRF, encryption, the audit append) plus the PostgreSQL backend's CPU per request (from
/proc), which stay meaningful while other jobs share the cores. The requests are the same bodies and
headers bench/intake.py sends, through django.core.handlers.wsgi.WSGIHandler (what gunicorn calls), with
a persistent database connection, against a real PostgreSQL database that the script drops, re-creates
and migrates (default postgres://postgres@127.0.0.1:5432/forget_h5_bench; must be on loopback).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from intake import _admin_sql, _body, _process_cpu  # noqa: E402  (same bodies as the benchmark)


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=300, help="measured requests (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="requests before measuring (default 30)")
    parser.add_argument("--database-url", default=os.environ.get("PROFILE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/forget_h5_bench"))
    parser.add_argument("--no-cprofile", action="store_true", help="only the CPU figures (cProfile itself roughly doubles the CPU)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sql", action="store_true", help="print the SQL statements of one request")
    parser.add_argument(
        "--what-if-no-job-lookup",
        action="store_true",
        help="measurement only: skip the unlearning-job look-up in the 202 representation (a request created by this very call has no job), "
        "to size that proposed change in service/requests/api.py",
    )
    parser.add_argument("--keep-db", action="store_true", help="reuse the database if it exists (skip drop + migrate)")
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--database-url must be on loopback")
    return args


def main(argv=None) -> int:
    args = _args(argv)
    name = urlsplit(args.database_url).path.lstrip("/")
    var_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}-var"
    var_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="service.config.settings",
        DATABASE_URL=args.database_url,
        CONN_MAX_AGE="60",
        FORGET_VAR_DIR=str(var_dir),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
        DEBUG="false",
    )
    if not args.keep_db:
        _admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, check=True)
    out = subprocess.run(
        [sys.executable, "manage.py", "create_api_client", f"profile-{uuid.uuid4().hex[:8]}", "--scopes", "create,read,trusted_identity"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    key = next(word for word in out.split() if word.startswith("fk_"))

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    app = WSGIHandler()
    if args.what_if_no_job_lookup:
        from service.requests import api as requests_api

        requests_api.RequestRepresentationSerializer._job = lambda self, erasure: None
    tag = uuid.uuid4().hex[:6]

    def post(n: int) -> int:
        body = _body(n, tag)
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/requests", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_ACCEPT": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_IDEMPOTENCY_KEY": f"{tag}-{n}-{uuid.uuid4().hex}",
        }  # fmt: skip
        status = []
        chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
        payload = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        code = int(status[0].split()[0])
        if code != 202:
            raise SystemExit(f"request {n} answered {status[0]}: {payload[:500]!r}")
        return code

    for n in range(args.warmup):
        post(n)
    backend_pid = connection.cursor().connection.info.backend_pid
    if args.sql:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            post(5_000)
        for number, query in enumerate(captured.captured_queries, 1):
            print(f"{number:2d}. {query['sql'][:300]}")

    def measure(first: int, count: int) -> tuple[float, float, float]:
        cpu0, wall0, pg0 = time.process_time(), time.perf_counter(), _process_cpu(backend_pid)
        for n in range(first, first + count):
            post(n)
        return (time.process_time() - cpu0), (time.perf_counter() - wall0), (_process_cpu(backend_pid) - pg0)

    cpu, wall, pg = measure(10_000, args.requests)
    report = {
        "requests": args.requests,
        "app_cpu_ms_per_request": round(cpu / args.requests * 1000, 3),
        "postgres_cpu_ms_per_request": round(pg / args.requests * 1000, 3),
        "wall_ms_per_request": round(wall / args.requests * 1000, 3),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))
    if not args.no_cprofile:
        profiler = cProfile.Profile(time.process_time)  # CPU time, not wall: waits on PostgreSQL excluded
        profiler.enable()
        measure(20_000, args.requests)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(args.top)
        print(stream.getvalue())
        stream = io.StringIO()  # the project's own functions, and the library calls they make that matter
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(
            r"/service/|serializers\.py:5(30|83)|fields\.py|renderers|crypto|fernet|middleware", args.top
        )
        print(stream.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
