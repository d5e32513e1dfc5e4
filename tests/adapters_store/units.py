"""Real unit directories for tests, written by the engine's own write_unit with a real PEFT-format
LoRA (built from seeded random tensors: no training needed for the registry's purposes)."""

from __future__ import annotations

from pathlib import Path


def lora_adapter(seed: int = 0, base_fingerprint: str = "f" * 64):
    """A real AdapterWeights with two LoRA'd modules."""
    import torch
    from peft import LoraConfig

    from workers.engine.training import AdapterWeights, LoraModule

    generator = torch.Generator().manual_seed(seed)
    modules = {
        f"model.layers.0.self_attn.{name}": LoraModule(A=torch.randn(2, 8, generator=generator), B=torch.randn(8, 2, generator=generator), scaling=2.0)
        for name in ("q_proj", "v_proj")
    }
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    return AdapterWeights(modules, config, base_fingerprint)


def save_detector(directory: Path) -> None:
    (directory / "scorer.npz").write_bytes(b"feature statistics")
    (directory / "calibration").mkdir()
    (directory / "calibration" / "quantiles.json").write_text("[0.1, 0.5, 0.9]")


def write_test_unit(directory: Path, *, seed: int = 0, detector: bool = True, base_fingerprint: str = "f" * 64) -> Path:
    """Writes a unit into `directory` (which must not exist); its unit id is the directory's name."""
    from workers.engine.artifacts import hash_forget_set, write_unit
    from workers.engine.config import UnlearnConfig

    write_unit(
        directory,
        lora_adapter(seed=seed, base_fingerprint=base_fingerprint),
        config=UnlearnConfig(),
        detector_saver=save_detector if detector else None,
        detector_config={"backbone": "all-MiniLM-L6-v2"} if detector else None,
        forget_set_hash=hash_forget_set([("Where does Alice live?", "Lisbon")]),
    )
    return Path(directory)
