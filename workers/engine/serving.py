"""Serving units: verified units loaded onto a base model, their detectors wired in as the gate.

    gated = load_gated(base, ["units/req-41", "units/req-42"])   # verified, detectors wired in
    gated.generate(["Where does Ada Brightwell live?"])           # -> [GateAnswer(text, weights)]

Training a unit is pipeline.py; the inference gateway (service/inference/engine.py), the
certificate and the command line serve units through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import MANIFEST_NAME, LoadedUnit, Manifest, UnitIntegrityError, load_unit
from .base_model import BaseModel, load_base_model
from .consolidation import BLOCKS, MemberResolver, group_record, load_members
from .detector import Detector, DetectorBank, load_detector, load_encoder
from .detector.encoder import Encoder
from .gate import GatedModel


class UnitConflictError(ValueError):
    """Units that cannot be served together (same unit id twice)."""


@dataclass(frozen=True)
class GateScores:
    """The gate's view of some prompts, columns in `unit_ids` order."""

    unit_ids: tuple[str, ...]
    scores: np.ndarray  # [n, U] embedding-detector scores u
    weights: np.ndarray  # [n, U] the deployed weights (0 or 1)
    entity: np.ndarray  # [n, U] 1 where the prompt identifies the unit's subject
    evidence: tuple[dict[str, str], ...]  # per prompt: unit id -> the entity rule that fired


