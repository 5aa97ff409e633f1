"""``graft export --format timm``: a directory timm loads on its own, predicting what ``graft predict`` does.

The loading side runs in a fresh interpreter that never imports graftzoo (it
asserts so): only timm, torch and PIL, as a timm user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graftzoo.cli import cli
from graftzoo.data import LabelledData
from graftzoo_vision.data import digits_arrays, write_imagefolder

pytestmark = pytest.mark.slow

TIMM_ALONE = r"""
import json, sys
import timm, torch
from PIL import Image
folder, mode, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(1)
if mode == "local-dir":
    model = timm.create_model("local-dir:" + folder, pretrained=True)
else:
    cfg = json.load(open(folder + "/config.json"))
    model = timm.create_model(cfg["architecture"], pretrained=True, num_classes=cfg["num_classes"],
                              pretrained_cfg_overlay=dict(cfg["pretrained_cfg"], file=folder + "/model.safetensors"))
model.eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
labels = json.load(open(folder + "/config.json"))["label_names"]
with torch.no_grad():
    batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    probs = model(batch).softmax(-1)
assert not any(m.split(".")[0].startswith("graftzoo") for m in sys.modules), "graftzoo was imported"
print(json.dumps({"labels": [labels[int(i)] for i in probs.argmax(-1)], "probs": probs.tolist()}))
"""


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _timm_alone(folder: Path, mode: str, files: list[str]) -> dict[str, list[object]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", TIMM_ALONE, str(folder), mode, json.dumps(files)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, list[object]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def digits3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, targets = digits_arrays()
    picks = [i for d in range(3) for i in np.flatnonzero(targets == d)[:12]]
    data = LabelledData([images[i] for i in picks], [str(targets[i]) for i in picks], name="digits3")
    return write_imagefolder(data, tmp_path_factory.mktemp("data") / "digits3")


@pytest.fixture(scope="module")
def run(digits3: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen MobileNetV2 run on three digits (tuned once for the module)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAFTZOO_HOME", str(tmp_path_factory.mktemp("home")))
        _invoke("tune", "mobilenetv2_100.tv_in1k", str(digits3), "--policy", "frozen", "--image-size", "32",
                "--epochs", "3", "--lr", "0.01", "--out", str(out))
    return out


def test_timm_export_loads_in_timm_alone_with_the_same_predictions(digits3: Path, run: Path) -> None:
    out = _invoke("export", str(run), "--format", "timm", "--json", "--overwrite")
    folder = Path(json.loads(out)["path"])
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "mobilenetv2_100" and config["num_classes"] == 3
    assert config["label_names"] == ["0", "1", "2"]
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]  # the run's preprocessing, not ImageNet's 224
    assert config["pretrained_cfg"]["license"] == "bsd-3-clause"
    card = (folder / "README.md").read_text()
    assert "library_name: timm" in card and "local-dir:" in card and str(digits3) not in card

    files = sorted(str(p) for p in digits3.rglob("*.png"))
    ours = json.loads(_invoke("predict", str(run), *files, "--json", "--top", "3"))
    for mode in ("local-dir", "overlay"):
        theirs = _timm_alone(folder, mode, files)
        assert theirs["labels"] == [r["label"] for r in ours], (ours, theirs)
        for row, probs in zip(ours, theirs["probs"], strict=True):
            for name, p in row["probabilities"].items():
                assert abs(probs[config["label_names"].index(name)] - p) < 1e-4
    # the exported model is the tuned one: it tells the digits apart
    truth = [Path(f).parent.name for f in files]
    assert np.mean([a == b for a, b in zip(theirs["labels"], truth, strict=True)]) > 0.6


def test_an_mlp_head_is_refused_with_what_to_do(digits3: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("tune", "mobilenetv2_100.tv_in1k", str(digits3), "--head", "mlp", "--hidden", "8", "--image-size",
            "32", "--epochs", "1", "--out", str(run))
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "timm"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "'mlp'" in result.output and "--format onnx" in result.output
    assert not (run / "export" / "timm").exists() and not (run / "export" / ".timm.tmp").exists()


def test_predict_reads_folders_tables_and_lists_and_writes_files(digits3: Path, run: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in digits3.rglob("*.png"))
    one_by_one = json.loads(_invoke("predict", str(run), *files, "--json"))
    from_dir = json.loads(_invoke("predict", str(run), str(digits3), "--json", "--batch-size", "5"))
    assert [r["input"] for r in from_dir] == files  # recursively, sorted
    assert [r["label"] for r in from_dir] == [r["label"] for r in one_by_one]  # batching changes nothing
    for a, b in zip(from_dir, one_by_one, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    table = tmp_path / "list.csv"
    table.write_text("path,note\n" + "".join(f"{Path(f).relative_to(digits3)},x\n" for f in files[:4]),
                     encoding="utf-8")
    (digits3 / "list.csv").write_text(table.read_text(), encoding="utf-8")  # paths relative to the table
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(files[4:6]) + "\n", encoding="utf-8")
    mixed = json.loads(_invoke("predict", str(run), str(digits3 / "list.csv"), f"@{listed}", "--json"))
    assert [r["label"] for r in mixed] == [r["label"] for r in one_by_one[:6]]
    out_csv, out_jsonl = tmp_path / "p.csv", tmp_path / "p.jsonl"
    shown = _invoke("predict", str(run), str(digits3), "--output", str(out_csv))
    assert f"wrote {len(files)} predictions to {out_csv}" in shown
    import csv

    rows = list(csv.DictReader(out_csv.read_text().splitlines()))
    assert [r["label"] for r in rows] == [r["label"] for r in one_by_one]
    assert list(rows[0]) == ["input", "label", "score", "p_0", "p_1", "p_2"]
    assert all(abs(sum(float(r[f"p_{c}"]) for c in "012") - 1) < 1e-4 for r in rows)
    _invoke("predict", str(run), str(digits3), "--output", str(out_jsonl))
    assert [json.loads(line)["label"] for line in out_jsonl.read_text().splitlines()] == [r["label"] for r in rows]
    result = CliRunner().invoke(cli, ["predict", str(run), str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_evaluate_keeps_every_prediction_and_the_worst(digits3: Path, run: Path) -> None:
    report = json.loads(_invoke("evaluate", str(run), str(digits3), "--worst", "4", "--no-shift", "--json"))
    assert len(report["predictions"]) == report["n"] == 36 and len(report["worst"]) == 4
    losses = sorted((r["loss"] for r in report["predictions"]), reverse=True)
    assert [r["loss"] for r in report["worst"]] == losses[:4]
    assert sum(r["correct"] for r in report["predictions"]) / 36 == pytest.approx(report["accuracy"])
    import csv

    saved = list(csv.DictReader(Path(report["worst_file"]).read_text().splitlines()))
    assert [r["input"] for r in saved] == [r["input"] for r in report["worst"]]
    assert Path(report["predictions_file"]).parent.parent == run / "evaluations"


def test_demo_page_in_headless_chromium_shows_what_predict_says(digits3: Path, run: Path, tmp_path: Path) -> None:
    from graftzoo.testing import browser

    if browser.chromium_path() is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    image = sorted(str(p) for p in (digits3 / "2").glob("*.png"))[0]
    expected = json.loads(_invoke("predict", str(run), image, "--json"))[0]["label"]
    port = browser.free_port()
    command = [sys.executable, "-m", "graftzoo", "demo", str(run), "--port", str(port), "--share-dir",
               str(tmp_path / "uploads")]
    with browser.served(command, port, cwd=tmp_path) as url, browser.page(url) as tab:
        assert "mobilenetv2_100.tv_in1k" in tab.inner_text("body")
        assert tab.locator(".gallery img, button img").count() >= 3  # validation examples, one per class first
        tab.locator("input[type=file]").first.set_input_files(image)
        tab.get_by_role("button", name="Submit").click()
        shown = browser.shown_label(tab)
        tab.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert shown == expected
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert any((tmp_path / "uploads").rglob("*.png"))  # the upload went to --share-dir
