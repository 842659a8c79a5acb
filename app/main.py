"""``create_app()``: the FastAPI application factory (engine, templates and routes are built here, not at import)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import i18n
from app.clock import Clock, utcnow
from app.config import Settings
from app.db import Database, create_tables, default_threads, make_engine
from app.errors import install_error_handlers
from app.loginguard import LoginGuard
from app.middleware import BodyLimit, SecurityHeaders
from app.ratelimit import limiter_from_settings

PACKAGE_DIR = Path(__file__).resolve().parent
OVERFLOW = 6  # connections opened beyond the pool only under bursts of console or API requests


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    threads = settings.db_threads or default_threads(settings.database_url)
    pool_size = settings.db_pool_size or 2 * threads + 4  # a kept reader and a session's connection per thread
    engine = make_engine(settings.database_url, pool_size=pool_size, max_overflow=OVERFLOW)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        create_tables(engine)
        # the other sync routes (console, API, static files) share anyio's default pool: keep it within the
        # connections, so a burst queues for a thread instead of holding threads that wait for a connection
        to_thread.current_default_thread_limiter().total_tokens = pool_size + OVERFLOW
        # what start-up loaded (modules, templates, catalogs) lives as long as the process: keep it out of the
        # collector's scans, so garbage collection during requests only walks what requests made
        gc.collect()
        gc.freeze()
        yield
        app.state.db.close()
        engine.dispose()

    app = FastAPI(title="scoft-study", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.db = Database(engine, threads)
    app.state.clock = clock or utcnow
    app.state.enrol_limiter = limiter_from_settings(settings)
    app.state.login_guard = LoginGuard(
        free_failures=settings.login_free_failures, max_delay_s=settings.login_max_delay_s
    )
    app.state.templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
    app.state.templates.env.globals.update(i18n.english())
    app.state.templates.env.auto_reload = False  # templates ship with the code: no file check per render
    app.mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static")

    from app.routes import api, login, participant, pilot, preview, researcher

    app.include_router(participant.router)
    app.include_router(login.router)
    app.include_router(researcher.router)
    app.include_router(pilot.router)
    app.include_router(preview.router)
    app.include_router(api.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, path_limits=researcher.UPLOAD_LIMITS)
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    return app
