"""One BLAS/OpenMP/torch thread while the diagnostics tests run, restored afterwards.

On the shared 2-core test machine, two threads per process spin-wait against
other processes and run these small SVDs, probes and CNN steps ~10x slower.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
