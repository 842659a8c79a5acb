"""Web load bench: the project beside oTree 6 and a bare FastAPI ceiling, interleaved.

Run through ``bash bench/web_load.sh`` (it checks wrk and installs oTree into ``var/bench/otree-venv``). Servers:

- oTree 6 (``otree prodserver``: one process, its default SQLite database, ``OTREE_PRODUCTION=1``) serving a project
  generated from ``bench/otree`` under ``var/bench/otree-project``: a ranking page of four images and a form of
  4 criteria x 4 rank fields stored on the Player, 20 pages (rounds) per participant;
- the project on SQLite with 1 worker and on PostgreSQL (a throwaway schema at ``TEST_DATABASE_URL``) with 2 workers,
  with the bench design of ``bench/web_load_setup.py`` (four images a page, four criteria, 20 pages per participant);
- the bare ceiling ``bench/bare_app.py`` on SQLite with 1 worker: a Jinja2 page of the same shape, one-row insert.

Every server gets ranking-page GETs (a pool of participants, each on their first page) and a stream of page
submissions in which every request is a fresh page of a distinct enrolled participant (a participant's 20 pages in
order; wrk never sends one twice; the bare server inserts a row per request). Participants are prepared before the
rounds (and topped up between runs when a stream would run short) through ``app.crud`` (project) or oTree's own
session creation, never through the measured servers. Each round runs every server's GET and then its POST in
turn, so machine noise hits all alike; the table gives medians over rounds.

Measured per run: wrk's rate, p50 and p99; CPU ms per request from ``/proc`` (utime + stime of the server's process
tree, reaped children included; for PostgreSQL also the whole PostgreSQL server's process tree, so other clients of
that server count too); acknowledged submissions (303 project, 302 oTree, 200 bare) against rows stored afterwards.
wrk abandons the requests in flight when its time is up: those the server still stored are reported as "answered after
wrk stopped", so stored = acknowledged holds when acknowledged <= stored <= acknowledged + unanswered. At the end every
stored project page's rankings and every stored oTree Player row are compared with what the bench sent.

Environment: WEB_BENCH_SECONDS (15) per run, WEB_BENCH_ROUNDS (3), WEB_BENCH_CONNECTIONS (64), WEB_BENCH_THREADS (2),
WEB_BENCH_WARMUP (3 s of GETs and of POSTs per server before round 1, not in the table), WEB_BENCH_BATCH (512
participants at least per preparation batch), WEB_BENCH_GETTERS (256 GET participants), WEB_BENCH_SERVERS (the servers
to run, of "otree,sqlite,pg,bare", all by default), WEB_BENCH_OTREE (0: skip oTree), WEB_BENCH_PG_WORKERS (2),
WEB_BENCH_KEEP (1: keep var/bench/web_load-PID), TEST_DATABASE_URL. Exit status 1 when a target fails.
"""

from __future__ import annotations

import http.client
import math
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import web_load_setup  # noqa: E402

from app.db import make_engine  # noqa: E402

VAR = ROOT / "var" / "bench"
OTREE_VENV = VAR / "otree-venv"
OTREE_PROJECT = VAR / "otree-project"
LUA = ROOT / "bench" / "web_load.lua"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
PAGES = 20  # pages per participant, both in the project's bench design and in the oTree app
BARE_BODY = "token=abcdefghijklmnopqrstuvwx&" + "&".join(
    f"rank-{c}-{i}={(i + k) % 4 + 1}"
    for k, c in enumerate(["description", "cultural_relevance", "stereotypes", "offensiveness"])
    for i in range(4)
)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


SECONDS = env_int("WEB_BENCH_SECONDS", 15)
ROUNDS = env_int("WEB_BENCH_ROUNDS", 3)
CONN = env_int("WEB_BENCH_CONNECTIONS", 64)
THREADS = env_int("WEB_BENCH_THREADS", 2)
WARMUP = env_int("WEB_BENCH_WARMUP", 3)
BATCH = max(env_int("WEB_BENCH_BATCH", 512), 4 * CONN)  # a participant's next page >= 2*CONN requests later
GETTERS = env_int("WEB_BENCH_GETTERS", 256)
SERVERS = {k.strip() for k in (os.environ.get("WEB_BENCH_SERVERS") or "otree,sqlite,pg,bare").split(",")}
if os.environ.get("WEB_BENCH_OTREE") == "0":
    SERVERS.discard("otree")
