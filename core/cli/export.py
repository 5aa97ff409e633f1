"""``graft export``: a run's model as ONNX or standalone safetensors."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx", "safetensors"]), required=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output file (default RUN_DIR/export/model.onnx or model.safetensors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export(run_dir: Path, fmt: str, out: Path | None, overwrite: bool) -> None:
    """Export the run in RUN_DIR: ONNX (inputs -> class probabilities) or safetensors (+ labels in metadata)."""
    from graftzoo.train.export import export_run

    path = export_run(run_dir, fmt, out, overwrite=overwrite)
    click.echo(f"wrote {path}")
