"""Which heavy libraries a set of modules pulls in, asked of a fresh Python process (this one has
imported torch long ago). Web code never imports torch: the tests/**/test_no_torch.py files use it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TORCH_STACK = ("torch", "transformers", "peft", "safetensors", "numpy")

_PROBE = """
import importlib, json, sys
import django
django.setup()
for name in {modules!r}:
    importlib.import_module(name)
from django.urls import get_resolver
for urlconf in {urlconfs!r}:
    get_resolver(urlconf).url_patterns  # every view module the URLconf names
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def heavy_modules_loaded_by(modules: Iterable[str], *, heavy: Iterable[str] = TORCH_STACK, urlconfs: Iterable[str | None] = (None,)) -> list[str]:
    """Sets Django up in a new interpreter, imports `modules`, resolves each URLconf (None: the
    project's), and answers which of `heavy` are then loaded: [] when none is."""
    probe = _PROBE.format(modules=list(modules), urlconfs=list(urlconfs), heavy=list(heavy))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
