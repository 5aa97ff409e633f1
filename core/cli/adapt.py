"""``graft adapt``: unsupervised adaptation of a run to a new domain (AdaBN or TENT)."""

from __future__ import annotations

from pathlib import Path

import click

from graftzoo.cli._output import echo_json


@click.command("adapt")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.argument("target_data")
@click.option("--method", type=click.Choice(["adabn", "tent"]), required=True,
              help="adabn: re-estimate BatchNorm statistics on the target; tent: also minimise prediction "
                   "entropy by updating normalisation scale/shift only.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New run directory (default: RUN-METHOD).")
@click.option("--format", "data_format", default=None, help="Format of TARGET_DATA when it cannot be detected.")
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="TENT: passes over the target data.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="TENT: learning rate (Adam).")
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Use at most N target samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the adaptation record as JSON.")
def adapt(run: Path, target_data: str, method: str, out: Path | None, data_format: str | None, steps: int,
          lr: float, batch_size: int, limit: int | None, seed: int, as_json: bool) -> None:
    """Adapt RUN to unlabelled TARGET_DATA and write the result as a new run directory.

    Labels in TARGET_DATA, if any, are not used for adaptation; when they are
    present the accuracy before and after is printed for information.

    \b
    Example:
      graft adapt runs/digits-mnv2 digits-inverted --method adabn --out runs/inverted
    """
    from graftzoo.data import load_data
    from graftzoo.diagnostics.adapt_run import adapt_run
    from graftzoo.train.plan import check_modality
    from graftzoo.train.run import read_info

    info = read_info(run)
    modality = info["entry"]["modality"]
    target = load_data(target_data, modality=modality, format=data_format)
    check_modality(target, modality, info["model"], target_data)
    if limit is not None and len(target) > limit:
        import random

        target = target.subset(sorted(random.Random(seed).sample(range(len(target)), limit)))
    record = adapt_run(run, target, method, out=out, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                       target_spec=target_data)
    if as_json:
        echo_json(record)
        return
    click.echo(f"{method}: adapted {run} on {record['target_samples']} samples of {target_data} "
               f"in {record['seconds']:.1f} s")
    click.echo(f"mean prediction entropy {record['entropy_before']:.4f} -> {record['entropy_after']:.4f}")
    if "target_accuracy_before" in record:
        click.echo(f"target accuracy {record['target_accuracy_before']:.4f} -> {record['target_accuracy_after']:.4f} "
                   "(labels used for this report only)")
    click.echo(f"wrote {record['run']}")
