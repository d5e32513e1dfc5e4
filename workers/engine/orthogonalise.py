"""Making a trained unit's adapter exactly orthogonal to units that went live while it trained.

Several GPU workers train at once. A unit trained against the live units L0 is pushed orthogonal to
theirs by the O3 penalty (a soft term, O3.md section 2), but knows nothing of a unit another worker
registered meanwhile. Training it again would cost a whole training run; instead its LoRA A
matrices are projected onto the orthogonal complement of the newcomers' A rows, per module:

    A' = A - (A Q) Q^T,  Q = an orthonormal basis of the rows of the newcomers' stacked A (float64 QR)

so that ||A_k A'^T||_F = 0 for every newcomer k (up to rounding), which no amount of penalised
training guarantees. When the newcomers leave a module less room than the unit's rank
(orthogonal_room.py), the projection would cut the adapter's rank: it is skipped, the manifest says
so (`orthogonalised.skipped`) and the unit goes on as relaxed, with its penalty recorded. The
update B A' changes only on the inputs' components inside the newcomers' rows: the unit is
certified again after the projection (workers/jobs.py) and is never registered on the strength
of the certificate of the unprojected adapter.

The projected unit is a new unit directory (units are immutable), with the same detector files and
a manifest that records the projection: `orthogonalised` (the newcomers' ids, and the penalty
against them before and after), `previous_units` (now also the newcomers) and
`orthogonality_penalty` (against every unit it was trained against or projected out of).
Deterministic: the same unit and newcomers give the same adapter bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from . import orthogonal_room
from .artifacts import DETECTOR_DIR, load_unit, write_unit
from .training import AdapterWeights, LoraModule, orthogonality_penalty, stack_lora_A


def project_out(adapter: AdapterWeights, others: Sequence[AdapterWeights]) -> AdapterWeights:
    """`adapter` with every module's A rows projected onto the orthogonal complement of the rows of
    the `others`' A matrices of the same module (modules the others do not touch stay as they are)."""
    stacked = stack_lora_A(others)
    modules = {}
    for name, module in adapter.modules.items():
        if name not in stacked:
            modules[name] = module
            continue
        rows = stacked[name].double()  # [sum r_k, d_in]
        q, r = torch.linalg.qr(rows.T)  # columns of q span the rows; drop directions of (numerically) zero rows
        keep = r.diagonal().abs() > 1e-10 * max(float(r.diagonal().abs().max()), 1.0)
        q = q[:, keep]
        a = module.A.double()
        projected = (a - (a @ q) @ q.T).to(module.A.dtype)
        modules[name] = LoraModule(A=projected.contiguous(), B=module.B, scaling=module.scaling)
    return replace(adapter, modules=modules)


def penalty(adapter: AdapterWeights, others: Sequence[AdapterWeights]) -> float:
    if not others:
        return 0.0
    return float(orthogonality_penalty({name: m.A for name, m in adapter.modules.items()}, stack_lora_A(others)))


def orthogonalise_unit(unit_dir: str | Path, newcomers: Sequence[str | Path], out_dir: str | Path, *, also_previous: Sequence[str | Path] = ()) -> Path:
    """Writes to `out_dir` the unit of `unit_dir` with its adapter projected out of the newcomers'
    (unit directories, each verified). `also_previous`: the units it was trained against, for the
    manifest's penalty against everything live. Returns `out_dir`."""
    unit = load_unit(unit_dir)
    base = unit.manifest.base_fingerprint
    loaded = [load_unit(path, expected_base_fingerprint=base) for path in newcomers]
    earlier = [load_unit(path, expected_base_fingerprint=base) for path in also_previous]
    others = [u.adapter for u in loaded]
    extra = dict(unit.manifest.extra)
    ids = [u.manifest.unit_id for u in loaded]
    before = penalty(unit.adapter, others)
    if orthogonal_room.measure(others, unit.adapter).fits:
        projected = project_out(unit.adapter, others)
        extra["orthogonalised"] = {"against": ids, "penalty_before": before, "penalty_after": penalty(projected, others)}
    else:  # the newcomers span so much of some layer that projecting would cut the adapter's rank
        projected = unit.adapter
        extra["orthogonalised"] = {"against": ids, "penalty_before": before, "penalty_after": before, "skipped": "no orthogonal room"}
    everything = others + [u.adapter for u in earlier]
    extra["orthogonality_penalty"] = penalty(projected, everything)
    extra["orthogonality_room"] = orthogonal_room.measure(everything, projected).as_dict()
    extra["previous_units"] = sorted({*extra.get("previous_units", []), *ids})

    def copy_detector(target: Path) -> None:
        shutil.copytree(Path(unit_dir) / DETECTOR_DIR, target, dirs_exist_ok=True)

    config = unit.manifest.config or {}
    write_unit(
        out_dir,
        projected,
        unit_id=unit.manifest.unit_id,
        config=config.get("unlearn"),
        detector_saver=copy_detector,
        detector_config=config.get("detector"),
        base_fingerprint=base,
        forget_set_hash=unit.manifest.forget_set_hash,
        manifest_extra=extra,
    )
    return Path(out_dir)
