"""Per-item sampling weights in item order, read one range of items at a time.

The batch sampler (colliderflow.train.sampling.EpochBatchSampler) needs the weights of one shuffle
window's items when it draws that window, and otherwise only each storage block's total. Holding every
item's float64 weight would cost 8 bytes an item for the whole run (80 MB at ten million jets, a GB at
JetClass-II's full training set), so the weights, once joined to the items' keys, are written in item
order to an unlinked scratch file (`spill`) and a window's ranges are read back with `pread` when it is
drawn: no mapping, so nothing of the file counts in the process's memory, and the page cache serves
the epochs after the first. Small sets and tests keep the array in memory (`from_array`); both give the
same values, so the draws are the same bytes either way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np
import torch

_READ_ITEMS = 1 << 20  # items read at a time when scanning the whole file (block totals)


class ItemWeights:
    """n float64 weights (or other per-item values of one `dtype`: the sampler's bucketing lengths are int32),
    item i at position i: `read(a, e)` returns items a … e - 1 (a copy)."""

    def __init__(self, n: int, *, array: np.ndarray | None = None, file: BinaryIO | None = None,
                 dtype: np.dtype | type = np.float64) -> None:
        if (array is None) == (file is None):
            raise ValueError("ItemWeights: give the weights as an array or as a file, once")
        self.n = int(n)
        self.dtype = np.dtype(dtype) if array is None else array.dtype
        self._array = array
        self._file = file

    @classmethod
    def from_array(cls, values: np.ndarray | torch.Tensor, dtype: np.dtype | type = np.float64) -> ItemWeights:
        """Values held in memory (as `dtype`, not copied when already of it)."""
        array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        return cls(len(array), array=np.ascontiguousarray(array, dtype=dtype))

    @classmethod
    def spill(cls, values: np.ndarray | torch.Tensor, *, directory: str | None = None) -> ItemWeights:
        """Weights written to an unlinked scratch file (under `directory`, default TMPDIR), then only read
        back by range: the caller can drop `values` and hold nothing per item."""
        array = np.ascontiguousarray(values.numpy() if isinstance(values, torch.Tensor) else values,
                                     dtype=np.float64)
        return cls.spill_chunks(len(array), (array[a : a + _READ_ITEMS] for a in range(0, len(array), _READ_ITEMS)),
                                directory=directory)

    @classmethod
    def spill_chunks(cls, n: int, chunks: Iterable[np.ndarray], *, directory: str | None = None,
                     dtype: np.dtype | type = np.float64) -> ItemWeights:
        """`spill` of weights given as consecutive pieces (items 0 … in order, n in all): only one piece is
        ever in memory. The file is closed if a piece fails (the error propagates)."""
        file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115  (lives as long as this object)
        written = 0
        try:
            for piece in chunks:
                piece = np.ascontiguousarray(piece, dtype=dtype)
                try:
                    file.write(memoryview(piece).cast("B"))
                except OSError as exc:
                    raise OSError(f"{directory or tempfile.gettempdir()}: cannot write the sampling-weights scratch "
                                  f"file: {exc}") from exc
                written += len(piece)
            file.flush()
        except BaseException:
            file.close()
            raise
        if written != n:
            file.close()
            raise ValueError(f"sampling weights: {written} written for {n} items")
        return cls(n, file=file, dtype=dtype)

    def __len__(self) -> int:
        return self.n

    @property
    def in_memory(self) -> bool:
        return self._array is not None

    def read(self, start: int, end: int) -> np.ndarray:
        """[end - start] of `dtype`: the values of items start … end - 1."""
        if not 0 <= start <= end <= self.n:
            raise IndexError(f"weights of items {start}:{end} asked of {self.n}")
        if self._array is not None:
            return self._array[start:end].copy()
        out = np.empty(end - start, self.dtype)
        view, offset = memoryview(out).cast("B"), start * self.dtype.itemsize
        fd = self._file.fileno()  # type: ignore[union-attr]
        while len(view):
            got = os.preadv(fd, [view], offset)
            if got <= 0:
                raise OSError(f"sampling scratch file ended at byte {offset} of {self.n * self.dtype.itemsize}")
            view, offset = view[got:], offset + got
        return out

    def gather(self, ranges: Iterable[tuple[int, int]]) -> np.ndarray:
        """The weights of some item ranges, concatenated in the order given."""
        parts = [self.read(a, e) for a, e in ranges]
        return np.concatenate(parts) if parts else np.zeros(0, self.dtype)

    def runs(self, starts: np.ndarray, ends: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """(first block, end block, weights of those whole blocks) over contiguous blocks [starts, ends),
        about _READ_ITEMS items a read (a larger block is read alone): a scan in bounded memory."""
        b, n_blocks = 0, len(starts)
        while b < n_blocks:
            e = b + 1
            while e < n_blocks and ends[e] - starts[b] <= _READ_ITEMS:
                e += 1
            yield b, e, self.read(int(starts[b]), int(ends[e - 1]))
            b = e

    def block_sums(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """[n_blocks] Σ weight of each block [starts[k], ends[k]) (contiguous blocks covering every item),
        each summed exactly as np.add.reduceat over the whole array would (the sum of one block at a time)."""
        out = np.empty(len(starts), np.float64)
        for b, e, values in self.runs(starts, ends):
            out[b:e] = np.add.reduceat(values, starts[b:e] - starts[b])
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

