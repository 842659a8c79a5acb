"""Participants for ``bench/web_load.py``: launch a round, enrol participants through ``app.crud``, write wrk lists.

Usage: python bench/web_load_setup.py --db URL --media DIR --out DIR --round ID [--gets G] --participants N --first K

Writes the bench design to DIR/bench.toml (the demo's cultures and criteria with four models, so four images a page as
in the paper; 20 pages per participant; no attention checks; a target no bench reaches; long leases) and its
placeholder images, launches round ID (each batch is its own round, so enrolment, which counts a round's coverage,
stays linear), then enrols G participants whose ranking page only gets GETs (DIR/gets.txt, one path a line) and N
participants numbered K, K+1, ... for submissions: straight through ``app.crud`` in one session (entry, consent,
culture, instructions: the steps a browser takes), never over HTTP. Their pages are appended to DIR/posts.txt as
``index TAB path TAB form body``, position-major (a participant's next page comes a whole batch of participants later;
wrk threads split the list by participant index, so one thread sends a participant's pages, in order). The ranks
follow ``expected_rank``, so ``check_stored`` can compare every stored ranking with what was sent.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import Engine, func
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import crud  # noqa: E402
from app.db import create_tables, make_engine, new_session  # noqa: E402
from app.identity import PlatformEntry  # noqa: E402
from app.launch import launch_round  # noqa: E402
from app.models import Assignment, Participant, Ranking  # noqa: E402
from app.placeholder import write_placeholders  # noqa: E402
from study_designs.schema import load_design  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "study_designs" / "demo.toml"
MP_MODEL = """[[models]]
id = "scoft_mp"
label = "SCoFT+MP (tiny)"
base = "${SCOFT_DEMO_MODELS:-var/models}/tiny/sd"
lora = "${SCOFT_DEMO_MODELS:-var/models}/runs/{culture}/mp"
variant = "mp"

[[models]]
id = "scoft_mpc\""""


def bench_design(out: Path) -> Path:
    """The demo design with four models (four images a page, as in the paper), 40 pages per culture, 20 pages per
    participant, a target no bench reaches, long leases and no attention checks."""
    toml = DEMO.read_text()
    toml = re.sub(
        r"seeds = \[(\d)1, \d2\]",
        lambda m: f"seeds = [{', '.join(str(int(m.group(1)) * 100 + i) for i in range(20))}]",
        toml,
    )
    toml = toml.replace('[[models]]\nid = "scoft_mpc"', MP_MODEL)
    for old, new in [
        ("pages_per_participant = 4", "pages_per_participant = 20"),
        ("target_rankings_per_page = 2", "target_rankings_per_page = 1000000"),
        ("attention_checks = 1", "attention_checks = 0"),
        ("lease_minutes = 30", "lease_minutes = 600"),
    ]:
        if old not in toml:
            raise SystemExit(f"web_load_setup: the demo design no longer has {old!r}; update bench_design")
        toml = toml.replace(old, new)
    path = out / "bench.toml"
    path.write_text(toml)
    return path


def expected_rank(criterion_index: int, initial_position: int, position: int, n_images: int) -> int:
    """The rank the bench submits for the image shown at ``initial_position`` under the page's k-th criterion."""
    return (initial_position + criterion_index + position) % n_images + 1


def form_of(slot: Assignment) -> dict[str, str]:
    form = {"token": slot.token}
    n = len(slot.image_order)
    for k, crit in enumerate(slot.criteria_order):
        for i in range(n):
            form[f"rank-{crit}-{i}"] = str(expected_rank(k, i, slot.position, n))
    return form


