"""``graft predict``: labels and probabilities for new inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("predict")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Probabilities shown per input.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict(run_dir: Path, inputs: tuple[str, ...], top: int, batch_size: int, as_json: bool) -> None:
    """Predict with the run in RUN_DIR. INPUTS are files (images, audio) or, for text models, the texts."""
    from graftzoo.cli._output import echo_json
    from graftzoo.errors import DataError
    from graftzoo.registry import modality_meta
    from graftzoo.train.run import load_run

    run = load_run(run_dir)
    samples: list[Any]
    if modality_meta(run.entry.modality).get("inputs") == "text":
        samples = list(inputs)
    else:
        missing = [i for i in inputs if not Path(i).exists()]
        if missing:
            raise DataError(f"no such file: {', '.join(missing)} ({run.entry.modality} models take file paths)")
        samples = [str(Path(i)) for i in inputs]
    results: list[dict[str, Any]] = []
    if run.task == "token-classification":
        from graftzoo.train.tagging import format_tagged, tag_texts

        for tagged in tag_texts(run, samples, batch_size):
            results.append({"input": tagged.pop("text"), **tagged})
            if not as_json:
                click.echo(format_tagged({"text": results[-1]["input"], **tagged}))
    else:
        probs = run.predict(samples, batch_size)
        for text, row in zip(inputs, probs, strict=True):
            values, idx = row.topk(min(top, row.numel()))
            ranked = {run.classes[int(i)]: round(float(v), 6) for v, i in zip(values, idx, strict=True)}
            results.append({"input": text, "label": run.classes[int(idx[0])], "probabilities": ranked})
            if not as_json:
                shown = "  ".join(f"{k} {v:.3f}" for k, v in ranked.items())
                click.echo(f"{text}\t{results[-1]['label']}\t{shown}")
    if as_json:
        echo_json(results)
