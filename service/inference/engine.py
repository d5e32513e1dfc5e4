"""The gated model inside the gateway process: one base model, units added and removed while it serves.

Gateway-only: this module imports the O3 engine (torch). The web app never imports it; the
gateway's HTTP views reach it through service.inference.gateway, which is torch-free.

    engine = GatewayEngine.from_runtime()            # base model + detector encoder, loaded once
    engine.load_unit(path, expected_manifest_digest=...)   # verified again, then live for new calls
    engine.complete([Prompt("question", "Where does Ada live?")], max_tokens=32)
    engine.unload_unit("rtbf-7k3m9q-v1")

Adapters on demand (`adapter_budget` > 0, `run_gateway --adapter-budget N`): every unit's detector
stays resident, since the gate scores every prompt against all of them, but at most N adapters
do; a fired unit whose adapter is not resident is loaded from the gateway's verified local copy
(every digest checked again) before the batch runs, the least recently fired ones are dropped,
and the load time goes into the gate decision. Decisions are the same as with every adapter
resident: the gate is computed over all detectors first. A fired adapter that cannot be loaded
fails its rows with a 503, never answers them without it.

Units change by copy-on-write (GatedModel.add_unit/remove_unit; the UnitWeights' detector bank
keeps a snapshot per call and its prefilter index changes incrementally, never rebuilt per unit):
a batch already running keeps the unit snapshot it started with, the next batch sees the change,
and the base model is never reloaded. A unit's detector goes in before its adapter and comes out
after it, so a call never applies an adapter it cannot gate.

The gate scores through the window prefilter (prefilter=True, the default; workers.engine.detector
.prefilter): per prompt only the units whose weight can be non-zero are scored exactly, so the gate
cost barely grows with the number of live units; the decisions are the exhaustive gate's (tested). Every model call (detectors, generation,
tokenizer counts) runs on the batcher's one thread (see batcher.py for why).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path

from service.common.errors import ApplicationError

from .batcher import Batcher
from .protocol import Completion, Prompt
from .streaming import AnswerText, StreamCancelled, StreamChannel

logger = logging.getLogger(__name__)


class ContextLengthExceeded(ValueError):
    """A prompt plus the tokens asked for do not fit in the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, limit: int):
        super().__init__(f"The prompt has {prompt_tokens} tokens; with max_tokens={max_tokens} that is more than the model's context of {limit} tokens.")
        self.prompt_tokens, self.max_tokens, self.limit = prompt_tokens, max_tokens, limit


STREAM = "stream"  # the batch key of streamed rows: (STREAM, max_tokens)


class AdapterUnavailable(ApplicationError):
    """A unit fired for the prompt but its adapter could not be loaded: the prompt is not answered."""

    def __init__(self, unit_id: str, problem: str):
        super().__init__(
            f"Unit {unit_id} applies to this prompt, but its adapter could not be loaded here ({problem}); retry in a moment.",
            code="adapter_unavailable",
            status=503,
        )


class StreamRow:
    """A prompt of a streamed call: its answer's events go to `channel` under its `row` index."""

    __slots__ = ("prompt", "channel", "row", "stop")

    def __init__(self, prompt: Prompt, channel: StreamChannel, row: int, stop: Sequence[str] = ()):
        self.prompt, self.channel, self.row, self.stop = prompt, channel, row, tuple(stop)


