"""The gated model: one base model, many per-request adapters, a weight per request per batch row.

Every adapted linear layer computes (O3.md section 3)

    y = W h + sum_i w_i(row) * scaling_i * B_i A_i h

`GatedModel` registers one forward hook on each targeted nn.Linear / GPT-2 Conv1D, once, when it is
built; the base weights and module tree are not touched, and `close()` removes the hooks.

Per-call state lives in a ContextVar, never on the model: a call resolves a [batch, n_units] weight
matrix against the snapshot of units that was current when it started, sets it in the ContextVar,
and runs the model. Each thread (and each asyncio task) sees only its own value, so concurrent
calls with different weights do not interfere. The hooks read the ContextVar; with nothing set the
model behaves exactly as the base model.

Only units with a non-zero weight in some row of the batch are computed: their A and B are
concatenated along the rank axis (once per call and module, reused at every decoding step), so one
call costs two small matmuls per layer whatever the number of loaded units, and none at all when
every weight is zero. Rows stay independent: a row with weight 0 adds an exact 0 to the base output.

Units are added and removed at run time by copy-on-write of an immutable tuple under a lock; a call
already running keeps the snapshot it started with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .base_model import BaseModel
from .generation import generate_answers
from .prompting import PromptSpec, as_spec, prompt_ids
from .training import AdapterWeights


class GateError(ValueError):
    """A unit or a weight specification does not fit the gated model."""


@runtime_checkable
class UnitDetector(Protocol):
    """Anything that scores prompts for one unit: w(x) in [0, 1] per prompt."""

    def weights(self, prompts: list[str]) -> np.ndarray: ...


# weight_fn(prompts, unit_ids): a detector bank scoring all units in one pass. It returns either a
# [len(prompts), len(unit_ids)] array in unit_ids order, or an object with `unit_ids` and `weights`
# (such as DetectorBank.score's result) whose columns the gate matches to its units by id.
WeightFn = Callable[[list[str], tuple[str, ...]], Any]
# Explicit weights: a [n, n_units] matrix in `unit_ids` order, {unit_id: weight or [n] weights}, or
# one {unit_id: weight} mapping per row. Units left out get 0.
WeightsLike = np.ndarray | torch.Tensor | Mapping[str, Any] | Sequence[Mapping[str, float]]


@dataclass(frozen=True)
class _UnitModule:
    A: torch.Tensor  # [r, d_in]
    Bt: torch.Tensor  # [r, d_out] (B transposed, so the second matmul needs no transpose)
    scaling: float


@dataclass(frozen=True)
class _Unit:
    unit_id: str
    modules: dict[str, _UnitModule]
    detector: UnitDetector | None
    # A consolidated group served member by member (add_unit members=): one weight column per member, and
    # the rank rows of every module that belong to each member. A plain unit: its own id, no blocks.
    columns: tuple[str, ...] = ()
    blocks: tuple[int, ...] | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return self.columns or (self.unit_id,)


@dataclass(frozen=True)
class GateWeights:
    """A weight matrix bound to the snapshot of units it was resolved against.

    One column per unit, or per member of a group served member by member; `first_columns` gives
    each unit's first column when some unit has several (None: unit i is column i)."""

    units: tuple[_Unit, ...]
    matrix: np.ndarray  # [n_rows, n_columns], float32 in [0, 1]
    first_columns: np.ndarray | None = None

    @property
    def unit_ids(self) -> tuple[str, ...]:
        """The column ids: unit ids, with a member-served group's members in its place."""
        if self.first_columns is None:
            return tuple(unit.unit_id for unit in self.units)
        return tuple(uid for unit in self.units for uid in unit.ids)

    def row(self, index: int) -> dict[str, float]:
        # tolist() converts the whole row at once (float(w) per numpy scalar cost ~0.5 ms at 1000 units)
        return dict(zip(self.unit_ids, np.asarray(self.matrix[index]).tolist()))

    def rows(self, start: int, stop: int) -> GateWeights:
        return GateWeights(self.units, self.matrix[start:stop], self.first_columns)

    def take(self, rows: Sequence[int]) -> GateWeights:
        """The weights of some rows, in the order given."""
        return GateWeights(self.units, self.matrix[list(rows)], self.first_columns)


