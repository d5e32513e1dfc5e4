"""Smoke test of bench/unlearning.py: its main function runs end to end on the tiny demo model with
2 requests and 2 methods and writes JSON, markdown and a PNG of the documented shape. The figures
themselves are not checked (a benchmark measures, it does not assert)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "unlearning.py"


@pytest.fixture(scope="module")
def unlearning():
    spec = importlib.util.spec_from_file_location("bench_unlearning", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.slow
def test_unlearning_bench_writes_its_report(unlearning, tiny_demo_model, tmp_path, capsys):
    out = tmp_path / "unlearning.json"
    result = unlearning.main([
        "--model", str(tiny_demo_model), "--requests", "2", "--max-people", "1", "--methods", "o3-shared,ga",
        "--epochs", "2", "--f-per-person", "2", "--p-per-person", "2", "--d-per-person", "1",
        "--retain", "4", "--neighbours", "4", "--general", "2", "--gd-retain", "2", "--max-new-tokens", "4",
        "--threads", "1", "--out", str(out), "--quiet",
    ])
    saved = json.loads(out.read_text())
    assert saved["table"] == result["table"] == out.with_suffix(".md").read_text()
    assert out.with_name("unlearning_curves.png").stat().st_size > 0
    assert "| O3, shared detector (ours) |" in capsys.readouterr().out

    assert saved["settings"]["methods"] == ["o3-shared", "ga"]
    assert [step["request"] for step in saved["steps"]] == [1, 2]
    assert [len(r["people"]) for r in saved["stream"]] == [1, 1]
    for step in saved["steps"]:
        assert set(step["methods"]) == {"o3-shared", "ga"}
        for method, r in step["methods"].items():
            assert set(r["leak"]) == {"F", "P", "D", "all"}
            assert set(r["leak"]["F"]) >= {"k", "n", "rate", "upper95", "probes"}
            assert set(r["retain"]) == {"R", "N", "W", "N-name"}
            assert set(r["retain"]["R"]) == {"ratio", "correct", "base_correct", "probes"}
            assert r["train_seconds"]["total"] > 0 and "adapter" in r["train_seconds"]
            assert ("gate" in r) == (method == "o3-shared")
        gate = step["methods"]["o3-shared"]["gate"]
        assert 0.0 <= gate["union_fpr"] <= 1.0 and set(gate["fpr_by_set"]) == {"R", "N", "W"}
        assert "detector" in step["methods"]["o3-shared"]["train_seconds"]
    # F, P and D are cumulative: the second step probes both requests' people.
    first, second = saved["steps"]
    assert second["methods"]["ga"]["leak"]["F"]["probes"] == 2 * first["methods"]["ga"]["leak"]["F"]["probes"]
    assert set(saved["final"]) == {"request", "o3-shared", "ga"} and saved["final"]["request"] == 2
    assert set(saved["target_check"]) == {"o3-shared"}
    assert set(saved["target_check"]["o3-shared"]) >= {"leak_F", "leak_P", "union_fpr", "retain_N", "train_seconds_max", "all"}
    assert saved["conditions"]["torch_threads"] == 1 and saved["conditions"]["wall_seconds"] > 0
