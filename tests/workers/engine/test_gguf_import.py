"""GGUF import (gguf_import.py): the packaged SmolLM2 becomes a loadable Hugging Face directory
with a manifest; bad input gets a one-line error; a second import of the same file is reused."""

from __future__ import annotations

import json

import pytest

from workers.engine.base_model import BaseModelError, load_base_model
from workers.engine.gguf_import import (
    IMPORT_MANIFEST,
    GGUFImportError,
    import_gguf,
    imported_dir,
    packaged_smollm2,
)
from workers.engine.unit_manifest import sha256_file


@pytest.fixture(scope="module")
def smollm2_import(tmp_path_factory):
    return import_gguf(packaged_smollm2(), tmp_path_factory.mktemp("gguf") / "smollm2")


@pytest.mark.slow
def test_the_packaged_smollm2_imports_into_a_chat_model(smollm2_import):
    manifest = json.loads((smollm2_import / IMPORT_MANIFEST).read_text())
    assert manifest["source"]["sha256"] == sha256_file(packaged_smollm2())
    assert manifest["architecture"] == "LlamaForCausalLM"
    assert 130e6 < manifest["parameters"] < 140e6
    assert manifest["chat_template"] is True
    assert manifest["versions"]["gguf"] != "unknown"
    assert "quantization_config" not in json.loads((smollm2_import / "config.json").read_text())  # plain float32 weights
    base = load_base_model(smollm2_import)
    text = base.tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>assistant" in text
    ids = base.tokenizer(text, return_tensors="pt").input_ids
    out = base.model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in base.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_importing_the_same_file_again_reuses_the_directory(smollm2_import):
    before = {p.name: p.stat().st_mtime_ns for p in smollm2_import.iterdir()}
    assert import_gguf(packaged_smollm2(), smollm2_import) == smollm2_import
    assert {p.name: p.stat().st_mtime_ns for p in smollm2_import.iterdir()} == before


@pytest.mark.slow
def test_a_directory_holding_a_gguf_is_imported_into_the_cache_on_first_use(tmp_path):
    holder = tmp_path / "holder"
    holder.mkdir()
    (holder / "model.gguf").symlink_to(packaged_smollm2())
    cache = tmp_path / "cache"
    first = imported_dir(holder, cache_dir=cache)
    assert first.parent == cache and (first / "config.json").is_file()
    assert imported_dir(holder, cache_dir=cache) == first
    assert imported_dir(first) == first  # a Hugging Face directory is used as it is


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(GGUFImportError, match="not a GGUF file"):
        import_gguf(fake, tmp_path / "out")
    with pytest.raises(GGUFImportError, match="not found"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_two_gguf_files_in_one_directory_are_ambiguous(tmp_path):
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(GGUFImportError, match="2 .gguf files"):
        imported_dir(tmp_path, cache_dir=tmp_path / "cache")


def test_an_output_directory_with_other_files_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GGUFImportError, match="not empty"):
        import_gguf(packaged_smollm2(), out)
    assert (out / "keep.txt").read_text() == "mine"


def test_loading_a_broken_gguf_is_a_base_model_error(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(BaseModelError, match="cannot load this GGUF|not a GGUF"):
        load_base_model(tmp_path)
