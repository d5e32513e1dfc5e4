"""The gate's candidate prefilter (issue 12): per prompt, the few units whose embedding weight can be
non-zero, found by a range search over every unit's stored windows (FAISS), so that the exact
scorer (scorer.py) runs on those units only, not on every loaded one.

Why it never changes a decision. A unit's embedding weight is 0 unless some layer's 1-NN cosine of
a prompt window to the unit's stored windows reaches the unit's cosine floor c0
(UnitScorer.cosine_floor, proved there). A unit is a candidate when the range search finds a
stored window w of it with w . q >= c0 - MARGIN for some window q of the prompt; every other unit
has weight 0 exhaustively too. The IVF index keeps the windows in float16 (half the memory of the
scorer's own float32 copy; the flat index keeps float32, whose range search FAISS runs several times
faster, and at that size the memory is small): rounding each component of a unit vector w to float16 moves w . q by at
most sum |q_i| |w_i| 2^-11 <= 2^-11 (Cauchy-Schwarz; subnormals add under 1e-6 in 384 dimensions),
so MARGIN = 1e-3 covers it and float32 accumulation with room to spare. Units without a floor
(cosine_floor() = -inf) are candidates for every prompt.

The index, per scored layer:
- below `ivf_min_windows` stored windows, a flat inner-product index: exact, linear in the windows;
- from there, an inverted-file index (IVF: spherical k-means lists, trained on the windows then
  loaded, again when they have grown `retrain_growth` times). Which lists a query searches is NOT
  FAISS's nprobe heuristic (nearest lists first, which can miss): it is an exact bound. A list with
  unit centroid mu whose members all lie within angle r of mu holds no window w with
  w . q > cos(max(0, angle(q, mu) - r)) (triangle inequality on the sphere), so a list is searched
  when that bound reaches the smallest floor among the units with a window in it, and only then.
  Removing a unit leaves its lists' radius and floor as they were: still valid bounds, only less
  tight, until the next training.

The prefilter changes with the bank: add() and remove() update the index incrementally (no rebuild
per activation). Thread-safe: one lock around updates and searches (FAISS indexes are not safe to
search while they change).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from workers.engine.detector.scorer import UnitScorer

MARGIN = 1e-3  # cosine: float16 storage moves a dot product by at most 2^-11 (see above)
IVF_MIN_WINDOWS = 40_000  # below this a flat scan is cheaper than the lists (about 2,200 demo units)
LIST_SIZE = 256  # stored windows per IVF list (nlist = windows / LIST_SIZE): smaller lists, tighter radii
RETRAIN_GROWTH = 4.0
WINDOW_SLOTS = 1 << 16  # label = unit slot * WINDOW_SLOTS + window: no label table to keep


@dataclass(frozen=True)
class PrefilterStats:
    """What the last search did: for the bench and the gate decision's timing."""

    candidates: int  # units returned (the always-candidates included)
    lists_searched: int  # IVF lists searched, over all queries and layers (0 for a flat index)
    lists: int  # IVF lists per layer (0: flat)
    windows: int  # stored windows per layer


