"""``graft export``: a run's model as ONNX, safetensors, or a transformers / timm model directory."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ["onnx", "safetensors", "transformers", "timm", "space"]


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="onnx / safetensors: one file; transformers (text, speech) / timm (vision): a model directory "
                   "that library loads on its own.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output file or directory (default RUN_DIR/export/model.onnx, model.safetensors, transformers/ "
                   "or timm/).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def export(run_dir: Path, fmt: str, out: Path | None, overwrite: bool, as_json: bool) -> None:
    """Export the run in RUN_DIR.

    \b
    onnx          inputs -> class probabilities; batch and sequence/length axes are dynamic;
                  labels, preprocessing and the tokenizer / feature extractor files go beside it
    safetensors   backbone + head weights, labels and preprocessing in the metadata
    transformers  a directory AutoModelFor{Sequence,Token,Audio}Classification.from_pretrained loads
                  (id2label/label2id, tokenizer or feature extractor; LoRA merged). The head must be
                  linear, and a sequence classifier must pool like transformers does (BERT-family:
                  --backbone-option pooling=pooler); otherwise the export says why and stops.
    timm          model.safetensors + config.json (label_names, pretrained_cfg with the run's
                  preprocessing) for timm.create_model("local-dir:DIR", pretrained=True)
    space         a Hugging Face Space (Gradio): app.py, requirements.txt pinning graftzoo and the
                  plugin, README.md with the Spaces metadata, the run's files and examples
    """
    from graftzoo.cli._output import echo_json

    if fmt == "space":
        path = _space(run_dir, out, overwrite)
        if as_json:
            echo_json({"format": fmt, "path": str(path), "files": sorted(p.name for p in path.iterdir())})
        else:
            click.echo(f"wrote {path} (run it with: cd {path} && python app.py)")
        return
    if fmt in ("transformers", "timm"):
        from graftzoo.train.interop import export_interop
        from graftzoo.train.run import load_run

        path, exported = export_interop(load_run(run_dir), fmt, out, overwrite=overwrite)
        if as_json:
            echo_json({"format": fmt, "path": str(path), "library": exported.library,
                       "pipeline_tag": exported.pipeline_tag, "files": sorted(p.name for p in path.iterdir())})
        else:
            click.echo(f"wrote {path} ({', '.join(sorted(p.name for p in path.iterdir()))})")
        return
    from graftzoo.train.export import export_run

    path = export_run(run_dir, fmt, out, overwrite=overwrite)
    if as_json:
        echo_json({"format": fmt, "path": str(path)})
    else:
        click.echo(f"wrote {path}")


def _space(run_dir: Path, out: Path | None, overwrite: bool) -> Path:
    """Write the Space (built beside its destination and renamed into place: nothing half-written)."""
    from graftzoo.demo import require_gradio, write_space
    from graftzoo.errors import TrainingError
    from graftzoo.train.run import read_info

    read_info(run_dir)
    require_gradio()
    dest = out if out is not None else run_dir / "export" / "space"
    if dest.exists() and not overwrite:
        raise TrainingError(f"{dest} already exists; pass --overwrite or --out")
    return write_space(run_dir, dest, replace=True)
