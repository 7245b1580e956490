"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine threads only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class MemoryTfds:
    """TFDS directories that exist on disk (so path checks are real) but whose splits are served from
    memory through `colliderflow.train.data.open_split`, so model tests need no dataset build."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.splits: dict[Path, dict[str, list]] = {}

    def open_split(self, data_dir: Path, split: str) -> list:
        return self.splits[Path(data_dir)][split]

    def add(self, sample: str, **splits: list) -> Path:
        directory = self.root / "tfds" / sample
        directory.mkdir(parents=True)
        self.splits[directory] = splits
        return directory


@pytest.fixture()
def memory_tfds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryTfds:
    from colliderflow.train import data

    tfds = MemoryTfds(tmp_path)
    monkeypatch.setattr(data, "open_split", tfds.open_split)
    return tfds
