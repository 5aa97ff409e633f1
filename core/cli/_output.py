"""Output helpers shared by the commands: JSON, and plain tables (``graftzoo.tables``)."""

from __future__ import annotations

import json
from typing import Any

import click

from graftzoo.tables import format_table

__all__ = ["echo_json", "format_table"]


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, default=str))
