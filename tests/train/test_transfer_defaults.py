"""Issue 15's training behaviour on the tiny CNN: converged probe, lr range test, imbalance, schedules, refit."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from graftzoo.data import LabelledData
from graftzoo.train import balance, engine, optim, probe
from graftzoo.train.engine import train
from graftzoo.train.lr_find import suggest
from tests.train import tiny


def test_probe_reaches_scikit_learns_logistic_regression_optimum() -> None:
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 6, generator=g) * 3 + 2
    y = (x[:, 0] + 0.5 * x[:, 1] + torch.randn(90, generator=g) > 2).long() + (x[:, 2] > 3).long()
    fit = probe.fit_probe(x, y, 3, c=0.5)
    ref = LogisticRegression(C=0.5, max_iter=10_000, tol=1e-10).fit(x.numpy(), y.numpy())
    assert torch.allclose(fit.weight.double(), torch.tensor(ref.coef_).double(), atol=2e-3)
    assert torch.allclose(fit.bias.double(), torch.tensor(ref.intercept_).double(), atol=2e-3)


def test_probe_chooses_c_by_cross_validation_and_falls_back_on_tiny_classes() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 4, generator=g)
    y = (x[:, 0] + 0.8 * torch.randn(60, generator=g) > 0).long()  # noisy labels: the held-out loss has a minimum
    fit = probe.fit_probe(x, y, 2)
    walked = [f"{c:g}" for c in probe.C_GRID][:len(fit.scores)]
    assert fit.chosen_by == "cross-validation" and list(fit.scores) == walked
    losses = [fit.scores[k]["log_loss"] for k in walked]
    best = losses.index(min(losses))
    assert fit.c == probe.C_GRID[best] and 0 < best < len(probe.C_GRID) - 1
    assert fit.to_dict()["rule"].startswith("lowest")
    # the one-standard-error rule: the smallest C within one standard error (across folds) of the lowest loss
    one_se = probe.fit_probe(x, y, 2, rule="one-standard-error")
    bound = losses[best] + fit.scores[walked[best]]["log_loss_se"]
    assert one_se.scores == fit.scores and one_se.to_dict()["rule"].startswith("one-standard-error")
    assert one_se.c == probe.C_GRID[next(i for i, v in enumerate(losses) if v <= bound)] < fit.c
    # the walk up the grid stopped PATIENCE points past the best, and those points were worse
    assert len(walked) == best + 1 + probe.PATIENCE and all(v > losses[best] for v in losses[best + 1:])
    assert fit.cv_fits == 5 * len(walked)
    lone = probe.fit_probe(x[:3], torch.tensor([0, 1, 1]), 2)  # one sample of class 0: no folds possible
    assert lone.c == 1.0 and lone.chosen_by.startswith("default") and lone.cv_fits == 0
    folds = probe.stratified_folds([0] * 6 + [1] * 4, 2, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(10))
    assert all(sum(1 for i in f if i < 6) == 3 for f in folds)


def test_cross_validation_holds_out_a_sample_with_its_augmented_views() -> None:
    """Rows that are views of one sample share a fold; without that, a view of each held-out sample sits in
    the fitted part, every C looks right and the weakest regularisation wins."""
    g = torch.Generator().manual_seed(4)
    n, views = 40, 4
    x = torch.randn(n, 64, generator=g)  # more dimensions than samples: any labelling is separable
    y = torch.arange(n) % 2  # labels unrelated to the features: there is nothing to learn
    rows = torch.cat([x + 0.01 * torch.randn(n, 64, generator=g) for _ in range(views + 1)])
    groups = torch.arange(n).repeat(views + 1)
    targets = y.repeat(views + 1)
    fold_of = probe._assign_folds(targets, 2, None, groups, seed=0)
    assert fold_of is not None and int(fold_of.max()) == 4
    assert all(len(set(fold_of[groups == i].tolist())) == 1 for i in range(n))  # a sample's rows: one fold
    assert all(int((targets[fold_of == f] == 1).sum()) == 4 * (views + 1) for f in range(5))  # stratified
    assert torch.equal(probe._assign_folds(y, 2, None, None, seed=0),  # no groups: the plain stratified folds
                       probe._assign_folds(y, 2, None, torch.arange(n), seed=0))
    leaky, scores, _ = probe.choose_c(rows - rows.mean(0), targets, 2, seed=0)
    grouped, grouped_scores, _ = probe.choose_c(rows - rows.mean(0), targets, 2, seed=0, groups=groups)
    assert scores[f"{leaky:g}"]["accuracy"] > 0.9 and leaky >= 10  # memorised views "generalise"
    assert grouped_scores[f"{grouped:g}"]["accuracy"] < 0.75 and grouped <= 0.01  # chance: regularise fully
    fit = probe.fit_probe(rows, targets, 2, groups=groups)
    assert fit.c == grouped


def test_frozen_views_follow_the_flags_then_the_adapter_on_small_data() -> None:
    from graftzoo.train.fitting import DEFAULT_VIEWS, SMALL_DATA, views_wanted

    assert views_wanted(None, 2, default_views=0, n_train=10**6) == 2  # --augment-views K: as asked
    assert views_wanted("light", None, default_views=0, n_train=10**6) == DEFAULT_VIEWS  # --augment: K=4
    assert views_wanted(" None", None, default_views=3, n_train=10) == 0
    assert views_wanted(None, None, default_views=3, n_train=SMALL_DATA) == 3  # the adapter's, on small data
    assert views_wanted(None, None, default_views=3, n_train=SMALL_DATA + 1) == 0
    assert views_wanted(None, None, default_views=0, n_train=10) == 0  # the linear-probe protocol


def _blobs(n: int, d: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return torch.randn(classes, d, generator=g)[y] * 0.7 + torch.randn(n, d, generator=g) + 3, y


def test_warm_started_float32_cross_validation_matches_cold_float64_fits() -> None:
    """The C path (warm starts, float32, the early stop) changes the cost, not the held-out scores or the C."""
    x, y = _blobs(120, 10, 3, seed=2)
    z = x.double() - x.double().mean(0)
    c, scores, fits = probe.choose_c(z, y, 3, seed=0, rule="lowest")
    cold: dict[str, float] = {}
    for key in scores:  # every C walked, each fold fitted from zeros in float64 to the final fit's tolerance
        logits = torch.empty(len(y), 3, dtype=torch.float64)
        per_fold = []
        for held in probe.stratified_folds(y.tolist(), 5, seed=0):
            keep = torch.ones(len(y), dtype=torch.bool)
            keep[held] = False
            w, b, _ = probe.fit_logistic(z[keep], y[keep], 3, float(key))
            logits[held] = z[held] @ w.T + b
            per_fold.append(float(torch.nn.functional.cross_entropy(logits[held], y[held])))
        cold[key] = float(torch.nn.functional.cross_entropy(logits, y))
        assert scores[key]["log_loss"] == pytest.approx(cold[key], abs=1e-4)
        se = float(torch.tensor(per_fold).std()) / 5 ** 0.5
        assert scores[key]["log_loss_se"] == pytest.approx(se, abs=1e-4)
    assert c == float(min(cold, key=lambda k: cold[k])) and fits == 5 * len(scores)


def test_probe_in_the_row_space_reaches_scikit_learns_optimum_with_more_dimensions_than_samples() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(30, 80, 3, seed=3)
    assert probe.row_space(x.double() - x.double().mean(0))[1] is not None  # n < d: solved on 30-ish coordinates
    fit = probe.fit_probe(x, y, 3, c=0.7)
    ref = LogisticRegression(C=0.7, max_iter=10_000, tol=1e-10).fit(x.double().numpy(), y.numpy())  # float64
    assert torch.allclose(fit.weight.double(), torch.tensor(ref.coef_).double(), atol=2e-3)
    assert torch.allclose(fit.bias.double(), torch.tensor(ref.intercept_).double(), atol=2e-3)
    assert fit.chosen_by == "given" and fit.cv_fits == 0 and not fit.scores


@pytest.mark.slow
def test_frozen_run_fits_the_probe_to_convergence_and_beats_fixed_epochs(config: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    fitted = train(config(policy="frozen"), tmp_path / "lbfgs", progress=False, echo=lines.append)
    sgd = train(config(policy="frozen", probe="sgd", epochs=3), tmp_path / "sgd", progress=False)
    assert fitted["head_fit"]["method"] == "lbfgs-logistic-regression" and len(fitted["epochs"]) == 1
    assert any("C=" in line and "L-BFGS iterations" in line for line in lines)
    assert "head_fit" not in sgd and len(sgd["epochs"]) == 3
    assert fitted["final"]["accuracy"] >= sgd["final"]["accuracy"]
    assert fitted["final"]["loss"] < sgd["final"]["loss"]


@pytest.mark.slow
def test_frozen_with_augmentation_caches_augmented_views(config: Any, tmp_path: Path, graftzoo_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    config = functools.partial(config, refit=False)  # a refit would cache views of train+validation too
    train(config(policy="frozen", augment="light"), tmp_path / "a", progress=False, echo=lines.append)
    assert any("4 augmented view(s)" in line for line in lines)  # --augment without --augment-views: K=4
    assert len(list((graftzoo_home / "features").glob("*.safetensors"))) == 1 + 4
    lines.clear()
    train(config(policy="frozen", augment_views=2), tmp_path / "b", progress=False, echo=lines.append)
    assert any("2 augmented view(s)" in line for line in lines)
    assert len(list((graftzoo_home / "features").glob("*.safetensors"))) == 5  # views 0-1 reused from the cache
    lines.clear()
    info = train(config(policy="frozen", augment="none"), tmp_path / "c", progress=False, echo=lines.append)
    assert not any("augmented view" in line for line in lines) and info["config"]["augment_views"] == 0
    lines.clear()
    info = train(config(policy="frozen"), tmp_path / "d", progress=False, echo=lines.append)
    assert not any("augmented view" in line for line in lines) and info["config"]["augment_views"] == 0
    lines.clear()  # an adapter that asks for views on small data gets them, recorded for a resume and the refit
    monkeypatch.setattr(tiny.TinyCNN, "default_views", 3)
    info = train(config(policy="frozen"), tmp_path / "e", progress=False, echo=lines.append)
    assert any("3 augmented view(s)" in line and "the adapter's default for small data" in line for line in lines)
    assert info["config"]["augment_views"] == 3 and info["head_fit"]["cv_folds"] == 5
    assert json.loads((tmp_path / "e" / "graft.json").read_text())["config"]["augment_views"] == 3


@pytest.mark.slow
def test_lr_auto_runs_a_range_test_and_trains_at_its_suggestion(config: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    info = train(config(policy="full", lr_auto=True, lr=123.0, epochs=2), tmp_path / "run", progress=False,
                 echo=lines.append)
    curve = json.loads((tmp_path / "run" / "lr_find.json").read_text())
    assert (tmp_path / "run" / "lr_find.png").stat().st_size > 1000
    assert len(curve["lrs"]) >= 10 and curve["lrs"] == sorted(curve["lrs"])
    assert set(curve["candidates"]) == {"minimum", "falling"}
    assert curve["suggestion"] == max(curve["candidates"].values())
    assert info["config"]["lr"] == pytest.approx(curve["suggestion"], rel=1e-2) and info["config"]["lr"] != 123.0
    assert info["epochs"][0]["lr"] == pytest.approx(info["config"]["lr"])
    assert any("--lr auto: suggested lr" in line for line in lines)


def test_lr_suggestion_is_the_steepest_descent_below_the_minimum() -> None:
    lrs = [10 ** (-6 + i * 0.25) for i in range(25)]  # 1e-6 .. 1
    # flat, falling fastest around 1e-3, minimum at 1e-2, then diverging
    losses = [2.0 - 1.5 / (1 + 10 ** (-(i - 12) * 0.8)) + (0.3 * (i - 16) ** 2 if i > 16 else 0)
              for i in range(25)]
    s = suggest(lrs, losses)
    assert 1e-4 <= s <= 1e-3 * 1.01


def test_lr_suggestion_ignores_the_noise_at_the_start_of_the_sweep() -> None:
    """A real sweep (GE2E speaker ID, bench/transfer_quality.py): its first batches' drop is not the descent."""
    lrs = [1e-06, 1.26e-06, 1.6e-06, 2.02e-06, 2.55e-06, 3.22e-06, 4.08e-06, 5.15e-06, 6.51e-06, 8.23e-06, 1.04e-05,
          1.31e-05, 1.66e-05, 2.1e-05, 2.65e-05, 3.35e-05, 4.24e-05, 5.36e-05, 6.77e-05, 8.55e-05, 0.000108, 0.000137,
          0.000173, 0.000218, 0.000276, 0.000349, 0.000441, 0.000557, 0.000704, 0.00089, 0.00112, 0.00142, 0.0018,
          0.00227, 0.00287, 0.00363, 0.00458, 0.00579, 0.00732, 0.00925, 0.0117, 0.0148, 0.0187, 0.0236, 0.0298, 0.0377,
          0.0476, 0.0602, 0.0761, 0.0962, 0.122, 0.154]
    losses = [2.645, 2.273, 2.287, 2.21, 2.188, 2.187, 2.132, 2.171, 2.163, 2.179, 2.204, 2.206, 2.207, 2.294, 2.224,
              2.229, 2.186, 2.163, 2.148, 2.101, 2.12, 2.106, 2.105, 2.109, 2.081, 2.051, 2.086, 2.012, 1.973, 1.887,
              1.828, 1.756, 1.676, 1.611, 1.521, 1.455, 1.362, 1.252, 1.15, 1.05, 1.028, 0.921, 1.056, 0.985, 0.94,
              1.012, 1.097, 0.942, 0.983, 1.836, 2.904, 4.096]
    s = suggest(lrs, losses)
    assert 3e-4 <= s <= 3e-3, s  # where the loss really falls (it was 1.26e-6, the second point), capped at a
    # tenth of the minimum's 1.5e-2


