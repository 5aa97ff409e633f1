"""Hub repositories in the exact layouts the real libraries publish, for the loopback hub (tests and the demo).

- ``timm_repo``: ``timm``'s own ``save_for_hf`` (config.json with ``architecture``
  and ``pretrained_cfg``, ``model.safetensors``) of a tiny timm architecture at
  random init, and a README whose YAML says ``library_name: timm``.
- ``bert_repo``: a tiny BERT saved by transformers with ``max_shard_size`` so the
  checkpoint is sharded (``model.safetensors.index.json`` + shards), and a fast
  WordPiece tokenizer saved by ``tokenizers``/transformers.
- ``wav2vec_repo``: a tiny wav2vec2 and its feature extractor (``save_pretrained``).
- ``pickled_repo``: only ``pytorch_model.bin`` (``torch.save`` of the state dict, as transformers < 4.35 wrote).
- ``custom_code_repo``: a config whose ``auto_map`` names code in the repository.

Also small labelled data sets for each modality.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

SEED = 0
WORDS = ["good", "great", "fine", "nice", "love", "bad", "awful", "poor", "hate", "dull", "the", "film", "was",
         "a", "plot", "very"]


def _card(library: str, tag: str, license: str, extra: str = "") -> bytes:
    return (f"---\nlibrary_name: {library}\npipeline_tag: {tag}\nlicense: {license}\ntags:\n- {library}\n{extra}"
            f"---\n# test model\n").encode()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def timm_repo(folder: Path, arch: str = "test_resnet", num_classes: int = 10) -> dict[str, bytes]:
    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(SEED)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    save_for_hf(model, str(folder), safe_serialization=True)
    return {**_files(folder), "README.md": _card("timm", "image-classification", "apache-2.0")}


def _tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    fast.save_pretrained(str(folder))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")


def bert_repo(folder: Path) -> dict[str, bytes]:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(SEED)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(folder), max_shard_size="20KB")
    _tokenizer(folder)
    return {**_files(folder), "README.md": _card("transformers", "fill-mask", "mit")}


W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16, 16),
           conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
           num_conv_pos_embedding_groups=2)


def wav2vec_repo(folder: Path) -> dict[str, bytes]:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(SEED)
    Wav2Vec2Model(Wav2Vec2Config(**W2V)).save_pretrained(str(folder))
    Wav2Vec2FeatureExtractor(sampling_rate=16_000, do_normalize=True).save_pretrained(str(folder))
    return {**_files(folder), "README.md": _card("transformers", "feature-extraction", "apache-2.0")}


def pickled_repo(folder: Path) -> dict[str, bytes]:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=21, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37)
    import torch

    config.save_pretrained(str(folder))
    torch.save(BertModel(config).state_dict(), folder / "pytorch_model.bin")  # what older transformers wrote
    return {**_files(folder), "README.md": _card("transformers", "fill-mask", "mit")}


def custom_code_repo(folder: Path) -> dict[str, bytes]:
    files = bert_repo(folder)
    import json

    config = json.loads(files["config.json"])
    config["auto_map"] = {"AutoModel": "modeling_tiny.TinyModel", "AutoConfig": "configuration_tiny.TinyConfig"}
    files["config.json"] = json.dumps(config, indent=2).encode()
    files["modeling_tiny.py"] = b"import os\nos.system('echo pwned')\n"
    return files


def _class_folders(root: Path, classes: dict[str, float], per_class: int,
                   write: Callable[[Path, float, int, np.random.Generator], None]) -> Path:
    """ROOT/LABEL/ with ``per_class`` files each, written by ``write(folder, class value, index, rng)``."""
    rng = np.random.default_rng(SEED)
    for label, value in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write(root / label, value, i, rng)
    return root


def images(root: Path, per_class: int = 6) -> Path:
    """ROOT/{dark,light}/*.png: 32x32 noisy images, dark or light."""
    from PIL import Image

    def write(folder: Path, base: float, i: int, rng: np.random.Generator) -> None:
        pixels = np.clip(base + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{folder.name}{i}.png")

    return _class_folders(root, {"dark": 40, "light": 210}, per_class, write)


def texts(path: Path, per_class: int = 8) -> Path:
    """A csv of short positive/negative sentences (text,label)."""
    rng = np.random.default_rng(SEED)
    rows = ["text,label"]
    for label, words in (("pos", WORDS[:5]), ("neg", WORDS[5:10])):
        for _ in range(per_class):
            rows.append(f"the film was {' '.join(rng.choice(words, 3))},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def tones(root: Path, per_class: int = 4) -> Path:
    """ROOT/{low,high}/*.wav: 0.3 s sine tones at 16 kHz."""
    import soundfile as sf

    def write(folder: Path, base: float, i: int, rng: np.random.Generator) -> None:
        t = np.arange(int(16_000 * 0.3)) / 16_000
        wave = 0.4 * np.sin(2 * np.pi * base * (1 + 0.03 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(str(folder / f"{folder.name}{i}.wav"), wave.astype(np.float32), 16_000)

    return _class_folders(root, {"low": 220.0, "high": 1760.0}, per_class, write)


BUILDERS = {"acme/tiny-timm": timm_repo, "acme/tiny-bert": bert_repo, "acme/tiny-w2v": wav2vec_repo,
            "acme/pickled-bert": pickled_repo, "acme/custom-bert": custom_code_repo}


def build_all(root: Path) -> dict[str, dict[str, bytes]]:
    """Every test repository's files, saved by the real libraries under ``root``."""
    out = {}
    for repo, builder in BUILDERS.items():
        folder = root / repo.replace("/", "--")
        folder.mkdir(parents=True)
        out[repo] = builder(folder)
    return out
