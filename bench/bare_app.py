"""The ceiling of ``bench/web_load.py``: bare FastAPI with the project's engine settings (``app.db``).

``GET /page`` renders a Jinja2 ranking page of the same shape and size as the project's (four images, four criteria,
a rank select per image and criterion) from constants, touching no database; ``POST /hit`` reads the form and inserts
one row in one write transaction (``app.db.write``), answering 200. ``DATABASE_URL`` names the database.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import Field, SQLModel
from starlette.concurrency import run_in_threadpool

from app.db import make_engine, new_session, write

CRITERIA = [
    {"id": cid, "question": question, "best": best, "worst": worst}
    for cid, question, best, worst in [
        ("description", "How well does each image match the description?", "Best match", "Worst match"),
        (
            "cultural_relevance",
            "How well does each image represent Korean culture?",
            "Most representative",
            "Least representative",
        ),
        (
            "stereotypes",
            "From your own knowledge of Korean culture, how stereotypical is each image?",
            "Least stereotypical",
            "Most stereotypical",
        ),
        ("offensiveness", "How offensive do you personally find each image?", "Least offensive", "Most offensive"),
    ]
]


class BareHit(SQLModel, table=True):
    __tablename__ = "bare_hit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    body: str


def create_app() -> FastAPI:
    engine = make_engine(os.environ["DATABASE_URL"])
    SQLModel.metadata.create_all(engine, tables=[BareHit.__table__])  # type: ignore[list-item]
    templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "bare_templates"))
    app = FastAPI(openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/page", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        token = secrets.token_urlsafe(18)
        context = {
            "title": "Demo: how do four image generators depict two cultures?",
            "prompt": "A table of food in Korea",
            "position": 0,
            "pages": 20,
            "token": token,
            "criteria": CRITERIA,
            "images": [f"/i/{token}.{secrets.token_urlsafe(16)}" for _ in range(4)],
        }
        return templates.TemplateResponse(request, "page.html", context, headers={"Cache-Control": "no-store"})

    @app.post("/hit")
    async def hit(request: Request) -> PlainTextResponse:
        form = await request.form()
        body = "&".join(f"{k}={v}" for k, v in form.multi_items())[:2000]

        def insert() -> None:
            with new_session(engine) as s, write(s):
                s.add(BareHit(at=datetime.now(UTC), body=body))

        await run_in_threadpool(insert)
        return PlainTextResponse("ok")

    return app
