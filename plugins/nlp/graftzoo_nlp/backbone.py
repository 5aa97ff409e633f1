"""The ``hf-encoder`` backbone adapter: Hugging Face transformer encoders.

BERT, RoBERTa, DistilBERT, MiniLM, ELECTRA, ModernBERT... are loaded with
``AutoModel`` / ``AutoTokenizer`` from the local directory their source
resolved to (a package directory or a pulled hub snapshot). Remote code is
never run and nothing is fetched from a hub here: ``local_files_only`` keeps
loading safe under ``HF_HUB_OFFLINE=1``.

Layer extraction: ``AutoModel`` is the bare encoder, without the
pretraining/classification head. Features are the mean of the last hidden
states over real tokens (``pooling="mean"``, the default), the first token's
state (``"cls"``) or the model's own pooler (``"pooler"``, BERT's dense+tanh
on [CLS]). Token tasks get one feature per *word*: the state of its first
sub-token.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graftzoo.api import Backbone, DataError, OptionError, PluginError, fetch, split_words
from graftzoo_nlp.hub import TOKENIZER_FILES

if TYPE_CHECKING:
    from graftzoo.api import ModelEntry

POOLINGS = ("mean", "cls", "pooler")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# Attention input projections across encoder families (peft target_modules suffixes).
_ATTENTION_PROJECTIONS = ("query", "key", "value", "q_lin", "k_lin", "v_lin", "q_proj", "k_proj", "v_proj",
                          "Wqkv", "query_proj", "key_proj", "value_proj")
# Byte-level BPE tokenizers need a prefix space to take pre-split words (CoNLL input).
_PREFIX_SPACE_TYPES = ("roberta", "longformer", "deberta", "bart", "mpnet", "camembert")


class _Group(nn.Module):
    """A layer group made of modules that live elsewhere in the tree.

    Held outside the backbone's own attributes (see ``HFEncoder.groups``) so
    that state_dict names stay those of the transformers model.
    """

    def __init__(self, modules: Sequence[nn.Module], loose: Sequence[nn.Parameter] = ()) -> None:
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self.loose = nn.ParameterList(loose)


class HFEncoder(Backbone):
    """A transformers encoder as a Graftzoo backbone (sequence and token features)."""

    modality = "text"
    supports_tokens = True

    def __init__(self, model: nn.Module, tokenizer: Any, files_dir: Path, max_length: int = 128,
                 pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise OptionError(f"hf-encoder: unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        if pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise OptionError(f"hf-encoder: {type(model).__name__} has no pooler; use pooling 'mean' or 'cls'")
        if pooling != "pooler" and getattr(model, "pooler", None) is not None:
            # An unused pooler would sit in the top group untrained and trip DDP's unused-parameter check.
            model.pooler = None
        if not 1 <= max_length <= 8192:
            raise OptionError(f"hf-encoder: max_length must be between 1 and 8192, got {max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.files_dir = Path(files_dir)
        self.max_length = int(max_length)
        self.pooling = pooling
        self.feature_dim = int(model.config.hidden_size)
        accepted = set(inspect.signature(model.forward).parameters)
        self._inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted
                        and name in getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask"])]
        self._layers_name, self._layers = _find_layers(model)
        self.groups()  # validates the partition once, at build time

    # -- layering -----------------------------------------------------------------
    def groups(self) -> list[tuple[str, nn.Module]]:
        """embeddings, layer_0 ... layer_{N-1}, then the pooler / final norm if the model has one."""
        before: list[nn.Module] = []
        after: list[nn.Module] = []
        loose_before: list[nn.Parameter] = []
        loose_after: list[nn.Parameter] = []
        seen_layers = False
        prefix = self._layers_name + "."

        def walk(module: nn.Module, name: str) -> None:
            nonlocal seen_layers
            for pname, param in module.named_parameters(recurse=False):
                (loose_after if seen_layers else loose_before).append(param)
                del pname
            for child_name, child in module.named_children():
                full = f"{name}.{child_name}" if name else child_name
                if child is self._layers:
                    seen_layers = True
                elif prefix.startswith(full + "."):
                    walk(child, full)  # an ancestor of the layer list: split it further
                elif any(True for _ in child.parameters()):
                    (after if seen_layers else before).append(child)

        walk(self.model, "")
        groups: list[tuple[str, nn.Module]] = [("embeddings", _Group(before, loose_before))]
        groups += [(f"layer_{i}", layer) for i, layer in enumerate(self._layers)]
        if after or loose_after:
            top = "pooler" if self.pooling == "pooler" else "final_norm"
            groups.append((top, _Group(after, loose_after)))
        _check_partition(self.model, groups)
        return groups

    def lora_targets(self) -> list[str]:
        """The attention projections (query/key/value) found inside the transformer layers."""
        found = {name.rsplit(".", 1)[-1] for name, module in self._layers.named_modules()
                 if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in _ATTENTION_PROJECTIONS}
        return sorted(found)

    # -- features -----------------------------------------------------------------
    def _hidden(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        out = self.model(**{k: batch[k] for k in self._inputs if k in batch})
        return out[0], out

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features ``[B, hidden_size]``."""
        hidden, out = self._hidden(batch)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "pooler":
            pooled: torch.Tensor = out.pooler_output
            return pooled
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward_tokens(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One feature per word ``[B, W, hidden_size]``: the state of each word's first sub-token.

        Position ``j`` is word ``j`` of the sample; words cut off by
        ``max_length`` (``word_mask`` 0) get zeros.
        """
        hidden, _ = self._hidden(batch)
        index = batch["word_index"]
        feats = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        return feats * batch["word_mask"].unsqueeze(-1).to(feats.dtype)

    def token_labels(self, batch: Mapping[str, torch.Tensor], word_labels: list[list[int]]) -> torch.Tensor:
        """Word label ids at the ``forward_tokens`` positions (position j = word j); -100 pads.

        Exactly one position per word, also for words cut off by
        ``max_length``: the engine reads predictions back word by word. Those
        words have an all-zero feature, so the head predicts them from its
        bias (in practice ``O``); raise ``max_length`` if sentences are long.
        """
        mask = batch["word_mask"]
        out = torch.full(mask.shape, -100, dtype=torch.long)
        for b, labels in enumerate(word_labels):
            if len(labels) > mask.size(1):
                raise DataError(f"hf-encoder: {len(labels)} labels for a sentence of at most {mask.size(1)} words")
            out[b, : len(labels)] = torch.as_tensor(labels, dtype=torch.long)
        return out.to(mask.device)

    # -- input pipeline -------------------------------------------------------------
    def collate(self, samples: list[Any], train: bool) -> dict[str, torch.Tensor]:
        """Tokenize a batch: raw strings, or lists of words (CoNLL sentences).

        Besides the tokenizer's tensors the batch holds ``word_index`` (the
        first sub-token of each word) and ``word_mask`` ``[B, W]``. Raw strings
        are cut into words with ``graftzoo_nlp.words.split_words``, as
        ``graft predict`` does for NER. Text has no augmentation: ``train`` is
        accepted for the contract and ignored.
        """
        if not samples:
            raise DataError("hf-encoder: empty batch")
        if all(isinstance(s, str) for s in samples):
            return self._collate_texts(samples)
        if all(isinstance(s, (list, tuple)) and all(isinstance(w, str) for w in s) for s in samples):
            return self._collate_words([list(s) for s in samples])
        kinds = sorted({type(s).__name__ for s in samples})
        raise DataError(f"hf-encoder takes texts (str) or word lists (list of str), got {', '.join(kinds)}")

    def _encode(self, inputs: Any, **kwargs: Any) -> Any:
        return self.tokenizer(inputs, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt", **kwargs)

    def _batch(self, enc: Any, word_index: list[list[int]], width: int) -> dict[str, torch.Tensor]:
        batch = {k: enc[k] for k in self._inputs if k in enc}
        batch.setdefault("attention_mask", enc["attention_mask"])
        index = torch.zeros(len(word_index), max(width, 1), dtype=torch.long)
        mask = torch.zeros_like(index)
        for b, firsts in enumerate(word_index):
            for j, pos in enumerate(firsts):
                if pos >= 0:
                    index[b, j] = pos
                    mask[b, j] = 1
        batch["word_index"] = index
        batch["word_mask"] = mask
        return batch

    def _collate_texts(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self._encode(texts, return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping").tolist()
        firsts_all: list[list[int]] = []
        width = 0
        for b, text in enumerate(texts):
            words = split_words(text)
            width = max(width, len(words))
            starts = [(i, s, e) for i, (s, e) in enumerate(offsets[b]) if e > s]
            firsts: list[int] = []
            k = 0
            for word in words:
                while k < len(starts) and starts[k][2] <= word.start:
                    k += 1
                hit = k < len(starts) and starts[k][1] < word.end
                firsts.append(starts[k][0] if hit else -1)
            firsts_all.append(firsts)
        return self._batch(enc, firsts_all, width)

    def _collate_words(self, sentences: list[list[str]]) -> dict[str, torch.Tensor]:
        if any(not s for s in sentences):
            raise DataError("hf-encoder: a sentence with no words")
        enc = self._encode(sentences, is_split_into_words=True)
        firsts_all: list[list[int]] = []
        for b, words in enumerate(sentences):
            firsts = [-1] * len(words)
            for pos, word_id in enumerate(enc.word_ids(b)):
                if word_id is not None and firsts[word_id] < 0:
                    firsts[word_id] = pos
            firsts_all.append(firsts)
        return self._batch(enc, firsts_all, max(len(s) for s in sentences))

    def preprocessing(self) -> dict[str, Any]:
        """Tokenizer, length and pooling: everything that rebuilds the input pipeline."""
        config = self.model.config
        return {
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": int(getattr(self.tokenizer, "vocab_size", 0) or 0),
            "do_lower_case": bool(getattr(self.tokenizer, "do_lower_case", False)),
            "max_length": self.max_length,
            "pooling": self.pooling,
            "model_type": str(config.model_type),
            "hidden_size": self.feature_dim,
            "num_layers": len(self._layers),
            "word_split": "graftzoo_nlp.words.split_words",
            "files": sorted(self.extra_files()),
        }

    def export_transformers(self, out: Path, head: Any, labels: list[str], task: str) -> Any:
        """This encoder + ``head`` as a transformers classification directory (see ``graftzoo_nlp.interop``)."""
        from graftzoo_nlp.interop import export_transformers

        return export_transformers(self, out, head, labels, task)

    def extra_files(self) -> dict[str, Path]:
        """config.json and the tokenizer files: with them a saved run predicts offline in a fresh process."""
        return {name: self.files_dir / name for name in TOKENIZER_FILES if (self.files_dir / name).is_file()}


def _find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer block list: the ModuleList holding the most parameters."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            size = sum(p.numel() for p in module.parameters())
            if best is None or size > best[0]:
                best = (size, name, module)
    if best is None:
        raise PluginError(f"hf-encoder: cannot find the transformer layers of {type(model).__name__}")
    return best[1], best[2]


def _check_partition(model: nn.Module, groups: list[tuple[str, nn.Module]]) -> None:
    owner: dict[int, str] = {}
    for name, group in groups:
        for param in group.parameters():
            if id(param) in owner:
                raise PluginError(f"hf-encoder: a parameter is in both group {owner[id(param)]!r} and {name!r}")
            owner[id(param)] = name
    missing = [n for n, p in model.named_parameters() if id(p) not in owner]
    if missing:
        raise PluginError(f"hf-encoder: parameters in no group: {', '.join(missing[:5])}")


def _local_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _architecture_dir(entry: ModelEntry, options: Mapping[str, Any]) -> Path:
    """Where config.json and the tokenizer are when no weights are given (random init, rebuilding a run)."""
    if options.get("files_dir"):
        return Path(str(options["files_dir"]))
    saved = options.get("extra_files")  # a saved run: {name: path} of the files extra_files() listed
    if isinstance(saved, Mapping) and saved.get("config.json"):
        return Path(str(saved["config.json"])).parent
    src = entry.parsed_source
    if src.scheme == "file":
        return _local_dir(Path(src.path).expanduser())
    if src.scheme == "pkg":
        import importlib.metadata

        try:
            located = Path(str(importlib.metadata.distribution(src.repo).locate_file(src.path)))
        except importlib.metadata.PackageNotFoundError:
            located = None
        if located is not None and located.exists():
            return _local_dir(located)
    return _local_dir(Path(fetch(entry)))  # a hub snapshot: config and tokenizer come with it


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # 'Loading weights' bars and init notes would bury Graftzoo's own output
    hf_logging.disable_progress_bar()


def create(entry: ModelEntry, weights: Path | None, options: Mapping[str, Any]) -> HFEncoder:
    """Factory of the ``hf-encoder`` adapter: ``(entry, weights, options) -> HFEncoder``.

    ``weights`` is a directory (or a file inside one) with ``config.json``,
    the tokenizer files and ``model.safetensors``; a directory without weight
    files, or None, builds the architecture with random weights. Options:
    ``max_length`` (default: the entry's ``input.max_length``, else 128),
    ``pooling`` (``mean``, ``cls`` or ``pooler``), and ``extra_files`` (the
    ``{name: path}`` of a saved run's copies of ``extra_files()``) or
    ``files_dir``: where config and tokenizer are when rebuilding a run.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    _quiet_transformers()
    if str(options.get("augment") or "none").lower() != "none":
        raise OptionError(f"{entry.id}: --augment {options['augment']!r}: the hf-encoder adapter has no text "
                          "augmentation (rewording can change a label); use --augment none or leave it out")
    pretrained = weights is not None and any((_local_dir(Path(weights)) / f).is_file() for f in _WEIGHT_FILES)
    directory = _local_dir(Path(weights)) if weights is not None else _architecture_dir(entry, options)
    if not (directory / "config.json").is_file():
        raise PluginError(f"{entry.id}: {directory} has no config.json; the hf-encoder adapter loads "
                          "transformers model directories")
    try:
        model_type = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("model_type", "")
        config = AutoConfig.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
        if pretrained:
            model = AutoModel.from_pretrained(directory, config=config, local_files_only=True,
                                              trust_remote_code=False, use_safetensors=True)
        else:
            model = AutoModel.from_config(config, trust_remote_code=False)
        extra = {"add_prefix_space": True} if model_type in _PREFIX_SPACE_TYPES else {}
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=False,
                                                  **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise PluginError(f"{entry.id}: cannot load a transformers encoder from {directory}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise PluginError(f"{entry.id}: {directory} has no fast tokenizer (tokenizer.json); sub-word to word "
                          "alignment needs one")
    max_length = int(options.get("max_length") or entry.input.get("max_length") or 128)
    pooling = str(options.get("pooling") or entry.input.get("pooling") or "mean")
    model.eval()
    return HFEncoder(model, tokenizer, directory, max_length=max_length, pooling=pooling)
