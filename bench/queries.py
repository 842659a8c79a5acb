"""SQL statements per participant request: a ranking-page GET and a ranking-page submission.

Run from a checkout's root: ``python bench/queries.py`` (SQLite) or ``python bench/queries.py --postgres`` (a
throwaway schema at ``TEST_DATABASE_URL``); ``-v`` prints the statements. Launches the demo design with placeholder
images in a temporary folder, walks one participant to their second page (so caches are warm), then counts the
statements each request sends (a SQLAlchemy ``before_cursor_execute`` listener).
"""

from __future__ import annotations

import re
import sys
import tempfile
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import event  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import create_tables, make_engine, new_session  # noqa: E402
from app.launch import launch_round  # noqa: E402
from app.main import create_app  # noqa: E402
from app.placeholder import write_placeholders  # noqa: E402
from study_designs.schema import load_design  # noqa: E402


def main() -> None:
    design_path = Path.cwd() / "study_designs" / "demo.toml"
    if "--postgres" in sys.argv:
        from tests.factories.postgres import pg_schema

        database = pg_schema("queries_")
    else:
        database = nullcontext(None)
    with tempfile.TemporaryDirectory() as tmp, database as pg_url:
        root = Path(tmp)
        settings = Settings(
            database_url=pg_url or f"sqlite:///{root / 'q.db'}",
            media_root=root / "media",
            secret_key="s",
            researcher_token="t",
        )
        manifest, _ = write_placeholders(load_design(design_path), root / "img", size=16)
        engine = make_engine(settings.database_url)
        create_tables(engine)
        with new_session(engine) as s:
            launch_round(
                s,
                design_path=design_path,
                manifest_path=manifest,
                round_id="demo",
                media_root=settings.media_root,
                now=datetime.now(UTC),
            )
        engine.dispose()
        app = create_app(settings, clock=lambda: datetime.now(UTC))
        statements: list[str] = []

        with TestClient(app) as client:

            @event.listens_for(app.state.engine, "before_cursor_execute")
            def _count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
                statements.append(statement)

            r = client.get("/s/demo", follow_redirects=True)
            code = str(r.url).split("/p/")[-1]
            client.post(f"/p/{code}/consent", data={"agree": "yes"})
            client.post(f"/p/{code}/profile", data={"culture": "korea"})
            client.post(f"/p/{code}/instructions", data={})
            counts: dict[str, list[int]] = {"GET": [], "POST": []}
            for _ in range(3):
                statements.clear()
                page = client.get(f"/p/{code}")
                counts["GET"].append(len(statements))
                if "-v" in sys.argv:
                    print(*statements, sep="\n---\n")
                position = int(re.search(r"/page/(\d+)", page.text).group(1))
                token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
                data = {"token": token, "position": str(position)}
                for name in set(re.findall(r'name="(rank-[a-z0-9_\-]+-\d+)"', page.text)):
                    crit, idx = name.removeprefix("rank-").rsplit("-", 1)
                    data[name] = str(int(idx) + 1)
                statements.clear()
                resp = client.post(f"/p/{code}/page/{position}", data=data, follow_redirects=False)
                assert resp.status_code == 303, resp.text
                counts["POST"].append(len(statements))
        backend = "PostgreSQL" if pg_url else "SQLite"
        print(f"request ({backend})          statements (pages 1, 2, 3)")
        print(f"GET  /p/{{code}} (ranking page)  {counts['GET']}")
        print(f"POST /p/{{code}}/page/{{n}}       {counts['POST']}")


if __name__ == "__main__":
    main()