PG_WORKERS = env_int("WEB_BENCH_PG_WORKERS", 2)
PROJECT_LABELS = {"sqlite": "project, SQLite, 1 worker", "pg": f"project, PostgreSQL, {PG_WORKERS} workers"}
PG_URL = os.environ.get("TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------------------------------------------------- CPU time
def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks: own utime + stime and those of its reaped children)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def tree_cpu_ms(roots: list[int]) -> float:
    """CPU milliseconds of the process trees under ``roots``: live processes count their own time, and each counts
    its waited-for children (so a worker that exited between two readings is still in the difference)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total * TICK_MS


# ---------------------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


@dataclass
class Stream:
    """A server's prepared submissions (``posts.txt``: index, path, body) and how far each wrk thread has gone.

    wrk thread t sends, in file order, the lines whose participant index % THREADS == t; ``offsets[t]`` of them are
    used. A page wrk sent that the server never stored (wrk abandons the requests in flight when its time is up)
    leaves its participant behind that page, so ``drop`` takes that participant's later pages out of the stream.
    """

    path: Path
    offsets: list[int] = field(default_factory=lambda: [0] * THREADS)
    participants: int = 0
    lines: list[list[tuple[int, str]]] = field(default_factory=list)  # per thread: (participant index, path)

    def __post_init__(self) -> None:
        self.load()

    def load(self) -> None:
        self.lines = [[] for _ in range(THREADS)]
        if self.path.exists():
            with self.path.open() as f:
                for line in f:
                    n, path, _ = line.split("\t", 2)
                    self.lines[int(n) % THREADS].append((int(n), path))

    def remaining(self) -> int:
        """Fresh submissions left, counted as if every thread ran as far as the one with the fewest left."""
        return THREADS * min(len(t) - o for t, o in zip(self.lines, self.offsets, strict=True))

    def sent_between(self, before: list[int], after: list[int]) -> list[tuple[int, str]]:
        return [item for t in range(THREADS) for item in self.lines[t][before[t] : after[t]]]

    def drop(self, dead: set[int]) -> None:
        """Remove the unsent pages of the participants in ``dead`` (the sent ones keep their place)."""
        if not dead:
            return
        kept, seen = [], [0] * THREADS
        with self.path.open() as f:
            for line in f:
                n = int(line.split("\t", 1)[0])
                t = n % THREADS
                if seen[t] < self.offsets[t] or n not in dead:
                    kept.append(line)
                seen[t] += 1
        self.path.write_text("".join(kept))
        self.load()


@dataclass
class Server:
    key: str
    label: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    health: str
    ack: int  # the status that acknowledges a stored submission
    log: Path
    gets: Path | None = None  # GET paths, one a line (None: GET /page)
    stream: Stream | None = None  # None: the bare insert
    prepare: Callable[[int, int, bool], None] | None = None  # (participants, first index, with getters)
    count: Callable[[], int] = lambda: 0
    check: Callable[[], tuple[int, int]] | None = None  # (stored rows checked, rows differing from what was sent)
    stored_paths: Callable[[], set[str]] = set  # the page paths whose submission is stored
    cpu_roots: list[int] = field(default_factory=list)  # further process trees to count (the PostgreSQL server)
    proc: subprocess.Popen[bytes] | None = None
    runs: list[dict[str, float]] = field(default_factory=list)
    note: str = ""

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        port = int(self.env["BENCH_PORT"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited at start; see {self.log}")
            status = http_status(port, self.health)
            if status is not None and status < 500:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not answer {self.health} within 60 s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def cpu_ms(self) -> float:
        assert self.proc is not None
        return tree_cpu_ms([self.proc.pid, *self.cpu_roots])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['BENCH_PORT']}"


# ---------------------------------------------------------------------------------------------------------- wrk runs
def run_wrk(server: Server, kind: str, seconds: int) -> dict[str, float]:
    """One wrk run (kind "get" or "post") with CPU readings around it; for POSTs the stored rows after it settles."""
    env = os.environ | {"WRK_THREADS": str(THREADS)}
    if kind == "get":
        env |= {"WRK_MODE": "get", "WRK_LIST": str(server.gets)}
    elif server.stream is not None:
        env |= {
            "WRK_MODE": "post",
            "WRK_LIST": str(server.stream.path),
            "WRK_STARTS": ",".join(map(str, server.stream.offsets)),
        }
    else:
        env |= {"WRK_MODE": "post-fixed", "WRK_PATH": "/hit", "WRK_BODY": BARE_BODY}
    stored_before = server.count() if kind == "post" else 0
    cpu0 = server.cpu_ms()
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONN}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), server.url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 90, check=False)
    if out.returncode != 0 or "RESULT" not in out.stdout:
        raise RuntimeError(f"wrk failed on {server.label}: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    cpu1 = server.cpu_ms()
    res: dict[str, float] = {}
    statuses: dict[int, int] = {}
    offsets, sent, exhausted = [0] * THREADS, 0, 0
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["RESULT"]:
            n, dur, p50, p99, *socket_errors = map(int, parts[1:])
            res |= {"requests": n, "rps": n / (dur / 1e6), "p50": p50 / 1000, "p99": p99 / 1000}
            res["socket_errors"] = sum(socket_errors)
        elif parts[:1] == ["THREAD"]:
            tid, t_sent, t_offset, t_exhausted = map(int, parts[1:5])
            offsets[tid], sent, exhausted = t_offset, sent + t_sent, exhausted + t_exhausted
            for item in parts[5:]:
                status, count = map(int, item.split(":"))
                statuses[status] = statuses.get(status, 0) + count
    good = 200 if kind == "get" else server.ack
    res["ok"] = statuses.get(good, 0)
    res["bad_status"] = sum(v for k, v in statuses.items() if k != good)
    res["exhausted"] = exhausted
    res["errors"] = res["bad_status"] + res["socket_errors"]
    res["cpu_ms"] = (cpu1 - cpu0) / res["requests"] if res["requests"] else math.nan
    res["statuses"] = statuses  # type: ignore[assignment]
    if kind == "post":
        res["sent"] = sent - exhausted
        res["unanswered"] = sent - sum(statuses.values())
        res["stored"] = settle(server) - stored_before
        res["lost"] = 0
        if server.stream is not None:
            sent_items = server.stream.sent_between(server.stream.offsets, offsets)
            server.stream.offsets = offsets
            stored = server.stored_paths()
            missing = [(n, path) for n, path in sent_items if path not in stored]
            res["lost"] = len(missing)  # sent but not stored (abandoned by wrk, or refused)
            server.stream.drop({n for n, _ in missing})
    else:
        time.sleep(0.5)
    return res


def settle(server: Server, quiet_s: float = 1.0, limit_s: float = 30.0) -> int:
    """The stored count once it stops changing (requests still in the server when wrk stopped finish first)."""
    deadline = time.monotonic() + limit_s
    last, since = server.count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = server.count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def describe(server: Server, kind: str, res: dict[str, float], tag: str) -> str:
    extra = ""
    if kind == "post":
        extra = (
            f", stored {res['stored']:.0f} / acknowledged {res['ok']:.0f} (+{res['unanswered']:.0f} unanswered; "
            f"{res['lost']:.0f} sent pages not stored)"
        )
        if res["exhausted"]:
            extra += f", STREAM RAN OUT ({res['exhausted']:.0f} requests)"
    others = {k: v for k, v in res["statuses"].items() if k != (200 if kind == "get" else server.ack)}  # type: ignore[attr-defined]
    if others or res["socket_errors"]:
        extra += f", other statuses {others}, socket errors {res['socket_errors']:.0f}"
    return (
        f"  {tag:<8} {server.label:<32} {kind.upper():<4} {res['rps']:8.1f}/s  p50 {res['p50']:7.1f} ms  "
        f"p99 {res['p99']:7.1f} ms  CPU {res['cpu_ms']:6.2f} ms/req{extra}"
    )


# ---------------------------------------------------------------------------------------------------------- setup
def run_setup(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"setup failed ({' '.join(cmd[:3])} ...); see {log}:\n{log.read_text()[-3000:]}")


def project_server(key: str, label: str, db: str, setup_db: str, workers: int, work: Path) -> Server:
    d = work / key
    d.mkdir(parents=True)
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": db,
        "MEDIA_ROOT": str(d / "media"),
        "SECRET_KEY": secrets.token_urlsafe(24),
        "RESEARCHER_TOKEN": secrets.token_urlsafe(24),
        "BENCH_PORT": str(port),
    }
    cmd = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    server = Server(key, label, cmd, env, ROOT, "/healthz", 303, d / "server.log", gets=d / "gets.txt")
    server.stream = Stream(d / "posts.txt")
    engine = make_engine(db)

    def prepare(participants: int, first: int, getters: bool) -> None:
        cmd = [sys.executable, str(ROOT / "bench" / "web_load_setup.py"), "--db", setup_db, "--media"]
        cmd += [str(d / "media"), "--out", str(d), "--round", f"bench-{first}"]
        cmd += ["--participants", str(participants), "--first", str(first)]
        cmd += ["--gets", str(GETTERS)] if getters else []
        run_setup(cmd, ROOT, os.environ.copy(), d / "setup.log")

    server.prepare = prepare
    server.count = lambda: web_load_setup.count_stored(engine)
    server.check = lambda: web_load_setup.check_stored(engine)
    server.stored_paths = lambda: {f"/p/{c}/page/{pos}" for c, pos in web_load_setup.stored_pages(engine)}
    return server


def otree_server(work: Path) -> Server:
    d = work / "otree"
    d.mkdir(parents=True)
    if OTREE_PROJECT.exists():
        shutil.rmtree(OTREE_PROJECT)
    shutil.copytree(ROOT / "bench" / "otree", OTREE_PROJECT, ignore=shutil.ignore_patterns("__pycache__"))
    static = OTREE_PROJECT / "_static" / "ranking"
    static.mkdir(parents=True)
    from PIL import Image

    for i in range(1, 5):  # four 256 px images, served by oTree's static files
        Image.new("RGB", (256, 256), (60 * i, 120, 230 - 50 * i)).save(static / f"img{i}.png")
    port = free_port()
    env = os.environ | {
        "PATH": f"{OTREE_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "OTREE_PRODUCTION": "1",
        "OTREE_AUTH_LEVEL": "STUDY",
        "OTREE_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "OTREE_SECRET_KEY": secrets.token_urlsafe(24),
        "BENCH_PORT": str(port),
    }
    for var in ("DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(var, None)
    cmd = [str(OTREE_VENV / "bin" / "otree"), "prodserver", f"127.0.0.1:{port}"]
    server = Server("otree", f"oTree {otree_version()}, 1 process", cmd, env, OTREE_PROJECT, "/", 302, d / "server.log")
    server.gets, server.stream = d / "gets.txt", Stream(d / "posts.txt")
    db = OTREE_PROJECT / "db.sqlite3"

    def prepare(participants: int, first: int, getters: bool) -> None:
        cmd = [str(OTREE_VENV / "bin" / "python"), "prepare.py", "--out", str(d)]
        cmd += ["--participants", str(participants), "--first", str(first)]
        cmd += ["--gets", str(GETTERS)] if getters else []
        run_setup(cmd, OTREE_PROJECT, env, d / "setup.log")

    def count() -> int:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            return c.execute("SELECT count(*) FROM ranking_player WHERE description_1 IS NOT NULL").fetchone()[0]

    def check() -> tuple[int, int]:
        crits = ["description", "cultural_relevance", "stereotypes", "offensiveness"]
        cols = [f"{c}_{i}" for c in crits for i in range(1, 5)]
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            rows = c.execute(
                f"SELECT round_number, {', '.join(cols)} FROM ranking_player WHERE "
                + " OR ".join(f"{col} IS NOT NULL" for col in cols)
            ).fetchall()
        bad = 0
        for r, *values in rows:
            want = [(i - 1 + k + r) % 4 + 1 for k in range(4) for i in range(1, 5)]
            bad += list(values) != want
        return len(rows), bad

    def stored_paths() -> set[str]:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            rows = c.execute(
                "SELECT p.code, pl.round_number FROM ranking_player pl JOIN otree_participant p "
                "ON p.id = pl.participant_id WHERE pl.description_1 IS NOT NULL"
            ).fetchall()
        return {f"/p/{code}/ranking/Ranking/{r}" for code, r in rows}

    server.prepare, server.count, server.check, server.stored_paths = prepare, count, check, stored_paths
    return server


def otree_version() -> str:
    out = subprocess.run([str(OTREE_VENV / "bin" / "otree"), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def bare_server(work: Path) -> Server:
    d = work / "bare"
    d.mkdir(parents=True)
    port = free_port()
    db = f"sqlite:///{d / 'bare.db'}"
    env = os.environ | {"DATABASE_URL": db, "BENCH_PORT": str(port)}
    cmd = [sys.executable, "-m", "uvicorn", "bare_app:create_app", "--factory", "--app-dir", str(ROOT / "bench")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    server = Server("bare", "bare FastAPI + Jinja2, 1 worker", cmd, env, ROOT, "/healthz", 200, d / "server.log")
    server.gets = d / "gets.txt"
    server.gets.write_text("/page\n")
    engine = make_engine(db)

    def count() -> int:
        from sqlalchemy import text

        with engine.connect() as c:
            try:
                return c.execute(text("SELECT count(*) FROM bare_hit")).scalar_one()
            except Exception:  # noqa: BLE001  (before the server created its table)
                return 0

    server.count = count
    return server


def pg_schema(action: str, schema: str) -> bool:
    from sqlalchemy import text

    try:
        engine = make_engine(PG_URL)
        with engine.connect() as c:
            if action == "create":
                c.execute(text(f"CREATE SCHEMA {schema}"))
            else:
                c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            c.commit()
        engine.dispose()
        return True
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL at {PG_URL} unavailable: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return False


def postmaster_pid() -> int | None:
    """The PostgreSQL server's main process (the parent of our backend), if its processes are visible here."""
    from sqlalchemy import text

    engine = make_engine(PG_URL)
    with engine.connect() as c:
        backend = c.execute(text("SELECT pg_backend_pid()")).scalar_one()
        try:
            raw = Path(f"/proc/{backend}/stat").read_text()
        except OSError:
            return None
    engine.dispose()
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def with_options(url: str, *options: str) -> str:
    opts = "%20".join(f"-c{o.replace('=', '%3D')}" for o in options)
    return f"{url}{'&' if '?' in url else '?'}options={opts}"


