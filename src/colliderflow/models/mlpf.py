"""MLPF: a transformer that turns each detector element (track or cluster) into zero or one particle.

The model follows the published MLPF design (Pata et al., Commun. Phys. 7, 124 (2024)) at small scale:

    X [B, N, 17] ─ normalise ─▶ per-type encoder (track MLP | cluster MLP) ─▶ h [B, N, D]
      ─▶ num_layers × pre-LN self-attention block (padding masked) ─▶ LayerNorm
      ─▶ heads, each fed [h, normalised X]:
           class logits [6] ("none" = this element makes no particle), charge logits [3] (−1, 0, +1),
           log(pT / element pT), η, sin φ, cos φ, log(E / element E)

η, sin φ and cos φ are predicted as corrections to the element's own values, and pT and E as log
ratios to the element's, because the element already measures them well: the network only learns
the (small, roughly scale-free) difference. A track's "pT" and "energy" columns are its pT and |p|, a
cluster's are its ET and E (columns 1 and 5 for both types, see colliderflow.schema).

There are no positional encodings: the outputs for the real elements are equivariant under their
permutation and independent of how much padding follows them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from colliderflow.config import dataclass_from_section
from colliderflow.data import ElementNormaliser, element_type_index
from colliderflow.models.layers import MLP, TransformerBlock, attention_mask
from colliderflow.schema import ELEM_TYPE_CLUSTER, ELEM_TYPE_TRACK, N_CLASSES, N_ELEM_FEATURES, PF

# Layout of MLPFOutput.regression (last axis).
REG_TARGETS = ("log_pt_ratio", "eta", "sin_phi", "cos_phi", "log_energy_ratio")
N_CHARGE_CLASSES = 3  # charge + 1 ∈ {0, 1, 2}
# Columns of X shared by both element types.
ELEM_PT, ELEM_ETA, ELEM_SIN_PHI, ELEM_COS_PHI, ELEM_ENERGY = 1, 2, 3, 4, 5
_N_INPUTS = N_ELEM_FEATURES - 1  # the type column selects the encoder and is not an input itself


@dataclass(frozen=True)
class MLPFConfig:
    """The `train.mlpf` section of the config."""

    embedding_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.0

    @classmethod
    def from_dict(cls, section: dict[str, Any], *, where: str = "train.mlpf") -> MLPFConfig:
        """Validate a config section; unknown keys and impossible sizes are errors naming the key."""
        config = dataclass_from_section(cls, section, where=where)
        for name in ("embedding_dim", "num_heads", "num_layers", "ff_dim"):
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}.{name}: expected a positive integer, got {value!r}")
        if config.embedding_dim % config.num_heads:
            raise ValueError(
                f"{where}: embedding_dim={config.embedding_dim} not divisible by num_heads={config.num_heads}"
            )
        if not 0.0 <= float(config.dropout) < 1.0:
            raise ValueError(f"{where}.dropout: expected a value in [0, 1), got {config.dropout!r}")
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MLPFOutput(NamedTuple):
    """Per-element predictions; rows of padding elements are meaningless."""

    cls_logits: torch.Tensor  # [B, N, 6]
    charge_logits: torch.Tensor  # [B, N, 3]
    regression: torch.Tensor  # [B, N, 5] in REG_TARGETS order


class MLPF(nn.Module):
    """The MLPF transformer; takes raw elements X [B, N, 17] and their mask [B, N]."""

    def __init__(self, config: MLPFConfig) -> None:
        super().__init__()
        self.config = config
        d, ff, p = config.embedding_dim, config.ff_dim, config.dropout
        self.normaliser = ElementNormaliser()
        # Tracks and clusters measure different things in the same columns: one encoder each.
        self.encode_track = MLP(_N_INPUTS, ff, d, dropout=p)
        self.encode_cluster = MLP(_N_INPUTS, ff, d, dropout=p)
        self.blocks = nn.ModuleList(TransformerBlock(d, config.num_heads, ff, dropout=p)
                                    for _ in range(config.num_layers))
        self.norm_out = nn.LayerNorm(d)
        head_in = d + _N_INPUTS
        self.head_cls = MLP(head_in, ff, N_CLASSES, dropout=p)
        self.head_charge = MLP(head_in, ff, N_CHARGE_CLASSES, dropout=p)
        self.head_pt = MLP(head_in, ff, 1, dropout=p)
        self.head_eta = MLP(head_in, ff, 1, dropout=p)
        self.head_phi = MLP(head_in, ff, 2, dropout=p)  # (sin φ, cos φ) corrections
        self.head_energy = MLP(head_in, ff, 1, dropout=p)

    def forward(self, X: torch.Tensor, mask: torch.Tensor | None = None) -> MLPFOutput:
        if mask is None:
            mask = element_type_index(X) > 0  # [B, N]
        z = self.normaliser(X)  # [B, N, 16]
        etype = element_type_index(X)  # [B, N]
        is_track = mask & (etype == ELEM_TYPE_TRACK)
        is_cluster = mask & (etype == ELEM_TYPE_CLUSTER)
        # Each encoder sees only its own elements ([T, 16] → [T, D]); padding stays exactly zero.
        h = z.new_zeros(*mask.shape, self.config.embedding_dim)  # [B, N, D]
        h[is_track] = self.encode_track(z[is_track]).to(h.dtype)
        h[is_cluster] = self.encode_cluster(z[is_cluster]).to(h.dtype)

        attn_mask = attention_mask(mask)  # [B, 1, 1, N]
        for block in self.blocks:
            h = block(h, mask, attn_mask)  # [B, N, D]
        h = torch.cat([self.norm_out(h), z], dim=-1)  # [B, N, D + 16]

        phi = self.head_phi(h)  # [B, N, 2]
        regression = torch.cat(
            [
                self.head_pt(h),
                X[..., ELEM_ETA : ELEM_ETA + 1] + self.head_eta(h),
                X[..., ELEM_SIN_PHI : ELEM_COS_PHI + 1] + phi,
                self.head_energy(h),
            ],
            dim=-1,
        )  # [B, N, 5]
        return MLPFOutput(self.head_cls(h), self.head_charge(h), regression)


# Element or target momenta below this (GeV) are raised to it before a log ratio: a zero-ET cluster must
# give a large but finite target, never inf.
MIN_MOMENTUM = 1e-3
MAX_LOG_RATIO = 10.0  # |log ratio| bound, so that exp() of a wild prediction stays finite


def regression_targets(X: torch.Tensor, ytarget: torch.Tensor) -> torch.Tensor:
    """What `MLPFOutput.regression` is trained towards: [..., 5] from X [..., 17] and ytarget [..., 8]."""
    def log_ratio(target: torch.Tensor, element: torch.Tensor) -> torch.Tensor:
        ratio = torch.log(target.clamp(min=MIN_MOMENTUM) / element.clamp(min=MIN_MOMENTUM))
        return ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)

    return torch.stack(
        [
            log_ratio(ytarget[..., PF["pt"]], X[..., ELEM_PT]),
            ytarget[..., PF["eta"]],
            ytarget[..., PF["sin_phi"]],
            ytarget[..., PF["cos_phi"]],
            log_ratio(ytarget[..., PF["energy"]], X[..., ELEM_ENERGY]),
        ],
        dim=-1,
    )


def decode_particles(X: torch.Tensor, out: MLPFOutput) -> torch.Tensor:
    """Predictions → particle rows [..., 8] in the ytarget layout (colliderflow.schema.PARTICLE_FEATURES).

    cls_id is the most likely class; charge the most likely of −1/0/+1; pT and E the element's times
    exp(predicted log ratio); (sin φ, cos φ) rescaled to unit length; jet_idx −1 (no jets assigned).
    Elements predicted as "none" get an all-zero row, as in the targets.
    """
    cls_id = out.cls_logits.argmax(dim=-1)  # [...]
    charge = out.charge_logits.argmax(dim=-1) - 1
    reg = out.regression.float()
    pt = X[..., ELEM_PT].clamp(min=MIN_MOMENTUM) * torch.exp(reg[..., 0].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    energy = X[..., ELEM_ENERGY].clamp(min=MIN_MOMENTUM) * torch.exp(
        reg[..., 4].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    )
    sin_cos = reg[..., 2:4]
    sin_cos = sin_cos / sin_cos.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    rows = torch.stack(
        [cls_id.float(), charge.float(), pt, reg[..., 1], sin_cos[..., 0], sin_cos[..., 1], energy,
         torch.full_like(pt, -1.0)],
        dim=-1,
    )  # [..., 8]
    return torch.where((cls_id > 0)[..., None], rows, 0.0)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as the normalisation statistics not included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
