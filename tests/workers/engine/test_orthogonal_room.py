"""The orthogonality budget (engine/orthogonal_room.py): the directions earlier units use per layer,
whether a new unit fits, and what projecting out of newcomers does when it does not."""

import torch
from peft import LoraConfig

from workers.engine.orthogonal_room import measure, used_directions
from workers.engine.orthogonalise import penalty, project_out
from workers.engine.training import AdapterWeights, LoraModule

WIDTHS = {"narrow": 16, "wide": 64}


def adapter(seed: int, rank: int = 4, widths=WIDTHS) -> AdapterWeights:
    generator = torch.Generator().manual_seed(seed)
    modules = {
        name: LoraModule(A=torch.randn(rank, width, generator=generator), B=torch.randn(8, rank, generator=generator), scaling=2.0)
        for name, width in widths.items()
    }
    return AdapterWeights(modules, LoraConfig(r=rank, target_modules=list(widths)))


def test_used_directions_is_the_rank_of_the_stacked_rows():
    rows = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    assert used_directions(rows) == 3
    assert used_directions(torch.cat([rows, rows[:1] * 2 + rows[1:2]])) == 3  # a combination adds no direction
    assert used_directions(torch.zeros(4, 10)) == 0
    assert used_directions(torch.randn(40, 10)) == 10  # never more than the width


def test_room_runs_out_in_the_narrowest_layer_first():
    new = adapter(100)
    assert measure([], new).fits and measure([], new).units_left == 16 // 4 - 1

    three = [adapter(seed) for seed in range(3)]  # 12 of the narrow layer's 16 directions
    room = measure(three, new)
    assert room.fits and room.units_left == 0
    assert room.tightest.module == "narrow" and (room.tightest.used, room.tightest.free) == (12, 4)

    four = [adapter(seed) for seed in range(4)]  # 16 of 16: no room in "narrow", plenty in "wide"
    full = measure(four, new)
    report = full.as_dict()
    assert not full.fits
    assert report["policy"] == "relax" and report["modules_without_room"] == 1 and report["first_without_room"] == ["narrow"]
    assert report["tightest"] == {"module": "narrow", "width": 16, "used": 16, "free": 0}
    assert report["used_share"] == 1.0 and report["widths"] == WIDTHS


def test_the_same_units_give_the_same_report():
    units = [adapter(seed) for seed in range(3)]
    assert measure(units, adapter(7)).as_dict() == measure([adapter(seed) for seed in range(3)], adapter(7)).as_dict()


def test_projection_keeps_the_rank_while_there_is_room_and_cannot_when_there_is_none():
    new = adapter(100)
    three = [adapter(seed) for seed in range(3)]
    projected = project_out(new, three)
    assert penalty(projected, three) < 1e-9 * penalty(new, three)
    assert used_directions(projected.modules["narrow"].A) == 4  # 4 free directions: rank kept

    four = [adapter(seed) for seed in range(4)]
    cut = project_out(new, four).modules["narrow"].A
    assert cut.norm() < 1e-9 * new.modules["narrow"].A.norm()  # nothing left: what orthogonalise_unit refuses to do
