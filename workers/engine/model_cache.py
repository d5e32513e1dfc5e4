"""Where built and imported models are cached: $UNLEARN_CACHE_DIR, or ~/.cache/forget-service/models.

Demo-model builds (demo_model.py) and GGUF imports (gguf_import.py) both live under this root.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "UNLEARN_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/forget-service/models")


def default_cache_dir() -> Path:
    """$UNLEARN_CACHE_DIR, or ~/.cache/forget-service/models."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()
