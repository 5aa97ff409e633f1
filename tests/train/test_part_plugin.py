"""A head-and-policy-only plugin made by ``graft plugin new --parts head,policy``: its generated tests pass,
and its head's own option, set with --head-option, reaches the head again in evaluate, predict and --resume."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from graftzoo.cli import cli
from graftzoo.errors import TrainingError
from tests.train import tiny


@pytest.fixture
def part_plugin(tmp_path: Path, tiny_plugin: str) -> Iterator[Any]:
    """graftzoo-cosine generated with --parts head,policy, its hooks registered; yields its heads module."""
    import importlib

    from graftzoo.plugins import get_plugins
    from graftzoo.scaffold import new_plugin

    root = new_plugin("graftzoo-cosine", "vision", tmp_path, parts="head,policy")
    assert not (root / "graftzoo_cosine" / "backbone.py").exists() and (root / ".gitignore").is_file()
    sys.path.insert(0, str(root))
    try:
        hooks = importlib.import_module("graftzoo_cosine.hooks")
        get_plugins().add(hooks, "cosine")
        yield importlib.import_module("graftzoo_cosine.heads")
    finally:
        get_plugins().remove("cosine")
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n.startswith("graftzoo_cosine")]:
            del sys.modules[name]


@pytest.mark.slow
def test_generated_tests_pass(part_plugin: Any) -> None:
    root = Path(part_plugin.__file__).parents[1]
    env = {k: v for k, v in os.environ.items() if k != "GRAFTZOO_NO_PLUGINS"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                            capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "5 passed" in result.stdout


@pytest.mark.slow
def test_head_option_survives_evaluate_predict_and_resume(part_plugin: Any, tiny_plugin: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    factory = part_plugin.cosine_head

    @functools.wraps(factory)  # the same signature: --head-option is typed from it
    def spy(feature_dim: int, num_outputs: int, **options: Any) -> Any:
        seen.append(options["scale"])
        return factory(feature_dim, num_outputs, **options)

    monkeypatch.setattr(part_plugin, "cosine_head", spy)
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train

    config = TrainConfig(model=tiny_plugin, data="tinydigits", head="cosine", policy="cosine-top-fraction",
                         head_extra={"scale": "3.5"}, policy_extra={"fraction": "0.7"}, epochs=3, lr=0.01,
                         batch_size=16)

    def stop(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="--resume"):
        train(config, run, progress=False, on_epoch_end=stop)
    stored = json.loads((run / "graft.json").read_text())["config"]
    assert stored["head_extra"] == {"scale": 3.5} and stored["policy_extra"] == {"fraction": 0.7}  # typed
    runner = CliRunner()
    assert runner.invoke(cli, ["tune", "--resume", str(run)]).exit_code == 0
    info = json.loads((run / "graft.json").read_text())
    assert info["status"] == "complete" and "top 70% of the groups" in info["policy"]["description"]
    result = runner.invoke(cli, ["evaluate", str(run), "tinydigits", "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == pytest.approx(info["final"]["accuracy"])
    image = tmp_path / "x.npy"
    np.save(image, tiny.digits(per_class=1).samples[0])
    assert runner.invoke(cli, ["predict", str(run), str(image)]).exit_code == 0
    assert seen == [3.5] * len(seen) and len(seen) >= 4  # train, resume, evaluate, predict


def test_unknown_and_mistyped_part_options_are_refused(part_plugin: Any, tiny_plugin: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["tune", tiny_plugin, "tinydigits", "--head", "cosine", "--out", str(tmp_path / "run")]
    result = runner.invoke(cli, [*base, "--head-option", "scal=2"])
    assert result.exit_code == 1 and ("Error: --head-option scal: head 'cosine' of plugin 'cosine' has no option "
                                      "'scal'; its options: scale ('graft info --head cosine' lists them)"
                                      ) in result.output
    result = runner.invoke(cli, [*base, "--policy", "cosine-top-fraction", "--policy-option", "fraction=half"])
    assert result.exit_code == 1 and "Error: --policy-option fraction=half: expected a float" in result.output
    assert not (tmp_path / "run").exists()
    result = runner.invoke(cli, ["info", "--head", "cosine", "--json"])
    assert json.loads(result.output)["options"] == {"scale": 10.0}
