"""Dataclass fields that carry their help text, for the engine's plain configuration dataclasses.

`help_field(text, default)` is `dataclasses.field` with `metadata["help"] = text` (the PEFT
convention): the command line and the service read each field's help from there. A list or dict
default becomes a `default_factory` that copies it, so instances never share one. No torch import:
the service validates configs without loading the engine.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def help_field(text: str, default: Any) -> Any:
    """A dataclass field with default `default` and help text `text` (in `metadata["help"]`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": text})
    return field(default=default, metadata={"help": text})
