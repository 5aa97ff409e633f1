"""Does `graft rank` predict fine-tuning? Kendall tau between rank scores and fine-tuned accuracy.

For each dataset, the candidates (the zoo's pretrained vision models and the
same architectures at random initialisation) are ranked on the exact training
subset that `graft tune` then fine-tunes on (same stratified split, same seed,
same few-shot limit); each candidate is then fine-tuned (policy full) and its
final validation accuracy recorded. Prints per-dataset tables, tau for each
score and the time of ranking against the time of the fine-tunes it replaces.

    .venv/bin/python bench/rank_vs_finetune.py [--epochs 10] [--lr 3e-3] [--batch-size 16] \
        [--image-size 32] [--per-class 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# One BLAS/OpenMP thread: on a shared 2-core machine, 2 threads spin-wait and run ~10x slower.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")


MODELS = ("mobilenetv2_100.tv_in1k", "efficientnet_lite0.lukemelas_in1k")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["digits", "digits-inverted"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import torch
    from scipy.stats import kendalltau

    from graftzoo.data import load_data
    from graftzoo.diagnostics.rank import Candidate, rank_models
    from graftzoo.registry import load_registry
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.split import limit_per_class, stratified_split

    torch.set_num_threads(1)
    registry = load_registry()
    candidates = [Candidate(registry.get(m), p) for p in (True, False) for m in MODELS]
    out_root = Path(tempfile.mkdtemp(prefix="graft-bench-rank-"))
    all_rank_s = all_tune_s = 0.0
    for spec in args.datasets:
        data = load_data(spec, modality="vision")
        train_idx, _ = stratified_split(data.labels, 0.2, args.seed)
        train_idx = limit_per_class(train_idx, data.labels, args.per_class, args.seed)
        t0 = time.perf_counter()
        ranked = rank_models(data.subset(train_idx), candidates, options={"image_size": args.image_size},
                             seed=args.seed, progress=False)
        rank_s = time.perf_counter() - t0
        tuned: dict[tuple[str, bool], float] = {}
        tune_s = 0.0
        for cand in candidates:
            config = TrainConfig(model=cand.entry.id, data=spec, policy="full", epochs=args.epochs,
                                 image_size=args.image_size, limit_per_class=args.per_class, seed=args.seed,
                                 pretrained=cand.pretrained, batch_size=args.batch_size, lr=args.lr)
            t1 = time.perf_counter()
            info = train(config, out_root / f"{spec}-{cand.entry.arch_name}-{int(cand.pretrained)}",
                         data=data, progress=False)
            tune_s += time.perf_counter() - t1
            tuned[(cand.entry.id, cand.pretrained)] = float(info["final"]["accuracy"])
        all_rank_s += rank_s
        all_tune_s += tune_s
        print(f"\n== {spec}: {len(train_idx)} training samples ({args.per_class}/class), image size "
              f"{args.image_size}, fine-tune: policy full, {args.epochs} epochs, lr {args.lr}, "
              f"batch {args.batch_size}", flush=True)
        print(f"{'model':<52} {'logme':>8} {'knn':>6} {'linear':>7} {'tuned acc':>9}")
        for r in ranked:
            name = r.model + ("" if r.pretrained else " (random init)")
            print(f"{name:<52} {r.logme:>8.4f} {r.knn:>6.3f} {r.linear:>7.3f} {tuned[(r.model, r.pretrained)]:>9.3f}")
        acc = [tuned[(r.model, r.pretrained)] for r in ranked]
        for score in ("logme", "knn", "linear"):
            tau = kendalltau([getattr(r, score) for r in ranked], acc).statistic
            print(f"Kendall tau({score}, fine-tuned accuracy) = {tau:+.3f}")
        print(f"time: rank {rank_s:.1f} s for {len(candidates)} candidates vs fine-tunes {tune_s:.1f} s "
              f"({tune_s / rank_s:.1f}x)")
    print(f"\nall datasets: rank {all_rank_s:.1f} s vs fine-tunes {all_tune_s:.1f} s ({all_tune_s / all_rank_s:.1f}x)")


if __name__ == "__main__":
    main()
