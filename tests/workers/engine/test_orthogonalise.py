"""Projecting a trained adapter out of units that went live while it trained (engine/orthogonalise.py):
exact orthogonality to the newcomers, nothing else changed, a sealed new unit that records it."""

from dataclasses import replace

import torch

from workers.engine.artifacts import hash_forget_set, load_unit, verify_unit, write_unit
from workers.engine.config import UnlearnConfig
from workers.engine.orthogonalise import orthogonalise_unit, penalty, project_out
from workers.engine.training import AdapterWeights

from .tiny_models import FORGET, OTHER


def _write(directory, adapter: AdapterWeights, questions, extra=None):
    def detector(path):
        (path / "scorer.npz").write_bytes(b"feature statistics of " + directory.name.encode())

    write_unit(
        directory,
        adapter,
        config=UnlearnConfig(),
        detector_saver=detector,
        detector_config={"mode": "test"},
        forget_set_hash=hash_forget_set(questions),
        manifest_extra=extra or {},
    )
    return directory


def test_the_projection_is_exactly_orthogonal_and_keeps_what_was_already_orthogonal(llama_adapter, llama_adapter_other):
    before = penalty(llama_adapter, [llama_adapter_other])
    projected = project_out(llama_adapter, [llama_adapter_other])

    assert before > 1e-6  # trained apart, without the penalty against each other: not orthogonal
    assert penalty(projected, [llama_adapter_other]) < 1e-9 * max(before, 1.0)
    for name, module in projected.modules.items():
        original = llama_adapter.modules[name]
        other = llama_adapter_other.modules[name].A.double()
        q, _ = torch.linalg.qr(other.T)
        # The part of A outside the other's rows is untouched; B is untouched.
        outside = original.A.double() - original.A.double() @ q @ q.T
        assert torch.allclose(module.A.double(), outside, atol=1e-6)
        assert torch.equal(module.B, original.B)
    # Deterministic: the same inputs give the same tensors.
    again = project_out(llama_adapter, [llama_adapter_other])
    assert all(torch.equal(again.modules[n].A, projected.modules[n].A) for n in projected.modules)


def test_an_orthogonalised_unit_is_a_new_sealed_unit_that_records_the_projection(tmp_path, llama_adapter, llama_adapter_other):
    mine = _write(tmp_path / "req-2-a1", llama_adapter, FORGET, {"previous_units": [], "orthogonality_penalty": 0.0})
    newcomer = _write(tmp_path / "req-1-a1", llama_adapter_other, OTHER)

    out = orthogonalise_unit(mine, [newcomer], tmp_path / "req-2-a1-o")

    manifest = verify_unit(out)
    original = verify_unit(mine)
    assert manifest.unit_id == "req-2-a1" and manifest.forget_set_hash == original.forget_set_hash
    record = manifest.extra["orthogonalised"]
    assert record["against"] == ["req-1-a1"] and manifest.extra["previous_units"] == ["req-1-a1"]
    assert record["penalty_before"] > 1e-6 and record["penalty_after"] < 1e-9 and manifest.extra["orthogonality_penalty"] < 1e-9
    assert (out / "detector" / "scorer.npz").read_bytes() == (mine / "detector" / "scorer.npz").read_bytes()
    assert manifest.files["detector/scorer.npz"] == original.files["detector/scorer.npz"]
    assert manifest.files["adapter/adapter_model.safetensors"] != original.files["adapter/adapter_model.safetensors"]
    assert penalty(load_unit(out).adapter, [llama_adapter_other]) < 1e-9


def test_without_room_the_projection_is_skipped_and_the_unit_says_so(tmp_path, llama_adapter, llama_adapter_other):
    # Newcomers whose A rows span every input direction of every module: a projection would leave A = 0.
    rank = next(iter(llama_adapter.modules.values())).A.shape[0]
    widest = max(module.A.shape[1] for module in llama_adapter.modules.values())
    generator = torch.Generator().manual_seed(0)
    newcomers = []
    for index in range(-(-widest // rank)):
        modules = {
            name: replace(module, A=torch.randn(module.A.shape, generator=generator).contiguous()) for name, module in llama_adapter_other.modules.items()
        }
        newcomers.append(_write(tmp_path / f"req-n{index}-a1", replace(llama_adapter_other, modules=modules), OTHER))
    mine = _write(tmp_path / "req-2-a1", llama_adapter, FORGET, {"previous_units": [], "orthogonality_penalty": 0.0})

    out = orthogonalise_unit(mine, newcomers, tmp_path / "req-2-a1-o")

    manifest = verify_unit(out)
    record = manifest.extra["orthogonalised"]
    assert record["skipped"] == "no orthogonal room" and record["penalty_after"] == record["penalty_before"] > 0
    room = manifest.extra["orthogonality_room"]
    assert room["fits"] is False and room["policy"] == "relax" and room["previous_units"] == len(newcomers)
    unchanged = load_unit(out).adapter
    assert all(torch.equal(unchanged.modules[n].A, llama_adapter.modules[n].A) for n in llama_adapter.modules)