class GatewayEngine:
    """A GatedModel whose units change at run time, behind a micro-batcher."""

    def __init__(
        self, base, encoder, *, max_batch: int = 16, max_queue: int = 256, model_name: str | None = None, adapter_budget: int = 0, prefilter: bool = True
    ):
        from workers.engine.gate import GatedModel
        from workers.engine.generation import context_length
        from workers.engine.serving import UnitWeights

        self.base, self.encoder = base, encoder
        self.model_name = model_name or base.path.name
        self._detectors: dict[str, None] = {}  # the live unit ids, in load order (the detectors live in self.weights)
        # Adapters on demand: 0 keeps every adapter resident; N > 0 at most N (least recently fired out).
        if adapter_budget < 0:
            raise ValueError("adapter_budget must be 0 (every adapter resident) or positive")
        self.adapter_budget = adapter_budget
        self._sources: dict[str, tuple[Path, str | None]] = {}  # unit id -> its verified local copy and manifest digest
        self._resident: OrderedDict[str, None] = OrderedDict()  # unit ids whose adapter is in self.gated, least recently fired first
        self.adapter_loads = 0  # cold loads since start
        self.adapter_hits = 0  # fired units whose adapter was resident
        self._changes = threading.Lock()  # one unit change at a time (the watcher's thread)
        self.weights = UnitWeights(encoder, {}, prefilter=prefilter)  # changed in place as units come and go
        self.gated = GatedModel(base, weight_fn=self.weights)
        self.context_length: int | None = context_length(base.model)
        self.has_chat_template = bool(getattr(base.tokenizer, "chat_template", None))
        self.batcher = Batcher(self._run_group, max_batch=max_batch, max_queue=max_queue)
        self._count_lock = threading.Lock()
        self._count_tokenizer = None  # a copy for token counts outside the batch thread (count_completion_tokens)

    @classmethod
    def from_runtime(cls, *, device: str | None = None, **kwargs) -> GatewayEngine:
        """The deployment's base model and detector encoder (workers.runtime: BASE_MODEL_DIR, ...)."""
        from workers import runtime

        return cls(runtime.get_base(device), runtime.get_encoder(device), **kwargs)

    @property
    def fingerprint(self) -> str:
        return self.base.fingerprint

    @property
    def unit_ids(self) -> tuple[str, ...]:
        """Every live unit (its detector is resident; its adapter may not be, with a budget)."""
        return tuple(self._detectors)

    @property
    def resident_adapters(self) -> tuple[str, ...]:
        return self.gated.unit_ids

    def close(self) -> None:
        self.batcher.close()
        self.gated.close()

    # -- units -----------------------------------------------------------------------------------

    def load_unit(self, unit_dir: str | Path, *, expected_manifest_digest: str | None = None) -> str:
        """Verifies the unit directory again (every digest, the base fingerprint), loads its adapter
        and detector and makes it live for the calls that start afterwards. Returns its unit id.

        Raises UnitIntegrityError, UnitCompatibilityError, DetectorError or GateError; then nothing
        changed.
        """
        from workers.engine.serving import load_units

        [unit] = load_units(self.base, [unit_dir], self.encoder, [expected_manifest_digest])
        unit_id = unit.manifest.unit_id
        with self._changes:
            if unit_id in self._detectors:
                from workers.engine.gate import GateError

                raise GateError(f"unit {unit_id!r} is already loaded")
            detectors = {**self._detectors, unit_id: None}
            # The detector first: a call that sees the new unit must be able to score it.
            self.weights.add_many({unit_id: unit.detector})
            resident = not self.adapter_budget or len(self._resident) < self.adapter_budget
            try:
                if resident:
                    self.gated.add_unit(unit_id, unit.adapter)
            except BaseException:
                self.weights.remove(unit_id)
                raise
            if resident:
                self._resident[unit_id] = None
            self._detectors = detectors
            self._sources[unit_id] = (Path(unit_dir), expected_manifest_digest)
        return unit_id

    def unload_unit(self, unit_id: str) -> None:
        """Takes a unit off: calls that start afterwards no longer see it. Unknown ids: KeyError."""
        with self._changes:
            if unit_id not in self._detectors:
                raise KeyError(f"unit {unit_id!r} is not loaded")
            if unit_id in self._resident:
                self.gated.remove_unit(unit_id)  # the adapter first: no call applies it from now on
                del self._resident[unit_id]
            self._detectors = {uid: None for uid in self._detectors if uid != unit_id}
            self._sources.pop(unit_id, None)
            self.weights.remove(unit_id)

    def _gate(self, texts: list[str]):
        """The gate's weights for one batch, the rows that cannot run (a fired adapter that could
        not be loaded: row -> AdapterUnavailable), and the seconds spent loading adapters."""
        if not self.adapter_budget:
            return self.gated.resolve_weights(texts), {}, 0.0
        import numpy as np

        with self._changes:  # no unit comes or goes between the decision and the adapters it needs
            ids = tuple(self._detectors)
            matrix = np.asarray(self.gated.weight_fn(texts, ids), dtype=np.float32) if ids and texts else np.zeros((len(texts), 0), dtype=np.float32)
            fired = [ids[j] for j in np.flatnonzero(matrix.any(axis=0))] if ids else []
            started, loads = time.perf_counter(), self.adapter_loads
            failed = self._make_resident(fired)
            seconds = time.perf_counter() - started if self.adapter_loads > loads or failed else 0.0  # 0: every fired adapter was resident
            column = {uid: j for j, uid in enumerate(ids)}
            weights = self.gated.resolve_weights(texts, weights={uid: matrix[:, column[uid]] for uid in fired if uid not in failed})
        errors = {}
        for uid, problem in failed.items():
            for row in np.flatnonzero(matrix[:, column[uid]] > 0):
                errors.setdefault(int(row), AdapterUnavailable(uid, problem))
        return weights, errors, seconds

    def _make_resident(self, fired: list[str]) -> dict[str, str]:
        """Loads the fired units' adapters that are not resident (verified again), then drops the
        least recently fired beyond the budget, never one fired now. Returns unit id -> problem for
        the adapters that could not be loaded. Called holding self._changes."""
        from workers.engine.artifacts import load_unit_adapter

        failed = {}
        for uid in fired:
            if uid in self._resident:
                self._resident.move_to_end(uid)
                self.adapter_hits += 1
                continue
            path, digest = self._sources[uid]
            try:
                self.gated.add_unit(uid, load_unit_adapter(path, self.base.fingerprint, digest))
            except Exception as exc:  # noqa: BLE001 - the rows it fired for fail; the others run
                logger.error("could not load the adapter of unit %s on demand: %s: %s", uid, type(exc).__name__, exc)
                failed[uid] = type(exc).__name__
                continue
            self._resident[uid] = None
            self.adapter_loads += 1
        keep = set(fired)
        for uid in list(self._resident):
            if len(self._resident) <= self.adapter_budget:
                break
            if uid not in keep:
                self.gated.remove_unit(uid)
                del self._resident[uid]
        return failed

    # -- generation ------------------------------------------------------------------------------

    def complete(self, prompts: Sequence[Prompt], *, max_tokens: int, timeout: float | None = None) -> list[Completion | Exception]:
        """One Completion per prompt (or the exception for that prompt, e.g. ContextLengthExceeded),
        the prompts run together in one batch through the gate."""
        return self.batcher.submit(list(prompts), key=max_tokens, timeout=timeout)

    @staticmethod
    def prompt_spec(prompt: Prompt):
        """The engine's PromptSpec of a wire prompt (empty messages dropped)."""
        from workers.engine.prompting import PromptSpec

        if prompt.kind == "chat":
            return PromptSpec.chat([(role, content) for role, content in prompt.messages if content.strip()])
        return PromptSpec(prompt.kind, prompt.text)

    def model_prompt(self, prompt: Prompt) -> str:
        """The text the model sees: workers.engine.prompting.render, as in training and in the
        certificate (the chat template where the model has one; without one, every turn of a chat
        is kept in the question format, none is dropped)."""
        from workers.engine.prompting import render

        return render(self.prompt_spec(prompt), self.base.tokenizer)

    def detector_text(self, prompt: Prompt) -> str:
        """What the gate scores: every message of a chat (one per line), or the text."""
        return self.prompt_spec(prompt).gate_text()

    def _run_batch(self, prompts: list[Prompt], max_tokens: Hashable) -> list[Completion | Exception]:
        """Runs on the batcher's thread: every tokenizer and model call of the gateway happens here."""
        from workers.engine.generation import generate_answers
        from workers.engine.prompting import prompt_ids

        tokenizer = self.base.tokenizer
        texts = [self.model_prompt(p) for p in prompts]
        counts = [len(prompt_ids(tokenizer, text)) for text in texts]
        results: list[Completion | Exception | None] = [None] * len(prompts)
        runnable = []
        for i, count in enumerate(counts):
            if self.context_length and count + max_tokens > self.context_length:
                results[i] = ContextLengthExceeded(count, max_tokens, self.context_length)
            else:
                runnable.append(i)
        if runnable:
            weights, unavailable, load_seconds = self._gate([self.detector_text(prompts[i]) for i in runnable])
            if unavailable:  # those rows are not answered; the others run with the same decisions
                for row, error in unavailable.items():
                    results[runnable[row]] = error
                keep = [row for row in range(len(runnable)) if row not in unavailable]
                runnable = [runnable[row] for row in keep]
                weights = weights.take(keep)
        if runnable:
            with self.gated.apply(weights):
                answers = generate_answers(
                    self.base.model, tokenizer, [texts[i] for i in runnable], max_new_tokens=max_tokens, batch_size=len(runnable), raw_prompts=True
                )
            for row, (i, answer) in enumerate(zip(runnable, answers)):
                generated = len(tokenizer(" " + answer, add_special_tokens=False)["input_ids"]) if answer else 0
                results[i] = Completion(
                    text=answer,
                    finish_reason="length" if generated >= max_tokens else "stop",
                    prompt_tokens=counts[i],
                    completion_tokens=generated,
                    weights={unit_id: w for unit_id, w in weights.row(row).items() if w > 0},
                    adapter_load_seconds=load_seconds,
                )
        return results

    # -- streaming (service/inference/streaming.py) ----------------------------------------------

    def stream(self, rows: Sequence[StreamRow], *, max_tokens: int):
        """Queues streamed rows (one call's, run together in one batch) without waiting; their
        events arrive on their channel. Returns the batcher's group (withdraw it to give up while
        it waits). Raises Overloaded or BatcherClosed."""
        return self.batcher.enqueue(list(rows), (STREAM, max_tokens))

    def count_completion_tokens(self, text: str) -> int:
        """Tokens of an answer as usage counts them (the answer follows the prompt after a space).
        Safe from any thread: a copy of the tokenizer of its own (the batch thread's is not shared)."""
        if not text:
            return 0
        with self._count_lock:
            if self._count_tokenizer is None:
                self._count_tokenizer = copy.deepcopy(self.base.tokenizer)
            return len(self._count_tokenizer(" " + text, add_special_tokens=False)["input_ids"])

    def _run_group(self, items: list, key: Hashable) -> list:
        if isinstance(key, tuple) and key and key[0] == STREAM:
            return self._run_stream_batch(items, key[1])
        return self._run_batch(items, key)

    def _run_stream_batch(self, rows: list[StreamRow], max_tokens: int) -> list[Completion | Exception]:
        """The streamed variant of _run_batch: the same prompt texts, gate and greedy decoding, with
        each row's text pushed to its channel as its tokens come. A row ends at the end of its first
        line, at a stop sequence, at the end-of-sequence token, at max_tokens, or when its reader
        cancels; the batch ends when every row has."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tokenizer = self.base.tokenizer
        results: list[Completion | Exception | None] = [None] * len(rows)
        texts = [self.model_prompt(row.prompt) for row in rows]
        counts = [len(tokenizer(text)["input_ids"]) for text in texts]
        runnable = []
        for i, (row, count) in enumerate(zip(rows, counts)):
            if row.channel.cancelled:
                results[i] = StreamCancelled("the client went away")
            elif self.context_length and count + max_tokens > self.context_length:
                results[i] = ContextLengthExceeded(count, max_tokens, self.context_length)
                row.channel.push(row.row, "error", results[i])
            else:
                runnable.append(i)
        if not runnable:
            return results
        weights, unavailable, load_seconds = self._gate([self.detector_text(rows[i].prompt) for i in runnable])
        if unavailable:  # those rows end with their error before any token; the others run
            for row, error in unavailable.items():
                results[runnable[row]] = error
                rows[runnable[row]].channel.push(rows[runnable[row]].row, "error", error)
            keep = [row for row in range(len(runnable)) if row not in unavailable]
            runnable = [runnable[row] for row in keep]
            weights = weights.take(keep)
            if not runnable:
                return results
        answers = [AnswerText(rows[i].stop) for i in runnable]
        tokens: list[list[int]] = [[] for _ in runnable]
        done = [False] * len(runnable)
        ended_by_length = [False] * len(runnable)
        for i in runnable:  # the gate has decided, before any token: the reader may answer 200 now
            rows[i].channel.push(rows[i].row, "start", counts[i])
        eos = tokenizer.eos_token_id

        class RowsDone(StoppingCriteria):
            """Called after every generated token: hands it to its row, says which rows are done."""

            def __call__(self, input_ids, scores, **kwargs):
                newest = input_ids[:, -1].tolist()
                for r, token in enumerate(newest):
                    if done[r]:
                        continue
                    row = rows[runnable[r]]
                    if row.channel.cancelled:
                        done[r] = True
                        continue
                    if token == eos:
                        done[r] = True
                        continue
                    tokens[r].append(token)
                    delta = answers[r].update(tokenizer.decode(tokens[r], skip_special_tokens=True))
                    if delta:
                        row.channel.push(row.row, "text", delta)
                    if answers[r].done:
                        done[r] = True
                    elif len(tokens[r]) >= max_tokens:
                        done[r], ended_by_length[r] = True, True
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        tokenizer.padding_side = "left"
        device = next(self.base.model.parameters()).device
        batch = tokenizer([texts[i] for i in runnable], return_tensors="pt", padding=True).to(device)
        try:
            with self.gated.apply(weights), torch.no_grad():
                self.base.model.generate(
                    **batch,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=eos,
                    stopping_criteria=StoppingCriteriaList([RowsDone()]),
                )
        except Exception as exc:
            for i in runnable:  # the readers would otherwise wait for an end that never comes
                rows[i].channel.push(rows[i].row, "error", exc)
            raise
        for r, i in enumerate(runnable):
            row = rows[i]
            if row.channel.cancelled:
                results[i] = StreamCancelled("the client went away")
                continue
            answer = answers[r]
            rest = answer.finish()
            if rest:
                row.channel.push(row.row, "text", rest)
            text = answer.text
            results[i] = Completion(
                text=text,
                finish_reason="length" if ended_by_length[r] and not answer.stopped else "stop",
                prompt_tokens=counts[i],
                completion_tokens=len(tokenizer(" " + text, add_special_tokens=False)["input_ids"]) if text else 0,
                weights={unit_id: w for unit_id, w in weights.row(r).items() if w > 0},
                adapter_load_seconds=load_seconds,
            )
            row.channel.push(row.row, "end", results[i])
        return results
