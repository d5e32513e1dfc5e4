"""Fixtures shared by the engine tests: the tiny demo world and the tiny demo model built on it.

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

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_config():
    """The DemoModelConfig of the tiny Llama preset (24 people, 4 attributes)."""
    from workers.unlearning.demo_model import DemoModelConfig

    return DemoModelConfig.preset_config("tiny")


@pytest.fixture(scope="session")
def tiny_world(tiny_config):
    """The demo world the tiny demo model is trained on (a DemoWorld)."""
    return tiny_config.build_world()


@pytest.fixture(scope="session")
def tiny_demo_model(tiny_config) -> Path:
    """Directory of the tiny Llama demo model (Hugging Face format), built once and cached."""
    from workers.unlearning.demo_model import build_demo_model

    return build_demo_model(tiny_config)
