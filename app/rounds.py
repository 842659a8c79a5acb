"""``python -m app.rounds COMMAND``: manage study rounds (launch, pause, resume, close, status)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.clock import utcnow
from app.config import Settings
from app.db import session_scope


def cmd_launch(args: argparse.Namespace, settings: Settings) -> int:
    from app.launch import LaunchError, launch_round

    with session_scope(settings.database_url) as session:
        try:
            result = launch_round(
                session,
                design_path=Path(args.design),
                manifest_path=Path(args.manifest),
                round_id=args.round,
                media_root=settings.media_root,
                now=utcnow(),
                reuse=args.reuse,
                max_pixels=settings.image_max_pixels,
            )
        except LaunchError as err:
            print(f"cannot launch round {args.round!r}: {len(err.problems)} problem(s)", file=sys.stderr)
            for p in err.problems:
                print(f"  {p}", file=sys.stderr)
            return 1
    if result.created:
        print(f"round {result.round_id}: launched with {result.n_pages} pages, {result.n_images} images")
    else:
        print(f"round {result.round_id}: already launched with the same design and manifest; nothing to do")
    return 0


def cmd_state(args: argparse.Namespace, settings: Settings) -> int:
    """pause | resume | close: the same operation as the console and the API, audited as ``cli``."""
    from app.crud import RoundNotFound, RoundStateError, change_round_status

    try:
        with session_scope(settings.database_url) as session:
            rnd = change_round_status(session, round_id=args.round, action=args.command, actor=args.actor, now=utcnow())
    except (RoundNotFound, RoundStateError) as err:
        print(f"cannot {args.command} round {args.round!r}: {err}", file=sys.stderr)
        return 1
    print(f"round {rnd.id}: {rnd.status}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """The live status the console and ``/api/rounds/{id}/status`` show (``--json`` prints the API's document)."""
    from app import console_data
    from app.models import Round
    from app.routes.api import status_out

    with session_scope(settings.database_url) as session:
        rnd = session.get(Round, args.round)
        if rnd is None:
            print(f"no round {args.round!r}", file=sys.stderr)
            return 1
        now = utcnow()
        status = status_out(rnd, console_data.monitor_view(console_data.load_round_data(session, rnd), now), now)
    if args.json:
        print(status.model_dump_json(indent=2))
        return 0
    people = ", ".join(f"{k} {v}" for k, v in status.participants_by_status.items() if v) or "none"
    print(f"round {status.round_id}: {status.status}")
    print(f"  participants: {status.participants_total} ({people})")
    print(
        f"  pages submitted: {status.pages_submitted} (attention {status.attention_pages_submitted}, "
        f"repeat {status.repeat_pages_submitted}); response rows: {status.response_rows}; "
        f"live leases: {status.live_leases}"
    )
    for c in status.coverage:
        print(f"  {c.culture:<12} {c.done:>5} / {c.target:<5} done  {c.excluded:>4} excluded  {c.leased:>4} leased")
    flagged = ", ".join(f"{k} {v}" for k, v in status.flagged.items() if v) or "none"
    print(f"  flagged participants: {flagged}")
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
    helps = {
        "pause": "close entry; people already taking part may finish",
        "resume": "open entry again",
        "close": "close for good: no new participants, no further submissions",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--round", required=True)
        p.add_argument("--actor", default="cli", help="name recorded in the audit log")
        p.set_defaults(func=cmd_state)
    status = sub.add_parser("status", help="coverage, participants by status, flags")
    status.add_argument("--round", required=True)
    status.add_argument("--json", action="store_true", help="print the same document as /api/rounds/{id}/status")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args, Settings()))


if __name__ == "__main__":
    raise SystemExit(main())
