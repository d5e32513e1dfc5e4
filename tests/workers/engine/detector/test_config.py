"""DetectorConfig validation and its JSON round trip."""

from __future__ import annotations

from dataclasses import fields

import pytest

from workers.engine.detector import DetectorConfig, DetectorConfigError


def test_every_field_has_help_text():
    assert all(f.metadata.get("help") for f in fields(DetectorConfig))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "dense"},
        {"cel_variant": "simclr"},
        {"nu": 0.5},
        {"layers": ()},
        {"layers": 3},
        {"holdout_fraction": 1.0},
        {"weight_floor": 1.0},
        {"window_stride": 30, "window_words": 24},
        {"lora_batch_size": 1},
        {"zeta": 0.0},
        {"local_weight": 0.0, "global_weight": 0.0},
        {"cross_fit_folds": 1},
    ],
)
def test_invalid_values_are_rejected(kwargs):
    with pytest.raises(DetectorConfigError):
        DetectorConfig(**kwargs)


def test_dict_round_trip_and_unknown_keys():
    config = DetectorConfig(mode="lora", layers=[2, -1], lora_target_modules=["query", "value"])
    assert config.layers == (2, -1)
    assert DetectorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(DetectorConfigError, match="unknown"):
        DetectorConfig.from_dict({**config.to_dict(), "typo": 1})
