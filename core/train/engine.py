"""The training engine: ``train`` turns (model id, data, options) into a run directory.

The loop runs on Hugging Face Accelerate: fp32 on CPU, bf16 autocast only on a
GPU that has it, data-parallel across processes under ``accelerate launch`` or
``torchrun`` (each global batch is split across processes, so results match a
single process). Batches depend only on (seed, epoch) and every epoch ends
with an atomic checkpoint, so ``resume`` continues exactly where a run stopped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graftzoo.data import LabelledData, load_data
from graftzoo.errors import DataError, TrainingError
from graftzoo.metrics import classification_metrics
from graftzoo.progress import progress_bar
from graftzoo.registry import ModelEntry
from graftzoo.train import loaders as loop
from graftzoo.train.build import resolve_entry, weights_identity
from graftzoo.train.config import TrainConfig
from graftzoo.train.features import extract_features
from graftzoo.train.inference import evaluate_samples
from graftzoo.train.model import GraftModel
from graftzoo.train.policies import FreezePolicy
from graftzoo.train.run import INFO, RUN_FORMAT, WEIGHTS, build_model, library_versions, read_info, save_weights
from graftzoo.train.run import write_json_atomic as write_json
from graftzoo.train.split import limit_per_class, stratified_split

Echo = Callable[[str], None]
EpochHook = Callable[[int, dict[str, Any]], None]


@dataclass
class Prepared:
    """Data, labels and the split of one run."""

    data: LabelledData
    classes: list[str]
    targets: list[Any]  # class ids, or per-word id lists for token tasks
    train_idx: list[int]
    val_idx: list[int]


def load_run_data(config: TrainConfig, entry: ModelEntry, data: LabelledData | None = None) -> Prepared:
    """Load DATA, check it can train a classifier, and split it (stratified, seeded)."""
    if data is None:
        data = load_data(config.data, modality=entry.modality, format=config.format, skip_bad=config.skip_bad,
                         **config.data_options)
    if len(data) == 0:
        raise DataError(f"{config.data}: no labelled samples")
    classes = data.classes
    if len(classes) < 2:
        raise DataError(f"{config.data}: only one class ({', '.join(classes) or 'none'}); a classifier needs two "
                        "or more")
    index = {c: i for i, c in enumerate(classes)}
    if data.task == "token-classification":
        targets: list[Any] = [[index[t] for t in tags] for tags in data.labels]
    else:
        targets = [index[str(label)] for label in data.labels]
    train_idx, val_idx = stratified_split(data.labels, config.val_split, config.seed)
    if config.limit_per_class is not None:
        train_idx = limit_per_class(train_idx, data.labels, config.limit_per_class, config.seed)
    if config.early_stopping is not None and not val_idx:
        raise TrainingError("--early-stopping watches the validation loss; it needs --val-split > 0")
    return Prepared(data, classes, targets, train_idx, val_idx)


def get_policy(config: TrainConfig) -> FreezePolicy:
    """The configured freeze policy (a ``PluginError`` lists the valid names)."""
    from graftzoo.plugins import get_plugins

    policy: FreezePolicy = get_plugins().get("freeze_policies", config.policy).resolve()(**config.policy_options())
    return policy


def make_accelerator() -> Any:
    """Accelerate with fp32 on CPU and bf16 autocast only where the GPU supports it."""
    from accelerate import Accelerator, DataLoaderConfiguration

    cuda = torch.cuda.is_available()
    mixed = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    # split_batches must go through DataLoaderConfiguration: accelerate 1.15 accepts and ignores
    # Accelerator(split_batches=True), which silently doubles the global batch on two processes.
    return Accelerator(cpu=not cuda, mixed_precision=mixed,
                       dataloader_config=DataLoaderConfiguration(split_batches=True))


def check_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to touch an existing, non-empty directory unless ``overwrite``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise TrainingError(f"{out} already exists; pass --overwrite to replace it, --resume {out} to continue it, "
                            "or choose another --out")


def train(config: TrainConfig, out: str | Path, *, overwrite: bool = False, data: LabelledData | None = None,
          echo: Echo | None = None, progress: bool = True, on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Train a new run into ``out`` and return its graft.json content (plus the scratch baseline if asked).

    Everything is validated (model, policy, head, data, options) before
    anything is written; an existing ``out`` is replaced only with
    ``overwrite``.
    """
    out = Path(out)
    check_run_dir(out, overwrite)
    entry = resolve_entry(config.model)
    prepared = load_run_data(config, entry, data)
    info = _run(config, entry, prepared, out, None, overwrite, echo, progress, on_epoch_end)
    if config.baseline == "scratch":
        from graftzoo.train.artifacts import compare_baseline

        scratch = TrainConfig.from_dict({**config.to_dict(), "pretrained": False, "baseline": None,
                                         "policy": "full", "unfreeze": None})
        _say(echo, "training the scratch baseline (same architecture, random init, policy full, same budget)")
        base = _run(scratch, entry, prepared, out / "baseline", None, True, echo, progress, None)
        info = compare_baseline(out, info, base, echo)
    return info


