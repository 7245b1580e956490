"""PELICAN: a permutation-equivariant, Lorentz-invariant jet tagger (Bogatskiy et al., arXiv:2211.00454).

    p4 [B, N, 4] ─▶ d_ij = p_i·p_j (Minkowski) [B, N, N] ─ log + learnable powers ─▶ T [B, N, N, C0]
      ─▶ num_layers × (pointwise pair MLP ─▶ Eq2to2: the 15 linear permutation-equivariant maps) [B, N, N, C]
      ─▶ Eq2to0: trace and total of T [B, 2C] ─▶ MLP ─▶ logits [B, num_classes]

Why this is exactly Lorentz invariant: the momenta enter only through the dot products d_ij, which any
boost or rotation leaves unchanged, and the particle count. Why exactly permutation invariant: every
layer is pointwise on pairs or one of the equivariant maps below, and the readout sums over particles.

The 15 maps from rank-2 to rank-2 tensors (Maron et al., ICLR 2019), written with sums over the N real
particles (r_i = Σ_j T_ij, c_j = Σ_i T_ij, d_i = T_ii, t = Σ_ij T_ij, s = Σ_i T_ii):
T_ij, T_ji; broadcasts d_i, d_j, r_i, r_j, c_i, c_j, t, s; on the diagonal δ_ij·(d_i, r_i, c_i, t, s).
The identity and transpose get a full channel mix; the others are mixed in the cheap [B, N, C] space
first and then broadcast, which gives the same function without materialising 15·C channels of N².
Sums are normalised as in PELICAN: a mean over the real particles times (N / N_avg)^γ, γ learnable per
aggregate, so that the network can learn how its features should scale with the jet's multiplicity.
Padding is exactly ignored: padded pairs are zero before every aggregation and N counts real particles.

Mixed precision: under autocast the Minkowski products, their log encoding, the particle counts and the
normalised sums are computed in float32 (models.precision); only the channel mixes (linear layers) run in
bf16. In bf16, d_ij of two collinear 100 GeV constituents (~20 GeV² out of E_i E_j ~ 10⁴ GeV²) is 0 or
negative, and the network would see noise where the physics is.
"""

from __future__ import annotations

import torch
from torch import nn

from colliderflow.models.configs import PELICANConfig
from colliderflow.models.precision import compute_dtype, full_precision

N_AGGREGATES = 5  # single sums r, c and trace-like d (per particle), double sums t, s (per jet)


@full_precision
def minkowski_dots(p4: torch.Tensor) -> torch.Tensor:
    """d_ij = E_i E_j − p⃗_i·p⃗_j: p4 [B, N, 4] (px, py, pz, E) → [B, N, N], in float32 (or float64) even
    under autocast: the difference cancels almost completely for collinear constituents."""
    metric = torch.tensor([-1.0, -1.0, -1.0, 1.0], dtype=p4.dtype, device=p4.device)
    return torch.einsum("bid,bjd->bij", p4 * metric, p4)


class InputEncoder(nn.Module):
    """d_ij → C0 channels ((1 + x)^α_k − 1)/α_k of x = ln(1 + max(d, 0)/scale²), α_k learnable.

    Dot products of jet constituents span many orders of magnitude (MeV² to TeV²): the log compresses
    them and the learnable powers let each channel choose how much. max(d, 0) because physical momenta
    have d ≥ 0 and rounding can make a massless pair's d slightly negative.
    """

    def __init__(self, channels: int, momentum_scale: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.linspace(0.05, 1.0, channels))
        self.scale2 = float(momentum_scale) ** 2

    @full_precision
    def forward(self, d: torch.Tensor) -> torch.Tensor:
        # float32: ((1 + x)^α − 1)/α cancels for small α, and x spans orders of magnitude.
        x = torch.log1p(d.clamp(min=0.0) / self.scale2)[..., None]  # [B, N, N, 1]
        alpha = self.alpha.abs().clamp(min=1e-3)  # [C0]
        return ((1.0 + x) ** alpha - 1.0) / alpha  # [B, N, N, C0]


