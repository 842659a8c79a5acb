"""Crash campaigns: participants walk the study while the server is ``kill -9``-ed at random moments, then the
export is compared with every answer the server acknowledged."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from sqlalchemy import create_engine, text

from tests.reliability.formclient import Participant, walk_until_gone
from tests.reliability.harness import Server, StudyEnv


@dataclass
class CampaignResult:
    crashes: int = 0
    participants: int = 0
    completed: int = 0
    acked_pages: int = 0
    acked_rows: int = 0
    export_rows: int = 0
    lost: int = 0  # acknowledged judgments missing from the export
    duplicated: int = 0  # judgments present more than once
    wrong: int = 0  # acknowledged judgments exported with another rank
    unacked_stored: int = 0  # pages in the export that no participant was told were saved
    half_stored: int = 0  # slots whose ranking rows are not all-or-nothing
    replays: int = 0  # in-flight pages found stored after a restart and confirmed by an idempotent retry
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"crashes survived {self.crashes}, participants {self.participants} (completed {self.completed}), "
            f"acknowledged pages {self.acked_pages} ({self.acked_rows} judgments), export rows {self.export_rows}, "
            f"lost {self.lost}, duplicated {self.duplicated}, wrong {self.wrong}, "
            f"stored-but-unacknowledged {self.unacked_stored}, half-stored {self.half_stored}, "
            f"replays after restart {self.replays}, {self.seconds:.1f} s"
        )


def _acked(people: list[Participant]) -> int:
    return sum(len(p.acked) for p in people)


async def drive(
    server: Server,
    people: list[Participant],
    *,
    kill_after: float | None,
    concurrency: int,
    kill_after_pages: int | None = None,
) -> None:
    """Walk everyone who has not finished; SIGKILL the server ``kill_after`` seconds in, or as soon as
    ``kill_after_pages`` more pages have been acknowledged (so kills land mid-traffic on a slow machine too)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:

        async def one(p: Participant) -> None:
            async with sem:
                await walk_until_gone(p, client)

        tasks = [asyncio.create_task(one(p)) for p in people if not (p.done or p.ineligible)]
        if kill_after is not None:
            start, t0 = _acked(people), time.perf_counter()
            while time.perf_counter() - t0 < kill_after and not all(t.done() for t in tasks):
                if kill_after_pages is not None and _acked(people) - start >= kill_after_pages:
                    break
                await asyncio.sleep(0.02)
            await asyncio.to_thread(server.kill9)
        await asyncio.gather(*tasks)


def stored_slots(database_url: str) -> dict[tuple[str, int], dict]:
    """(participant code, position) -> page id, kind, pseudonym, submitted, ranking rows and expected rows."""
    engine = create_engine(database_url)
    q = text(
        """
        SELECT p.code, p.pseudonym, a.position, a.page_id, a.kind, a.submitted_at, a.criteria_order, a.image_order,
               (SELECT count(*) FROM ranking r WHERE r.slot_id = a.id) AS n_rankings,
               (SELECT count(*) FROM rankingskip k WHERE k.slot_id = a.id) AS n_skips
        FROM assignment a JOIN participant p ON p.id = a.participant_id
        """
    )
    import json

    out = {}
    try:
        with engine.connect() as conn:
            for row in conn.execute(q).mappings():
                crit = row["criteria_order"]
                imgs = row["image_order"]
                crit = json.loads(crit) if isinstance(crit, str) else crit
                imgs = json.loads(imgs) if isinstance(imgs, str) else imgs
                out[(row["code"], row["position"])] = {
                    "pseudonym": row["pseudonym"],
                    "page_id": row["page_id"],
                    "kind": row["kind"],
                    "submitted": row["submitted_at"] is not None,
                    "n_rankings": row["n_rankings"],
                    "expected_rankings": (len(crit) - row["n_skips"]) * len(imgs),
                }
    finally:
        engine.dispose()
    return out


def compare(
    rows: list[dict[str, str]], people: list[Participant], slots: dict[tuple[str, int], dict]
) -> CampaignResult:
    """Every acknowledged judgment exported exactly once with its rank; nothing else exported; no half pages."""
    res = CampaignResult(participants=len(people), export_rows=len(rows))
    exported = Counter()
    ranks: dict[tuple, str] = {}
    for r in rows:
        key = (
            r["participant_id"],
            r["page_id"],
            r["is_repeat"] == "true",
            r["is_attention_check"] == "true",
            r["criterion"],
            int(r["initial_position"]),
        )
        exported[key] += 1
        ranks[key] = r["rank"]
    res.duplicated = sum(n - 1 for n in exported.values() if n > 1)
    expected: set[tuple] = set()
    for p in people:
        res.completed += p.done
        res.replays += p.replays
        res.problems += p.problems
        for pos, data in p.acked.items():
            slot = slots.get((p.code or "", pos))
            if slot is None:
                res.problems.append(f"{p.pid}: acknowledged page {pos} has no slot in the database")
                res.lost += 1
                continue
            res.acked_pages += 1
            if not slot["submitted"]:
                res.problems.append(f"{p.pid}: acknowledged page {pos} is not marked submitted")
            for name, value in data.items():
                if not name.startswith("rank-"):
                    continue
                crit, idx = name.removeprefix("rank-").rsplit("-", 1)
                key = (
                    slot["pseudonym"],
                    slot["page_id"],
                    slot["kind"] == "repeat",
                    slot["kind"] == "attention",
                    crit,
                    int(idx),
                )
                expected.add(key)
                res.acked_rows += 1
                if exported[key] == 0:
                    res.lost += 1
                elif ranks[key] != value:
                    res.wrong += 1
    res.unacked_stored = len({k[:4] for k in exported} - {k[:4] for k in expected})
    for (code, pos), slot in slots.items():
        n, want = slot["n_rankings"], slot["expected_rankings"]
        if (slot["submitted"] and n != want) or (not slot["submitted"] and n != 0):
            res.half_stored += 1
            res.problems.append(f"slot {code[:6]}…/{pos}: {n} ranking rows, submitted={slot['submitted']}")
    return res


def run_campaign(
    study: StudyEnv,
    server: Server,
    round_id: str,
    people: list[Participant],
    *,
    crashes: int,
    kill_window: tuple[float, float],
    kill_pages: tuple[int, int] | None = None,
    seed: int = 0,
    concurrency: int = 64,
    log=print,
) -> CampaignResult:
    """Start the server, crash it ``crashes`` times at random moments while participants walk, let everyone finish,
    then export (``python -m app.export``) and compare with what was acknowledged."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    server.start()
    try:
        for k in range(crashes):
            delay = rng.uniform(*kill_window)
            pages = rng.randint(*kill_pages) if kill_pages else None
            t0, before = time.perf_counter(), _acked(people)
            asyncio.run(drive(server, people, kill_after=delay, concurrency=concurrency, kill_after_pages=pages))
            log(
                f"crash {k + 1}/{crashes}: kill -9 after {time.perf_counter() - t0:.2f} s and "
                f"{_acked(people) - before} new pages; {_acked(people)} pages acknowledged so far"
            )
            server.start()
        asyncio.run(drive(server, people, kill_after=None, concurrency=concurrency))
    finally:
        server.stop()
    rows = study.export(round_id)
    res = compare(rows, people, stored_slots(study.database_url))
    res.crashes = server.kills
    res.seconds = time.perf_counter() - t0
    return res
