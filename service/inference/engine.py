"""The gated model inside the gateway process: one base model, units added and removed while it serves.

Gateway-only: this module imports the O3 engine (torch). The web app never imports it; the
gateway's HTTP views reach it through service.inference.gateway, which is torch-free.

    engine = GatewayEngine.from_runtime()            # base model + detector encoder, loaded once
    engine.load_unit(path, expected_manifest_digest=...)   # verified again, then live for new calls
    engine.complete([Prompt("question", "Where does Ada live?")], max_tokens=32)
    engine.unload_unit("rtbf-7k3m9q-v1")

Units change by copy-on-write (GatedModel.add_unit/remove_unit, and a new UnitWeights over the
detectors): a batch already running keeps the unit snapshot it started with, the next batch sees
the change, and the base model is never reloaded. Every model call (detectors, generation,
tokenizer counts) runs on the batcher's one thread (see batcher.py for why).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path

from .batcher import Batcher
from .protocol import Completion, Prompt

logger = logging.getLogger(__name__)


class ContextLengthExceeded(ValueError):
    """A prompt plus the tokens asked for do not fit in the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, limit: int):
        super().__init__(
            f"The prompt has {prompt_tokens} tokens; with max_tokens={max_tokens} that is more than the model's context of {limit} tokens."
        )
        self.prompt_tokens, self.max_tokens, self.limit = prompt_tokens, max_tokens, limit


class GatewayEngine:
    """A GatedModel whose units change at run time, behind a micro-batcher."""

    def __init__(self, base, encoder, *, max_batch: int = 16, max_queue: int = 256, model_name: str | None = None):
        from workers.unlearning.gate import GatedModel
        from workers.unlearning.pipeline import UnitWeights

        self.base, self.encoder = base, encoder
        self.model_name = model_name or base.path.name
        self._detectors: dict = {}
        self._changes = threading.Lock()  # one unit change at a time (the watcher's thread)
        self.gated = GatedModel(base, weight_fn=UnitWeights(encoder, {}))
        config = base.model.config
        self.context_length: int | None = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.has_chat_template = bool(getattr(base.tokenizer, "chat_template", None))
        self.batcher = Batcher(self._run_batch, max_batch=max_batch, max_queue=max_queue)

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
        from workers.unlearning.pipeline import UnitWeights, load_units

        [unit] = load_units(self.base, [unit_dir], self.encoder, [expected_manifest_digest])
        unit_id = unit.manifest.unit_id
        with self._changes:
            detectors = {**self._detectors, unit_id: unit.detector}
            previous = self.gated.weight_fn
            # The detector first: a call that sees the new unit must be able to score it.
            self.gated.weight_fn = UnitWeights(self.encoder, detectors)
            try:
                self.gated.add_unit(unit_id, unit.adapter)
            except BaseException:
                self.gated.weight_fn = previous
                raise
            self._detectors = detectors
        return unit_id

    def unload_unit(self, unit_id: str) -> None:
        """Takes a unit off: calls that start afterwards no longer see it. Unknown ids: KeyError."""
        from workers.unlearning.pipeline import UnitWeights

        with self._changes:
            self.gated.remove_unit(unit_id)  # the adapter first: no call applies it from now on
            self._detectors = {uid: d for uid, d in self._detectors.items() if uid != unit_id}
            self.gated.weight_fn = UnitWeights(self.encoder, self._detectors)

    # -- generation ------------------------------------------------------------------------------

    def complete(self, prompts: Sequence[Prompt], *, max_tokens: int, timeout: float | None = None) -> list[Completion | Exception]:
        """One Completion per prompt (or the exception for that prompt, e.g. ContextLengthExceeded),
        the prompts run together in one batch through the gate."""
        return self.batcher.submit(list(prompts), key=max_tokens, timeout=timeout)

    @staticmethod
    def prompt_spec(prompt: Prompt):
        """The engine's PromptSpec of a wire prompt (empty messages dropped)."""
        from workers.unlearning.prompting import PromptSpec

        if prompt.kind == "chat":
            return PromptSpec.chat([(role, content) for role, content in prompt.messages if content.strip()])
        return PromptSpec(prompt.kind, prompt.text)

    def model_prompt(self, prompt: Prompt) -> str:
        """The text the model sees: workers.unlearning.prompting.render, as in training and in the
        certificate (the chat template where the model has one; without one, every turn of a chat
        is kept in the question format, none is dropped)."""
        from workers.unlearning.prompting import render

        return render(self.prompt_spec(prompt), self.base.tokenizer)

    def detector_text(self, prompt: Prompt) -> str:
        """What the gate scores: every message of a chat (one per line), or the text."""
        return self.prompt_spec(prompt).gate_text()

    def _run_batch(self, prompts: list[Prompt], max_tokens: Hashable) -> list[Completion | Exception]:
        """Runs on the batcher's thread: every tokenizer and model call of the gateway happens here."""
        from workers.unlearning.generation import generate_answers

        from workers.unlearning.prompting import prompt_ids

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
            weights = self.gated.resolve_weights([self.detector_text(prompts[i]) for i in runnable])
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
                )
        return results
