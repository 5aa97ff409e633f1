"""Transfer learning on text, measured: pretrained MiniLM vs classical baselines, in one run.

Sentiment (``rotten-tomatoes``, fresh/rotten review snippets): the policies
``frozen``, ``full``, ``top-k`` and ``lora`` of ``graft tune`` against
TF-IDF (word 1-2 grams) + logistic regression (C chosen by 5-fold CV on the
training part), all on the same stratified train/validation split that the
engine makes (``graftzoo.train.split.stratified_split``, same seed).

NER (``wnut16``, tweets, 10 entity types): full fine-tuning against a
majority-tag baseline (every word ``O``) and a word-lookup baseline (each
word's most frequent training tag), entity-level F1 on the same split.

Run:  .venv/bin/python plugins/nlp/bench/text_transfer.py [--n-text 1600] [--n-ner 1200]
Small subsets and few epochs on purpose: the machine has two shared CPU cores.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

MODEL = "all-minilm-l6-v2.sbert"
SEED = 0
VAL_SPLIT = 0.2


def _subset(data: Any, n: int) -> Any:
    idx = list(range(len(data)))
    random.Random(SEED).shuffle(idx)
    return data.subset(sorted(idx[:n]))


def tfidf_baseline(texts: list[str], labels: list[str], train: list[int], val: list[int]) -> float:
    """Held-out accuracy of TF-IDF + logistic regression (C by cross-validation on train only)."""
    import warnings

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")  # 1.10 API-change notices

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)
    x_train = vec.fit_transform([texts[i] for i in train])
    clf = LogisticRegressionCV(Cs=[0.1, 0.3, 1, 3, 10, 30, 100], cv=5, max_iter=2000)
    clf.fit(x_train, [labels[i] for i in train])
    pred = clf.predict(vec.transform([texts[i] for i in val]))
    return sum(p == labels[i] for p, i in zip(pred, val, strict=True)) / len(val)


def run_policy(name: str, data: Any, out: Path, epochs: int, lr: float, max_length: int,
               **extra: Any) -> dict[str, Any]:
    """Train one policy through the engine; returns its final validation metrics and timing."""
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train

    config = TrainConfig(model=MODEL, data=data.name, policy=name, epochs=epochs, lr=lr, batch_size=32,
                         val_split=VAL_SPLIT, seed=SEED, backbone_options={"max_length": max_length}, **extra)
    start = time.perf_counter()
    info = train(config, out / f"{data.name}-{name}", overwrite=True, data=data, progress=False)
    final = dict(info["final"])
    final["seconds"] = time.perf_counter() - start
    final["trainable"] = info["epochs"][-1]["trainable_params"]
    return final


def text_benchmark(n: int, out: Path, max_length: int) -> None:
    from graftzoo.data import load_data
    from graftzoo.train.split import stratified_split

    data = _subset(load_data("rotten-tomatoes", modality="text"), n)
    train, val = stratified_split(data.labels, VAL_SPLIT, SEED)
    print(f"rotten-tomatoes: {len(data)} snippets ({len(train)} train / {len(val)} held out), "
          f"classes {Counter(data.labels).most_common()}", flush=True)
    start = time.perf_counter()
    base = tfidf_baseline(data.samples, data.labels, train, val)
    print(f"  {'tfidf+logreg':<14} held-out accuracy {base:.4f}  ({time.perf_counter() - start:.1f}s)", flush=True)
    plans: list[tuple[str, int, float, dict[str, Any]]] = [
        ("frozen", 15, 3e-3, {}),
        ("full", 3, 1e-4, {}),
        ("top-k", 3, 2e-4, {"unfreeze": 2}),
        ("lora", 3, 1e-3, {"lora_rank": 8, "lora_alpha": 16}),
    ]
    for name, epochs, lr, extra in plans:
        m = run_policy(name, data, out, epochs, lr, max_length, **extra)
        print(f"  {name:<14} held-out accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
              f"({epochs} epochs, lr {lr:g}, {m['trainable']:,} trainable params, {m['seconds']:.0f}s)  "
              f"vs tfidf {m['accuracy'] - base:+.4f}", flush=True)


def lookup_baseline(samples: list[list[str]], labels: list[list[str]], train: list[int],
                    val: list[int]) -> list[list[str]]:
    """Each word's most frequent training tag (lower-cased), ``O`` for unseen words."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for i in train:
        for word, tag in zip(samples[i], labels[i], strict=True):
            counts[word.lower()][tag] += 1
    best = {w: c.most_common(1)[0][0] for w, c in counts.items()}
    return [[best.get(w.lower(), "O") for w in samples[i]] for i in val]


def ner_benchmark(n: int, out: Path, max_length: int, epochs: int) -> None:
    from graftzoo.data import load_data
    from graftzoo.train.split import stratified_split
    from graftzoo.train.tagging import entity_scores

    data = _subset(load_data("wnut16", modality="text"), n)
    train, val = stratified_split(data.labels, VAL_SPLIT, SEED)
    gold = [data.labels[i] for i in val]
    n_ent = entity_scores(gold, gold)["n_gold"]
    print(f"wnut16: {len(data)} tweets ({len(train)} train / {len(val)} held out, {n_ent} held-out entities)",
          flush=True)
    majority = Counter(t for i in train for t in data.labels[i]).most_common(1)[0][0]
    maj = entity_scores(gold, [[majority] * len(g) for g in gold])
    print(f"  {'majority-tag':<14} entity F1 {maj['f1']:.4f}  (every word {majority!r})", flush=True)
    look = entity_scores(gold, lookup_baseline(data.samples, data.labels, train, val))
    print(f"  {'word-lookup':<14} entity F1 {look['f1']:.4f}  P {look['precision']:.4f}  R {look['recall']:.4f}",
          flush=True)
    m = run_policy("full", data, out, epochs, 2e-4, max_length)
    print(f"  {'minilm full':<14} entity F1 {m['entity_f1']:.4f}  P {m['entity_precision']:.4f}  "
          f"R {m['entity_recall']:.4f}  word acc {m['accuracy']:.4f}  ({epochs} epochs, {m['seconds']:.0f}s)  "
          f"vs majority {m['entity_f1'] - maj['f1']:+.4f}, vs lookup {m['entity_f1'] - look['f1']:+.4f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-text", type=int, default=1600, help="snippets sampled from rotten-tomatoes")
    parser.add_argument("--n-ner", type=int, default=1200, help="tweets sampled from wnut16")
    parser.add_argument("--ner-epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-text"))
    parser.add_argument("--only", choices=("text", "ner"), default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    start = time.perf_counter()
    if args.only in (None, "text"):
        text_benchmark(args.n_text, args.out, args.max_length)
    if args.only in (None, "ner"):
        ner_benchmark(args.n_ner, args.out, args.max_length, args.ner_epochs)
    print(f"total {time.perf_counter() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
