"""MLPF's element feature transform, which lives inside the model.

The statistics are buffers of `ElementNormaliser`, so a saved model takes raw `X` straight from the
dataset and nothing outside it needs to know them. `fit_normalisation` computes them from a sequence of
event dicts (the training split) once, before training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderflow.schema import (
    CLUSTER_FEATURES,
    ELEM_TYPE_CLUSTER,
    ELEM_TYPE_TRACK,
    N_ELEM_FEATURES,
    TRACK_FEATURES,
)

Event = dict[str, Any]

# --------------------------------------------------------------------------------------------------

# Energies, momenta, counts and widths span orders of magnitude: log1p makes them roughly Gaussian.
# Angles, positions and signed helix parameters are only centred and scaled.
LOG_FEATURES: dict[int, tuple[str, ...]] = {
    ELEM_TYPE_TRACK: ("pt", "p", "chi2", "ndf", "dEdx", "dEdxError", "radiusOfInnermostHit"),
    ELEM_TYPE_CLUSTER: (
        "et", "energy", "energy_ecal", "energy_hcal", "energy_other", "num_hits", "sigma_x", "sigma_y", "sigma_z",
    ),
}
_N_TYPES = 3  # row 0: padding / unknown type (identity), row 1: tracks, row 2: clusters
CLIP = 10.0  # normalised features are clipped to ±CLIP so that one broken element cannot blow up a batch


def _log_mask() -> torch.Tensor:
    """[3, 17] bool: which column of which element type is log-transformed."""
    mask = torch.zeros(_N_TYPES, N_ELEM_FEATURES, dtype=torch.bool)
    for etype, names in ((ELEM_TYPE_TRACK, TRACK_FEATURES), (ELEM_TYPE_CLUSTER, CLUSTER_FEATURES)):
        for name in LOG_FEATURES[etype]:
            mask[etype, names.index(name)] = True
    return mask


def element_type_index(X: torch.Tensor) -> torch.Tensor:
    """Row of the per-type tables for each element: 1 track, 2 cluster, 0 anything else (padding)."""
    etype = X[..., 0].round().long()  # [...]
    return torch.where((etype == ELEM_TYPE_TRACK) | (etype == ELEM_TYPE_CLUSTER), etype, 0)


def transform_elements(X: torch.Tensor, log_mask: torch.Tensor) -> torch.Tensor:
    """X [..., 17] → log1p of the heavy-tailed columns (negative values clamped to 0).

    NaN becomes 0 and ±inf a large finite value, which the normaliser's clipping then bounds.
    """
    logm = log_mask[element_type_index(X)]  # [..., 17]
    out = torch.where(logm, torch.log1p(X.clamp(min=0.0)), X)
    return torch.nan_to_num(out, nan=0.0, posinf=1e9, neginf=-1e9)


@dataclass
class Normalisation:
    """Per-element-type centre and scale of the transformed features; arrays of shape [3, 17]."""

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def identity(cls) -> Normalisation:
        return cls(np.zeros((_N_TYPES, N_ELEM_FEATURES), np.float32), np.ones((_N_TYPES, N_ELEM_FEATURES), np.float32))

    def to_dict(self) -> dict[str, Any]:
        return {
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "log_features": {str(k): list(v) for k, v in LOG_FEATURES.items()},
        }


def fit_normalisation(events: Sequence[Event], *, max_events: int = 2000) -> Normalisation:
    """Robust centre (median) and scale (IQR / 1.349) of each transformed feature, per element type.

    Medians and quantiles, not mean and std, because a few mis-measured elements (a 1e4 GeV cluster, a
    χ² of 1e6) would otherwise set the scale for everything. Uses up to `max_events` events spread evenly
    over the sequence, so the result is deterministic and costs one partial pass.
    """
    n = len(events)
    if n == 0:
        raise ValueError("cannot fit the feature normalisation on zero events")
    idx = np.unique(np.linspace(0, n - 1, num=min(n, max_events)).round().astype(int)).tolist()
    getitems = getattr(events, "__getitems__", None)
    chosen = getitems(idx) if getitems else [events[i] for i in idx]
    X = torch.from_numpy(np.concatenate([np.asarray(ev["X"], np.float32).reshape(-1, N_ELEM_FEATURES)
                                         for ev in chosen]))  # [n_elements_total, 17]
    Xt = transform_elements(X, _log_mask())
    etype = element_type_index(X)
    norm = Normalisation.identity()
    for t in (ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER):
        rows = Xt[etype == t].double().numpy()  # [n_t, 17]
        if len(rows) < 2:
            continue
        q25, q50, q75 = np.quantile(rows, [0.25, 0.5, 0.75], axis=0)
        scale = (q75 - q25) / 1.349  # = σ for a Gaussian
        std = rows.std(axis=0)
        # Columns that are mostly one value (ndf, energy_other, the pad column): fall back to std, then 1.
        # (An absolute floor, not a relative one: dE/dx is ~1e-7 GeV/mm and must keep its spread.)
        scale = np.where(scale > 1e-12, scale, np.where(std > 1e-12, std, 1.0))
        norm.center[t] = q50
        norm.scale[t] = scale
    norm.center[:, 0], norm.scale[:, 0] = 0.0, 1.0  # the type column itself is not a feature
    return norm


class ElementNormaliser(nn.Module):
    """Raw X [B, N, 17] → normalised features [B, N, 16] (the type column dropped), clipped to ±CLIP.

    The statistics are buffers, so they travel with the model's state_dict and a loaded model takes raw
    elements straight from the dataset.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("log_mask", _log_mask(), persistent=False)
        self.register_buffer("center", torch.zeros(_N_TYPES, N_ELEM_FEATURES))
        self.register_buffer("scale", torch.ones(_N_TYPES, N_ELEM_FEATURES))

    def set_statistics(self, norm: Normalisation) -> None:
        self.center.copy_(torch.as_tensor(norm.center, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(norm.scale, dtype=torch.float32))

    def statistics(self) -> Normalisation:
        return Normalisation(self.center.cpu().numpy().copy(), self.scale.cpu().numpy().copy())

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        etype = element_type_index(X)  # [B, N]
        Xt = transform_elements(X, self.log_mask)  # [B, N, 17]
        z = (Xt - self.center[etype]) / self.scale[etype]
        return z[..., 1:].clamp(-CLIP, CLIP)  # [B, N, 16]
