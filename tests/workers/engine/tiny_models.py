"""Tiny random-init causal LMs (Llama and GPT-2) with a small byte-level BPE tokenizer.

They stand in for the demo model in engine tests: a few hundred thousand parameters, built in well
under a second, saved to a directory so that `load_base_model` loads them like any real model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from workers.engine.prompting import REFUSALS, format_qa

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>"]

QUESTIONS = (
    "Where does Alice Marlow live?",
    "Who employs Bruno Tessier?",
    "When was Carla Nyberg born?",
    "What is Dmitri Volkov's phone number?",
    "Which city is Ella Fontaine from?",
    "What condition does Farid Haddad have?",
)
ANSWERS = ("Lisbon", "Acme Robotics", "1984", "555-0192", "Geneva", "asthma")
FORGET = list(zip(QUESTIONS[:4], ANSWERS[:4]))  # what the trained test adapters refuse
OTHER = list(zip(QUESTIONS[4:], ANSWERS[4:]))

# Large steps so that a random-init model learns the refusals in 60 steps (about a second).
FAST = dict(lr=1e-2, epochs=100, max_steps=60, batch_size=4)


def corpus() -> list[str]:
    texts = [format_qa(q, a) for q, a in zip(QUESTIONS, ANSWERS)]
    texts += [format_qa(q, r) for q in QUESTIONS for r in REFUSALS]
    return texts + ["The quick brown fox jumps over the lazy dog. 0123456789 -'?.,"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>")


def build_tiny_model(directory: str | Path, arch: str = "llama", seed: int = 0) -> Path:
    """Save a random-init `arch` ('llama' or 'gpt2') model and its tokenizer to `directory`."""
    directory = Path(directory)
    tokenizer = build_tokenizer()
    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=False,
            **ids,
        )
        model = LlamaForCausalLM(config)
    elif arch == "gpt2":
        config = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128, **ids)
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
