"""Does `graft rank` predict transfer? Kendall tau between rank scores and the accuracy users reach.

The comparison is with the transfer people actually run from these candidates
on a few-shot set: ``graft tune --policy frozen`` (a linear head on cached
features) by default, optionally also ``top-k`` (the last K layer groups and
the head train). For each (dataset, shots) pair the candidates (the zoo's
pretrained vision models and the same architectures at random
initialisation) are ranked on the exact training subset that ``graft tune``
then trains on (same stratified split, same seed, same few-shot limit; a
random-init candidate is the same seeded network in both); each
candidate is then trained with every policy and its final validation accuracy
(on the held-out 20 %, never seen by rank) recorded. Prints per-dataset tables,
tau for each score against each policy, and the time of ranking against the
time of the fine-tunes it replaces.

The defaults below are the settings of the reported figures, fixed before the
run (image size 64; frozen: 100 epochs at lr 1e-2, which a linear head on 100
cached feature vectors converges in; top-k: 20 epochs at lr 1e-3, K=2).

    OMP_NUM_THREADS=1 GRAFTZOO_HOME=/tmp/gz-bench .venv/bin/python bench/rank_vs_finetune.py \
        [--datasets digits digits-inverted] [--per-class 10] [--policies frozen [top-k]]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# One BLAS/OpenMP thread: on a shared 2-core machine, 2 threads spin-wait and run ~10x slower.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")


MODELS = ("mobilenetv2_100.tv_in1k", "efficientnet_lite0.lukemelas_in1k")
#: Per-policy training settings: (epochs, lr, batch size, extra TrainConfig fields).
POLICY_SETTINGS: dict[str, tuple[int, float, int, dict[str, Any]]] = {
    "frozen": (100, 1e-2, 16, {}),
    "top-k": (20, 1e-3, 16, {"unfreeze": 2}),
    "full": (20, 1e-3, 16, {}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["digits", "digits-inverted"])
    ap.add_argument("--per-class", nargs="+", type=int, default=[10],
                    help="few-shot limits; every dataset is run at each")
    ap.add_argument("--policies", nargs="+", default=["frozen"], choices=sorted(POLICY_SETTINGS))
    ap.add_argument("--epochs", type=int, default=None, help="override every policy's epochs")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
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
    print(f"settings: image size {args.image_size}, seed {args.seed}, candidates "
          f"{', '.join(c.label for c in candidates)}", flush=True)
    for policy in args.policies:
        epochs, lr, batch, extra = POLICY_SETTINGS[policy]
        print(f"  {policy}: {args.epochs or epochs} epochs, lr {lr}, batch {batch} {extra or ''}", flush=True)
    all_rank_s = 0.0
    all_tune_s = dict.fromkeys(args.policies, 0.0)
    summary = []
    for spec in args.datasets:
        data = load_data(spec, modality="vision")
        for shots in args.per_class:
            train_idx, val_idx = stratified_split(data.labels, 0.2, args.seed)
            train_idx = limit_per_class(train_idx, data.labels, shots, args.seed)
            t0 = time.perf_counter()
            ranked = rank_models(data.subset(train_idx), candidates, options={"image_size": args.image_size},
                                 seed=args.seed, progress=False)
            rank_s = time.perf_counter() - t0
            all_rank_s += rank_s
            tuned: dict[str, dict[tuple[str, bool], float]] = {p: {} for p in args.policies}
            tune_s = dict.fromkeys(args.policies, 0.0)
            for policy in args.policies:
                epochs, lr, batch, extra = POLICY_SETTINGS[policy]
                for cand in candidates:
                    config = TrainConfig(model=cand.entry.id, data=spec, policy=policy, epochs=args.epochs or epochs,
                                         image_size=args.image_size, limit_per_class=shots, seed=args.seed,
                                         pretrained=cand.pretrained, batch_size=batch, lr=lr, **extra)
                    t1 = time.perf_counter()
                    info = train(config, out_root / f"{spec}-{shots}-{policy}-{cand.entry.arch_name}-"
                                 f"{int(cand.pretrained)}", data=data, progress=False)
                    tune_s[policy] += time.perf_counter() - t1
                    tuned[policy][(cand.entry.id, cand.pretrained)] = float(info["final"]["accuracy"])
                all_tune_s[policy] += tune_s[policy]
            print(f"\n== {spec}, {shots}/class: {len(train_idx)} training / {len(val_idx)} validation samples",
                  flush=True)
            print(f"{'model':<52} {'logme':>8} {'knn':>6} {'linear':>7}"
                  + "".join(f" {p + ' acc':>11}" for p in args.policies))
            for r in ranked:
                name = r.model + ("" if r.pretrained else " (random init)")
                print(f"{name:<52} {r.logme:>8.4f} {r.knn:>6.3f} {r.linear:>7.3f}"
                      + "".join(f" {tuned[p][(r.model, r.pretrained)]:>11.3f}" for p in args.policies))
            for policy in args.policies:
                acc = [tuned[policy][(r.model, r.pretrained)] for r in ranked]
                for score in ("logme", "knn", "linear"):
                    tau = float(kendalltau([getattr(r, score) for r in ranked], acc).statistic)
                    summary.append((spec, shots, policy, score, tau))
                    print(f"Kendall tau({score}, {policy} accuracy) = {tau:+.3f}")
            print(f"time: rank {rank_s:.1f} s for {len(candidates)} candidates vs "
                  + ", ".join(f"{p} fine-tunes {s:.1f} s ({s / rank_s:.1f}x)" for p, s in tune_s.items()),
                  flush=True)
    print("\nsummary (Kendall tau-b):")
    print(f"{'dataset':<18} {'shots':>5} {'policy':<7} {'logme':>7} {'knn':>7} {'linear':>7}")
    for key in dict.fromkeys((s, n, p) for s, n, p, _, _ in summary):
        taus = {score: tau for s, n, p, score, tau in summary if (s, n, p) == key}
        print(f"{key[0]:<18} {key[1]:>5} {key[2]:<7} {taus['logme']:>+7.3f} {taus['knn']:>+7.3f} "
              f"{taus['linear']:>+7.3f}")
    print(f"all: rank {all_rank_s:.1f} s vs " + ", ".join(
        f"{p} fine-tunes {s:.1f} s ({s / all_rank_s:.1f}x)" for p, s in all_tune_s.items()))


if __name__ == "__main__":
    main()
