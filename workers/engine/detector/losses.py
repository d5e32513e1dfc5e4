"""Training losses of the lora-mode detector: contrastive entropy loss (two variants) and MLM.

Both contrastive variants compare, per layer l, q_i = pooled layer-l state of the MASKED copy of
x_i through the LoRA'd encoder with k_j = pooled layer-l state of the CLEAN x_j through the frozen
encoder, and sum the per-layer losses over the scored layers.

- faithful (the reference code): mean pooling over every position, padding included; no
  normalisation; loss = mean_i entropy(softmax_j(q_i . k_j)). Nothing says which j is right, so the
  loss is as happy with q_i matching some other k_j as with k_i; and with unnormalised 384-d
  features the logits are large, the softmax is already one-hot and the gradient nearly vanishes.
- corrected: attention-masked mean pooling, L2-normalised features, logits (q_i . k_j) / tau, and
  cross-entropy with target j = i (InfoNCE): the masked view of x_i is the positive pair, the other
  texts of the batch are the negatives.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from workers.engine.detector.encoder import masked_mean


def faithful_cel(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Sum over layers of the mean entropy of softmax_j(q_i . k_j); queries/keys pooled [B, L, d]."""
    logits = torch.einsum("ild,jld->lij", queries, keys)
    log_p = torch.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)  # [L, B]
    return entropy.mean(-1).sum()


def corrected_cel(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sum over layers of InfoNCE with the diagonal as target; queries/keys pooled [B, L, d]."""
    q = F.normalize(queries, dim=-1)
    k = F.normalize(keys, dim=-1)
    logits = torch.einsum("ild,jld->lij", q, k) / temperature
    target = torch.arange(q.shape[0], device=q.device).expand(q.shape[1], -1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum") / q.shape[0]


def _faithful(hidden_q: torch.Tensor, hidden_k: torch.Tensor, attention_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    return faithful_cel(hidden_q.mean(-2), hidden_k.mean(-2))


def _corrected(hidden_q: torch.Tensor, hidden_k: torch.Tensor, attention_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    mask = attention_mask.unsqueeze(1)  # [B, 1, T] against hidden [B, L, T, d]
    return corrected_cel(masked_mean(hidden_q, mask), masked_mean(hidden_k, mask), temperature)


# variant name -> loss(hidden_q [B, L, T, d], hidden_k [B, L, T, d], attention_mask [B, T], temperature)
CEL_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"faithful": _faithful, "corrected": _corrected}


class TiedMlmHead(torch.nn.Module):
    """A light masked-token head for encoders shipped without one (sentence encoders such as
    all-MiniLM-L6-v2): LayerNorm, then the frozen input-embedding matrix as decoder, plus a bias.
    Only the LayerNorm and the bias are new; the head is used in training and then discarded."""

    def __init__(self, embeddings: torch.Tensor):
        super().__init__()
        self.embeddings = embeddings  # [V, d], frozen, shared with the encoder
        self.norm = torch.nn.LayerNorm(embeddings.shape[1], device=embeddings.device)
        self.bias = torch.nn.Parameter(torch.zeros(embeddings.shape[0], device=embeddings.device))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(hidden) @ self.embeddings.T + self.bias


def mlm_loss(head: TiedMlmHead, last_hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the original tokens at the masked positions (labels -100 elsewhere)."""
    picked = labels != -100
    return F.cross_entropy(head(last_hidden[picked]), labels[picked])
