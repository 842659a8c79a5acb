#!/usr/bin/env bash
# Run every bench in turn (make bench). Each prints its own table; the first failure does not stop the others.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
status=0
run() {
  echo
  echo "##### $*"
  "$@" || { echo "##### FAILED: $*"; status=1; }
}
[ -f bench/web_load.sh ] && run bash bench/web_load.sh
[ -x /usr/bin/chromium ] && run "$PY" bench/phone_heights.py
[ -f bench/crash.py ] && run "$PY" bench/crash.py
[ -f bench/participants.py ] && run "$PY" bench/participants.py
[ -f bench/analysis_scale.py ] && run "$PY" bench/analysis_scale.py
[ -f bench/train_step.py ] && run "$PY" bench/train_step.py
[ -f bench/sample.py ] && run "$PY" bench/sample.py
exit $status
