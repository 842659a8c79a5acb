#!/usr/bin/env bash
# Web load bench: oTree 6, the project on SQLite/1 worker and PostgreSQL/2 workers, and a bare FastAPI
# ceiling, interleaved in one run (wrk on 127.0.0.1): ranking-page GETs and a stream of distinct participants' page
# submissions; a table of medians (rate, p50, p99, CPU ms per request, stored vs acknowledged rows), the ratios and
# each target of the issue with PASS/FAIL. The details are in bench/web_load.py.
#
#   bash bench/web_load.sh                                      (3 rounds of 15 s runs: about 13 minutes here)
#   WEB_BENCH_SECONDS=5 WEB_BENCH_ROUNDS=1 bash bench/web_load.sh   (quick)
#
# Needs wrk (apt-get install -y wrk). oTree goes into its own venv, var/bench/otree-venv, on the first run
# ('otree>=6,<7' from the package index; OTREE_SPEC to change, WEB_BENCH_OTREE=0 to leave oTree out).
# PostgreSQL: TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test), a throwaway schema.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
command -v wrk >/dev/null || { echo "web_load.sh: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

OTREE_VENV=var/bench/otree-venv
mkdir -p var/bench
if [ "${WEB_BENCH_OTREE:-1}" != 0 ] && [ ! -x "$OTREE_VENV/bin/otree" ]; then
  echo "installing oTree into $OTREE_VENV ..."
  rm -rf "$OTREE_VENV"
  if ! { "${OTREE_PYTHON:-python3}" -m venv "$OTREE_VENV" &&
    "$OTREE_VENV/bin/pip" install --quiet "${OTREE_SPEC:-otree>=6,<7}"; } >var/bench/otree-install.log 2>&1; then
    echo "web_load.sh: installing oTree failed (see var/bench/otree-install.log); running without it" >&2
    rm -rf "$OTREE_VENV"
  fi
fi
exec "$PY" bench/web_load.py
