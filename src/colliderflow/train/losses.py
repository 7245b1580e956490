"""The MLPF training objective: classification of every element, charge and kinematics of particles.

    loss = cls_weight · loss_cls + charge_weight · loss_charge + reg_weight · loss_reg + gev_weight · loss_gev

* loss_cls — over every real element: cross-entropy (the default) or focal loss (γ = 2, as MLPF).
  Focal loss scales each element by (1 − p_true)^γ so that rare, hard ones set the gradient; on a short
  training it also starves the decisions that matter most for jets (neutral hadron vs "none" for a
  cluster, electron vs charged hadron for a track) once they are merely likely, and plain
  cross-entropy ends up better on both accuracy and jet resolution.
* loss_charge — cross-entropy over charge ∈ {−1, 0, +1}, only where the target is a particle.
* loss_reg — Huber (default) or MSE, averaged over log pT ratio, η, sin φ, cos φ, log E ratio, only
  where the target is a particle: an element that makes no particle has no kinematics to learn. Each
  residual is divided by the typical spread of that target for the element's type (the model's
  `regression_scale`), so that a 0.1 % track momentum and a 15 % cluster energy weigh alike: without
  it, cluster residuals set the whole gradient and track momenta are never learnt to the precision the
  track already has.
* loss_gev — Huber (δ = gev_delta GeV) of the decoded particle's pT and E errors in GeV, only where the
  target is a particle. loss_reg measures every element's error relative to its own scale, so a 30 GeV
  cluster and a 1 GeV one weigh alike; a jet's energy is a sum, and its resolution is set by the
  absolute errors of the large clusters — most of all how much of a merged cluster a neutral hadron or
  photon holds beside a charged hadron's deposit. This term spends the gradient where the jet needs it.
  Off by default (gev_weight 0).

The weights: a standardised Huber term is O(1) per target while a converged cross-entropy is O(0.1),
so with equal weights the shared layers serve the regression (whose angular part is mostly
irreducible tails) and the class decisions, which decide whether a particle's energy is in a jet at
all, get too little of the gradient; cls_weight = 4 restores the balance.

Each term is a mean over the elements it covers in the batch, so batches with longer events weigh more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colliderflow.models.mlpf import ELEM_ENERGY, ELEM_PT, MLPFOutput, decode_momentum, regression_targets
from colliderflow.train.config import LossConfig  # the `train.loss` section (no torch there)
from colliderflow.schema import PF


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float) -> torch.Tensor:
    """Per-element focal loss (Lin et al. 2017) [M] of logits [M, C] against class indices [M].

    γ = 0 is cross-entropy.
    """
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, target[:, None])[:, 0]  # [M], log p_true
    return -((1.0 - logp.exp()) ** gamma) * logp


def _mean(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mean of a possibly empty tensor: zero (still in the graph) when empty, e.g. a batch of no particles."""
    return values.mean() if values.numel() else like.sum() * 0.0


def mlpf_loss(out: MLPFOutput, X: torch.Tensor, ytarget: torch.Tensor, mask: torch.Tensor,
              config: LossConfig, *, scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{"loss", "loss_cls", "loss_charge", "loss_reg", "loss_gev"} as scalar tensors; "loss" is the one to
    backpropagate.

    X [B, N, 17], ytarget [B, N, 8], mask [B, N] (True for real elements), out from the model; scale
    [B, N, 5] the spread each regression residual is measured in (models.mlpf.MLPF.element_regression_scale),
    None for raw residuals. The reported terms are unweighted.
    """
    cls_true = ytarget[..., PF["cls_id"]].round().long()  # [B, N]
    is_particle = mask & (cls_true > 0)  # [B, N]

    # Selecting rows (rather than multiplying by the mask) keeps padding rows out of the graph entirely.
    cls_logits = out.cls_logits[mask].float()  # [M, 6]
    if config.classification == "focal":
        per_cls = focal_loss(cls_logits, cls_true[mask], gamma=config.focal_gamma)  # [M]
    else:
        per_cls = F.cross_entropy(cls_logits, cls_true[mask], reduction="none")
    loss_cls = _mean(per_cls, out.cls_logits)

    charge_true = ytarget[..., PF["charge"]].round().clamp(-1, 1).long() + 1  # [B, N] ∈ {0, 1, 2}
    per_charge = F.cross_entropy(out.charge_logits[is_particle].float(), charge_true[is_particle],
                                 reduction="none")  # [P]
    loss_charge = _mean(per_charge, out.charge_logits)

    pred = out.regression[is_particle].float()  # [P, 5]
    true = regression_targets(X, ytarget)[is_particle]  # [P, 5]
    loss_gev = _mean(absolute_momentum_loss(pred, X[is_particle], ytarget[is_particle], delta=config.gev_delta),
                     out.regression)
    if scale is not None:
        s = scale[is_particle].float()
        pred, true = pred / s, true / s
    if config.regression == "huber":
        per_reg = F.huber_loss(pred, true, reduction="none", delta=config.huber_delta).mean(-1)  # [P]
    else:
        per_reg = F.mse_loss(pred, true, reduction="none").mean(-1)
    loss_reg = _mean(per_reg, out.regression)

    return {
        "loss": (config.cls_weight * loss_cls + config.charge_weight * loss_charge + config.reg_weight * loss_reg
                 + config.gev_weight * loss_gev),
        "loss_cls": loss_cls,
        "loss_charge": loss_charge,
        "loss_reg": loss_reg,
        "loss_gev": loss_gev,
    }


def absolute_momentum_loss(pred: torch.Tensor, X: torch.Tensor, ytarget: torch.Tensor, *, delta: float) -> torch.Tensor:
    """Per particle [P]: mean of Huber(pT error) and Huber(E error), both in GeV, of the particles that
    `models.mlpf.decode_particles` would build from the regression outputs `pred` [P, 5] (log pT ratio
    and log E ratio to the element's X [P, 17]) against the targets [P, 8]. pT is not capped at E here, so
    that the pT head keeps its gradient where it overshoots."""
    pt = decode_momentum(pred[:, 0], X[:, ELEM_PT])
    energy = decode_momentum(pred[:, 4], X[:, ELEM_ENERGY])
    return 0.5 * (F.huber_loss(pt, ytarget[:, PF["pt"]].float(), reduction="none", delta=delta)
                  + F.huber_loss(energy, ytarget[:, PF["energy"]].float(), reduction="none", delta=delta))
