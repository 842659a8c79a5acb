"""``python -m app.backup --out FILE``: a consistent copy of the study database, safe while the server runs.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot page by page while
participants keep submitting; the copy is checked (``PRAGMA integrity_check``) before it replaces FILE.
PostgreSQL: runs ``pg_dump --format=custom`` when it is installed; otherwise prints the commands and exits 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from tqdm import tqdm

DEFAULT_URL = "sqlite:///var/study.db"


class BackupError(RuntimeError):
    """The backup could not be made; the message says why and what to do."""


def sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    path = Path(url.database)
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    return path


def backup_sqlite(src: Path, out: Path, *, pages_per_step: int = 512, show_progress: bool = True) -> int:
    """Copy ``src`` to ``out`` with SQLite's online backup; returns the number of pages copied."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    bar = tqdm(desc="backing up", unit="page", disable=not show_progress, file=sys.stderr)

    def progress(_status: int, remaining: int, total: int) -> None:
        bar.total = total
        bar.n = total - remaining
        bar.refresh()

    source = sqlite3.connect(src, timeout=30)
    try:
        source.execute("PRAGMA busy_timeout=30000")
        target = sqlite3.connect(tmp)
        try:
            source.backup(target, pages=pages_per_step, progress=progress)
            target.execute("PRAGMA journal_mode=DELETE")
            result = target.execute("PRAGMA integrity_check").fetchone()[0]
            pages = target.execute("PRAGMA page_count").fetchone()[0]
        finally:
            target.close()
    finally:
        source.close()
        bar.close()
    if result != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {result}")
    os.replace(tmp, out)
    return int(pages)


def libpq_url(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password (passed through ``PGPASSWORD`` instead)."""
    env = {"PGPASSWORD": url.password} if url.password else {}
    bare = URL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    plain = bare.render_as_string(hide_password=False)
    return plain, env


def postgres_instructions(url: URL, out: Path) -> str:
    plain, _ = libpq_url(url)
    return "\n".join(
        [
            "PostgreSQL databases are backed up with pg_dump (consistent while the server runs):",
            f"  pg_dump --format=custom --file {out} '{plain}'",
            "and restored into an empty database with pg_restore (stop the servers first):",
            f"  pg_restore --clean --if-exists --no-owner --dbname '{plain}' {out}",
            "(set PGPASSWORD if the database needs a password)",
        ]
    )


def backup_postgres(url: URL, out: Path) -> None:
    exe = shutil.which("pg_dump")
    if exe is None:
        raise BackupError("pg_dump is not installed here.\n" + postgres_instructions(url, out))
    plain, extra = libpq_url(url)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    proc = subprocess.run(
        [exe, "--format=custom", "--file", str(tmp), plain],
        env={**os.environ, **extra},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed ({proc.returncode}): {proc.stderr.strip()}")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.backup", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="backup file to write (replaced only when the copy is good)")
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL or " + DEFAULT_URL)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    url = make_url(args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_URL)
    out = Path(args.out)
    try:
        backend = url.get_backend_name()
        if backend == "sqlite":
            src = sqlite_path(url)
            if src.resolve() == out.resolve():
                raise BackupError("--out must not be the database itself")
            pages = backup_sqlite(src, out, show_progress=not args.quiet)
            print(f"backed up {src} ({pages} pages) to {out}")
            print(f"restore: stop the server, then copy {out} to {src} and delete {src}-wal and {src}-shm if present")
        elif backend == "postgresql":
            backup_postgres(url, out)
            print(f"backed up PostgreSQL database {url.database!r} to {out} (pg_dump custom format)")
            print("restore:\n" + postgres_instructions(url, out).split("\n", 3)[-1])
        else:
            raise BackupError(f"unsupported database {backend!r}: use sqlite or postgresql")
    except BackupError as err:
        print(f"python -m app.backup: error: cannot back up: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
