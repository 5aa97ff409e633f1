"""``graft export --format transformers`` for text runs, loaded back by transformers alone.

The loading side is a fresh interpreter that never imports graftzoo (it
asserts so), with the hub offline: AutoModelFor*Classification, AutoTokenizer
and the pipeline read the directory as they would a hub download.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from graftzoo.cli import cli

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent / "data"
TEXTS = ["a good film", "a great movie", "loved it", "the new movie is great", "good", "great film in paris",
         "a bad film", "boring movie", "not good", "the movie is bad", "bad", "boring film in york"]
QUERIES = ["a great film", "boring and bad", "the movie in paris is not good at all"]

TRANSFORMERS_ALONE = r"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer, pipeline
folder, kind, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(1)
tokenizer = AutoTokenizer.from_pretrained(folder)
if kind == "sequence":
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        probs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    top = pipeline("text-classification", model=model, tokenizer=tokenizer)(texts)
    out = {"probs": probs.tolist(), "pipeline": [t["label"] for t in top]}
else:
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    tags = []
    for words in (t.split() for t in texts):
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            ids = model(**enc).logits[0].argmax(-1).tolist()
        first = {}
        for pos, w in enumerate(enc.word_ids()):
            if w is not None:
                first.setdefault(w, pos)
        tags.append([model.config.id2label[ids[first[w]]] for w in range(len(words))])
    out = {"tags": tags}
out["id2label"] = {int(k): v for k, v in model.config.id2label.items()}
out["label2id"] = dict(model.config.label2id)
assert not any(m.split(".")[0].startswith("graftzoo") for m in sys.modules), "graftzoo was imported"
print(json.dumps(out))
"""


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _alone(folder: Path, kind: str, texts: list[str]) -> dict[str, object]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", TRANSFORMERS_ALONE, str(folder), kind, json.dumps(texts)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    data = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f"{t},{'pos' if i < 6 else 'neg'}" for i, t in enumerate(TEXTS)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def test_lora_sequence_run_exports_merged_and_predicts_the_same(tiny_registry: Path, reviews: Path,
                                                                tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("tune", "tiny-bert.test", str(reviews), "--policy", "lora", "--epochs", "3", "--lr", "0.01",
            "--batch-size", "4", "--backbone-option", "pooling=pooler", "--out", str(run))
    folder = Path(json.loads(_invoke("export", str(run), "--format", "transformers", "--json"))["path"])
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    card = (folder / "README.md").read_text()
    assert "library_name: transformers" in card and "pipeline(" in card and str(reviews) not in card
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    theirs = _alone(folder, "sequence", QUERIES)
    ours = json.loads(_invoke("predict", str(run), *QUERIES, "--json"))
    classes = json.loads((run / "graft.json").read_text())["labels"]
    assert theirs["id2label"] == {str(i): c for i, c in enumerate(classes)}  # JSON keys
    assert theirs["label2id"] == {c: i for i, c in enumerate(classes)}
    assert theirs["pipeline"] == [r["label"] for r in ours]
    for row, probs in zip(ours, theirs["probs"], strict=True):  # type: ignore[call-overload]
        assert row["probabilities"] == pytest.approx(dict(zip(classes, probs, strict=True)), abs=1e-4)
    # LoRA was merged: no adapter tensors in the export, and the base weights moved from the pretrained ones
    from safetensors.torch import load_file

    exported = load_file(str(folder / "model.safetensors"))
    assert not any("lora" in k for k in exported)
    original = load_file(str(tiny_registry / "model.safetensors"))
    query = next(k for k in original if k.endswith("attention.self.query.weight"))
    assert not torch.equal(exported["bert." + query.removeprefix("bert.")], original[query])


