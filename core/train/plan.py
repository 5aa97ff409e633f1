"""The run plan: what one run is made of, resolved and validated once, before anything is written.

``plan_run(config)`` turns the options of ``graft tune`` into a ``RunPlan``:
the registry entry (one registry parse), the adapter, head and policy
registrations (one lookup each), the loaded data with its modality checked
against the model's, and the train/validation split. Options the chosen
policy ignores are refused here, so they never reach graft.json or the model
card. ``resume``, ``graft evaluate`` (``--split val`` and the shift report),
``graft rank`` and ``graft adapt`` load data and split it through the same
functions, so a run's split is computed in one place (``split_indices``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.data import LabelledData, load_data
from graftzoo.errors import DataError, OptionError, TrainingError
from graftzoo.plugins import Registration, get_plugins
from graftzoo.registry import ModelEntry, Registry, load_registry
from graftzoo.train.balance import check_sampler_options
from graftzoo.train.build import Parts, adapter_for, head_name, resolve_model, typed_options
from graftzoo.train.config import TrainConfig
from graftzoo.train.mixing import check_mix_options
from graftzoo.train.split import limit_per_class, stratified_split

if TYPE_CHECKING:
    from graftzoo.train.run import Run

#: Policy options of TrainConfig: field -> (command-line flag, default). A policy
#: declares the ones it reads in ``FreezePolicy.options_used``.
POLICY_OPTIONS: dict[str, tuple[str, Any]] = {
    "unfreeze": ("--unfreeze", None),
    "unfreeze_every": ("--unfreeze-every", None),
    "lora_rank": ("--lora-rank", 8),
    "lora_alpha": ("--lora-alpha", 16),
}


@dataclass(frozen=True)
class Split:
    """Indices of the training and validation samples of one run."""

    train: list[int]
    val: list[int]


def split_indices(config: TrainConfig, labels: Sequence[Any]) -> Split:
    """The run's split: stratified by ``val_split`` and ``seed``, then ``limit_per_class`` (few-shot)."""
    train, val = stratified_split(labels, config.val_split, config.seed)
    if config.limit_per_class is not None:
        train = limit_per_class(train, labels, config.limit_per_class, config.seed)
    return Split(train, val)


def auto_batch_size(n_train: int, largest: int = 32, smallest: int = 8) -> int:
    """The default batch: ``largest``, or the power of two giving about 8 steps an epoch on small sets.

    80 few-shot images in batches of 32 make 3 optimiser steps an epoch, too few for a fine-tune of
    10 epochs to move; batches of 8 make 10.
    """
    size = largest
    while size > smallest and n_train < 8 * size:
        size //= 2
    return size


def check_modality(data: LabelledData, modality: str, model: str, spec: str) -> None:
    """A plain ``DataError`` when the data is of another modality than the model."""
    if data.modality is not None and data.modality != modality:
        raise DataError(f"{spec} is {data.modality} data but {model} is a {modality} model; choose a {data.modality} "
                        f"model ('graft list --modality {data.modality}') or {modality} data")


def load_run_data(config: TrainConfig, modality: str, model: str, data: LabelledData | None = None
                  ) -> LabelledData:
    """DATA as the run loads it (format, ``--skip-bad``, loader options), checked against the model's modality."""
    if data is None:
        data = load_data(config.data, modality=modality, format=config.format, skip_bad=config.skip_bad,
                         **config.data_options)
    check_modality(data, modality, model, config.data)
    return data


def check_policy_options(config: TrainConfig, policy: Registration) -> None:
    """Refuse options the chosen policy ignores, naming the policies that read them."""
    factory = policy.resolve()
    used = getattr(factory, "options_used", None)
    if used is None:  # a policy that does not declare its options receives them all
        return
    for fld, (flag, default) in POLICY_OPTIONS.items():
        value = getattr(config, fld)
        if value != default and fld not in used:
            readers = _policies_reading(fld)
            raise OptionError(f"{flag} {value} does not apply to policy {policy.name!r}"
                              f"{f'; it is read by {readers}' if readers else ''}: drop it or choose "
                              f"{'one of those policies' if readers else 'another policy'}")
    if config.lr_decay != 1.0 and getattr(factory, "caches_features", False):
        raise OptionError(f"--lr-decay {config.lr_decay} does not apply to policy {policy.name!r}: only the head "
                          "trains, at --lr; drop --lr-decay or choose a policy that trains backbone groups")


def _policies_reading(fld: str) -> str:
    names = []
    for name, reg in sorted(get_plugins().collect("freeze_policies").items()):
        try:
            if fld in (getattr(reg.resolve(), "options_used", None) or ()):
                names.append(name)
        except Exception:  # noqa: BLE001 - only for a hint; a broken policy is reported elsewhere
            continue
    return ", ".join(names)


