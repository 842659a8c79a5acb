"""HTML and Markdown rendering of an :class:`~analysis.summary.Analysis`.

One context (:func:`context`) feeds both Jinja templates in ``analysis/templates``: ``report.html.j2`` (a
self-contained page, figures embedded as base64 PNG) and ``report.md.j2``. Tables travel as ``{"header", "rows",
"best"}`` and each template's ``table`` filter draws them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis import stats
from analysis import views as v
from analysis import views_checks as vc
from analysis.fmt import html_table, md_table
from analysis.summary import SCHEMA, Analysis

TEMPLATES = Path(__file__).parent / "templates"
HTML_TEMPLATE = "report.html.j2"
MD_TEMPLATE = "report.md.j2"


def _t(header: Sequence[str], rows: Sequence[Sequence[Any]], best: int | None = None) -> dict:
    return {"header": list(header), "rows": [list(r) for r in rows], "best": best}


def _group_ctx(a: Analysis, name: str, g: dict) -> dict:
    ctx: dict[str, Any] = {
        "id": name,
        "title": a.culture_label(name),
        "n_participants": g["n_participants"],
        "notes": v.group_notes(a, g),
        "empty": not g.get("n_judgments"),
    }
    if not ctx["empty"]:
        header, rows, best = v.models_rows(a, g)
        ctx["models"] = _t(header, rows, best)
        ctx["pairwise"] = _t(*v.pairwise_rows(a, g))
    return ctx


def context(a: Analysis, figures: Sequence[Mapping[str, Any]] = ()) -> dict:
    """Everything both templates show. ``figures``: ``{"name", "caption", "png", "files"}`` per figure."""
    criteria = []
    for crit in a.criteria:
        groups = a.results["criteria"][crit]["groups"]
        criteria.append(
            {
                "id": crit,
                "title": crit.replace("_", " ").capitalize(),
                "question": a.questions.get(crit),
                "headline": v.headline(a, crit),
                "all": _group_ctx(a, "all", groups["all"]) if "all" in groups else None,
                "tests": _t(*v.tests_rows(a, crit)),
                "groups": [_group_ctx(a, c, groups[c]) for c in a.cultures if c in groups],
                "kruskal": _t(*vc.kruskal_rows(a, crit)) if "culture_kruskal" in a.tables else None,
            }
        )
    in_out = vc.in_out_rows(a)
    return {
        "title": a.title,
        "source_name": Path(a.source).name,
        "source_sha256": a.source_sha256,
        "design_id": a.design_id,
        "n_boot": a.n_boot,
        "seed": a.seed,
        "min_group_size": a.min_group_size,
        "n_participants": a.results["n_participants"],
        "n_excluded": a.results["n_excluded"],
        "keep_excluded": a.keep_excluded,
        "n_judgments": f"{vc.n_judgments(a):,}",
        "n_cultures": len(a.cultures),
        "criteria": criteria,
        "caveats": vc.caveats(a),
        "warnings": a.warnings,
        "summary": _t(*v.summary_rows(a)),
        "figures": list(figures),
        "balance_sentence": vc.balance_sentence(a),
        "balance": _t(*vc.balance_rows(a)),
        "position": _t(*vc.position_rows(a)),
        "retest": vc.retest_text(a),
        "in_out": _t(*in_out) if in_out else None,
        "culture_caveat": stats.CULTURE_CAVEAT,
        "culture": _t(*vc.culture_rows(a)),
        "exclusion_lines": vc.exclusion_lines(a),
        "paper": _t(*vc.paper_rows(a)),
        "schema": SCHEMA,
    }


def _env(autoescape: bool):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]) if autoescape else False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_html(a: Analysis, figures: Sequence[Mapping[str, Any]] = ()) -> str:
    """The self-contained HTML report (figures embedded as base64 PNG; no external resources)."""
    from markupsafe import Markup

    env = _env(autoescape=True)
    env.filters["table"] = lambda t: Markup(html_table(t["header"], t["rows"], highlight=t.get("best")))
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env.get_template(HTML_TEMPLATE).render(**context(a, figures))


def render_markdown(a: Analysis, figures: Sequence[Mapping[str, Any]] = ()) -> str:
    """The Markdown report (figures linked as files under ``figures/``)."""
    env = _env(autoescape=False)
    env.filters["table"] = lambda t: md_table(t["header"], t["rows"])
    return env.get_template(MD_TEMPLATE).render(**context(a, figures))
