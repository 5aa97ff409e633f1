"""How cost grows with the data: time and peak RSS per size, ratios between sizes as medians of pairs.

Generates an image folder (PNG, 10 classes) and a text CSV of each size, then
for every stage runs the larger and the smaller size in turns (A B A B ...),
each in its own process (peak RSS is per process), and prints per size the
median seconds and peak RSS above start-up, and per stage the ratio of the
sizes' times (goal: at most 1.15x the ratio of sample counts: no hidden
quadratic step) and of their memory (goal for the training stages: flat within
10%).

Stages: listing + fingerprinting + split + label mapping (images, text CSV),
feature extraction (cold cache), a frozen fit (3 epochs on cached features)
and one epoch of top-k (the top group trains on raw samples).

    python bench/scale.py [--sizes 1000,10000] [--pairs 5] [--image-size 32] [--stages list,text,extract,frozen,topk]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pairs import Ratio, child, emit, paired, peak_rss_mb, row

MODEL = "mobilenetv2_100.tv_in1k"
STAGES = ("list", "text", "extract", "frozen", "topk")
WORDS = ("alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "ember", "frost", "maple", "cedar", "noble")


def make_images(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` 16x16 PNGs in 10 class folders: a digit-like blob per class, noise so every file differs."""
    import numpy as np
    from PIL import Image

    folder = root / f"images-{n}"
    if (folder / ".done").exists():
        return folder
    rng = np.random.default_rng(seed)
    for c in range(10):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, size=(10, 16, 16, 3), dtype=np.uint8)
    for i in range(n):
        c = i % 10
        noise = rng.integers(-40, 40, size=(16, 16, 3))
        Image.fromarray(np.clip(base[c] + noise, 0, 255).astype(np.uint8)).save(folder / f"c{c}" / f"{i}.png")
    (folder / ".done").touch()
    return folder


def make_csv(root: Path, n: int, seed: int = 0) -> Path:
    """A text CSV of ``n`` rows (text,label), 10 labels."""
    import random

    path = root / f"text-{n}.csv"
    if path.exists():
        return path
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write("text,label\n")
        for i in range(n):
            f.write(" ".join(rng.choice(WORDS) for _ in range(8)) + f" {i},label{i % 10}\n")
    return path


def _list(path: str, modality: str) -> None:
    from graftzoo.data import load_data
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.plan import split_indices

    data = load_data(path, modality=modality)
    data.fingerprint()
    split_indices(TrainConfig(model=MODEL, data=path), data.labels)
    index = {c: i for i, c in enumerate(data.classes)}
    [index[str(label)] for label in data.labels]


def _extract(folder: str, args: argparse.Namespace) -> None:
    from graftzoo.data import load_data
    from graftzoo.registry import load_registry
    from graftzoo.train.build import build_backbone, weights_identity
    from graftzoo.train.features import extract_features

    entry = load_registry().get(MODEL)
    backbone = build_backbone(entry, True, {"image_size": args.image_size})
    extract_features(backbone, load_data(folder, modality="vision"), batch_size=64, progress=False,
                     cache_key=weights_identity(entry, True))


def _train(folder: str, args: argparse.Namespace, policy: str) -> float:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train

    extra: dict[str, Any] = {"unfreeze": 1} if policy == "top-k" else {}
    cfg = TrainConfig(model=MODEL, data=folder, policy=policy, epochs=3 if policy == "frozen" else 1,
                      image_size=args.image_size, batch_size=64, lr=0.01, **extra)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        train(cfg, Path(out) / "run", progress=False)  # the whole run: features, the probe's fit, epochs, outputs
        return time.perf_counter() - t0