def test_mean_pooled_run_is_refused_with_the_way_out(tiny_registry: Path, reviews: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("tune", "tiny-bert.test", str(reviews), "--epochs", "1", "--batch-size", "4", "--out", str(run))
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "transformers"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "pooling=pooler" in result.output and "--format onnx" in result.output
    assert not (run / "export" / "transformers").exists()


def test_ner_run_exports_a_token_classifier_with_the_same_tags(tiny_registry: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("tune", "tiny-bert.test", str(HERE / "tiny_ner.conll"), "--policy", "full", "--epochs", "3",
            "--lr", "0.005", "--batch-size", "2", "--val-split", "0.34", "--out", str(run))
    folder = Path(json.loads(_invoke("export", str(run), "--format", "transformers", "--json"))["path"])
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]
    texts = ["Anna lives in Paris .", "New York is a great city", "the film"]
    theirs = _alone(folder, "token", texts)
    ours = json.loads(_invoke("predict", str(run), *texts, "--json"))
    assert theirs["tags"] == [r["tags"] for r in ours]


def test_onnx_text_export_takes_any_length_and_ships_its_tokenizer(tiny_registry: Path, reviews: Path,
                                                                   tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime
    from transformers import AutoTokenizer

    run = tmp_path / "run"
    _invoke("tune", "tiny-bert.test", str(reviews), "--epochs", "2", "--batch-size", "4", "--out", str(run))
    _invoke("export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx" / "model.onnx"))
    beside = {p.name for p in (tmp_path / "onnx").iterdir()}
    assert {"model.onnx", "labels.json", "preprocessing.json", "vocab.txt", "tokenizer_config.json"} <= beside
    labels = json.loads((tmp_path / "onnx" / "labels.json").read_text())
    max_length = json.loads((tmp_path / "onnx" / "preprocessing.json").read_text())["max_length"]
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "onnx"))  # what was shipped, not the run
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    # three lengths, the longest far past the traced example; and a padded batch of two lengths
    for texts in (["good"], ["the new movie in paris is great"], [" ".join(TEXTS)], ["bad", "a good film in york"]):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        feeds = {n: enc[n].astype(np.int64) for n in names}  # what the tokenizer gives: nothing else
        probs = session.run(None, feeds)[0]
        ours = json.loads(_invoke("predict", str(run), *texts, "--json"))
        assert [labels[i] for i in probs.argmax(-1)] == [r["label"] for r in ours]
        for row, p in zip(ours, probs, strict=True):
            assert row["probabilities"] == pytest.approx(dict(zip(labels, p.tolist(), strict=True)), abs=1e-4)


def test_predict_reads_texts_from_files_only_when_told(tiny_registry: Path, reviews: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke("tune", "tiny-bert.test", str(reviews), "--epochs", "1", "--batch-size", "4", "--out", str(run))
    direct = json.loads(_invoke("predict", str(run), *QUERIES, "--json"))
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(QUERIES) + "\n", encoding="utf-8")
    table = tmp_path / "new.jsonl"
    table.write_text("".join(json.dumps({"body": q, "id": i}) + "\n" for i, q in enumerate(QUERIES)), encoding="utf-8")
    from_lines = json.loads(_invoke("predict", str(run), f"@{lines}", "--json"))
    from_table = json.loads(_invoke("predict", str(run), f"@{table}", "--text-column", "body", "--json"))
    assert from_lines == from_table == direct
    # a file name is never classified by mistake...
    result = CliRunner().invoke(cli, ["predict", str(run), str(lines)])
    assert result.exit_code == 1 and f"pass @{lines}" in result.output and "--texts" in result.output
    # ...unless asked for
    literal = json.loads(_invoke("predict", str(run), str(lines), f"@{lines}", "--texts", "--json"))
    assert [r["input"] for r in literal] == [str(lines), f"@{lines}"]
    result = CliRunner().invoke(cli, ["predict", str(run), f"@{table}"])
    assert result.exit_code == 1 and "no column 'text'" in result.output and "body" in result.output
    out = tmp_path / "preds.csv"
    _invoke("predict", str(run), f"@{lines}", "--output", str(out))
    assert out.read_text().splitlines()[0] == "input,label,score,p_neg,p_pos"


def test_space_export_serves_a_page_that_agrees_with_predict(tiny_registry: Path, reviews: Path,
                                                             tmp_path: Path) -> None:
    from graftzoo.testing import browser

    if browser.chromium_path() is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    run = tmp_path / "run"
    _invoke("tune", "tiny-bert.test", str(reviews), "--epochs", "3", "--lr", "0.01", "--batch-size", "4",
            "--out", str(run))
    space = Path(json.loads(_invoke("export", str(run), "--format", "space", "--out", str(tmp_path / "space"),
                                    "--json"))["path"])
    assert {"app.py", "requirements.txt", "README.md", "examples.json", "run"} <= {p.name for p in space.iterdir()}
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert requirements[0].startswith("graftzoo[train,demo]==") and requirements[1].startswith("graftzoo-nlp==")
    assert "sdk: gradio" in (space / "README.md").read_text()
    assert json.loads((space / "examples.json").read_text())  # validation texts
    shutil.rmtree(run)  # the Space is self-contained
    sentence = "the new movie in paris is great"
    port = browser.free_port()
    env_port = {"GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    command = ["env", *[f"{k}={v}" for k, v in env_port.items()], sys.executable, "app.py"]
    with browser.served(command, port, cwd=space) as url, browser.page(url) as tab:
        tab.get_by_label("text").fill(sentence)
        tab.get_by_role("button", name="Submit").click()
        shown = browser.shown_label(tab)
        tab.screenshot(path=str(tmp_path / "space.png"), full_page=True)
    expected = json.loads(_invoke("predict", str(space / "run"), sentence, "--json"))[0]["label"]
    assert shown == expected
