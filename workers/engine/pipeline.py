"""One unlearning request end to end: forget set -> detector + orthogonal adapter -> sealed unit.
Serving the units (verified, detectors wired in as the gate) is serving.py.

    unit_dir = train_unit(base, forget, out_dir="units/req-42", previous_units=["units/req-41"])

`train_unit` runs two phases and reports them as one progress bar (PipelineProgress.percent runs
from 0 to 100 across both): the detector (shared mode has no steps and takes about a second; lora
mode trains an encoder LoRA) and the adapter (optimiser steps). `should_stop()` is polled before
every step of either phase; True raises `UnitCancelled` and nothing is written.

The previous units are the currently active requests: the new adapter's lora_A matrices are pushed
orthogonal to every one of theirs (O3.md section 2). Each previous unit directory is verified
(digests, base fingerprint) before its adapter is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import families, orthogonal_room
from .artifacts import LoadedUnit, load_unit, write_unit
from .base_model import BaseModel
from .config import UnlearnConfig
from .detector import Detector, DetectorCancelled, DetectorConfig, load_encoder, train_detector
from .detector.encoder import Encoder
from .forget_set import ForgetSet
from .generation import context_length
from .methods import MissingRetainDataError, get_method
from .prompting import PromptSpec, prompt_ids, render
from .training import AdapterWeights, Progress, TrainingCallbacks, TrainingCancelled, orthogonality_penalty, stack_lora_A, train_unit_adapter

# Share of the overall progress bar given to the detector phase, by detector mode (the adapter
# gets the rest but the last WRITE_SHARE percent, which covers writing the unit).
DETECTOR_SHARE = {"shared": 5.0, "lora": 40.0}
WRITE_SHARE = 2.0


class UnitCancelled(Exception):
    """should_stop() asked to stop during `phase` ('detector' or 'adapter'); nothing was written."""

    def __init__(self, phase: str):
        super().__init__(f"unit training cancelled during the {phase} phase")
        self.phase = phase


@dataclass(frozen=True)
class PipelineProgress:
    """Overall progress of train_unit: percent runs 0..100 across the detector and adapter phases."""

    phase: str  # "detector", "adapter", "write" or "done"
    percent: float
    step: int = 0  # step within the phase
    total: int = 0  # steps of the phase (0: the phase has no steps)
    loss: float | None = None  # the phase's training loss, when it has one


@dataclass
class PipelineCallbacks:
    on_progress: Callable[[PipelineProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None  # polled before every step; True cancels


UnitSource = str | Path | LoadedUnit | AdapterWeights


def train_unit(
    base: BaseModel,
    forget: ForgetSet,
    *,
    out_dir: str | Path,
    previous_units: Sequence[UnitSource] = (),
    unlearn_config: UnlearnConfig | None = None,
    detector_config: DetectorConfig | None = None,
    encoder: Encoder | None = None,
    callbacks: PipelineCallbacks | None = None,
    unit_id: str | None = None,
    retain: Sequence[Any] | None = None,
    manifest_extra: dict[str, Any] | None = None,
    record_subjects: bool = True,
) -> Path:
    """Train one request's detector and adapter and write them as a unit directory; returns it.

    previous_units: the active units (directories, LoadedUnit or AdapterWeights); the new adapter
    is trained orthogonal to each. unit_id defaults to the directory name. retain: for the 'gd'
    baseline only. The subjects are `forget.subjects`, or inferred from the forget texts
    (ForgetSet.resolved_subjects); the detector recognises them by name (detector/names.py). The
    manifest records the forget-set hash, the configs, the timings, the ids of the previous units,
    the final orthogonality penalty, whether the subjects were inferred and, with
    `record_subjects`, their names (personal data: the service passes False).

    The adapter trains on the forget set's own items plus prompts synthesised from its facts in
    the development phrasings (UnlearnConfig.synthesis, families.synthesise), rendered in the shapes
    the gateway serves.
    """
    started = time.perf_counter()
    unlearn_config = unlearn_config or UnlearnConfig()
    detector_config = detector_config or DetectorConfig()
    callbacks = callbacks or PipelineCallbacks()
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"unit directory already exists: {out_dir}")
    previous = [_previous_adapter(source, base) for source in previous_units]
    previous_ids = [unit_id_ for unit_id_, _ in previous]
    previous_adapters = [adapter for _, adapter in previous]
    method = get_method(unlearn_config)
    if method.needs_retain and not retain:  # fail before the detector phase, not after it
        raise MissingRetainDataError(f"method {unlearn_config.method!r} needs retain examples (retain=...); none were given")
    subjects, subjects_inferred = forget.resolved_subjects()
    training_items = forget.training_items(method.target)  # fails early when answers are missing
    synthesised = synthesised_items(forget, unlearn_config, method.target, fits=_fits(base, unlearn_config.max_length))
    training_items = training_items + synthesised
    detector_share = DETECTOR_SHARE.get(detector_config.mode, 10.0)
    adapter_share = 100.0 - detector_share - WRITE_SHARE

    def report(event: PipelineProgress) -> None:
        if callbacks.on_progress is not None:
            callbacks.on_progress(event)

    # Phase 1: the detector, on the forget texts only.
    report(PipelineProgress("detector", 0.0))
    encoder = encoder if encoder is not None else load_encoder(device=str(base.device))

    def detector_progress(step: int, total: int, loss: float) -> None:
        report(PipelineProgress("detector", detector_share * step / max(total, 1), step, total, loss))

    try:
        detector = fit_detector(forget, detector_config, encoder, detector_progress, callbacks.should_stop, subjects=subjects)
    except DetectorCancelled as exc:
        raise UnitCancelled("detector") from exc
    detector_seconds = time.perf_counter() - started
    report(PipelineProgress("detector", detector_share))

    # Phase 2: the adapter, orthogonal to the active units' adapters.
    def adapter_progress(progress: Progress) -> None:
        percent = detector_share + adapter_share * progress.step / max(progress.total, 1)
        report(PipelineProgress("adapter", percent, progress.step, progress.total, progress.loss))

    adapter_started = time.perf_counter()
    try:
        adapter = train_unit_adapter(
            base,
            training_items,
            unlearn_config,
            previous=previous_adapters,
            retain=retain,
            callbacks=TrainingCallbacks(on_progress=adapter_progress, should_stop=callbacks.should_stop),
        )
    except TrainingCancelled as exc:
        raise UnitCancelled("adapter") from exc
    adapter_seconds = time.perf_counter() - adapter_started

    report(PipelineProgress("write", 100.0 - WRITE_SHARE))
    extra: dict[str, Any] = {
        "forget_set": {
            "hash": forget.hash,
            "items": len(forget),
            "questions": len(forget.questions),
            "texts": len(forget.texts),
            "training_examples": len(training_items),
            "synthesised_examples": len(synthesised),
            "detector_texts": len(forget.detector_texts()),
        },
        "subjects_inferred": subjects_inferred,
        "previous_units": previous_ids,
        "orthogonality_penalty": adapter_orthogonality(adapter, previous_adapters),
        "orthogonality_room": orthogonal_room.measure(previous_adapters, adapter).as_dict(),
        "timings": {
            "detector_seconds": round(detector_seconds, 3),
            "adapter_seconds": round(adapter_seconds, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
        },
        "detector": {"encoder": encoder.path.name, "encoder_fingerprint": encoder.fingerprint, "fit": _jsonable(detector.metadata)},
        "device": str(base.device),
    }
    if subjects and record_subjects:
        extra["subjects"] = list(subjects)
    extra.update(manifest_extra or {})
    write_unit(
        out_dir,
        adapter,
        unit_id=unit_id or out_dir.name,
        config=unlearn_config,
        detector_saver=detector.save,
        detector_config=detector_config.to_dict(),
        base_fingerprint=base.fingerprint,
        forget_set_hash=forget.hash,
        manifest_extra=extra,
    )
    report(PipelineProgress("done", 100.0))
    return out_dir


def fit_detector(
    forget: ForgetSet,
    config: DetectorConfig,
    encoder: Encoder,
    progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    subjects: Sequence[str] | None = None,
) -> Detector:
    """The request's detector, fitted on its forget texts only (O3: no retain data).

    The subjects' names (`subjects`, else ForgetSet.resolved_subjects) let the detector synthesise
    its name negatives: the same forget texts about generic other names (detector/negatives.py),
    so that a relative sharing the subject's surname or first name is not gated as the subject;
    and they are the entity evidence (detector/names.py), with the set's values and identifiers.
    No other person's data is used.
    """
    if subjects is None:
        subjects = forget.resolved_subjects()[0]
    return train_detector(
        forget.detector_texts(),
        config,
        encoder,
        progress,
        should_stop,
        subjects=list(subjects),
        values=forget.all_values(),
        identifiers=list(forget.identifiers),
    )


def synthesised_items(
    forget: ForgetSet, config: UnlearnConfig, target: str, *, fits: Callable[[PromptSpec], bool] | None = None
) -> list[tuple[PromptSpec, str]]:
    """(prompt, answer) pairs synthesised from the forget facts in the development phrasings
    (never the certification ones): the answer is the fact's value for the answer-based methods,
    and is replaced by a refusal for O3. Prompts without a value (open requests) only for O3."""
    facts = forget.facts()
    if not facts or not config.synthesis:
        return []
    generated = families.synthesise(facts, per_family=config.synthesis, seed=config.seed, fits=fits)
    return [(g.spec, g.value or "") for g in generated if target == "refusal" or g.value]


def _fits(base: BaseModel, max_length: int) -> Callable[[PromptSpec], bool]:
    """Whether a synthesised prompt, rendered for this model, leaves room for an answer."""
    limit = min(max_length, context_length(base.model) or max_length) - 48

    def fits(spec: PromptSpec) -> bool:
        return len(prompt_ids(base.tokenizer, render(spec, base.tokenizer))) <= limit

    return fits


def adapter_orthogonality(adapter: AdapterWeights, previous: Sequence[AdapterWeights]) -> float:
    """sum over previous adapters k and modules of ||A_k A^T||_F^2 (0.0 without previous adapters)."""
    if not previous:
        return 0.0
    current = {name: module.A for name, module in adapter.modules.items()}
    return float(orthogonality_penalty(current, stack_lora_A(previous)))


def _previous_adapter(source: UnitSource, base: BaseModel) -> tuple[str, AdapterWeights]:
    if isinstance(source, AdapterWeights):
        return "(in memory)", source
    if isinstance(source, LoadedUnit):
        return source.manifest.unit_id, source.adapter
    loaded = load_unit(source, expected_base_fingerprint=base.fingerprint)
    return loaded.manifest.unit_id, loaded.adapter


def _jsonable(value: Any) -> Any:
    """Detector diagnostics as plain JSON values (numpy scalars and arrays converted)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
