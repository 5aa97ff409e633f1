"""The training engine: ``train`` turns a run plan into a run directory, in named steps.

A ``Trainer`` runs one plan (``graftzoo.train.plan``) as ``set_up`` (the
accelerator), ``build`` (model and policy), ``prepare_features`` (the
frozen policy's feature cache, or raw-sample batches, with one batch through
backbone + head to check the plugin contract), ``make_optimiser`` (and the restored state of a resumed run) and
``write_start`` -- nothing is written before this step -- then ``fit_epoch``
and ``checkpoint`` per epoch, and ``finish``.

The loop runs on Hugging Face Accelerate on ``--device`` in ``--precision``
(default fp32 on CPU, bf16 autocast on a GPU that has it; ``train.hardware``),
data-parallel across processes under ``accelerate launch`` or ``torchrun``
(each global batch is split across processes, so results match a single
process). Batches depend only on (seed, epoch) and every epoch ends
with an atomic checkpoint, so ``resume`` continues exactly where a run stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from graftzoo.data import LabelledData
from graftzoo.errors import TrainingError, naming
from graftzoo.metrics import classification_metrics
from graftzoo.progress import progress_bar
from graftzoo.train import balance, fitting, loaders, mixing, optim, parallel, tracking
from graftzoo.train.build import (
    build_model,
    check_contract,
    check_features,
    fine_tuning_options,
    make_policy,
    run_extra_files,
    start_from_run,
    weights_identity,
)
from graftzoo.train.checkpoint import CHECKPOINT, CheckpointWriter, load_checkpoint
from graftzoo.train.config import TrainConfig
from graftzoo.train.features import feature_cache_path, feature_rows
from graftzoo.train.hardware import hardware_info, make_accelerator
from graftzoo.train.inference import classify, evaluate_samples
from graftzoo.train.lr_find import RangeTest
from graftzoo.train.plan import RunPlan, plan_run
from graftzoo.train.rows import ConcatRows, Rows
from graftzoo.train.run import INFO, RUN_FORMAT, WEIGHTS, copy_extra_files, read_info, run_info, save_weights
from graftzoo.train.run import write_json_atomic as write_json
from graftzoo.train.rundir import create_run_dir, locked_run, refuse_if_busy

Echo = Callable[[str], None]
EpochHook = Callable[[int, dict[str, Any]], None]
BEST = "best.safetensors"


def check_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to touch an existing, non-empty directory unless ``overwrite``."""
    refuse_if_busy(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise TrainingError(f"{out} already exists; pass --overwrite to replace it, --resume {out} to continue it, "
                            "or choose another --out")


@locked_run("out")
def train(config: TrainConfig | RunPlan, out: str | Path, *, overwrite: bool = False,
          data: LabelledData | None = None, echo: Echo | None = None, progress: bool = True,
          on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Train a new run into ``out`` and return its graft.json content (plus the scratch baseline if asked).

    ``config`` is a ``TrainConfig`` (planned here) or a ``RunPlan`` already
    made by ``plan_run``. Everything is validated (model, policy, head, data,
    options, one batch through the model) before anything is written; an
    existing ``out`` is replaced only with ``overwrite``.
    """
    out = Path(out)
    check_run_dir(out, overwrite)
    plan = config if isinstance(config, RunPlan) else plan_run(config, data)
    if echo is not None:
        echo(f"tuning {plan.entry.id} on {plan.config.data} with policy {plan.config.policy} -> {out}")
    info = Trainer(plan, out, echo=echo, progress=progress, on_epoch_end=on_epoch_end, overwrite=overwrite).run()
    info = _with_baseline(plan, out, info, echo, progress)
    return _with_refit(plan, out, info, echo, progress)


@locked_run("run_dir")
def resume(run_dir: str | Path, model: str | None = None, *, data: LabelledData | None = None,
           echo: Echo | None = None, progress: bool = True, on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint (same policy state, optimiser, scheduler, epoch)."""
    run_dir = Path(run_dir)
    plan, state = plan_resume(run_dir, model, data)
    if state is None and echo is not None:
        echo(f"{run_dir} has no checkpoint yet (stopped before the first epoch ended): starting it again from its "
             "saved configuration")
    info = Trainer(plan, run_dir, echo=echo, progress=progress, on_epoch_end=on_epoch_end, state=state,
                   overwrite=state is None).run()
    if (run_dir / "baseline" / WEIGHTS).exists():
        return info
    return _with_baseline(plan, run_dir, info, echo, progress)


def plan_resume(run_dir: Path, model: str | None = None, data: LabelledData | None = None
                ) -> tuple[RunPlan, dict[str, Any] | None]:
    """The plan and last checkpoint (None: none yet) of an interrupted run, or a ``TrainingError`` saying why not."""
    info = read_info(run_dir)
    if model is not None and model != info["model"]:
        raise TrainingError(f"{run_dir} is a run of {info['model']}, not {model}; resume it without a model id, or "
                            "start a new run with another --out")
    if info.get("status") == "complete":
        raise TrainingError(f"{run_dir} is already complete; start a new run with another --out")
    state = load_checkpoint(run_dir)
    with naming(run_dir):
        plan = plan_run(TrainConfig.from_dict(info["config"]), data)
    if plan.data.fingerprint() != info["data"]["fingerprint"]:
        raise TrainingError(f"the data of {run_dir} changed since the run started ({plan.config.data}); resume "
                            "needs the same data")
    return plan, state


def _with_baseline(plan: RunPlan, out: Path, info: dict[str, Any], echo: Echo | None,
                   progress: bool) -> dict[str, Any]:
    if plan.config.baseline != "scratch":
        return info
    from graftzoo.train.artifacts import compare_baseline

    if echo is not None:
        echo("training the scratch baseline (same architecture, random init, policy full, same budget"
             + (" and the same lr range test)" if plan.config.lr_auto else ")"))
    base = Trainer(plan.scratch(), out / "baseline", echo=echo, progress=progress, overwrite=True).run()
    return compare_baseline(out, info, base, echo)


#: Training seconds since the last checkpoint, in units of what it cost to serialise, after which the next epoch
#: is checkpointed (``Trainer._checkpoint_due``).
CHECKPOINT_BUDGET = 100


#: ``--refit`` is on by default for classification data with at most this many labelled samples per class, or
#: at most ``SMALL_DATA`` in all: there a fifth held out for validation is a real loss and one more training
#: run is cheap. Measured (issue 15, 400 sentiment sentences, MiniLM ``--policy full``, 600 held-out): 0.7517
#: trained on the 320 left after the split, 0.7767 refitted on all 400 (a plain transformers loop on 400: 0.7717).
FEW_SHOT_PER_CLASS = 20
SMALL_DATA = fitting.SMALL_DATA


def refit_reason(plan: RunPlan, info: dict[str, Any]) -> str | None:
    """Why this run is refitted on train+validation (``--refit``, or a data-aware default), or None."""
    config, split = plan.config, plan.split
    if not split.val or config.refit is False:
        return None
    if config.refit:
        return "asked with --refit"
    if "head_fit" in info:
        return "default for a head fitted on cached features: one more fit"
    n = len(split.train) + len(split.val)
    if plan.task != "classification":
        return None
    if n <= FEW_SHOT_PER_CLASS * len(plan.classes):
        return (f"default for few-shot data: {n} labelled samples, {n / len(plan.classes):.3g} per class "
                f"(<= {FEW_SHOT_PER_CLASS}); --no-refit to keep the train-only weights")
    if n <= SMALL_DATA:
        return (f"default for small data: {n} labelled samples (<= {SMALL_DATA}); --no-refit to keep the "
                "train-only weights")
    return None


def _with_refit(plan: RunPlan, out: Path, info: dict[str, Any], echo: Echo | None, progress: bool) -> dict[str, Any]:
    """``--refit``: retrain on train+validation for the epochs (a probe: with the C) chosen on validation; those
    weights are kept.

    On by default for a head fitted to convergence on cached features (the frozen probe: one more fit, with the
    ``C`` its cross-validation chose, not a second cross-validation) and for few-shot or small classification
    data, where a fifth of the labels held out is a real loss (``refit_reason``). graft.json's validation metrics
    stay the train-only model's (the refitted one has seen the validation data, so it cannot be scored on it).
    """
    reason = refit_reason(plan, info)
    if reason is None:
        return info
    epochs = int(info["final"].get("best_epoch") or len(info["epochs"]))
    probe_c = info.get("head_fit", {}).get("C")
    refit = plan.refit(epochs, float(info["config"]["lr"]), probe_c)
    if echo is not None:
        how = f"with the probe's C={probe_c:g}" if probe_c is not None else f"for {epochs} epoch(s)"
        echo(f"--refit: retraining on train+validation ({len(refit.split.train)} samples) {how} ({reason})")
    Trainer(refit, out / "refit", echo=echo, progress=progress, overwrite=True).run()
    info = {**info, "refit": {"epochs": epochs, "n_train": len(refit.split.train), "reason": reason,
                              **({"C": probe_c} if probe_c is not None else {}),
                              "note": "weights retrained on train+validation; validation metrics are the "
                                      "train-only model's"}}
    if parallel.is_main_process():  # under a launch every process refits; one writes
        from graftzoo.storage import atomic

        atomic.write_with(out / WEIGHTS, lambda tmp: shutil.copy2(out / "refit" / WEIGHTS, tmp),
                          "the refitted weights")
        shutil.rmtree(out / "refit")
        write_json(out / INFO, info)
    parallel.barrier()
    return info


class Trainer:
    """One run of a plan, as named steps; ``run()`` calls them in order and returns graft.json's content."""

    def __init__(self, plan: RunPlan, out: Path, *, echo: Echo | None = None, progress: bool = True,
                 on_epoch_end: EpochHook | None = None, state: dict[str, Any] | None = None,
                 overwrite: bool = False) -> None:
        self.plan, self.config, self.out = plan, plan.config, out
        self.state, self.overwrite = state, overwrite
        self.echo, self.progress, self.on_epoch_end = echo, progress, on_epoch_end
        self.history: list[dict[str, Any]] = []
        self.early: dict[str, Any] = {"best_loss": float("inf"), "best_epoch": 0, "bad": 0, "stopped": 0}
        self.fitted: dict[str, Any] | None = None  # a head fitted to convergence on cached features
        self.lr_found: RangeTest | None = None  # --lr auto's range test
        self.start = 0
        self.timing: dict[str, float] = {}
        self.info: dict[str, Any] = {}
        self.writer = CheckpointWriter()  # each epoch's checkpoint is written while the next one trains
        self.checkpointed = 0  # epochs in the checkpoint on disk (or being written)
        self.since_checkpoint = [0.0, 0.0]  # seconds trained since the last checkpoint, what it cost to serialise

    def run(self) -> dict[str, Any]:
        """set up, build, prepare features, optimiser, write; then fit and checkpoint each epoch; finish."""
        self.set_up()
        self.build()
        self.prepare_features()
        self.make_optimiser()
        self.write_start()
        try:
            if self.fitted is not None:  # no epochs of SGD: one row for the fit
                self.history.append(fitting.fitted_row(self.model.head, self.train_feats, self.train_targets,
                                                       self.fitted, self.validate if self.plan.split.val else None))
                self.say(fitting.fitted_line(self.fitted, self.history[-1]))
            else:
                self._fit_epochs()
            info = self.finish()
        except BaseException:
            _quietly(self.writer.wait)  # a failed step's own error wins; the last checkpoint is on disk first
            raise
        if self.config.log_with:
            tracking.finish(self.accelerator, self.out, self.step)
        return info

    def _fit_epochs(self) -> None:
        epoch = self.start
        try:
            for epoch in range(self.start, self.config.epochs):
                if self.early["bad"] >= (self.config.early_stopping or 1 << 30):
                    self._stop_early(epoch)
                    break
                self.checkpoint(self.fit_epoch(epoch))
        except KeyboardInterrupt:
            self.writer.wait()  # the epochs said to be checkpointed are on disk
            if self.main:
                write_json(self.out / INFO, {**self.info, "status": "interrupted",  # the epochs a resume keeps
                                             "epochs": self.history[:self.checkpointed]})
            raise TrainingError(f"interrupted during epoch {epoch + 1}; {self.checkpointed} epoch(s) are "
                                f"checkpointed in {self.out}; continue with 'graft tune --resume {self.out}'"
                                ) from None

    def _stop_early(self, epoch: int) -> None:
        self.early["stopped"] = epoch
        self.say(f"early stopping: no better validation {self.config.early_stopping_metric} for "
                 f"{self.config.early_stopping} epoch(s); stopped after epoch {epoch}, keeping epoch "
                 f"{self.early['best_epoch']}")

    @property
    def batch_size(self) -> int:
        """The run's batch size (resolved by the plan; 32 for configs of older runs)."""
        return int(self.config.batch_size or 32)

    def say(self, message: str) -> None:
        """Print on the main process only."""
        if self.echo is not None and self.main:
            self.echo(message)

    # -- steps -----------------------------------------------------------------------------------
    def set_up(self) -> None:
        """The accelerator (devices, processes, precision)."""
        trackers = tracking.accelerator_kwargs(self.config.log_with, self.out)
        self.accelerator = make_accelerator(self.config, **trackers)
        self.main = bool(self.accelerator.is_main_process)
        if self.batch_size % self.accelerator.num_processes:
            raise TrainingError(f"--batch-size {self.batch_size} must be a multiple of the "
                                f"{self.accelerator.num_processes} processes (each global batch is split between "
                                "them)")

    def build(self) -> None:
        """Model and policy (validated against the model); nothing is written yet."""
        plan, config = self.plan, self.config
        torch.manual_seed(config.seed)  # the head's (and a scratch backbone's) initialisation
        if plan.start_run is not None and config.pretrained:
            model = build_model(plan.entry, config, len(plan.classes), plan.task, False, parts=plan.parts,
                                extra_options=run_extra_files(plan.start_run))
            start_from_run(model, plan.start_run, plan.classes, config.init_head)
        else:
            model = build_model(plan.entry, config, len(plan.classes), plan.task, config.pretrained,
                                parts=plan.parts)
        self.policy = make_policy(plan.parts.policy, config)
        self.policy.validate(model)
        self.policy.apply(model)
        config.backbone_options.update(fine_tuning_options(model, self.policy, plan.entry))
        self.mixer = mixing.make_mixer(model.backbone, config, len(plan.classes), plan.entry)
        self.l2sp = optim.L2SP(model.backbone, config.l2sp)
        if model.backbone.channels_last:
            model.to(memory_format=torch.channels_last)
        model.to(self.accelerator.device)
        self.model = model

    def write_start(self) -> None:
        """Create (or replace) the run directory, complete with graft.json (status ``running``), in one rename."""
        self.info = {**run_info(self.plan, self.model, self.policy, self.history), "timing": self.timing,
                     "hardware": hardware_info(self.accelerator)}
        if self.fitted is not None:
            self.info["head_fit"] = self.fitted
        if self.main and self.state is None:
            create_run_dir(self.out, self.info, write_json)
        elif self.main:
            write_json(self.out / INFO, self.info)
        if self.lr_found is not None and self.main:
            from graftzoo.train.lr_find import save

            save(self.lr_found, self.out)
        self.accelerator.wait_for_everyone()
        # Trackers start once the run directory exists (their offline stores live in it).
        tracking.start(self.accelerator, self.config.log_with, self.config.project, self.out, self.config.to_dict())
        self.step = self.start * len(self.loader)

    def prepare_features(self) -> None:
        """Cached backbone features for a frozen backbone (the head trains on them), else raw-sample batches.

        Either way the plugin contract is checked first, on two samples: features
        of the declared width through the head (``train.build.check_contract``);
        features already in the cache were made by the same adapter and options.
        A frozen run adds ``--augment-views`` augmented passes to the cache and fits a
        linear or prototype head to convergence (``train.fitting``).
        """
        plan, config, split = self.plan, self.config, self.plan.split
        self.cached = self.policy.caches_features and plan.task == "classification"
        if self.cached:  # a head fitted in one go has no batches to balance: refused before any extraction
            balance.check_fitted_sampler(config, self.model.head)
        self.train_targets = [plan.targets[i] for i in split.train]
        self.loss_fn = self._make_loss()
        probe = [plan.data.samples[i] for i in split.train[:2]]
        if self.cached:
            self._cache_features(probe)
            if config.probe == "lbfgs" and self.state is None:
                self.fitted = fitting.fit_cached_head(
                    self.model.head, self.train_feats, torch.tensor(self.train_targets), len(plan.classes),
                    seed=config.seed, class_weight=self.class_weight, label_smoothing=config.label_smoothing,
                    c=config.probe_c, rule=config.probe_rule, groups=self.view_groups)
            self.sampler = balance.make_sampler(config.sampler, self.train_targets, config.seed)
            self.loader = loaders.feature_loader(self.train_feats, self.train_targets, self.batch_size, self.sampler)
            self.trainable: torch.nn.Module = self.model.head
        else:
            samples = [plan.data.samples[i] for i in split.train]
            check_contract(self.model, probe, plan.entry, len(plan.classes), config.adapter_options())
            if self.state is None:
                fitting.init_prototypes(self.model, plan.data, split.train, self.train_targets,
                                        self.accelerator.device)
            self.sampler = balance.make_sampler(config.sampler, self.train_targets, config.seed)
            self.loader = loaders.sample_loader(self.model.backbone, samples, self.train_targets, self.batch_size,
                                                plan.task, self.sampler, workers=config.workers or 0)
            self.trainable = self.model

    def _cache_features(self, probe: list[Any]) -> None:
        plan, config, split = self.plan, self.config, self.plan.split
        key = weights_identity(plan.entry, config.pretrained, plan.start_run)
        if key is None or not feature_cache_path(self.model.backbone, plan.data, key).exists():
            check_contract(self.model, probe, plan.entry, len(plan.classes), config.adapter_options())
        optim.set_modes(self.model, self.policy)  # once, backbone in eval (extraction keeps it): it never runs again
        batch = extraction_batch(self.batch_size, self.accelerator.device)
        t_feat = time.perf_counter()  # lookup, extraction, write; not the contract check (every run does it)
        feats = feature_rows(self.model.backbone, plan.data, batch_size=batch, cache_key=key,
                             device=self.accelerator.device, progress=self.progress and self.main,
                             workers=config.workers)  # read from the cache chunk by chunk, never whole
        check_features(self.model, feats.take(range(min(2, len(feats)))).tensor(), plan.entry, len(plan.classes))
        self.val_feats: Rows = feats.take(split.val)
        self.train_feats: Rows = feats.take(split.train)
        self._add_views(key, batch)
        self.timing["features_seconds"] = round(time.perf_counter() - t_feat, 4)

    def _add_views(self, key: str | None, batch: int) -> None:
        """``--augment-views`` (or the default, ``fitting.views_wanted``) augmented passes appended to the training
        features; each row's sample is kept for the probe's cross-validation."""
        plan, config, split = self.plan, self.config, self.plan.split
        views = fitting.views_wanted(config.augment, config.augment_views, n_train=len(split.train),
                                     default_views=self.model.backbone.default_views)
        self.view_groups: torch.Tensor | None = None
        if views:
            extra = fitting.augmented_views(self.model.backbone, plan.data, split.train, views, key=key,
                                            seed=config.seed, batch_size=batch, device=self.accelerator.device,
                                            progress=self.progress and self.main)
            self.train_feats = ConcatRows([self.train_feats, *extra])
            self.train_targets = self.train_targets * (views + 1)
            self.view_groups = torch.arange(len(split.train)).repeat(views + 1)
            why = "" if config.augment_views is not None else (
                " (the adapter's default for small data; --augment-views 0 for none)" if config.augment is None
                else f" (--augment {config.augment}; --augment-views K for another number)")
            self.say(f"frozen: {views} augmented view(s) of the training data cached with the plain features{why}")
        config.augment_views = views  # graft.json says how many; a resume and the refit use as many

    def _make_loss(self) -> mixing.Loss:
        """Cross-entropy with ``--label-smoothing`` and, for imbalanced classes, ``--class-weights`` (unless
        ``--sampler balanced`` balances the draw); soft targets of mixed batches too (``train.mixing``)."""
        token = self.plan.task == "token-classification"
        self.class_weight = None
        if not token:
            self.class_weight = balance.run_class_weights(self.config.class_weights, self.train_targets,
                                                          self.plan.classes, self.say if self.state is None else None,
                                                          self.config.sampler)
        weight = self.class_weight.to(self.accelerator.device) if self.class_weight is not None else None
        return mixing.cross_entropy(weight, self.config.label_smoothing, token)

    def make_optimiser(self) -> None:
        """AdamW over the policy's parameter groups (the lr found first with ``--lr auto``), the schedule,
        and a resumed run's saved state."""
        if self.config.lr_auto and self.fitted is not None:
            self.say("--lr auto: nothing to find, the head is fitted to convergence on cached features")
        if self.config.lr_auto and self.fitted is None and self.state is None:
            self._find_lr()
        config = self.config
        self.optimizer = torch.optim.AdamW(self._param_groups())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, optim.schedule(config.scheduler, config.epochs, config.warmup_epochs))
        if self.state is not None:
            self._restore(self.state)
        self.train_module, self.optimizer, self.loader = self.accelerator.prepare(self.trainable, self.optimizer,
                                                                                  self.loader)

    def _param_groups(self) -> list[dict[str, Any]]:
        config = self.config
        scale = config.backbone_lr_scale if config.backbone_lr_scale is not None else self.policy.backbone_lr_scale
        return optim.param_groups(self.model, config.lr, config.lr_decay, config.weight_decay,
                                  head_only=self.cached, backbone_scale=scale)

    def _find_lr(self) -> None:
        """``--lr auto``: the range test's suggestion becomes the run's lr (stored in graft.json)."""
        self.say("--lr auto: running a learning-rate range test")
        result = fitting.find_lr(self.trainable, self._param_groups(), mixing.MixedBatches(self.loader, self.mixer),
                                 self.loss_fn, self.accelerator.device)
        if not result.lrs or result.suggestion != result.suggestion:
            raise TrainingError("--lr auto: the range test diverged at once; pass --lr VALUE")
        self.lr_found = result  # saved into the run by write_start (nothing is written before it)
        self.say(f"--lr auto: suggested lr {result.suggestion:.3g} (plot: {self.out / 'lr_find.png'})")
        self.config = dataclasses.replace(self.config, lr=float(f"{result.suggestion:.3g}"))
        self.plan = dataclasses.replace(self.plan, config=self.config)

    def _restore(self, state: dict[str, Any]) -> None:
        if "head" in state:  # a frozen run checkpoints only what trains
            self.model.head.load_state_dict(state["head"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.policy.load_state_dict(state["policy"])
        self.history, self.early = list(state["history"]), dict(state["early"])
        self.start = self.checkpointed = int(state["epoch"])
        torch.set_rng_state(state["rng"])
        self.say(f"resuming {self.out} at epoch {self.start + 1}/{self.config.epochs}")

    def fit_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training batches, then validation; returns the epoch's metrics row."""
        t0 = time.perf_counter()
        _seed(self.config.seed * 1_000 + epoch, self.accelerator.device)  # augmentation, dropout: same after a resume
        self.sampler.use_epoch(epoch)
        acc = self.accelerator
        if self.policy.on_epoch_start(self.model, epoch) and acc.num_processes > 1 and not self.cached:
            # DDP hooks only parameters that require grad when it wraps: re-wrap as groups join.
            self.train_module = acc.prepare_model(acc.unwrap_model(self.train_module))
        if self.cached:  # only the head runs; the backbone's modes were set once, in prepare_features
            self.model.head.train()
        else:
            optim.set_modes(self.model, self.policy)
        t_loop = time.perf_counter()
        sums = acc.reduce(self._train_pass(epoch), reduction="sum")
        train_seconds = time.perf_counter() - t_loop
        lr_used = self.optimizer.param_groups[0]["lr"]  # this epoch's (the scheduler steps to the next one)
        self.scheduler.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(sums[0] / sums[2].clamp(min=1)),
                               "train_accuracy": float(sums[1] / sums[2].clamp(min=1))}
        if self.plan.split.val:
            self._validate_epoch(row, epoch)
        row["lr"] = lr_used
        # what trains is inside self.trainable (the whole model, or the head on cached features): a walk over
        # a backbone's hundreds of frozen parameters is 4 ms, a fifth of a head-only epoch
        row["trainable_params"] = sum(p.numel() for p in self.trainable.parameters() if p.requires_grad)
        row["train_seconds"] = round(train_seconds, 4)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row

    def _train_pass(self, epoch: int) -> torch.Tensor:
        token = self.plan.task == "token-classification"
        sums = torch.zeros(3, device=self.accelerator.device)
        inner = getattr(self.optimizer, "optimizer", self.optimizer)  # the torch optimiser Accelerate wraps
        with progress_bar(f"epoch {epoch + 1}/{self.config.epochs}", total=len(self.loader),
                          enabled=self.progress and self.main) as advance:
            for batch, y in mixing.MixedBatches(self.loader, self.mixer):  # --mixup/--cutmix: soft targets
                with self.accelerator.accumulate(self.train_module):  # --grad-accum: step every k batches
                    logits = self.train_module(batch)
                    flat, fy = (logits.flatten(0, -2), y.flatten()) if token else (logits, mixing.hard_labels(y))
                    loss = self.loss_fn(logits, y)
                    penalty = self.l2sp.penalty(self.model.backbone)
                    self.accelerator.backward(loss + penalty if penalty is not None else loss)
                    self.optimizer.step()
                    if self.accelerator.sync_gradients:  # what AcceleratedOptimizer.zero_grad does, without its
                        inner.zero_grad(set_to_none=True)  # inspect.signature on every step
                self.step += 1
                if self.config.log_with:
                    tracking.log_step(self.accelerator, self.step, float(loss.detach()), self.optimizer)
                with torch.no_grad():
                    valid = fy != -100
                    n = valid.sum()
                    sums += torch.stack([loss.detach() * n, ((flat.argmax(-1) == fy) & valid).sum(), n])
                advance(1)
        return sums

    def _validate_epoch(self, row: dict[str, Any], epoch: int) -> None:
        vm = self.validate()
        row.update({f"val_{k}": v for k, v in vm.items() if k not in ("confusion", "n", "correct")})
        metric = self.config.early_stopping_metric
        watched = vm[metric] * (1 if metric == "loss" else -1)  # lower is better
        if watched < self.early["best_loss"] - 1e-6:
            self.early.update(best_loss=watched, best_epoch=epoch + 1, bad=0)
            if self.config.early_stopping is not None and self.main:
                save_weights(self.trainable, self.out / BEST)
        else:
            self.early["bad"] += 1

    def validate(self) -> dict[str, Any]:
        """Metrics on the validation split (the head on cached features when the backbone is frozen), plus
        per-sample ``correct`` (0/1) for classification: the paired bootstrap of ``--baseline`` needs it."""
        plan = self.plan
        val_targets = [plan.targets[i] for i in plan.split.val]
        val_samples = [plan.data.samples[i] for i in plan.split.val]
        if plan.task == "token-classification":
            return evaluate_samples(self.model, val_samples, val_targets, plan.classes, self.batch_size)
        if self.cached:  # the backbone never runs again
            logits = fitting.head_logits(self.model.head, self.val_feats, self.accelerator.device)
        else:
            logits = classify(self.model, val_samples, self.batch_size)
        y = torch.tensor(val_targets)
        return {**classification_metrics(logits, y, len(plan.classes)),
                "correct": (logits.argmax(-1) == y).int().tolist()}

    def checkpoint(self, row: dict[str, Any]) -> None:
        """Record the epoch: checkpoint (the head only when the backbone is frozen), metrics.jsonl, console line."""
        self.history.append(row)
        if self.config.log_with:
            tracking.log_epoch(self.accelerator, self.step, row)
        due = self._checkpoint_due(row)
        if self.main:
            from graftzoo.train.artifacts import write_metrics

            history = list(self.history)
            if due:
                t0 = time.perf_counter()
                trained = {"head": self.model.head.state_dict()} if self.cached else {"model": self.model.state_dict()}
                self.writer.submit(self.out, {
                    "epoch": row["epoch"], **trained, "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "policy": self.policy.state_dict(),
                    "history": history, "early": self.early, "rng": torch.get_rng_state()},
                    then=lambda: write_metrics(self.out, history))
                self.since_checkpoint = [0.0, time.perf_counter() - t0]
            else:  # after the pending write, whose own metrics.jsonl (one epoch shorter) must not land last
                self.writer.wait()
                write_metrics(self.out, history)
        if due:
            self.checkpointed = int(row["epoch"])
        self.say(_epoch_line(row, self.config.epochs))
        self.accelerator.wait_for_everyone()
        if self.on_epoch_end is not None:
            self.writer.wait()  # a hook sees the epoch's checkpoint on disk (it may stop or inspect the run)
            self.on_epoch_end(row["epoch"], row)

    def _checkpoint_due(self, row: dict[str, Any]) -> bool:
        """Whether this epoch is checkpointed: when the training since the last checkpoint took at least
        ``CHECKPOINT_BUDGET`` times what that one cost to serialise (so checkpoints take at most about 1% of the
        training time), and always after the first and the last epoch, before an early stop and with an epoch hook
        (it may stop or inspect the run). Epochs of seconds or more are each checkpointed; on a short fine-tune the
        per-epoch checkpoint was 4% of the time (bench/engine_bench.py), and a kill now costs at most 100 times a
        checkpoint's serialisation of training (about 2 s there) besides the epoch it interrupts."""
        self.since_checkpoint[0] += float(row.get("seconds", 0.0))
        trained, cost = self.since_checkpoint
        last = row["epoch"] >= self.config.epochs or self.early["bad"] >= (self.config.early_stopping or 1 << 30)
        return (self.checkpointed == self.start or last or self.on_epoch_end is not None
                or trained >= CHECKPOINT_BUDGET * cost)

    def finish(self) -> dict[str, Any]:
        """Best epoch's weights (early stopping), final validation, weights, graft.json, plots and card."""
        best = self.out / BEST
        if self.config.early_stopping is not None and best.exists():
            from safetensors.torch import load_model

            load_model(self.trainable, str(best), strict=True)  # the epoch with the lowest validation loss
        final: dict[str, Any] = {}
        correct = None
        if self.plan.split.val:
            final = self.validate()
            correct = final.pop("correct", None)
            if self.config.early_stopping is not None:  # otherwise the weights are the last epoch's
                final["best_epoch"] = self.early["best_epoch"]
                if self.early.get("stopped"):
                    final["stopped_after_epoch"] = self.early["stopped"]
        info = {**self.info, "status": "complete", "epochs": self.history, "final": final,
                "policy": {**self.info["policy"], "state": self.policy.state_dict()},
                **({"val_correct": correct} if correct is not None else {})}
        if self.main:
            self._write_final(info, final)
            best.unlink(missing_ok=True)
            if final:
                self.say(f"final validation: accuracy {final['accuracy']:.4f}  loss {final['loss']:.4f}  "
                         f"macro-F1 {final['macro_f1']:.4f}  (n={final['n']})  -> {self.out}")
        return info

    def _write_final(self, info: dict[str, Any], final: dict[str, Any]) -> None:
        from graftzoo.train.artifacts import write_card, write_plots
        from graftzoo.train.export import save_example

        out, plan = self.out, self.plan
        save_example(self.model, [plan.data.samples[i] for i in plan.split.train[:2]], out)
        info["extra_files"] = copy_extra_files(self.model.backbone.extra_files(), out)
        write_plots(out, self.history, final, plan.classes)
        write_card(out, info)
        # The weights last, just before "complete": a run killed earlier shows no final weights beside an
        # unfinished graft.json (a one-go frozen fit has no checkpoint to explain them).
        save_weights(self.model, out / WEIGHTS, metadata={"format": RUN_FORMAT, "model": self.config.model})
        self.writer.wait()  # the last epoch's checkpoint (written during the final validation and plots) is on disk
        write_json(out / INFO, info)  # "complete" only once everything else is written
        (out / CHECKPOINT).unlink(missing_ok=True)


def extraction_batch(batch_size: int, device: torch.device) -> int:
    """The batch of a frozen run's feature extraction: the run's own on the CPU, at least 64 on an accelerator.

    Inference has no gradients to hold, so an accelerator takes a larger batch than training does. A CPU does
    not gain from one: MobileNetV2 at 64 px on one thread ran 1,109 samples per CPU-second at batch 32 and
    832 at batch 64 (activations that no longer fit the cache).
    """
    return batch_size if device.type == "cpu" else max(batch_size, 64)


def _seed(seed: int, device: torch.device) -> None:
    """``torch.manual_seed`` -- only the CPU generator when the run is on the CPU.

    ``torch.manual_seed`` also queues a lazy seed of every accelerator's generators, each with a
    captured stack trace (1 ms an epoch: a tenth of a frozen probe's head-only epoch); a CPU run
    draws from the CPU generator alone.
    """
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def _quietly(fn: Callable[[], None]) -> None:
    """Call ``fn``, ignoring its error (while another one is being raised)."""
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    text = f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
    if "val_loss" in row:
        text += f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} f1 {row['val_macro_f1']:.4f}"
    return text + f"  ({row['seconds']:.1f}s)"
