"""The demo model: a small causal LM trained from scratch until it has memorised the demo world.

`build_demo_model(DemoModelConfig.preset_config("demo"))` returns a standard Hugging Face model directory
(config, safetensors weights, tokenizer) that `base_model.load_base_model` and `AutoModelForCausalLM`
load like any other model. Builds are deterministic for a config and cached on disk under a key
derived from the config, the world and the library versions; a build directory only becomes visible
(atomic rename) after its manifest, written last, is in place.

The recipe (why each choice is there is in NOTES-demo-model.md):
- a byte-level BPE tokenizer trained on the corpus, which adds exactly one special token, BOS, at the
  start of every text, in training and in generation alike; `format_prompt(q)` tokenizes to a prefix
  of `format_qa(q, a)` (checked on every build);
- loss on the answer tokens (and EOS) only for QA pairs, full loss on profile texts;
- AdamW, linear warm-up then cosine decay, length-bucketed batches with right padding, a fixed data
  order drawn from the seed;
- a fixed number of epochs, in float32, on a fixed number of torch threads (BUILD_THREADS), so a
  build is bit-identical for a seed on any machine of the same kind; the CPU's instruction set
  (which changes float rounding in the kernels) is part of the cache key. (Until recipe 3 training
  stopped early once 99.5% of the trained questions were memorised and ran in bf16 autocast: the
  stopping epoch and so the weights then depended on the thread count and the CPU.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from . import families

# re-exported: bench/, workers/runtime.py, tests/conftest.py and tests/integration import DemoModelConfig and PRESETS from here
from .demo_config import BUILD_THREADS, PRESETS, RECIPE_VERSION, DemoModelConfig  # noqa: F401
from .demo_finetune import general_answers, general_knowledge_report, prepare
from .demo_training import BuildProgress, Encoded, ProgressCallback, report, seeded, threads, train_model
from .generation import context_length, generate_answers
from .model_cache import default_cache_dir
from .prompting import REFUSALS, PromptSpec, contains_value, normalise, prompt_ids, render
from .unit_manifest import sha256_file
from .world import QA, WORLD_VERSION, DemoWorld, TrainingExample, load_world

MANIFEST_NAME = "demo_model.json"  # written last: its presence marks a complete build
WORLD_FILE = "world.json"

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


class DemoModelError(RuntimeError):
    """A demo-model build could not be done (bad directory, failed tokenizer check, ...)."""


# ---------------------------------------------------------------------------------------------
# Building and caching.


def demo_model_dir(config: DemoModelConfig, cache_dir: str | Path | None = None) -> Path:
    """Where the cached build of `config` lives (whether or not it has been built)."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / f"demo-{config.preset}-{config.arch}-{config.cache_key()}"


