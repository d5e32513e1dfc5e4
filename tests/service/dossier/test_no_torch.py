"""Web code never imports torch: the dossier's pages, API, signing and command load without it, and
without numpy or matplotlib until a plot is drawn."""

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
import service.dossier.api, service.dossier.documents, service.dossier.plots, service.dossier.selectors
import service.dossier.services, service.dossier.signing, service.dossier.views, service.dossier.templatetags.dossier
import service.dossier.management.commands.certificate_verify
from django.urls import get_resolver
get_resolver().url_patterns
heavy = sorted(name for name in ("torch", "transformers", "peft", "numpy", "matplotlib") if name in sys.modules)
print(json.dumps(heavy))
"""


def test_the_dossiers_web_side_imports_no_torch_and_no_plotting_library():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
