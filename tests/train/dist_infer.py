"""Run by test_distributed: feature extraction, rank and evaluate, single- or multi-process; results to JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from graftzoo.plugins import reset_plugins
from graftzoo.registry import load_registry
from graftzoo.train import parallel
from graftzoo.train.build import build_backbone
from graftzoo.train.features import extract_features
from tests.train import tiny

if __name__ == "__main__":
    torch.set_num_threads(1)
    weights_dir, run_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    reset_plugins(entry_points=False)
    tiny.install(weights_dir)
    from graftzoo.diagnostics.rank import Candidate, rank_models
    from graftzoo.diagnostics.run_evaluation import evaluate_with_report
    from graftzoo.train.run import load_run

    data = tiny.digits(per_class=21)  # 105 samples: the two shards differ in size by one
    entry = load_registry().get(tiny.MODEL_ID)
    backbone = build_backbone(entry, pretrained=True, options={})
    # batch 8 with workers: shards of 53 and 52 rows, decoded in a DataLoader worker process
    feats = extract_features(backbone, data, batch_size=8, progress=False, workers=1)
    ranked = rank_models(data, [Candidate(entry)], batch_size=16, folds=3, progress=False)
    metrics = evaluate_with_report(load_run(run_dir), data, batch_size=16, shift=True, progress=False)
    if parallel.is_main_process():
        (out / "result.json").write_text(json.dumps({
            "processes": parallel.world_size(), "features": feats.tolist(), "rank": ranked[0].to_dict(),
            "metrics": {k: v for k, v in metrics.items() if k != "report"},
            "report": metrics["report"]}, default=str))
