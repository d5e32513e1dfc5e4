"""Consolidation: two units' adapters become one exact adapter; each member keeps its own detector.
Blocks (the default) serve member by member and answer what the members answered apart; a summed
group is served where any member fires. Either is certified like a unit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workers.engine.artifacts import UnitIntegrityError, load_unit
from workers.engine.certificate import evaluate_units, probe_fits
from workers.engine.consolidation import ConsolidationError, consolidate_adapters, write_group
from workers.engine.probes import build_probes
from workers.engine.prompting import REFUSALS
from workers.engine.serving import UnitConflictError, load_gated
from workers.engine.training import AdapterWeights, LoraModule


def delta(adapter: AdapterWeights, name: str) -> torch.Tensor:
    m = adapter.modules[name]
    return m.scaling * m.B.double() @ m.A.double()


@pytest.fixture(scope="module")
def members(first_unit, second_unit):
    return [load_unit(first_unit), load_unit(second_unit)]


@pytest.fixture(scope="module")
def group_dir(first_unit, second_unit):
    # Beside its members, where load_units finds them by default.
    write_group(first_unit.parent / "group-1", [first_unit, second_unit])
    return first_unit.parent / "group-1"


@pytest.fixture(scope="module")
def sum_dir(first_unit, second_unit):
    write_group(first_unit.parent / "group-sum", [first_unit, second_unit], construction="sum")
    return first_unit.parent / "group-sum"


@pytest.fixture(scope="module")
def prompts_about(tiny_world, people):
    """Both people's trained questions (gold answers) and a few about other people."""
    asked = [qa for person in people for qa in tiny_world.questions(person)]
    others = [qa.question for person in tiny_world.people[5:8] if person not in people for qa in tiny_world.questions(person)][:12]
    return {qa.question: qa.answer for qa in asked}, others


@pytest.mark.parametrize("construction", ["blocks", "sum"])
def test_the_group_delta_is_the_members_sum_on_every_module(members, construction):
    consolidated = consolidate_adapters([m.adapter for m in members], construction=construction)
    group = consolidated.adapter
    assert set(group.modules) == set(members[0].adapter.modules) | set(members[1].adapter.modules)
    for name in group.modules:
        expected = sum(delta(m.adapter, name) for m in members if name in m.adapter.modules)
        got = delta(group, name)
        assert torch.linalg.matrix_norm(got - expected) <= 1e-5 * torch.linalg.matrix_norm(expected)
    assert consolidated.record["max_relative_error"] < 1e-5
    ranks = [m.adapter.modules[next(iter(m.adapter.modules))].rank for m in members]
    assert consolidated.record["rank"] <= sum(ranks)


def test_the_rank_is_the_deltas_numerical_rank_and_capped_by_the_width():
    """Ranks that add up past a layer's width compress, exactly; a repeated adapter adds no rank."""
    gen = torch.Generator().manual_seed(0)
    d_in, d_out, r = 12, 10, 4

    def random_adapter():
        module = LoraModule(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen), 0.5)
        from peft import LoraConfig

        return AdapterWeights({"layer": module}, LoraConfig(r=r, lora_alpha=2, target_modules=["layer"]))

    many = [random_adapter() for _ in range(5)]  # 20 ranks in a 10-wide output
    consolidated = consolidate_adapters(many, construction="sum")
    assert consolidated.record["rank"] == d_out and consolidated.record["ranks_summed"] == 5 * r
    expected = sum(delta(a, "layer") for a in many)
    assert torch.allclose(delta(consolidated.adapter, "layer"), expected, rtol=0, atol=1e-4 * expected.abs().max())
    assert consolidated.record["parameters"]["group"] < consolidated.record["parameters"]["members"]
    twice = consolidate_adapters([many[0], many[0]], construction="sum")
    assert twice.record["rank"] == r  # the same directions twice: one rank-r delta, doubled
    assert torch.allclose(delta(twice.adapter, "layer"), 2 * delta(many[0], "layer"), atol=1e-4)


