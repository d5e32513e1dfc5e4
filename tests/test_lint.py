"""The linter and the formatter (ruff, configured in pyproject.toml) find nothing: style is checked
by CI, not by review. `.venv/bin/ruff check --fix .` and `.venv/bin/ruff format .` mend most of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


RUFF = Path(sys.executable).with_name("ruff")


def test_ruff_check_finds_nothing():
    result = subprocess.run([str(RUFF), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_file_is_formatted():
    result = subprocess.run([str(RUFF), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