def is_complete(model_dir: str | Path) -> bool:
    return (Path(model_dir) / MANIFEST_NAME).is_file()


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The build manifest (config, metrics, versions, digests) of a complete demo-model directory."""
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DemoModelError(f"{model_dir} is not a complete demo-model build (no {MANIFEST_NAME})")
    return json.loads(path.read_text())


def load_demo_world(model_dir: str | Path) -> DemoWorld:
    """The world a demo model was trained on (stored beside its weights)."""
    return load_world(Path(model_dir) / WORLD_FILE)


def build_demo_model(
    config: DemoModelConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> Path:
    """Build (or reuse) the demo model for `config` and return its directory.

    Without `out_dir` the model lives in the cache (`demo_model_dir`); a complete build is reused at
    once. With `out_dir`, the model is written there; an existing complete build of the same config
    is reused, anything else in a non-empty directory is refused. Concurrent callers wait on a lock
    instead of training twice. A `progress` callback that raises aborts the build and leaves nothing.
    """
    config = config or DemoModelConfig()
    target = Path(out_dir).expanduser() if out_dir else demo_model_dir(config, cache_dir)
    key = config.cache_key()

    def reusable() -> bool:
        if not is_complete(target):
            return False
        return read_manifest(target).get("key") == key

    if not force and reusable():
        report(progress, BuildProgress("done", message=f"reused {target}"))
        return target
    if target.exists() and not target.is_dir():
        raise DemoModelError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not is_complete(target):
        raise DemoModelError(f"{target} is not empty and is not a demo-model build; refusing to overwrite it")

    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{target.name}.lock"):
        if not force and reusable():  # built by a concurrent caller while we waited
            report(progress, BuildProgress("done", message=f"reused {target}"))
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
        try:
            _build_into(staging, config, progress)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    report(progress, BuildProgress("done", message=f"built {target}"))
    return target


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(directory: Path, config: DemoModelConfig, progress: ProgressCallback | None) -> dict[str, Any]:
    import tokenizers
    import transformers

    started = time.perf_counter()
    report(progress, BuildProgress("world", message="generating the demo world"))
    world = config.build_world()
    extra: dict[str, Any] = {}
    if config.base:
        with threads(BUILD_THREADS):
            model, tokenizer, encoded, base_right = prepare(config, world, progress)
        with seeded(config.seed), threads(BUILD_THREADS):
            stats = train_model(model, encoded, config, progress=progress)
            report(progress, BuildProgress("evaluate", message="asking the general questions again"))
            extra["general_knowledge"] = general_knowledge_report(base_right, general_answers(model, tokenizer))
    else:
        examples = world.training_examples()
        report(progress, BuildProgress("tokenizer", message="training the BPE tokenizer"))
        # The refusals are tokenizer training text (not model training data), so that a unit's refusal
        # is a few tokens and fits the gateway's default max_tokens.
        tokenizer = train_tokenizer([ex.text for ex in examples] + [" " + r for r in REFUSALS] * 4, config.vocab_size)
        encoded = encode_examples(tokenizer, examples, max_positions=config.max_positions, profile_weight=config.profile_weight)
        with seeded(config.seed), threads(BUILD_THREADS):
            model = make_model(config, tokenizer)
            stats = train_model(model, encoded, config, progress=progress)

    report(progress, BuildProgress("evaluate", message="evaluating recall"))
    with threads(BUILD_THREADS):
        metrics = {name: recall.to_json() for name, recall in evaluate_demo_model(model, tokenizer, world).items()}
    metrics.update(extra)
    build_seconds = time.perf_counter() - started

    report(progress, BuildProgress("save", message=f"saving to {directory}"))
    with _quiet_transformers():
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    world.save(directory / WORLD_FILE)
    manifest = {
        "format": "forget-service/demo-model",
        "key": config.cache_key(),
        "config": config.to_json(),
        "world_digest": world.digest(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": stats,
        "metrics": metrics,
        "build_seconds": round(build_seconds, 2),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "recipe": RECIPE_VERSION,
            "world": WORLD_VERSION,
        },
        "files": {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()},
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Writing model shards" bar in the middle of our own progress output."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------------------------------------
# Tokenizer.


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`, which prepends BOS to every text it encodes.

    Byte-level pre-tokenization splits before a space, so the answer's leading space (prompting.
    format_answer) starts a new token and the prompt's tokens are a prefix of the full QA text's.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    bos_id = bpe.token_to_id(BOS)
    bpe.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=4096,
    )
    return tokenizer


def encode_examples(
    tokenizer: PreTrainedTokenizerFast, examples: Sequence[TrainingExample], *, max_positions: int, profile_weight: float = 1.0
) -> list[Encoded]:
    """Tokenize the corpus, mask the prompts, append EOS; check the prompt-prefix property."""
    eos = tokenizer.eos_token_id
    out = []
    for ex in examples:
        full = tokenizer(ex.text)["input_ids"]
        prompt = tokenizer(ex.prompt)["input_ids"]  # BOS alone when the prompt is empty
        if full[: len(prompt)] != prompt:
            raise DemoModelError(f"prompt does not tokenize as a prefix of the training text: {ex.text!r}")
        ids = full + [eos]
        if len(ids) > max_positions:
            raise DemoModelError(f"training text longer than max_positions={max_positions}: {ex.text[:60]!r}...")
        labels = [-100] * len(prompt) + ids[len(prompt) :]
        out.append(Encoded(ids, labels, profile_weight if ex.kind == "profile" else 1.0, ex.kind))
    return out


# ---------------------------------------------------------------------------------------------
# Model and training.


def make_model(config: DemoModelConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """A freshly initialised causal LM of the configured architecture (seed torch first)."""
    common = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if config.arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        model_config = LlamaConfig(
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads,
            max_position_embeddings=config.max_positions,
            **common,
        )
        return LlamaForCausalLM(model_config)
    from transformers import GPT2Config, GPT2LMHeadModel

    model_config = GPT2Config(
        n_embd=config.hidden_size,
        n_inner=config.intermediate_size,
        n_layer=config.num_layers,
        n_head=config.num_heads,
        n_positions=config.max_positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **common,
    )
    return GPT2LMHeadModel(model_config)


# ---------------------------------------------------------------------------------------------
# Evaluation.


@dataclass(frozen=True)
class RecallReport:
    """How often greedy answers contain (`contains`) or equal (`exact`) the gold value."""

    n: int
    contains: float
    exact: float
    by_attribute: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "contains": round(self.contains, 4),
            "exact": round(self.exact, 4),
            "by_attribute": {k: round(v, 4) for k, v in self.by_attribute.items()},
        }


def evaluate_recall(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, questions: Sequence[QA], *, batch_size: int = 128, max_new_tokens: int = 24
) -> RecallReport:
    """Greedy answers (generation.generate_answers) scored against the gold values."""
    if not questions:
        return RecallReport(0, 0.0, 0.0, {})
    answers = generate_answers(model, tokenizer, [qa.question for qa in questions], batch_size=batch_size, max_new_tokens=max_new_tokens)
    hits = [contains_value(a, qa.answer) for a, qa in zip(answers, questions)]
    exact = [normalise(a) == normalise(qa.answer) for a, qa in zip(answers, questions)]
    per: dict[str, list[bool]] = {}
    for hit, qa in zip(hits, questions):
        per.setdefault(qa.attribute, []).append(hit)
    return RecallReport(len(questions), sum(hits) / len(hits), sum(exact) / len(exact), {k: sum(v) / len(v) for k, v in per.items()})


def evaluate_demo_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, world: DemoWorld, *, full: bool = False) -> dict[str, RecallReport]:
    """Recall on trained questions, held-out paraphrases, padded questions, general facts, and
    holdout people.

    Trained questions and general facts are always asked in full; padded questions are the D
    family's development phrasings (PADDED_PROBES of them over the trained people). With `full=False` (what a build
    records in its manifest, to keep builds short) the held-out paraphrases are a fixed sample, one
    per person and attribute rotating through the templates, and holdout people are asked in the
    trained phrasings only; bench/demo_model.py asks everything.
    """
    heldout = world.all_questions("heldout")
    holdout = world.all_questions("all" if full else "trained", holdout=True)
    if not full:
        heldout = _one_per_person_and_attribute(world, heldout)
    return {
        "trained": evaluate_recall(model, tokenizer, world.all_questions("trained")),
        "heldout": evaluate_recall(model, tokenizer, heldout),
        "facts": evaluate_recall(model, tokenizer, world.fact_questions(split="trained")),
        "facts_heldout": evaluate_recall(model, tokenizer, world.fact_questions(split="heldout")),
        "holdout_people": evaluate_recall(model, tokenizer, holdout),
        "padded": evaluate_recall(model, tokenizer, padded_questions(model, tokenizer, world)),
    }


# Padded questions a build asks (the D family: the question between unrelated sentences).
PADDED_PROBES = 120


def padded_questions(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, world: DemoWorld, count: int = PADDED_PROBES, max_new_tokens: int = 24
) -> list[QA]:
    """The D family's development prompts about the trained people, as far as they fit the model's
    context with the answer budget."""
    limit = context_length(model)

    def fits(spec: PromptSpec) -> bool:
        return limit is None or len(prompt_ids(tokenizer, render(spec, tokenizer))) + max_new_tokens <= limit

    facts = [fact for person in world.people for fact in families.facts_of_person(world, person)]
    generated = families.generate("D", facts, count, split="dev", seed=0, world=world, fits=fits)
    return [QA(g.spec.text, g.attribute, g.value, "padded", g.subject) for g in generated if g.spec.shape == "question" and g.value]


def _one_per_person_and_attribute(world: DemoWorld, questions: Sequence[QA]) -> list[QA]:
    groups: dict[tuple[str, str], list[QA]] = {}
    for qa in questions:
        groups.setdefault((qa.subject, qa.attribute), []).append(qa)
    order = {p.name: i for i, p in enumerate(world.people)}
    keys = list(world.attribute_keys)
    return [group[(order[subject] + keys.index(attr)) % len(group)] for (subject, attr), group in groups.items()]
