"""A registry file for tests: one model whose source is a local directory, every file pinned by sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def pinned_registry(path: Path, model_id: str, modality: str, backbone: str, directory: Path,
                    **input_: Any) -> Path:
    """Write ``path`` (registry.toml) with one ``file://directory/`` entry; point GRAFTZOO_REGISTRY at it."""
    pins = "\n".join(f'"{p.name}" = "{hashlib.sha256(p.read_bytes()).hexdigest()}"'
                     for p in sorted(directory.iterdir()) if p.is_file())
    inputs = "\n".join(f"{k} = {json.dumps(v)}" for k, v in input_.items())
    path.write_text(f"""[[model]]
id = "{model_id}"
modality = "{modality}"
backbone = "{backbone}"
source = "file://{directory}/"
license = "Apache-2.0"
[model.files]
{pins}
[model.input]
{inputs}
""", encoding="utf-8")
    return path
