"""Reproducible means bit-identical: a demo-model build for a seed, whatever torch thread count the
caller runs with, and a unit trained twice from the same inputs and seed."""

from __future__ import annotations

import json

import pytest
import torch

from workers.engine.demo_config import BUILD_THREADS, DemoModelConfig, cpu_capability
from workers.engine.demo_model import build_demo_model
from workers.engine.unit_manifest import canonical_safetensors, list_files, sha256_file


def _digests(directory, skip=()):
    return {path: sha256_file(directory / path) for path in list_files(directory) if path not in skip}


@pytest.mark.slow
def test_a_demo_model_build_is_bit_identical_for_a_seed_whatever_the_callers_threads(tmp_path):
    config = DemoModelConfig.preset_config("tiny", epochs=6)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first = build_demo_model(config, out_dir=tmp_path / "one")
        torch.set_num_threads(3)
        second = build_demo_model(config, out_dir=tmp_path / "two")
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads  # the build restores the caller's setting
    manifest = json.loads((first / "demo_model.json").read_text())
    skip = {"demo_model.json"}  # it records the build's wall time
    assert _digests(first, skip) == _digests(second, skip) and "model.safetensors" in _digests(first)
    # The key a cached build is found by names what makes builds comparable.
    assert manifest["key"] == config.cache_key() and BUILD_THREADS == 2 and cpu_capability()
    assert config.cache_key() != DemoModelConfig.preset_config("tiny", epochs=6, seed=1).cache_key()


def test_safetensors_headers_are_written_canonically():
    import safetensors.torch

    tensors = {"b": torch.zeros(2), "a": torch.ones(3)}
    saves = {canonical_safetensors(safetensors.torch.save(tensors, metadata={"format": "pt", "z": "1", "base_fingerprint": "f"})) for _ in range(8)}
    assert len(saves) == 1  # the library's own header order varies from save to save
    (data,) = saves
    assert int.from_bytes(data[:8], "little") % 8 == 0 and safetensors.torch.load(data)["a"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_a_unit_trained_twice_from_the_same_inputs_is_byte_identical(base, encoder, tiny_world, tmp_path):
    from workers.engine.config import UnlearnConfig
    from workers.engine.forget_set import forget_set_for_people
    from workers.engine.pipeline import train_unit

    forget = forget_set_for_people(tiny_world, [tiny_world.people[5]])
    units = [
        train_unit(base, forget, out_dir=tmp_path / name, encoder=encoder, unit_id="req-x", unlearn_config=UnlearnConfig(epochs=2)) for name in ("one", "two")
    ]
    files = _digests(units[0], {"manifest.json"})
    assert files == _digests(units[1], {"manifest.json"}) and "adapter/adapter_model.safetensors" in files
    manifests = [json.loads((u / "manifest.json").read_text()) for u in units]
    for manifest in manifests:  # what may differ: when it was made and how long it took
        manifest.pop("created_at")
        manifest["extra"].pop("timings")
    assert manifests[0] == manifests[1]
