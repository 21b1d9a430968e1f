#!/usr/bin/env bash
# HTTP benchmark: gunicorn (production settings) on PostgreSQL, driven by wrk on loopback,
# each page beside a bare Flask route served by the same gunicorn in the same run, so the
# figures are ratios that hold on a noisy machine. Run by hand; not part of the test suite.
#
#   DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database the benchmark may fill}"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

export APP_ENV=production SMS_BACKEND=file SMS_OUTBOX_PATH=/tmp/bench-outbox.jsonl
export SECRET_KEY=${SECRET_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')}
export PUBLIC_BASE_URL=http://127.0.0.1:8101 TRUSTED_HOSTS=127.0.0.1
COOKIE=$(.venv/bin/python bench/prepare.py 2>/dev/null | tail -n 1)

# One gunicorn, the production settings (gunicorn.conf.py), serving the app and the bare
# route side by side (bench/bare.py); access lines off for both, and no worker recycling
# in the middle of a measurement.
GUNICORN_MAX_REQUESTS=0 PORT=8101 .venv/bin/gunicorn --config gunicorn.conf.py --chdir bench bare:app --daemon \
  --pid /tmp/bench-app.pid --access-logfile /dev/null
trap 'kill "$(cat /tmp/bench-app.pid)" 2>/dev/null || true' EXIT
sleep 2

run() {  # name url [header]: a warm-up second, then the measurement
  wrk -t2 -c"$CONNECTIONS" -d1s ${3:+-H "$3"} "$2" >/dev/null
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency ${3:+-H "$3"} "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf "%-18s %10s req/s   p50 %8s   p99 %8s\n" "$1" "$rps" "$p50" "$p99"
  echo "$rps" > "/tmp/bench-$1.rps"
}

echo "wrk: $CONNECTIONS connections, $DURATION each, $(nproc) cores"
run bare http://127.0.0.1:8101/__bare/
run landing http://127.0.0.1:8101/
run privacy http://127.0.0.1:8101/privacy
run preferences http://127.0.0.1:8101/preferences "Cookie: $COOKIE"
for page in landing privacy preferences; do
  awk -v p="$page" -v a="$(cat /tmp/bench-$page.rps)" -v b="$(cat /tmp/bench-bare.rps)" \
    'BEGIN { printf "%-18s %5.0f %% of the bare route\n", p, 100 * a / b }'
done
