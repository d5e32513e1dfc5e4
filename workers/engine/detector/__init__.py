"""Per-request OOD detectors of the O3 method (O3.md section 1): does a prompt look like this
request's forget data, and with what gate weight should its adapter be applied?

    encoder = load_encoder()                                    # packaged all-MiniLM-L6-v2
    detector = train_detector(forget_texts, DetectorConfig(), encoder)
    detector.weights(["Where does Alice Zorblat live?"])       # -> array([0.99...])
    detector.save(unit_dir); load_detector(unit_dir, encoder)

    bank = DetectorBank(encoder)                                # many requests, one encoder pass
    bank.add("req-1", detector); bank.score(prompts).weights    # [n_prompts, n_requests]

Modules: config (DetectorConfig), encoder (backbone, pooled layer features), windows (long-prompt
splitting), glocal (1-NN cosine + low-rank Ledoit-Wolf Mahalanobis), scorer (layer scores,
one-class SVM, stacked scoring), calibration (u -> w), losses and lora (lora mode), detector
(train / score / save / load one request), bank (many requests). See README.md for the design
choices and the benchmark.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name lives. Loaded on first use (PEP 562), so that the torch-free modules of
# this package (names, negatives, windows, config) can be imported by web code without torch.
_EXPORTS = {
    "BankScores": "bank",
    "DetectorBank": "bank",
    "DetectorConfig": "config",
    "DetectorConfigError": "config",
    "Detector": "detector",
    "DetectorError": "detector",
    "load_detector": "detector",
    "train_detector": "detector",
    "Encoder": "encoder",
    "EncoderError": "encoder",
    "load_encoder": "encoder",
    "DetectorCancelled": "lora",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
