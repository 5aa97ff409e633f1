"""The devkit tests run tiny networks: one torch thread each.

On this 2-core machine shared by several processes, torch's default thread
pool spins and contends: the conformance checks of a tiny plugin took 16 s
with the default and 1 s with one thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the subprocesses the tests start
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
