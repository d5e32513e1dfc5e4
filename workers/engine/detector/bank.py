"""Many shared-mode detectors scored together: one encoder pass per prompt window for all requests,
and one entity lookup (names.py) for all their subjects.

The per-request arrays are stacked (padded to a common sample count) into one ScorerStack, so the
cost added per request is a slice of a few batched matmuls rather than an encoder pass. Requests
can be added and removed at run time: every change drops the stack, the next call rebuilds it once,
and calls in flight keep the immutable snapshot they started with.

With prefilter=True (the gateway's bank) there is no stack of every request: a FAISS range search
over the requests' stored windows (prefilter.py) finds, per call, the requests whose weight can be
non-zero, and only those are stacked and scored; the others have weight 0 and u = -inf ("below the
cosine floor, not scored"). The decisions are those of the exhaustive bank (tested); the scores u
of the ruled-out requests are not, so whatever reads u itself (the certificate's AUROC) uses the
exhaustive bank. The prefilter changes incrementally with add and remove. In this mode the
requests' negative centroids (needed only to score a candidate exactly, and most of a scorer's
memory) live in a temporary file (spill.py), read back for the candidates of each call.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from workers.engine.detector.config import DetectorConfig
from workers.engine.detector.detector import Detector, DetectorError, score_windows
from workers.engine.detector.encoder import Encoder
from workers.engine.detector.names import EntityBank, Evidence
from workers.engine.detector.prefilter import WindowPrefilter
from workers.engine.detector.scorer import ScorerStack, UnitScorer, segment_max
from workers.engine.detector.spill import SpillFile


@dataclass(frozen=True)
class BankScores:
    """Scores and gate weights of n prompts against the bank's requests, columns in unit_ids order."""

    unit_ids: tuple[str, ...]
    scores: np.ndarray  # [n_prompts, n_units] u(x), maximum over windows
    weights: np.ndarray  # [n_prompts, n_units] w(x): the larger of the embedding and the entity evidence
    entity: np.ndarray | None = None  # [n_prompts, n_units] 1 where the prompt identifies the unit's subject
    evidence: tuple[dict[str, Evidence], ...] = ()  # per prompt: unit id -> how it identifies the subject
    candidates: int | None = None  # prefilter: the requests scored exactly (None: all of them)


@dataclass(frozen=True)
class _Snapshot:
    unit_ids: tuple[str, ...]
    stack: ScorerStack | None
    entities: EntityBank | None = None  # columns: entity_ids
    entity_ids: tuple[str, ...] = ()
    column: dict[str, int] | None = None  # unit id -> its column in unit_ids (built once, not per call)
    units: tuple[UnitScorer, ...] = ()  # prefilter mode: the scorers in unit_ids order (no stack), negatives spilled
    spill_keys: tuple[int, ...] = ()  # prefilter mode: each scorer's negatives in the bank's SpillFile