def test_bad_input_is_refused(members, first_unit, tmp_path):
    with pytest.raises(ConsolidationError, match="no adapters"):
        consolidate_adapters([])
    with pytest.raises(ConsolidationError, match="construction must be"):
        consolidate_adapters([members[0].adapter], construction="average")
    other = AdapterWeights(members[0].adapter.modules, members[0].adapter.peft_config, "another-base")
    with pytest.raises(ConsolidationError, match="different base models"):
        consolidate_adapters([members[0].adapter, other])
    with pytest.raises(ConsolidationError, match="given twice"):
        write_group(tmp_path / "g", [first_unit, first_unit])
    assert not (tmp_path / "g").exists()


def test_the_group_manifest_names_its_members_by_digest(group_dir, members):
    manifest = json.loads((group_dir / "manifest.json").read_text())
    record = manifest["extra"]["group"]
    assert [m["unit_id"] for m in record["members"]] == [m.manifest.unit_id for m in members]
    assert [m["manifest_sha256"] for m in record["members"]] == [m.manifest.digest for m in members]
    assert record["construction"] == "blocks" and not (group_dir / "detector").exists()
    assert record["blocks"] == [{"unit_id": m.manifest.unit_id, "rank": m.adapter.peft_config.r} for m in members]
    assert manifest["extra"]["subjects"] == sorted({s for m in members for s in m.manifest.extra["subjects"]})


def test_blocks_serve_member_by_member_exactly_what_the_members_served_apart(base, encoder, first_unit, second_unit, group_dir, prompts_about):
    gold, others = prompts_about
    prompts = [*gold, *others]
    with load_gated(base, [first_unit, second_unit], encoder) as apart, load_gated(base, [group_dir], encoder) as together:
        assert together.unit_ids == apart.unit_ids == ("req-1", "req-2")  # one column per member
        weights = apart.resolve_weights(prompts)
        np.testing.assert_array_equal(together.resolve_weights(prompts).matrix, weights.matrix)
        assert weights.matrix[: len(gold)].max(axis=1).min() == 1  # every forget question fires its member
        answers = [a.text for a in together.generate(prompts, max_new_tokens=32)]
        assert answers == [a.text for a in apart.generate(prompts, max_new_tokens=32)]
        # All on: both members' rows at weight 1, as both units forced on.
        assert [a.text for a in together.generate(prompts[:4], force="on")] == [a.text for a in apart.generate(prompts[:4], force="on")]
    for prompt, answer in zip(gold, answers):
        assert answer.strip() in REFUSALS, (prompt, answer)


def test_a_summed_group_applies_where_any_member_fires_and_reveals_nothing(base, encoder, first_unit, second_unit, sum_dir, prompts_about):
    gold, others = prompts_about
    prompts = [*gold, *others]
    with load_gated(base, [first_unit, second_unit], encoder) as apart, load_gated(base, [sum_dir], encoder) as together:
        assert together.unit_ids == ("group-sum",)
        members_gate = apart.weight_fn.gate(prompts, apart.unit_ids)
        group_gate = together.weight_fn.gate(prompts, together.unit_ids)
        # The group's column is its members' largest: the same detectors, the same decisions.
        np.testing.assert_array_equal(group_gate.weights[:, 0], members_gate.weights.max(axis=1))
        np.testing.assert_array_equal(group_gate.scores[:, 0], members_gate.scores.max(axis=1))
        answers = together.generate(prompts, max_new_tokens=32)
        base_answers = apart.generate(prompts, force="off", max_new_tokens=32)
    for prompt, answer, plain, fired in zip(prompts, answers, base_answers, group_gate.weights[:, 0] > 0):
        if prompt in gold:
            assert fired and gold[prompt] in plain.text and gold[prompt] not in answer.text, (prompt, answer.text)
            # Not asserted: a refusal's wording. Where one member fires the other's delta applies
            # too, and the summed push garbles most refusals, how much depends on the build
            # ("share inshareetabbut thout that person." on one): consolidation.py,
            # bench/consolidation.py. What is asserted is what matters: no data.
        elif not fired:
            assert answer.text == plain.text  # nothing fired: the base model's answer, exactly


