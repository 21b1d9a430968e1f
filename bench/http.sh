#!/usr/bin/env bash
# HTTP benchmark: gunicorn (production settings) on PostgreSQL, driven by wrk on loopback,
# each page and each write beside a bare Flask route served by the same gunicorn in the same
# run, so the figures are ratios that hold on a noisy machine. Run by hand; not part of the
# test suite. It empties the register first (a PostgreSQL database named bench* only).
#
#   DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench bench/http.sh
#
# The floor under the app's pages (bench/bare.py): "app-ok" returns "ok" through the app's
# extensions, "app-page" renders base.html with a CSRF token (a new session each time).
# The peer (bench/peer.py): Flask-Security-Too's sign-in page, served by the same workers.
# The pages: the landing page, the privacy notice, the preference page. The writes, each
# request a real one (bench/writes.lua, bench/prepare_writes.py): submitting a number (a
# new number each time), confirming a code (the next of WRITES pending sign-ups), and the
# one-tap unsubscribe of the preference page (the next of WRITES subscribers). A write
# counts as done only when it answers with the redirect that follows it; the database's
# own counts are printed at the end. Then the same pages and writes again at a constant
# offered rate (bench/pace.lua), for their latency: half of each one's own capacity just
# measured, and the landing page at half of the bare route's.
#
# Settings: DURATION (10s), CONNECTIONS (64), TIMEOUT (10s), WRITES (10000 browsers prepared
# for each write: enough for 1000 writes/s), BENCH_REDIS (redis://127.0.0.1:6379/7, flushed
# before and after; "none": rate limits in each worker's memory, SMS sent inline to a file).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database named bench* that the benchmark may empty}"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
TIMEOUT=${TIMEOUT:-10s}  # wrk's own 2s would drop a slow write's latency from the figures
THREADS=2
WRITES=${WRITES:-10000}
BENCH_REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/7}
URL=http://127.0.0.1:8101
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# The peer (bench/peer.py): Flask-Security-Too's sign-in page, served beside the app.
PEER_VERSION=$(sed -n 's/^VERSION = "\(.*\)"/\1/p' bench/peer.py)
.venv/bin/python -c "import flask_security" 2>/dev/null ||
  .venv/bin/pip install -q "flask-security-too==$PEER_VERSION" >/dev/null

# The app's settings for a benchmark run (limits raised, Redis or not): bench/settings.sh.
. bench/settings.sh
: >"$SMS_OUTBOX_PATH"
for url in "$URL" http://127.0.0.1:8102; do
  if curl -s -o /dev/null "$url/" 2>/dev/null; then echo "something answers on $url already: another run?" >&2; exit 1; fi
done

.venv/bin/python bench/prepare_writes.py --count "$WRITES" --out /tmp/bench-writes 2>/tmp/bench-prepare.log ||
  { tail -n 20 /tmp/bench-prepare.log; exit 1; }
COOKIE=$(.venv/bin/python bench/prepare.py 2>/dev/null | tail -n 1)

# One gunicorn, the production settings (gunicorn.conf.py), serving the app and the bare
# route side by side (bench/bare.py); access lines off for both, and no worker recycling
# in the middle of a measurement.
GUNICORN_MAX_REQUESTS=0 PORT=8101 .venv/bin/gunicorn --config gunicorn.conf.py --chdir bench bare:app --daemon \
  --pid /tmp/bench-app.pid --access-logfile /dev/null
