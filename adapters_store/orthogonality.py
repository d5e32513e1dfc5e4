"""The orthogonality budget as the registry shows it: the room the live units leave per base model.

The engine measures the room a unit found when it trained (workers/engine/orthogonal_room.py: the
numerical rank of the earlier units' A rows, per layer) and the manifest records it with each
layer's input width. The registry page must tell the room left NOW, after activations and
deactivations, without loading any weights (web code never imports torch): per layer, the live
units use at most the sum of their ranks, capped at the layer's width. For trained adapters (A rows
in general position) that bound is the rank itself; it is never below it, so the room shown is
never more than there is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def orthogonality_record(extra: dict[str, Any]) -> dict[str, Any]:
    """What the registry keeps of a manifest's `extra`: the room found and the penalty recorded."""
    room = extra.get("orthogonality_room")
    if not isinstance(room, dict):
        return {}
    record = {**room, "penalty": extra.get("orthogonality_penalty"), "trained_against": list(extra.get("previous_units") or [])}
    if isinstance(extra.get("orthogonalised"), dict):
        record["orthogonalised"] = {k: v for k, v in extra["orthogonalised"].items() if k != "against"}
    return record


@dataclass(frozen=True)
class BaseModelRoom:
    base_fingerprint: str
    live_units: int
    measured_units: int  # live units whose manifest records the room (older units do not)
    relaxed_units: list[str]  # live units trained without orthogonal room (policy relax)
    rank: int  # the rank of the latest live unit: what a new unit needs per layer
    tightest_module: str
    tightest_width: int
    tightest_used: int  # at most: the sum of the live units' ranks, capped at the width

    @property
    def free(self) -> int:
        return self.tightest_width - self.tightest_used

    @property
    def units_left(self) -> int:
        """How many more units of `rank` fit orthogonally in the narrowest layer."""
        return self.free // self.rank if self.rank else 0

    @property
    def used_share(self) -> float:
        return self.tightest_used / self.tightest_width if self.tightest_width else 0.0


def base_model_rooms(versions: Iterable[Any]) -> list[BaseModelRoom]:
    """Per base model, the room its live `versions` (AdapterVersion rows, oldest first) leave."""
    by_base: dict[str, list[Any]] = {}
    for version in versions:
        by_base.setdefault(version.base_fingerprint, []).append(version)
    rooms = []
    for base, group in by_base.items():
        widths: dict[str, int] = {}
        used: dict[str, int] = {}
        rank = 0
        measured = [v for v in group if (v.orthogonality or {}).get("widths")]
        for version in measured:
            record = version.orthogonality
            rank = int(record.get("rank") or rank)
            for module, width in record["widths"].items():
                widths[module] = int(width)
                used[module] = used.get(module, 0) + int(record.get("rank") or 0)
        if not widths:
            continue
        module = min(widths, key=lambda name: ((widths[name] - min(used[name], widths[name])) / widths[name], name))
        rooms.append(
            BaseModelRoom(
                base_fingerprint=base,
                live_units=len(group),
                measured_units=len(measured),
                relaxed_units=[v.unit_id for v in measured if v.orthogonality.get("fits") is False],
                rank=rank,
                tightest_module=module,
                tightest_width=widths[module],
                tightest_used=min(used[module], widths[module]),
            )
        )
    return rooms


def untrained_against(version: Any, live: Iterable[Any]) -> list[str] | None:
    """The `live` units (same base model, other requests) that `version` was neither trained against
    nor projected out of: activating it puts it beside units its adapter and its certificate never
    saw. None when the version has no record (trained before it existed)."""
    record = version.orthogonality or {}
    if "trained_against" not in record:
        return None
    known = set(record["trained_against"])
    return [
        other.unit_id
        for other in live
        if other.pk != version.pk
        and other.base_fingerprint == version.base_fingerprint
        and (version.request_id is None or other.request_id != version.request_id)
        and other.unit_id not in known
    ]
