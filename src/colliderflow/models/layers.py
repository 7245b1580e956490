"""Building blocks shared by the models: a small MLP and a pre-LayerNorm self-attention block.

Every block here is per-element or attends over a padded set with an explicit mask, so a model made of
them is equivariant under permutations of the real elements and blind to padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Linear → GELU → (dropout) → Linear, applied to the last axis; used for encoders and output heads."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask [B, 1, 1, N] (True = may be attended to) from the element mask [B, N].

    An event with no real element would have every key masked, which makes the softmax NaN, and a NaN
    leaks into the gradients of every parameter even though the loss never looks at padding. Such rows
    are therefore allowed to attend to their first (padding) key; their outputs are discarded anyway.
    """
    first = torch.arange(mask.shape[1], device=mask.device) == 0  # [N]
    keys = mask | (first & ~mask.any(dim=1, keepdim=True))  # [B, N]
    return keys[:, None, None, :]  # [B, 1, 1, N], broadcast over heads and queries


class SelfAttention(nn.Module):
    """Multi-head self-attention over the elements of each event, padding keys masked out."""

    def __init__(self, dim: int, num_heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embedding_dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape  # x: [B, N, D]; attn_mask: [B, 1, 1, N]
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 × [B, N, D]
        # → [B, H, N, D/H]
        q, k, v = (t.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, N, D/H]
        return self.out(y.transpose(1, 2).reshape(b, n, d))  # [B, N, D]


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + Attn(LN(x)), then x + FF(LN(x)).

    Pre-LN keeps the residual stream un-normalised, which trains stably without a long warm-up; padded
    positions are reset to zero after each block so that they carry nothing from one block to the next.
    """

    def __init__(self, dim: int, num_heads: int, ff_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout=dropout)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = MLP(dim, ff_dim, dim, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        # x: [B, N, D]; mask: [B, N] bool; attn_mask: [B, 1, 1, N]
        x = x + self.dropout(self.attn(self.norm_attn(x), attn_mask))
        x = x + self.dropout(self.ff(self.norm_ff(x)))
        return torch.where(mask[..., None], x, 0.0)  # padding back to exactly zero
