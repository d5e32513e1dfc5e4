"""Encryption at rest for personal data (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from FORGET_ENCRYPTION_KEY (a Fernet key, or several comma-separated for rotation,
newest first). The embedded mode derives one from SECRET_KEY so the demo needs no set-up.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])


def _keys() -> str:
    configured = getattr(settings, "FORGET_ENCRYPTION_KEY", "")
    if configured:
        return configured
    return base64.urlsafe_b64encode(hashlib.sha256(("fernet:" + settings.SECRET_KEY).encode()).digest()).decode()


def encrypt_text(text: str) -> str:
    return _fernet(_keys()).encrypt(text.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return _fernet(_keys()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot decrypt: wrong FORGET_ENCRYPTION_KEY or altered data") from exc


class EncryptedJSONField(models.TextField):
    """Any JSON value, stored as a Fernet token. Not searchable by design; None stays NULL."""

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return json.loads(decrypt_text(value))

    def to_python(self, value):
        if value is None or not isinstance(value, str):
            return value
        try:
            return json.loads(decrypt_text(value))
        except ValueError:
            return value

    def get_prep_value(self, value: Any):
        if value is None:
            return None
        return encrypt_text(json.dumps(value, ensure_ascii=False))
