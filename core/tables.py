"""Plain aligned text tables for the console (``graft list``, ``graft plugins``, the evaluation report).

Tables are formatted here rather than with rich so that the listing commands
stay within a few milliseconds of ``import click`` (see bench/startup.py);
rich is used for progress bars, where its cost is noise. Not part of the CLI
package, so library code (``graftzoo.diagnostics``) can use it without
reaching into the CLI's private helpers.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int | None = None) -> str:
    """Left-aligned columns; the last column is cut to fit the terminal."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    total = max_width or shutil.get_terminal_size((160, 24)).columns
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(len(headers[-1]), min(widths[-1], total - fixed))

    last, columns = widths[-1], len(widths)
    # One format string for every row (a 2,000-row 'graft list' formats in a few milliseconds).
    template = "".join(f"{{:<{w}}}  " for w in widths[:-1]) + "{}"

    def line(cells: Sequence[str]) -> str:  # only the last column can be too wide (the others set their width)
        if len(cells) != columns:
            raise ValueError(f"a row has {len(cells)} cells for {columns} columns")
        end = cells[-1]
        if len(end) > last:
            return template.format(*cells[:-1], end[: max(last - 1, 0)] + "…").rstrip()
        return template.format(*cells).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
