"""Fixtures for the engine tests: tiny random-init Llama and GPT-2 models and trained adapters."""

from __future__ import annotations

import pytest

from tests.torch_threads import one_intra_op_thread
from workers.engine.base_model import load_base_model
from workers.engine.config import UnlearnConfig
from workers.engine.training import train_unit_adapter

from .tiny_models import FAST, FORGET, OTHER, build_tiny_model


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op thread for the package (tests/torch_threads.py says why)."""
    with one_intra_op_thread():
        yield


@pytest.fixture(scope="package")
def tiny_llama_dir(one_torch_thread, tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="package")
def tiny_gpt2_dir(one_torch_thread, tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture
def llama(tiny_llama_dir):
    return load_base_model(tiny_llama_dir, device="cpu")


@pytest.fixture
def gpt2(tiny_gpt2_dir):
    return load_base_model(tiny_gpt2_dir, device="cpu")


@pytest.fixture(params=["llama", "gpt2"])
def any_base(request, tiny_llama_dir, tiny_gpt2_dir):
    """Each test using this runs on both architectures (nn.Linear and GPT-2 Conv1D)."""
    return load_base_model(tiny_llama_dir if request.param == "llama" else tiny_gpt2_dir, device="cpu")


@pytest.fixture(scope="package")
def llama_adapter(tiny_llama_dir):
    """An O3 adapter trained to refuse the four FORGET questions."""
    return train_unit_adapter(load_base_model(tiny_llama_dir, device="cpu"), FORGET, UnlearnConfig(**FAST))


@pytest.fixture(scope="package")
def llama_adapter_other(tiny_llama_dir):
    """A second adapter, on the other questions, with another seed."""
    return train_unit_adapter(load_base_model(tiny_llama_dir, device="cpu"), OTHER, UnlearnConfig(**FAST, seed=1))


@pytest.fixture(scope="package")
def gpt2_adapter(tiny_gpt2_dir):
    return train_unit_adapter(load_base_model(tiny_gpt2_dir, device="cpu"), FORGET, UnlearnConfig(**FAST))


@pytest.fixture
def adapter_for(llama_adapter, gpt2_adapter):
    """The trained adapter matching a base model's architecture."""
    return lambda base: llama_adapter if base.model.config.model_type == "llama" else gpt2_adapter
