"""Ed25519 signatures of erasure certificates, and the service's signing key (docs/dossier.md).

The signed message is the canonical JSON of the payload (sorted keys, no whitespace, UTF-8). A
signed document is

    {"payload": {...},
     "signature": {"alg": "Ed25519", "key_id": "<sha256 hex of the raw public key>",
                   "public_key": "<base64 of the raw 32-byte public key>", "value": "<base64>"}}

The public key inside a document only says which key it claims; a verifier checks the signature
with the key it trusts (the service's, or one it was given) and never with the claimed one.

The key, from the settings: FORGET_SIGNING_KEY_FILE (a PEM PKCS#8 private key, or the base64 of the
32-byte raw key, in a file), else FORGET_SIGNING_KEY (that base64 itself), else the embedded
default: a key generated once into VAR_DIR/certificate-signing-key.pem (mode 0600), logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

logger = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
DEFAULT_KEY_FILENAME = "certificate-signing-key.pem"


class SigningKeyError(Exception):
    """The signing or verification key is missing or unreadable; the message is one line."""


class InvalidDocument(Exception):
    """A signed document is malformed, altered or signed by another key; the message is one line."""


# --- the message and its signature ---------------------------------------------------------------


def canonical_bytes(payload: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; NaN and infinities are refused (they are not JSON)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: short enough to read out, unique per key."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign_bytes(message: bytes, private_key: Ed25519PrivateKey) -> str:
    return base64.b64encode(private_key.sign(message)).decode()


def bytes_signed_by(message: bytes, signature_b64: str, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_payload(payload: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed document of `payload`."""
    public_key = private_key.public_key()
    return {
        "payload": payload,
        "signature": {
            "alg": ALGORITHM,
            "key_id": key_id(public_key),
            "public_key": base64.b64encode(raw_public_key(public_key)).decode(),
            "value": sign_bytes(canonical_bytes(payload), private_key),
        },
    }


@dataclass(frozen=True)
class Verified:
    payload: dict[str, Any]
    key_id: str


def verify_document(document: Any, trusted_key: Ed25519PublicKey) -> Verified:
    """The payload of a document signed by `trusted_key`; InvalidDocument otherwise."""
    if not isinstance(document, dict) or not isinstance(document.get("payload"), dict) or not isinstance(document.get("signature"), dict):
        raise InvalidDocument("not a signed certificate: expected an object with 'payload' and 'signature'")
    signature = document["signature"]
    if signature.get("alg") != ALGORITHM:
        raise InvalidDocument(f"unsupported signature algorithm {signature.get('alg')!r} (expected {ALGORITHM})")
    trusted_id = key_id(trusted_key)
    if signature.get("key_id") != trusted_id:
        raise InvalidDocument(f"signed by key {signature.get('key_id')!r}, not by the trusted key {trusted_id}")
    if not isinstance(signature.get("value"), str) or not bytes_signed_by(canonical_bytes(document["payload"]), signature["value"], trusted_key):
        raise InvalidDocument(f"the signature does not match the content: the certificate was altered (or not signed by key {trusted_id})")
    return Verified(payload=document["payload"], key_id=trusted_id)


# --- keys ----------------------------------------------------------------------------------------


def private_key_from_text(text: str, *, source: str) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, or the base64 of its 32 raw bytes."""
    if "change-me" in text:
        raise SigningKeyError(f"{source} still holds the placeholder of docker/.env.example: generate a key (docs/dossier.md)")
    return _key_from_text(
        text,
        source=source,
        kind="private",
        key_type=Ed25519PrivateKey,
        from_pem=lambda pem: serialization.load_pem_private_key(pem, password=None),
        from_raw=Ed25519PrivateKey.from_private_bytes,
    )


def public_key_from_text(text: str, *, source: str) -> Ed25519PublicKey:
    """A PEM Ed25519 public key, or the base64 of its 32 raw bytes (a document's `public_key`)."""
    return _key_from_text(
        text,
        source=source,
        kind="public",
        key_type=Ed25519PublicKey,
        from_pem=serialization.load_pem_public_key,
        from_raw=Ed25519PublicKey.from_public_bytes,
    )


def _key_from_text(text: str, *, source: str, kind: str, key_type: type, from_pem: Callable[[bytes], Any], from_raw: Callable[[bytes], Any]) -> Any:
    """`text` as a PEM key or the base64 of the raw bytes, checked to be a `key_type` (SigningKeyError otherwise)."""
    text = text.strip()
    try:
        key = from_pem(text.encode()) if text.startswith("-----BEGIN") else from_raw(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{source} is not an Ed25519 {kind} key (PEM, or base64 of 32 raw bytes): {exc}") from None
    if not isinstance(key, key_type):
        raise SigningKeyError(f"{source} holds a {type(key).__name__}, not an Ed25519 {kind} key")
    return key


def _read(path: Path, *, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read {what} {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None


def default_key_path() -> Path:
    return Path(settings.VAR_DIR) / DEFAULT_KEY_FILENAME


def _generate_key_file(path: Path) -> None:
    """Writes a new key to `path` unless another process got there first (0600, atomic)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    try:
        os.link(scratch, path)  # fails if the file exists: the first writer wins, nobody sees half a key
    except FileExistsError:
        return
    finally:
        scratch.unlink()
    logger.warning(
        "generated the certificate signing key %s (key id %s): set FORGET_SIGNING_KEY or FORGET_SIGNING_KEY_FILE "
        "in production and keep the key safe (docs/dossier.md)",
        path,
        key_id(key.public_key()),
    )


def service_signing_key(*, create: bool = True) -> Ed25519PrivateKey:
    """The key the service signs certificates with (see the module doc). With create=False a
    missing default key is an error instead of being generated (a verifier has nothing to check
    against a brand-new key)."""
    key_file = getattr(settings, "FORGET_SIGNING_KEY_FILE", "")
    if key_file:
        path = Path(key_file)
        return private_key_from_text(_read(path, what="FORGET_SIGNING_KEY_FILE"), source=f"FORGET_SIGNING_KEY_FILE ({path})")
    configured = getattr(settings, "FORGET_SIGNING_KEY", "")
    if configured:
        return private_key_from_text(configured, source="FORGET_SIGNING_KEY")
    path = default_key_path()
    if not path.exists():
        if not create:
            raise SigningKeyError(f"no signing key is configured and {path} does not exist: pass the service's public key with --public-key")
        _generate_key_file(path)
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        logger.warning("the certificate signing key %s is readable by other users: chmod 600 it", path)
    return private_key_from_text(_read(path, what="the signing key"), source=str(path))


def service_public_key(*, create: bool = True) -> Ed25519PublicKey:
    return service_signing_key(create=create).public_key()
