"""No command lets anything but a GraftError (one ``Error:`` line, exit code 1) or a usage error (exit code 2)
escape for bad user input: every command is fed bad input here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from graftzoo.cli import COMMANDS, cli

#: install/uninstall hand their arguments to pip (tested in tests/devkit with a local index).
NOT_HERE = {"install", "uninstall"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished tiny run, for the commands that take one."""
    from graftzoo.plugins import reset_plugins
    from tests.train import tiny

    directory = tmp_path_factory.mktemp("cli-errors")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("GRAFTZOO_HOME", str(directory / "home"))
    monkeypatch.setenv("GRAFTZOO_NO_PLUGINS", "1")
    reset_plugins()
    undo = tiny.install(directory)
    result = CliRunner().invoke(cli, ["tune", tiny.MODEL_ID, "tinydigits", "--epochs", "1",
                                      "--out", str(directory / "run")])
    assert result.exit_code == 0, result.output
    yield directory / "run"
    undo()
    monkeypatch.undo()
    reset_plugins()


def bad_inputs(run: Path, tmp: Path) -> list[list[str]]:
    text = tmp / "reviews.csv"
    text.write_text("text,label\ngood,pos\nbad,neg\n")
    broken = tmp / "broken.csv"
    broken.write_text("path,label\nnowhere.npy,1\n")
    return [
        ["list", "--modality", "smell"],
        ["info", "nosuch.model"],
        ["add", "not-a-hub-ref"],
        ["plugins", "--bogus"],
        ["plugin", "new", "Not A Name"],
        ["tune", "nosuch.model", "tinydigits"],
        ["tune", "tinycnn.test", str(tmp / "missing-data")],
        ["tune", "tinycnn.test", str(text)],
        ["tune", "tinycnn.test", str(broken)],
        ["tune", "tinycnn.test", "tinydigits", "--policy", "frozen", "--unfreeze", "2"],
        ["tune", "tinycnn.test", "tinydigits", "--head", "nosuch"],
        ["tune", "tinycnn.test", "tinydigits", "--backbone-option", "nokey"],
        ["tune", "tinycnn.test", "tinydigits", "--out", str(run)],
        ["tune", "--resume", str(tmp)],
        ["evaluate", str(tmp), "tinydigits"],
        ["evaluate", str(run), str(text)],
        ["evaluate", str(run), str(tmp / "missing-data")],
        ["predict", str(run), str(tmp / "missing.npy")],
        ["predict", str(tmp), "x"],
        ["export", str(tmp), "--format", "onnx"],
        ["export", str(run), "--format", "pickle"],
        ["pull", "nosuch.model"],
        ["cache", "rm", "nosuch.model"],
        ["push", str(tmp), "me/x"],
        ["rank", str(tmp / "missing-data")],
        ["rank", "tinydigits", "--models", "nosuch.model"],
        ["adapt", str(run), str(text), "--method", "adabn"],
        ["adapt", str(tmp), "tinydigits", "--method", "adabn"],
        ["tune", "--config", str(tmp / "missing.toml")],
        ["tune", "--config", str(text)],
        ["tune", "tinycnn.test", "tinydigits", "--log-with", "nosuch"],
        ["predict", str(run), f"@{tmp / 'missing.txt'}"],
        ["predict", str(run), str(tmp), "--output", str(tmp / "out.xlsx")],
        ["export", str(run), "--format", "transformers"],
        ["export", str(run), "--format", "timm"],
        ["evaluate", str(run), "tinydigits", "--worst", "-1"],
        ["demo", str(tmp)],
        ["demo", str(run), "--port", "0"],
    ]


def test_no_command_lets_a_non_graft_error_escape(run_dir: Path, tmp_path: Path) -> None:
    cases = bad_inputs(run_dir, tmp_path)
    assert {args[0] for args in cases} == set(COMMANDS) - NOT_HERE  # every command has bad input here
    for args in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert result.exit_code in (1, 2), (args, result.output)
        assert "Error: " in result.output and "Traceback" not in result.output, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, (args, result.output)
