"""Interop exports in core: refusal where a backbone has no counterpart, and hub-valid card metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from graftzoo.cli import cli


def _front_matter(card: Path) -> dict[str, object]:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta: dict[str, object] = yaml.safe_load(text.split("---\n")[1])
    return meta


def test_a_backbone_without_a_counterpart_is_refused(config: object, tmp_path: Path) -> None:
    from graftzoo.train.engine import train

    train(config(epochs=1), tmp_path / "run", progress=False)  # type: ignore[operator]
    for fmt in ("transformers", "timm"):
        result = CliRunner().invoke(cli, ["export", str(tmp_path / "run"), "--format", fmt])
        assert result.exit_code == 1, result.output
        assert f"has no {fmt} equivalent" in result.output and "--format onnx" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "export").exists()


def test_run_card_metadata_is_valid_for_the_hub(config: object, tmp_path: Path) -> None:
    from graftzoo.train.engine import train

    info = train(config(epochs=1), tmp_path / "named", progress=False)  # type: ignore[operator]
    meta = _front_matter(tmp_path / "named" / "README.md")
    assert meta["datasets"] == ["tinydigits"]  # a registered dataset: its name is the id
    assert "base_model" not in meta  # package-sourced weights have no hub repository
    assert meta["pipeline_tag"] == "image-classification" and meta["library_name"] == "graftzoo"
    results = meta["model-index"][0]["results"][0]  # type: ignore[index]
    assert results["metrics"][0]["value"] == pytest.approx(info["final"]["accuracy"], abs=1e-4)


def test_local_data_and_hub_base_model(tmp_path: Path) -> None:
    from graftzoo.train.card import dataset_fields, front_matter, hub_base_model

    local = tmp_path / "secret" / "photos"
    assert dataset_fields({"spec": str(local), "name": "photos"}) == ("photos", "local")
    assert hub_base_model({"source": "hf://timm/vit_small.augreg_in1k@abc123/model.safetensors"}) == \
        "timm/vit_small.augreg_in1k"
    assert hub_base_model({"source": "pkg://x==1/y.pth"}) is None
    info = {"model": "m.x", "task": "classification", "config": {"policy": "frozen"},
            "entry": {"modality": "text", "license": "MIT", "source": "hf://org/repo@0123abc"},
            "data": {"spec": str(local), "name": "photos"}, "final": {"accuracy": 0.5, "macro_f1": 0.4}}
    lines = front_matter(info, "transformers", ["graftzoo"], "run-1")
    meta = yaml.safe_load("\n".join(lines[1:-1]))
    assert meta["base_model"] == "org/repo" and "datasets" not in meta
    dataset = meta["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": "photos", "type": "local"}
    assert str(tmp_path) not in "\n".join(lines)
