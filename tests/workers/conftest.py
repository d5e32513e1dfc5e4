"""The engine tests' process setup. Their tiny demo world and model (`tiny_config`, `tiny_world`,
`tiny_demo_model`) are in tests/conftest.py, shared with the gateway tests.

`tiny_demo_model` builds the "tiny" Llama preset once per session into the demo-model cache
($UNLEARN_CACHE_DIR, default ~/.cache/forget-service/models), so later sessions reuse it at once;
the cache key covers the config, the recipe and the library versions, so a stale build is never
reused. Point UNLEARN_CACHE_DIR at a temporary directory for a hermetic run.
"""

from __future__ import annotations

import os

# Must be set before torch loads OpenMP: on shared, busy cores, spinning OpenMP threads make a
# two-thread run several times slower than a one-thread run (see NOTES-demo-model.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