def resume(run_dir: str | Path, model: str | None = None, *, data: LabelledData | None = None,
           echo: Echo | None = None, progress: bool = True, on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint (same policy state, optimiser, scheduler, epoch)."""
    run_dir = Path(run_dir)
    info = read_info(run_dir)
    if model is not None and model != info["model"]:
        raise TrainingError(f"{run_dir} is a run of {info['model']}, not {model}; resume it without a model id, or "
                            "start a new run with another --out")
    if info.get("status") == "complete":
        raise TrainingError(f"{run_dir} is already complete; start a new run with another --out")
    state = loop.load_checkpoint(run_dir)
    if state is None:
        raise TrainingError(f"{run_dir} has no checkpoint yet (stopped before the first epoch ended); start it "
                            "again with --overwrite")
    config = TrainConfig.from_dict(info["config"])
    entry = resolve_entry(config.model)
    prepared = load_run_data(config, entry, data)
    if prepared.data.fingerprint() != info["data"]["fingerprint"]:
        raise TrainingError(f"the data of {run_dir} changed since the run started ({config.data}); resume needs the "
                            "same data")
    result = _run(config, entry, prepared, run_dir, state, False, echo, progress, on_epoch_end)
    if config.baseline == "scratch" and not (run_dir / "baseline" / WEIGHTS).exists():
        from graftzoo.train.artifacts import compare_baseline

        scratch = TrainConfig.from_dict({**config.to_dict(), "pretrained": False, "baseline": None,
                                         "policy": "full", "unfreeze": None})
        base = _run(scratch, entry, prepared, run_dir / "baseline", None, True, echo, progress, None)
        result = compare_baseline(run_dir, result, base, echo)
    return result


def _say(echo: Echo | None, message: str) -> None:
    if echo is not None:
        echo(message)


def _run(config: TrainConfig, entry: ModelEntry, prep: Prepared, out: Path, state: dict[str, Any] | None,
         overwrite: bool, echo: Echo | None, progress: bool, on_epoch_end: EpochHook | None) -> dict[str, Any]:
    accelerator = make_accelerator()
    main = bool(accelerator.is_main_process)
    if config.batch_size % accelerator.num_processes:
        raise TrainingError(f"--batch-size {config.batch_size} must be a multiple of the {accelerator.num_processes} "
                            "processes (each global batch is split between them)")
    echo = echo if main else None
    torch.manual_seed(config.seed)  # the head's (and a scratch backbone's) initialisation
    model = build_model(entry, config, len(prep.classes), prep.data.task, config.pretrained)
    policy = get_policy(config)
    policy.validate(model)
    policy.apply(model)
    l2sp = loop.L2SP(model.backbone, config.l2sp)
    if state is None and main:
        if out.exists() and overwrite:
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    if model.backbone.channels_last:
        model.to(memory_format=torch.channels_last)
    model.to(accelerator.device)

    data, targets = prep.data, prep.targets
    cached = policy.caches_features and data.task == "classification"
    sampler = loop.EpochShuffle(len(prep.train_idx), config.seed)
    train_targets = [targets[i] for i in prep.train_idx]
    val_samples = [data.samples[i] for i in prep.val_idx]
    val_targets = [targets[i] for i in prep.val_idx]
    timing: dict[str, float] = {}
    if cached:
        t_feat = time.perf_counter()
        key = weights_identity(entry, config.pretrained)
        feats = extract_features(model.backbone, data, batch_size=max(config.batch_size, 64), cache_key=key,
                                 device=accelerator.device, progress=progress and main)
        val_feats = feats[prep.val_idx]
        timing["features_seconds"] = round(time.perf_counter() - t_feat, 4)
        loader = loop.feature_loader(feats[prep.train_idx], train_targets, config.batch_size, sampler)
        module: torch.nn.Module = model.head
    else:
        loader = loop.sample_loader(model.backbone, [data.samples[i] for i in prep.train_idx], train_targets,
                                    config.batch_size, data.task, sampler)
        module = model
    optimizer = torch.optim.AdamW(loop.param_groups(model, config.lr, config.lr_decay, config.weight_decay,
                                                    head_only=cached))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, loop.cosine(config.epochs))
    history: list[dict[str, Any]] = []
    early = {"best_loss": float("inf"), "best_epoch": 0, "bad": 0}
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        policy.load_state_dict(state["policy"])
        history, early, start = list(state["history"]), dict(state["early"]), int(state["epoch"])
        torch.set_rng_state(state["rng"])
        _say(echo, f"resuming {out} at epoch {start + 1}/{config.epochs}")
    train_module, optimizer, loader = accelerator.prepare(module, optimizer, loader)

    def validate() -> dict[str, Any]:
        if cached:  # the head on cached features: the backbone never runs again
            with torch.no_grad():
                model.head.eval()
                logits = model.head(val_feats.to(accelerator.device)).float().cpu()
            return classification_metrics(logits, torch.tensor(val_targets), len(prep.classes))
        return evaluate_samples(model, val_samples, val_targets, prep.classes, config.batch_size)

    info = {**_info(config, entry, prep, model, policy, history, "running"), "timing": timing}
    if main:
        write_json(out / INFO, info)
    token = data.task == "token-classification"
    epoch = start
    try:
        for epoch in range(start, config.epochs):
            if early["bad"] >= (config.early_stopping or 1 << 30):
                break
            t0 = time.perf_counter()
            torch.manual_seed(config.seed * 1_000 + epoch)  # augmentation and dropout, identical after a resume
            sampler.use_epoch(epoch)
            if policy.on_epoch_start(model, epoch) and accelerator.num_processes > 1 and not cached:
                # DDP hooks only parameters that require grad when it wraps: re-wrap as groups join.
                train_module = accelerator.prepare_model(accelerator.unwrap_model(train_module))
            loop.set_modes(model, policy)
            sums = torch.zeros(3, device=accelerator.device)
            t_loop = time.perf_counter()
            with progress_bar(f"epoch {epoch + 1}/{config.epochs}", total=len(loader), enabled=progress and main) \
                    as advance:
                for batch, y in loader:
                    logits = train_module(batch)
                    flat, fy = (logits.flatten(0, -2), y.flatten()) if token else (logits, y)
                    loss = torch.nn.functional.cross_entropy(flat.float(), fy, ignore_index=-100)
                    penalty = l2sp.penalty(model.backbone)
                    accelerator.backward(loss + penalty if penalty is not None else loss)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        valid = fy != -100
                        n = valid.sum()
                        sums += torch.stack([loss.detach() * n, ((flat.argmax(-1) == fy) & valid).sum(), n])
                    advance(1)
            train_seconds = time.perf_counter() - t_loop
            scheduler.step()
            sums = accelerator.reduce(sums, reduction="sum")
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(sums[0] / sums[2].clamp(min=1)),
                                   "train_accuracy": float(sums[1] / sums[2].clamp(min=1))}
            if prep.val_idx:
                vm = validate()
                row.update({f"val_{k}": v for k, v in vm.items() if k not in ("confusion", "n")})
                if vm["loss"] < early["best_loss"] - 1e-6:
                    early.update(best_loss=vm["loss"], best_epoch=epoch + 1, bad=0)
                    if config.early_stopping is not None and main:
                        save_weights(model, out / "best.safetensors")
                else:
                    early["bad"] += 1
            row["lr"] = optimizer.param_groups[0]["lr"]
            row["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            row["train_seconds"] = round(train_seconds, 4)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            history.append(row)
            if main:
                loop.save_checkpoint(out, {
                    "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "policy": policy.state_dict(), "history": history,
                    "early": early, "rng": torch.get_rng_state()})
                from graftzoo.train.artifacts import write_metrics

                write_metrics(out, history)
            _say(echo, _epoch_line(row, config.epochs))
            accelerator.wait_for_everyone()
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    except KeyboardInterrupt:
        if main:
            write_json(out / INFO, {**info, "status": "interrupted", "epochs": history})
        raise TrainingError(f"interrupted during epoch {epoch + 1}; {len(history)} epoch(s) are checkpointed in "
                            f"{out}; continue with 'graft tune --resume {out}'") from None
    return _finish(config, prep, model, policy, history, early, out, info, main, echo, validate)


def _finish(config: TrainConfig, prep: Prepared, model: GraftModel, policy: FreezePolicy,
            history: list[dict[str, Any]], early: dict[str, Any], out: Path, info: dict[str, Any], main: bool,
            echo: Echo | None, validate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from graftzoo.train.artifacts import write_card, write_plots

    best = out / "best.safetensors"
    if config.early_stopping is not None and best.exists():
        from safetensors.torch import load_model

        load_model(model, str(best), strict=True)  # the epoch with the lowest validation loss
    final: dict[str, Any] = {}
    if prep.val_idx:
        final = validate()
        if config.early_stopping is not None:  # otherwise the weights are the last epoch's, whatever was best
            final["best_epoch"] = early["best_epoch"]
    info = {**info, "status": "complete", "epochs": history, "final": final,
            "policy": {**info["policy"], "state": policy.state_dict()}}
    if main:
        save_weights(model, out / WEIGHTS, metadata={"format": RUN_FORMAT, "model": config.model})
        from graftzoo.train.export import save_example

        save_example(model, [prep.data.samples[i] for i in prep.train_idx[:2]], out)
        extra = _copy_extra_files(model, out)
        info["extra_files"] = extra
        write_json(out / INFO, info)
        write_plots(out, history, final, prep.classes)
        write_card(out, info)
        (out / loop.CHECKPOINT).unlink(missing_ok=True)
        best.unlink(missing_ok=True)
        if final:
            _say(echo, f"final validation: accuracy {final['accuracy']:.4f}  loss {final['loss']:.4f}  "
                       f"macro-F1 {final['macro_f1']:.4f}  (n={final['n']})  -> {out}")
    return info


def _copy_extra_files(model: GraftModel, out: Path) -> dict[str, str]:
    extra: dict[str, str] = {}
    for name, src in model.backbone.extra_files().items():
        dest = out / "extra" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
        extra[name] = str(dest.relative_to(out))
    return extra


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    text = f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
    if "val_loss" in row:
        text += f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} f1 {row['val_macro_f1']:.4f}"
    return text + f"  ({row['seconds']:.1f}s)"


def _info(config: TrainConfig, entry: ModelEntry, prep: Prepared, model: GraftModel, policy: FreezePolicy,
          history: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "status": status,
        "model": entry.id,
        "entry": entry.to_dict(),
        "task": prep.data.task,
        "config": config.to_dict(),
        "policy": {"name": config.policy, "description": policy.describe(), "state": policy.state_dict()},
        "preprocessing": model.backbone.preprocessing(),
        "groups": [name for name, _ in model.group_modules()],
        "labels": prep.classes,
        "data": {"spec": config.data, "name": prep.data.name, "fingerprint": prep.data.fingerprint(),
                 "n": len(prep.data), "n_train": len(prep.train_idx), "n_val": len(prep.val_idx)},
        "epochs": history,
        "final": {},
        "versions": library_versions(),
    }
