"""``graft demo``: an interactive page for a run, in the browser."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default: Gradio's, 7860 or the next free).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: the network).")
@click.option("--share-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the page keeps uploads and cached examples (default: a temporary directory).")
def demo(run_dir: Path, port: int | None, host: str, share_dir: Path | None) -> None:
    """Serve a page for the run in RUN_DIR: upload an image / type a text / record audio, see the top labels.

    Examples come from the run's validation split when its data is still at hand.
    Needs Gradio: pip install 'graftzoo[demo]'. Stop with Ctrl+C. To publish it,
    graft export RUN_DIR --format space writes a ready Hugging Face Space.
    """
    from graftzoo.demo import launch, require_gradio
    from graftzoo.train.run import read_info

    require_gradio()
    read_info(run_dir)  # a clear error for a directory that is not a run, before Gradio starts
    launch(run_dir, host=host, port=port, share_dir=share_dir)
