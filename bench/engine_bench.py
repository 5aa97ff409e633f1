"""Training-engine benchmarks, ratios side by side in one run.

1. ``frozen`` with the feature cache vs the same 10-epoch probe recomputing
   features every epoch (goal >= 8x faster at equal accuracy).
2. ``full`` fine-tune throughput of the engine vs a hand-written torch loop on
   the same model, data and collation (goal >= 0.97x).
3. Achieved FLOP/s of the CNN fine-tune vs this machine's fp32 matmul peak,
   measured here (goal >= 0.6).
4. Peak RSS of ``frozen`` vs ``full`` (goal <= 0.5).

Each measurement runs in its own process (peak RSS is per process). Model:
MobileNetV2 (torchvision ImageNet weights through the vision plugin) on the
digits set at --image-size. Usage: ``python bench/engine_bench.py [--per-class 40]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "mobilenetv2_100.tv_in1k"


def _data(per_class: int) -> Any:
    from graftzoo.data import load_data

    data = load_data("digits", modality="vision")
    keep: list[int] = []
    seen: dict[str, int] = {}
    for i, label in enumerate(data.labels):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return data.subset(keep)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _engine(policy: str, args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    from graftzoo.plugins import get_plugins
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.policies import Frozen

    class FrozenNoCache(Frozen):
        """The frozen probe without the cache: the backbone runs over the data every epoch."""

        name = "frozen-nocache"
        caches_features = False

    class BenchPlugin:
        from graftzoo import hookimpl

        @hookimpl
        def register_freeze_policies(self, register: Any) -> None:
            register("frozen-nocache", FrozenNoCache)

    get_plugins().add(BenchPlugin(), "engine-bench")
    if policy == "frozen-nocache":
        # The same probe as the cached run: deterministic (eval) collation, only without the cache.
        from graftzoo.train import loaders as loop

        make_collate = loop.make_collate
        loop.make_collate = lambda backbone, train, task: make_collate(backbone, False, task)
    data = _data(args.per_class)
    baseline_rss = _rss_mb()
    cfg = TrainConfig(model=MODEL, data="digits", policy=policy, epochs=epochs, image_size=args.image_size,
                      batch_size=args.batch_size, lr=0.01 if policy.startswith("frozen") else 0.001, seed=0)
    def probe_seconds(info: dict[str, Any]) -> float:
        return float(info["timing"].get("features_seconds", 0.0) + sum(row["seconds"] for row in info["epochs"]))

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        info = train(cfg, Path(out) / "run", data=data, progress=False)
        seconds = time.perf_counter() - t0
        warm = probe_seconds(train(cfg, Path(out) / "again", data=data, progress=False)) \
            if policy == "frozen" else None  # a second run: features read from the cache
    return {"seconds": seconds, "probe_seconds": probe_seconds(info), "warm_probe_seconds": warm,
            "accuracy": info["final"]["accuracy"],
            "epochs": info["epochs"], "n_train": info["data"]["n_train"], "rss_mb": _rss_mb(),
            "rss_before_mb": baseline_rss}


def _hand(args: argparse.Namespace) -> dict[str, Any]:
    """The same full fine-tune written as a plain torch loop; plus FLOPs per sample and the matmul peak."""
    import torch

    from graftzoo.train.build import build_backbone, resolve_entry
    from graftzoo.train.split import stratified_split

    data = _data(args.per_class)
    classes = data.classes
    train_idx, _ = stratified_split(data.labels, 0.2, 0)
    samples = [data.samples[i] for i in train_idx]
    targets = [classes.index(data.labels[i]) for i in train_idx]
    torch.manual_seed(0)
    backbone = build_backbone(resolve_entry(MODEL), True, {"image_size": args.image_size})
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.feature_dim, len(classes)))
    model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.0)

    def collate(items: list[tuple[Any, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return backbone.collate([s for s, _ in items], train=True), torch.tensor([t for _, t in items])

    loader = torch.utils.data.DataLoader(list(zip(samples, targets, strict=True)), batch_size=args.batch_size,
                                         shuffle=True, collate_fn=collate)
    epoch_seconds = []
    for _ in range(args.full_epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch_seconds.append(time.perf_counter() - t0)
    x, y = next(iter(loader))
    flops_per_sample = _train_flops(model, x) / x.shape[0]
    compute_per_sample = _step_seconds(model, opt, x, y) / x.shape[0]
    # A dense CNN for comparison (same input, random init): depthwise convolutions are memory-bound.
    import timm

    dense = timm.create_model("resnet18", pretrained=False, num_classes=len(classes)).to(
        memory_format=torch.channels_last)
    dense_opt = torch.optim.AdamW(dense.parameters(), lr=0.001)
    dense_flops = _train_flops(dense, x) / _step_seconds(dense, dense_opt, x, y)
    # fp32 matmul peak: best of several short trials (other processes share these cores)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(6):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, (time.perf_counter() - t0) / 4)
    peak = 2 * n**3 / best
    return {"epoch_seconds": epoch_seconds, "n_train": len(samples), "flops_per_sample": flops_per_sample,
            "compute_seconds_per_sample": compute_per_sample, "matmul_peak_flops": peak,
            "dense_step_flops": dense_flops}


def _train_flops(model: Any, x: Any) -> float:
    """FLOPs of one training step: 3x the counted forward FLOPs.

    FlopCounterMode counts forward convolutions correctly but treats grouped
    (depthwise) convolutions as dense in backward, overcounting MobileNet's
    backward ~20x; 3x forward is the standard estimate of forward + backward.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return 3.0 * counter.get_total_flops()