@dataclass
class RunPlan:
    """Everything one run needs, validated: config, entry, parts, data, classes, targets, split."""

    config: TrainConfig
    entry: ModelEntry
    parts: Parts
    data: LabelledData
    classes: list[str]
    targets: list[Any]  # class ids, or per-word id lists for token tasks
    split: Split
    start_run: Path | None = None  # a pushed run (hf://me/my-run) whose fine-tuned weights are the start

    @property
    def task(self) -> str:
        return self.data.task

    def scratch(self) -> RunPlan:
        """The plan of the scratch baseline: same data, split, budget and lr (or ``--lr auto`` search); random
        init, policy ``full``, one lr for every layer (nothing pretrained to protect), no refit."""
        config = TrainConfig.from_dict({**self.config.to_dict(), "pretrained": False, "baseline": None,
                                        "policy": "full", "unfreeze": None, "unfreeze_every": None,
                                        "backbone_lr_scale": 1.0, "refit": False, "probe": "lbfgs",
                                        "augment_views": None})
        policy = get_plugins().get("freeze_policies", "full")
        return dataclasses.replace(self, config=config, parts=dataclasses.replace(self.parts, policy=policy))

    def refit(self, epochs: int, lr: float, probe_c: float | None = None) -> RunPlan:
        """``--refit``'s plan: train+validation, no validation, ``epochs`` at ``lr`` (as chosen on validation);
        a probe fitted with ``probe_c`` (its cross-validated C) rather than cross-validating again."""
        config = dataclasses.replace(self.config, epochs=epochs, lr=lr, lr_auto=False, early_stopping=None,
                                     refit=False, baseline=None, log_with=[],  # trackers follow the real run
                                     probe_c=self.config.probe_c if probe_c is None else probe_c)
        return dataclasses.replace(self, config=config, split=Split(sorted(self.split.train + self.split.val), []))


def plan_run(config: TrainConfig, data: LabelledData | None = None, registry: Registry | None = None) -> RunPlan:
    """Resolve and validate a run (model, parts, options, data, split) without writing anything."""
    registry = load_registry() if registry is None else registry
    entry, start_run = resolve_model(config.model, registry)
    plugins = get_plugins()
    adapter = adapter_for(entry, registry)
    policy = plugins.get("freeze_policies", config.policy)
    head = plugins.get("heads", config.head)
    check_policy_options(config, policy)
    if config.probe_rule not in ("lowest", "one-standard-error", "accuracy"):
        raise OptionError(f"probe_rule {config.probe_rule!r}: use lowest, one-standard-error or accuracy")
    config.policy_extra = typed_options(policy, config.policy_extra, "--policy-option")
    from graftzoo.train.hardware import check_hardware

    check_hardware(config)  # --device/--precision this machine cannot run: refused before the data loads
    data = load_run_data(config, entry.modality, entry.id, data)
    if len(data) == 0:
        raise DataError(f"{config.data}: no labelled samples")
    classes = data.classes
    if len(classes) < 2:
        raise DataError(f"{config.data}: only one class ({', '.join(classes) or 'none'}); a classifier needs two "
                        "or more")
    if head_name(config, data.task) != head.name:
        head = plugins.get("heads", head_name(config, data.task))
    config.head_extra = typed_options(head, config.head_extra, "--head-option")
    index = {c: i for i, c in enumerate(classes)}
    if data.task == "token-classification":
        targets: list[Any] = [[index[t] for t in tags] for tags in data.labels]
    else:
        targets = [index[str(label)] for label in data.labels]
    check_mix_options(config, policy, data.task)
    check_sampler_options(config, data.task)
    split = split_indices(config, data.labels)
    if config.early_stopping is not None and not split.val:
        raise OptionError("--early-stopping watches the validation loss; it needs --val-split > 0")
    if config.init_head and start_run is None:
        raise OptionError("--init-head starts from a pushed run's head; MODEL must be hf://ORG/REPO of a run "
                          "published with 'graft push'")
    if config.batch_size is None:
        config = dataclasses.replace(config, batch_size=auto_batch_size(len(split.train)))
    return RunPlan(config, entry, Parts(adapter, head, policy), data, classes, targets, split, start_run)


def evaluation_data(run: Run, spec: str, split: str = "all", data_format: str | None = None,
                    skip_bad: bool = False, *, scored: bool = True) -> LabelledData:
    """The data ``graft evaluate`` scores a run on: all of DATA, or (``split="val"``) the run's held-out split.

    A run refitted on train+validation has no held-out split left to score: ``split="val"`` is refused
    unless the samples are wanted for something other than a score (``scored=False``: demo examples).
    """
    cfg = run.config
    same = spec == cfg.data
    dataset = load_data(spec, modality=run.entry.modality, format=data_format or (cfg.format if same else None),
                        skip_bad=skip_bad or (same and cfg.skip_bad), **cfg.data_options)
    check_modality(dataset, run.entry.modality, run.entry.id, spec)
    if split == "val":
        if dataset.fingerprint() != run.info["data"]["fingerprint"]:
            raise DataError(f"{spec} is not the data {run.path} was trained on ({run.info['data']['spec']}); "
                            "--split val re-creates that run's held-out split, so pass the same data")
        val = split_indices(cfg, dataset.labels).val
        if not val:
            raise DataError(f"{run.path} was trained with --val-split 0: it has no held-out split")
        refit = run.info.get("refit")
        if refit and scored:
            before = run.info.get("final", {}).get("accuracy")
            held = "" if before is None else f" (its held-out accuracy before the refit: {before:.4f}, in graft.json)"
            raise DataError(f"{run.path} was refitted on train+validation ({refit.get('n_train')} samples): its "
                            f"validation split is training data now, so --split val would not be held out{held}; "
                            "evaluate on other data, or tune with --no-refit to keep a validation split")
        dataset = dataset.subset(val, name=f"{dataset.name} (val split)")
    if len(dataset) == 0:
        raise DataError(f"{spec}: no labelled samples")
    return dataset


def training_data(run: Run) -> LabelledData:
    """The run's training split, re-created from graft.json (same data, options, ``--skip-bad``, seed, split)."""
    cfg = run.config
    data = load_run_data(cfg, run.entry.modality, run.entry.id)
    if data.fingerprint() != run.info["data"]["fingerprint"]:
        raise TrainingError(f"{cfg.data} changed since the run trained on it")
    return data.subset(split_indices(cfg, data.labels).train, name=f"{data.name} (train split)")