class DetectorBank:
    """Shared-mode detectors of many requests over one frozen encoder. Thread-safe."""

    def __init__(self, encoder: Encoder, config: DetectorConfig | None = None, *, indexed: bool = True, prefilter: bool | WindowPrefilter = False):
        """`config` fixes the layers and windows every member must share (default: DetectorConfig()).
        indexed=False looks names up exhaustively (names.EntityBank): the reference for tests.
        prefilter=True scores per call only the requests the window prefilter keeps (see above); an
        empty WindowPrefilter instance sets its thresholds (tests and benchmarks)."""
        self.encoder = encoder
        self.indexed = indexed
        self.config = config or DetectorConfig()
        self.layers = encoder.resolve_layers(self.config.layers)
        if isinstance(prefilter, WindowPrefilter):
            if len(prefilter) or (prefilter.num_layers, prefilter.dim) != (len(self.layers), encoder.hidden_size):
                raise DetectorError("the bank's prefilter must be empty and index the bank's layers")
            self.prefilter: WindowPrefilter | None = prefilter
        else:
            self.prefilter = WindowPrefilter(len(self.layers), encoder.hidden_size) if prefilter else None
        self._detectors: dict[str, Detector] = {}  # prefilter mode: with their negatives spilled
        self._spill = SpillFile() if self.prefilter is not None else None
        self._spill_keys: dict[str, int] = {}  # unit id -> its negatives' key in self._spill
        self._next_key = 0
        self._snapshot: _Snapshot | None = _Snapshot((), None)
        self._lock = threading.Lock()

    def _check(self, detector: Detector) -> None:
        if detector.config.mode != "shared":
            raise DetectorError("only shared-mode detectors can join a bank (lora mode needs its own encoder pass)")
        if detector.encoder.fingerprint != self.encoder.fingerprint:
            raise DetectorError("detector was trained on another encoder than the bank's")
        if detector.layers != self.layers:
            raise DetectorError(f"detector scores layers {detector.layers}, the bank scores {self.layers}")
        if detector.config.window_rule != self.config.window_rule:
            raise DetectorError(f"detector windows {detector.config.window_rule} differ from the bank's")

    def add(self, unit_id: str, detector: Detector) -> None:
        """Add or replace a request's detector."""
        self.add_many({unit_id: detector})

    def add_many(self, detectors: dict[str, Detector]) -> None:
        for detector in detectors.values():
            self._check(detector)
        with self._lock:
            if self.prefilter is not None:
                self.prefilter.add_many({unit_id: detector.unit for unit_id, detector in detectors.items()})
                detectors = {unit_id: self._spilled(unit_id, detector) for unit_id, detector in detectors.items()}
            self._detectors.update(detectors)
            self._snapshot = None

    def _spilled(self, unit_id: str, detector: Detector) -> Detector:
        """The detector with its negatives written to the spill file (called holding the lock). The
        slim scorer keeps its name threshold: replace() would reset it for a scorer without
        negatives (UnitScorer.__post_init__), so the field is set on a copy instead."""
        key, self._next_key = self._next_key, self._next_key + 1
        self._spill.put(key, detector.unit.negatives)
        if unit_id in self._spill_keys:
            self._spill.drop(self._spill_keys[unit_id])
        self._spill_keys[unit_id] = key
        slim = copy.copy(detector.unit)
        layers, _, dim = detector.unit.negatives.shape
        object.__setattr__(slim, "negatives", detector.unit.negatives.new_zeros((layers, 0, dim)))
        return replace(detector, unit=slim)

    def remove(self, unit_id: str) -> None:
        """Remove a request's detector; unknown ids raise KeyError."""
        with self._lock:
            del self._detectors[unit_id]
            if self.prefilter is not None:
                self.prefilter.remove(unit_id)
                self._spill.drop(self._spill_keys.pop(unit_id))
            self._snapshot = None

    @property
    def spilled_bytes(self) -> int:
        """Bytes of negative centroids in the spill file (prefilter mode; 0 otherwise)."""
        return self._spill.file_bytes if self._spill is not None else 0

    @property
    def unit_ids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._detectors)

    def __len__(self) -> int:
        with self._lock:
            return len(self._detectors)

    @property
    def stack(self) -> ScorerStack | None:
        """The stacked scorers every prompt is scored with (built on first use); None in prefilter
        mode, where only candidates are stacked per call, and when the bank is empty."""
        return self._current().stack

    def _current(self) -> _Snapshot:
        with self._lock:
            if self._snapshot is None:
                units = tuple(detector.unit for detector in self._detectors.values())
                stack = ScorerStack(units) if units and self.prefilter is None else None
                matchers = {uid: d.entity for uid, d in self._detectors.items() if d.entity is not None}
                entities = EntityBank(matchers, indexed=self.indexed) if matchers else None
                ids = tuple(self._detectors)
                column = {uid: j for j, uid in enumerate(ids)}
                prefiltered = self.prefilter is not None
                keys = tuple(self._spill_keys[uid] for uid in ids) if prefiltered else ()
                self._snapshot = _Snapshot(ids, stack, entities, tuple(matchers), column, units if prefiltered else (), keys)
            return self._snapshot

    def score(self, prompts: Sequence[str]) -> BankScores:
        """u and w of every prompt against every request, with one encoder pass over the windows."""
        snapshot = self._current()
        if not snapshot.unit_ids:
            empty = np.zeros((len(prompts), 0), dtype=np.float32)
            return BankScores(unit_ids=(), scores=empty, weights=empty.copy())
        candidates = None
        if snapshot.stack is not None:
            u = score_windows(self.encoder, snapshot.stack, self.layers, self.config, prompts)
            weights, u = snapshot.stack.weights(u).cpu().numpy(), u.cpu().numpy()
        else:
            u, weights, candidates = self._prefiltered(snapshot, prompts)
        entity = np.zeros_like(weights)
        evidence: tuple[dict[str, Evidence], ...] = tuple({} for _ in prompts)
        if snapshot.entities is not None:
            evidence = tuple(snapshot.entities.evidence(list(prompts)))
            column = snapshot.column
            for row, found in enumerate(evidence):
                for uid in found:
                    entity[row, column[uid]] = 1.0
            weights = np.maximum(weights, entity)
        return BankScores(unit_ids=snapshot.unit_ids, scores=u, weights=weights, entity=entity, evidence=evidence, candidates=candidates)

    def _prefiltered(self, snapshot: _Snapshot, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """(u, w, candidates): the exact scorer on the requests the prefilter keeps, -inf and 0 elsewhere."""
        u = np.full((len(prompts), len(snapshot.unit_ids)), -np.inf, dtype=np.float32)
        weights = np.zeros_like(u)
        windows, owner = self.config.split_windows(prompts)
        features = self.encoder.layer_features(windows, self.layers, self.config.batch_size)
        # A request removed since the snapshot is no candidate (it is leaving); one added since is
        # not in the snapshot's columns (the next call scores it).
        columns, scorers = [], []
        for j in sorted(snapshot.column[uid] for uid in self.prefilter.candidates(features) if uid in snapshot.column):
            try:
                negatives = self._spill.get(snapshot.spill_keys[j], device=snapshot.units[j].svm_intercept.device)
            except KeyError:  # removed or replaced since the snapshot: leaving, not scored
                continue
            columns.append(j)
            scorers.append(replace(snapshot.units[j], negatives=negatives))
        if columns:
            stack = ScorerStack(scorers)
            scores = segment_max(stack.scores(features), owner, len(prompts))
            u[:, columns] = scores.cpu().numpy()
            weights[:, columns] = stack.weights(scores).cpu().numpy()
        return u, weights, len(columns)
