"""What a run leaves for people: metrics.jsonl, PNG plots, the README.md model card, the baseline verdict."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from graftzoo.storage import atomic
from graftzoo.train.run import INFO, write_json_atomic


def write_metrics(out: Path, history: Sequence[dict[str, Any]]) -> None:
    """metrics.jsonl: one JSON object per epoch (rewritten whole, so a resume never duplicates lines)."""
    atomic.write_text(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history), "metrics.jsonl")


def write_plots(out: Path, history: Sequence[dict[str, Any]], final: dict[str, Any], classes: Sequence[str],
                baseline: Sequence[dict[str, Any]] | None = None) -> None:
    """curves.png (per epoch, best epoch marked, scratch baseline overlaid) and confusion.png (see ``plots``)."""
    from graftzoo.train.plots import write_confusion, write_curves

    write_curves(out, history, out.name, baseline)
    if final.get("confusion"):
        write_confusion(out, final["confusion"], classes, f"{out.name}: validation confusion matrix")


def write_card(out: Path, info: dict[str, Any]) -> None:
    """README.md in the Hugging Face model-card format (YAML metadata, then prose and tables)."""
    from graftzoo.train.card import front_matter

    config = info["config"]
    meta = front_matter(info, "graftzoo", ["graftzoo", "transfer-learning", f"policy-{config['policy']}"], out.name)
    lines = [*meta, "", *_card_body(out, info)]
    atomic.write_text(out / "README.md", "\n".join(lines), "the model card")


def _card_body(out: Path, info: dict[str, Any]) -> list[str]:
    entry, config, final = info["entry"], info["config"], info.get("final") or {}
    lines = [
        f"# {out.name}",
        "",
        f"{info['model']} ({entry.get('pretrained_on') or 'pretrained'}) fine-tuned with Graftzoo on "
        f"`{info['data']['name']}` ({info['data']['n_train']} training / {info['data']['n_val']} validation samples, "
        f"{len(info['labels'])} classes).",
        "",
        "## Training",
        "",
        f"- policy: {info['policy']['description']}",
        f"- head: {config['head']}, epochs: {config['epochs']} (ran {len(info['epochs'])}), batch size "
        f"{config['batch_size']}, lr {config['lr']}, lr decay {config['lr_decay']}, weight decay "
        f"{config['weight_decay']}, dropout {config['dropout']}, L2-SP {config['l2sp']}",
        f"- pretrained: {config['pretrained']}, seed {config['seed']}, validation split {config['val_split']}",
        _batches_line(config),
        f"- preprocessing: `{json.dumps(info['preprocessing'], default=str)}`",
        f"- libraries: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}",
        "",
    ]
    if final:
        lines += ["## Validation results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in final.items() if k not in ("confusion", "correct")]
        lines.append("")
    baseline = info.get("baseline")
    if baseline:
        lines += ["## Transfer vs. training from scratch", "", baseline["verdict"], ""]
    lines += ["## Per-epoch metrics", "", "| epoch | train loss | train acc | val loss | val acc |",
              "|---|---|---|---|---|"]
    for row in info["epochs"]:
        lines.append(f"| {row['epoch']} | {row['train_loss']:.4f} | {row['train_accuracy']:.4f} | "
                     f"{row.get('val_loss', float('nan')):.4f} | {row.get('val_accuracy', float('nan')):.4f} |")
    lines += ["", "## Use", "", "```", f"graft predict {out} INPUT...", f"graft evaluate {out} DATA", "```",
              "", f"Labels: {', '.join(info['labels'])}", ""]
    return lines


def _batches_line(config: dict[str, Any]) -> str:
    """How training batches were drawn and altered: augmentation, sampler, class weights, smoothing, mixing."""
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.mixing import describe

    cfg = TrainConfig.from_dict(config)
    line = (f"- training batches: augment {cfg.augment or 'default'}, sampler {cfg.sampler}, class weights "
            f"{cfg.class_weights}, label smoothing {cfg.label_smoothing}")
    mixed = describe(cfg)
    return line + (f", mixing: {mixed}" if mixed else "")


def compare_baseline(out: Path, info: dict[str, Any], base: dict[str, Any],
                     echo: Callable[[str], None] | None) -> dict[str, Any]:
    """Record pretrained-vs-scratch accuracy in graft.json and the card, with a paired-bootstrap CI of the gain.

    NEGATIVE TRANSFER is claimed only when the whole interval is below 0 on
    enough validation samples; otherwise the verdict says "inconclusive".
    """
    from graftzoo.diagnostics.verdict import bootstrap_gain, describe

    ours, theirs = info.get("val_correct"), base.get("val_correct")
    record: dict[str, Any] = {"kind": "scratch", "run": "baseline",
                              "accuracy": (base.get("final") or {}).get("accuracy")}
    if ours is None or theirs is None:
        verdict = "no validation split, so the scratch baseline cannot be compared"
        record.update(gain=None, verdict_kind="inconclusive", negative_transfer=False)
    else:
        g = bootstrap_gain(ours, theirs, seed=int(info["config"].get("seed", 0)))
        verdict = describe(g)
        record.update(gain=g.gain, ci_low=g.low, ci_high=g.high, n=g.n, verdict_kind=g.verdict,
                      negative_transfer=g.verdict == "negative")
    info = {**info, "baseline": {**record, "verdict": verdict}}
    write_json_atomic(out / INFO, info)
    write_card(out, info)
    from graftzoo.train.plots import write_curves

    write_curves(out, info["epochs"], out.name, base.get("epochs"))  # now with the scratch curves overlaid
    if echo is not None:
        echo(verdict)
    return info
