"""Model-card metadata the Hugging Face hub accepts, shared by run cards and export cards.

The hub reads the YAML block at the top of README.md: ``base_model`` must be
a hub repository id, and a model-index ``dataset.type`` a dataset id. A run
trained on a local folder has neither a hub dataset nor (for package-sourced
weights) a hub base model, so those fields say ``local`` or are left out:
a local file path there would be rejected, and leaks a user's directory
layout into a published card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.storage import atomic

if TYPE_CHECKING:
    from graftzoo.train.interop import Exported

def pipeline_tag(info: dict[str, Any]) -> str:
    """The run's ``pipeline_tag``: stored in graft.json when it trained (from its registered modality)."""
    from graftzoo.registry import pipeline_tag as registered

    return str(info.get("pipeline_tag") or registered(info["entry"]["modality"], info["task"]))


def hub_base_model(entry: dict[str, Any]) -> str | None:
    """The hub repository the run's weights came from (``hf://`` sources), else None."""
    from graftzoo.registry import parse_source

    try:
        source = parse_source(str(entry.get("source", "")))
    except ValueError:
        return None
    return source.repo if source.scheme == "hf" and source.repo else None


def dataset_fields(data: dict[str, Any]) -> tuple[str, str]:
    """(name, type) of the model-index dataset: a registered dataset's name, or the folder name and ``local``."""
    spec = str(data.get("spec", ""))
    try:
        from graftzoo.plugins import get_plugins

        named = {n for n, r in get_plugins().collect("datasets").items() if r.meta.get("named")}
    except Exception:  # noqa: BLE001 - a broken plugin must not stop a card being written
        named = set()
    if spec in named:
        return spec, spec
    name = Path(str(data.get("name") or spec or "local")).name or "local"
    return name, "local"


def yaml_list(items: Sequence[str]) -> str:
    """A YAML block list (each item JSON-quoted, which YAML reads as a string)."""
    return "".join(f"\n- {json.dumps(i)}" for i in items)


def front_matter(info: dict[str, Any], library: str, tags: Sequence[str], name: str | None = None) -> list[str]:
    """The YAML metadata lines (between ``---``) of a card for ``info``'s run."""
    entry, final = info["entry"], info.get("final") or {}
    task = pipeline_tag(info)
    meta = ["---", f"library_name: {library}", f"license: {str(entry.get('license', 'other')).lower()}"]
    base = hub_base_model(entry)
    if base:
        meta.append(f"base_model: {json.dumps(base)}")
    meta += [f"pipeline_tag: {task}", "tags:" + yaml_list([*tags, entry.get("modality", "other")])]
    data_name, dtype = dataset_fields(info["data"])
    if dtype != "local":
        meta.append("datasets:" + yaml_list([dtype]))
    if final:
        meta += ["model-index:", f"- name: {json.dumps(name or info['model'])}", "  results:",
                 "  - task:", f"      type: {task}", "    dataset:", f"      name: {json.dumps(data_name)}",
                 f"      type: {json.dumps(dtype)}", "    metrics:", "    - type: accuracy",
                 f"      value: {final['accuracy']:.4f}", "    - type: f1", f"      value: {final['macro_f1']:.4f}"]
    meta.append("---")
    return meta


def write_export_card(out: Path, info: dict[str, Any], exported: Exported) -> None:
    """README.md of an exported directory: hub metadata, where it came from, and how to load it."""
    config = info["config"]
    meta = front_matter(info, exported.library, ["graftzoo", "transfer-learning", f"policy-{config['policy']}"])
    final = info.get("final") or {}
    lines = [f"# {info['model']} fine-tuned with Graftzoo ({exported.library} export)", "",
             f"Fine-tuned from `{info['model']}` with policy `{config['policy']}` and head `{config['head']}` "
             f"on {info['data']['n_train']} samples, {len(info['labels'])} classes"
             + (f"; held-out accuracy {final['accuracy']:.4f}, macro-F1 {final['macro_f1']:.4f} "
                f"(n={final.get('n')})." if final else "."),
             "", "## Use", "", "```python", exported.snippet.strip(), "```", "",
             f"Labels: {', '.join(info['labels'])}", ""]
    atomic.write_text(out / "README.md", "\n".join([*meta, "", *lines]), "the model card")
