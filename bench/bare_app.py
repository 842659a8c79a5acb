"""The baseline of ``bench/web_load.sh``: a bare FastAPI endpoint that inserts one row (same engine settings)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from sqlmodel import Field, SQLModel
from starlette.concurrency import run_in_threadpool

from app.db import make_engine, new_session, write


class BareHit(SQLModel, table=True):
    __tablename__ = "bare_hit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    body: str


def create_app() -> FastAPI:
    engine = make_engine(os.environ["DATABASE_URL"])
    SQLModel.metadata.create_all(engine, tables=[BareHit.__table__])
    app = FastAPI()

    @app.post("/hit")
    async def hit(request: Request) -> PlainTextResponse:
        body = (await request.body()).decode()[:200]

        def insert() -> None:
            with new_session(engine) as s, write(s):
                s.add(BareHit(at=datetime.now(UTC), body=body))

        await run_in_threadpool(insert)
        return PlainTextResponse("ok")

    return app
