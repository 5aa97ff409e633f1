"""The conformance kit's failure type and small helpers shared by its checks."""

from __future__ import annotations

from typing import Any

from graftzoo.errors import GraftError


class ConformanceError(GraftError, AssertionError):
    """A plugin breaks a Graftzoo contract; the message names the object, the problem and the fix.

    It is an ``AssertionError`` too, so pytest reports it as a test failure
    (not an error in the test's set-up) and prints the message in full.
    """


def fail(what: str, problem: str, fix: str = "") -> ConformanceError:
    """A ``ConformanceError`` reading ``WHAT: PROBLEM[; FIX]``."""
    return ConformanceError(f"{what}: {problem}" + (f"; {fix}" if fix else ""))


def shape_of(value: Any) -> str:
    """A short description of a returned value for messages: a tensor's shape, else its type."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    return f"a {type(value).__name__}"
