"""The configuration of one request's OOD detector (O3.md section 1).

Plain dataclass with no torch import, so the service can validate and store a detector config
without loading the engine. Every field carries its help text in `metadata["help"]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from workers.engine.config_fields import help_field
from workers.engine.detector.windows import split_all

MODES: tuple[str, ...] = ("shared", "lora")
CEL_VARIANTS: tuple[str, ...] = ("corrected", "faithful")


class DetectorConfigError(ValueError):
    """A DetectorConfig field has an invalid value."""


@dataclass
class DetectorConfig:
    """How one request's detector is fitted and how its score becomes a gate weight."""

    mode: str = help_field(
        "'shared': frozen backbone, one encoder pass per query shared by all requests, per-request "
        "scorers only. 'lora': a per-request LoRA on the backbone trained with masked-token loss + "
        "contrastive entropy loss (the reference design; one encoder pass per request per query).",
        "shared",
    )
    layers: tuple[int, ...] | None = help_field(
        "Encoder layers whose mean-pooled states are scored, as hidden-state indices: 0 = embeddings, "
        "1..N = transformer layers, negative = counted from the end (-1 = the last layer). None means "
        "every transformer layer (1..N), as the reference. Default: the last layer only, the one a "
        "sentence encoder is trained to pool; the benchmark shows it separates better than all six "
        "MiniLM layers and it makes the bank's per-request cost six times smaller.",
        (-1,),
    )
    local_weight: float = help_field(
        "Weight of the local term: s_l = local_weight * c_l - global_weight * g_l^2, c_l the 1-NN "
        "cosine, g_l the Mahalanobis distance. The reference writes -1000*c_l - 0.5*g_l^2, which "
        "rewards DISsimilarity; we flip the local sign so that higher s_l means more forget-like.",
        1000.0,
    )
    global_weight: float = help_field(
        "Weight of g_l^2 in s_l (see local_weight; the reference's 0.5). Default 0: the local term "
        "alone. Measured on the demo worlds (bench/detector.py, bench/unlearning.py), the Mahalanobis "
        "term, fitted on a few dozen forget windows in 384 dimensions, ranks held-out paraphrases of "
        "the forget questions below the forget set's own phrasings and put 10% (balanced) to 19% "
        "(reference weights) of them under the gate on demo requests of 1 to 3 people, against 1% "
        "with the local term alone, for no gain on other people or general prompts.",
        0.0,
    )
    balance_terms: bool = help_field(
        "Rescale global_weight per request so that local_weight * c_l and global_weight * g_l^2 have "
        "the same spread over the cross-fitted forget windows. The reference's 1000 and 0.5 were set "
        "for its own features; on L2-normalised MiniLM features the Mahalanobis term spreads about 25 "
        "times wider and decides alone, which puts new phrasings of a forget question under the gate. "
        "False: the fixed weights.",
        True,
    )
    nu: float = help_field("nu of the linear one-class SVM on the layer-score vectors (0.01 to 0.1).", 0.05)
    zeta: float = help_field("Slope zeta of the gate weight w = sigmoid(zeta * c - 2).", 10.0)
    weight_floor: float = help_field(
        "Weights below this are set to exactly 0, so unrelated prompts run on the base model. "
        "sigmoid(zeta * c - 2) never drops below sigmoid(-2) = 0.119, so a floor must exceed 0.119 "
        "to act. The default 0.15 zeroes c < 0.027 (F(u) < 1.3%); since F jumps to 0.5/N at the "
        "lowest of the N calibration scores, that means: inputs scoring below every forget text.",
        0.15,
    )
    gate_threshold: float = help_field(
        "Decisive gate: an embedding-detector weight at or above this applies the unit's adapter at "
        "full strength (1), below it not at all (0). Partial weights (0.15 to 0.9) gave garbled refusals "
        "and sometimes the data itself. 0.5 = sigmoid(zeta c - 2) at c = 0.2: a prompt at least as "
        "forget-like as the lowest tenth of the forget texts' own held-out scores. 0 keeps O3's soft "
        "weights (for comparisons).",
        0.5,
    )
    entity_evidence: bool = help_field(
        "Also recognise the data subject by name and identifiers in every prompt (names.py): a prompt "
        "that identifies the subject gets the unit at full strength whatever the embedding score. "
        "False: the O3 embedding detector alone (the benchmark's ablation).",
        True,
    )
    holdout_fraction: float = help_field(
        "Fraction of the forget texts held out (D_rest) for calibration; the rest (D_used) is fitted.",
        0.25,
    )
    cross_fit_folds: int = help_field(
        "Folds used to score D_used out of sample when fitting the SVM and the calibration (a text's "
        "own features would otherwise be its own nearest neighbour, cosine exactly 1).",
        5,
    )
    phrasing_folds: bool = help_field(
        "Keep one phrasing about several subjects of the request (the same question with another name) "
        "in one cross-fitting fold and on one side of the D_used / D_rest split. False: split over "
        "texts (a held-out text then finds its own phrasing in the fit and the calibration is too "
        "strict for new phrasings).",
        True,
    )
    store_calibration_windows: bool = help_field(
        "After calibration, store the D_rest windows too (and their name negatives): a forget text held "
        "out for calibration is still a forget text and must be its own nearest neighbour. False: "
        "store D_used only (held-out forget texts then score like paraphrases).",
        True,
    )
    window_words: int = help_field(
        "Prompts longer than this many words are scored in windows (each sentence, and word spans "
        "of this length); the request's score is the maximum over windows.",
        24,
    )
    window_stride: int = help_field("Step in words between consecutive word-span windows (overlap = words - stride).", 12)
    sentence_windows: bool = help_field(
        "Score every sentence of a prompt of several sentences as a window of its own, even when the "
        "prompt is short. False: a prompt of at most window_words words is one window (the earlier "
        "rule, under which one unrelated sentence before and after a question hid half the questions).",
        True,
    )
    name_negatives: int = help_field(
        "Synthetic name negatives (negatives.py): per forget window that names a data subject and per "
        "kind of replacement (first name, surname, both), this many copies with generic names, "
        "averaged into one centroid. A window closer to those centroids than to the forget data, by "
        "the request's own threshold, cannot raise the prompt's score (the name test). Uses no retain "
        "data. 0 disables the name test (the detector then behaves as before it existed).",
        4,
    )
    batch_size: int = help_field("Texts per encoder forward pass.", 64)
    seed: int = help_field("Seed for the D_used/D_rest split, the folds, the LoRA initialisation and data order.", 0)
    # lora mode only
    cel_variant: str = help_field(
        "Contrastive loss of lora mode. 'faithful': entropy of softmax_j(q_i . k_j) with padding in "
        "the mean pooling and no normalisation, as the reference code. 'corrected': InfoNCE with the "
        "masked view of x_i as the positive, attention-masked pooling, normalised features and a "
        "temperature.",
        "corrected",
    )
    lora_rank: int = help_field("LoRA rank r of the detector LoRA (lora mode).", 8)
    lora_alpha: float = help_field("LoRA alpha of the detector LoRA (lora mode).", 32.0)
    lora_target_modules: tuple[str, ...] = help_field(
        "Encoder modules that get the detector LoRA (BERT/RoBERTa attention: query, key, value).",
        ("query", "key", "value"),
    )
    lora_epochs: int = help_field("Passes over D_used when training the detector LoRA.", 5)
    lora_batch_size: int = help_field("Texts per LoRA training step (also the contrastive batch).", 16)
    lora_lr: float = help_field("AdamW learning rate of the detector LoRA.", 1e-3)
    mask_probability: float = help_field("Fraction of tokens replaced by the mask token in the masked view.", 0.15)
    mlm_weight: float = help_field(
        "Weight of the masked-token loss. The backbone has no MLM head, so a light head tied to the "
        "input embeddings (trainable LayerNorm + bias) is used during training and then discarded; "
        "0 skips the masked-token loss (the masked view is still used by the contrastive loss).",
        1.0,
    )
    temperature: float = help_field("Temperature of the 'corrected' contrastive loss.", 0.05)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DetectorConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.cel_variant not in CEL_VARIANTS:
            raise DetectorConfigError(f"cel_variant must be one of {CEL_VARIANTS}, got {self.cel_variant!r}")
        if self.layers is not None:
            if isinstance(self.layers, int) or not all(isinstance(x, int) and not isinstance(x, bool) for x in self.layers):
                raise DetectorConfigError(f"layers must be None or a sequence of layer indices, got {self.layers!r}")
            self.layers = tuple(dict.fromkeys(self.layers))
            if not self.layers:
                raise DetectorConfigError("layers must not be empty")
        self.lora_target_modules = tuple(str(name) for name in self.lora_target_modules)
        if not self.lora_target_modules:
            raise DetectorConfigError("lora_target_modules must not be empty")
        for name in ("phrasing_folds", "store_calibration_windows", "balance_terms", "sentence_windows", "entity_evidence"):
            if not isinstance(getattr(self, name), bool):
                raise DetectorConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if isinstance(self.name_negatives, bool) or not isinstance(self.name_negatives, int) or self.name_negatives < 0:
            raise DetectorConfigError(f"name_negatives must be a non-negative integer, got {self.name_negatives!r}")
        for name in ("cross_fit_folds", "window_words", "window_stride", "batch_size", "lora_rank", "lora_epochs", "lora_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DetectorConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.cross_fit_folds < 2:
            raise DetectorConfigError(f"cross_fit_folds must be at least 2, got {self.cross_fit_folds}")
        if self.window_stride > self.window_words:
            raise DetectorConfigError("window_stride must not exceed window_words (spans would leave gaps)")
        if self.lora_batch_size < 2:
            raise DetectorConfigError("lora_batch_size must be at least 2 (the contrastive loss needs negatives)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise DetectorConfigError(f"seed must be an integer, got {self.seed!r}")
        if not 0.01 <= self.nu <= 0.1:
            raise DetectorConfigError(f"nu must be in [0.01, 0.1], got {self.nu}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise DetectorConfigError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if not 0.0 <= self.gate_threshold <= 1.0:
            raise DetectorConfigError(f"gate_threshold must be in [0, 1], got {self.gate_threshold}")
        if not 0.0 <= self.weight_floor < 1.0:
            raise DetectorConfigError(f"weight_floor must be in [0, 1), got {self.weight_floor}")
        if not 0.0 < self.mask_probability < 1.0:
            raise DetectorConfigError(f"mask_probability must be in (0, 1), got {self.mask_probability}")
        for name in ("zeta", "lora_alpha", "lora_lr", "temperature"):
            if not getattr(self, name) > 0:
                raise DetectorConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("local_weight", "global_weight", "mlm_weight"):
            if getattr(self, name) < 0:
                raise DetectorConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.local_weight == 0 and self.global_weight == 0:
            raise DetectorConfigError("local_weight and global_weight cannot both be 0")

    @property
    def window_rule(self) -> tuple[int, int, bool]:
        """(window_words, window_stride, sentence_windows): how prompts are split into windows."""
        return (self.window_words, self.window_stride, self.sentence_windows)

    def split_windows(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        """Windows of every text under this config's rule, and each window's text (windows.split_all)."""
        return split_all(texts, *self.window_rule)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Inverse of to_dict; unknown keys are an error so a typo never passes silently."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DetectorConfigError(f"unknown DetectorConfig fields: {sorted(unknown)}")
        values = dict(data)
        for key in ("layers", "lora_target_modules"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)
