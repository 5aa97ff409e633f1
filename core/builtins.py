"""Graftzoo's own heads, freeze policies and data formats, registered as a plugin.

They go through the same hooks as any third-party plugin (as pytest ships its
own features as plugins). Targets are ``module:attr`` strings so that nothing
heavy is imported until a command uses them.
"""

from __future__ import annotations

from graftzoo.hookspecs import (
    RegisterDataFormat,
    RegisterFreezePolicy,
    RegisterHead,
    RegisterModality,
    hookimpl,
)


@hookimpl
def register_modalities(register: RegisterModality) -> None:
    # The three modalities the first landing knew; a plugin registers any other it needs.
    register("vision", task="image-classification", pipeline_tag="image-classification", inputs="files",
             description="images")
    register("text", task="text-classification", pipeline_tag="text-classification", inputs="text",
             description="texts (and word sequences for token classification)")
    register("audio", task="audio-classification", pipeline_tag="audio-classification", inputs="files",
             description="audio recordings")


@hookimpl
def register_heads(register: RegisterHead) -> None:
    register("linear", "graftzoo.train.heads:linear_head", description="one linear layer (a probe)")
    register("mlp", "graftzoo.train.heads:mlp_head", description="hidden layer with dropout, then linear")
    register("prototype", "graftzoo.train.heads:prototype_head",
             description="cosine similarity to class means (few-shot)")
    register("token", "graftzoo.train.heads:token_head", description="per-token linear classifier (NER)")


@hookimpl
def register_freeze_policies(register: RegisterFreezePolicy) -> None:
    register("frozen", "graftzoo.train.policies:Frozen",
             description="feature extraction: backbone frozen, features cached, head trains")
    register("full", "graftzoo.train.policies:Full", description="everything trains")
    register("top-k", "graftzoo.train.policies:TopK", description="the last --unfreeze K groups train")
    register("gradual", "graftzoo.train.policies:Gradual",
             description="head first, then one more group every --unfreeze-every N epochs")
    register("bitfit", "graftzoo.train.policies:BitFit", description="only biases and the head train")
    register("lora", "graftzoo.train.policies:Lora", description="low-rank adapters (peft) and the head train")


@hookimpl
def register_data_formats(register: RegisterDataFormat) -> None:
    register("csv", "graftzoo.data.tabular:load_csv", modality=None,
             detect="graftzoo.data.tabular:detect_csv",
             description="CSV with a label column and a text or path column")
    register("jsonl", "graftzoo.data.tabular:load_jsonl", modality=None,
             detect="graftzoo.data.tabular:detect_jsonl",
             description="JSON lines with a label field and a text or path field")
