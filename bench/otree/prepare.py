"""Sessions for the oTree side of ``bench/web_load.py``; run by the oTree venv's Python in the generated project.

Usage (in var/bench/otree-project): python prepare.py --out DIR --participants N --first K [--gets G]

Creates one session of the ``bench`` config with G + N participants, opens each participant's start link the way
``/InitializeParticipant/<code>`` does (so they stand on round 1 of the ranking page), writes DIR/gets.txt (the page
path of the first G, who only get GETs) and appends to DIR/posts.txt ``index TAB path TAB form body`` for every page of
the other N (numbered K, K+1, ...), round-major, with the ranks of ``expected_rank`` (the bench checks them).
"""

import argparse
import time
from pathlib import Path
from urllib.parse import urlencode

CRITERIA = ["description", "cultural_relevance", "stereotypes", "offensiveness"]
IMAGES = 4
ROUNDS = 20


def expected_rank(criterion_index, image, round_number):
    return (image - 1 + criterion_index + round_number) % IMAGES + 1


def form(round_number):
    return urlencode(
        {f"{c}_{i}": expected_rank(k, i, round_number) for k, c in enumerate(CRITERIA) for i in range(1, IMAGES + 1)}
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--participants", type=int, default=0)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--gets", type=int, default=0)
    args = ap.parse_args()
    t0 = time.monotonic()
    from otree.main import setup

    setup()
    from otree.database import session_scope
    from otree.session import create_session

    with session_scope():
        session = create_session("bench", num_participants=args.gets + args.participants)
        participants = sorted(session.get_participants(), key=lambda p: p.id_in_session)
        for p in participants:
            p.initialize(None)
        codes = [p.code for p in participants]
        session_code = session.code
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.gets:
        (out / "gets.txt").write_text("".join(f"/p/{c}/ranking/Ranking/1\n" for c in codes[: args.gets]))
    posters = codes[args.gets :]
    with (out / "posts.txt").open("a") as f:
        for r in range(1, ROUNDS + 1):
            body = form(r)
            for n, code in enumerate(posters, start=args.first):
                f.write(f"{n}\t/p/{code}/ranking/Ranking/{r}\t{body}\n")
    took = time.monotonic() - t0
    print(
        f"session {session_code}: {len(posters)} participants, {len(posters) * ROUNDS} page submissions in {took:.1f} s"
    )


if __name__ == "__main__":
    main()
