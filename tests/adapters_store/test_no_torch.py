"""Web code never imports torch: the registry and the manifest checks it uses load without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import django
django.setup()
import workers.unlearning.unit_manifest
import adapters_store.api, adapters_store.models, adapters_store.selectors, adapters_store.services
import adapters_store.storage, adapters_store.urls, adapters_store.urls_api, adapters_store.views
import adapters_store.management.commands.registry_register, adapters_store.management.commands.registry_verify
from django.urls import get_resolver
get_resolver().url_patterns  # every view module of the web app
heavy = sorted(name for name in ("torch", "transformers", "peft", "safetensors", "numpy") if name in sys.modules)
print(json.dumps(heavy))
"""


def test_registry_and_unit_manifest_import_no_torch():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_unit_manifest_uses_the_engines_file_names():
    from workers.unlearning import training, unit_manifest

    assert (unit_manifest.ADAPTER_CONFIG_NAME, unit_manifest.ADAPTER_WEIGHTS_NAME) == (training.ADAPTER_CONFIG_NAME, training.ADAPTER_WEIGHTS_NAME)


def test_artifacts_re_exports_the_manifest_api():
    from workers.unlearning import artifacts, unit_manifest

    for name in ("Manifest", "UnitIntegrityError", "UnitCompatibilityError", "verify_unit", "sha256_file", "hash_forget_set", "FORMAT_VERSION"):
        assert getattr(artifacts, name) is getattr(unit_manifest, name)
