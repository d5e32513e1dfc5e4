"""One request's OOD detector: training on the forget texts, scoring prompts, saving and loading.

On disk a detector is a directory with only JSON and safetensors (no pickle), so the registry can
digest it and the inference gateway can load it safely:

    detector.json          format, config, layers, encoder fingerprint, scalars, diagnostics, versions
    detector.safetensors   the scorer arrays (features, mean, Woodbury core, SVM, calibration)
    entity.json            the subjects' name forms and keyed hashes of their values (names.py)
    encoder_lora/          lora mode only: the encoder LoRA in PEFT format

A unit's gate weight is decisive: 1 when the prompt identifies a subject (entity evidence) or the
embedding detector's calibrated weight reaches `gate_threshold`, else 0.

Every file is written with sorted keys and no time stamps: the same inputs and seed give the same
bytes (the registry's digests then identify a detector by its content).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from workers.engine.detector.config import DetectorConfig
from workers.engine.detector.encoder import Encoder
from workers.engine.detector.lora import (
    DetectorCancelled,
    DetectorLora,
    ProgressCallback,
    StopCallback,
    train_lora,
)
from workers.engine.detector.names import EntityBank, EntityMatcher
from workers.engine.detector.negatives import infer_subjects, name_swaps, phrasing_key
from workers.engine.detector.scorer import Negatives, ScorerStack, UnitScorer, fit_unit_scorer, segment_max
from workers.engine.unit_manifest import canonical_safetensors

FORMAT = "o3-detector"
# 2: name-test tensors (negatives, name_threshold); 3: decisive gate_threshold and entity.json.
# Versions 1 and 2 still load, with O3's soft weights and without the entity evidence.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ENTITY_FILE = "entity.json"
MIN_TEXTS = 4  # at least 3 to fit (cross-fitting needs 2 folds) and 1 held out


class DetectorError(ValueError):
    """The forget texts cannot make a detector, or a saved detector does not fit this encoder."""


def score_windows(encoder: Encoder, stack: ScorerStack, layers: Sequence[int], config: DetectorConfig, prompts: Sequence[str]) -> torch.Tensor:
    """u [n_prompts, n_units]: each prompt's maximum score over its windows, one encoder pass."""
    windows, owner = config.split_windows(prompts)
    features = encoder.layer_features(windows, layers, config.batch_size)
    return segment_max(stack.scores(features), owner, len(prompts))


