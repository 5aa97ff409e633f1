"""The training engine: backbones + heads, freeze policies, feature cache, runs.

Importing this package is cheap; the modules below import torch.

- ``graftzoo.train.build``: ``build_backbone(entry, pretrained, options)``, ``build_head``, ``resolve_entry``
- ``graftzoo.train.heads``: the built-in ``linear``, ``mlp`` and ``token`` heads
- ``graftzoo.train.policies``: ``FreezePolicy`` (the interface plugins implement) and the built-ins
- ``graftzoo.train.features``: ``extract_features`` with the on-disk feature cache
- ``graftzoo.train.engine``: ``train(config, out)`` and ``resume(run_dir)``
- ``graftzoo.train.run``: ``load_run(run_dir)`` -> ``Run`` (model, classes, config, ``predict``, ``evaluate``)
- ``graftzoo.train.export``: ``export_run(run_dir, "onnx" | "safetensors")``
"""
