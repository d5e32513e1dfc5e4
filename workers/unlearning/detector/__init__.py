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

from workers.unlearning.detector.bank import BankScores, DetectorBank
from workers.unlearning.detector.config import DetectorConfig, DetectorConfigError
from workers.unlearning.detector.detector import Detector, DetectorError, load_detector, train_detector
from workers.unlearning.detector.encoder import Encoder, EncoderError, load_encoder
from workers.unlearning.detector.lora import DetectorCancelled

__all__ = [
    "BankScores",
    "Detector",
    "DetectorBank",
    "DetectorCancelled",
    "DetectorConfig",
    "DetectorConfigError",
    "DetectorError",
    "Encoder",
    "EncoderError",
    "load_detector",
    "load_encoder",
    "train_detector",
]