class UnitWeights:
    """The gate's weight_fn over loaded detectors: shared-mode ones scored together by a
    DetectorBank (one encoder pass), lora-mode ones each on its own encoder copy.

    add/remove change it in place (the bank keeps a snapshot per call, so a call in flight is not
    disturbed). prefilter=True gives the bank the window prefilter (detector/prefilter.py): per
    prompt only the units whose weight can be non-zero are scored exactly; the weights are those of
    the exhaustive bank, the scores u of ruled-out units are -inf. The gateway uses it; whatever
    reads u itself (the certificate's AUROC) keeps the default."""

    def __init__(self, encoder: Encoder, detectors: dict[str, Detector], *, prefilter: bool = False):
        self.encoder, self.prefilter = encoder, prefilter
        self.own: dict[str, Detector] = {}
        self.bank: DetectorBank | None = None
        self.groups: dict[str, tuple[str, ...]] = {}  # group id -> its members' detector ids (see add_group)
        self._cached_expansion: tuple | None = None  # see _expand
        self._cached_column: tuple | None = None  # see _column
        self._cached_columns: tuple | None = None  # see _columns
        self.add_many(detectors)

    def add_many(self, detectors: dict[str, Detector]) -> None:
        """Add or replace detectors (DetectorError if a shared one does not fit the bank's config)."""
        shared = {uid: d for uid, d in detectors.items() if d.config.mode == "shared"}
        if shared:
            if self.bank is None:
                self.bank = DetectorBank(self.encoder, next(iter(shared.values())).config, prefilter=self.prefilter)
            self.bank.add_many(shared)
        own = {uid: d for uid, d in detectors.items() if d.config.mode != "shared"}
        if own:
            self.own = {**self.own, **own}  # a new dict: a call iterating the old one is not disturbed

    def remove(self, unit_id: str) -> None:
        """Remove a unit's detector; unknown ids raise KeyError."""
        if unit_id in self.own:
            self.own = {uid: d for uid, d in self.own.items() if uid != unit_id}
        elif self.bank is not None:
            self.bank.remove(unit_id)
        else:
            raise KeyError(unit_id)

    def add_group(self, group_id: str, member_ids: Sequence[str]) -> None:
        """Serve a consolidated group (consolidation.py) under `group_id`: its column is the largest
        of its members' scores, weights and entity evidence. The members' detectors must be added
        (add_many); they can still be asked for by their own ids."""
        members = tuple(member_ids)
        if not members:
            raise ValueError(f"group {group_id!r} has no members")
        if group_id in self.own or (self.bank is not None and group_id in self.bank.unit_ids):
            raise ValueError(f"{group_id!r} is already a unit's id")
        self.groups = {**self.groups, group_id: members}  # a new dict, as for self.own

    def gate(self, prompts: list[str], unit_ids: Sequence[str]) -> GateScores:
        """Scores, weights and entity evidence of `prompts` for `unit_ids` (units or groups)."""
        unit_ids = tuple(unit_ids)
        groups = self.groups
        if not groups or not any(uid in groups for uid in unit_ids):
            return self._gate(prompts, unit_ids)
        members, starts = self._expand(unit_ids, groups)
        return _reduce_columns(self._gate(prompts, members), unit_ids, np.arange(len(members)), starts)

    def regroup(self, result: GateScores, unit_ids: Sequence[str]) -> GateScores:
        """`result` (columns of units and group members) with `unit_ids`' columns: a group's is
        the largest of its members' (as gate() gives it)."""
        unit_ids = tuple(unit_ids)
        column = {uid: i for i, uid in enumerate(result.unit_ids)}
        members = [(uid,) if uid in column else self.groups.get(uid, (uid,)) for uid in unit_ids]
        missing = [m for group in members for m in group if m not in column]
        if missing:
            raise KeyError(f"no gate column for {missing[0]!r}")
        index = np.array([column[m] for group in members for m in group], dtype=np.int64)
        starts = np.cumsum([0] + [len(m) for m in members[:-1]]).astype(np.int64) if members else np.zeros(0, np.int64)
        return _reduce_columns(result, unit_ids, index, starts)

    def _expand(self, unit_ids: tuple[str, ...], groups: dict[str, tuple[str, ...]]) -> tuple[tuple[str, ...], np.ndarray]:
        """(the detector ids to score, each gate column's first index among them), kept while the
        gate asks for the same columns of the same groups."""
        cached = self._cached_expansion
        if cached is None or cached[0] != unit_ids or cached[1] is not groups:
            members = [groups.get(uid, (uid,)) for uid in unit_ids]
            starts = np.cumsum([0] + [len(m) for m in members[:-1]]).astype(np.int64) if members else np.zeros(0, np.int64)
            cached = self._cached_expansion = (unit_ids, groups, tuple(m for group in members for m in group), starts)
        return cached[2], cached[3]

    def _gate(self, prompts: list[str], unit_ids: tuple[str, ...]) -> GateScores:
        """gate() over detectors only (no group columns)."""
        scores = np.zeros((len(prompts), len(unit_ids)), dtype=np.float32)
        weights, entity = np.zeros_like(scores), np.zeros_like(scores)
        evidence: list[dict[str, str]] = [{} for _ in prompts]
        column = self._column(unit_ids)
        if self.bank is not None and prompts:
            result = self.bank.score(prompts)
            source, target = self._columns(result.unit_ids, unit_ids)
            scores[:, target] = result.scores[:, source]
            weights[:, target] = result.weights[:, source]
            entity[:, target] = result.entity[:, source]
            for row, found in enumerate(result.evidence):
                evidence[row].update({uid: e.kind for uid, e in found.items() if uid in column})
        for uid, detector in self.own.items():  # self.own is replaced, never changed in place
            if uid in column and prompts:
                u = detector.scores(prompts)
                scores[:, column[uid]] = u
                entity[:, column[uid]] = detector.entity_weights(prompts)
                weights[:, column[uid]] = np.maximum(detector.weights_from_scores(u), entity[:, column[uid]])
        return GateScores(unit_ids, scores, weights, entity, tuple(evidence))

    def _column(self, unit_ids: tuple[str, ...]) -> dict[str, int]:
        """unit id -> its gate column, kept while the gate asks for the same units."""
        if self._cached_column is None or self._cached_column[0] != unit_ids:
            self._cached_column = (unit_ids, {uid: i for i, uid in enumerate(unit_ids)})
        return self._cached_column[1]

    def _columns(self, bank_ids: tuple[str, ...], unit_ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays (bank column, gate column) of the units in both, kept until either list
        changes. Per call, these Python loops would be the gate's cost at 100,000 units."""
        cached = self._cached_columns
        if cached is None or cached[0] != bank_ids or cached[1] != unit_ids:
            column = self._column(unit_ids)
            pairs = [(j, column[uid]) for j, uid in enumerate(bank_ids) if uid in column]
            source, target = (np.array(side, dtype=np.int64) for side in zip(*pairs)) if pairs else (np.zeros(0, np.int64), np.zeros(0, np.int64))
            cached = self._cached_columns = (bank_ids, unit_ids, source, target)
        return cached[2], cached[3]

    def score(self, prompts: list[str], unit_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(scores u, weights w), each [len(prompts), len(unit_ids)] in unit_ids order."""
        result = self.gate(prompts, unit_ids)
        return result.scores, result.weights

    def __call__(self, prompts: list[str], unit_ids: tuple[str, ...]) -> np.ndarray:
        return self.gate(prompts, unit_ids).weights


def _reduce_columns(result: GateScores, unit_ids: tuple[str, ...], index: np.ndarray, starts: np.ndarray) -> GateScores:
    """Columns `index` of `result`, reduced by largest over each run that starts at `starts`: one
    column per unit id. A group's evidence is its first member's that fired."""
    picked = [result.unit_ids[i] for i in index.tolist()]

    def reduce(a: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(a[:, index], starts, axis=1) if len(index) else a[:, :0]

    stops = (*starts[1:].tolist(), len(index))
    evidence = []
    for found in result.evidence:
        row = {}
        for uid, start, stop in zip(unit_ids, starts.tolist(), stops):
            kind = next((found[m] for m in picked[start:stop] if m in found), None)
            if kind is not None:
                row[uid] = kind
        evidence.append(row)
    return GateScores(unit_ids, reduce(result.scores), reduce(result.weights), reduce(result.entity), tuple(evidence))


def load_units(
    base: BaseModel,
    unit_dirs: Sequence[str | Path],
    encoder: Encoder | None = None,
    expected_manifest_digests: Sequence[str | None] | None = None,
    resolve_member: MemberResolver | None = None,
) -> list[LoadedUnit]:
    """Verify and load units (adapter and detector) for `base`, in order.

    Each unit's files are checked against its manifest and its base fingerprint against `base`
    before anything is deserialised; UnitIntegrityError names the offending file. A group's
    members are found by resolve_member(unit_id) (default: beside the group's directory) and
    checked against the digests the group recorded; a unit id may be loaded once, as a unit or
    as a member.
    """
    encoder = encoder if encoder is not None else load_encoder(device=str(base.device))
    digests = list(expected_manifest_digests) if expected_manifest_digests is not None else [None] * len(unit_dirs)
    if len(digests) != len(unit_dirs):
        raise ValueError("expected_manifest_digests needs one entry per unit directory")
    loaded, seen = [], set()
    detector_loader = lambda path: load_detector(path, encoder)  # noqa: E731
    for directory, digest in zip(unit_dirs, digests):
        if not Path(directory).is_dir():
            raise UnitIntegrityError(f"unit directory not found: {directory}")
        if _is_group(directory):  # a group: its detectors are its members'
            unit = load_unit(directory, base.fingerprint, digest)
            unit.members = load_members(unit, directory, detector_loader, resolve_member)
        else:
            unit = load_unit(directory, base.fingerprint, digest, detector_loader=detector_loader)
        for uid in [unit.manifest.unit_id, *(m.manifest.unit_id for m in unit.members)]:
            if uid in seen:
                raise UnitConflictError(f"unit id {uid!r} is given twice ({directory})")
            seen.add(uid)
        loaded.append(unit)
    return loaded


def _is_group(directory: str | Path) -> bool:
    """Whether the manifest says group (unverified: load_unit verifies whichever way it goes)."""
    try:
        return group_record(Manifest.from_json((Path(directory) / MANIFEST_NAME).read_bytes()).extra) is not None
    except (OSError, ValueError, TypeError):
        return False  # load_unit reports what is wrong with it


def gated_model(base: BaseModel, units: Sequence[LoadedUnit], encoder: Encoder) -> GatedModel:
    """A GatedModel serving loaded units, their detectors wired in as the weight_fn."""
    detectors = {}
    for unit in units:
        detectors.update({m.manifest.unit_id: m.detector for m in unit.members} if unit.members else {unit.manifest.unit_id: unit.detector})
    weight_fn = UnitWeights(encoder, detectors)
    for unit in units:
        if unit.members:  # both constructions: the group's own column is its members' largest (reports)
            weight_fn.add_group(unit.manifest.unit_id, [m.manifest.unit_id for m in unit.members])
    gated = GatedModel(base, weight_fn=weight_fn)
    for unit in units:
        record = group_record(unit.manifest.extra)
        if record is not None and record["construction"] == BLOCKS:  # served member by member
            gated.add_unit(unit.manifest.unit_id, unit.adapter, members=[(b["unit_id"], b["rank"]) for b in record["blocks"]])
        else:  # a unit, or a summed group at its members' largest weight
            gated.add_unit(unit.manifest.unit_id, unit.adapter)
    return gated


def load_gated(
    base_dir: str | Path | BaseModel,
    unit_dirs: Sequence[str | Path],
    encoder: Encoder | None = None,
    *,
    device: str | None = None,
    expected_manifest_digests: Sequence[str | None] | None = None,
) -> GatedModel:
    """The base model (a directory, or an already loaded BaseModel) serving verified units.

    The gate weights come from the units' detectors: shared-mode detectors in one DetectorBank
    (one encoder pass for all units), lora-mode ones each on its own encoder copy.
    """
    base = base_dir if isinstance(base_dir, BaseModel) else load_base_model(base_dir, device=device)
    encoder = encoder if encoder is not None else load_encoder(device=str(base.device))
    return gated_model(base, load_units(base, unit_dirs, encoder, expected_manifest_digests), encoder)
