#!/usr/bin/env bash
# Web load benchmark (wrk on 127.0.0.1, bounded): ranking-page GETs and page submissions per second with p50/p99,
# on SQLite with 1 uvicorn worker and PostgreSQL with 2 workers, beside a bare FastAPI one-insert endpoint run the
# same way. Target: submissions >= 50% of the bare endpoint's rate, p99 < 100 ms at 64 connections.
#
#   bash bench/web_load.sh            (WEB_BENCH_SECONDS=8 WEB_BENCH_CONNECTIONS=64 TEST_DATABASE_URL=... to change)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SECONDS_EACH=${WEB_BENCH_SECONDS:-8}
CONN=${WEB_BENCH_CONNECTIONS:-64}
THREADS=${WEB_BENCH_THREADS:-2}
PARTICIPANTS=${WEB_BENCH_PARTICIPANTS:-600}
PG_URL=${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/web_load.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${PG_SCHEMA:-}" ]; then
    "$PY" - "$PG_URL" "$PG_SCHEMA" <<'PYEOF' || true
import sys
from sqlalchemy import text
from app.db import make_engine
e = make_engine(sys.argv[1])
with e.connect() as c:
    c.execute(text(f"DROP SCHEMA IF EXISTS {sys.argv[2]} CASCADE")); c.commit()
PYEOF
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/common.lua" <<'EOF_LUA'
local counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d\n", summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, bad, summary.requests))
end
EOF_LUA
cat > "$WORK/get.lua" <<'EOF_LUA'
dofile(os.getenv("WRK_COMMON"))
local paths, i = {}, 0
function init(args)
  for line in io.lines(os.getenv("WRK_GETS")) do paths[#paths + 1] = line end
  i = (tid or 0) * 97
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
EOF_LUA
cat > "$WORK/post.lua" <<'EOF_LUA'
dofile(os.getenv("WRK_COMMON"))
local reqs, i, nthreads = {}, 0, tonumber(os.getenv("WRK_THREADS"))
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
function init(args)
  for line in io.lines(os.getenv("WRK_POSTS")) do
    local n, path, body = line:match("^(%d+)\t([^\t]+)\t(.*)$")
    if tonumber(n) % nthreads == tid then reqs[#reqs + 1] = {path, body} end
  end
end
function request()
  i = i + 1
  if i > #reqs then return wrk.format("GET", "/healthz") end  -- ran out of fresh pages: counted below
  return wrk.format("POST", reqs[i][1], headers, reqs[i][2])
end
EOF_LUA
cat > "$WORK/bare.lua" <<'EOF_LUA'
dofile(os.getenv("WRK_COMMON"))
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local body = string.rep("rank-description-0=1&", 12) .. "token=abc"
function request() return wrk.format("POST", "/hit", headers, body) end
EOF_LUA
export WRK_COMMON="$WORK/common.lua" WRK_THREADS="$THREADS"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "server at $1 did not start" >&2; return 1
}
run_wrk() {  # name url script -> prints a table row
  local name=$1 url=$2 script=$3 out
  out=$(timeout $((SECONDS_EACH + 30)) wrk -t"$THREADS" -c"$CONN" -d"${SECONDS_EACH}s" --timeout 5s -s "$script" "$url" | grep '^RESULT')
  read -r _ rps p50 p99 bad total <<<"$out"
  printf '| %-22s | %-28s | %9s | %7s | %7s | %7s |\n' "$LABEL" "$name" "$rps" "$p50" "$p99" "$bad"
  eval "RPS_${4}=$rps; P99_${4}=$p99"
}

bench_db() {  # label db_url workers
  LABEL=$1; local db=$2 workers=$3 dir="$WORK/$4"
  mkdir -p "$dir"
  "$PY" bench/web_load_setup.py --db "$db" --media "$dir/media" --out "$dir" --participants "$PARTICIPANTS" >"$dir/setup.log" 2>&1 \
    || { cat "$dir/setup.log" >&2; return 1; }
  local port bare_port
  port=$(free_port); bare_port=$(free_port)
  DATABASE_URL="$db" MEDIA_ROOT="$dir/media" SECRET_KEY=bench RESEARCHER_TOKEN=bench \
    "$PY" -m app --host 127.0.0.1 --port "$port" --workers "$workers" >"$dir/app.log" 2>&1 &
  PIDS+=($!)
  DATABASE_URL="$db" "$PY" -m uvicorn bare_app:create_app --factory --app-dir bench --host 127.0.0.1 \
    --port "$bare_port" --workers "$workers" --no-access-log --log-level warning >"$dir/bare.log" 2>&1 &
  PIDS+=($!)
  wait_up "http://127.0.0.1:$port/healthz"; wait_up "http://127.0.0.1:$bare_port/docs"
  export WRK_GETS="$dir/gets.txt" WRK_POSTS="$dir/posts.txt"
  timeout 10 wrk -t1 -c4 -d1s -s "$WORK/get.lua" "http://127.0.0.1:$port" >/dev/null  # warm up
  run_wrk "ranking page GET" "http://127.0.0.1:$port" "$WORK/get.lua" get
  run_wrk "page submission POST" "http://127.0.0.1:$port" "$WORK/post.lua" post
  run_wrk "bare one-insert POST" "http://127.0.0.1:$bare_port" "$WORK/bare.lua" bare
  local ratio
  ratio=$(awk -v a="$RPS_post" -v b="$RPS_bare" 'BEGIN { printf "%.0f", 100 * a / b }')
  local stored
  stored=$(DATABASE_URL="$db" "$PY" - <<'PYEOF'
from sqlalchemy import func
from sqlmodel import select
from app.config import Settings
from app.db import make_engine, new_session
from app.models import Assignment
e = make_engine(Settings().database_url)
with new_session(e) as s:
    print(s.exec(select(func.count()).select_from(Assignment).where(Assignment.submitted_at.is_not(None))).one())
PYEOF
)
  SUMMARY+=("$LABEL: submissions at ${ratio}% of the bare insert (target >= 50%), submission p99 ${P99_post} ms (target < 100 ms); $stored pages stored of $(wc -l <"$dir/posts.txt") prepared")
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

SUMMARY=()
echo "wrk: $THREADS threads, $CONN connections, ${SECONDS_EACH}s per row; $(nproc) CPUs; $(date -u +%FT%TZ)"
printf '| %-22s | %-28s | %9s | %7s | %7s | %7s |\n' "database / workers" "endpoint" "req/s" "p50 ms" "p99 ms" "errors"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------" "------------------------------" "-----------" "---------" "---------" "---------"
bench_db "SQLite / 1 worker" "sqlite:///$WORK/sqlite/study.db" 1 sqlite
PG_SCHEMA="bench_$$"
if "$PY" - "$PG_URL" "$PG_SCHEMA" <<'PYEOF' 2>/dev/null
import sys
from sqlalchemy import text
from app.db import make_engine
e = make_engine(sys.argv[1])
with e.connect() as c:
    c.execute(text(f"CREATE SCHEMA {sys.argv[2]}")); c.commit()
PYEOF
then
  sep='?'; [[ "$PG_URL" == *\?* ]] && sep='&'
  bench_db "PostgreSQL / 2 workers" "${PG_URL}${sep}options=-csearch_path%3D${PG_SCHEMA}" 2 pg
else
  PG_SCHEMA=""
  echo "| PostgreSQL / 2 workers | skipped: $PG_URL unreachable |"
fi
printf '%s\n' "${SUMMARY[@]}"
