"""``python -m app``: serve the study (uvicorn, ``--workers N``), printing the links of the open rounds."""

from __future__ import annotations

import argparse
import os
import secrets

from sqlmodel import select

from app.config import Settings
from app.db import session_scope


def open_round_links(settings: Settings, base_url: str) -> list[str]:
    from app.models import Round

    with session_scope(settings.database_url) as session:
        rounds = session.exec(select(Round).where(Round.status == "open").order_by(Round.id)).all()
        return [f"participant link ({r.id}): {base_url}/s/{r.id}" for r in rounds]


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m app", description="Serve the ranking study.")
    parser.add_argument("--host", default=settings.host, help="address to listen on (default: $HOST or %(default)s)")
    parser.add_argument("--port", type=int, default=settings.port, help="port (default: $PORT or %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (query strings and participant codes redacted)"
    )
    args = parser.parse_args(argv)

    token_note = ""
    if not settings.researcher_token:
        os.environ["RESEARCHER_TOKEN"] = secrets.token_urlsafe(18)  # shared by every worker of this run
        token_note = (
            f" (researcher token for this run: {os.environ['RESEARCHER_TOKEN']}; set RESEARCHER_TOKEN to fix it)"
        )
    os.environ.setdefault("SECRET_KEY", settings.secret_key)
    base = f"http://{args.host}:{args.port}"
    links = open_round_links(settings, base)
    for line in links or ["no open rounds yet: launch one with python -m app.rounds launch"]:
        print(line, flush=True)
    print(f"researcher console: {base}/console{token_note}", flush=True)

    import uvicorn

    from app.logredact import uvicorn_log_config

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        log_config=uvicorn_log_config(),
        server_header=False,
        proxy_headers=True,  # believed only from FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1)
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