def _step_seconds(model: Any, opt: Any, x: Any, y: Any, steps: int = 3, trials: int = 3) -> float:
    """Best-of-``trials`` seconds of one training step on a pre-collated batch (no data pipeline)."""
    import torch

    model.train()
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def _child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "hand":
        return _hand(args)
    epochs = args.probe_epochs if kind.startswith("frozen") else args.full_epochs
    return _engine(kind, args, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe-epochs", type=int, default=10)
    parser.add_argument("--full-epochs", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(_child(args.child, args)))
        return
    results: dict[str, dict[str, Any]] = {}
    env = {**os.environ, "GRAFTZOO_HOME": tempfile.mkdtemp(prefix="graftzoo-bench-")}  # a cold feature cache
    for kind in ("frozen", "frozen-nocache", "full", "hand"):
        proc = subprocess.run([sys.executable, __file__, "--child", kind, *sys.argv[1:]], capture_output=True,
                              text=True, env=env, check=False)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        results[kind] = json.loads(line[-1][len("RESULT "):])
    report(results, args)


def report(r: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    cached, nocache, full, hand = r["frozen"], r["frozen-nocache"], r["full"], r["hand"]
    # best epoch after the first (warm-up) on both sides: other processes share these cores
    engine_tp = full["n_train"] / min(row["train_seconds"] for row in full["epochs"][1:])
    hand_tp = hand["n_train"] / min(hand["epoch_seconds"][1:])
    achieved = hand["flops_per_sample"] * engine_tp
    compute_only = hand["flops_per_sample"] / hand["compute_seconds_per_sample"]
    print(f"engine benchmarks: {MODEL}, digits {args.per_class}/class, {args.image_size}px, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'measure':<48}{'value':>14}{'goal':>10}")
    rows = [
        ("frozen 10-epoch probe, cache vs recompute (x)", nocache["probe_seconds"] / cached["probe_seconds"], ">= 8"),
        ("  same, warm cache (a second run)", nocache["probe_seconds"] / cached["warm_probe_seconds"], ""),
        ("  accuracy cached / recomputed", f"{cached['accuracy']:.3f} / {nocache['accuracy']:.3f}", "equal"),
        ("  probe seconds cached (cold) / recomputed",
         f"{cached['probe_seconds']:.2f} / {nocache['probe_seconds']:.2f}", ""),
        ("  whole command seconds cached / recomputed", f"{cached['seconds']:.1f} / {nocache['seconds']:.1f}", ""),
        ("full fine-tune throughput, engine / hand loop", engine_tp / hand_tp, ">= 0.97"),
        ("  samples/s engine / hand loop", f"{engine_tp:.1f} / {hand_tp:.1f}", ""),
        ("fine-tune FLOP/s / fp32 matmul peak (end to end)", achieved / hand["matmul_peak_flops"], ">= 0.6"),
        ("  same, model step only (no data pipeline)", compute_only / hand["matmul_peak_flops"], ""),
        ("  dense CNN (resnet18) step only / peak", hand["dense_step_flops"] / hand["matmul_peak_flops"], ""),
        ("  GFLOP/s end to end / step only / matmul peak",
         f"{achieved / 1e9:.1f} / {compute_only / 1e9:.1f} / {hand['matmul_peak_flops'] / 1e9:.1f}", ""),
        ("peak RSS frozen / full", cached["rss_mb"] / full["rss_mb"], "<= 0.5"),
        ("  peak RSS above start-up, frozen / full",
         (cached["rss_mb"] - cached["rss_before_mb"]) / max(full["rss_mb"] - full["rss_before_mb"], 1e-9), ""),
        ("  MB frozen / full", f"{cached['rss_mb']:.0f} / {full['rss_mb']:.0f}", ""),
    ]
    for name, value, goal in rows:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{name:<48}{shown:>14}{goal:>10}")


if __name__ == "__main__":
    main()
