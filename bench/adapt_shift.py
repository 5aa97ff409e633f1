"""Does `graft adapt` recover accuracy under a domain shift? AdaBN and TENT vs the unadapted run.

A MobileNetV2 run is fine-tuned on digits (dark ink on white). The shifted set
is digits with a colour cast, lower contrast and pixel noise (and, separately,
inverted contrast), written as an imagefolder. `graft adapt` adapts on one half
of the shifted set without its labels; accuracy is measured on the other half,
before and after.

    .venv/bin/python bench/adapt_shift.py [--epochs 6] [--lr 3e-3] [--image-size 32] [--per-class 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS/OpenMP thread: on a shared 2-core machine, 2 threads spin-wait and run ~10x slower.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")


GRAFT = [sys.executable, "-m", "graftzoo"]


def shifted_digits(inverted: bool, seed: int = 0) -> tuple[list, list]:
    """RGB digits: a colour cast, contrast cut to 60%, gaussian noise (sd 20/255); or plain inversion."""
    import numpy as np

    from graftzoo_vision.data import digits_arrays

    imgs, targets = digits_arrays(inverted=inverted)
    if inverted:
        return list(imgs), [str(int(t)) for t in targets]
    rng = np.random.default_rng(seed)
    x = imgs.astype(np.float64)[..., None] / 255.0
    cast = np.array([1.0, 0.75, 0.45])  # a warm, sepia-like tint
    x = (0.2 + 0.6 * x) * cast + rng.normal(0, 20 / 255, size=(*x.shape[:3], 3))
    out = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    return list(out), [str(int(t)) for t in targets]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--per-class", type=int, default=30)
    args = ap.parse_args()

    import torch

    from graftzoo.data import LabelledData
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run
    from graftzoo_vision.data import write_imagefolder

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="graft-bench-adapt-"))
    run = root / "source"
    t0 = time.perf_counter()
    info = train(TrainConfig(model="mobilenetv2_100.tv_in1k", data="digits", policy="full", epochs=args.epochs,
                             image_size=args.image_size, limit_per_class=args.per_class, lr=args.lr,
                             batch_size=16), run, progress=False)
    print(f"source run: digits, {args.per_class}/class, policy full, {args.epochs} epochs, image size "
          f"{args.image_size}: val accuracy {info['final']['accuracy']:.4f} ({time.perf_counter() - t0:.0f} s)")
    for shift, inverted in (("colour cast + low contrast + noise", False), ("inverted contrast", True)):
        samples, labels = shifted_digits(inverted)
        half = len(samples) // 2
        name = "inverted" if inverted else "cast"
        # Interleave so both halves cover every class; adapt on A (labels ignored), measure on B.
        a = LabelledData(samples[0::2], labels[0::2], name=f"{name}-a", modality="vision")
        b = LabelledData(samples[1::2], labels[1::2], name=f"{name}-b", modality="vision")
        write_imagefolder(a, root / f"{name}-a")
        before = load_run(run).evaluate(b.samples, b.labels)["accuracy"]
        print(f"\n== shift: {shift}; adapt on {len(a)} unlabelled images, evaluate on {len(b)} others "
              f"(of {half * 2})")
        print(f"unadapted                 accuracy {before:.4f}")
        for method in ("adabn", "tent"):
            out = root / f"{name}-{method}"
            t1 = time.perf_counter()
            subprocess.run([*GRAFT, "adapt", str(run), str(root / f"{name}-a"), "--method", method,
                            "--out", str(out), "--json"], check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - t1
            after = load_run(out).evaluate(b.samples, b.labels)["accuracy"]
            print(f"graft adapt --method {method:<5} accuracy {after:.4f} ({after - before:+.4f}; {seconds:.0f} s)")


if __name__ == "__main__":
    main()
