"""Smoke test of bench/unlearning.py: its main function runs end to end on the tiny demo model with
2 requests and 3 methods and writes JSON, markdown and a PNG of the documented shape. The figures
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
    unlearning.main(
        [
            "--model",
            str(tiny_demo_model),
            "--requests",
            "2",
            "--methods",
            "ours,ours-no-entity,ga",
            "--no-certificates",
            "--epochs",
            "2",
            "--per-family",
            "3",
            "--retain",
            "12",
            "--neighbours",
            "12",
            "--general",
            "6",
            "--curve-every",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    saved = json.loads(out.read_text())
    assert out.with_name("unlearning_curves.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| O3 + entity evidence, decisive gate (ours) |" in printed and printed == out.with_suffix(".md").read_text() + "\n"

    assert saved["settings"]["methods"] == ["ours", "ours-no-entity", "ga"]
    assert [e["after_request"] for e in saved["evaluations"]] == [1, 2] and len(saved["stream"]) == 2
    assert len({r["person"] for r in saved["stream"]}) == 2  # drawn without replacement
    for evaluation in saved["evaluations"]:
        for method, r in evaluation["methods"].items():
            assert set(r["leak"]) == {*unlearning.FAMILIES, "all"}
            assert {"k", "n", "rate", "lower95", "upper95", "revealed"} <= set(r["leak"]["P"])
            assert {"R", "N", "W"} <= set(r["retain"])
            assert ("union_fpr" in r) == (method in ("ours", "ours-no-entity"))
    first, second = saved["evaluations"]
    assert second["probes"]["P"] == 2 * first["probes"]["P"]  # cumulative: both requests' people
    assert set(saved["train_seconds"]) == {"ours", "ours-no-entity", "ga"} and saved["certificates"] == []
    assert saved["conditions"]["torch_threads"] == 1 and saved["conditions"]["wall_seconds"] > 0