# The paced runs go through nginx in front of the same gunicorn, as production does
# (docs/deploy.md): a sync worker then sees a request only when nginx has it whole. Straight
# from wrk, a paced connection connects first and waits its pace before it writes its
# request, and the sync worker that accepted it waits with it (up to the whole pace: 0.8 s
# for a write at half its capacity) while the requests behind it queue: the paced writes'
# p99 of 0.7-1.5 s before 2026-12-07 measured that, not the app.
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
NGINX_DIR=/tmp/bench-nginx PACED_URL=http://127.0.0.1:8102
mkdir -p "$NGINX_DIR"
cat >"$NGINX_DIR/nginx.conf" <<NGINX
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $NGINX_DIR/body; proxy_temp_path $NGINX_DIR/proxy;
  fastcgi_temp_path $NGINX_DIR/fastcgi; uwsgi_temp_path $NGINX_DIR/uwsgi; scgi_temp_path $NGINX_DIR/scgi;
  upstream viihde_app { server 127.0.0.1:8101; keepalive 16; }
  server {
    listen 127.0.0.1:8102;
    location / { include $PWD/deploy/nginx/proxy_params; proxy_pass http://viihde_app; }
  }
}
NGINX
cleanup() {  # stop nginx and gunicorn and wait for them (the next run needs the ports)
  local pid
  for file in "$NGINX_DIR/nginx.pid" /tmp/bench-app.pid; do
    pid=$(cat "$file" 2>/dev/null) && kill "$pid" 2>/dev/null &&
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  done
  if [ -n "${REDIS_URL:-}" ]; then redis-cli -u "$REDIS_URL" flushdb >/dev/null || true; fi
}
trap cleanup EXIT
nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR"
for _ in $(seq 60); do curl -fs "$URL/__bare/" >/dev/null && break; sleep 0.5; done

bench() {  # wrk with this run's threads and connections; then wait for the requests still
  # queued in gunicorn's backlog when wrk stopped (the sync workers serve them all the same),
  # so that they do not eat into the next measurement: a slow write leaves seconds of them
  wrk -t"$THREADS" -c"$CONNECTIONS" --timeout "$TIMEOUT" "$@"
  curl -fs -m 60 -o /dev/null "$URL/__bare/" || true
}

field() {  # name text: the number after "name=" in a "writes ..." line of bench/writes.lua
  sed -n "s/^writes .* $1=\([0-9]*\).*/\1/p" <<<"$2"
}

