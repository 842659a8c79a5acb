"""Runtime settings from the environment (pydantic-settings); built on demand, never at import."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """``DATABASE_URL``, ``MEDIA_ROOT``, ``SECRET_KEY``, ``RESEARCHER_TOKEN``, ``HOST``, ``PORT``, ``COOKIE_SECURE``,
    ``FORWARDED_ALLOW_IPS`` and the limits below."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = "sqlite:///var/study.db"
    media_root: Path = Path("var/media")
    secret_key: str = Field(default="", description="Keys pseudonyms and cookies; read from var/secret_key if unset.")
    secret_key_file: Path = Path("var/secret_key")
    researcher_token: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 64_000
    db_threads: int = Field(
        default=0,
        ge=0,
        description="DB_THREADS: participant requests using the database at once per process (0: 1 on SQLite, 4 on "
        "PostgreSQL); each takes one thread and one pooled connection.",
    )
    db_pool_size: int = Field(
        default=0,
        ge=0,
        description="DB_POOL_SIZE: connections kept open per process (0: 2 x DB_THREADS + 4: a page view's kept "
        "reader and a transaction's connection per thread, and 4 for the console).",
    )
    enrol_rate_per_client: int = Field(
        default=10, ge=0, description="Enrolments a minute from one client address in one round (0: no limit)."
    )
    enrol_burst_per_client: int = Field(default=10, ge=1, description="Enrolments one address may make at once.")
    enrol_rate_per_round: int = Field(
        default=120, ge=0, description="Enrolments a minute in one round from all addresses together (0: no limit)."
    )
    enrol_burst_per_round: int = Field(default=120, ge=1, description="Enrolments one round takes at once.")
    enrol_rate_max_keys: int = Field(
        default=50_000, ge=1, description="Client buckets kept in memory; the least recently used go first."
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="COOKIE_SECURE: mark the console cookie Secure always (true), never (false), or when the request "
        "is https (unset; behind a TLS proxy set FORWARDED_ALLOW_IPS so its X-Forwarded-Proto is believed).",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="FORWARDED_ALLOW_IPS: addresses of trusted proxies whose X-Forwarded-For/-Proto are believed "
        "(comma-separated, '*' for any); empty: uvicorn's default, 127.0.0.1.",
    )
    login_free_failures: int = Field(
        default=5, ge=1, description="Wrong researcher tokens from one address before the back-off starts."
    )
    login_max_delay_s: float = Field(default=900.0, gt=0, description="Longest back-off after wrong tokens.")
    image_max_pixels: int = Field(default=4096 * 4096, ge=1, description="Largest image (width × height) at launch.")

    @model_validator(mode="after")
    def _stable_secret(self) -> Settings:
        """Without SECRET_KEY, keep one random key in ``secret_key_file`` so pseudonyms survive restarts."""
        if not self.secret_key:
            path = self.secret_key_file
            if path.is_file():
                self.secret_key = path.read_text(encoding="utf-8").strip()
            if not self.secret_key:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.secret_key = secrets.token_urlsafe(32)
                path.write_text(self.secret_key + "\n", encoding="utf-8")
                path.chmod(0o600)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
