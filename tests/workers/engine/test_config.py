import dataclasses

import pytest

from workers.engine.config import METHOD_NAMES, ConfigError, UnlearnConfig
from workers.engine.methods import METHODS


def test_defaults_follow_o3():
    config = UnlearnConfig()
    assert (config.method, config.rank, config.alpha, config.lambda_orth) == ("o3", 8, 16.0, 0.1)
    assert config.target_modules == "all-linear"
    assert config.scaling == 2.0


def test_every_field_has_help_text():
    assert all(f.metadata.get("help") for f in dataclasses.fields(UnlearnConfig))
    assert set(UnlearnConfig.help()) == {f.name for f in dataclasses.fields(UnlearnConfig)}


def test_registry_and_config_agree_on_methods():
    assert set(METHODS) == set(METHOD_NAMES) == {"o3", "ga", "gd", "npo"}


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "finetune"},
        {"rank": 0},
        {"rank": 2.5},
        {"lr": -1.0},
        {"lr": float("nan")},
        {"dropout": 1.0},
        {"lambda_orth": -0.1},
        {"max_steps": 0},
        {"target_modules": []},
        {"npo_beta": 0},
        {"epochs": True},
    ],
)
def test_invalid_values_are_refused(changes):
    with pytest.raises(ConfigError):
        UnlearnConfig(**changes)


def test_dict_round_trip_and_unknown_keys():
    config = UnlearnConfig(method="npo", rank=4, target_modules=["q_proj", "v_proj"], max_steps=5)
    assert UnlearnConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="learning_rate"):
        UnlearnConfig.from_dict({"learning_rate": 1e-3})
