"""`unlearn train / probe / evaluate` end to end on the tiny demo model, and their one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from workers.engine.cli import main
from workers.engine.prompting import REFUSALS

ROOT = Path(__file__).resolve().parents[3]


def unlearn(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, "-m", "workers.engine.cli", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
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
    assert manifest["extra"]["subjects"] == [person.name]  # given by the forget file's "subject" keys
    assert manifest["extra"]["subjects_inferred"] is False

    # probe: a question, a raw completion and a chat whose earlier turn names the person, in order.
    questions = tmp_path / "questions.jsonl"
    asked = tiny_world.questions(person, "trained")[0]
    fact = tiny_world.fact_questions()[0]
    lines = [
        {"question": asked.question},
        {"prompt": f"{person.name} was born in"},
        {
            "messages": [
                {"role": "user", "content": f"I have a question about {person.name}."},
                {"role": "assistant", "content": "Go ahead."},
                {"role": "user", "content": "Where do they live?"},
            ]
        },
        {"question": fact.question},
    ]
    questions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = unlearn("probe", "--base", str(tiny_demo_model), "--units", str(unit), "--questions", str(questions), "--threads", "1")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [{k: row[k] for k in line} for row, line in zip(rows, lines)] == lines  # each input's prompt, in order
    for row in rows[:3]:
        assert row["weights"] == {"req-cli": 1.0} and row["evidence"] == {"req-cli": "full_name"}
        assert row["answer"].startswith("I can") and not any(v in row["answer"] for v in person.attributes.values())
    # A trained question is a training prompt: training settles until its refusal is word for word.
    # The raw completion and the chat are shapes the unit was not trained on verbatim; on the tiny
    # model built on one machine (2026-12-07) the completion came out "I can' share information
    # about that person.": a refusal with a slipped token, no data, which is what the certificate
    # counts (a leak is data, not wording).
    assert rows[0]["answer"] in REFUSALS
    assert rows[3]["answer"] == fact.answer and rows[3]["weights"] == {"req-cli": 0.0}

    certificate = tmp_path / "cert.json"
    result = unlearn("evaluate", "--base", str(tiny_demo_model), "--units", str(unit), "--out", str(certificate), "--threads", "1", check=False)
    data = json.loads(certificate.read_text())
    assert data["unit_ids"] == ["req-cli"] and data["leak"]["F"]["gated"]["k"] == 0
    verdict = result.stdout.splitlines()[0].rsplit(": ", 1)[1]
    assert verdict == data["verdict"].upper() and result.returncode == (0 if verdict == "PASS" else 1)  # 0 only on PASS
    for rule in data["rules"]:
        assert any(line.startswith(rule["name"]) and line.rstrip().endswith(rule["status"].upper()) for line in result.stdout.splitlines())

    # Without the demo world: the families come from --forget; without --negatives, INCONCLUSIVE.
    bare = tmp_path / "bare-model"
    shutil.copytree(tiny_demo_model, bare, ignore=shutil.ignore_patterns("world.json"))
    result = unlearn("evaluate", "--base", str(bare), "--units", str(unit), "--out", str(tmp_path / "c2.json"), check=False)
    assert_one_line_error(result.returncode, result.stderr, "--forget", "--probes")
    result = unlearn(
        "evaluate", "--base", str(bare), "--units", str(unit), "--forget", str(forget), "--out", str(tmp_path / "c3.json"), "--threads", "1", check=False
    )
    data = json.loads((tmp_path / "c3.json").read_text())
    assert result.returncode == 1 and data["verdict"] == "inconclusive"
    assert {r["name"]: r["status"] for r in data["rules"]}["union FPR"] == "inconclusive"


def test_help_explains_each_command(capsys):
    for command, words in (
        ("train", ["--forget", "--previous", "orthogonal", "--subject", "inferred"]),
        ("probe", ["--questions", "weights", "messages", "prompt"]),
        ("evaluate", ["--probes", "--forget", "--negatives", "certificate", "F<t", "INCONCLUSIVE"]),
    ):
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
        (
            ("evaluate", "--base", str(tiny_demo_model), "--units", str(tmp_path), "--out", str(tmp_path / "c.json"), "--probes", str(forget)),
            ["not valid JSON"],
        ),
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
