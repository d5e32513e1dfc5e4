"""Hashes that stand in for personal data (audit rows, logs) and canonical JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings


def pii_hash(value: str) -> str:
    """Keyed SHA-256 of a personal value: comparable across rows, not reversible by brute force."""
    normalised = " ".join(str(value).strip().lower().split())
    return "hmac-sha256:" + hmac.new(settings.PII_HASH_KEY.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the same data always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()
