"""The lora-mode detector backbone: a per-request LoRA on the encoder (O3.md section 1, reference).

Training is short (a few epochs over the request's tens of texts): masked-token loss through a
light tied head plus the contrastive entropy loss of the chosen variant. For scoring, the LoRA is
merged into a private copy of the encoder, so scoring never switches adapters on a shared model.
The unmerged LoRA is kept and saved in PEFT format (adapter_config.json + adapter_model.safetensors).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save

from workers.engine.detector.config import DetectorConfig
from workers.engine.detector.encoder import Encoder
from workers.engine.detector.losses import CEL_LOSSES, TiedMlmHead, mlm_loss
from workers.engine.unit_manifest import canonical_safetensors

ProgressCallback = Callable[[int, int, float], None]
StopCallback = Callable[[], bool]


class DetectorCancelled(RuntimeError):
    """should_stop() returned True: training stopped and nothing was produced."""


def _freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


@dataclass(frozen=True)
class DetectorLora:
    """A trained detector LoRA in PEFT's on-disk form."""

    peft_config: LoraConfig
    state_dict: dict[str, torch.Tensor]

    WEIGHTS_NAME = "adapter_model.safetensors"

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.peft_config.save_pretrained(str(directory))  # adapter_config.json
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict.items()}
        (directory / self.WEIGHTS_NAME).write_bytes(canonical_safetensors(save(state, metadata={"format": "pt"})))

    @classmethod
    def load(cls, directory: Path) -> DetectorLora:
        return cls(peft_config=LoraConfig.from_pretrained(str(directory)), state_dict=load_file(str(directory / cls.WEIGHTS_NAME)))

    def merged(self, encoder: Encoder) -> Encoder:
        """A private copy of the encoder with this LoRA merged into its weights."""
        peft_model = get_peft_model(copy.deepcopy(encoder.model), copy.deepcopy(self.peft_config))
        set_peft_model_state_dict(peft_model, {k: v.to(encoder.device) for k, v in self.state_dict.items()})
        return encoder.with_model(_freeze(peft_model.merge_and_unload()))


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: Sequence[int],
    mask_id: int,
    probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked copy of input_ids and MLM labels (-100 where not masked); at least one mask per row."""
    maskable = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(list(special_ids), device=input_ids.device))
    draws = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    chosen = maskable & (draws < probability)
    # Rows that drew nothing get their maskable position with the smallest draw.
    fallback = torch.where(maskable, draws, 2.0).argmin(-1)
    empty = ~chosen.any(-1) & maskable.any(-1)
    chosen[empty, fallback[empty]] = True
    labels = torch.where(chosen, input_ids, -100)
    return torch.where(chosen, mask_id, input_ids), labels


def train_lora(
    encoder: Encoder,
    texts: Sequence[str],
    layers: Sequence[int],
    config: DetectorConfig,
    progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> tuple[DetectorLora, list[float]]:
    """Train the request's detector LoRA on `texts` (D_used); returns the LoRA in PEFT form and the
    loss of every step. The encoder itself is not changed (training runs on a private copy)."""
    tokenizer = encoder.tokenizer
    mask_id = next(i for i in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id, 0) if i is not None)
    use_mlm = config.mlm_weight > 0 and tokenizer.mask_token_id is not None
    peft_config = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(config.lora_target_modules),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        peft_model = get_peft_model(copy.deepcopy(encoder.model), peft_config)
        head = TiedMlmHead(peft_model.get_input_embeddings().weight) if use_mlm else None
    peft_model.eval()  # no dropout: the LoRA still gets gradients, training is deterministic
    parameters = [p for p in peft_model.parameters() if p.requires_grad]
    if head is not None:
        parameters += list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lora_lr, weight_decay=0.0)
    cel = CEL_LOSSES[config.cel_variant]
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(texts) / config.lora_batch_size)
    total = config.lora_epochs * steps_per_epoch
    losses: list[float] = []
    for _ in range(config.lora_epochs):
        order = torch.randperm(len(texts), generator=generator).tolist()
        for start in range(0, len(order), config.lora_batch_size):
            if should_stop is not None and should_stop():
                raise DetectorCancelled(f"detector LoRA training cancelled at step {len(losses)} of {total}")
            batch = encoder.tokenize([texts[i] for i in order[start : start + config.lora_batch_size]])
            masked_ids, labels = mask_tokens(
                batch["input_ids"],
                batch["attention_mask"],
                tokenizer.all_special_ids,
                mask_id,
                config.mask_probability,
                generator,
            )
            with torch.no_grad(), peft_model.disable_adapter():
                clean = peft_model(**batch, output_hidden_states=True)
                hidden_k = torch.stack([clean.hidden_states[i] for i in layers], dim=1)
            masked = peft_model(**{**batch, "input_ids": masked_ids}, output_hidden_states=True)
            hidden_q = torch.stack([masked.hidden_states[i] for i in layers], dim=1)
            loss = cel(hidden_q, hidden_k, batch["attention_mask"], config.temperature)
            if head is not None:
                loss = loss + config.mlm_weight * mlm_loss(head, masked.last_hidden_state, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(len(losses), total, losses[-1])
    state_dict = {name: tensor.detach().clone() for name, tensor in get_peft_model_state_dict(peft_model).items()}
    return DetectorLora(peft_config=peft_model.peft_config["default"], state_dict=state_dict), losses
