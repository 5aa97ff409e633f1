"""``graft info``: everything known about one model."""

from __future__ import annotations

import click

from graftzoo.cli._output import echo_json
from graftzoo.registry import load_registry


@click.command("info")
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model_id: str, as_json: bool) -> None:
    """Show everything the registry knows about MODEL_ID."""
    entry = load_registry().get(model_id)
    data = entry.to_dict()
    from graftzoo.plugins import get_plugins

    adapters = get_plugins().collect("backbones")
    data["adapter_installed"] = entry.backbone in adapters
    if as_json:
        echo_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        click.echo(f"{key.ljust(width)}  {value if value not in (None, '') else '-'}")
    if not data["adapter_installed"]:
        click.echo(f"\nNote: no plugin provides the {entry.backbone!r} backbone adapter; install the plugin "
                   f"for {entry.modality} models (see 'graft plugins').", err=True)
