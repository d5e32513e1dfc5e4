"""The audit chain's hashing: what each event's hash covers, and the hash the first event links to.

Shared by the writer (services) and the verifier (selectors); offline_verify.py keeps its own copy
on purpose (it is copied out of the project and must run with nothing but Python).
"""

from __future__ import annotations

from typing import Any

from service.common.hashing import canonical_json

GENESIS_HASH = "0" * 64


def event_hash_payload(
    *,
    seq: int,
    created_at,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    data: Any,
    request_id: str,
    prev_hash: str,
) -> str:
    return canonical_json(
        {
            "seq": seq,
            "created_at": created_at.isoformat(),
            "actor": [actor_kind, actor_id, actor_label],
            "action": action,
            "target": [target_type, target_id],
            "data": data,
            "request_id": request_id,
            "prev_hash": prev_hash,
        }
    )
