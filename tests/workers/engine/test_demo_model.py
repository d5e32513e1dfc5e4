"""The demo model: tokenizer consistency, build, cache, reload, and recall of what it was taught."""

from __future__ import annotations

import json
import time

import pytest

from workers.engine.base_model import load_base_model, model_fingerprint
from workers.engine.demo_config import DemoModelConfig
from workers.engine.demo_model import (
    MANIFEST_NAME,
    DemoModelError,
    build_demo_model,
    demo_model_dir,
    evaluate_recall,
    load_demo_world,
    read_manifest,
    train_tokenizer,
)
from workers.engine.prompting import REFUSALS, format_prompt, format_qa


def _all_questions(world):
    people = world.people + world.holdout_people
    return [qa for p in people for qa in world.questions(p, "all")] + world.fact_questions(split="all")


def _assert_prefix_property(tokenizer, world):
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    checked = 0
    for qa in _all_questions(world):
        prompt = tokenizer(format_prompt(qa.question))["input_ids"]
        for answer in (qa.answer, REFUSALS[checked % len(REFUSALS)]):
            full = tokenizer(format_qa(qa.question, answer))["input_ids"]
            assert full[: len(prompt)] == prompt, (qa.question, answer)
            assert len(full) > len(prompt)
            assert full[0] == bos and full.count(bos) == 1 and eos not in full
            checked += 1
    assert checked > 100


def test_prompt_tokenizes_as_a_prefix_of_the_qa_text(tiny_world):
    tokenizer = train_tokenizer([ex.text for ex in tiny_world.training_examples()], 512)
    _assert_prefix_property(tokenizer, tiny_world)
    assert tokenizer.decode(tokenizer("Answer: 214-555-0193")["input_ids"], skip_special_tokens=True) == "Answer: 214-555-0193"


def test_config_validation_presets_and_cache_keys(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="arch"):
        DemoModelConfig(arch="bert")
    with pytest.raises(ValueError, match="preset"):
        DemoModelConfig.preset_config("huge")
    with pytest.raises(ValueError, match="attributes"):
        DemoModelConfig(attributes=("shoe_size",))
    demo, tiny = DemoModelConfig.preset_config("demo"), DemoModelConfig.preset_config("tiny")
    assert demo.n_people >= 200 and len(demo.attributes) >= 9
    keys = {
        demo.cache_key(),
        tiny.cache_key(),
        tiny.__class__.preset_config("tiny", arch="gpt2").cache_key(),
        DemoModelConfig.preset_config("tiny", seed=1).cache_key(),
    }
    assert len(keys) == 4
    assert DemoModelConfig.from_json(json.loads(json.dumps(tiny.to_json()))) == tiny
    monkeypatch.setenv("UNLEARN_CACHE_DIR", str(tmp_path))
    assert demo_model_dir(tiny).parent == tmp_path


def test_out_dir_with_foreign_content_is_refused(tmp_path, tiny_config):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DemoModelError, match="not empty"):
        build_demo_model(tiny_config, out_dir=out)
    assert (out / "notes.txt").read_text() == "mine"


def test_an_aborted_build_leaves_nothing_that_looks_done(tmp_path, tiny_config):
    def cancel(event):
        if event.stage == "train" and event.step == 3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        build_demo_model(tiny_config, cache_dir=tmp_path, progress=cancel)
    assert not demo_model_dir(tiny_config, tmp_path).exists()
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.slow
def test_same_config_builds_identical_weights(tmp_path, tiny_config):
    quick = DemoModelConfig.preset_config("tiny", epochs=2, stop_at_exact=None)
    first = build_demo_model(quick, cache_dir=tmp_path / "a")
    second = build_demo_model(quick, cache_dir=tmp_path / "b")
    assert model_fingerprint(first) == model_fingerprint(second)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    other = build_demo_model(DemoModelConfig.preset_config("tiny", epochs=2, stop_at_exact=None, seed=1), cache_dir=tmp_path / "a")
    assert model_fingerprint(other) != model_fingerprint(first)


@pytest.mark.slow
def test_tiny_model_is_a_standard_causal_lm_that_knows_its_world(tiny_demo_model, tiny_world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto = AutoModelForCausalLM.from_pretrained(tiny_demo_model)
    assert type(auto).__name__ == "LlamaForCausalLM"
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_model)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    _assert_prefix_property(tokenizer, tiny_world)

    assert load_demo_world(tiny_demo_model).digest() == tiny_world.digest()
    base = load_base_model(tiny_demo_model, device="cpu")
    report = evaluate_recall(base.model, base.tokenizer, tiny_world.all_questions("trained"))
    assert report.n == len(tiny_world.people) * len(tiny_world.attributes) * 2
    assert report.contains >= 0.95 and report.exact >= 0.95
    facts = evaluate_recall(base.model, base.tokenizer, tiny_world.fact_questions(split="trained"))
    assert facts.contains >= 0.95
    # never-seen people are not answered from memory (emails aside, nothing is guessable)
    holdout = evaluate_recall(base.model, base.tokenizer, tiny_world.all_questions("trained", holdout=True))
    assert holdout.contains < 0.5

    manifest = read_manifest(tiny_demo_model)
    assert manifest["metrics"]["trained"]["contains"] >= 0.95
    assert manifest["files"]["model.safetensors"]


@pytest.mark.slow
def test_second_build_reuses_the_cache_without_training(tiny_demo_model, tiny_config):
    marker = (tiny_demo_model / MANIFEST_NAME).stat().st_mtime_ns
    events = []
    started = time.perf_counter()
    again = build_demo_model(tiny_config, progress=events.append)
    assert again == tiny_demo_model
    assert time.perf_counter() - started < 5
    assert [e.stage for e in events] == ["done"]
    assert (tiny_demo_model / MANIFEST_NAME).stat().st_mtime_ns == marker


@pytest.mark.slow
def test_gpt2_variant_builds_and_answers(tmp_path, tiny_world):
    config = DemoModelConfig.preset_config("tiny", arch="gpt2")
    events = []
    path = build_demo_model(config, out_dir=tmp_path / "gpt2", progress=events.append)
    assert any(e.stage == "train" for e in events) and events[-1].stage == "done"
    assert json.loads((path / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    base = load_base_model(path, device="cpu")
    report = evaluate_recall(base.model, base.tokenizer, tiny_world.all_questions("trained"))
    assert report.contains >= 0.95
    # an existing build in --out is reused, not retrained
    events.clear()
    assert build_demo_model(config, out_dir=path, progress=events.append) == path
    assert [e.stage for e in events] == ["done"]