def enrol(
    engine: Engine, round_id: str, count: int, first: int, cultures: list[str], now: datetime
) -> list[tuple[int, int, str]]:
    """Enrol ``count`` participants up to their first ranking page: [(index, participant id, code)]."""
    out = []
    with new_session(engine) as s:
        for n in range(first, first + count):
            entry = PlatformEntry("prolific", f"{round_id}-{n:07d}", {})
            p = crud.enter(s, round_id=round_id, entry=entry, secret="bench", now=now)
            crud.give_consent(s, code=p.code, agreed=True, now=now)
            crud.choose_culture(s, code=p.code, culture=cultures[n % len(cultures)], now=now)
            crud.finish_instructions(s, code=p.code, now=now)
            assert p.id is not None
            out.append((n, p.id, p.code))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--media", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--round", required=True, help="launch this round and enrol its participants")
    ap.add_argument("--gets", type=int, default=0, help="participants whose page only gets GETs (DIR/gets.txt)")
    ap.add_argument("--participants", type=int, default=0, help="participants to enrol for submissions")
    ap.add_argument("--first", type=int, default=0, help="index of the first of them")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    engine = make_engine(args.db)
    design_path = bench_design(out)
    manifest, _ = write_placeholders(load_design(design_path), out / "img", size=256)
    create_tables(engine)
    with new_session(engine) as s:
        launch_round(
            s,
            design_path=design_path,
            manifest_path=manifest,
            round_id=args.round,
            media_root=Path(args.media),
            now=datetime.now(UTC),
        )
    cultures = [c.id for c in load_design(design_path).cultures]
    now = datetime.now(UTC)
    if args.gets:
        getters = enrol(engine, args.round, args.gets, -args.gets, cultures, now)
        (out / "gets.txt").write_text("".join(f"/p/{code}\n" for _, _, code in getters))
    enrolled = enrol(engine, args.round, args.participants, args.first, cultures, now)
    lines = []
    if enrolled:
        index_of = {pid: (n, code) for n, pid, code in enrolled}
        with new_session(engine) as s:
            slots = s.exec(
                select(Assignment)
                .where(Assignment.round_id == args.round, col(Assignment.participant_id).in_(list(index_of)))
                .order_by(Assignment.position, Assignment.participant_id)
            ).all()
        for slot in slots:  # position-major: a participant's next page comes a whole batch later
            n, code = index_of[slot.participant_id]
            lines.append(f"{n}\t/p/{code}/page/{slot.position}\t{urlencode(form_of(slot))}\n")
    with (out / "posts.txt").open("a") as f:
        f.write("".join(lines))
    engine.dispose()
    took = time.monotonic() - t0
    print(f"round {args.round}: {len(enrolled)} participants, {len(lines)} page submissions in {took:.1f} s")
    return 0


def check_stored(engine: Engine) -> tuple[int, int]:
    """(submitted pages, pages whose stored rankings differ from what the bench sent): every stored row checked."""
    with new_session(engine) as s:
        slots = {a.id: a for a in s.exec(select(Assignment).where(col(Assignment.submitted_at).is_not(None)))}
        got: dict[int, dict[tuple[str, int], int]] = {sid: {} for sid in slots}
        rows = s.exec(select(Ranking.slot_id, Ranking.criterion, Ranking.initial_position, Ranking.rank))
        for sid, crit, pos, rank in rows:
            if sid in got:
                got[sid][(crit, pos)] = rank
    bad = 0
    for sid, slot in slots.items():
        n = len(slot.image_order)
        want = {
            (crit, i): expected_rank(k, i, slot.position, n)
            for k, crit in enumerate(slot.criteria_order)
            for i in range(n)
        }
        bad += got[sid] != want
    return len(slots), bad


def count_stored(engine: Engine) -> int:
    with new_session(engine) as s:
        return s.exec(
            select(func.count()).select_from(Assignment).where(col(Assignment.submitted_at).is_not(None))
        ).one()


def stored_pages(engine: Engine) -> list[tuple[str, int]]:
    """(participant code, position) of every stored page."""
    with new_session(engine) as s:
        return list(
            s.exec(
                select(Participant.code, Assignment.position)
                .join(Participant, col(Participant.id) == Assignment.participant_id)
                .where(col(Assignment.submitted_at).is_not(None))
            ).all()
        )


if __name__ == "__main__":
    raise SystemExit(main())
