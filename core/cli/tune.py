"""``graft tune``: fine-tune a model on your data (or ``--resume`` a run)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from graftzoo.cli.completion import complete_datasets, complete_heads, complete_model_ids, complete_policies
from graftzoo.cli.config_file import apply_config, config_extras
from graftzoo.errors import TrainingError


def _lr_option(ctx: click.Context, param: click.Parameter, value: str) -> float | str:
    if str(value).lower() == "auto":
        return "auto"
    try:
        lr = float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'auto', got {value!r}") from None
    if not lr > 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return lr


def _resolve_lr(options: dict[str, Any]) -> None:
    """``--lr auto`` becomes ``lr_auto`` (the range test runs in the engine; 1e-3 is only its placeholder)."""
    if options["lr"] == "auto":
        options.update(lr=1e-3, lr_auto=True)


def _key_values(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


@click.command("tune")
@click.argument("model", required=False, shell_complete=complete_model_ids)
@click.argument("data", required=False, type=click.Path(), shell_complete=complete_datasets)
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), is_eager=True, expose_value=False,
              callback=apply_config, metavar="FILE",
              help="Options from a TOML/YAML file or a run's graft.json (replays it); flags given here override it.")
@click.option("--data", "data_override", default=None, metavar="DATA",
              help="DATA, as an option: run a --config recipe (e.g. a graft.json) on other data.")
@click.option("--policy", default="frozen", show_default=True, shell_complete=complete_policies,
              help="Freeze policy: frozen, full, top-k, gradual, bitfit, lora (or a plugin's).")
@click.option("--head", default="linear", show_default=True, shell_complete=complete_heads,
              help="Head: linear, mlp, prototype (class means, cosine; few-shot), token (or a plugin's).")
@click.option("--lr", default="1e-3", show_default=True, callback=_lr_option, metavar="LR|auto",
              help="Learning rate of the head; 'auto' runs a learning-rate range test first (plot: lr_find.png).")
@click.option("--backbone-lr-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Backbone lr as a fraction of --lr (default: the policy's, 0.3 for full/top-k/gradual, "
                   "1 for lora/bitfit).")
@click.option("--lr-decay", type=float, default=1.0, show_default=True,
              help="Layer-wise decay: backbone group i from the top learns at lr*scale*F^i.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="AdamW weight decay.")
@click.option("--dropout", type=float, default=0.0, show_default=True, help="Dropout in the head.")
@click.option("--hidden", type=int, default=256, show_default=True, help="Hidden units of the mlp head.")
@click.option("--l2sp", type=float, default=0.0, show_default=True, help="L2-SP penalty toward pretrained weights.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Default: 32, or 16/8 when the training split is small (about 8 steps an epoch).")
@click.option("--image-size", type=click.IntRange(min=8), default=None, help="Input size (vision): smaller is faster.")
@click.option("--val-split", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Held-out fraction, stratified and seeded.")
@click.option("--limit-per-class", type=click.IntRange(min=1), default=None, help="Few-shot: at most N per class.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--early-stopping", type=click.IntRange(min=1), default=None, metavar="PATIENCE",
              help="Stop after PATIENCE epochs without a better validation metric; keep the best epoch.")
@click.option("--early-stopping-metric", type=click.Choice(["loss", "accuracy", "macro_f1"]), default="loss",
              show_default=True, help="What --early-stopping watches.")
@click.option("--scheduler", type=click.Choice(["cosine", "linear", "constant"]), default="cosine",
              show_default=True, help="Learning-rate schedule over the epochs.")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Epochs of linear lr warm-up before the schedule.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option("--class-weights", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
              help="auto: weight the loss by inverse class frequency when classes are imbalanced (3:1 or more; "
                   "not with --sampler balanced, which balances the draw instead).")
@click.option("--sampler", type=click.Choice(["shuffle", "balanced"]), default="shuffle", show_default=True,
              help="Training batches: shuffle (each sample once an epoch) or balanced (each class drawn equally "
                   "often an epoch: rare classes repeat, common ones are subsampled).")
@click.option("--mixup", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="ALPHA",
              help="Vision, trainable policies: mixup, blending pairs of training images and their labels with "
                   "weights from Beta(ALPHA, ALPHA) (timm's Mixup; e.g. 0.2). 0 is off.")
@click.option("--cutmix", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="ALPHA",
              help="Vision, trainable policies: cutmix, pasting a patch of another training image (area from "
                   "Beta(ALPHA, ALPHA), e.g. 1.0) and mixing labels by area. 0 is off.")
@click.option("--mix-prob", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of training batches that --mixup/--cutmix mix.")
@click.option("--mix-switch-prob", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="With both --mixup and --cutmix: the share of mixed batches that use cutmix.")
@click.option("--augment", default=None, metavar="none|light|strong|T1,T2",
              help="Training augmentation: a preset or named transforms of the modality (vision: crop, hflip, "
                   "randaugment, trivialaugment, colorjitter; audio: noise, speed, pitch, specaugment; text: none). "
                   "Default: the adapter's safe choice (vision/audio light: no flips, mild crops; text none).")
@click.option("--augment-views", type=click.IntRange(min=0), default=None, metavar="K",
              help="frozen: cache K augmented passes of the training data (default 4 with --augment; else, on "
                   "at most 1,000 training samples, the adapter's own count: 4 for speech, 0 for vision and text).")
@click.option("--crop-pct", type=click.FloatRange(0.1, 1.0), default=None,
              help="Vision evaluation: centre-crop fraction (default: the model's own, e.g. 0.875, for a frozen "
                   "backbone; for a fine-tuned one the crop its training crops match, 0.9472 with light "
                   "augmentation; 1.0 keeps the whole image).")
@click.option("--probe", type=click.Choice(["lbfgs", "sgd"]), default="lbfgs", show_default=True,
              help="frozen + linear head: lbfgs fits logistic regression to convergence (L2 chosen by 5-fold CV, "
                   "3 folds from 1,000 samples on); sgd trains it for --epochs.")
@click.option("--probe-c", type=click.FloatRange(min=0, min_open=True), default=None, metavar="C",
              help="lbfgs probe: its L2 strength as scikit-learn's C (inverse regularisation) instead of the one "
                   "cross-validation chooses.")
@click.option("--probe-rule", type=click.Choice(["lowest", "one-standard-error", "accuracy"]), default="lowest",
              show_default=True,
              help="lbfgs probe: how cross-validation picks C: the lowest held-out log-loss; the most "
                   "regularised C within one standard error (across folds) of it; or the highest held-out accuracy "
                   "(ties: the lower log-loss).")
@click.option("--refit/--no-refit", default=None,
              help="After validation, retrain on train+validation for the epoch count (probe: the C) chosen on "
                   "validation. Default: on for the frozen probe (one more fit) and for few-shot or small "
                   "classification data (at most 20 labelled samples per class, or 1,000 in all), off otherwise.")
@click.option("--unfreeze", type=int, default=None, metavar="K", help="top-k: how many top groups train.")
@click.option("--unfreeze-every", type=int, default=None, metavar="N", help="gradual: one more group every N epochs.")
@click.option("--lora-rank", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--format", "data_format", default=None, help="Data format, when it cannot be detected.")
@click.option("--skip-bad", is_flag=True, help="Skip bad rows/files instead of stopping.")
@click.option("--text-column", default=None, help="Text column of csv/jsonl data (default: text).")
@click.option("--label-column", default=None, help="Label column of csv/jsonl data (default: label).")
@click.option("--path-column", default=None, help="File-path column of csv/jsonl data (default: path).")
@click.option("--backbone-option", "backbone_options", multiple=True, metavar="KEY=VALUE",
              help="Extra adapter option (e.g. max_length=64); repeatable.")
@click.option("--head-option", "head_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the head itself (see 'graft info --head NAME'); repeatable.")
@click.option("--policy-option", "policy_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the freeze policy itself (see 'graft info --policy NAME'); repeatable.")
@click.option("--pretrained/--no-pretrained", default=True, show_default=True,
              help="Start from the pretrained weights, or from random initialisation.")
@click.option("--init-head", is_flag=True,
              help="With MODEL a run pushed with 'graft push' (hf://ORG/REPO): start from its head too (same labels).")
@click.option("--baseline", type=click.Choice(["scratch"]), default=None,
              help="Also train from scratch with the same budget and report the transfer gain.")
@click.option("--log-with", "log_with", multiple=True, metavar="TRACKERS",
              help="Experiment trackers through Accelerate: tensorboard, mlflow, trackio, wandb (comma-separated or "
                   "repeated) or all; offline stores inside the run directory. Needs graftzoo[tensorboard] etc.")
@click.option("--project", default=None, help="Tracker project / experiment name (default: the run directory's name).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where to compute: auto picks a CUDA GPU when one is visible.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Arithmetic: fp32, or bf16/fp16 mixed precision (refused where the hardware lacks it). "
                   "Default: bf16 on a GPU that has it, else fp32.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="DataLoader processes decoding samples (default: from the CPU count for feature extraction, "
                   "0 for training batches).")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Accumulate gradients over N batches per optimiser step (an N-times larger effective batch).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (default runs/<model>-...).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--resume", type=click.Path(path_type=Path), default=None, metavar="RUN_DIR",
              help="Continue an interrupted run.")
@click.option("--json", "as_json", is_flag=True, help="Print graft.json of the finished run.")
def tune(model: str | None, data: str | None, data_override: str | None, resume: Path | None, as_json: bool,
         out: Path | None, overwrite: bool, backbone_options: tuple[str, ...], head_options: tuple[str, ...],
         policy_options: tuple[str, ...], text_column: str | None, label_column: str | None,
         path_column: str | None, data_format: str | None, **options: Any) -> None:
    """Fine-tune MODEL on DATA (a path, or a registered dataset name) and write a run directory.

    \b
    MODEL is a registry id ('graft list'), a hub model hf://ORG/REPO[@REVISION]
    (resolved, pinned to a commit and verified: 'graft info hf://...' first),
    or a run published with 'graft push', whose fine-tuned backbone is the start.

    \b
    Examples:
      graft tune mobilenetv2_100.tv_in1k digits --policy frozen --image-size 64
      graft tune hf://timm/resnet18.a1_in1k photos/ --policy top-k --unfreeze 1
      graft tune hf://me/my-run new-photos/ --init-head
      graft tune mobilenetv2_100.tv_in1k photos/ --policy top-k --unfreeze 2 --lr-decay 0.5
      graft tune --resume runs/mobilenetv2_100.tv_in1k-top-k-20260101-120000
      graft tune --config recipe.toml --epochs 20         (flags override the file)
      graft tune --config runs/a/graft.json --out runs/b  (replay a run; add --data D for other data)
    """
    from graftzoo.cli._output import echo_json, warn_plugin_problems

    warn_plugin_problems()
    echo = click.echo
    data = data_override or data
    if resume is not None:
        from graftzoo.train.engine import resume as resume_run

        info = _interruptible(lambda: resume_run(resume, model, echo=echo), resume)
    else:
        if model is None or data is None:
            raise click.UsageError("MODEL and DATA are required (or --resume RUN_DIR)")
        from graftzoo.train.config import TrainConfig
        from graftzoo.train.engine import train
        from graftzoo.train.tracking import resolve_trackers

        # A bad tracker name, or one not installed, fails before anything heavy happens.
        options["log_with"] = resolve_trackers(options["log_with"])
        data_options = {k: v for k, v in (("text_column", text_column), ("label_column", label_column),
                                          ("path_column", path_column)) if v is not None}
        _resolve_lr(options)
        config = TrainConfig(model=model, data=data, format=data_format,
                             backbone_options=_key_values(backbone_options, "--backbone-option"),
                             head_extra=_key_values(head_options, "--head-option"),
                             policy_extra=_key_values(policy_options, "--policy-option"),
                             data_options=data_options, **options)
        extra = config_extras(click.get_current_context())
        if extra:  # options a replayed run recorded that have no flag (e.g. lora_alpha)
            import dataclasses

            config = dataclasses.replace(config, **{k: v for k, v in extra.items() if k != "data_options"})
            config.data_options = {**extra.get("data_options", {}), **config.data_options}
        if out is None:
            name = model.removeprefix("hf://").replace("/", "--").replace("@", "-")
            out = Path("runs") / f"{name}-{config.policy}-{time.strftime('%Y%m%d-%H%M%S')}"
        target = out  # train() checks it, then plans the run: everything is validated before anything is written
        info = _interruptible(lambda: train(config, target, overwrite=overwrite, echo=echo), target)
    if as_json:
        echo_json(info)


def _interruptible(fn: Any, run_dir: Path) -> Any:
    try:
        return fn()
    except KeyboardInterrupt:  # outside the epoch loop (e.g. while extracting features): no checkpoint yet
        if (run_dir / "graft.json").is_file():
            raise TrainingError(f"interrupted before the first epoch ended; continue with 'graft tune --resume "
                                f"{run_dir}' (it starts again from the saved configuration)") from None
        raise TrainingError("interrupted before the run directory was created; nothing to resume, run the same "
                            "command again") from None
