"""lora mode: a short per-request LoRA on the encoder, both contrastive variants, PEFT format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from peft import PeftModel

from workers.engine.detector import DetectorCancelled, DetectorConfig, load_detector, train_detector
from workers.engine.detector.lora import mask_tokens

from .conftest import FORGET_TEXTS, OTHER_PEOPLE, PARAPHRASES

QUICK = dict(mode="lora", lora_epochs=1, lora_batch_size=4)


@pytest.mark.parametrize("variant", ["faithful", "corrected"])
def test_both_variants_train_with_finite_losses_and_report_progress(encoder, variant):
    calls = []
    detector = train_detector(
        FORGET_TEXTS,
        DetectorConfig(cel_variant=variant, **QUICK),
        encoder,
        progress=lambda step, total, loss: calls.append((step, total, loss)),
    )
    assert [step for step, _, _ in calls] == list(range(1, len(calls) + 1)) and calls[-1][1] == len(calls) == 3
    assert all(math.isfinite(loss) for _, _, loss in calls)
    assert np.isfinite(detector.scores(PARAPHRASES)).all()


def test_lora_changes_the_detector_encoder_but_not_the_shared_one(lora_detector, encoder):
    assert lora_detector.encoder.model is not encoder.model
    ours = lora_detector.encoder.layer_features(PARAPHRASES[:2], (6,))
    base = encoder.layer_features(PARAPHRASES[:2], (6,))
    assert not torch.allclose(ours, base)
    assert all(not name.endswith("lora_A.default.weight") for name, _ in encoder.model.named_parameters())


def test_lora_detector_separates_the_person_from_others(lora_detector):
    assert lora_detector.scores(PARAPHRASES).min() > lora_detector.scores(OTHER_PEOPLE).max()


def test_save_writes_peft_format_and_round_trips(lora_detector, encoder, tmp_path):
    lora_detector.save(tmp_path)
    assert sorted(p.name for p in (tmp_path / "encoder_lora").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    PeftModel.from_pretrained(encoder.model.__class__(encoder.model.config), str(tmp_path / "encoder_lora"))
    loaded = load_detector(tmp_path, encoder)
    prompts = PARAPHRASES + OTHER_PEOPLE
    np.testing.assert_array_equal(loaded.weights(prompts), lora_detector.weights(prompts))


def test_should_stop_cancels_between_steps(encoder):
    seen = []
    with pytest.raises(DetectorCancelled, match="step 2"):
        train_detector(
            FORGET_TEXTS,
            DetectorConfig(**QUICK),
            encoder,
            progress=lambda step, total, loss: seen.append(step),
            should_stop=lambda: len(seen) >= 2,
        )
    assert seen == [1, 2]


def test_mask_tokens_masks_only_real_tokens_and_at_least_one_per_row():
    ids = torch.tensor([[101, 7, 8, 102, 0], [101, 9, 102, 0, 0]])
    attention = (ids != 0).long()
    masked, labels = mask_tokens(ids, attention, [0, 101, 102], 103, 0.01, torch.Generator().manual_seed(0))
    picked = labels != -100
    assert picked.sum(1).tolist() == [1, 1]
    assert torch.isin(ids[picked], torch.tensor([7, 8, 9])).all()
    assert (masked[picked] == 103).all() and (masked[~picked] == ids[~picked]).all()