def _child(kind: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    import timm  # noqa: F401
    import torch  # noqa: F401

    import graftzoo_vision  # noqa: F401 - start-up: what every stage imports, before the clock starts

    start_mb = peak_rss_mb()
    t0 = time.perf_counter()
    if kind == "list":
        _list(path, "vision")
    elif kind == "text":
        _list(path, "text")
    elif kind == "extract":
        with tempfile.TemporaryDirectory() as home:  # a cold cache
            os.environ["GRAFTZOO_HOME"] = home
            _extract(path, args)
    seconds = time.perf_counter() - t0
    if kind in ("frozen", "topk"):
        seconds = _train(path, args, "frozen" if kind == "frozen" else "top-k")
    return {"seconds": seconds, "rss_above_mb": peak_rss_mb() - start_mb}


def measure(stage: str, paths: dict[int, str], args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    small, big = sorted(paths)
    rss: dict[int, list[float]] = {small: [], big: []}

    def run(size: int) -> float:
        r = child(__file__, stage, [*sys.argv[1:], "--path", paths[size]], env)
        rss[size].append(float(r["rss_above_mb"]))
        return float(r["seconds"])

    if stage == "frozen":  # the cached features both sizes' frozen fits read (not timed)
        for size in (small, big):
            child(__file__, "extract-warm", [*sys.argv[1:], "--path", paths[size]], env)
    time_ratio = paired(lambda: run(big), lambda: run(small), args.pairs)
    mem = Ratio([a / max(b, 1.0) for a, b in zip(rss[big], rss[small], strict=True)], rss[big], rss[small])
    return {"time": time_ratio, "rss": mem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="two sample counts, e.g. 1000,10000 or 5000,50000")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--data-dir", default=None, help="where to generate the data (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch compute threads in every run (0: torch's default; see engine_bench.py)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:  # before torch is imported, here and in every child (they inherit the environment)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.child == "extract-warm":
        _extract(args.path, args)
        emit({})
        return
    if args.child:
        emit(_child(args.child, args.path, args))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if len(sizes) != 2:
        raise SystemExit("--sizes takes two sample counts")
    root = Path(args.data_dir or tempfile.mkdtemp(prefix="graftzoo-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    images = {n: str(make_images(root, n)) for n in sizes}
    texts = {n: str(make_csv(root, n)) for n in sizes}
    print(f"generated {sizes} images and CSV rows under {root} in {time.perf_counter() - t0:.1f}s", flush=True)
    env = {**os.environ, "GRAFTZOO_HOME": tempfile.mkdtemp(prefix="graftzoo-scale-home-")}
    results = {}
    for stage in [s for s in args.stages.split(",") if s]:
        try:
            results[stage] = measure(stage, texts if stage == "text" else images, args, env)
        except RuntimeError as exc:  # one broken stage must not hide the others' figures
            print(f"stage {stage} failed: {str(exc)[-2000:]}", file=sys.stderr, flush=True)
        print(f"[{time.strftime('%H:%M:%S')}] {stage} done", file=sys.stderr, flush=True)
    report(results, sizes, args)


def report(results: dict[str, dict[str, Ratio]], sizes: list[int], args: argparse.Namespace) -> None:
    small, big = sizes
    growth = big / small
    names = {"list": "images: listing + fingerprint + split + labels", "text": "text CSV: the same",
             "extract": f"feature extraction ({MODEL}, {args.image_size}px)",
             "frozen": "frozen run (cached features, L-BFGS probe)",
             "topk": "one epoch of top-k (raw samples)"}
    print(f"scale: sizes {small} and {big} ({growth:g}x); every ratio: median (min-max) of {args.pairs} "
          f"alternating pairs, each run its own process; {os.cpu_count()} CPUs, "
          f"{args.threads or 'default'} torch thread(s)")
    print(f"{'stage':<52}{f's @{small} / s @{big}':>26}{'MB above start-up':>22}")
    for stage, r in results.items():
        t, m = r["time"], r["rss"]
        print(f"{names[stage]:<52}{f'{statistics.median(t.b):.2f} / {statistics.median(t.a):.2f}':>26}"
              f"{f'{statistics.median(m.b):.0f} / {statistics.median(m.a):.0f}':>22}")
    print(f"\n{'ratio (larger / smaller)':<52}{'median (min-max)':>26}{'goal':>10}")
    for stage, r in results.items():
        t, m = r["time"], r["rss"]
        print(row(f"{stage}: time", t, f"<= {1.15 * growth:g}", t.median <= 1.15 * growth))
        flat = stage in ("frozen", "topk")
        print(row(f"{stage}: peak RSS above start-up", m, "<= 1.1" if flat else "", m.median <= 1.1 if flat else None))


if __name__ == "__main__":
    main()
