"""Per-process model runtime shared by the GPU worker and the inference gateway.

Resolves which base model and detector encoder this deployment uses (from Django settings when
they are configured, else from the environment), and loads each once per process. torch is
imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

_lock = threading.Lock()


def _setting(name: str, default: str = "") -> str:
    try:
        from django.conf import settings

        if settings.configured:
            return str(getattr(settings, name, default) or default)
    except ImportError:  # the engine is usable without Django
        pass
    return os.environ.get(name, default)


def base_model_dir() -> Path:
    """BASE_MODEL_DIR (a GGUF file, or a directory holding one, is imported into the model cache
    on first use: workers.engine.gguf_import), or the demo model of preset FORGET_DEMO_PRESET
    (built and cached on first use)."""
    configured = _setting("BASE_MODEL_DIR")
    if configured:
        from workers.engine.gguf_import import imported_dir

        return imported_dir(configured)
    from workers.engine.demo_model import DemoModelConfig, build_demo_model

    return build_demo_model(DemoModelConfig.preset_config(_setting("FORGET_DEMO_PRESET", "demo")))


@lru_cache(maxsize=2)
def _load_base(path: str, device: str | None):
    from workers.engine.base_model import load_base_model

    return load_base_model(path, device=device)


def get_base(device: str | None = None):
    """The base model of this deployment, loaded once per process (thread-safe)."""
    with _lock:
        return _load_base(str(base_model_dir()), device)


@lru_cache(maxsize=2)
def _load_encoder(path: str, device: str | None):
    from workers.engine.detector import load_encoder

    return load_encoder(path or None, device=device)


def get_encoder(device: str | None = None):
    """The detector encoder, loaded once per process."""
    with _lock:
        return _load_encoder(_setting("DETECTOR_ENCODER_DIR"), device)
