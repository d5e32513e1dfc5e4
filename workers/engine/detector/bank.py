"""Many shared-mode detectors scored together: one encoder pass per prompt window for all requests,
and one entity lookup (names.py) for all their subjects.

The per-request arrays are stacked (padded to a common sample count) into one ScorerStack, so the
cost added per request is a slice of a few batched matmuls rather than an encoder pass. Requests
can be added and removed at run time: every change drops the stack, the next call rebuilds it once,
and calls in flight keep the immutable snapshot they started with.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.engine.detector.config import DetectorConfig
from workers.engine.detector.detector import Detector, DetectorError, score_windows
from workers.engine.detector.encoder import Encoder
from workers.engine.detector.names import EntityBank, Evidence
from workers.engine.detector.scorer import ScorerStack


@dataclass(frozen=True)
class BankScores:
    """Scores and gate weights of n prompts against the bank's requests, columns in unit_ids order."""

    unit_ids: tuple[str, ...]
    scores: np.ndarray  # [n_prompts, n_units] u(x), maximum over windows
    weights: np.ndarray  # [n_prompts, n_units] w(x): the larger of the embedding and the entity evidence
    entity: np.ndarray | None = None  # [n_prompts, n_units] 1 where the prompt identifies the unit's subject
    evidence: tuple[dict[str, Evidence], ...] = ()  # per prompt: unit id -> how it identifies the subject


@dataclass(frozen=True)
class _Snapshot:
    unit_ids: tuple[str, ...]
    stack: ScorerStack | None
    entities: EntityBank | None = None  # columns: entity_ids
    entity_ids: tuple[str, ...] = ()
    column: dict[str, int] | None = None  # unit id -> its column in unit_ids (built once, not per call)


class DetectorBank:
    """Shared-mode detectors of many requests over one frozen encoder. Thread-safe."""

    def __init__(self, encoder: Encoder, config: DetectorConfig | None = None, *, indexed: bool = True):
        """`config` fixes the layers and windows every member must share (default: DetectorConfig()).
        indexed=False looks names up exhaustively (names.EntityBank): the reference for tests."""
        self.encoder = encoder
        self.indexed = indexed
        self.config = config or DetectorConfig()
        self.layers = encoder.resolve_layers(self.config.layers)
        self._detectors: dict[str, Detector] = {}
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
        self._check(detector)
        with self._lock:
            self._detectors[unit_id] = detector
            self._snapshot = None

    def add_many(self, detectors: dict[str, Detector]) -> None:
        for detector in detectors.values():
            self._check(detector)
        with self._lock:
            self._detectors.update(detectors)
            self._snapshot = None

    def remove(self, unit_id: str) -> None:
        """Remove a request's detector; unknown ids raise KeyError."""
        with self._lock:
            del self._detectors[unit_id]
            self._snapshot = None

    @property
    def unit_ids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._detectors)

    def __len__(self) -> int:
        with self._lock:
            return len(self._detectors)

    def _current(self) -> _Snapshot:
        with self._lock:
            if self._snapshot is None:
                units = [detector.unit for detector in self._detectors.values()]
                stack = ScorerStack(units) if units else None
                matchers = {uid: d.entity for uid, d in self._detectors.items() if d.entity is not None}
                entities = EntityBank(matchers, indexed=self.indexed) if matchers else None
                ids = tuple(self._detectors)
                self._snapshot = _Snapshot(ids, stack, entities, tuple(matchers), {uid: j for j, uid in enumerate(ids)})
            return self._snapshot

    def score(self, prompts: Sequence[str]) -> BankScores:
        """u and w of every prompt against every request, with one encoder pass over the windows."""
        snapshot = self._current()
        if snapshot.stack is None:
            empty = np.zeros((len(prompts), 0), dtype=np.float32)
            return BankScores(unit_ids=(), scores=empty, weights=empty.copy())
        u = score_windows(self.encoder, snapshot.stack, self.layers, self.config, prompts)
        weights = snapshot.stack.weights(u).cpu().numpy()
        entity = np.zeros_like(weights)
        evidence: tuple[dict[str, Evidence], ...] = tuple({} for _ in prompts)
        if snapshot.entities is not None:
            evidence = tuple(snapshot.entities.evidence(list(prompts)))
            column = snapshot.column
            for row, found in enumerate(evidence):
                for uid in found:
                    entity[row, column[uid]] = 1.0
            weights = np.maximum(weights, entity)
        return BankScores(unit_ids=snapshot.unit_ids, scores=u.cpu().numpy(), weights=weights, entity=entity, evidence=evidence)
