"""``python -m study_designs check FILE [FILE ...]``: validate designs and print a summary (exit 2 if one is
invalid)."""

from __future__ import annotations

import argparse
import sys

from study_designs.schema import DesignError, load_design


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study_designs")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate design files and print pages and participants needed")
    check.add_argument("files", nargs="+", help="design TOML files to check")
    args = parser.parse_args(argv)
    status = 0
    for f in args.files:
        try:
            design = load_design(f)
        except DesignError as err:
            print(f"python -m study_designs: error: {err}", file=sys.stderr)
            status = 2  # a validation error (the convention of every command, see the README)
            continue
        print(design.summary())
    return status


if __name__ == "__main__":
    raise SystemExit(main())
