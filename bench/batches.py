"""mixup / cutmix and the balanced sampler on real data, held out, next to the defaults and the by-hand baselines.

Two tasks, ``mobilenetv2_100.tv_in1k`` on scikit-learn's real handwritten digits:

* few-shot: N labels per class (``transfer_quality.digits_task``: the rest of the 1,797 digits is the test
  set), ``--policy full --image-size 96 --epochs 15``, with the defaults and with ``--mixup``/``--cutmix``,
  over several training seeds (same split); by hand: logistic regression on the pretrained features and the
  plain fine-tune loop of ``transfer_quality``;
* imbalanced: for a few digit pairs, 40 training images of one digit and 4 of the other (no validation split),
  ``--policy full`` with ``--sampler shuffle --class-weights none``, the default (``--class-weights auto``) and
  ``--sampler balanced``, over the same training seeds; scored on every other image of the two digits
  (minority and majority recall).

    OMP_NUM_THREADS=1 GRAFTZOO_HOME=/tmp/gz-bench .venv/bin/python bench/batches.py \\
        [--tasks fewshot imbalanced] [--seeds 0 1 2] [--epochs 15] [--per-class 10] [--image-size 96] \\
        [--pairs 3:8 1:7 9:4] [--fewshot-arms '(defaults)' '--mixup 0.2'] [--no-handmade]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer_quality import MODELS, Task, digits_task, handmade_loop, logreg_rows

FEWSHOT_ARMS: dict[str, dict[str, Any]] = {
    "--policy full (defaults)": {},
    "--policy full --mixup 0.2": {"mixup": 0.2},
    "--policy full --cutmix 1.0": {"cutmix": 1.0},
    "--policy full --mixup 0.2 --cutmix 1.0": {"mixup": 0.2, "cutmix": 1.0},
}
IMBALANCE_ARMS: dict[str, dict[str, Any]] = {
    "--sampler shuffle --class-weights none": {"sampler": "shuffle", "class_weights": "none"},
    "--class-weights auto (default)": {"sampler": "shuffle", "class_weights": "auto"},
    "--sampler balanced": {"sampler": "balanced"},
}


def fewshot(args: argparse.Namespace, out: Path) -> None:
    task = digits_task(args.per_class, args.image_size, args.epochs)
    print(f"\n{task.name}: {task.model}, {len(task.train)} training / {len(task.test)} test images", flush=True)
    if not args.no_handmade:
        for row in [*logreg_rows(task), handmade_loop(task, True)]:
            print(f"  {row.method:<60} {row.accuracy:.4f}  ({row.seconds:.0f}s)", flush=True)
    print(f"\n| graft {task.name} | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |", flush=True)
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for label, options in FEWSHOT_ARMS.items():
        if args.fewshot_arms and not any(arm == label.split(" ", 2)[-1] for arm in args.fewshot_arms):
            continue
        accs = []
        for seed in args.seeds:
            accs.append(_fewshot_run(task, out / f"fewshot-{len(accs)}-{seed}-{sorted(options.items())}",
                                     epochs=args.epochs, seed=seed, **options))
        print(f"| {label} | " + " | ".join(f"{a:.4f}" for a in accs) + f" | {statistics.mean(accs):.4f} |",
              flush=True)


def _fewshot_run(task: Task, run_dir: Path, **options: Any) -> float:
    """Held-out accuracy of one ``--policy full`` run on the task's training set (its own validation split)."""
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run

    config = TrainConfig(model=task.model, data=task.train.name, policy="full", image_size=task.image_size,
                         **options)
    train(config, run_dir, overwrite=True, data=task.train, progress=False)
    return float(load_run(run_dir).evaluate(task.test.samples, task.test.labels)["accuracy"])


def imbalanced(args: argparse.Namespace, out: Path) -> None:
    import numpy as np

    from graftzoo.data import LabelledData, load_data

    data = load_data("digits", modality="vision")
    labels = np.array(data.labels)
    policy = "frozen --probe sgd" if args.imbalance_policy == "frozen" else args.imbalance_policy
    print(f"\nimbalanced 40-vs-4, {MODELS['vision']} --policy {policy} --image-size {args.image_size} --epochs "
          f"{args.epochs} --val-split 0; recall on all other images of the two digits, seeds {args.seeds}",
          flush=True)
    print("| majority:minority | arm | minority recall per seed | mean | majority recall mean | test n (min/maj) |\n"
          "|---|---|---|---|---|---|")
    for pair in args.pairs:
        major, minor = pair.split(":")
        big, small = np.flatnonzero(labels == major), np.flatnonzero(labels == minor)
        train_idx = [*big[:40], *small[:4]]
        few = LabelledData([data.samples[i] for i in train_idx], [data.labels[i] for i in train_idx],
                           name=f"digits-{major}x40-{minor}x4", modality="vision")
        tests = [([data.samples[i] for i in small[4:]], minor), ([data.samples[i] for i in big[40:]], major)]
        for label, options in IMBALANCE_ARMS.items():
            recalls = [_imbalanced_run(args, few, out, seed, options, tests) for seed in args.seeds]
            minority = [r[0] for r in recalls]
            print(f"| {major}:{minor} | {label} | {' '.join(f'{m:.3f}' for m in minority)} | "
                  f"{statistics.mean(minority):.4f} | {statistics.mean(r[1] for r in recalls):.4f} | "
                  f"{len(small) - 4}/{len(big) - 40} |", flush=True)


def _imbalanced_run(args: argparse.Namespace, few: Any, out: Path, seed: int, options: dict[str, Any],
                    tests: Sequence[tuple[list[Any], str]]) -> list[float]:
    """Recall on each (samples, digit) of ``tests`` after one ``--policy full`` run on ``few``."""
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run

    probe = {"probe": "sgd"} if args.imbalance_policy == "frozen" else {}  # batches to draw: the SGD probe
    config = TrainConfig(model=MODELS["vision"], data=few.name, policy=args.imbalance_policy,
                         image_size=args.image_size, epochs=args.epochs, val_split=0.0, seed=seed, **probe, **options)
    run_dir = out / f"{few.name}-{args.imbalance_policy}-{options['sampler']}-{options.get('class_weights')}-s{seed}"
    train(config, run_dir, overwrite=True, data=few, progress=False)
    run = load_run(run_dir)
    return [_recall(run, samples, digit) for samples, digit in tests]


def _recall(run: Any, samples: Sequence[Any], digit: str) -> float:
    predicted = run.predict_labels(list(samples))
    return sum(p == digit for p in predicted) / len(predicted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["fewshot", "imbalanced"], choices=["fewshot", "imbalanced"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--pairs", nargs="+", default=["3:8", "1:7", "9:4"], metavar="MAJOR:MINOR")
    ap.add_argument("--fewshot-arms", nargs="*", default=None, metavar="FLAGS",
                    help="only these few-shot arms, by their flags after --policy full (e.g. '--mixup 0.2')")
    ap.add_argument("--imbalance-policy", choices=["full", "frozen"], default="full",
                    help="policy of the imbalanced runs (frozen: the SGD probe, which draws batches)")
    ap.add_argument("--no-handmade", action="store_true", help="skip the by-hand baselines of the few-shot task")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()  # one thread each: transfer_quality set OMP_NUM_THREADS before torch was imported
    out = args.out or Path(tempfile.mkdtemp(prefix="batches-"))
    start = time.perf_counter()
    if "fewshot" in args.tasks:
        fewshot(args, out)
    if "imbalanced" in args.tasks:
        imbalanced(args, out)
    print(f"\ntotal {time.perf_counter() - start:.0f}s; runs in {out}")


if __name__ == "__main__":
    main()
