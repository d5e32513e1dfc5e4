"""Smoke test of bench/latency.py: its main function runs end to end on the tiny demo model with the
smallest sizes and writes JSON (and a PNG) of the documented shape. Timings are not checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "latency.py"


@pytest.fixture(scope="module")
def latency():
    spec = importlib.util.spec_from_file_location("bench_latency", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_latency_bench_writes_its_report(latency, tiny_demo_model, tmp_path, capsys):
    out = tmp_path / "latency.json"
    result = latency.main(
        [
            "--model",
            str(tiny_demo_model),
            "--sizes",
            "0,1,3",
            "--prompts",
            "2",
            "--batch",
            "2",
            "--batch-calls",
            "1",
            "--rounds",
            "1",
            "--real-units",
            "2",
            "--reference-max",
            "1",
            "--reference-prompts",
            "1",
            "--forced-prompts",
            "1",
            "--targeted-prompts",
            "1",
            "--max-new-tokens",
            "3",
            "--train-epochs",
            "1",
            "--threads",
            "0",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["table"] == result["table"]
    assert out.with_suffix(".png").stat().st_size > 0
    assert "| base model |" in capsys.readouterr().out

    assert [row["units"] for row in saved["rows"]] == [0, 1, 3]
    assert [(row["real_units"], row["synthetic_units"]) for row in saved["rows"]] == [(0, 0), (1, 0), (2, 1)]
    assert len(saved["units"]["real"]) == 2 and saved["units"]["synthetic"] == 1
    for row in saved["rows"]:
        assert set(row["gate_ms_per_prompt"]) >= {"single", "batch"}
        assert set(row["e2e"]["single"]) >= {"p50_ms", "p95_ms", "tokens_per_s"}
        assert set(row["e2e"]["batched"]) >= {"call_p50_ms", "ms_per_prompt", "tokens_per_s"}
        assert set(row["gated_over_base"]) == {"single", "batched"}
        assert row["generation_only"]["p50_ms"] > 0 and row["generation_only"]["vs_0_units"] > 0
    one, three = saved["rows"][1], saved["rows"][2]
    assert one["reference_extrapolated"] is False and three["reference_extrapolated"] is True
    assert one["gate_growth_vs_1"] == {"single": 1.0, "batch": 1.0}
    assert "gate_pct_of_reference" in three and three["forced_on"]["ms_per_token"] > 0
    assert three["nonzero_weights_on_timed_prompts"] == 0  # timed prompts concern no unit's person
    assert set(saved["base"]) == {"single", "batched"}
    assert saved["encoder_pass"]["single_ms_per_prompt"] > 0 and saved["encoder"]["layers"]
    assert saved["hook_overhead"]["ratio"] > 0
    assert {"zero_weight_units_add_no_adapter_compute", "batch_amortises_encoder"} <= set(saved["targets"])
    assert saved["conditions"]["torch_threads"] >= 1
