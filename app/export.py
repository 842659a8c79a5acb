"""``python -m app.export --round ID --out responses.csv``: one row per (participant, page, criterion, image).

Columns and order are the DESIGN.md contract with ``analysis``. Criteria marked "too distressing to judge" are
not exported (they are kept in the database and counted in the round's status). ``attention_passed`` is set on
attention-check rows only; ``excluded`` marks participants whose failed checks reached the design's threshold
(or whom a researcher excluded).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from app.flow import exclusion_threshold, is_excluded
from app.models import Assignment, Participant, Ranking, Round, RoundImage
from app.snapshots import round_design
from app.timefmt import iso_z
from study_designs.responses import RESPONSE_COLUMNS

COLUMNS = list(RESPONSE_COLUMNS)  # the DESIGN responses.csv columns, in order


class ExportError(ValueError):
    pass


def _bool(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def _when(t: datetime | None) -> str:
    return iso_z(t)


def response_rows(session: Session, round_id: str, *, include_pilot: bool = False) -> Iterator[dict[str, object]]:
    """The rows of responses.csv; a researcher's trial runs (pilot participants) only with ``include_pilot``."""
    rnd = session.get(Round, round_id)
    if rnd is None:
        raise ExportError(f"no round {round_id!r}")
    design = round_design(rnd)
    threshold = exclusion_threshold(design.quality)
    images = {r.image_id: r for r in session.exec(select(RoundImage).where(RoundImage.round_id == round_id))}
    people = {
        p.id: p
        for p in session.exec(select(Participant).where(Participant.round_id == round_id))
        if include_pilot or not p.pilot
    }
    slots = session.exec(
        select(Assignment)
        .where(Assignment.round_id == round_id, col(Assignment.submitted_at).is_not(None))
        .order_by(col(Assignment.participant_id), col(Assignment.position))
    ).all()
    by_slot: dict[int, list[Ranking]] = {}
    ranking_q = (
        select(Ranking)
        .join(Assignment, col(Assignment.id) == col(Ranking.slot_id))
        .where(Assignment.round_id == round_id)
    )
    for r in session.exec(ranking_q):
        by_slot.setdefault(r.slot_id, []).append(r)
    for slot in slots:
        person = people.get(slot.participant_id)
        if person is None:  # a pilot participant
            continue
        excluded = is_excluded(person.status, person.failed_checks, threshold)
        crit_order = {c: i for i, c in enumerate(slot.criteria_order)}
        rankings = sorted(by_slot.get(slot.id or -1, []), key=lambda r: (crit_order[r.criterion], r.initial_position))
        for r in rankings:
            img = images[r.image_id]
            yield {
                "round_id": round_id,
                "participant_id": person.pseudonym,
                "participant_culture": person.culture or "",
                "page_id": slot.page_id,
                "page_culture": img.culture,
                "prompt_id": img.prompt_id,
                "seed": img.seed,
                "criterion": r.criterion,
                "model_id": img.model_id,
                "image_id": img.image_id,
                "rank": r.rank,
                "n_items": len(slot.image_order),
                "initial_position": r.initial_position,
                "moved": _bool(r.moved),
                "seconds_on_page": "" if slot.seconds_on_page is None else f"{slot.seconds_on_page:.3f}",
                "submitted_at": _when(slot.submitted_at),
                "is_attention_check": _bool(slot.kind == "attention"),
                "is_repeat": _bool(slot.kind == "repeat"),
                "attention_passed": _bool(slot.attention_passed) if slot.kind == "attention" else "",
                "excluded": _bool(excluded),
                "late": _bool(slot.late),
            }


def write_responses(session: Session, round_id: str, out: Path, *, include_pilot: bool = False) -> int:
    """Write ``responses.csv``; returns the number of data rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in response_rows(session, round_id, include_pilot=include_pilot):
            writer.writerow(row)
            n += 1
    return n


PROG = "python -m app.export"
FILE_KINDS = ("responses", "participants", "approvals")


def main(argv: list[str] | None = None) -> int:
    from app.cli import USAGE, error, run

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a round's responses.csv (or participants.csv, approvals.csv), with codebook.md and "
        "codebook.json written beside it.",
    )
    parser.add_argument("--round", required=True, help="round id")
    parser.add_argument("--out", required=True, help="CSV file to write; the codebook goes in the same folder")
    parser.add_argument(
        "--kind",
        choices=FILE_KINDS,
        default="responses",
        help="responses (one row per ranked image), participants (one row per participant), or approvals (raw "
        "platform ids of those who finished, for approving on the platform; audited)",
    )
    parser.add_argument(
        "--include-pilot",
        action="store_true",
        help="responses: also the rows of researchers' trial runs (left out by default)",
    )
    parser.add_argument("--actor", default="cli", help="name recorded in the audit log for approvals exports")
    args = parser.parse_args(argv)

    def body() -> int:
        from app.config import Settings
        from app.db import session_scope

        out = Path(args.out)
        with session_scope(Settings().database_url) as session:
            if args.kind == "responses":
                n = write_responses(session, args.round, out, include_pilot=args.include_pilot)
            else:
                n = write_table(session, args.round, out, kind=args.kind, actor=args.actor)
        from app.codebook import write_codebook

        write_codebook(out.parent)
        print(f"wrote {n} rows to {out} (codebook.md and codebook.json beside it)")
        return 0

    try:
        return run(PROG, body)
    except ExportError as err:
        error(PROG, str(err))
        return USAGE


def write_table(session: Session, round_id: str, out: Path, *, kind: str, actor: str) -> int:
    """participants.csv or approvals.csv, as the console downloads them (approvals are audited)."""
    from app import researcher_ops
    from app.clock import utcnow

    rnd = session.get(Round, round_id)
    if rnd is None:
        raise ExportError(f"no round {round_id!r}")
    now = utcnow()
    text = researcher_ops.export_text(session, rnd, kind, now=now)  # type: ignore[arg-type]
    if kind == "approvals":
        researcher_ops.audit_export(session, rnd, kind, actor=actor, now=now)  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return max(0, text.count("\n") - 1)


if __name__ == "__main__":
    raise SystemExit(main())