def test_policy_family_backbone_lr_is_lower_than_the_heads(config: Any) -> None:
    from graftzoo.train.build import build_model, make_policy, resolve_entry

    cfg = config(policy="full")
    model = build_model(resolve_entry(cfg.model), cfg, 5, "classification", pretrained=False)
    policy = make_policy(cfg.policy, cfg)
    policy.apply(model)
    groups = {g["name"]: g["lr"] for g in optim.param_groups(model, 0.1, 0.5, 0.0,
                                                               backbone_scale=policy.backbone_lr_scale)}
    assert groups["head"] == pytest.approx(0.1)
    assert groups["backbone.stage2"] == pytest.approx(0.03) and groups["backbone.stage1"] == pytest.approx(0.015)
    assert make_policy("lora", config(policy="lora")).backbone_lr_scale == 1.0


def test_schedules_with_warmup() -> None:
    cos = optim.schedule("cosine", 6, warmup=2)
    assert [round(cos(e), 3) for e in range(6)] == [0.333, 0.667, 1.0, 0.854, 0.5, 0.146]
    assert [optim.schedule("linear", 4)(e) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert {optim.schedule("constant", 5, warmup=0)(e) for e in range(5)} == {1.0}
    with pytest.raises(ValueError, match="unknown scheduler 'step'"):
        optim.schedule("step", 3)


@pytest.mark.slow
def test_scheduler_warmup_and_label_smoothing_reach_the_run(config: Any, tmp_path: Path) -> None:
    info = train(config(policy="full", scheduler="constant", warmup_epochs=1, epochs=3, label_smoothing=0.1),
                 tmp_path / "run", progress=False)
    assert [round(r["lr"], 6) for r in info["epochs"]] == [0.005, 0.01, 0.01]
    assert info["config"]["label_smoothing"] == 0.1


def imbalanced() -> LabelledData:
    """Digit 0 with 40 samples and digit 1 with 4, plus 1 validation-worth more each."""
    a, b = tiny.digits([0], per_class=50), tiny.digits([1], per_class=6)
    return LabelledData(a.samples + b.samples, a.labels + b.labels, name="imbalanced", modality="vision",
                        fingerprint_parts=[str(i) for i in range(56)])


def test_class_weights_are_inverse_frequency_only_when_imbalanced() -> None:
    w = balance.class_weights("auto", [40, 4])
    assert w is not None and torch.allclose(w, torch.tensor([44 / 80, 44 / 8]))
    assert balance.class_weights("auto", [10, 8]) is None and balance.class_weights("none", [40, 4]) is None
    warning = balance.imbalance_warning([40, 4], ["zero", "one"])
    assert warning is not None and "one=4" in warning and "zero=40" in warning
    assert balance.imbalance_warning([10, 8], ["a", "b"]) is None


@pytest.mark.slow
def test_imbalance_is_warned_about_with_counts_and_the_rare_class_is_found(config: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    info = train(config(policy="frozen", data="imbalanced"), tmp_path / "w", progress=False, data=imbalanced(),
                 echo=lines.append)
    assert any(line.startswith("warning: imbalanced classes") and "1=5" in line and "0=40" in line
               for line in lines)
    confusion = info["final"]["confusion"]
    assert confusion[1][1] >= 1  # the rare class is predicted, not ignored
    lines.clear()
    train(config(policy="frozen", data="imbalanced", class_weights="none"), tmp_path / "n", progress=False,
          data=imbalanced(), echo=lines.append)
    assert any("pass --class-weights auto" in line for line in lines)


@pytest.mark.slow
def test_early_stopping_on_accuracy_says_when_it_stopped_and_what_it_kept(config: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    info = train(config(policy="full", lr=0.0, epochs=6, early_stopping=1, early_stopping_metric="accuracy"),
                 tmp_path / "run", progress=False, echo=lines.append)
    assert len(info["epochs"]) == 2 and info["final"]["best_epoch"] == 1
    assert info["final"]["stopped_after_epoch"] == 2
    assert any("early stopping: no better validation accuracy for 1 epoch(s); stopped after epoch 2, keeping "
               "epoch 1" in line for line in lines)


@pytest.mark.slow
def test_refit_retrains_on_train_and_validation(config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    plain = train(config(policy="frozen", refit=False), tmp_path / "plain", progress=False)
    calls = {"choose_c": 0, "fit_logistic": 0}

    def counting(name: str) -> Any:
        real = getattr(probe, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)
        return counted

    for name in calls:
        monkeypatch.setattr(probe, name, counting(name))
    lines: list[str] = []
    refit = train(config(policy="frozen"), tmp_path / "refit", progress=False,  # the probe refits by default
                  echo=lines.append)
    # one cross-validation; the refit on train+validation reuses its C: one more fit (float32, float64 polish)
    assert calls["choose_c"] == 1 and calls["fit_logistic"] == refit["head_fit"]["cv_fits"] + 2 + 2
    assert refit["refit"]["C"] == refit["head_fit"]["C"] == plain["head_fit"]["C"]
    assert refit["refit"]["reason"].startswith("default for a head fitted on cached features")
    assert any(f"with the probe's C={refit['head_fit']['C']:g}" in line for line in lines)
    assert any(f"C={refit['head_fit']['C']:g} given" in line for line in lines)  # the refit's own fit line
    assert "refit" not in plain
    assert refit["refit"]["n_train"] == plain["data"]["n_train"] + plain["data"]["n_val"] == 120
    assert refit["final"] == plain["final"]  # validation metrics stay the train-only model's
    a = load_file(str(tmp_path / "plain" / "model.safetensors"))
    b = load_file(str(tmp_path / "refit" / "model.safetensors"))
    assert not torch.equal(a["head.0.weight"], b["head.0.weight"])
    assert not (tmp_path / "refit" / "refit").exists()


@pytest.mark.slow
def test_prototype_head_is_class_means_when_frozen_and_trains_when_fine_tuned(config: Any, tmp_path: Path) -> None:
    frozen = train(config(policy="frozen", head="prototype"), tmp_path / "f", progress=False)
    assert frozen["head_fit"]["method"].startswith("class-means") and frozen["final"]["accuracy"] > 0.6
    full = train(config(policy="full", head="prototype", epochs=2), tmp_path / "full", progress=False)
    assert full["final"]["accuracy"] > 0.6


@pytest.mark.slow
def test_cli_flags_reach_graft_json(tiny_plugin: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from graftzoo.cli import cli

    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--policy", "top-k", "--unfreeze", "1",
                                      "--epochs", "2", "--lr", "auto", "--augment", "none", "--scheduler", "linear",
                                      "--warmup-epochs", "1", "--label-smoothing", "0.1", "--class-weights", "none",
                                      "--backbone-lr-scale", "0.5", "--out", str(run)])
    assert result.exit_code == 0, result.output
    cfg = json.loads((run / "graft.json").read_text())["config"]
    assert cfg["lr_auto"] is True and cfg["augment"] == "none" and cfg["scheduler"] == "linear"
    assert cfg["warmup_epochs"] == 1 and cfg["label_smoothing"] == 0.1 and cfg["class_weights"] == "none"
    assert cfg["backbone_lr_scale"] == 0.5 and (run / "lr_find.png").is_file()
    bad = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--lr", "fast", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "expected a number or 'auto', got 'fast'" in bad.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_refit_of_an_epoch_trained_policy_uses_the_chosen_epoch_count(config: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    info = train(config(policy="full", lr=0.0, epochs=5, early_stopping=1, refit=True), tmp_path / "run",
                 progress=False, echo=lines.append)
    assert info["final"]["best_epoch"] == 1 and info["refit"]["epochs"] == 1 and info["refit"]["n_train"] == 120
    assert any("--refit: retraining on train+validation (120 samples) for 1 epoch(s)" in line for line in lines)


@pytest.mark.slow
def test_small_data_is_refitted_by_default_and_larger_data_is_not(config: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    small = train(config(policy="full", epochs=1), tmp_path / "small", progress=False)  # 24/class, 120 in all
    assert small["refit"]["reason"].startswith("default for small data: 120 labelled samples (<= 1000)")
    monkeypatch.setattr(engine, "SMALL_DATA", 119)  # the same data above the threshold: trained once
    assert "refit" not in train(config(policy="full", epochs=1), tmp_path / "plain", progress=False)


@pytest.mark.slow
def test_few_shot_data_is_refitted_by_default(config: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    few = train(config(policy="full", epochs=1, limit_per_class=10), tmp_path / "few", progress=False,
                echo=lines.append)  # 5 classes x (10 + 5 validation): few-shot
    assert few["refit"]["n_train"] == 75 and few["refit"]["epochs"] == 1 and "C" not in few["refit"]
    assert few["refit"]["reason"].startswith("default for few-shot data: 75 labelled samples, 15 per class")
    assert any("--refit: retraining on train+validation (75 samples) for 1 epoch(s) (default for few-shot" in line
               for line in lines)
    kept = train(config(policy="full", epochs=1, limit_per_class=10, refit=False), tmp_path / "kept", progress=False)
    assert "refit" not in kept
