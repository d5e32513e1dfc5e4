"""The `unlearn demo ...` commands: help, world export, build/reuse, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from workers.engine.cli import main

ROOT = Path(__file__).resolve().parents[3]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help and usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err


def test_console_script_is_declared_and_help_needs_no_torch():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["unlearn"] == "workers.engine.cli:main"
    probe = "import sys; from workers.engine.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
    result = subprocess.run([sys.executable, "-m", "workers.engine.cli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "demo" in result.stdout


def test_help_describes_the_demo_commands(capsys):
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0 and "build" in out and "world" in out
    code, out, _ = run(capsys, "demo", "build", "--help")
    assert code == 0
    for option in ("--out", "--preset", "--arch", "--seed", "llama", "gpt2", "tiny"):
        assert option in out


@pytest.mark.parametrize(
    "argv",
    [
        ("demo", "build", "--preset", "huge"),
        ("demo", "build", "--arch", "bert"),
        ("demo", "build", "--seed", "abc"),
        ("demo", "world"),
        ("demo",),
        ("frobnicate",),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert_one_line_error(err)


def test_bad_paths_give_one_line_and_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "world", "--out", str(tmp_path / "missing" / "world.json"))
    assert code == 2 and "does not exist" in err
    assert_one_line_error(err)
    code, _, err = run(capsys, "demo", "world", "--out", str(tmp_path))
    assert code == 2 and "directory" in err
    assert_one_line_error(err)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = run(capsys, "demo", "build", "--preset", "tiny", "--out", str(a_file))
    assert code == 2 and "not a directory" in err
    assert_one_line_error(err)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    code, _, err = run(capsys, "demo", "build", "--preset", "tiny", "--quiet", "--out", str(busy))
    assert code == 2 and "refusing" in err
    assert_one_line_error(err)


def test_world_export(capsys, tmp_path):
    out = tmp_path / "world.json"
    code, _, err = run(capsys, "demo", "world", "--preset", "tiny", "--out", str(out))
    assert code == 0 and "24 people" in err
    data = json.loads(out.read_text())
    assert len(data["people"]) == 24 and data["holdout_people"] and data["general_facts"]
    assert {q["split"] for q in data["people"][0]["questions"]} == {"trained", "heldout"}


@pytest.mark.slow
def test_build_prints_the_model_directory_and_reuses_the_cache(capsys, tiny_demo_model):
    code, out, err = run(capsys, "demo", "build", "--preset", "tiny")
    assert code == 0
    assert Path(out.strip()) == tiny_demo_model
    assert "trained phrasings" in err and "reused" in err
