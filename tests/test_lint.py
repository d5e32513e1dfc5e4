"""The linter and the formatter (ruff, configured in pyproject.toml) find nothing, and the import
contracts (import-linter, pyproject.toml [tool.importlinter]) hold: style and structure are checked
by CI, not by review. `.venv/bin/ruff check --fix .` and `.venv/bin/ruff format .` mend most of it;
`.venv/bin/lint-imports` names each import that breaks a contract."""

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


def test_import_contracts_hold():
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
