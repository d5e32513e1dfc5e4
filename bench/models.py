"""Which base model a benchmark runs on: a demo preset (built once and cached) or a model directory.
Shared by the benchmarks (bench/unlearning.py, bench/latency.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def resolve_model(spec: str, log: Callable[[str], None] | None = None) -> Path:
    """`demo`, `tiny` (or another preset name of workers.engine.demo_model) or a directory."""
    from workers.engine.demo_model import PRESETS, DemoModelConfig, build_demo_model

    if spec in PRESETS:
        started = time.perf_counter()
        path = build_demo_model(DemoModelConfig.preset_config(spec))
        if log is not None:
            log(f"demo model '{spec}': {path} ({time.perf_counter() - started:.0f} s to build or reuse)")
        return path
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise SystemExit(f"--model: {spec} is neither a demo preset ({', '.join(PRESETS)}) nor a model directory")
    return path
