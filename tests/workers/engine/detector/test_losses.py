"""The contrastive entropy losses and the masked-token head on tiny tensors with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from workers.engine.detector.losses import CEL_LOSSES, TiedMlmHead, corrected_cel, faithful_cel, mlm_loss


def test_faithful_cel_is_log_batch_for_uniform_logits_and_zero_for_peaked_ones():
    q = torch.zeros(4, 2, 3)
    assert faithful_cel(q, torch.randn(4, 2, 3)).item() == pytest.approx(2 * math.log(4))  # 2 layers
    k = 100 * torch.eye(4)[:, None, :].expand(4, 2, 4)
    assert faithful_cel(k, k).item() == pytest.approx(0.0, abs=1e-6)


def test_faithful_cel_cannot_tell_aligned_from_permuted_pairs():
    # The reference loss's weakness: nothing marks j = i as the positive.
    k = 10 * torch.eye(4)[:, None, :]
    permuted = k[torch.tensor([1, 2, 3, 0])]
    assert faithful_cel(k, k).item() == pytest.approx(faithful_cel(permuted, k).item())


def test_corrected_cel_is_lower_when_positives_are_aligned():
    generator = torch.Generator().manual_seed(0)  # unseeded, randperm could leave most pairs in place
    k = torch.randn(6, 3, 8, generator=generator)
    aligned = corrected_cel(k + 0.01 * torch.randn(k.shape, generator=generator), k, temperature=0.1)
    permuted = corrected_cel(k.roll(1, dims=0), k, temperature=0.1)  # every query paired with another key
    assert aligned.item() < 0.1 < permuted.item()


def test_corrected_cel_known_value_and_scale_invariance():
    k = torch.eye(3)[:, None, :]  # orthonormal keys, one layer
    expected = -math.log(math.exp(1 / 0.5) / (math.exp(1 / 0.5) + 2))
    assert corrected_cel(k, k, 0.5).item() == pytest.approx(expected, rel=1e-6)
    assert corrected_cel(7 * k, k, 0.5).item() == pytest.approx(expected, rel=1e-6)  # normalised


def test_corrected_pooling_ignores_padding_but_faithful_does_not():
    hidden = torch.randn(2, 1, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = hidden.clone()
    changed[0, :, 3:] = 50.0  # only padding positions change
    corrected, faithful = CEL_LOSSES["corrected"], CEL_LOSSES["faithful"]
    assert corrected(changed, hidden, mask, 0.1).item() == pytest.approx(corrected(hidden, hidden, mask, 0.1).item(), rel=1e-6)
    assert faithful(changed, hidden, mask, 0.1).item() != pytest.approx(faithful(hidden, hidden, mask, 0.1).item())


def test_tied_mlm_head_scores_masked_positions_only():
    embeddings = torch.eye(5, 4)  # token t has embedding e_t (token 4 is zero)
    head = TiedMlmHead(embeddings)
    hidden = 10 * torch.eye(4)[None].expand(1, 4, 4).clone()  # position p looks like token p
    labels = torch.tensor([[-100, 1, -100, 3]])
    good = mlm_loss(head, hidden, labels)
    bad = mlm_loss(head, hidden, torch.tensor([[-100, 2, -100, 0]]))
    assert good.item() < bad.item()
    assert head(hidden).shape == (1, 4, 5)
