"""Number formatting and plain HTML / Markdown tables for the report (pure string functions)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    return f"{float(x):.{digits}f}"


def fmt_p(p: Any) -> str:
    if p is None or not math.isfinite(float(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_pct(x: Any) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.0%}"


def fmt_ci(lo: Any, hi: Any, digits: int = 2) -> str:
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"


# --------------------------------------------------------------------------------------------------- HTML / MD
def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, highlight: int | None = None) -> str:
    text_cols = [not _numeric(v) for v in rows[0]] if rows else [False] * len(header)
    head = "".join(
        f'<th scope="col"{_cls(is_text)}>{html.escape(str(h))}</th>'
        for h, is_text in zip(header, text_cols, strict=False)
    )
    body = []
    for i, row in enumerate(rows):
        cls = ' class="best"' if i == highlight else ""
        cells = "".join(f"<td{_cls(not _numeric(v))}>{html.escape(str(v))}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(header)}">none</td></tr>')
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _numeric(value: Any) -> bool:
    text = str(value)
    return text.lstrip("[<–-− ").replace(",", "")[:1].isdigit() or text in ("–", "")


def _cls(is_text: bool) -> str:
    return ' class="t"' if is_text else ""


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    if not rows:
        lines.append("| " + " | ".join(["none", *[""] * (len(header) - 1)]) + " |")
    return "\n".join(lines)
