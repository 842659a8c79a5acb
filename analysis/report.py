"""``python -m analysis.report``: responses.csv → report.html, report.md, results.json, tables/*.csv, figures/*.

The only module of ``analysis`` that writes files. The work is split into pure steps, each in its own module —
:func:`analysis.summary.analyse` (statistics into an :class:`~analysis.summary.Analysis`),
:func:`analysis.figure_set.make_figures`, :func:`analysis.render.render_html` / ``render_markdown`` (Jinja templates
in ``analysis/templates``) — and :func:`write_report`, which writes them to a folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from analysis import figures as figs
from analysis.design_check import design_warnings
from analysis.figure_set import FigureSpec, make_figures
from analysis.load import ResponsesError, apply_exclusions, attach_design, read_responses
from analysis.render import render_html, render_markdown
from analysis.summary import MIN_GROUP_SIZE, SCHEMA, Analysis, analyse
from analysis.views import best_model, headline, summary_lines
from analysis.views_checks import n_judgments
from study_designs.schema import DesignError, load_design

__all__ = [
    "SCHEMA",
    "Analysis",
    "FigureSpec",
    "analyse",
    "best_model",
    "headline",
    "main",
    "make_figures",
    "render_html",
    "render_markdown",
    "run",
    "summary_lines",
    "write_report",
]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(a: Analysis, out_dir: str | Path, *, progress: bool = True) -> dict[str, Path]:
    """Write every output of the report into ``out_dir``; returns the main paths.

    Each figure goes to ``figures/NAME.png`` (300 dpi), ``.svg`` and ``.pdf``; the HTML embeds a screen-resolution
    PNG of it.
    """
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results_path.write_text(
        json.dumps(_finite(a.results), indent=2, default=_json_default, allow_nan=False) + "\n", encoding="utf-8"
    )
    for name, table in a.tables.items():
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
    figures = []
    for spec in tqdm(make_figures(a), desc="figures", unit="fig", disable=not progress):
        paths = figs.save_for_paper(spec.figure, out / "figures" / spec.name)
        files = [f"figures/{p.name}" for p in paths]
        png = figs.screen_png(paths[0].read_bytes())
        figures.append({"name": spec.name, "caption": spec.caption, "png": png, "files": files})
    html_path = out / "report.html"
    html_path.write_text(render_html(a, figures), encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(a, figures), encoding="utf-8")
    return {"html": html_path, "markdown": md_path, "results": results_path}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(
    responses: str | Path,
    out_dir: str | Path,
    *,
    design_path: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    keep_excluded: bool = False,
    progress: bool = True,
    min_group_size: int = MIN_GROUP_SIZE,
) -> Analysis:
    """Load, analyse and write the report; raises :class:`ResponsesError` / :class:`DesignError` on bad input.

    Mismatches between the responses and the design (see :mod:`analysis.design_check`) are printed to stderr and
    listed in the report and ``results.json``.
    """
    design = load_design(design_path) if design_path else None
    df = read_responses(responses)
    warnings: list[str] = []
    if design is not None:
        warnings = design_warnings(df, design)
        df = attach_design(df, design)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    rows, info = apply_exclusions(df, keep_excluded=keep_excluded)
    a = analyse(
        rows,
        info,
        design=design,
        n_boot=n_boot,
        seed=seed,
        keep_excluded=keep_excluded,
        progress=progress,
        min_group_size=min_group_size,
        warnings=warnings,
    )
    a.source = str(responses)
    a.source_sha256 = sha256_file(responses)
    write_report(a, out_dir, progress=progress)
    return a


PROG = "python -m analysis.report"


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Rank statistics of a ranking study (participant as the unit): HTML and Markdown report, "
        "results.json, tables and figures.",
    )
    p.add_argument("--responses", required=True, help="responses.csv exported by the app")
    p.add_argument("--design", help="study design TOML (model labels, criteria questions, orders)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="crossed (participants × pages) bootstrap resamples (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (default 0)")
    p.add_argument(
        "--min-group-size",
        type=int,
        default=MIN_GROUP_SIZE,
        help=f"no interval is shown for groups of fewer participants (default {MIN_GROUP_SIZE})",
    )
    p.add_argument("--keep-excluded", action="store_true", help="analyse participants marked excluded too")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bootstrap < 0:
        _error("--bootstrap must be >= 0")
        return 2
    if args.min_group_size < 1:
        _error("--min-group-size must be >= 1")
        return 2
    try:
        a = run(
            args.responses,
            args.out,
            design_path=args.design,
            n_boot=args.bootstrap,
            seed=args.seed,
            keep_excluded=args.keep_excluded,
            progress=not args.quiet,
            min_group_size=args.min_group_size,
        )
    except (ResponsesError, DesignError) as err:  # the input is invalid: a validation error
        _error(str(err))
        return 2
    except OSError as err:  # a file cannot be read or written: a runtime failure
        _error(str(err))
        return 1
    print(
        f"{a.results['n_participants']} participants analysed, {a.results['n_excluded']} excluded; "
        f"{n_judgments(a):,} rankings"
    )
    print("\n".join(summary_lines(a)))
    if a.warnings:
        print(f"{len(a.warnings)} warning(s): see the report")
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
