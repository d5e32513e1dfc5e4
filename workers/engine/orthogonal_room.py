"""The orthogonality budget: how much of each adapted layer's input space the active units use.

A unit's LoRA update B A acts only on the directions of its A rows (rank r per module). O3 keeps a
new unit out of the earlier units' directions (the penalty ||A_k A^T||^2, O3.md section 2), which
is possible only while the earlier units leave room: a module of input width d holds at most d / r
mutually orthogonal rank-r units (32 units at rank 8 in a 256-wide layer of the demo model). Past
that point the penalty cannot reach 0 whatever the training does, and the gateway's units start to
act on each other's inputs.

`measure(previous, adapter)` reports, per module, the input width, the directions the previous
units use (the numerical rank of their stacked A rows: float64 SVD, singular values above 1e-6 of
the largest) and what is left, and says whether a new unit of the adapter's rank fits. The policy
when it does not is `relax` (the only one built): the unit is trained with the penalty as always,
its recorded penalty says how far from orthogonal it is, and its certificate (which evaluates it
together with every live unit) decides whether it may go live. The alternatives (consolidating the
oldest units first, or training at a smaller rank in the room that is left) are recorded as
not built in docs/pipeline.md.

Pure functions of the adapters: the same units give the same report on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .training import AdapterWeights, stack_lora_A

RANK_TOLERANCE = 1e-6  # singular values below this share of the largest count as no direction
POLICY = "relax"


@dataclass(frozen=True)
class ModuleRoom:
    module: str
    width: int  # input width d_in of the module
    used: int  # directions the previous units' A rows span
    rank: int  # directions the new unit needs

    @property
    def free(self) -> int:
        return self.width - self.used

    @property
    def fits(self) -> bool:
        return self.free >= self.rank


@dataclass(frozen=True)
class Room:
    modules: tuple[ModuleRoom, ...]
    previous_units: int

    @property
    def fits(self) -> bool:
        return all(m.fits for m in self.modules)

    @property
    def tightest(self) -> ModuleRoom | None:
        """The module with the least room left for its width (ties: the first by name)."""
        return min(self.modules, key=lambda m: (m.free / m.width, m.module), default=None)

    @property
    def units_left(self) -> int:
        """How many more units of this rank fit orthogonally in every module after this one."""
        if not self.modules:
            return 0
        return max(0, min((m.free - m.rank) // m.rank for m in self.modules))

    def as_dict(self) -> dict[str, Any]:
        tight = self.tightest
        full = [m.module for m in self.modules if not m.fits]
        return {
            "fits": self.fits,
            "policy": "orthogonal" if self.fits else POLICY,
            "previous_units": self.previous_units,
            "rank": tight.rank if tight else 0,
            "modules": len(self.modules),
            "modules_without_room": len(full),
            "first_without_room": full[:3],
            "tightest": {"module": tight.module, "width": tight.width, "used": tight.used, "free": tight.free} if tight else None,
            "used_share": round(max((m.used / m.width for m in self.modules), default=0.0), 4),
            "units_left": self.units_left,
            # Per module input width: what the registry needs to tell the room left without torch.
            "widths": {m.module: m.width for m in self.modules},
        }


def used_directions(rows: torch.Tensor) -> int:
    """Numerical rank of stacked A rows [n, d] (float64 SVD, RANK_TOLERANCE of the largest value)."""
    if rows.numel() == 0:
        return 0
    values = torch.linalg.svdvals(rows.double())
    if float(values[0]) == 0.0:
        return 0
    return int((values > RANK_TOLERANCE * values[0]).sum())


def measure(previous: Sequence[AdapterWeights], adapter: AdapterWeights) -> Room:
    """The room the `previous` units leave, per module of `adapter`, for a unit of its rank."""
    stacked = stack_lora_A(previous)
    modules = []
    for name in sorted(adapter.modules):
        rank, width = adapter.modules[name].A.shape
        used = used_directions(stacked[name]) if name in stacked else 0
        modules.append(ModuleRoom(name, int(width), used, int(rank)))
    return Room(tuple(modules), len(previous))
