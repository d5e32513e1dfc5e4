"""Consolidation: several units' adapters become one adapter; each member keeps its own detector.

    write_group("units/group-1", ["units/req-41", "units/req-42"])                  # blocks (default)
    write_group("units/group-1", ["units/req-41", "units/req-42"], construction="sum")

Every adapted layer of a gated model adds, for each unit i whose detector fires, w_i s_i B_i A_i h
(gate.py). Two exact constructions of one adapter from the members', neither retrained nor reading
any forget set (so a purged forget set does not stop a group from being rebuilt without a member):

- blocks (the default): the members' factors side by side, A = [A_1; A_2; ...], B = [s_1 B_1, ...],
  with each member's rank rows recorded. The gate serves it member by member (GatedModel.add_unit
  with members): each member's rows apply with its own detector's weight, so the group answers
  exactly what its members answered apart (float32 rounding of s_i B_i aside). One adapter file, one
  digest, one registry entry and one load for the whole group; no smaller than its members.
- sum: the members' summed delta sum_i s_i B_i A_i, reduced by QR on both sides and the SVD of the
  small core to its numerical rank (singular values above `rtol` times the largest), at most
  min(sum of ranks, d_in, d_out): smaller than its members once their ranks add up past a layer's
  width, which is when orthogonal room has run out (orthogonal_room.py). Served with the largest
  of the members' weights (serving.UnitWeights.add_group): on a prompt about one member the others'
  deltas apply too. Measured (bench/consolidation.py): no leak and the certificate passes, but the
  summed push turns the clean refusal into a garbled one on most forget prompts (0 of 72 clean on
  the demo model, 4 members), hence not the default.

A group is certified like a unit (evaluate_units with the group directory last; its F probes are
all members' people). A group directory is a unit directory (artifacts.py) without a detector/
folder; its manifest's extra["group"] names the members by unit id and manifest digest, and
loading it verifies each member's directory (beside the group's, or through a resolver) against
that digest. A member that is itself a group is refused: consolidate the members instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig

from .artifacts import LoadedUnit, UnitIntegrityError, load_unit, write_unit
from .training import AdapterWeights, LoraModule

BLOCKS, SUM = "blocks", "sum"
CONSTRUCTIONS = (BLOCKS, SUM)
# Singular values below RTOL x the largest are float32 rounding of a delta of lower rank.
RTOL = 1e-6
GROUP_KEY = "group"


class ConsolidationError(ValueError):
    """Adapters that cannot be consolidated (none, another base model, mismatched shapes)."""


@dataclass(frozen=True)
class Consolidated:
    adapter: AdapterWeights
    record: dict[str, Any]  # construction, ranks before and after, the largest relative error


def consolidate_adapters(adapters: Sequence[AdapterWeights], *, construction: str = BLOCKS, rtol: float = RTOL) -> Consolidated:
    """One LoRA whose delta on every module is the sum of the members' deltas (see the module doc);
    with 'blocks', record["blocks"] gives each member's rank rows, in order."""
    if construction not in CONSTRUCTIONS:
        raise ConsolidationError(f"construction must be one of {', '.join(CONSTRUCTIONS)}, not {construction!r}")
    if not adapters:
        raise ConsolidationError("nothing to consolidate: no adapters given")
    fingerprints = {a.base_fingerprint for a in adapters if a.base_fingerprint}
    if len(fingerprints) > 1:
        raise ConsolidationError(f"the adapters were trained against {len(fingerprints)} different base models")
    names = sorted({name for a in adapters for name in a.modules})
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    errors, ranks_in = {}, {}
    member_ranks = [max(m.rank for m in a.modules.values()) if a.modules else 0 for a in adapters]
    for name in names:
        parts = [a.modules[name] for a in adapters if name in a.modules]
        shapes = {(m.A.shape[1], m.B.shape[0]) for m in parts}
        if len(shapes) > 1:
            raise ConsolidationError(f"module {name!r} has different shapes across the adapters: {sorted(shapes)}")
        ((d_in, d_out),) = shapes
        # A member without this module (or of a lower rank here) contributes zero rows: its block
        # keeps the same rank rows in every module, which is what serving member by member needs.
        blocks = [_padded(a.modules.get(name), rank, d_in, d_out) for a, rank in zip(adapters, member_ranks)]
        A = torch.cat([a for a, _ in blocks])  # [R, d_in]
        B = torch.cat([b for _, b in blocks], dim=1)  # [d_out, R]
        factors[name] = _low_rank(A, B, rtol) if construction == SUM else (A, B)
        ranks_in[name] = A.shape[0]
    # PEFT's adapter format has one rank for every module (rank_pattern is not supported by the
    # engine): modules of lower numerical rank are padded with zero rows, which add exactly 0.
    rank = max(1, max(A.shape[0] for A, _ in factors.values()))
    modules = {}
    for name, (A, B) in factors.items():
        pad = rank - A.shape[0]
        A = torch.cat([A, A.new_zeros(pad, A.shape[1])]) if pad else A
        B = torch.cat([B, B.new_zeros(B.shape[0], pad)], dim=1) if pad else B
        modules[name] = LoraModule(A.float().contiguous(), B.float().contiguous(), 1.0)
        # The error of what is stored (float32), against the members' summed delta in float64.
        exact = sum(_delta(a.modules[name]) for a in adapters if name in a.modules)
        errors[name] = float(torch.linalg.matrix_norm(_delta(modules[name]) - exact) / torch.linalg.matrix_norm(exact).clamp_min(1e-30))
    first = adapters[0].peft_config
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,  # scaling alpha / r = 1: the singular values are in A and B
        target_modules=names,
        lora_dropout=0.0,
        bias="none",
        use_rslora=False,
        fan_in_fan_out=first.fan_in_fan_out,
        task_type=first.task_type,
        base_model_name_or_path=first.base_model_name_or_path,
    )
    kept = {name: int(A.shape[0]) for name, (A, _) in factors.items()}
    record = {
        "construction": construction,
        "served": "member by member (each member's rank rows at its own weight)" if construction == BLOCKS else "at the largest of the members' weights",
        **({"rtol": rtol} if construction == SUM else {"block_ranks": member_ranks}),
        "member_count": len(adapters),
        "rank": rank,
        "ranks_summed": max(ranks_in.values()),
        "numerical_rank": {"min": min(kept.values()), "max": max(kept.values())},
        "parameters": {"members": sum(a.num_parameters for a in adapters), "group": sum(m.A.numel() + m.B.numel() for m in modules.values())},
        "max_relative_error": max(errors.values()),
    }
    return Consolidated(AdapterWeights(modules, config, next(iter(fingerprints), None)), record)


