"""``graft info``: everything known about one model, head or freeze policy."""

from __future__ import annotations

from typing import Any

import click

from graftzoo.cli._output import echo_json
from graftzoo.registry import load_registry


@click.command("info")
@click.argument("model_id", required=False)
@click.option("--head", "head", metavar="NAME", help="Show a head instead: its plugin and its own options.")
@click.option("--policy", "policy", metavar="NAME", help="Show a freeze policy instead: its plugin and options.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model_id: str | None, head: str | None, policy: str | None, as_json: bool) -> None:
    """Show everything the registry knows about MODEL_ID (or a head's or policy's options).

    For a hub reference hf://ORG/REPO[@REVISION], show what the hub says:
    license, size, files (with sha256), the adapter that loads it and the
    entry 'graft add' would write; only small metadata files are downloaded.

    \b
    Examples:
      graft info mobilenetv2_100.tv_in1k
      graft info hf://timm/resnet18.a1_in1k
      graft info --head mlp          options for 'graft tune --head-option KEY=VALUE'
      graft info --policy top-k      options for 'graft tune --policy-option KEY=VALUE'
    """
    if head is not None or policy is not None:
        _show_part("heads" if head is not None else "freeze_policies", head or policy or "", as_json)
        return
    if model_id is None:
        raise click.UsageError("give a MODEL_ID, --head NAME or --policy NAME")
    if model_id.startswith("hf://"):
        from graftzoo.cli.info_hub import hub_info

        hub_info(model_id, as_json)
        return
    entry = load_registry().get(model_id)
    data = entry.to_dict()
    from graftzoo.plugins import get_plugins

    adapters = get_plugins().collect("backbones")
    data["adapter_installed"] = entry.backbone in adapters
    if as_json:
        echo_json(data)
        return
    _echo_fields(data)
    if not data["adapter_installed"]:
        click.echo(f"\nNote: no plugin provides the {entry.backbone!r} backbone adapter; install the plugin "
                   f"for {entry.modality} models (see 'graft plugins').", err=True)


def _show_part(kind: str, name: str, as_json: bool) -> None:
    from graftzoo.plugins import get_plugins
    from graftzoo.train.build import COMMON_OPTIONS, factory_options

    reg = get_plugins().get(kind, name)
    data: dict[str, Any] = {"name": reg.name, "plugin": reg.plugin, "description": reg.meta.get("description", ""),
                            "options": factory_options(reg), "common_options": list(COMMON_OPTIONS[kind])}
    if as_json:
        echo_json(data)
        return
    _echo_fields(data)


def _echo_fields(data: dict[str, Any]) -> None:
    width = max(len(k) for k in data)
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        click.echo(f"{key.ljust(width)}  {value if value not in (None, '') else '-'}")
