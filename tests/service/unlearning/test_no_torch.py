"""Web code never imports torch: the pipeline's web side (models, services, pages, API, the task
module the web process sends jobs with) loads without it; only the worker's task body does."""

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
import service.unlearning.api, service.unlearning.forget_set_builder, service.unlearning.models, service.unlearning.selectors
import service.unlearning.serializers, service.unlearning.services, service.unlearning.views, service.unlearning.templatetags.unlearning
import service.unlearning.management.commands.load_demo_corpus
import workers.tasks, workers.tasks.unlearning
from django.urls import get_resolver
get_resolver().url_patterns
heavy = sorted(name for name in ("torch", "transformers", "peft", "numpy") if name in sys.modules)
print(json.dumps(heavy))
"""


def test_the_pipelines_web_side_imports_no_torch():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