def _delta(module: LoraModule) -> torch.Tensor:
    return module.scaling * (module.B.double() @ module.A.double())


def _padded(module: LoraModule | None, rank: int, d_in: int, d_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, s B) in float64 with exactly `rank` rows (zeros where the member has fewer or none)."""
    A, B = torch.zeros(rank, d_in, dtype=torch.float64), torch.zeros(d_out, rank, dtype=torch.float64)
    if module is not None:
        A[: module.rank] = module.A.double()
        B[:, : module.rank] = module.B.double() * module.scaling
    return A, B


def _low_rank(A: torch.Tensor, B: torch.Tensor, rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A', B') with B' A' = B A and as few rows as its numerical rank allows (float64 in and out)."""
    Qa, Ra = torch.linalg.qr(A.T)  # A.T = Qa Ra: Qa [d_in, k], Ra [k, R]
    Qb, Rb = torch.linalg.qr(B)  # B = Qb Rb: Qb [d_out, k'], Rb [k', R]
    U, S, Vh = torch.linalg.svd(Rb @ Ra.T)  # B A = Qb (Rb Ra^T) Qa^T
    keep = int((S > rtol * S[0]).sum()) if S.numel() and S[0] > 0 else 0
    root = S[:keep].sqrt()
    return (root[:, None] * Vh[:keep]) @ Qa.T, (Qb @ U[:, :keep]) * root


# ---------------------------------------------------------------------------------------------
# Group directories