class Eq2to2(nn.Module):
    """The general linear permutation-equivariant map of [B, N, N, C_in] to [B, N, N, C_out], masked."""

    def __init__(self, c_in: int, c_out: int, n_avg: float) -> None:
        super().__init__()
        self.n_avg = float(n_avg)
        self.identity = nn.Linear(c_in, c_out)
        self.transpose = nn.Linear(c_in, c_out, bias=False)
        # Per-particle broadcasts: (d, r, c) along rows and along columns, (t, s) everywhere.
        self.rows = nn.Linear(3 * c_in, c_out, bias=False)
        self.cols = nn.Linear(3 * c_in, c_out, bias=False)
        self.total = nn.Linear(2 * c_in, c_out, bias=False)
        self.diag = nn.Linear(5 * c_in, c_out)  # δ_ij (d, r, c, t, s), with its own bias on the diagonal
        self.gamma = nn.Parameter(torch.ones(N_AGGREGATES))  # exponents of N/N_avg for r, c, d, t, s

    @full_precision
    def aggregates(self, T: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(d, r, c) [B, N, 3C], t [B, 1, C], s [B, 1, C]: the normalised sums, in float32 under autocast
        (sums over N² pairs and the (N/N_avg)^γ factors lose too much in bf16)."""
        m = mask.to(T.dtype)  # [B, N]
        n = m.sum(dim=1).clamp(min=1.0)[:, None, None]  # [B, 1, 1] real particles
        ratio = n / self.n_avg
        g = self.gamma
        r = T.sum(dim=2) / n * ratio ** g[0]  # [B, N, C] row means
        c = T.sum(dim=1) / n * ratio ** g[1]  # [B, N, C] column means
        d = torch.diagonal(T, dim1=1, dim2=2).transpose(1, 2) * ratio ** g[2]  # [B, N, C]
        t = r.sum(dim=1, keepdim=True) / n * ratio ** (g[3] - g[0])  # [B, 1, C] mean of all pairs
        s = d.sum(dim=1, keepdim=True) / n * ratio ** (g[4] - g[2])  # [B, 1, C] mean of the diagonal
        return torch.cat([d, r, c], dim=-1), t, s

    def forward(self, T: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # T: [B, N, N, C] with padded pairs zero; mask: [B, N] bool
        per_particle, t, s = self.aggregates(T, mask)  # [B, N, 3C], [B, 1, C], [B, 1, C]
        out = self.identity(T) + self.transpose(T.transpose(1, 2))  # [B, N, N, C_out]
        out = out + self.rows(per_particle)[:, :, None, :] + self.cols(per_particle)[:, None, :, :]
        out = out + self.total(torch.cat([t, s], dim=-1))[:, :, None, :]  # [B, 1, 1, C_out]
        d = per_particle[..., : T.shape[-1]]
        on_diag = self.diag(torch.cat([per_particle, t.expand_as(d), s.expand_as(d)], dim=-1))  # [B, N, C_out]
        eye = torch.eye(T.shape[1], dtype=out.dtype, device=T.device)[None, :, :, None]  # [1, N, N, 1]
        out = out + eye * on_diag[:, :, None, :]
        m = mask.to(out.dtype)
        pair_mask = (m[:, :, None] * m[:, None, :])[..., None]  # [B, N, N, 1]
        return out * pair_mask


class PELICAN(nn.Module):
    """PELICAN classifier; takes four-momenta [B, N, 4] (px, py, pz, E) and the mask [B, N]."""

    def __init__(self, config: PELICANConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encode = InputEncoder(c.embed_channels, c.momentum_scale)
        self.messages = nn.ModuleList()
        self.layers = nn.ModuleList()
        width = c.embed_channels
        for _ in range(c.num_layers):
            self.messages.append(nn.Sequential(nn.Linear(width, c.hidden_channels), nn.GELU(),
                                               nn.Dropout(c.dropout)))
            self.layers.append(Eq2to2(c.hidden_channels, c.hidden_channels, c.n_avg))
            width = c.hidden_channels
        self.gamma_out = nn.Parameter(torch.ones(2))  # N/N_avg exponents of the readout's two sums
        self.readout = nn.Sequential(nn.Linear(2 * width, c.readout_hidden), nn.GELU(), nn.Dropout(c.dropout),
                                     nn.Linear(c.readout_hidden, c.num_classes))

    def forward(self, p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # p4: [B, N, 4]; mask: [B, N] bool → logits [B, C]
        m = mask.to(compute_dtype(p4))
        pair_mask = (m[:, :, None] * m[:, None, :])[..., None]  # [B, N, N, 1]
        T = self.encode(minkowski_dots(p4)) * pair_mask  # [B, N, N, C0], float32 (float64)
        for message, layer in zip(self.messages, self.layers, strict=True):
            h = message(T)  # bf16 under autocast: keep the mask product in it
            T = layer(h * pair_mask.to(h.dtype), mask)  # [B, N, N, C]
        return self.readout(self.pool(T, mask))  # [B, num_classes]

    @full_precision
    def pool(self, T: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 2C]: the trace and the total of T, normalised (float32 under autocast)."""
        m = mask.to(T.dtype)
        n = m.sum(dim=1).clamp(min=1.0)[:, None]  # [B, 1]
        ratio = n / self.config.n_avg
        trace = torch.diagonal(T, dim1=1, dim2=2).sum(dim=-1) / n * ratio ** self.gamma_out[0]  # [B, C]
        total = T.sum(dim=(1, 2)) / (n * n) * ratio ** self.gamma_out[1]  # [B, C]
        return torch.cat([trace, total], dim=-1)
