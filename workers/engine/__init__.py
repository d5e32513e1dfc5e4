"""O3 continual unlearning engine: a plain PyTorch/PEFT library with no Django imports.

Modules (each has one job):
- prompting: the one prompt/answer format every part of the engine uses.
- base_model: loading any local Hugging Face causal LM, and its fingerprint.
- generation: greedy batched answers from a (possibly gated) model.
- world / demo_config / demo_model: the synthetic demo world, the config (and cache key) of the small
  model trained on it, and its build (demo_training, demo_finetune; cached under model_cache).
- detector: per-request OOD detectors (glocal scores, one-class SVM, calibration).
- training / methods: the orthogonal unlearning LoRA and the baseline methods.
- gate: the gated model that mixes per-request adapters with per-row weights.
- artifacts: unit directories with a manifest of SHA-256 digests.
- metrics / certificate: the evaluation behind every request's certificate.
- config_fields: the dataclass field with its help text that every configuration uses.
"""
