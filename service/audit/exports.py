"""The audit log's export formats, CSV and JSON, streamed row by row so that a large log is never
held in memory. Both carry each event's `prev_hash` and `hash` as stored; the JSON document also
carries what an auditor needs to re-verify it offline (service/audit/offline_verify.py)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from service.common.hashing import canonical_json

from .models import AuditEvent
from .selectors import ChainReport

CSV_COLUMNS = [
    "seq",
    "created_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "description",
    "data",
    "request_id",
    "prev_hash",
    "hash",
]
JSON_FORMAT = "forget-service/audit-export"
JSON_VERSION = 1
CHUNK = 2000
HOW_TO_VERIFY = (
    "Each event's hash is SHA-256 (hex) over the canonical JSON (keys sorted, separators ',' and ':', "
    "UTF-8, non-ASCII characters unescaped) of {seq, created_at, actor: [kind, id, label], action, "
    "target: [type, id], data, request_id, prev_hash}, each exactly as exported here. An event's prev_hash "
    "is the hash of the event before it (64 zeros for event 1): events with consecutive seq must link. "
    "Run service/audit/offline_verify.py on this file (standard-library Python only)."
)


def event_document(event: AuditEvent) -> dict[str, Any]:
    """One event as the API and the JSON export show it: everything that was hashed, as it was
    hashed (`created_at` is the exact string), plus the hash and the human description."""
    return {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor": {"kind": event.actor_kind, "id": event.actor_id, "label": event.actor_label},
        "action": event.action,
        "target": {"type": event.target_type, "id": event.target_id},
        "description": event.description,
        "data": event.data,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=CHUNK):
        yield writer.writerow(
            [
                event.seq,
                event.created_at.isoformat(),
                _cell(event.actor_kind),
                _cell(event.actor_id),
                _cell(event.actor_label),
                event.action,
                _cell(event.target_type),
                _cell(event.target_id),
                _cell(event.description),
                canonical_json(event.data),
                _cell(event.request_id),
                event.prev_hash,
                event.hash,
            ]
        )


def json_chunks(events: QuerySet[AuditEvent], *, export: AuditEvent, criteria: dict[str, Any], chain: ChainReport) -> Iterator[str]:
    """The JSON export document, piece by piece: the header (what was asked, when, by whom, the
    chain's status at that moment, the export's own audit event), then one event per line."""
    header = {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "exported_at": export.created_at.isoformat(),
        "exported_by": export.actor_label,
        "criteria": criteria,
        "chain_status": chain.as_dict(),
        "export_event": {
            "seq": export.seq,
            "hash": export.hash,
            "note": "The audit.exported event recording this export; the export holds the matching events before it.",
        },
        "count": export.data["rows"],
        "how_to_verify": HOW_TO_VERIFY,
    }
    opening = json.dumps(header, ensure_ascii=False, indent=1, default=str)
    yield opening[: opening.rindex("}")].rstrip() + ',\n "events": ['
    separator = "\n"
    for event in events.iterator(chunk_size=CHUNK):
        yield separator + json.dumps(event_document(event), ensure_ascii=False, separators=(",", ":"))
        separator = ",\n"
    yield "\n ]\n}\n"