@dataclass(frozen=True)
class GateAnswer:
    text: str
    weights: dict[str, float]  # unit id -> the weight its adapter got for this prompt

    @property
    def applied(self) -> tuple[str, ...]:
        """The units whose adapter changed this answer (non-zero weight)."""
        return tuple(unit_id for unit_id, w in self.weights.items() if w > 0)


class _Call:
    """One forward/generate call's gate state: which units are on, for which rows, how much."""

    def __init__(self, gate_weights: GateWeights, owner: object):
        self.owner = owner  # the GatedModel's token: another gate on the same model ignores this call
        self.weights = torch.from_numpy(np.ascontiguousarray(gate_weights.matrix, dtype=np.float32))
        # One vectorised test for all units (a Python loop over 1000 units cost ~1 ms per call).
        column_on = np.asarray(gate_weights.matrix).any(axis=0)
        first = gate_weights.first_columns
        if first is None:
            self.active = [(int(i), gate_weights.units[i]) for i in np.flatnonzero(column_on)]
        else:  # a unit is on when any of its columns is
            on = np.logical_or.reduceat(column_on, first) if len(first) else np.zeros(0, dtype=bool)
            self.active = [(int(first[i]), gate_weights.units[i]) for i in np.flatnonzero(on)]
        self._stacked: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = {}

    def delta(self, name: str, h: torch.Tensor) -> torch.Tensor | None:
        """sum over active units i of w_i(row) * scaling_i * B_i A_i h, for h [batch, ..., d_in]."""
        if name not in self._stacked:  # first use in this call; decoding steps reuse it
            self._stacked[name] = self._stack(name)
        stacked = self._stacked[name]
        if stacked is None:
            return None
        A, Bt, coef = stacked  # [R, d_in], [R, d_out], [rows, R] with R = sum of active ranks
        if h.shape[0] != coef.shape[0] and coef.shape[0] != 1:
            raise GateError(f"batch has {h.shape[0]} rows but gate weights were given for {coef.shape[0]}")
        low = h.to(A.dtype) @ A.T  # [batch, ..., R]
        coef = coef.view(coef.shape[0], *([1] * (low.dim() - 2)), coef.shape[1])
        return (low * coef) @ Bt

    def _stack(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Concatenate the active units' A, B and per-rank coefficients for one module."""
        parts = [(i, unit, unit.modules[name]) for i, unit in self.active if name in unit.modules]
        if not parts:
            return None
        A = torch.cat([m.A for _, _, m in parts])
        Bt = torch.cat([m.Bt for _, _, m in parts])
        coef = torch.cat([self._coef(i, unit, m) for i, unit, m in parts], dim=1)
        return A, Bt, coef.to(device=A.device, dtype=A.dtype)

    def _coef(self, column: int, unit: _Unit, module: _UnitModule) -> torch.Tensor:
        """[rows, r]: each rank row's weight (its member's, for a group served member by member)."""
        if unit.blocks is None:
            return self.weights[:, column : column + 1].expand(-1, module.A.shape[0]) * module.scaling
        sizes = torch.tensor(unit.blocks)
        return torch.repeat_interleave(self.weights[:, column : column + len(unit.blocks)], sizes, dim=1) * module.scaling


_CURRENT_CALL: ContextVar[_Call | None] = ContextVar("gate_call", default=None)


def linear_module_names(model: nn.Module) -> list[str]:
    """Every nn.Linear / Conv1D of the model except its output embedding (PEFT's 'all-linear')."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules() if isinstance(module, (nn.Linear, Conv1D)) and module is not head]


def _hook(name: str, owner: object):
    """The forward hook of one module: base output + the current call's weighted adapter deltas."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        call = _CURRENT_CALL.get()
        if call is None or call.owner is not owner or not call.active:
            return None
        delta = call.delta(name, args[0])
        return None if delta is None else output + delta.to(output.dtype)

    return hook


def in_out_features(module: nn.Module) -> tuple[int, int]:
    """(in, out) widths of a linear layer: nn.Linear, or a GPT-2 style Conv1D."""
    if isinstance(module, Conv1D):  # weight stored [d_in, d_out]
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


class GatedModel:
    """A base model whose linear layers add per-request LoRA deltas weighted per batch row."""

    def __init__(
        self,
        base: BaseModel,
        *,
        weight_fn: WeightFn | None = None,
        target_modules: Sequence[str] | None = None,
    ):
        """target_modules: module names to hook (default: all linear layers but the LM head).

        weight_fn: optional detector bank, called as weight_fn(prompts, unit_ids) whenever a call
        gives no explicit weights (see WeightFn); without it each unit's own detector is used.
        With a DetectorBank: GatedModel(base, weight_fn=lambda prompts, ids: bank.score(prompts)).
        """
        self.base = base
        self.weight_fn = weight_fn
        self._lock = threading.Lock()
        # (units, their weight columns, each unit's first column or None when unit i is column i),
        # replaced whole under the lock so that a reader sees one consistent set.
        self._snapshot: tuple[tuple[_Unit, ...], tuple[str, ...], np.ndarray | None] = ((), (), None)
        self._token = object()
        modules = dict(base.model.named_modules())
        names = list(target_modules) if target_modules is not None else linear_module_names(base.model)
        missing = [name for name in names if name not in modules]
        if missing:
            raise GateError(f"no such modules in the base model: {missing[:5]}")
        self._shapes = {name: in_out_features(modules[name]) for name in names}
        self._targets = {name: modules[name] for name in names}
        self._hooks = [modules[name].register_forward_hook(_hook(name, self._token)) for name in names]

    def close(self) -> None:
        """Remove the hooks: the base model is back to plain."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def __enter__(self) -> GatedModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- units --------------------------------------------------------------------------------

    @property
    def unit_ids(self) -> tuple[str, ...]:
        """The weight columns: the units' ids, with a member-served group's members in its place."""
        return self._snapshot[1]

    @property
    def _units(self) -> tuple[_Unit, ...]:
        return self._snapshot[0]

    def add_unit(
        self, unit_id: str, adapter: AdapterWeights, detector: UnitDetector | None = None, *, members: Sequence[tuple[str, int]] | None = None
    ) -> None:
        """Load one request's adapter (and its detector); visible to calls that start afterwards.

        members: a consolidated group served member by member (consolidation.py, construction
        'blocks'): (member id, rank rows) in the order of the adapter's rank rows. Each member gets
        its own weight column, and its rows of every module apply with its weight: the group
        serves exactly what its members served apart.
        """
        fingerprint = self.base.fingerprint
        if adapter.base_fingerprint and fingerprint and adapter.base_fingerprint != fingerprint:
            raise GateError(f"unit {unit_id!r} was trained against base model {adapter.base_fingerprint[:12]}, not this one ({fingerprint[:12]})")
        if detector is not None and not isinstance(detector, UnitDetector):
            raise GateError(f"detector of unit {unit_id!r} has no weights(prompts) method")
        modules = {}
        for name, lora in adapter.modules.items():
            if name not in self._targets:
                raise GateError(f"unit {unit_id!r} adapts {name!r}, which this gated model does not hook")
            d_in, d_out = self._shapes[name]
            if lora.A.shape[1] != d_in or lora.B.shape[0] != d_out:
                raise GateError(
                    f"unit {unit_id!r}: module {name!r} expects A [r, {d_in}] and B [{d_out}, r], got {tuple(lora.A.shape)} and {tuple(lora.B.shape)}"
                )
            weight = self._targets[name].weight
            A = lora.A.to(device=weight.device, dtype=weight.dtype).contiguous()
            Bt = lora.B.T.to(device=weight.device, dtype=weight.dtype).contiguous()
            modules[name] = _UnitModule(A, Bt, float(lora.scaling))
        columns, blocks = (), None
        if members is not None:
            columns, blocks = tuple(m for m, _ in members), tuple(int(r) for _, r in members)
            ranks = {m.A.shape[0] for m in modules.values()}
            if not columns or ranks != {sum(blocks)}:
                raise GateError(f"group {unit_id!r}: members' rank rows {blocks} do not add up to the adapter's rank {sorted(ranks)}")
        unit = _Unit(unit_id, modules, detector, columns, blocks)
        with self._lock:
            taken = set(self._snapshot[1]) | {u.unit_id for u in self._units}
            clash = [uid for uid in (unit_id, *columns) if uid in taken]
            if clash:
                raise GateError(f"unit {clash[0]!r} is already loaded")
            self._set_units((*self._units, unit))

    def remove_unit(self, unit_id: str) -> None:
        """Unload a unit or a group (by the group's id)."""
        with self._lock:
            if unit_id not in {u.unit_id for u in self._units}:
                raise KeyError(f"unit {unit_id!r} is not loaded")
            self._set_units(tuple(unit for unit in self._units if unit.unit_id != unit_id))

    def _set_units(self, units: tuple[_Unit, ...]) -> None:
        """Replace the snapshot (under the lock): units, their columns and, with a group served
        member by member, each unit's first column."""
        if any(unit.columns for unit in units):
            first = np.cumsum([0] + [len(unit.ids) for unit in units[:-1]]).astype(np.int64)
            self._snapshot = (units, tuple(uid for unit in units for uid in unit.ids), first)
        else:
            self._snapshot = (units, tuple(unit.unit_id for unit in units), None)

    # -- weights ------------------------------------------------------------------------------

    def resolve_weights(self, texts: Sequence[str], weights: WeightsLike | None = None, force: str | None = None) -> GateWeights:
        """The [len(texts), n_units] weights of one call, bound to the current unit snapshot.

        force='on' gives every unit weight 1, 'off' weight 0; otherwise explicit `weights` are
        used, or, when None, the detectors (weight_fn, else each unit's detector) score `texts`.
        """
        units, ids, first = self._snapshot  # one attribute read: a consistent snapshot without the lock
        n = len(texts)
        if force is not None:
            if weights is not None:
                raise GateError("give either weights or force, not both")
            if force not in ("on", "off"):
                raise GateError(f"force must be 'on', 'off' or None, got {force!r}")
            matrix = np.full((n, len(ids)), 1.0 if force == "on" else 0.0, dtype=np.float32)
        elif weights is None:
            matrix = self._detector_weights(list(texts), units, ids)
        else:
            matrix = _weights_matrix(weights, n, ids)
        matrix = np.asarray(matrix, dtype=np.float32).reshape(n, len(ids))
        if not np.isfinite(matrix).all() or (matrix < 0).any() or (matrix > 1).any():
            raise GateError("gate weights must be finite and in [0, 1]")
        return GateWeights(units, matrix, first)

    def _detector_weights(self, texts: list[str], units: tuple[_Unit, ...], ids: tuple[str, ...]) -> np.ndarray:
        if not units or not texts:
            return np.zeros((len(texts), len(ids)), dtype=np.float32)
        if self.weight_fn is not None:
            result = self.weight_fn(texts, ids)
            if hasattr(result, "unit_ids") and hasattr(result, "weights"):  # e.g. DetectorBank.score()
                column = {unit_id: i for i, unit_id in enumerate(result.unit_ids)}
                missing = [unit_id for unit_id in ids if unit_id not in column]
                if missing:
                    raise GateError(f"weight_fn gave no weights for units {missing}")
                result = np.asarray(result.weights)[:, [column[unit_id] for unit_id in ids]]
            matrix = np.asarray(result, dtype=np.float32)
            if matrix.shape != (len(texts), len(ids)):
                raise GateError(f"weight_fn returned shape {matrix.shape}, expected {(len(texts), len(ids))}")
            return matrix
        columns = []
        for unit in units:
            if unit.columns:
                raise GateError(f"group {unit.unit_id!r} is served by its members' detectors: give the gate a weight_fn")
            if unit.detector is None:
                raise GateError(f"unit {unit.unit_id!r} has no detector: pass weights= or force=")
            column = np.asarray(unit.detector.weights(texts), dtype=np.float32).reshape(-1)
            if column.shape != (len(texts),):
                raise GateError(f"detector of unit {unit.unit_id!r} returned {column.shape[0]} weights for {len(texts)} prompts")
            columns.append(column)
        return np.stack(columns, axis=1)

    @contextmanager
    def apply(self, weights: GateWeights) -> Iterator[GateWeights]:
        """Within the block, forward passes of base.model in this thread/task use `weights`.

        `weights` has one row per batch row (or a single row for the whole batch).
        """
        token = _CURRENT_CALL.set(_Call(weights, self._token))
        try:
            yield weights
        finally:
            _CURRENT_CALL.reset(token)

    # -- inference ----------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[PromptSpec | str],
        *,
        max_new_tokens: int = 24,
        weights: WeightsLike | None = None,
        force: str | None = None,
        batch_size: int = 64,
    ) -> list[GateAnswer]:
        """Greedy answers with each row's adapters weighted by its own gate weights.

        A prompt is a PromptSpec or a question string. The detectors score its gate text (every
        message of a chat); the model reads prompting.render(prompt) (its chat template, if any).
        """
        specs = [as_spec(p) for p in prompts]
        resolved = self.resolve_weights([spec.gate_text() for spec in specs], weights, force)
        answers: list[GateAnswer] = []
        for start in range(0, len(specs), batch_size):
            chunk = specs[start : start + batch_size]
            with self.apply(resolved.rows(start, start + len(chunk))):
                texts = generate_answers(self.base.model, self.base.tokenizer, chunk, max_new_tokens=max_new_tokens, batch_size=len(chunk))
            answers += [GateAnswer(text, resolved.row(start + i)) for i, text in enumerate(texts)]
        return answers

    @torch.no_grad()
    def logprobs(
        self,
        texts: Sequence[str],
        *,
        weights: WeightsLike | None = None,
        force: str | None = None,
        detector_texts: Sequence[str] | None = None,
        batch_size: int = 32,
    ) -> list[torch.Tensor]:
        """Per text, log p(token_t | tokens_<t) for t = 1..len-1 under the gated model (CPU, float32).

        Detectors score `detector_texts` if given (e.g. the question alone), else the texts.
        """
        texts = list(texts)
        resolved = self.resolve_weights(list(detector_texts) if detector_texts is not None else texts, weights, force)
        if resolved.matrix.shape[0] != len(texts):
            raise GateError("detector_texts must have one entry per text")
        tokenizer, device = self.base.tokenizer, self.base.device
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        results: list[torch.Tensor] = []
        for start in range(0, len(texts), batch_size):
            encoded = [prompt_ids(tokenizer, text) for text in texts[start : start + batch_size]]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(encoded), width), dtype=torch.long)
            for row, ids in enumerate(encoded):  # right padding: positions match an unpadded run
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            with self.apply(resolved.rows(start, start + len(encoded))):
                logits = self.base.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            picked = logprobs.gather(-1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
            results += [picked[row, : len(ids) - 1] for row, ids in enumerate(encoded)]
        return results

    def loss_per_token(self, texts: Sequence[str], **kwargs: Any) -> list[torch.Tensor]:
        """Per text, the next-token negative log-likelihoods (see logprobs for the arguments)."""
        return [-row for row in self.logprobs(texts, **kwargs)]


def _weights_matrix(weights: WeightsLike, n: int, ids: tuple[str, ...]) -> np.ndarray:
    """Explicit weights in any accepted form -> [n, len(ids)], columns in `ids` order."""
    column = {unit_id: i for i, unit_id in enumerate(ids)}
    if isinstance(weights, Mapping):  # {unit_id: weight or [n] weights}
        matrix = np.zeros((n, len(ids)), dtype=np.float32)
        for unit_id, value in weights.items():
            if unit_id not in column:
                raise GateError(f"weights name unit {unit_id!r}, which is not loaded")
            matrix[:, column[unit_id]] = np.broadcast_to(np.asarray(value, dtype=np.float32), (n,))
        return matrix
    if isinstance(weights, Sequence) and weights and isinstance(weights[0], Mapping):  # one mapping per row
        if len(weights) != n:
            raise GateError(f"{len(weights)} weight rows for {n} prompts")
        return np.stack([_weights_matrix(row, 1, ids)[0] for row in weights]) if n else np.zeros((0, len(ids)))
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    matrix = np.asarray(weights, dtype=np.float32)
    if matrix.shape != (n, len(ids)):
        raise GateError(f"weights have shape {matrix.shape}, expected {(n, len(ids))} (prompts x units {ids})")
    return matrix
