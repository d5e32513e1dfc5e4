"""Container health check for the HTTP processes (web, gateway); standard library only.

    python docker/healthcheck.py http://127.0.0.1:8000/            # healthy on 2xx/3xx
    python docker/healthcheck.py --any-status http://127.0.0.1:8100/  # healthy on any HTTP answer

The request carries the first concrete name of ALLOWED_HOSTS as its Host header, so a deployment that
allows only its public names still passes (Django answers 400 to an unknown Host). --any-status is for
a process whose every route needs credentials (the gateway): any HTTP answer shows it is serving.
Exit 0 = healthy, 1 = not.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.parse


def host_header(default: str) -> str:
    for name in os.environ.get("ALLOWED_HOSTS", "").split(","):
        name = name.strip()
        if name and name != "*" and not name.startswith("."):
            return name
    return default


def main(argv: list[str]) -> int:
    any_status = "--any-status" in argv
    urls = [a for a in argv if not a.startswith("--")]
    if len(urls) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(urls[0])
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", "5")))
    try:
        conn.request("GET", url.path or "/", headers={"Host": host_header(url.netloc), "User-Agent": "forget-healthcheck"})
        status = conn.getresponse().status
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    healthy = any_status or 200 <= status < 400
    print(f"{'healthy' if healthy else 'unhealthy'}: GET {urls[0]} -> {status}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
