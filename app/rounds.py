"""``python -m app.rounds COMMAND``: manage study rounds (launch, list, pause, resume, close, reclaim, status).

Exit 0 on success, 2 for usage or validation errors (invalid design or manifest, unknown round, refused state change),
1 when the database cannot be reached; errors read ``python -m app.rounds: error: ...`` (see ``app.cli``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli import USAGE, error, run
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
                pilot=args.pilot,
            )
        except LaunchError as err:
            error(PROG, f"cannot launch round {args.round!r}: {len(err.problems)} problem(s)", *err.problems)
            return USAGE
    if result.created:
        kind = " as a pilot (promote it to open it for real participants)" if args.pilot else ""
        print(f"round {result.round_id}: launched{kind} with {result.n_pages} pages, {result.n_images} images")
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
        error(PROG, f"cannot {args.command} round {args.round!r}: {err}")
        return USAGE
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
            error(PROG, f"no round {args.round!r}")
            return USAGE
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


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every round: id, status, design, launch time and participants (one line each; ``--json`` for scripts)."""
    import json

    from sqlalchemy import func
    from sqlmodel import col, select

    from app.models import Participant, Round
    from app.timefmt import iso_z

    with session_scope(settings.database_url) as session:
        counts = dict(
            session.exec(select(Participant.round_id, func.count()).group_by(col(Participant.round_id))).all()
        )
        rounds = [
            {
                "round_id": r.id,
                "status": r.status,
                "design_id": r.design_id,
                "created_at": iso_z(r.created_at),
                "participants": counts.get(r.id, 0),
            }
            for r in session.exec(select(Round).order_by(col(Round.created_at), col(Round.id)))
        ]
    if args.json:
        print(json.dumps(rounds, indent=2))
    elif not rounds:
        print("no rounds yet: launch one with python -m app.rounds launch")
    else:
        for r in rounds:
            line = f"{r['round_id']:<24} {r['status']:<7} {r['design_id']:<24} {r['created_at']}"
            print(f"{line}  {r['participants']} participants")
    return 0


def cmd_reclaim(args: argparse.Namespace, settings: Settings) -> int:
    """Time out participants whose every page lease has run out, so their pages go back to the pool (audited)."""
    from app.crud import RoundNotFound, reclaim_expired_leases

    try:
        with session_scope(settings.database_url) as session:
            timed_out = reclaim_expired_leases(session, round_id=args.round, actor=args.actor, now=utcnow())
    except RoundNotFound as err:
        error(PROG, f"cannot reclaim in round {args.round!r}: {err}")
        return USAGE
    print(f"round {args.round}: {len(timed_out)} participant(s) timed out, their pages are back in the pool")
    return 0


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    """End a pilot: the round opens for real participants; the pilot's participants stay flagged (audited)."""
    from app.crud import RoundNotFound, RoundStateError, promote_round

    try:
        with session_scope(settings.database_url) as session:
            kept = promote_round(session, round_id=args.round, actor=args.actor, now=utcnow())
    except (RoundNotFound, RoundStateError) as err:
        error(PROG, f"cannot promote round {args.round!r}: {err}")
        return USAGE
    print(f"round {args.round}: promoted; {kept} pilot participant(s) kept, flagged pilot and left out of exports")
    return 0


PROG = "python -m app.rounds"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Manage study rounds.")
    sub = parser.add_subparsers(dest="command", required=True)
    launch = sub.add_parser("launch", help="validate a manifest against its design and open a round")
    launch.add_argument("--design", required=True, help="study design TOML")
    launch.add_argument("--manifest", required=True, help="manifest.jsonl written by the sampler")
    launch.add_argument("--round", required=True, help="round id, e.g. demo")
    launch.add_argument("--reuse", action="store_true", help="do nothing if the round exists with the same hashes")
    launch.add_argument(
        "--pilot", action="store_true", help="flag everyone who enters as pilot until the round is promoted"
    )
    launch.set_defaults(func=cmd_launch)
    promote = sub.add_parser("promote", help="end a pilot round: pilot participants stay flagged, new ones count")
    promote.add_argument("--round", required=True, help="round id")
    promote.add_argument("--actor", default="cli", help="name recorded in the audit log")
    promote.set_defaults(func=cmd_promote)
    listing = sub.add_parser("list", help="every round with its status, design and number of participants")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of one line per round")
    listing.set_defaults(func=cmd_list)
    reclaim = sub.add_parser("reclaim", help="time out participants whose leases all ran out; their pages return")
    reclaim.add_argument("--round", required=True, help="round id")
    reclaim.add_argument("--actor", default="cli", help="name recorded in the audit log")
    reclaim.set_defaults(func=cmd_reclaim)
    helps = {
        "pause": "close entry; people already taking part may finish",
        "resume": "open entry again",
        "close": "close for good: no new participants, no further submissions",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--round", required=True, help="round id")
        p.add_argument("--actor", default="cli", help="name recorded in the audit log")
        p.set_defaults(func=cmd_state)
    status = sub.add_parser("status", help="coverage, participants by status, flags")
    status.add_argument("--round", required=True, help="round id")
    status.add_argument("--json", action="store_true", help="print the same document as /api/rounds/{id}/status")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: int(args.func(args, Settings())))


if __name__ == "__main__":
    raise SystemExit(main())
