"""The size rules of the code base, enforced: no function in core/ or plugins/ over 60 lines or with more
than 6 positional parameters (click command callbacks, which click calls with keywords, are exempt from the
parameter limit; ``self``/``cls`` do not count)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60
MAX_POSITIONAL = 6


def functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for folder in ("core", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "/tests/" in str(path) or "/bench/" in str(path) or ".venv" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node


def is_click_callback(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = ast.unparse(target)
        if name.startswith("click.") or name.endswith((".command", ".group")):
            return True
    return False


def positional(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    names = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
    return len([n for n in names if n not in ("self", "cls")])


def test_no_function_is_over_60_lines() -> None:
    long = [f"{where} ({node.end_lineno - node.lineno + 1} lines)" for where, node in functions()
            if node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_no_function_takes_more_than_6_positional_parameters() -> None:
    wide = [f"{where} ({positional(node)} positional)" for where, node in functions()
            if positional(node) > MAX_POSITIONAL and not is_click_callback(node)]
    assert not wide, "make the extra parameters keyword-only or group them:\n" + "\n".join(wide)


def test_the_rules_can_fail() -> None:
    tree = ast.parse("def f(a, b, c, d, e, f, g):\n" + "    x = 1\n" * 61)
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    assert positional(node) == 7 and node.end_lineno is not None and node.end_lineno - node.lineno + 1 == 62
