"""``graft tune --config FILE``: options from a TOML, YAML or JSON file (or a run's graft.json).

The file holds any ``graft tune`` option under its long name (``batch_size``
or ``batch-size``), plus ``model`` and ``data``; ``backbone_options``,
``head_options``, ``policy_options`` and ``data_options`` are tables. Values become click's ``default_map``, so a flag
given on the command line always wins over the file. A run's ``graft.json``
is read through its ``config`` section: replaying it repeats the run (same
seed, same split, same metrics), and ``--data`` runs the same recipe on other
data. Options a run records that have no flag (e.g. ``lora_alpha``) are
carried into the new run's configuration unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

#: A config key that is not the parameter's own name.
_RENAMED = {"format": "data_format"}
#: Tables of KEY=VALUE options: config key -> the repeatable --X-option parameter.
_TABLES = {"backbone_options": "backbone_options", "head_extra": "head_options", "head_options": "head_options",
           "policy_extra": "policy_options", "policy_options": "policy_options"}
#: graft.json fields that are bookkeeping, not options.
_NOT_OPTIONS = {"data_options", *_TABLES}
META_EXTRA = "graftzoo.config_extra"


def read_config(path: Path) -> dict[str, Any]:
    """The options table of ``path`` (.toml, .yaml/.yml, .json; a graft.json gives its ``config``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"{path}: cannot read it ({exc.strerror or exc})", param_hint="--config") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise click.BadParameter(f"{path}: unknown config type {suffix or '(none)'!r}; use .toml, .yaml, .yml "
                                     "or a run's graft.json", param_hint="--config")
    except click.BadParameter:
        raise
    except Exception as exc:  # noqa: BLE001 - each parser has its own error types; all mean "malformed"
        raise click.BadParameter(f"{path}: not valid {suffix[1:].upper()} ({exc})", param_hint="--config") from None
    if isinstance(data, dict) and isinstance(data.get("format"), str) and data["format"].startswith("graftzoo-run/"):
        data = data.get("config")
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a table of options at the top level", param_hint="--config")
    return data


def _option_value(key: str, value: Any, path: Path) -> tuple[str, Any]:
    """The click parameter name and default_map value for one config entry."""
    if key in _TABLES:
        if not isinstance(value, dict):
            raise click.BadParameter(f"{path}: {key} must be a table of KEY = VALUE", param_hint="--config")
        return _TABLES[key], [f"{k}={v}" for k, v in value.items()]
    return _RENAMED.get(key, key), value


def apply_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """Eager ``--config`` callback: the file's options become defaults the command line overrides."""
    if value is None:
        return
    raw = read_config(value)
    params = {p.name for p in ctx.command.params if p.name} - {"config"}
    from graftzoo.train.config import TrainConfig

    fields = set(TrainConfig.__dataclass_fields__)
    defaults: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for raw_key, item in raw.items():
        key = str(raw_key).replace("-", "_")
        if item is None:
            continue
        if key == "data_options" and isinstance(item, dict):
            for sub, sub_value in item.items():  # text_column, label_column, path_column
                if sub in params:
                    defaults[sub] = sub_value
                else:
                    extra.setdefault("data_options", {})[sub] = sub_value
            continue
        name, converted = _option_value(key, item, value)
        if name in params:
            defaults[name] = converted
        elif key in fields and key not in _NOT_OPTIONS:
            extra[key] = item  # recorded by a run, no flag: carried over as it was
        else:
            valid = ", ".join(sorted(p for p in params if p not in ("resume", "as_json")))
            raise click.BadParameter(f"{value}: unknown option {raw_key!r}; valid: {valid}", param_hint="--config")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[META_EXTRA] = extra


def config_extras(ctx: click.Context) -> dict[str, Any]:
    """Options from the config file that have no command-line flag (applied to the TrainConfig as they are)."""
    extra: dict[str, Any] = ctx.meta.get(META_EXTRA, {})
    return extra
