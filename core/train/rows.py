"""Feature rows read chunk by chunk: what a frozen run fits and scores on, without holding them in memory.

A frozen run's features live in the on-disk cache (``graftzoo.train.features``);
a probe fitted on 50,000 of them must not cost 50,000 rows of memory. ``Rows``
is the one interface the probe, the head's metrics and the feature loader use:

* ``chunks()`` yields ``(positions, x)`` blocks of at most ``CHUNK_BYTES`` of
  float32 rows (``positions``: which of this set's rows they are, so a caller
  never needs them in order); ``x`` is a view of a buffer reused for the next
  block, valid until the iteration moves on;
* ``FileRows``: rows of a safetensors file, read with plain ``preadv`` calls into
  that buffer (no memory map: resident file-backed pages count in RSS); a subset
  (``take``: a split's indices) is read block by block of the file in file
  order, the rows it wants gathered out of each block;
* ``TensorRows``: rows already in memory (small data, no cache key);
* ``ConcatRows``: a split's rows followed by its ``--augment-views`` passes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import torch

from graftzoo.storage.tensorfile import Layout, read_into

#: Bytes of float32 rows per chunk (a few MB: the matrix products stay efficient, memory stays flat).
CHUNK_BYTES = 2 * 2**20

Chunk = tuple[torch.Tensor, torch.Tensor]  # (positions [m] int64, rows [m, dim] float32)


class Rows(ABC):
    """``n`` rows of ``dim`` float32 features, read chunk by chunk."""

    n: int
    dim: int

    def __len__(self) -> int:
        return self.n

    def chunk_rows(self) -> int:
        """Rows per chunk: ``CHUNK_BYTES`` of them, at least one."""
        return max(1, CHUNK_BYTES // max(1, 4 * self.dim))

    @abstractmethod
    def chunks(self) -> Iterator[Chunk]:
        """Every row once, as ``(positions, x)`` blocks (``x`` is only valid until the next block)."""

    @abstractmethod
    def row(self, i: int) -> torch.Tensor:
        """Row ``i`` as a tensor of its own."""

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """The rows at ``index`` as one ``[len(index), dim]`` tensor of its own."""
        return torch.stack([self.row(int(i)) for i in index]) if len(index) else torch.empty(0, self.dim)

    def tensor(self) -> torch.Tensor:
        """All rows in memory, in order (for small data)."""
        out = torch.empty(self.n, self.dim)
        for pos, x in self.chunks():
            out[pos] = x
        return out


class TensorRows(Rows):
    """Rows already in memory."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x.float()
        self.n, self.dim = int(x.shape[0]), int(x.shape[1])

    def chunks(self) -> Iterator[Chunk]:
        step = self.chunk_rows()
        for start in range(0, self.n, step):
            stop = min(self.n, start + step)
            yield torch.arange(start, stop), self.x[start:stop]

    def row(self, i: int) -> torch.Tensor:
        return self.x[i].clone()

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        return self.x[index]

    def take(self, index: Sequence[int]) -> TensorRows:
        """The rows at ``index``, in that order."""
        return TensorRows(self.x[torch.as_tensor(list(index), dtype=torch.long)])

    def tensor(self) -> torch.Tensor:
        return self.x


class FileRows(Rows):
    """Rows ``rows`` (all when None) of a 2-D float32 tensor of an open safetensors file."""

    def __init__(self, fh: BinaryIO, layout: Layout, rows: torch.Tensor | None = None) -> None:
        if layout.dtype != "F32" or len(layout.shape) != 2:
            raise ValueError(f"rows of a 2-D F32 tensor, not {layout.dtype} {list(layout.shape)}")
        self.fh, self.layout = fh, layout
        self.dim = layout.shape[1]
        self.rows = rows
        self.n = layout.shape[0] if rows is None else len(rows)
        self._order: tuple[torch.Tensor, torch.Tensor, bool] | None = None

    def take(self, index: Sequence[int]) -> FileRows:
        """The rows at ``index`` (of this set), in that order; nothing is read."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return FileRows(self.fh, self.layout, idx if self.rows is None else self.rows[idx])

    def row(self, i: int) -> torch.Tensor:
        out = torch.empty(1, self.dim)
        read_into(self.fh.fileno(), out, self._offset(int(i if self.rows is None else self.rows[i])))
        return out[0]

    def _offset(self, file_row: int) -> int:
        return self.layout.offset + file_row * self.dim * 4

    def _sorted(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(file rows ascending, the position of each in this set, whether no file row is wanted twice)."""
        if self._order is None:
            if self.rows is None:
                self._order = torch.arange(self.n), torch.arange(self.n), True
            else:
                file_rows, order = torch.sort(self.rows, stable=True)
                self._order = file_rows, order, bool((file_rows[1:] != file_rows[:-1]).all())
        return self._order

    def chunks(self) -> Iterator[Chunk]:
        step = self.chunk_rows()
        file_rows, order, unique = self._sorted()
        buffer = torch.empty(step, self.dim)
        gathered = torch.empty(step, self.dim)
        fd = self.fh.fileno()
        i = 0
        while i < self.n:
            first = int(file_rows[i])  # this block: the wanted rows within `step` file rows of the first
            j = min(i + step, int(torch.searchsorted(file_rows, first + step)))
            span = int(file_rows[j - 1]) - first + 1
            read_into(fd, buffer[:span], self._offset(first))
            if unique and span == j - i:  # every file row of the block is wanted, once: no gather
                yield order[i:j], buffer[:span]
            else:
                torch.index_select(buffer[:span], 0, file_rows[i:j] - first, out=gathered[:j - i])
                yield order[i:j], gathered[:j - i]
            i = j


class ConcatRows(Rows):
    """Several row sets one after the other (positions run on across them)."""

    def __init__(self, parts: Sequence[Rows]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.dim = parts[0].dim if parts else 0
        if any(p.dim != self.dim for p in self.parts):
            raise ValueError("row sets of different widths")
        self.n = sum(len(p) for p in self.parts)

    def chunks(self) -> Iterator[Chunk]:
        offset = 0
        for part in self.parts:
            for pos, x in part.chunks():
                yield pos + offset, x
            offset += len(part)

    def row(self, i: int) -> torch.Tensor:
        for part in self.parts:
            if i < len(part):
                return part.row(i)
            i -= len(part)
        raise IndexError("row index out of range")


class RowsDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(row, target)`` pairs for a DataLoader (epochs of SGD on cached features), each row read when asked."""

    def __init__(self, rows: Rows, targets: Sequence[int]) -> None:
        if len(rows) != len(targets):
            raise ValueError(f"{len(rows)} rows but {len(targets)} targets")
        self.rows, self.targets = rows, torch.as_tensor(list(targets), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rows.row(i), self.targets[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A whole batch in one go: one element, the stacked rows and their targets (``loaders._the_batch``)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return [(self.rows.gather(index), self.targets[index])]
