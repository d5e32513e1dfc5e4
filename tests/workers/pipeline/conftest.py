"""Fixtures for the pipeline tests: the tiny demo model, the real MiniLM encoder, and two units
trained on it one after the other (the second orthogonal to the first), built once per package."""

from __future__ import annotations

import pytest

from tests.torch_threads import one_intra_op_thread
from workers.engine.forget_set import ForgetSet, forget_set_for_people


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op torch thread for the package (tests/torch_threads.py)."""
    with one_intra_op_thread():
        yield


@pytest.fixture(scope="package")
def base(tiny_demo_model):
    from workers.engine.base_model import load_base_model

    return load_base_model(tiny_demo_model, device="cpu")


@pytest.fixture(scope="package")
def encoder():
    from workers.engine.detector import load_encoder

    return load_encoder(device="cpu")


@pytest.fixture(scope="package")
def people(tiny_world):
    """Two people of the tiny world who are not each other's neighbours: the first and second request."""
    first = tiny_world.people[0]
    second = next(p for p in tiny_world.people[1:] if p not in tiny_world.neighbours(first) and not tiny_world.shared(first, p))
    return first, second


def request(world, person) -> ForgetSet:
    """A demo request: the person's trained questions with answers, the name as subject."""
    forget = forget_set_for_people(world, [person])
    return ForgetSet(forget.items, subjects=(person.name,))


@pytest.fixture(scope="package")
def units_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("units")


@pytest.fixture(scope="package")
def first_unit(base, encoder, tiny_world, people, units_dir):
    from workers.engine.pipeline import train_unit

    return train_unit(base, request(tiny_world, people[0]), out_dir=units_dir / "req-1", encoder=encoder)


@pytest.fixture(scope="package")
def second_unit(base, encoder, tiny_world, people, units_dir, first_unit):
    from workers.engine.pipeline import train_unit

    return train_unit(base, request(tiny_world, people[1]), out_dir=units_dir / "req-2", encoder=encoder, previous_units=[first_unit])
