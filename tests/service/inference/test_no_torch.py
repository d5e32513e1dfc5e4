"""Web code never imports torch: the playground, the gateway's views, URLconf, server and registry
watcher load without it (only service.inference.engine, which run_gateway imports, needs torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
import django
django.setup()
import service.inference.api, service.inference.auth, service.inference.batcher, service.inference.client
import service.inference.gateway, service.inference.protocol, service.inference.server, service.inference.urls
import service.inference.urls_gateway, service.inference.views, service.inference.watcher
import service.inference.management.commands.run_gateway
from django.urls import get_resolver
get_resolver().url_patterns
get_resolver("service.inference.urls_gateway").url_patterns
heavy = sorted(name for name in ("torch", "transformers", "peft", "safetensors", "numpy") if name in sys.modules)
print(json.dumps(heavy))
"""


def test_web_side_of_the_gateway_imports_no_torch():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
