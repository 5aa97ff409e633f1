"""``graft predict``: labels and probabilities for new inputs, in one process, batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("predict")
@click.argument("run_dir")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Probabilities shown per input.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write every prediction to a .csv (one probability column per class) or .jsonl file.")
@click.option("--texts", "literal_texts", is_flag=True,
              help="Text models: every INPUT is a text, even one that names a file or starts with @.")
@click.option("--text-column", default="text", show_default=True, help="Text column of @FILE.csv / @FILE.jsonl.")
@click.option("--path-column", default="path", show_default=True, help="Path column of FILE.csv / FILE.jsonl.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict(run_dir: str, inputs: tuple[str, ...], top: int, batch_size: int, output: Path | None,
            literal_texts: bool, text_column: str, path_column: str, as_json: bool) -> None:
    """Predict with the run in RUN_DIR (or a run published with 'graft push': hf://ORG/REPO[@REVISION]).

    \b
    INPUTS, for image and audio models: files, directories (their media files,
    recursively) or FILE.csv / FILE.jsonl tables with a path column.
    For text models: the texts themselves, or @FILE to read them (one per line
    of a .txt, or the text column of a .csv / .jsonl). A text model refuses an
    argument that names a file rather than classify its name; --texts forces it.
    @FILE works for every model (a .txt of paths for image/audio models).

    \b
    Examples:
      graft predict runs/cats photos/ --output preds.csv
      graft predict runs/reviews @new_reviews.csv --text-column body --output preds.jsonl
      graft predict runs/reviews "what a great film" "not worth it"
    """
    from graftzoo.cli._output import echo_json, run_location
    from graftzoo.cli.predict_inputs import resolve_inputs, write_predictions
    from graftzoo.registry import modality_meta
    from graftzoo.train.run import load_run

    run = load_run(run_location(run_dir))
    texts = modality_meta(run.entry.modality).get("inputs") == "text"
    samples = resolve_inputs(inputs, run.entry.modality, texts, text_column, path_column, literal_texts)
    if output is not None and output.suffix.lower() not in (".csv", ".jsonl"):
        raise click.BadParameter(f"{output}: use a .csv or .jsonl file name", param_hint="--output")
    if run.task == "token-classification":
        from graftzoo.train.tagging import tag_texts

        results: list[dict[str, Any]] = []
        for tagged in tag_texts(run, samples, batch_size):
            results.append({"input": tagged.pop("text"), **tagged})
    else:
        results = _classify(run, samples, batch_size, top)
    if output is not None:
        write_predictions(output, results, run.classes)
        click.echo(f"wrote {len(results)} predictions to {output}", err=as_json)
    for row in results:
        row.pop("all_probabilities", None)
    if as_json:
        echo_json(results)
    elif output is None:
        _show(results, run.task)


def _classify(run: Any, samples: list[str], batch_size: int, top: int) -> list[dict[str, Any]]:
    from graftzoo.train.inference import classify

    probs = classify(run.model, samples, batch_size, progress=True).softmax(-1)
    results = []
    for sample, row in zip(samples, probs, strict=True):
        values, idx = row.topk(min(top, row.numel()))
        ranked = {run.classes[int(i)]: round(float(v), 6) for v, i in zip(values, idx, strict=True)}
        results.append({"input": sample, "label": run.classes[int(idx[0])], "probabilities": ranked,
                        "all_probabilities": {c: round(float(p), 6) for c, p in zip(run.classes, row, strict=True)}})
    return results


def _show(results: list[dict[str, Any]], task: str) -> None:
    if task == "token-classification":
        from graftzoo.train.tagging import format_tagged

        for row in results:
            click.echo(format_tagged({"text": row["input"], **{k: v for k, v in row.items() if k != "input"}}))
        return
    for row in results:
        shown = "  ".join(f"{k} {v:.3f}" for k, v in row["probabilities"].items())
        click.echo(f"{row['input']}\t{row['label']}\t{shown}")
