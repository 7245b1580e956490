"""ParT: a Particle Transformer jet tagger (Qu, Li, Qian, ICML 2022) at configurable size.

    features [B, N, F] ─ LayerNorm + MLP ─▶ x [B, N, D]
    p4 [B, N, 4] ─ pairwise (ln kT, ln z, ln ΔR, ln m²) [B, N, N, 4] ─ pointwise MLP ─▶ bias [B, H, N, N]
      ─▶ num_layers × particle-attention block (softmax(QKᵀ/√d + bias), padding keys masked)
      ─▶ class token [B, 1, D] ─▶ num_cls_layers × class-attention block (queries: the token only)
      ─▶ LayerNorm ─▶ Linear ─▶ logits [B, num_classes]

The pairwise bias is what distinguishes ParT from a plain set transformer: the attention between two
particles starts from physics (their relative kT, momentum sharing, angle and invariant mass), so the
network need not rediscover them from the per-particle features. Four-momenta are (px, py, pz, E) in
GeV, the layout of colliderflow.train.jet_data. No positional encoding: the logits are invariant under
permutations of the real particles and under padding.

Mixed precision: the pair features (rapidities, angles, kT, z, m² and their logs) are computed in float32
under autocast (models.precision): m² = (E_i + E_j)² − |p⃗_i + p⃗_j|² cancels almost completely for
collinear pairs, and ln of a bf16 value near EPS is meaningless. The pair MLP, attention and all other
matmuls run in bf16; the residual stream of the particle embeddings stays float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colliderflow.models.configs import ParTConfig
from colliderflow.models.layers import MLP, TransformerBlock, attention_mask
from colliderflow.models.precision import full_precision, upcast

EPS = 1e-8  # floor under the arguments of the pairwise logs: ΔR = 0 on the diagonal, m² ≤ 0 for collinear pairs
N_PAIR_FEATURES = 4  # ln kT, ln z, ln ΔR, ln m²


@full_precision
def pair_features(p4: torch.Tensor) -> torch.Tensor:
    """(ln kT, ln z, ln ΔR, ln m²) of every particle pair: p4 [B, N, 4] (px, py, pz, E) → [B, N, N, 4],
    float32 (or float64) even under autocast.

    kT = min(pT_i, pT_j)·ΔR, z = min(pT_i, pT_j)/(pT_i + pT_j), ΔR in (rapidity, φ), m² = (p_i + p_j)².
    Arguments are floored at EPS so that the diagonal and padding give large negative finite values.
    """
    px, py, pz, e = p4.unbind(dim=-1)  # 4 × [B, N]
    pt = torch.sqrt(px * px + py * py)
    rapidity = 0.5 * torch.log((e + pz).clamp(min=EPS) / (e - pz).clamp(min=EPS))
    phi = torch.atan2(py, px)
    dy = rapidity[:, :, None] - rapidity[:, None, :]  # [B, N, N]
    dphi = phi[:, :, None] - phi[:, None, :]
    dphi = torch.atan2(torch.sin(dphi), torch.cos(dphi))  # wrapped into (−π, π]
    delta_r = torch.sqrt(dy * dy + dphi * dphi)
    pt_min = torch.minimum(pt[:, :, None], pt[:, None, :])
    kt = pt_min * delta_r
    z = pt_min / (pt[:, :, None] + pt[:, None, :]).clamp(min=EPS)
    s = p4[:, :, None, :] + p4[:, None, :, :]  # [B, N, N, 4]
    m2 = s[..., 3] ** 2 - s[..., 0] ** 2 - s[..., 1] ** 2 - s[..., 2] ** 2
    return torch.stack([torch.log(t.clamp(min=EPS)) for t in (kt, z, delta_r, m2)], dim=-1)  # [B, N, N, 4]


class ClassAttentionBlock(nn.Module):
    """Pre-LN block in which only the class token queries; keys and values are [token, particles].

    Letting the token attend over itself as well as the particles (as ParT does) keeps the softmax
    well-defined for a jet whose particles are all padding.
    """

    def __init__(self, dim: int, num_heads: int, ff_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = MLP(dim, ff_dim, dim, dropout=dropout)
        self.dropout = dropout

    def forward(self, cls: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # cls: [B, 1, D]; x: [B, N, D]; mask: [B, N] bool
        b, n, d = x.shape
        h = self.num_heads
        both = self.norm(torch.cat([cls, x], dim=1))  # [B, 1 + N, D]
        q = self.q(both[:, :1]).view(b, 1, h, d // h).transpose(1, 2)  # [B, H, 1, D/H]
        k, v = (t.view(b, n + 1, h, d // h).transpose(1, 2) for t in self.kv(both).chunk(2, dim=-1))  # [B, H, 1+N, D/H]
        keys = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)[:, None, None, :]  # [B, 1, 1, 1 + N]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys,
                                           dropout_p=self.dropout if self.training else 0.0)  # [B, H, 1, D/H]
        cls = cls + self.out(y.transpose(1, 2).reshape(b, 1, d))
        return cls + self.ff(self.norm_ff(cls))  # [B, 1, D]


class ParT(nn.Module):
    """Particle Transformer; takes particle features [B, N, F], four-momenta [B, N, 4] and the mask [B, N]."""

    def __init__(self, config: ParTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Sequential(nn.LayerNorm(c.num_features),
                                   MLP(c.num_features, c.embed_hidden, c.embedding_dim, dropout=c.dropout))
        self.pair_embed = nn.Sequential(
            nn.Linear(N_PAIR_FEATURES, c.pair_hidden), nn.GELU(),
            nn.Linear(c.pair_hidden, c.pair_hidden), nn.GELU(),
            nn.Linear(c.pair_hidden, c.num_heads),
        )
        self.blocks = nn.ModuleList(TransformerBlock(c.embedding_dim, c.num_heads, c.ff_dim, dropout=c.dropout)
                                    for _ in range(c.num_layers))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embedding_dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.cls_blocks = nn.ModuleList(ClassAttentionBlock(c.embedding_dim, c.num_heads, c.ff_dim, dropout=c.dropout)
                                        for _ in range(c.num_cls_layers))
        self.norm_out = nn.LayerNorm(c.embedding_dim)
        self.head = nn.Linear(c.embedding_dim, c.num_classes)

    def forward(self, features: torch.Tensor, p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # features: [B, N, F]; p4: [B, N, 4]; mask: [B, N] bool → logits [B, C]
        x = torch.where(mask[..., None], upcast(self.embed(features)), 0.0)  # [B, N, D], float32 residual stream
        pair_mask = mask[:, :, None] & mask[:, None, :]  # [B, N, N]
        pairs = torch.where(pair_mask[..., None], pair_features(p4), 0.0)  # [B, N, N, 4]
        bias = self.pair_embed(pairs).permute(0, 3, 1, 2)  # [B, H, N, N]
        # Padding keys get −inf; attention_mask keeps one key for a jet with no particles (no NaN).
        keys = attention_mask(mask)  # [B, 1, 1, N]
        attn_bias = bias.masked_fill(~keys, float("-inf"))  # [B, H, N, N]
        for block in self.blocks:
            x = block(x, mask, attn_bias)  # [B, N, D]
        cls = self.cls_token.expand(x.shape[0], 1, -1)  # [B, 1, D]
        for block in self.cls_blocks:
            cls = block(cls, x, mask)
        return self.head(self.norm_out(cls[:, 0]))  # [B, C]
