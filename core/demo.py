"""An interactive page for a run (Gradio): ``graft demo RUN`` and the Space that ``graft export --format space`` writes.

The page takes what the run's modality takes (an image upload, a text box,
an audio upload or the microphone), shows the top labels with their
probabilities (for NER runs: the text with its entities highlighted), and
offers a few validation samples as examples. Predictions go through the same
``load_run`` + ``Run.predict`` as ``graft predict``, so the page and the
command line always agree.

Gradio is an optional dependency: ``pip install 'graftzoo[demo]'``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from graftzoo.errors import GraftError, TrainingError

#: Examples shown under the page (validation samples of the run's data, when that data is at hand).
N_EXAMPLES = 4


def require_gradio() -> None:
    """A ``TrainingError`` naming the extra when Gradio is not installed."""
    if importlib.util.find_spec("gradio") is None:
        raise TrainingError("the demo page needs Gradio: pip install 'graftzoo[demo]'")


def validation_examples(run: Any, n: int = N_EXAMPLES) -> list[str]:
    """Up to ``n`` validation samples (file paths or texts), one per class first; [] if the data is gone."""
    from graftzoo.train.plan import evaluation_data

    try:
        data = evaluation_data(run, run.config.data, split="val", scored=False)  # inputs to try, not a score
    except GraftError:
        return []
    if data.task != "classification":
        return []
    texts = _takes_text(run.entry.modality)
    usable = [i for i, s in enumerate(data.samples) if isinstance(s, str) and (texts or Path(s).is_file())]
    first: dict[str, int] = {}
    for i in usable:
        first.setdefault(str(data.labels[i]), i)
    order = list(first.values()) + [i for i in usable if i not in first.values()]  # one per class first
    return [data.samples[i] for i in order[:n]]


def _takes_text(modality: str) -> bool:
    from graftzoo.registry import modality_meta

    return modality_meta(modality).get("inputs") == "text"


def _input_component(gr: Any, modality: str) -> Any:
    if _takes_text(modality):
        return gr.Textbox(label="text", lines=3, placeholder="Type a sentence")
    if modality == "vision":
        return gr.Image(type="filepath", label="image")
    if modality == "audio":
        return gr.Audio(type="filepath", sources=["upload", "microphone"], label="audio")
    return gr.File(type="filepath", label=f"{modality} file")  # a plugin's modality: its files as they are


def build_demo(run_dir: str | Path, examples: list[str] | None = None, top: int = 5) -> Any:
    """The Gradio Blocks page for the run in ``run_dir`` (not launched)."""
    require_gradio()
    import gradio as gr

    from graftzoo.train.run import load_run

    run = load_run(run_dir)
    token = run.task == "token-classification"

    def predict(value: Any) -> Any:
        if value is None or value == "":
            return None
        if token:
            from graftzoo.train.tagging import tag_texts

            tagged = tag_texts(run, [str(value)])[0]
            return {"text": str(value), "entities": [{"entity": e["type"], "start": e["start"], "end": e["end"]}
                                                     for e in tagged["entities"]]}
        probs = run.predict([value])[0]
        return {c: float(p) for c, p in zip(run.classes, probs, strict=True)}

    chosen = validation_examples(run) if examples is None else examples
    title = f"{run.path.name}: {run.entry.id}"
    with gr.Blocks(title=title) as page:
        gr.Markdown(f"# {title}\n{len(run.classes)} classes: {', '.join(run.classes[:20])}"
                    + (" ..." if len(run.classes) > 20 else ""))
        with gr.Row():
            source = _input_component(gr, run.entry.modality)
            shown = gr.HighlightedText(label="entities") if token else gr.Label(num_top_classes=top, label="prediction")
        button = gr.Button("Submit", variant="primary")
        button.click(predict, inputs=source, outputs=shown, api_name="predict")
        if _takes_text(run.entry.modality):
            source.submit(predict, inputs=source, outputs=shown)
        if chosen:
            gr.Examples(examples=[[e] for e in chosen], inputs=source)
    return page


def launch(run_dir: str | Path, host: str = "127.0.0.1", port: int | None = None,
           share_dir: Path | None = None, examples: list[str] | None = None) -> None:
    """Serve the page until interrupted (Gradio's analytics off; uploads under ``share_dir`` if given)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if share_dir is not None:
        share_dir.mkdir(parents=True, exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = str(share_dir.resolve())
    import gradio as gr

    page = build_demo(run_dir, examples)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: offline
    allowed = {str(Path(run_dir).resolve())} | {str(Path(e).resolve().parent) for e in examples or []
                                                 if Path(e).is_file()}
    page.launch(server_name=host, server_port=port, share=False, inbrowser=False, theme=theme,
                allowed_paths=sorted(allowed))


APP = '''"""A Hugging Face Space for a Graftzoo run (written by 'graft export --format space')."""

import json
import os
from pathlib import Path

from graftzoo.demo import launch

HERE = Path(__file__).parent
examples = [str(HERE / e) if {files} else e for e in json.loads((HERE / "examples.json").read_text())]
launch(HERE / "run", host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
       port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), examples=examples)
'''

#: What a run directory needs to predict (graft.json, weights, tokenizer / feature-extractor copies).
RUN_FILES = ("graft.json", "model.safetensors", "README.md", "extra")


def plugin_distribution(run: Any) -> str | None:
    """The installed distribution that provides the run's backbone adapter (a plugin distribution)."""
    import importlib.metadata

    from graftzoo.plugins import get_plugins

    try:
        target = get_plugins().get("backbones", run.entry.backbone).target
    except GraftError:
        return None
    module = target.split(":", 1)[0] if isinstance(target, str) else str(getattr(target, "__module__", ""))
    top = module.split(".", 1)[0]
    if top == "graftzoo":
        return None
    dists = importlib.metadata.packages_distributions().get(top) or []
    return dists[0] if dists else None


def write_space(run_dir: str | Path, out: Path, replace: bool = False) -> Path:
    """A ready Hugging Face Space in ``out``: app.py, requirements.txt, README.md (Spaces metadata), the run.

    Built in a temporary directory and renamed into place (an existing ``out`` is swapped out only with
    ``replace``): ``out`` never exists half-written.
    """
    from graftzoo.storage import atomic
    from graftzoo.train.run import load_run

    run = load_run(run_dir)
    with atomic.atomic_dir(out, f"the Space {out}", replace=replace) as tmp:
        _fill_space(run, tmp)
    return out


def _fill_space(run: Any, out: Path) -> None:
    import importlib.metadata
    import json
    import shutil

    (out / "run").mkdir()
    for name in RUN_FILES:
        src = run.path / name
        if src.is_dir():
            shutil.copytree(src, out / "run" / name)
        elif src.is_file():
            shutil.copy2(src, out / "run" / name)
    files = not _takes_text(run.entry.modality)
    examples = validation_examples(run)
    if files:
        (out / "examples").mkdir()
        for i, path in enumerate(list(examples)):
            dest = out / "examples" / f"{i}{Path(path).suffix}"
            shutil.copy2(path, dest)
            examples[i] = str(dest.relative_to(out))
    (out / "examples.json").write_text(json.dumps(examples, indent=1) + "\n", encoding="utf-8")
    (out / "app.py").write_text(APP.replace("{files}", str(files)), encoding="utf-8")
    version = importlib.metadata.version("graftzoo")
    plugin = plugin_distribution(run)
    reqs = [f"graftzoo[train,demo]=={version}"]
    if plugin:
        reqs.append(f"{plugin}=={importlib.metadata.version(plugin)}")
    (out / "requirements.txt").write_text("\n".join(reqs) + "\n", encoding="utf-8")
    gradio_version = importlib.metadata.version("gradio") if importlib.util.find_spec("gradio") else "6.31.0"
    (out / "README.md").write_text(
        f"---\ntitle: {json.dumps(run.path.name)}\nsdk: gradio\nsdk_version: {gradio_version}\n"
        f"app_file: app.py\npinned: false\nlicense: {run.entry.license.lower()}\n---\n\n"
        f"# {run.path.name}\n\n{run.entry.id} fine-tuned with Graftzoo; the model card is run/README.md.\n",
        encoding="utf-8")