def group_record(manifest_extra: dict[str, Any]) -> dict[str, Any] | None:
    """A manifest's group record, or None for a plain unit."""
    record = manifest_extra.get(GROUP_KEY)
    return record if isinstance(record, dict) else None


def write_group(
    directory: str | Path,
    member_dirs: Sequence[str | Path],
    *,
    unit_id: str | None = None,
    construction: str = BLOCKS,
    rtol: float = RTOL,
    replaces: str | Path | None = None,
) -> LoadedUnit:
    """Verify the members, consolidate their adapters and write the group unit atomically.

    The members must exist (and stay: the group's detectors are theirs); a member that is itself a
    group is refused (consolidate its members instead). replaces: the group this one rebuilds (a
    member deactivated or rolled back, or one added); the new manifest records it, by digest, with
    the members removed and added, so the certificate says how the group changed.
    """
    if not member_dirs:
        raise ConsolidationError("a group needs at least one member")
    members = [load_unit(path) for path in member_dirs]
    ids = [m.manifest.unit_id for m in members]
    if len(set(ids)) != len(ids):
        raise ConsolidationError(f"a unit is given twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    nested = [m.manifest.unit_id for m in members if group_record(m.manifest.extra)]
    if nested:
        raise ConsolidationError(f"{nested[0]!r} is a group: consolidate its members instead")
    fingerprints = {m.manifest.base_fingerprint for m in members}
    if len(fingerprints) > 1:
        raise ConsolidationError("the members were trained against different base models")
    consolidated = consolidate_adapters([m.adapter for m in members], construction=construction, rtol=rtol)
    subjects = sorted({s for m in members for s in m.manifest.extra.get("subjects", [])})
    record = {k: v for k, v in consolidated.record.items() if k != "block_ranks"}
    if construction == BLOCKS:
        record["blocks"] = [{"unit_id": m.manifest.unit_id, "rank": r} for m, r in zip(members, consolidated.record["block_ranks"])]
    if replaces is not None:
        previous = load_unit(replaces)
        old = group_record(previous.manifest.extra)
        if old is None:
            raise ConsolidationError(f"{previous.manifest.unit_id!r} is not a group: nothing to replace")
        before = [entry["unit_id"] for entry in old["members"]]
        record["replaces"] = {
            "unit_id": previous.manifest.unit_id,
            "manifest_sha256": previous.manifest.digest,
            "removed": [uid for uid in before if uid not in ids],
            "added": [uid for uid in ids if uid not in before],
            "how": "rebuilt from the remaining members' adapters (exact; nothing retrained)",
        }
    extra = {
        GROUP_KEY: {
            **record,
            "members": [{"unit_id": m.manifest.unit_id, "manifest_sha256": m.manifest.digest} for m in members],
        },
        "subjects": subjects,
    }
    manifest = write_unit(directory, consolidated.adapter, unit_id=unit_id, base_fingerprint=next(iter(fingerprints)), manifest_extra=extra)
    return LoadedUnit(manifest, consolidated.adapter)


MemberResolver = Callable[[str], Path]


def load_members(group: LoadedUnit, group_dir: str | Path, detector_loader: Callable[[Path], Any], resolve: MemberResolver | None = None) -> list[LoadedUnit]:
    """The group's members, each verified against the manifest digest the group recorded, with
    their detectors (their adapters are loaded too, for the digest check, and not kept served)."""
    record = group_record(group.manifest.extra)
    if record is None:
        raise ConsolidationError(f"unit {group.manifest.unit_id!r} is not a group")
    resolve = resolve or (lambda unit_id: Path(group_dir).parent / unit_id)
    members = []
    for entry in record["members"]:
        path = resolve(entry["unit_id"])
        if not Path(path).is_dir():
            raise UnitIntegrityError(f"group {group.manifest.unit_id!r}: member {entry['unit_id']!r} not found at {path}")
        member = load_unit(path, group.manifest.base_fingerprint, entry["manifest_sha256"], detector_loader=detector_loader)
        if member.manifest.unit_id != entry["unit_id"]:
            raise UnitIntegrityError(f"group {group.manifest.unit_id!r}: {path} holds unit {member.manifest.unit_id!r}, not {entry['unit_id']!r}")
        members.append(member)
    return members
