import json
import os

import pytest
import torch
from peft import PeftModel

from workers.engine import artifacts
from workers.engine.artifacts import (
    FORMAT_VERSION,
    UnitCompatibilityError,
    UnitIntegrityError,
    hash_forget_set,
    load_unit,
    load_unit_adapter,
    verify_unit,
    write_unit,
)
from workers.engine.config import UnlearnConfig
from workers.engine.training import AdapterWeights

from .tiny_models import FORGET


def save_detector(directory):
    (directory / "scorer.npz").write_bytes(b"feature statistics")
    (directory / "calibration").mkdir()
    (directory / "calibration" / "quantiles.json").write_text("[0.1, 0.5, 0.9]")


@pytest.fixture
def unit(tmp_path, llama_adapter):
    directory = tmp_path / "units" / "req-42"
    manifest = write_unit(
        directory,
        llama_adapter,
        config=UnlearnConfig(),
        detector_saver=save_detector,
        detector_config={"backbone": "all-MiniLM-L6-v2"},
        forget_set_hash=hash_forget_set(FORGET),
        manifest_extra={"request_id": 42},
    )
    return directory, manifest


def test_unit_layout_and_manifest(unit, llama_adapter):
    directory, manifest = unit
    assert sorted(os.listdir(directory.parent)) == ["req-42"]  # no staging directory left behind
    on_disk = json.loads((directory / "manifest.json").read_text())
    assert on_disk["format_version"] == FORMAT_VERSION and on_disk["unit_id"] == "req-42"
    assert on_disk["base_fingerprint"] == llama_adapter.base_fingerprint
    assert on_disk["forget_set_hash"] == hash_forget_set(FORGET) != hash_forget_set(FORGET[:1])
    assert on_disk["config"]["unlearn"] == UnlearnConfig().to_dict()
    assert on_disk["config"]["detector"] == {"backbone": "all-MiniLM-L6-v2"}
    assert {"python", "torch", "transformers", "peft"} <= set(on_disk["library_versions"])
    assert on_disk["extra"] == {"request_id": 42} and on_disk["created_at"].endswith("+00:00")
    assert sorted(on_disk["files"]) == [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "detector/calibration/quantiles.json",
        "detector/scorer.npz",
    ]
    verified = verify_unit(directory, expected_manifest_digest=manifest.digest)
    assert verified == manifest


def test_round_trip_and_peft_loads_the_adapter(unit, llama_adapter, llama):
    directory, manifest = unit
    loaded = load_unit_adapter(directory, expected_base_fingerprint=llama.fingerprint)
    assert all(torch.equal(loaded.modules[n].B, m.B) for n, m in llama_adapter.modules.items())
    whole = load_unit(directory, llama.fingerprint, manifest.digest, detector_loader=lambda p: (p / "scorer.npz").read_bytes())
    assert whole.manifest == manifest and whole.detector == b"feature statistics"
    peft_model = PeftModel.from_pretrained(llama.model, directory / "adapter")
    try:
        lora_B = peft_model.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight
        torch.testing.assert_close(lora_B, llama_adapter.modules["model.layers.0.self_attn.q_proj"].B)
    finally:
        peft_model.unload()


@pytest.mark.parametrize("path", ["adapter/adapter_model.safetensors", "adapter/adapter_config.json", "detector/scorer.npz"])
def test_tampered_file_is_named(unit, path):
    directory, _ = unit
    data = bytearray((directory / path).read_bytes())
    data[len(data) // 2] ^= 1
    (directory / path).write_bytes(bytes(data))
    with pytest.raises(UnitIntegrityError, match=path):
        load_unit_adapter(directory)


def test_digests_are_checked_before_anything_is_parsed(unit, monkeypatch):
    directory, _ = unit
    (directory / "adapter" / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    parsed = []
    monkeypatch.setattr(AdapterWeights, "from_bytes", classmethod(lambda cls, *a: parsed.append(a)))
    with pytest.raises(UnitIntegrityError, match="adapter/adapter_model.safetensors"):
        load_unit_adapter(directory)
    assert parsed == []


def test_unlisted_and_missing_files_are_refused(unit):
    directory, _ = unit
    (directory / "detector" / "backdoor.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(UnitIntegrityError, match="detector/backdoor.pkl"):
        verify_unit(directory)
    (directory / "detector" / "backdoor.pkl").unlink()
    (directory / "detector" / "scorer.npz").unlink()
    with pytest.raises(UnitIntegrityError, match="detector/scorer.npz is missing"):
        verify_unit(directory)


def test_symlinks_and_manifest_swaps_are_refused(unit, tmp_path):
    directory, manifest = unit
    (tmp_path / "elsewhere").write_text("x")
    (directory / "detector" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnitIntegrityError, match="link"):
        verify_unit(directory)
    (directory / "detector" / "link").unlink()
    # A manifest rewritten to match tampered files no longer matches the digest the registry keeps.
    edited = json.loads((directory / "manifest.json").read_text())
    edited["unit_id"] = "someone-else"
    (directory / "manifest.json").write_text(json.dumps(edited))
    verify_unit(directory)
    with pytest.raises(UnitIntegrityError, match="registered digest"):
        verify_unit(directory, expected_manifest_digest=manifest.digest)


def test_unit_for_another_base_model_is_refused(unit):
    directory, _ = unit
    with pytest.raises(UnitCompatibilityError, match="trained against base model"):
        load_unit_adapter(directory, expected_base_fingerprint="0" * 64)


def test_units_are_immutable_and_failed_writes_leave_nothing(unit, llama_adapter, tmp_path):
    directory, _ = unit
    with pytest.raises(FileExistsError):
        write_unit(directory, llama_adapter)

    def broken_saver(path):
        (path / "half.bin").write_bytes(b"x")
        raise RuntimeError("detector crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_unit(tmp_path / "units" / "req-43", llama_adapter, detector_saver=broken_saver)
    assert sorted(os.listdir(tmp_path / "units")) == ["req-42"]


def test_unknown_format_version_is_refused(unit):
    directory, _ = unit
    data = json.loads((directory / "manifest.json").read_text())
    data["format_version"] = artifacts.FORMAT_VERSION + 1
    (directory / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UnitCompatibilityError, match="format"):
        verify_unit(directory)