class _LayerIndex:
    """One layer's windows in a flat or IVF FAISS index, with the IVF lists' exact bounds."""

    def __init__(self, dim: int):
        self.dim = dim
        self.index: faiss.Index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))  # float32: fastest exact range search
        self.centroids: np.ndarray | None = None  # [nlist, d] unit centroids of the IVF lists
        self.list_cos: np.ndarray | None = None  # [nlist] min over members of member . centroid (cos of the radius)
        self.list_floor: np.ndarray | None = None  # [nlist] the smallest floor of the units with a member in the list

    @property
    def is_ivf(self) -> bool:
        return self.centroids is not None

    def train(self, vectors: np.ndarray, seed: int) -> None:
        """Replace the index by IVF lists trained on `vectors` (empty afterwards: load with add)."""
        nlist = max(1, vectors.shape[0] // LIST_SIZE)
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False  # the windows themselves in float16: the bound above holds as stated
        index.cp.spherical = True
        index.cp.seed = seed
        index.cp.niter = 10
        index.cp.max_points_per_centroid = 64  # a sample trains the lists; every window is loaded after
        index.train(vectors)
        self.index, self.quantizer = index, quantizer
        self.centroids = quantizer.reconstruct_n(0, nlist)
        self.list_cos = np.full(nlist, np.inf, dtype=np.float64)
        self.list_floor = np.full(nlist, np.inf, dtype=np.float64)

    def add(self, vectors: np.ndarray, labels: np.ndarray, floors: np.ndarray) -> None:
        """Load vectors [n, d] under labels [n]; floors [n]: the cosine floor of each one's unit."""
        if self.is_ivf:
            # The list FAISS files each vector under is its nearest centroid (quantizer.assign, the
            # same call IndexIVF.add makes), so the bounds are kept for exactly those lists.
            lists = self.quantizer.assign(vectors, 1).ravel()
            cos = np.einsum("nd,nd->n", vectors.astype(np.float64), self.centroids[lists].astype(np.float64))
            np.minimum.at(self.list_cos, lists, cos)
            np.minimum.at(self.list_floor, lists, floors)
        self.index.add_with_ids(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        self.index.remove_ids(labels)

    def search(self, queries: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(lims, similarities, labels, lists searched) of every stored window with w . q > radius,
        as faiss range_search returns them, for queries [m, d]."""
        if not self.is_ivf:
            lims, sims, labels = self.index.range_search(queries, radius)
            return lims, sims, labels, 0
        cos_theta = np.clip(queries.astype(np.float64) @ self.centroids.T.astype(np.float64), -1.0, 1.0)  # [m, nlist]
        theta = np.arccos(cos_theta)
        radius_angle = np.arccos(np.clip(self.list_cos, -1.0, 1.0))  # an empty list has floor inf: never searched
        bound = np.cos(np.clip(theta - radius_angle[None, :], 0.0, None))
        searched = bound >= (self.list_floor[None, :] - MARGIN)
        counts = searched.sum(1)
        width = max(1, int(counts.max(initial=0)))
        assign = np.full((queries.shape[0], width), -1, dtype=np.int64)
        for row in range(queries.shape[0]):
            chosen = np.flatnonzero(searched[row])
            assign[row, : chosen.size] = chosen
        self.index.nprobe = width
        lims, sims, labels = self.index.range_search_preassigned(queries, radius, assign, np.zeros(assign.shape, dtype=np.float32))
        return lims, sims, labels, int(counts.sum())


class WindowPrefilter:
    """The units a prompt's windows can fire for, by the cosine floor, over a FAISS range search."""

    def __init__(self, layers: int, dim: int, *, ivf_min_windows: int = IVF_MIN_WINDOWS, retrain_growth: float = RETRAIN_GROWTH, seed: int = 0):
        self.num_layers, self.dim = layers, dim
        self.ivf_min_windows, self.retrain_growth, self.seed = ivf_min_windows, retrain_growth, seed
        self._layers = [_LayerIndex(dim) for _ in range(layers)]
        self._slot: dict[str, int] = {}  # unit id -> slot (label // WINDOW_SLOTS)
        self._ids: list[str | None] = []  # slot -> unit id (None: removed)
        self._floors: list[float] = []  # slot -> cosine floor
        self._cached: tuple[np.ndarray, float] | None = None  # (floors as an array, search radius); None after a change
        self._windows: dict[str, np.ndarray] = {}  # unit id -> [L, n, d] float32 (the scorer's own tensor when possible)
        self._always: set[str] = set()  # units without a floor: candidates for every prompt
        self._stored = 0  # windows per layer now
        self._trained_at = 0  # windows per layer when the IVF lists were last trained (0: flat)
        self._lock = threading.Lock()
        self.last = PrefilterStats(0, 0, 0, 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._slot) + len(self._always)

    def add(self, unit_id: str, unit: UnitScorer) -> None:
        """Add (or replace) a unit: its stored windows go into the index with its cosine floor."""
        self.add_many({unit_id: unit})

    def add_many(self, units: dict[str, UnitScorer]) -> None:
        """add() for many units, training the IVF lists at most once."""
        prepared = {unit_id: (self._windows_of(unit_id, unit), unit.cosine_floor()) for unit_id, unit in units.items()}
        with self._lock:
            new = []
            for unit_id, (windows, floor) in prepared.items():
                self._remove(unit_id)
                if not math.isfinite(floor):
                    self._always.add(unit_id)
                    continue
                slot = len(self._ids)
                self._slot[unit_id] = slot
                self._ids.append(unit_id)
                self._floors.append(floor)
                self._windows[unit_id] = windows
                self._stored += windows.shape[1]
                new.append((slot, windows, floor))
            self._cached = None
            if self._needs_training():
                self._train()
                return
            self._add_to_index(new)

    def _windows_of(self, unit_id: str, unit: UnitScorer) -> np.ndarray:
        features = unit.glocal.features  # [L, n, d]
        if features.shape[0] != self.num_layers or features.shape[2] != self.dim:
            raise ValueError(f"unit {unit_id} stores windows of shape {tuple(features.shape)}, the prefilter indexes {self.num_layers} x {self.dim}")
        if features.shape[1] >= WINDOW_SLOTS:
            raise ValueError(f"unit {unit_id} stores {features.shape[1]} windows, at most {WINDOW_SLOTS - 1} are indexed")
        # A CPU float32 tensor is shared, not copied: the prefilter adds no copy of its own here.
        return np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32)

    def remove(self, unit_id: str) -> None:
        with self._lock:
            if unit_id not in self._slot and unit_id not in self._always:
                raise KeyError(unit_id)
            self._remove(unit_id)

    def _remove(self, unit_id: str) -> None:
        self._always.discard(unit_id)
        slot = self._slot.pop(unit_id, None)
        if slot is None:
            return
        windows = self._windows.pop(unit_id)
        labels = slot * WINDOW_SLOTS + np.arange(windows.shape[1], dtype=np.int64)
        for layer in self._layers:
            layer.remove(labels)
        self._ids[slot] = None
        self._stored -= windows.shape[1]
        self._cached = None

    def _needs_training(self) -> bool:
        if self._stored < self.ivf_min_windows:
            return False
        return self._trained_at == 0 or self._stored >= self.retrain_growth * self._trained_at

    def _add_to_index(self, entries: list[tuple[int, np.ndarray, float]]) -> None:
        """Load (slot, windows [L, n, d], floor) entries, in one call per layer."""
        if not entries:
            return
        labels = np.concatenate([slot * WINDOW_SLOTS + np.arange(windows.shape[1], dtype=np.int64) for slot, windows, _ in entries])
        floors = np.concatenate([np.full(windows.shape[1], floor) for _, windows, floor in entries])
        for layer_index, layer in enumerate(self._layers):
            layer.add(np.ascontiguousarray(np.concatenate([windows[layer_index] for _, windows, _ in entries])), labels, floors)

    def _train(self) -> None:
        """(Re)build every layer's IVF lists on the windows stored now, then load them all."""
        live = [(self._slot[uid], self._windows[uid], self._floors[self._slot[uid]]) for uid in self._slot]
        for layer_index, layer in enumerate(self._layers):
            layer.train(np.concatenate([windows[layer_index] for _, windows, _ in live]), self.seed)
        self._add_to_index(live)
        self._trained_at = self._stored

    def candidates(self, features: torch.Tensor) -> set[str]:
        """The unit ids whose embedding weight can be non-zero for any of the windows `features`
        [m, L, d] (L2-normalised, as the encoder gives them), the always-candidates included."""
        queries = np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32)
        with self._lock:
            found = set(self._always)
            searched = 0
            if self._slot:
                floors, radius = self._floors_and_radius()
                for layer_index, layer in enumerate(self._layers):
                    _, sims, labels, lists = layer.search(np.ascontiguousarray(queries[:, layer_index]), radius)
                    searched += lists
                    slots = labels // WINDOW_SLOTS
                    hit = np.unique(slots[sims >= floors[slots] - MARGIN])
                    found.update(self._ids[int(slot)] for slot in hit)
            found.discard(None)
            first = self._layers[0]
            self.last = PrefilterStats(len(found), searched, first.centroids.shape[0] if first.is_ivf else 0, self._stored)
            return found

    def _floors_and_radius(self) -> tuple[np.ndarray, float]:
        """Per slot floors and the range-search radius (the lowest live floor), rebuilt once after a
        change rather than per call: O(units) per call would grow with the units."""
        if self._cached is None:
            floors = np.asarray(self._floors, dtype=np.float64)
            self._cached = (floors, float(floors[list(self._slot.values())].min()) - MARGIN)
        return self._cached

    @property
    def nbytes(self) -> int:
        """Bytes the FAISS indexes hold (their own copy of the windows, ids and the lists' centroids)."""
        with self._lock:
            total = 0
            for layer in self._layers:
                if layer.is_ivf:  # float16 vectors, int64 ids
                    total += self._stored * (self.dim * 2 + 8)
                    total += layer.centroids.nbytes + layer.list_cos.nbytes + layer.list_floor.nbytes
                else:  # float32 vectors, int64 ids
                    total += self._stored * (self.dim * 4 + 8)
            return total