row() {  # name, wrk's output: req/s, p50, p99, share of answers that are not 2xx/3xx (with
  # socket errors), for a write the share not followed by its redirect, and the ratio
  local name=$1 out=$2 rps p50 p99 answers bad socket notdone=- mix=
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  answers=$(awk '/ requests in / {print $1}' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
  socket=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
  if [ "${answers:-0}" -eq 0 ]; then
    printf "%-12s no answers:\n%s\n" "$name" "$out"
    echo 0 >"/tmp/bench-$name.rps"
    return
  fi
  if grep -q '^writes ' <<<"$out"; then
    notdone=$(awk -v o="$(field ok "$out")" -v a="$(field answers "$out")" -v s="${socket:-0}" \
      'BEGIN { printf "%.1f %%", 100 * (a - o + s) / (a + s) }')
    mix=$(sed -n 's/^writes .*statuses=\([^ ]*\).*/\1/p' <<<"$out")
    if [ "$(field exhausted "$out")" != 0 ]; then mix="$mix RAN OUT OF PREPARED BROWSERS: raise WRITES"; fi
  fi
  echo "$rps" >"/tmp/bench-$name.rps"
  printf "%-12s %9s %10s %10s %9s %% %9s %8s %%   %s\n" "$name" "$rps" "$p50" "$p99" \
    "$(awk -v b="${bad:-0}" -v s="${socket:-0}" -v a="$answers" 'BEGIN { printf "%.1f", 100 * (b + s) / (a + s) }')" \
    "$notdone" "$(awk -v a="$rps" -v b="$(cat /tmp/bench-bare.rps)" 'BEGIN { printf "%.0f", 100 * a / b }')" "$mix"
}

measure_page() {  # name url [header]: a warm-up second, then the measurement
  bench -d1s ${3:+-H "$3"} "$2" >/dev/null
  row "$1" "$(bench -d"$DURATION" --latency ${3:+-H "$3"} "$2")"
}

measure_write() {  # name: a warm-up second, then the measurement on browsers the warm-up left alone
  local file=/tmp/bench-writes/$1.txt warm out
  warm=$(bench -d1s -s bench/writes.lua "$URL/" -- "$1" "$file" 0 "$THREADS")
  out=$(bench -d"$DURATION" --latency -s bench/writes.lua "$URL/" -- "$1" "$file" "$(field used "$warm")" "$THREADS")
  row "$1" "$out"
  echo $(($(field ok "$warm") + $(field ok "$out"))) >"/tmp/bench-$1.ok"
  field used "$out" >"/tmp/bench-$1.used"
}

echo "wrk: $CONNECTIONS connections, $THREADS threads, $DURATION each (timeout $TIMEOUT), $(nproc) cores; WEB_CONCURRENCY=${WEB_CONCURRENCY:-default}"
echo "limits and SMS: $STORAGE"
echo 1 >/tmp/bench-bare.rps
printf "%-12s %9s %10s %10s %11s %9s %10s   %s\n" "" "req/s" "p50" "p99" "non-2xx/3xx" "not done" "of bare" "answers (writes)"
measure_page bare "$URL/__bare/"
measure_page app-ok "$URL/__bench/ok"
measure_page app-page "$URL/__bench/page"
measure_page peer-login "$URL/__peer/login"
measure_page landing "$URL/"
measure_page privacy "$URL/privacy"
measure_page preferences "$URL/preferences" "Cookie: $COOKIE"
measure_write submit
measure_write confirm
measure_write unsubscribe
# Latency at a constant offered rate (bench/pace.lua: each connection paced), the issue's
# second kind of target: the landing page at half of the bare route's capacity (p99 under
# 50 ms), and every page and write at half of its own (p99 under 100 ms).
half() { awk -v r="$(cat "/tmp/bench-$1.rps")" 'BEGIN { printf "%d", r / 2 }'; }
paced_row() {  # name offered-rate wrk-output
  local got p50 p99
  got=$(awk '/Requests\/sec/ {print $2}' <<<"$3")
  p50=$(awk '$1=="50%" {print $2}' <<<"$3")
  p99=$(awk '$1=="99%" {print $2}' <<<"$3")
  printf "%-24s %9s %9s %10s %10s\n" "$1" "$2" "$got" "$p50" "$p99"
}
pace_ms() { awk -v c="$CONNECTIONS" -v r="$1" 'BEGIN { printf "%.3f", 1000 * c / r }'; }
paced_page() {  # name path rate [header]
  paced_row "$1" "$3" "$(bench -d"$DURATION" --latency ${4:+-H "$4"} -s bench/pace.lua "$PACED_URL$2" -- "$(pace_ms "$3")")"
}
paced_write() {  # name rate: on browsers the earlier runs left alone
  local file=/tmp/bench-writes/$1.txt out
  out=$(bench -d"$DURATION" --latency -s bench/writes.lua "$PACED_URL/" -- "$1" "$file" "$(cat "/tmp/bench-$1.used")" "$THREADS" "$(pace_ms "$2")")
  paced_row "$1" "$2" "$out"
  if [ "$(field exhausted "$out")" != 0 ]; then echo "  ran out of prepared browsers: raise WRITES"; fi
}
echo
echo "paced, through nginx ($PACED_URL): $CONNECTIONS connections, each waiting its share of the offered rate"
printf "%-24s %9s %9s %10s %10s\n" "" "offered" "achieved" "p50" "p99"
paced_page "landing @ half of bare" / "$(half bare)"
paced_page landing / "$(half landing)"
paced_page privacy /privacy "$(half privacy)"
paced_page preferences /preferences "$(half preferences)" "Cookie: $COOKIE"
paced_page peer-login /__peer/login "$(half peer-login)"
for kind in submit confirm unsubscribe; do paced_write "$kind" "$(half "$kind")"; done
echo

echo "done, by the redirect after each (warm-ups included): $(cat /tmp/bench-submit.ok) numbers submitted," \
  "$(cat /tmp/bench-confirm.ok) codes confirmed, $(cat /tmp/bench-unsubscribe.ok) unsubscribed"
echo "the register (up to 2 x $CONNECTIONS more a write: the requests in flight when wrk stopped):"
.venv/bin/python bench/prepare_writes.py --check 2>/dev/null
