"""MLPF-style transformer with physics-informed track–cluster link features: each detector element
(track or cluster) becomes zero or one particle.

`train.mlpf.link_features: false` trains the same network without the link features (the encoders then
see only the normalised elements), so the gain from learning can be told apart from the gain from the
built-in, rule-like linking.

The model follows the published MLPF design (Pata et al., Commun. Phys. 7, 124 (2024)) at small scale:

    X [B, N, 17] ─ normalise ──────────────────┐
    X ─ track–cluster ΔR ─▶ proximity features ┴▶ per-type encoder (track MLP | cluster MLP) ─▶ h [B, N, D]
      ─▶ num_layers × pre-LN self-attention block (padding masked) ─▶ LayerNorm
      ─▶ heads, each fed [h, element features]:
           class logits [6] ("none" = this element makes no particle), charge logits [3] (−1, 0, +1),
           log(pT / element pT), η, sin φ, cos φ, log(E / element E)

η, sin φ and cos φ are predicted as corrections to the element's own values, and pT and E as log
ratios to the element's, because the element already measures them well: the network only learns
the difference. A track's "pT" and "energy" columns are its pT and |p|, a cluster's are its ET and E
(columns 1 and 5 for both types, see colliderflow.schema).

Two things make that difference learnable in a short CPU training:

* The regression heads predict standardised residuals: (target − element value − median) / spread,
  with median and spread fitted per element type on the training targets (like the feature
  normalisation, and stored with the weights). A track's pT is known to 0.1 % and a cluster's energy
  to ~15 %: on a common scale the cluster residuals dominate any shared loss, the network never
  learns to leave a track's momentum alone, and a 1 % error on every track ruins the jet resolution.
  The heads' last layers start at zero, so an untrained model reproduces the elements.
* Whether a cluster is a neutral particle or the calorimeter deposit of a charged one (which its
  track already carries) depends on which tracks point at it, and attention alone does not find that
  out in a few hundred steps. Each track is followed along its helix to the calorimeter front (its
  radius and |z| are the one detector constant; the helix radius is 1/|omega| and the cluster position
  is in X), and the angle between its entry point and each cluster becomes per-element features
  (`link_features`): momentum of the tracks near a cluster, energy of the clusters near a track, and,
  for each cluster and the tracks linked to it, the energy balance E − Σp. All of it is computed from
  X, inside the model, so the exported graph still takes raw X and the mask, and the network never
  sees the rule-based candidates.

There are no positional encodings: the outputs for the real elements are equivariant under their
permutation and independent of how much padding follows them.

Mixed precision: under autocast the element features (normalisation logs, helix extrapolation, proximity
sums, the energy balance E − Σp) and the final composition of the regression outputs are computed in
float32 (models.precision); the encoders, attention blocks and heads run in bf16. E − Σp of a charged
deposit cancels to a few percent of E, and bf16 keeps less than that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from colliderflow.models.configs import MLPFConfig
from colliderflow.models.normalise import ElementNormaliser, element_type_index
from colliderflow.models.layers import MLP, TransformerBlock, attention_mask
from colliderflow.models.precision import full_precision
from colliderflow.schema import (
    CLASS_NAMES,
    CLUSTER_FEATURES,
    ELEM_TYPE_CLUSTER,
    ELEM_TYPE_TRACK,
    N_CLASSES,
    N_ELEM_FEATURES,
    PF,
    TRACK_FEATURES,
)

# Layout of MLPFOutput.regression (last axis).
REG_TARGETS = ("log_pt_ratio", "eta", "sin_phi", "cos_phi", "log_energy_ratio")
N_REG = len(REG_TARGETS)
N_CHARGE_CLASSES = 3  # charge + 1 ∈ {0, 1, 2}
# Columns of X shared by both element types.
ELEM_PT, ELEM_ETA, ELEM_SIN_PHI, ELEM_COS_PHI, ELEM_ENERGY = 1, 2, 3, 4, 5
_N_INPUTS = N_ELEM_FEATURES - 1  # the type column selects the encoder and is not an input itself
_TRK = {name: i for i, name in enumerate(TRACK_FEATURES)}
_CLU = {name: i for i, name in enumerate(CLUSTER_FEATURES)}
_N_TYPES = 3  # element_type_index: 0 padding, 1 track, 2 cluster

# Angular reach (ΔR) of the track–cluster proximity kernels: the narrow one is a few times the helix
# extrapolation's precision, the wide one the lateral size of a hadron shower.
LINK_RADII = (0.1, 0.3)
# ΔR within which a track is linked to its nearest cluster (a rule-based PF's link distance).
LINK_DR = 0.15
_FAR = 10.0  # ΔR of pairs that are not (track, cluster): far outside every kernel
_NO_PATH = 1e12  # mm: the transverse path of a track that never meets the barrel
# The calorimeter front tracks are extrapolated to: the builtin clic_like detector's ECAL (barrel radius and
# endcap |z|, colliderflow.generate.geometry.CalorimeterConfig), the same numbers as the baseline's
# BaselineParams.calo_radius_mm / calo_half_length_mm.
CALO_RADIUS_MM = 1500.0
CALO_HALF_LENGTH_MM = 2307.0
N_LINK_FEATURES = 5 * len(LINK_RADII) + 2 + 6


class MLPFOutput(NamedTuple):
    """Per-element predictions; rows of padding elements are meaningless."""

    cls_logits: torch.Tensor  # [B, N, 6]
    charge_logits: torch.Tensor  # [B, N, 3]
    regression: torch.Tensor  # [B, N, 5] in REG_TARGETS order


# --------------------------------------------------------------------------------------------------
# Track–cluster geometry, from X alone
# --------------------------------------------------------------------------------------------------


@full_precision
def track_cluster_distance2(X: torch.Tensor, mask: torch.Tensor, *, calo_radius_mm: float = CALO_RADIUS_MM,
                            calo_half_length_mm: float = CALO_HALF_LENGTH_MM) -> torch.Tensor:
    """Squared angular distance [B, N, N] between cluster j's position and the point where track i meets the
    calorimeter, both seen from the origin (2 − 2 cos of the angle between them: the angle² when small);
    `_FAR`² wherever (i, j) is not a (track, cluster) pair or the track does not reach the calorimeter.
    Not symmetric: tracks are rows, clusters columns.

    The track follows its helix from the origin to the calorimeter front: the barrel cylinder of radius
    `calo_radius_mm` or an endcap plane at ±`calo_half_length_mm`, whichever comes first. The simulation
    develops a shower along the line from the particle's production point through that entry point
    (colliderflow.generate.calorimeter), so its centroid, up to a metre deeper, is seen from the origin
    where the track entered. Following the helix on to the cluster's own radius instead bends a few-GeV
    track by tenths of a radian too far, and linked only 52 % of charged hadrons to the cluster holding most
    of their energy (this: 93 %; the rule-based baseline, which extrapolates to the front too: 92 %).

    The helix leaves the origin with azimuth φ0, curvature omega (1/mm) and dip tanλ. After transverse path
    s it has turned by α = s|omega| and lies along azimuth φ0 − sign(omega)·α/2 at transverse distance
    s·sin(α/2)/(α/2), at z = s·tanλ. The barrel is met at s = 2 asin(R|omega|/2)/|omega| (never if
    R|omega|/2 > 1), an endcap at s = Z/|tanλ|; a track that has turned by more than π on the way curls up
    before the front and reaches nothing (as in the simulation). d0 and z0 are neglected. Everything is
    arithmetic, sin/cos and asin: it runs on every pair of every event, and exports to ONNX.
    """
    etype = element_type_index(X)
    is_track = mask & (etype == ELEM_TYPE_TRACK)  # [B, N]
    is_cluster = mask & (etype == ELEM_TYPE_CLUSTER)
    omega = torch.where(is_track, X[..., _TRK["omega"]], 0.0)
    tan_lambda = torch.where(is_track, X[..., _TRK["tanLambda"]], 0.0)
    w = omega.abs()

    # Transverse path to the front: barrel or endcap, whichever is nearer along the helix.
    x = (0.5 * calo_radius_mm) * w
    straight = x < 1e-6  # asin(x)/x → 1
    x_safe = torch.where(straight, 1.0, x).clamp(max=1.0)
    s_barrel = torch.where(straight, torch.full_like(x, calo_radius_mm), calo_radius_mm * torch.asin(x_safe) / x_safe)
    s_barrel = torch.where(x <= 1.0, s_barrel, torch.full_like(x, _NO_PATH))
    s_endcap = calo_half_length_mm / tan_lambda.abs().clamp(min=1e-6)
    s = torch.minimum(s_barrel, s_endcap)
    half = 0.5 * s * w  # α/2
    reaches = is_track & (2.0 * half <= math.pi)
    half = torch.where(reaches, half, 0.0)
    s = torch.where(reaches, s, 0.0)
    chord = s * torch.where(half > 1e-6, torch.sin(half) / half.clamp(min=1e-6), 1.0)

    # The entry point, its azimuth φ0 − sign·α/2 by rotating (cos φ0, sin φ0).
    c0, s0 = X[..., ELEM_COS_PHI], X[..., ELEM_SIN_PHI]
    ch, sh = torch.cos(half), torch.sign(omega) * torch.sin(half)
    entry = torch.stack([chord * (c0 * ch + s0 * sh), chord * (s0 * ch - c0 * sh), s * tan_lambda], dim=-1)
    cluster = torch.stack([X[..., _CLU["position.x"]], X[..., _CLU["position.y"]], X[..., _CLU["position.z"]]],
                          dim=-1)  # [B, N, 3]

    def unit(v: torch.Tensor) -> torch.Tensor:
        return v * torch.rsqrt((v * v).sum(-1, keepdim=True).clamp(min=1.0))

    cos_angle = unit(entry) @ unit(cluster).transpose(1, 2)  # [B, N, N]
    pair = reaches[:, :, None] & is_cluster[:, None, :]
    return torch.where(pair, (2.0 - 2.0 * cos_angle).clamp(min=0.0), _FAR * _FAR)


@full_precision
def proximity_kernels(dist2: torch.Tensor) -> torch.Tensor:
    """Kernels of ΔR² [B, N, N] → [B, K, N, N], one per LINK_RADII: (1 − (ΔR/r)²)², 1 at ΔR = 0 and
    exactly 0 beyond r. Smooth like a Gaussian, but a polynomial: cheap on every pair of every event."""
    return torch.stack([(1.0 - dist2 * (1.0 / (r * r))).clamp(min=0.0) ** 2 for r in LINK_RADII], dim=1)


def hard_links(dist2: torch.Tensor) -> torch.Tensor:
    """[B, N, N] bool from `track_cluster_distance2`: track i (row) is linked to cluster j (column) when j is
    its nearest reachable cluster and lies within LINK_DR (a rule-based PF's link; ties link to each)."""
    nearest2 = dist2.amin(dim=2, keepdim=True)  # [B, N, 1]
    return (dist2 == nearest2) & (nearest2 < LINK_DR * LINK_DR)


@full_precision
def link_features(X: torch.Tensor, mask: torch.Tensor, kernels: torch.Tensor, dist2: torch.Tensor) -> torch.Tensor:
    """Per element [B, N, N_LINK_FEATURES]: what lies near it on the other side of the track/cluster divide.

    Soft, for each kernel of `proximity_kernels`: log(1 + Σ kernel·energy) of the other-type elements
    (track |p| near a cluster, cluster E near a track), the same for their ECAL energy (zero near a
    cluster), log(1 + Σ kernel) (how many), log((own energy + 0.1) / (nearby energy + 0.1)) — a
    cluster's E/Σp and a track's E/p — and the ECAL share of the energy nearby; then log of the nearest
    ΔR and the element's own ECAL fraction.

    Hard: each track is linked to its nearest reachable cluster within LINK_DR, and a cluster with its
    linked tracks forms a group sharing one energy balance: log(1 + E of the other side), log(1 + number
    of links), log(E/Σp), log of the fraction of E left after Σp, (E − Σp)/sqrt(Σp + 1 GeV) — the
    remainder in units of a hadron calorimeter's resolution — and the cluster's ECAL fraction. The
    balance separates a neutral particle from the deposit of a charged one, E/p and the ECAL share
    flag electrons, and a lone energetic track (no deposit) a muon. Everything is bounded, so no fitted
    normalisation is needed.
    """
    etype = element_type_index(X)
    is_cluster = (mask & (etype == ELEM_TYPE_CLUSTER))[..., None]  # [B, N, 1]
    energy = torch.where(mask, X[..., ELEM_ENERGY].clamp(min=0.0), 0.0)  # |p| of tracks, E of clusters
    ecal = torch.where(is_cluster[..., 0], X[..., _CLU["energy_ecal"]].clamp(min=0.0), 0.0)
    # Kernels have tracks as rows and clusters as columns: Σ over a row is what lies near a track, Σ over a
    # column what lies near a cluster. One matrix product each for energy, ECAL energy and count.
    values = torch.stack([energy, ecal, torch.ones_like(energy)], dim=-1)[:, None]  # [B, 1, N, 3]
    near = kernels @ values + kernels.transpose(2, 3) @ values  # [B, K, N, 3]
    near_e, near_ecal, count = near.permute(3, 0, 2, 1)  # each [B, N, K]
    balance = torch.log((energy[..., None] + 0.1) / (near_e + 0.1)).clamp(-10.0, 10.0)
    near_fecal = near_ecal / (near_e + 1e-3)
    track_nearest2 = dist2.amin(dim=2)  # [B, N]: per track, ΔR² to its nearest cluster
    nearest2 = torch.minimum(track_nearest2, dist2.amin(dim=1))
    nearest = 0.5 * torch.log(nearest2.clamp(min=1e-6, max=1.0))[..., None]
    fecal = (ecal / (energy + 1e-3))[..., None]

    link = hard_links(dist2).to(X.dtype)
    p_linked = (link.transpose(1, 2) @ energy[..., None])[..., 0]  # [B, N]: per cluster, Σ|p| of its tracks
    n_linked = link.sum(dim=1) + link.sum(dim=2)  # per cluster its tracks, per track 1 if linked
    remainder = energy - p_linked
    group = torch.stack([
        torch.log1p(p_linked),
        torch.log((energy + 0.1) / (p_linked + 0.1)),
        torch.log(remainder.clamp(min=0.0) + 0.1) - torch.log(energy + 0.1),
        (remainder / torch.sqrt(p_linked + 1.0)).clamp(-10.0, 10.0),
        fecal[..., 0],
    ], dim=-1)  # [B, N, 5], meaningful for clusters
    of_track = link @ torch.cat([group, energy[..., None]], dim=-1)  # a linked track takes its cluster's values
    other_side = torch.where(is_cluster, group[..., :1], torch.log1p(of_track[..., 5:]))  # Σp | cluster E
    group = torch.where(is_cluster, group[..., 1:], of_track[..., 1:5])
    feats = torch.cat([torch.log1p(near_e), torch.log1p(near_ecal), torch.log1p(count), balance, near_fecal,
                       nearest, fecal, other_side, torch.log1p(n_linked)[..., None], group], dim=-1)
    return torch.where(mask[..., None], feats, 0.0)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class MLPF(nn.Module):
    """The MLPF transformer; takes raw elements X [B, N, 17] and their mask [B, N]."""

    def __init__(self, config: MLPFConfig) -> None:
        super().__init__()
        self.config = config
        d, ff, p = config.embedding_dim, config.ff_dim, config.dropout
        self.normaliser = ElementNormaliser()
        # Median and spread of target − element value, per element type (row 0: padding) and regression
        # target: the heads predict (target − element − center) / scale (see fit_regression_standardisation).
        self.register_buffer("regression_center", torch.zeros(_N_TYPES, N_REG))
        self.register_buffer("regression_scale", torch.ones(_N_TYPES, N_REG))
        n_in = _N_INPUTS + (N_LINK_FEATURES if config.link_features else 0)
        # Tracks and clusters measure different things in the same columns: one encoder each.
        self.encode_track = MLP(n_in, ff, d, dropout=p)
        self.encode_cluster = MLP(n_in, ff, d, dropout=p)
        self.blocks = nn.ModuleList(TransformerBlock(d, config.num_heads, ff, dropout=p)
                                    for _ in range(config.num_layers))
        self.norm_out = nn.LayerNorm(d)
        head_in = d + n_in
        self.head_cls = MLP(head_in, ff, N_CLASSES, dropout=p)
        self.head_charge = MLP(head_in, ff, N_CHARGE_CLASSES, dropout=p)
        self.head_pt = MLP(head_in, ff, 1, dropout=p)
        self.head_eta = MLP(head_in, ff, 1, dropout=p)
        self.head_phi = MLP(head_in, ff, 2, dropout=p)  # (sin φ, cos φ) corrections
        self.head_energy = MLP(head_in, ff, 1, dropout=p)
        for head in (self.head_pt, self.head_eta, self.head_phi, self.head_energy):
            nn.init.zeros_(head.net[-1].weight)  # start from the element's own kinematics
            nn.init.zeros_(head.net[-1].bias)

    def set_regression_standardisation(self, center: torch.Tensor | np.ndarray,
                                       scale: torch.Tensor | np.ndarray) -> None:
        """Set the [3, 5] median and spread of the regression residuals (fit_regression_standardisation)."""
        self.regression_center.copy_(torch.as_tensor(center, dtype=torch.float32))
        self.regression_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def element_regression_scale(self, X: torch.Tensor) -> torch.Tensor:
        """[B, N, 5]: the spread of each regression target for each element's type (1 on padding)."""
        return self.regression_scale[element_type_index(X)]

    def forward(self, X: torch.Tensor, mask: torch.Tensor | None = None) -> MLPFOutput:
        if mask is None:
            mask = element_type_index(X) > 0  # [B, N]
        z, feats = self.element_features(X, mask)  # [B, N, 16], [B, N, 16 + L]
        etype = element_type_index(X)  # [B, N]
        is_track = mask & (etype == ELEM_TYPE_TRACK)
        is_cluster = mask & (etype == ELEM_TYPE_CLUSTER)
        # Each encoder sees only its own elements ([T, F] → [T, D]); padding stays exactly zero.
        h = z.new_zeros(*mask.shape, self.config.embedding_dim)  # [B, N, D]
        h[is_track] = self.encode_track(feats[is_track]).to(h.dtype)
        h[is_cluster] = self.encode_cluster(feats[is_cluster]).to(h.dtype)

        attn_mask = attention_mask(mask)  # [B, 1, 1, N]
        for block in self.blocks:
            h = block(h, mask, attn_mask)  # [B, N, D]
        h = torch.cat([self.norm_out(h), feats], dim=-1)  # [B, N, D + F]

        raw = torch.cat([self.head_pt(h), self.head_eta(h), self.head_phi(h), self.head_energy(h)], dim=-1)
        return MLPFOutput(self.head_cls(h), self.head_charge(h), self.compose_regression(X, raw))  # [B, N, 5]

    @full_precision
    def element_features(self, X: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised elements z [B, N, 16] and the encoder inputs [z, link features] [B, N, 16 + L],
        in float32 under autocast (logs of momenta, helix geometry, energy sums and balances)."""
        z = self.normaliser(X)  # [B, N, 16]
        if not self.config.link_features:
            return z, z
        dist2 = track_cluster_distance2(X, mask)  # [B, N, N]
        kernels = proximity_kernels(dist2)  # [B, K, N, N]
        return z, torch.cat([z, link_features(X, mask, kernels, dist2)], dim=-1)

    @full_precision
    def compose_regression(self, X: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Element value + median + spread × the heads' standardised residuals [B, N, 5], in float32."""
        etype = element_type_index(X)
        center, scale = self.regression_center[etype], self.regression_scale[etype]  # [B, N, 5] each
        return regression_residual_offset(X) + center + scale * raw  # [B, N, 5]


# Element or target momenta below this (GeV) are raised to it before a log ratio: a zero-ET cluster must
# give a large but finite target, never inf.
MIN_MOMENTUM = 1e-3
MAX_LOG_RATIO = 10.0  # |log ratio| bound, so that exp() of a wild prediction stays finite
MIN_REGRESSION_SCALE = 1e-4  # floor of a fitted scale: a constant target must not divide by zero
# Per class id: True for the classes whose particles carry no charge ("none" included, its row is zeroed).
_NEUTRAL_CLASS = torch.tensor([name in ("none", "neutral_hadron", "photon") for name in CLASS_NAMES])


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


def regression_residual_offset(X: torch.Tensor) -> torch.Tensor:
    """[..., 5]: the element's own value of each regression target (what the model starts from)."""
    zero = torch.zeros_like(X[..., :1])
    return torch.cat([zero, X[..., ELEM_ETA : ELEM_COS_PHI + 1], zero], dim=-1)


def fit_regression_standardisation(events: Sequence[dict[str, Any]], *, max_events: int = 2000
                                   ) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust spread (IQR / 1.349), each [3, 5], of target − element value per element type
    and regression target, over the elements that make a particle; padding (row 0) and types without
    data get 0 and 1.

    The median is the typical correction (a track's E from |p| and a mass, a cluster's calibration), the
    spread what the loss measures residuals in. Uses up to `max_events` events spread evenly over the
    sequence, like the feature normalisation: deterministic, one partial pass.
    """
    center = np.zeros((_N_TYPES, N_REG), np.float32)
    scale = np.ones((_N_TYPES, N_REG), np.float32)
    n = len(events)
    if n == 0:
        return center, scale
    idx = np.unique(np.linspace(0, n - 1, num=min(n, max_events)).round().astype(int)).tolist()
    getitems = getattr(events, "__getitems__", None)
    chosen = getitems(idx) if getitems else [events[i] for i in idx]
    X = torch.from_numpy(np.concatenate([np.asarray(ev["X"], np.float32).reshape(-1, N_ELEM_FEATURES)
                                         for ev in chosen]))
    y = torch.from_numpy(np.concatenate([np.asarray(ev["ytarget"], np.float32).reshape(-1, len(PF))
                                         for ev in chosen]))
    residual = (regression_targets(X, y) - regression_residual_offset(X)).double().numpy()  # [n, 5]
    etype = element_type_index(X).numpy()
    particle = y[:, PF["cls_id"]].round().numpy() > 0
    for t in (ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER):
        rows = residual[(etype == t) & particle]
        if len(rows) < 2:
            continue
        q25, q50, q75 = np.quantile(rows, [0.25, 0.5, 0.75], axis=0)
        center[t] = q50
        scale[t] = np.maximum((q75 - q25) / 1.349, MIN_REGRESSION_SCALE)
    return center, scale


def decode_momentum(log_ratio: torch.Tensor, element: torch.Tensor) -> torch.Tensor:
    """The element's pT or E (floored at MIN_MOMENTUM) times exp(predicted log ratio, within ±MAX_LOG_RATIO)."""
    return element.float().clamp(min=MIN_MOMENTUM) * torch.exp(log_ratio.float().clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))


def decode_particles(X: torch.Tensor, out: MLPFOutput) -> torch.Tensor:
    """Predictions → particle rows [..., 8] in the ytarget layout (colliderflow.schema.PARTICLE_FEATURES).

    cls_id is the most likely class; charge 0 for a neutral class (neutral hadron, photon) and the more
    likely of −1/+1 for a charged one, so that no particle has a charge its class forbids; pT and E the
    element's times exp(predicted log ratio), pT capped at E; (sin φ, cos φ) rescaled to unit length; jet_idx −1 (no
    jets assigned). Elements predicted as "none" get an all-zero row, as in the targets.
    """
    cls_id = out.cls_logits.argmax(dim=-1)  # [...]
    sign = torch.where(out.charge_logits[..., 2] >= out.charge_logits[..., 0], 1, -1)
    charge = torch.where(_NEUTRAL_CLASS.to(cls_id.device)[cls_id], 0, sign)
    reg = out.regression.float()
    pt = decode_momentum(reg[..., 0], X[..., ELEM_PT])
    energy = decode_momentum(reg[..., 4], X[..., ELEM_ENERGY])
    # pT and E come from separate heads; a particle's pT cannot exceed its energy. Without this cap a few
    # elements in a million (an odd cluster, a log-pT ratio near its bound) decoded to pT of 10⁵ GeV next to
    # an energy of a few GeV, in a 380 GeV event.
    pt = torch.minimum(pt, energy)
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
