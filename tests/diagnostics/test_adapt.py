"""AdaBN and TENT on a small torch model and a synthetic covariate shift."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graftzoo.diagnostics.adapt import adabn, mean_entropy, norm_layers, tent
from graftzoo.errors import TrainingError


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3),
    )


def trained_net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A net fit on source data: class = argmax of the first 3 inputs."""
    net = small_net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 6, generator=g)
    y = x[:, :3].argmax(1)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    return net, x, y


def target_batches(scale: float = 3.0, shift: float = 2.0, n: int = 480, bs: int = 60) -> tuple[
        list[torch.Tensor], torch.Tensor]:
    """Covariate shift: inputs scaled and offset per feature; labels keep the source rule."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 6, generator=g)
    y = x[:, :3].argmax(1)
    xt = x * scale + shift * torch.tensor([1.5, -1.0, 0.0, 0.5, -0.5, 1.0])
    return list(xt.split(bs)), y


def accuracy(net: nn.Module, batches: list[torch.Tensor], y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(b).argmax(1) for b in batches])
    return float((pred == y).float().mean())


def test_adabn_sets_running_stats_to_the_targets_and_helps() -> None:
    net, _, _ = trained_net()
    batches, y = target_batches()
    before = accuracy(net, batches, y)
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert adabn(net, batches) == 2
    bn = net[1]
    # The first BN sees Linear(x_target): its running mean must equal that mean exactly.
    # Its variance is the average of the batches' unbiased variances (a cumulative average).
    with torch.no_grad():
        hs = [net[0](b) for b in batches]
    assert torch.allclose(bn.running_mean, torch.cat(hs).mean(0), atol=1e-4)
    assert torch.allclose(bn.running_var, torch.stack([h.var(0) for h in hs]).mean(0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1 and not net.training
    after = {k: v for k, v in net.state_dict().items() if k in weights}
    assert all(torch.equal(weights[k], after[k]) for k in weights)  # only statistics changed
    assert accuracy(net, batches, y) > before + 0.1


def test_adabn_refuses_models_without_batchnorm_and_empty_data() -> None:
    with pytest.raises(TrainingError, match="no BatchNorm"):
        adabn(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), [torch.zeros(2, 2)])
    with pytest.raises(TrainingError, match="empty"):
        adabn(small_net(), [])


def test_tent_lowers_entropy_beyond_adabn_and_only_touches_norm_affine_params() -> None:
    net, _, _ = trained_net()
    batches, _ = target_batches()
    reference = trained_net()[0]
    adabn(reference, batches)  # the AdaBN-only baseline TENT must beat
    before = {k: v.clone() for k, v in net.named_parameters()}
    result = tent(net, batches, steps=5, lr=1e-2)
    norm_params = {id(p) for m in norm_layers(net) for p in (m.weight, m.bias)}
    for name, p in net.named_parameters():
        changed = not torch.equal(before[name], p)
        assert changed == (id(p) in norm_params), name
        assert p.requires_grad  # flags restored
    assert result["parameters_updated"] == 4 * 16
    assert result["entropy_per_step"][-1] < result["entropy_per_step"][0]
    assert mean_entropy(net, batches) < mean_entropy(reference, batches)
    assert not net.training


def test_tent_works_on_layernorm_models() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    batches = list(torch.randn(64, 4).split(16))
    start = mean_entropy(net, batches)
    tent(net, batches, steps=10, lr=5e-2)
    assert mean_entropy(net, batches) < start
