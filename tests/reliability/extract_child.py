"""A process that extracts (slowly) the tiny CNN's features of digits with the feature cache; prints batches run.

    python -m tests.reliability.extract_child WEIGHTS_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> None:
    """Extract, counting the backbone's forward calls (0 means the features came from the cache)."""
    import torch

    from graftzoo.train.build import build_backbone, resolve_entry
    from graftzoo.train.features import extract_features
    from tests.train import tiny

    torch.set_num_threads(1)
    tiny.install(Path(sys.argv[1]))
    backbone = build_backbone(resolve_entry(tiny.MODEL_ID), pretrained=True, options={})
    calls = []

    def slow(module: torch.nn.Module, args: object) -> None:
        calls.append(1)
        time.sleep(0.2)

    backbone.register_forward_pre_hook(slow)
    feats = extract_features(backbone, tiny.digits(), batch_size=16, cache_key="concurrent", progress=False)
    print(len(calls), float(feats.sum()))


if __name__ == "__main__":
    main()
