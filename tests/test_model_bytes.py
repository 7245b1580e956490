"""Same model, same bytes: model.pt must not depend on the temporary name of its atomic write."""

from __future__ import annotations

import torch

from colliderflow.models.part import ParT, ParTConfig
from colliderflow.train.checkpoint import save_model


def test_saving_the_same_model_twice_gives_identical_bytes(tmp_path) -> None:
    torch.manual_seed(0)
    model = ParT(ParTConfig(embedding_dim=8, embed_hidden=8, num_heads=2, num_layers=1, num_cls_layers=1,
                            ff_dim=8, pair_hidden=4, num_classes=3))
    params = {"model": "part"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        save_model(tmp_path / name / "model.pt", model, params=params, seed=1, step=3, n_params=1)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
