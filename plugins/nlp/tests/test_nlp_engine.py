"""The adapter inside Graftzoo's engine: tune, save, and predict again in a fresh offline process.

A tiny BERT with real (random) weights is published through a file:// registry
entry pinned by sha256, so the whole path runs: registry -> sources.fetch ->
hf-encoder -> engine -> run directory -> load_run in a new process with
HF_HUB_OFFLINE=1 and the original model directory gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

HERE = Path(__file__).parent / "data"
TEXTS = ["a good film", "a great movie", "loved it", "the new movie is great", "good", "great film in paris",
         "a bad film", "boring movie", "not good", "the movie is bad", "bad", "boring film in york"]


def _predict_in_fresh_process(run: Path, samples: list[Any], token: bool) -> Any:
    code = (
        "import json, sys\n"
        "from graftzoo.train.run import load_run\n"
        "run = load_run(sys.argv[1])\n"
        "samples = json.loads(sys.argv[2])\n"
        "if run.task == 'token-classification':\n"
        "    from graftzoo.train.tagging import tag_texts\n"
        "    print(json.dumps([r['entities'] for r in tag_texts(run, samples)] + [run.predict_labels(\n"
        "        [r.split() for r in samples])]))\n"
        "else:\n"
        "    print(json.dumps(run.predict(samples).tolist()))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(run), json.dumps(samples)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_classification_run_predicts_the_same_offline(tiny_registry: Path, tmp_path: Path) -> None:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run

    data = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f"{t},{'pos' if i < 6 else 'neg'}" for i, t in enumerate(TEXTS)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = TrainConfig(model="tiny-bert.test", data=str(data), policy="full", epochs=2, lr=1e-3, batch_size=4,
                         backbone_options={"max_length": 16})
    info = train(config, tmp_path / "run", data=None, progress=False)
    assert info["preprocessing"]["max_length"] == 16
    assert sorted(info["extra_files"]) == ["config.json", "tokenizer_config.json", "vocab.txt"]
    shutil.rmtree(tiny_registry)  # the run alone must be enough from here on
    queries = ["a great film", "boring and bad", "the movie in paris"]
    run = load_run(tmp_path / "run")
    here = run.predict(queries)
    there = torch.tensor(_predict_in_fresh_process(tmp_path / "run", queries, token=False))
    assert here.shape == (3, 2)
    torch.testing.assert_close(there, here, atol=1e-5, rtol=1e-4)
    # The command line, as a user runs it: label + probabilities as JSON, offline.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = subprocess.run([sys.executable, "-m", "graftzoo", "predict", str(tmp_path / "run"), *queries, "--json"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    shown = json.loads(cli.stdout)
    assert [r["label"] for r in shown] == [run.classes[int(i)] for i in here.argmax(-1)]
    for row, probs in zip(shown, here, strict=True):
        assert row["probabilities"] == pytest.approx(dict(zip(run.classes, probs.tolist(), strict=True)), abs=1e-5)


@pytest.mark.slow
def test_lora_ner_run_tags_words_and_predicts_offline(tiny_registry: Path, tmp_path: Path) -> None:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run
    from graftzoo.train.tagging import tag_texts

    config = TrainConfig(model="tiny-bert.test", data=str(HERE / "tiny_ner.conll"), policy="lora", epochs=2,
                         lr=5e-3, batch_size=2, val_split=0.34)
    info = train(config, tmp_path / "run", progress=False)
    assert info["task"] == "token-classification"
    assert {"entity_f1", "entity_precision", "entity_recall"} <= set(info["final"])
    assert info["epochs"][-1]["trainable_params"] < sum(  # adapters + head only
        p.numel() for p in load_run(tmp_path / "run").model.parameters()) // 2
    shutil.rmtree(tiny_registry)
    run = load_run(tmp_path / "run")
    texts = ["Anna lives in Paris .", "New York is great"]
    here = tag_texts(run, texts)
    assert [len(r["tags"]) for r in here] == [5, 4]
    assert all(set(r["tags"]) <= set(run.classes) for r in here)
    there = _predict_in_fresh_process(tmp_path / "run", texts, token=True)
    assert there[:2] == [r["entities"] for r in here]
    assert there[2] == run.predict_labels([t.split() for t in texts])
