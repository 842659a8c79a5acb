"""``python -m app.rounds COMMAND``: manage study rounds from the command line (``launch`` …)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.clock import utcnow
from app.config import Settings
from app.db import create_tables, make_engine, new_session


def cmd_launch(args: argparse.Namespace, settings: Settings) -> int:
    from app.launch import LaunchError, launch_round

    engine = make_engine(settings.database_url)
    create_tables(engine)
    with new_session(engine) as session:
        try:
            result = launch_round(
                session,
                design_path=Path(args.design),
                manifest_path=Path(args.manifest),
                round_id=args.round,
                media_root=settings.media_root,
                now=utcnow(),
                reuse=args.reuse,
            )
        except LaunchError as err:
            print(f"cannot launch round {args.round!r}: {len(err.problems)} problem(s)", file=sys.stderr)
            for p in err.problems:
                print(f"  {p}", file=sys.stderr)
            return 1
    engine.dispose()
    if result.created:
        print(f"round {result.round_id}: launched with {result.n_pages} pages, {result.n_images} images")
    else:
        print(f"round {result.round_id}: already launched with the same design and manifest; nothing to do")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.rounds", description="Manage study rounds.")
    sub = parser.add_subparsers(dest="command", required=True)
    launch = sub.add_parser("launch", help="validate a manifest against its design and open a round")
    launch.add_argument("--design", required=True, help="study design TOML")
    launch.add_argument("--manifest", required=True, help="manifest.jsonl written by the sampler")
    launch.add_argument("--round", required=True, help="round id, e.g. demo")
    launch.add_argument("--reuse", action="store_true", help="do nothing if the round exists with the same hashes")
    launch.set_defaults(func=cmd_launch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args, Settings()))


if __name__ == "__main__":
    raise SystemExit(main())
