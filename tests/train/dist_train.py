"""Run by test_distributed: one training run, single- or multi-process; final metrics to a JSON file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from graftzoo.plugins import reset_plugins
from graftzoo.train.config import TrainConfig
from graftzoo.train.engine import train
from tests.train import tiny

if __name__ == "__main__":
    weights_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    reset_plugins(entry_points=False)
    tiny.install(weights_dir)
    # 90 training samples, batches of 18: every global batch splits evenly between two processes.
    # bitfit keeps BatchNorm in eval mode and augmentation is off, so each process's half-batch gradient,
    # averaged, is exactly the full-batch gradient: the runs must agree up to float rounding.
    cfg = TrainConfig(model=tiny.MODEL_ID, data="tinydigits", policy="bitfit", epochs=2, lr=0.01, batch_size=18,
                      val_split=0.25, backbone_options={"augment": 0})
    info = train(cfg, out / "run", progress=False)
    from accelerate.state import PartialState

    state = PartialState()
    if state.is_main_process:
        (out / "result.json").write_text(json.dumps({"final": info["final"], "epochs": info["epochs"],
                                                     "processes": state.num_processes}))
