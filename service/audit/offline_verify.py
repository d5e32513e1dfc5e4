"""Re-verify a JSON export of the audit log offline, with nothing but Python's standard library.

    python offline_verify.py audit-log-....json        (this file copied anywhere; Python 3.8+)
    python manage.py audit_verify --export audit-log-....json     (inside the service)

Checks, for every exported event, that its SHA-256 hash matches its content, and for every two
events with consecutive sequence numbers that the later one links to the earlier one's hash. An
export of the whole log (no filters) must be a complete chain from event #1 to the event before
its own `audit.exported` event; a filtered export links wherever its events are consecutive.
Exit status 0 when everything verifies, 1 otherwise.

This proves that the file is internally consistent. That it is the service's log is proven by
comparing one hash with the live log: the last exported event's `hash`, or `export_event.hash`,
must be the hash of that event on /audit/ (or in a later export).

The hash of an event is SHA-256 over the canonical JSON (keys sorted, no whitespace, UTF-8, non-ASCII
characters as themselves) of:
    {"seq", "created_at", "actor": [kind, id, label], "action", "target": [type, id], "data",
     "request_id", "prev_hash"}
with each value exactly as exported (`created_at` is the exported string). Event #1 links to 64 zeros.
This module must not import Django or anything of the service: auditors run it on its own.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64


def event_hash(event: dict[str, Any]) -> str:
    """The hash an exported event must carry."""
    payload = {
        "seq": event["seq"],
        "created_at": event["created_at"],
        "actor": [event["actor"]["kind"], event["actor"]["id"], event["actor"]["label"]],
        "action": event["action"],
        "target": [event["target"]["type"], event["target"]["id"]],
        "data": event["data"],
        "request_id": event["request_id"],
        "prev_hash": event["prev_hash"],
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class ExportCheck:
    events: int = 0
    links: int = 0  # consecutive pairs whose link was checked
    gaps: int = 0  # places where the export skips events (a filtered export)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return f"export does NOT verify: {self.problems[0]}" + (f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else "")
        gaps = f"; {self.gaps} gap{'s' if self.gaps != 1 else ''} where the export skips events (filtered)" if self.gaps else ""
        return f"export verifies: {self.events} event hashes match their content, {self.links} links between consecutive events hold{gaps}"


def verify_export(document: dict[str, Any]) -> ExportCheck:
    check = ExportCheck()
    events = document.get("events")
    if not isinstance(events, list):
        check.problems.append("the document has no list of events")
        return check
    if "count" in document and document["count"] != len(events):
        check.problems.append(f"the document says {document['count']} events but holds {len(events)}")
    # An export of the whole log (no filter) must hold every event from #1 up to its own audit event.
    criteria = document.get("criteria")
    whole_log = isinstance(criteria, dict) and criteria.get("applied") == {}
    if whole_log and events and events[0].get("seq") != 1:
        check.problems.append(f"an export of the whole log must start at event #1, not #{events[0].get('seq')}")
    export_event = document.get("export_event")
    if whole_log and isinstance(export_event, dict) and events and events[-1].get("seq") != export_event.get("seq", 0) - 1:
        check.problems.append(f"an export of the whole log must end at event #{export_event.get('seq', 0) - 1}, before its own audit event")
    previous: dict[str, Any] | None = None
    for event in events:
        check.events += 1
        try:
            seq = event["seq"]
            if event_hash(event) != event["hash"]:
                check.problems.append(f"event #{seq}: its hash does not match its content")
            if seq == 1 and event["prev_hash"] != GENESIS_HASH:
                check.problems.append("event #1 does not start the chain (its prev_hash is not 64 zeros)")
            if previous is not None:
                if seq <= previous["seq"]:
                    check.problems.append(f"event #{seq} comes after #{previous['seq']}: events must be in chain order")
                elif seq == previous["seq"] + 1:
                    check.links += 1
                    if event["prev_hash"] != previous["hash"]:
                        check.problems.append(f"event #{seq} does not link to event #{previous['seq']}")
                elif whole_log:
                    check.problems.append(f"event #{previous['seq'] + 1} is missing from an export of the whole log")
                else:
                    check.gaps += 1
        except (KeyError, TypeError) as exc:
            check.problems.append(f"event {check.events} of the export is malformed ({exc!r})")
            continue
        previous = event
    return check


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} EXPORT.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        document = json.load(handle)
    check = verify_export(document)
    print(check.summary())
    for problem in check.problems[1:20]:
        print(f"  {problem}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