# ---------------------------------------------------------------------------------------------------------- report
def med(server: Server, kind: str, key: str) -> float:
    vals = [r[key] for r in server.runs if r["kind"] == kind and not math.isnan(r[key])]
    return statistics.median(vals) if vals else math.nan


def fmt(x: float, digits: int = 0, unit: str = "") -> str:
    return "n/a" if math.isnan(x) else f"{x:,.{digits}f}{unit}"


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    work = VAR / f"web_load-{os.getpid()}"
    work.mkdir(parents=True)
    servers: list[Server] = []
    schema = f"web_load_{os.getpid()}"
    have_pg = False
    try:
        if "otree" in SERVERS:
            if (OTREE_VENV / "bin" / "otree").exists():
                servers.append(otree_server(work))
            else:
                print(f"oTree skipped: {OTREE_VENV}/bin/otree missing (bench/web_load.sh installs it)")
        lite = f"sqlite:///{work / 'sqlite' / 'study.db'}"
        if "sqlite" in SERVERS:
            servers.append(project_server("sqlite", PROJECT_LABELS["sqlite"], lite, lite, 1, work))
        have_pg = "pg" in SERVERS and pg_schema("create", schema)
        if have_pg:
            url = with_options(PG_URL, f"search_path={schema}")
            setup_url = with_options(PG_URL, f"search_path={schema}", "synchronous_commit=off")
            pg = project_server("pg", PROJECT_LABELS["pg"], url, setup_url, PG_WORKERS, work)
            pid = postmaster_pid()
            if pid is not None:
                pg.cpu_roots = [pid]
                pg.note = "CPU includes the whole PostgreSQL server"
            else:
                pg.note = "PostgreSQL's CPU not visible from here: not counted"
            servers.append(pg)
        if "bare" in SERVERS:
            servers.append(bare_server(work))
        print(
            f"web load bench: wrk {THREADS} threads, {CONN} connections, {SECONDS} s per run, {ROUNDS} rounds "
            f"(+{WARMUP} s warm-up); {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; work dir {work}",
            flush=True,
        )

        def prepare(server: Server, need: int, getters: bool = False) -> None:
            """Enrol enough participants (in batches of at least BATCH) for ``need`` more fresh submissions."""
            assert server.stream is not None and server.prepare is not None
            short = need - server.stream.remaining()
            if short <= 0 and not getters:
                return
            participants = max(BATCH, math.ceil(max(short, 0) / PAGES))
            t0 = time.monotonic()
            server.prepare(participants, server.stream.participants, getters)
            server.stream.participants += participants
            server.stream.load()
            print(
                f"  prepared {participants} participants ({participants * PAGES} submissions) for {server.label} "
                f"in {time.monotonic() - t0:.0f} s",
                flush=True,
            )

        print("preparing participants (in parallel) ...", flush=True)
        streamed = [s for s in servers if s.stream is not None]
        with ThreadPoolExecutor(len(streamed)) as pool:
            for f in [pool.submit(prepare, s, 0, True) for s in streamed]:
                f.result()
        for s in servers:
            s.start()

        print(f"warm-up ({WARMUP} s GET and POST per server; not in the table) ...", flush=True)
        warm: dict[str, list[dict[str, float]]] = {}
        for s in servers:
            warm[s.key] = []
            for kind in ("get", "post"):
                res = run_wrk(s, kind, WARMUP) | {"kind": kind}
                warm[s.key].append(res)
                print(describe(s, kind, res, "warm-up"), flush=True)

        def need(s: Server) -> int:
            rates = [r["rps"] for r in warm[s.key] + s.runs if r["kind"] == "post"]
            return int(max(rates) * SECONDS * 1.5) + 4 * CONN

        print("topping up the submission streams for all rounds ...", flush=True)
        with ThreadPoolExecutor(len(streamed)) as pool:
            for f in [pool.submit(prepare, s, need(s) * ROUNDS) for s in streamed]:
                f.result()

        for rnd in range(1, ROUNDS + 1):
            print(f"round {rnd} of {ROUNDS}", flush=True)
            for s in servers:
                if s.stream is not None:
                    prepare(s, need(s))  # only if a faster round ran the stream short
                for kind in ("get", "post"):
                    res = run_wrk(s, kind, SECONDS) | {"kind": kind}
                    s.runs.append(res)
                    print(describe(s, kind, res, f"round {rnd}"), flush=True)

        return report(servers, warm)
    finally:
        for s in servers:
            s.stop()
        if have_pg:
            pg_schema("drop", schema)
        if os.environ.get("WEB_BENCH_KEEP") == "1":
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(servers: list[Server], warm: dict[str, list[dict[str, float]]]) -> int:
    by = {s.key: s for s in servers}
    print()
    print(
        f"wrk -t{THREADS} -c{CONN} -d{SECONDS}s, {ROUNDS} round(s), medians; every POST a fresh page of a distinct "
        f"enrolled participant (20 pages each), every stored row checked"
    )
    print()
    head = (
        "| server | ranking page GET /s | p50 | p99 | submission POST /s | p50 | p99 | CPU ms per GET / POST "
        "| errors | stored / acknowledged |"
    )
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    verdict: dict[str, tuple[bool, str]] = {}
    for s in servers:
        runs = s.runs + warm[s.key]
        posts = [r for r in runs if r["kind"] == "post"]
        errors = sum(r["errors"] for r in runs)  # the requests of a stream that ran out are among them (404)
        ran_out = sum(r["exhausted"] for r in runs)
        acked = sum(r["ok"] for r in posts)
        unanswered = sum(r["unanswered"] for r in posts)
        stored = s.count()
        bad = 0
        if s.check is not None:
            checked, bad = s.check()
            if checked != stored:
                bad += abs(checked - stored)
        consistent = acked <= stored <= acked + unanswered and bad == 0
        detail = f"{stored:,} / {acked:,.0f}"
        if stored != acked:
            detail += f" ({stored - acked:,.0f} of {unanswered:,.0f} answered after wrk stopped)"
        if bad:
            detail += f"; {bad} stored rows differ from what was sent"
        if ran_out:
            detail += f"; the stream of fresh submissions ran out ({ran_out:,.0f} requests)"
        if s.check is not None:
            detail += "; rows checked"
        verdict[s.key] = (errors == 0 and consistent, f"{errors:,.0f} errors, stored {detail}")
        cells = [
            s.label,
            fmt(med(s, "get", "rps")),
            f"{fmt(med(s, 'get', 'p50'), 1)} ms",
            f"{fmt(med(s, 'get', 'p99'), 1)} ms",
            fmt(med(s, "post", "rps")),
            f"{fmt(med(s, 'post', 'p50'), 1)} ms",
            f"{fmt(med(s, 'post', 'p99'), 1)} ms",
            f"{fmt(med(s, 'get', 'cpu_ms'), 2)} / {fmt(med(s, 'post', 'cpu_ms'), 2)}",
            f"{errors:,.0f}",
            detail,
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    for s in servers:
        posts = [r for r in s.runs + warm[s.key] if r["kind"] == "post"]
        sent = sum(r["sent"] for r in posts)
        who = f" from {s.stream.participants:,} participants prepared" if s.stream is not None else " (one row each)"
        print(f"{s.label}: {sent:,.0f} submissions sent{who}" + (f"; {s.note}" if s.note else ""))

    def rate(key: str, kind: str) -> float:
        return med(by[key], kind, "rps") if key in by else math.nan

    def ratio(a: float, b: float) -> float:
        return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan

    r_get_otree = ratio(rate("sqlite", "get"), rate("otree", "get"))
    r_post_otree = ratio(rate("sqlite", "post"), rate("otree", "post"))
    r_post_bare = ratio(rate("sqlite", "post"), rate("bare", "post"))
    r_get_bare = ratio(rate("sqlite", "get"), rate("bare", "get"))
    r_pg_get = ratio(rate("pg", "get"), rate("sqlite", "get"))
    r_pg_post = ratio(rate("pg", "post"), rate("sqlite", "post"))
    print()
    print(f"project SQLite/1 GET / oTree GET:        {fmt(r_get_otree, 1, 'x')}")
    print(f"project SQLite/1 POST / oTree POST:      {fmt(r_post_otree, 1, 'x')}")
    print(f"project SQLite/1 POST / bare POST:       {fmt(100 * r_post_bare, 0, '%')}")
    print(f"project SQLite/1 GET / bare GET:         {fmt(100 * r_get_bare, 0, '%')}")
    print(f"project PostgreSQL/2 / SQLite/1:         GET {fmt(r_pg_get, 2, 'x')}, POST {fmt(r_pg_post, 2, 'x')}")
    print()

    failed = False

    def target(text: str, ok: bool | None, got: str) -> None:
        nonlocal failed
        mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        failed |= ok is False
        print(f"{mark}  {text}: {got}")

    def at_least(x: float, limit: float) -> bool | None:
        return None if math.isnan(x) else x >= limit

    target(
        "ranking page GET >= 15x oTree's rate (SQLite, 1 worker)",
        at_least(r_get_otree, 15),
        f"{fmt(r_get_otree, 1, 'x')}",
    )
    target(
        "submissions >= 50% of the bare insert's rate (SQLite, 1 worker)",
        at_least(r_post_bare, 0.5),
        f"{fmt(100 * r_post_bare, 0, '%')}",
    )
    for key in ("sqlite", "pg"):
        if key not in by:
            target(f"p99 < 100 ms at {CONN} connections, {PROJECT_LABELS[key]}", None, "not run")
            continue
        p99s = [med(by[key], k, "p99") for k in ("get", "post")]
        ok = None if any(math.isnan(p) for p in p99s) else all(p < 100 for p in p99s)
        note = "" if CONN == 64 else " (target is set at 64 connections)"
        if "bare" in by:  # the same machine's ceiling: an absolute latency target also measures the machine
            note += f" (bare ceiling: GET {fmt(med(by['bare'], 'get', 'p99'), 1)} ms, POST "
            note += f"{fmt(med(by['bare'], 'post', 'p99'), 1)} ms)"
        target(
            f"p99 < 100 ms at {CONN} connections, {by[key].label}",
            ok,
            f"GET {fmt(p99s[0], 1)} ms, POST {fmt(p99s[1], 1)} ms{note}",
        )
    ok_pg = None if math.isnan(r_pg_get) or math.isnan(r_pg_post) else min(r_pg_get, r_pg_post) >= 1.5
    target(
        "PostgreSQL/2 workers >= 1.5x SQLite/1 worker",
        ok_pg,
        f"GET {fmt(r_pg_get, 2, 'x')}, POST {fmt(r_pg_post, 2, 'x')}",
    )
    for key in ("sqlite", "pg"):
        ok, text = verdict[key] if key in by else (None, "not run")
        target(f"zero errors, stored = acknowledged, {PROJECT_LABELS[key]}", ok, text)
    for key in ("otree", "bare"):
        if key in by:
            print(f"info  {by[key].label}: {verdict[key][1]}")
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise SystemExit(main())
