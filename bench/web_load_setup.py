"""Set up a round for ``bench/web_load.sh``: launch it, enrol participants, write wrk request lists.

Usage: python bench/web_load_setup.py --db URL --media DIR --out DIR [--participants N]
Writes DIR/gets.txt (one ranking-page path per line) and DIR/posts.txt (participant index TAB path TAB form body per
line, ordered so each participant's pages come in order and far apart; wrk threads split them by participant).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from sqlmodel import select
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import crud  # noqa: E402
from app.db import create_tables, make_engine, new_session  # noqa: E402
from app.identity import PlatformEntry  # noqa: E402
from app.launch import launch_round  # noqa: E402
from app.models import Assignment  # noqa: E402
from app.placeholder import write_placeholders  # noqa: E402
from study_designs.schema import load_design  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "study_designs" / "demo.toml"


def bench_design(out: Path) -> Path:
    """Demo design with 40 pages per culture, 20 pages per participant, a high target and no checks."""
    toml = DEMO.read_text()
    toml = re.sub(
        r"seeds = \[(\d)1, \d2\]",
        lambda m: f"seeds = [{', '.join(str(int(m.group(1)) * 100 + i) for i in range(20))}]",
        toml,
    )
    toml = toml.replace("pages_per_participant = 4", "pages_per_participant = 20")
    toml = toml.replace("target_rankings_per_page = 2", "target_rankings_per_page = 100000")
    toml = toml.replace("attention_checks = 1", "attention_checks = 0")
    path = out / "bench.toml"
    path.write_text(toml)
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--media", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--participants", type=int, default=600)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    design_path = bench_design(out)
    design = load_design(design_path)
    manifest, _ = write_placeholders(design, out / "img", size=256)
    engine = make_engine(args.db)
    create_tables(engine)
    now = datetime.now(UTC)
    cultures = [c.id for c in design.cultures]
    with new_session(engine) as s:
        launch_round(
            s, design_path=design_path, manifest_path=manifest, round_id="bench", media_root=Path(args.media), now=now
        )
        codes = []
        for i in tqdm(range(args.participants), desc="enrolling", unit="participant"):
            entry = PlatformEntry("prolific", f"bench{i:05d}", {})
            p = crud.enter(s, round_id="bench", entry=entry, secret="bench", now=now)
            crud.give_consent(s, code=p.code, agreed=True, now=now)
            crud.choose_culture(s, code=p.code, culture=cultures[i % len(cultures)], now=now)
            crud.finish_instructions(s, code=p.code, now=now)
            codes.append(p.code)
        slots = s.exec(select(Assignment).order_by(Assignment.position, Assignment.participant_id)).all()
        code_of = {}
        for n, code in enumerate(codes):
            pid = s.exec(select(crud.Participant.id).where(crud.Participant.code == code)).one()
            code_of[pid] = (n, code)
    engine.dispose()
    (out / "gets.txt").write_text("".join(f"/p/{c}\n" for c in codes))
    lines = []
    for slot in slots:  # position-major order: a participant's next page comes a whole round of participants later
        form = {"token": slot.token}
        n = len(slot.image_order)
        for k, crit in enumerate(slot.criteria_order):
            for i in range(n):
                form[f"rank-{crit}-{i}"] = str((i + k + slot.position) % n + 1)
        n, code = code_of[slot.participant_id]
        lines.append(f"{n}\t/p/{code}/page/{slot.position}\t{urlencode(form)}\n")
    (out / "posts.txt").write_text("".join(lines))
    print(f"{len(codes)} participants, {len(lines)} page submissions ready in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
