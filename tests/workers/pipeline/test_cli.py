"""`unlearn train / probe / evaluate` end to end on the tiny demo model, and their one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workers.unlearning.cli import main

ROOT = Path(__file__).resolve().parents[3]


def unlearn(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, "-m", "workers.unlearning.cli", *argv], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unlearn"), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_train_probe_evaluate_end_to_end(tiny_demo_model, tiny_world, people, tmp_path):
    person = people[0]
    forget = tmp_path / "forget.jsonl"
    unlearn("demo", "forget", "--base", str(tiny_demo_model), "--person", person.name, "--out", str(forget))
    assert len(forget.read_text().splitlines()) == 8

    unit = tmp_path / "units" / "req-cli"
    unit.parent.mkdir()
    result = unlearn("train", "--base", str(tiny_demo_model), "--forget", str(forget), "--out", str(unit), "--threads", "1")
    assert result.stdout.strip() == str(unit)
    assert "training" in result.stderr and "100%" in result.stderr  # the progress bar, on stderr
    manifest = json.loads((unit / "manifest.json").read_text())
    assert manifest["extra"]["subjects"] == [person.name]  # found in the demo world

    questions = tmp_path / "questions.jsonl"
    asked = [tiny_world.questions(person, "trained")[0], tiny_world.fact_questions()[0]]
    questions.write_text("".join(json.dumps({"question": qa.question}) + "\n" for qa in asked))
    result = unlearn("probe", "--base", str(tiny_demo_model), "--units", str(unit), "--questions", str(questions), "--threads", "1")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["question"] for row in rows] == [qa.question for qa in asked]
    assert asked[0].answer not in rows[0]["answer"] and rows[0]["weights"]["req-cli"] > 0.5
    assert rows[1]["answer"] == asked[1].answer and rows[1]["weights"] == {"req-cli": 0.0}

    certificate = tmp_path / "cert.json"
    result = unlearn("evaluate", "--base", str(tiny_demo_model), "--units", str(unit), "--out", str(certificate), "--threads", "1")
    data = json.loads(certificate.read_text())
    assert data["unit_ids"] == ["req-cli"] and data["leak"]["F"]["gated"]["k"] == 0
    assert "leak F" in result.stdout and ("PASS" in result.stdout or "FAIL" in result.stdout)

    # Without the demo world next to the weights, evaluate asks for --probes.
    bare = tmp_path / "bare-model"
    shutil.copytree(tiny_demo_model, bare, ignore=shutil.ignore_patterns("world.json"))
    result = unlearn("evaluate", "--base", str(bare), "--units", str(unit), "--out", str(tmp_path / "c2.json"), check=False)
    assert_one_line_error(result.returncode, result.stderr, "--probes")


def test_help_explains_each_command(capsys):
    for command, words in (("train", ["--forget", "--previous", "orthogonal"]), ("probe", ["--questions", "weights"]),
                           ("evaluate", ["--probes", "certificate", "F<t"] )):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and all(word in out for word in words), out


def test_missing_paths_and_bad_files_give_one_line_errors(capsys, tmp_path, tiny_demo_model):
    absent = str(tmp_path / "absent")
    forget = tmp_path / "forget.jsonl"
    forget.write_text('{"question": "Q?", "answer": "A"}\n{"question": \n')
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Q?"}\n')
    out = str(tmp_path / "unit")
    cases = [
        (("train", "--base", absent, "--forget", str(forget), "--out", out), ["--base", "not found"]),
        (("train", "--base", str(tiny_demo_model), "--forget", absent, "--out", out), ["--forget", "not found"]),
        (("train", "--base", str(tiny_demo_model), "--forget", str(forget), "--out", out), ["line 2", "not valid JSON"]),
        (("train", "--base", str(tiny_demo_model), "--forget", str(forget), "--out", str(tmp_path / "no" / "u")), ["parent directory"]),
        (("train", "--base", str(tmp_path), "--forget", str(forget), "--out", out), ["no config.json"]),
        (("probe", "--base", absent, "--questions", str(questions)), ["--base", "not found"]),
        (("probe", "--base", str(tiny_demo_model), "--units", absent, "--questions", str(questions)), ["--units", "not found"]),
        (("evaluate", "--base", absent, "--units", absent, "--out", str(tmp_path / "c.json")), ["--base"]),
        (("evaluate", "--base", str(tiny_demo_model), "--units", str(tmp_path), "--out", str(tmp_path / "c.json"),
          "--probes", str(forget)), ["not valid JSON"]),
    ]
    for argv, needles in cases:
        assert_one_line_error(*run(capsys, *argv)[::2], *needles)
    assert not Path(out).exists()


def test_bad_config_and_tampered_unit_are_one_line_errors(capsys, tmp_path, tiny_demo_model, first_unit):
    forget = tmp_path / "forget.jsonl"
    forget.write_text('{"question": "Q?"}\n')
    code, _, err = run(capsys, "train", "--base", str(tiny_demo_model), "--forget", str(forget), "--out", str(tmp_path / "u"), "--epochs", "0")
    assert_one_line_error(code, err, "epochs")
    tampered = tmp_path / "tampered"
    shutil.copytree(first_unit, tampered)
    (tampered / "adapter" / "adapter_config.json").write_text("{}")
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Q?"}\n')
    code, _, err = run(capsys, "probe", "--base", str(tiny_demo_model), "--units", str(tampered), "--questions", str(questions))
    assert_one_line_error(code, err, "adapter/adapter_config.json")
