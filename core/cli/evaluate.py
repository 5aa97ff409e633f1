"""``graft evaluate``: metrics of a run on labelled data."""

from __future__ import annotations

import click


@click.command("evaluate")
@click.argument("run_dir")
@click.argument("data")
@click.option("--split", type=click.Choice(["all", "val"]), default="all", show_default=True,
              help="val: only the run's held-out split (DATA must be the data the run trained on).")
@click.option("--format", "data_format", default=None, help="Data format, when it cannot be detected.")
@click.option("--skip-bad", is_flag=True, help="Skip bad rows/files instead of stopping.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--shift/--no-shift", default=True, show_default=True,
              help="Score the domain shift between the run's training data and DATA (one more feature pass).")
@click.option("--worst", "n_worst", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the highest-loss samples to show and keep in worst.csv.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (confusion matrix, every prediction, the worst).")
def evaluate(run_dir: str, data: str, split: str, data_format: str | None, skip_bad: bool, batch_size: int,
             shift: bool, n_worst: int, as_json: bool) -> None:
    """Evaluate the run in RUN_DIR on DATA: accuracy, loss, n, macro-F1 (entity F1 for token tasks).

    RUN_DIR may be a run published with 'graft push': hf://ORG/REPO[@REVISION].

    For classification it also reports per-class metrics, calibration (expected
    calibration error) and how far DATA is from the training data in the
    backbone's feature space, with a warning in plain words when it is far.
    Every sample's prediction goes to RUN_DIR/evaluations/<data>-<split>/
    predictions.csv and the highest-loss ones to worst.csv there (for a
    pushed run, under $GRAFTZOO_HOME/hub-runs/ORG--REPO/COMMIT/ instead).
    """
    from graftzoo.cli._output import echo_json, output_location, run_location
    from graftzoo.train.build import check_contract
    from graftzoo.train.plan import evaluation_data
    from graftzoo.train.run import load_run

    run = load_run(run_location(run_dir))
    dataset = evaluation_data(run, data, split, data_format, skip_bad)
    check_contract(run.model, dataset.samples[:2], run.entry, len(run.classes), run.config.adapter_options())
    if run.task == "classification":
        from graftzoo.diagnostics.run_evaluation import evaluate_with_report

        metrics = evaluate_with_report(run, dataset, batch_size=batch_size, shift=shift)
    else:
        metrics = run.evaluate(dataset.samples, dataset.labels, batch_size=batch_size, progress=True)
    rows = metrics.pop("per_sample", None)
    if rows is not None:
        from graftzoo.diagnostics.samples import save_evaluation

        metrics.update(save_evaluation(output_location(run_dir, run.path), data, split, rows, n_worst))
        if as_json:
            metrics["predictions"] = rows
    metrics = {"run": str(run_dir), "data": data, "split": split, **metrics}
    from graftzoo.train.parallel import is_main_process

    if not is_main_process():  # under accelerate launch: every process has the gathered metrics; one prints
        return
    if as_json:
        echo_json(metrics)
        return
    keys = ["accuracy", "loss", "macro_f1", "entity_f1", "entity_precision", "entity_recall"]
    for key in keys:
        if key in metrics:
            click.echo(f"{key:<17} {metrics[key]:.4f}")
    click.echo(f"{'n':<17} {metrics['n']}")
    if "report" in metrics:
        from graftzoo.diagnostics.evaluation_report import format_evaluation_report

        click.echo()
        click.echo(format_evaluation_report(metrics["report"]))
    if metrics.get("worst"):
        click.echo(f"\nworst {len(metrics['worst'])} (highest loss; all predictions: {metrics['predictions_file']}):")
        for row in metrics["worst"]:
            click.echo(f"  loss {row['loss']:.3f}  {row['label']} -> {row['predicted']} ({row['confidence']:.3f})  "
                       f"{row['input']}")