def test_removing_a_member_rebuilds_the_group_exactly_and_says_so(base, encoder, first_unit, second_unit, group_dir, prompts_about):
    """Deactivating req-1: the group rebuilt from req-2 alone answers what req-2 alone answers, and
    its manifest names the group it replaces and the member it dropped."""
    gold, others = prompts_about
    prompts = [*gold, *others]
    rebuilt = write_group(group_dir.parent / "group-2", [second_unit], replaces=group_dir)
    record = rebuilt.manifest.extra["group"]["replaces"]
    assert record["unit_id"] == "group-1" and record["removed"] == ["req-1"] and record["added"] == []
    assert record["manifest_sha256"] == load_unit(group_dir).manifest.digest
    with load_gated(base, [second_unit], encoder) as alone, load_gated(base, [group_dir.parent / "group-2"], encoder) as group:
        assert [a.text for a in group.generate(prompts, max_new_tokens=32)] == [a.text for a in alone.generate(prompts, max_new_tokens=32)]
    with pytest.raises(ConsolidationError, match="not a group"):
        write_group(group_dir.parent / "group-3", [second_unit], replaces=first_unit)
    assert not (group_dir.parent / "group-3").exists()


def test_a_tampered_or_missing_member_is_refused(base, encoder, group_dir, second_unit, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(group_dir.parent, copy)
    with pytest.raises(UnitConflictError, match="given twice"):
        load_gated(base, [copy / "req-2", copy / "group-1"], encoder)
    (copy / "req-1" / "manifest.json").write_text((copy / "req-1" / "manifest.json").read_text().replace('"unit_id"', '"unit_id" ', 1))
    with pytest.raises(UnitIntegrityError):
        load_gated(base, [copy / "group-1"], encoder)
    shutil.rmtree(copy / "req-1")
    with pytest.raises(UnitIntegrityError, match="not found"):
        load_gated(base, [copy / "group-1"], encoder)


@pytest.mark.parametrize("which", ["blocks", "sum"])
def test_the_group_is_certified_like_a_unit(base, encoder, tiny_world, people, group_dir, sum_dir, which):
    directory = group_dir if which == "blocks" else sum_dir
    probes = build_probes(tiny_world, [p.name for p in people], unit_id=directory.name, fits=probe_fits(base))
    certificate = evaluate_units(base, [directory], probes, encoder=encoder, bootstrap_rounds=50)
    assert certificate.unit_ids == [directory.name]
    record = certificate.units[0]["group"]
    assert record["construction"] == which and [m["unit_id"] for m in record["members"]] == ["req-1", "req-2"]
    assert all(m["detector_sha256"] for m in record["members"])
    assert set(certificate.gate["per_unit"]) == {directory.name}  # the group is the certified unit
    f = certificate.leak["F"]["gated"]
    assert f["n"] == 16 and f["k"] == 0  # both people's trained questions: no leak
    assert certificate.verdict == "pass", [r for r in certificate.rules if r["status"] != "pass"]


def test_the_command_line_writes_a_group_and_refuses_bad_input(capsys, first_unit, second_unit, tmp_path):
    import shutil

    from .test_cli import assert_one_line_error, run

    units = tmp_path / "units"
    for unit in (first_unit, second_unit):
        shutil.copytree(unit, units / unit.name)
    out = units / "group-cli"
    code, printed, err = run(capsys, "consolidate", "--units", str(units / "req-1"), str(units / "req-2"), "--out", str(out))
    assert code == 0 and printed.strip() == str(out), err
    assert "2 members" in err and "blocks" in err and "largest relative error" in err
    assert json.loads((out / "manifest.json").read_text())["unit_id"] == "group-cli"
    cases = [
        (("--units", str(units / "req-1"), "--out", str(out)), ["already exists"]),
        (("--units", str(tmp_path / "absent"), "--out", str(units / "g2")), ["--units", "not found"]),
        (("--units", str(units / "req-1"), str(units / "req-1"), "--out", str(units / "g3")), ["given twice"]),
        (("--units", str(out), "--out", str(units / "g4")), ["is a group"]),
    ]
    for argv, needles in cases:
        assert_one_line_error(*run(capsys, "consolidate", *argv)[::2], *needles)
    (units / "req-2" / "adapter" / "adapter_config.json").write_text("{}")
    assert_one_line_error(*run(capsys, "consolidate", "--units", str(units / "req-2"), "--out", str(units / "g5"))[::2], "adapter/adapter_config.json")
    assert not any((units / name).exists() for name in ("g2", "g3", "g4", "g5"))