@dataclass(frozen=True, eq=False)
class Detector:
    """A fitted detector. Immutable; `scores` and `weights` are safe to call from several threads."""

    config: DetectorConfig
    encoder: Encoder  # the shared backbone (shared mode) or this request's merged LoRA copy (lora mode)
    layers: tuple[int, ...]
    unit: UnitScorer
    lora: DetectorLora | None = None
    metadata: dict = field(default_factory=dict)
    entity: EntityMatcher | None = None

    # Built on first use, not at load: a gateway scores through its DetectorBank's stack and never
    # calls a detector alone, and a one-unit stack is a full copy of the scorer's tensors (about
    # 110 KiB per demo unit; bench/gate_scale.py).
    @cached_property
    def stack(self) -> ScorerStack:
        return ScorerStack([self.unit])

    @cached_property
    def entity_bank(self) -> EntityBank | None:
        return EntityBank({"unit": self.entity}) if self.entity is not None else None

    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """u(x) per prompt (maximum over its windows); higher means more like the forget data."""
        return score_windows(self.encoder, self.stack, self.layers, self.config, prompts)[:, 0].cpu().numpy()

    def entity_weights(self, prompts: Sequence[str]) -> np.ndarray:
        """1.0 where the prompt identifies one of the subjects (names.py), else 0.0."""
        if self.entity_bank is None:
            return np.zeros(len(prompts), dtype=np.float32)
        return self.entity_bank.fires(list(prompts))[:, 0]

    def weights_from_scores(self, scores: np.ndarray, prompts: Sequence[str] | None = None) -> np.ndarray:
        """Gate weights of scores already computed by `scores` (no encoder pass); with `prompts`,
        the entity evidence joins in (the largest of the two)."""
        u = torch.as_tensor(np.asarray(scores, dtype=np.float32), device=self.stack.intercept.device)
        weights = self.stack.weights(u[:, None])[:, 0].cpu().numpy()
        if prompts is not None:
            weights = np.maximum(weights, self.entity_weights(prompts))
        return weights

    def weights(self, prompts: Sequence[str]) -> np.ndarray:
        """Gate weight w(x) per prompt: 0 or 1 (soft weights for detectors saved before format 3)."""
        return self.weights_from_scores(self.scores(prompts), prompts)

    def save(self, directory: str | Path) -> Path:
        """Write detector.json + detector.safetensors (+ encoder_lora/ in lora mode)."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        (root / "detector.safetensors").write_bytes(canonical_safetensors(save(self.unit.tensors(), metadata={"format": FORMAT})))
        if self.lora is not None:
            self.lora.save(root / "encoder_lora")
        if self.entity is not None:
            (root / ENTITY_FILE).write_text(json.dumps(self.entity.to_json(), indent=1, sort_keys=True) + "\n")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "layers": list(self.layers),
            "encoder": {
                "name": self.encoder.path.name,
                "fingerprint": self.encoder.fingerprint,
                "hidden_size": self.encoder.hidden_size,
                "num_layers": self.encoder.num_layers,
            },
            "scalars": self.unit.scalars(),
            "metadata": self.metadata,
            "versions": {name: version(name) for name in ("torch", "transformers", "peft", "scikit-learn")},
        }
        (root / "detector.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return root


def load_detector(directory: str | Path, encoder: Encoder) -> Detector:
    """Load a saved detector onto `encoder`, which must be the backbone it was trained on."""
    root = Path(directory)
    try:
        manifest = json.loads((root / "detector.json").read_text())
    except FileNotFoundError as exc:
        raise DetectorError(f"{root} has no detector.json") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") not in READABLE_VERSIONS:
        raise DetectorError(f"{root} is not a {FORMAT} directory of a version this code reads {READABLE_VERSIONS}")
    if manifest["encoder"]["fingerprint"] != encoder.fingerprint:
        raise DetectorError(
            f"detector in {root} was trained on encoder {manifest['encoder']['name']} "
            f"({manifest['encoder']['fingerprint'][:12]}), not on {encoder.path.name} ({encoder.fingerprint[:12]})"
        )
    config = DetectorConfig.from_dict(manifest["config"])
    unit = UnitScorer.from_tensors(load_file(str(root / "detector.safetensors")), manifest["scalars"], encoder.device)
    lora = DetectorLora.load(root / "encoder_lora") if config.mode == "lora" else None
    if lora is not None:
        encoder = lora.merged(encoder)
    entity = None
    if (root / ENTITY_FILE).is_file():
        try:
            entity = EntityMatcher.from_json(json.loads((root / ENTITY_FILE).read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise DetectorError(f"{root / ENTITY_FILE} is not a valid entity file ({exc})") from None
    return Detector(config=config, encoder=encoder, layers=tuple(manifest["layers"]), unit=unit, lora=lora, metadata=manifest["metadata"], entity=entity)


def _split(texts: Sequence[str], holdout_fraction: float, seed: int, groups: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """Indices of D_used and D_rest. With `groups` (one id per text, 0..G-1 in order of first
    appearance), whole groups go to one side, when there are at least MIN_TEXTS groups; with one
    text per group this is the plain split over texts."""
    groups = list(range(len(texts))) if groups is None or len(set(groups)) < MIN_TEXTS else list(groups)
    count = len(set(groups))
    order = np.random.default_rng(seed).permutation(count)
    n_rest = min(max(1, round(holdout_fraction * count)), count - 3)
    rest_groups = set(order[:n_rest].tolist())
    used = [i for g in order[n_rest:].tolist() for i, group in enumerate(groups) if group == g]
    rest = [i for g in order[:n_rest].tolist() for i, group in enumerate(groups) if group == g]
    assert not rest_groups & {groups[i] for i in used}
    return used, rest


def _groups(texts: Sequence[str], subjects: Sequence[str]) -> list[int]:
    """Group id per text: texts that are one phrasing about different subjects share one."""
    keys: dict[str, int] = {}
    return [keys.setdefault(phrasing_key(text, subjects), len(keys)) for text in texts]


def negative_features(
    encoder: Encoder,
    windows: Sequence[str],
    owner: Sequence[int],
    subjects: Sequence[str],
    layers: Sequence[int],
    config: DetectorConfig,
    rng: random.Random,
) -> Negatives | None:
    """The name-swapped copies of the D_used `windows` (negatives.py) as features: the copies
    [c, L, d], and one centroid per window and kind of swap [k, L, d] (L2-normalised per layer),
    with each centroid's source text and each copy's centroid. None when no window names a subject."""
    texts: list[str] = []
    groups: list[tuple[int, int, int]] = []  # (source text, first copy, end) per centroid
    for window, text_index in zip(windows, owner):
        for copies in name_swaps(window, subjects, rng, config.name_negatives).values():
            groups.append((text_index, len(texts), len(texts) + len(copies)))
            texts += copies
    if not texts:
        return None
    copies = encoder.layer_features(texts, layers, config.batch_size)
    centroids = torch.nn.functional.normalize(torch.stack([copies[start:end].mean(0) for _, start, end in groups]), dim=-1)
    copy_group = [group for group, (_, start, end) in enumerate(groups) for _ in range(start, end)]
    return Negatives(centroids, [text_index for text_index, _, _ in groups], copies, copy_group)


def train_detector(
    texts: Sequence[str],
    config: DetectorConfig,
    encoder: Encoder,
    progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    subjects: Sequence[str] | None = None,
    values: Sequence[str] = (),
    identifiers: Sequence[str] = (),
) -> Detector:
    """Fit a request's detector on its forget texts D_t only.

    D_t is split into D_used (fitted) and D_rest (held out for calibration). In lora mode a LoRA is
    first trained on D_used; progress(step, total, loss) is called after every step and
    should_stop() before every step (True raises DetectorCancelled). Shared mode has no steps.

    subjects: the data subjects' names, for the synthetic name negatives of the name test
    (negatives.py) and the entity evidence (names.py); None infers them from the texts (recurring
    capitalised names), () means none. values / identifiers: the subjects' data (answers, emails,
    phone numbers), stored as keyed hashes for the entity evidence's context and identifier rules.
    """
    unique = list(dict.fromkeys(text.strip() for text in texts if text and text.strip()))
    if len(unique) < MIN_TEXTS:
        raise DetectorError(f"a detector needs at least {MIN_TEXTS} distinct non-empty texts, got {len(unique)}")
    inferred = subjects is None
    subjects = [s for s in (infer_subjects(unique) if inferred else subjects) if s and s.strip()]
    groups = _groups(unique, subjects) if config.phrasing_folds else list(range(len(unique)))
    used_index, rest_index = _split(unique, config.holdout_fraction, config.seed, groups)
    used, rest = [unique[i] for i in used_index], [unique[i] for i in rest_index]
    used_groups = [groups[i] for i in used_index]
    layers = encoder.resolve_layers(config.layers)
    used_windows, used_owner = config.split_windows(used)
    rest_windows, rest_owner = config.split_windows(rest)
    lora, losses = None, []
    if config.mode == "lora":
        lora, losses = train_lora(encoder, used_windows, layers, config, progress, should_stop)
        encoder = lora.merged(encoder)
    elif should_stop is not None and should_stop():
        raise DetectorCancelled("detector fitting cancelled")
    negatives = None
    if config.name_negatives > 0 and subjects:
        rng = random.Random(config.seed)
        negatives = negative_features(encoder, used_windows, used_owner, subjects, layers, config, rng)
        rest_negatives = negative_features(encoder, rest_windows, rest_owner, subjects, layers, config, rng)
        if negatives is not None and rest_negatives is not None:
            negatives = replace(negatives, rest_centroids=rest_negatives.centroids)
    unit, diagnostics = fit_unit_scorer(
        encoder.layer_features(used_windows, layers, config.batch_size),
        used_owner,
        encoder.layer_features(rest_windows, layers, config.batch_size),
        rest_owner,
        config,
        negatives,
        used_groups,
    )
    diagnostics["subjects"] = {"count": len(subjects), "inferred": inferred}
    if losses:
        diagnostics["lora_losses"] = {"first": losses[0], "last": losses[-1], "steps": len(losses)}
    entity = None
    if config.entity_evidence and (subjects or values or identifiers):
        entity = EntityMatcher.fit(subjects, values, identifiers)
        diagnostics["entity"] = dict(entity.metadata)
    return Detector(config=config, encoder=encoder, layers=layers, unit=unit, lora=lora, metadata=diagnostics, entity=entity)
