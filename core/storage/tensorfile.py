"""Safetensors files written tensor by tensor, straight from the tensors' memory.

``safetensors.torch.save``/``save_file`` first turn every tensor into a
``bytes`` object, a second full copy of the weights or features in memory;
``write_safetensors`` writes the same format (header, then each tensor's raw
little-endian bytes) from a byte view of each tensor, so writing a cache entry
costs no more memory than the tensors themselves. Reading goes through
``safetensors.torch.load_file``, which memory-maps the file, or, for data
read piece by piece (cached features of a big data set), through
``tensor_layout`` (where a tensor's bytes lie) and ``read_into`` (plain
reads at an offset into a caller's reused buffer: nothing stays resident).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import torch


def _dtype_names() -> dict[torch.dtype, str]:
    import torch

    return {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
            torch.bool: "BOOL"}


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write CPU ``tensors`` to ``path`` in the safetensors format, without a copy in memory.

    Tensors that share storage (tied weights) are written each in full, as safetensors wants.

    A dtype the format names but this writer does not (float8 kinds) falls back to ``save_file``.
    """
    import torch

    names = _dtype_names()
    if sys.byteorder != "little" or any(t.dtype not in names for t in tensors.values()):
        from safetensors.torch import save_file

        plain = {k: v.detach().clone().contiguous() for k, v in tensors.items()}  # save_file refuses shared storage
        save_file(plain, str(path), metadata=dict(metadata) if metadata else None)
        return
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    order = sorted(tensors)
    for name in order:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors itself writes it
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for name in order:
            t = tensors[name].detach()
            if t.numel():
                fh.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)


#: A header longer than this is not a safetensors header (the format's own limit is 100 MB).
MAX_HEADER = 100_000_000


@dataclass(frozen=True)
class Layout:
    """Where one tensor's bytes lie in a safetensors file."""

    offset: int  # from the start of the file
    shape: tuple[int, ...]
    dtype: str  # the format's name: "F32", "F64", ...
    nbytes: int


def tensor_layout(fh: BinaryIO, name: str) -> Layout | None:
    """The layout of tensor ``name`` in the open safetensors file ``fh`` (None: no such tensor).

    Raises ``ValueError`` for a file that is not safetensors (a short or absurd header, bad JSON).
    """
    fh.seek(0)
    head = fh.read(8)
    if len(head) != 8:
        raise ValueError("shorter than a safetensors header")
    (size,) = struct.unpack("<Q", head)
    if size > MAX_HEADER:
        raise ValueError(f"a header of {size} bytes")
    raw = fh.read(size)
    if len(raw) != size:
        raise ValueError("truncated header")
    entry = json.loads(raw).get(name)
    if not isinstance(entry, dict):
        return None
    start, stop = (int(v) for v in entry["data_offsets"])
    return Layout(8 + size + start, tuple(int(v) for v in entry["shape"]), str(entry["dtype"]), stop - start)


def read_into(fd: int, buffer: torch.Tensor, offset: int) -> None:
    """Fill the contiguous CPU ``buffer`` with the file's bytes from ``offset`` on (``preadv``: no copy, no seek,
    so several readers may share ``fd``). Raises ``OSError`` when the file ends first."""
    view = buffer.numpy().data.cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"file ends {len(view) - done} bytes early")
        done += got
