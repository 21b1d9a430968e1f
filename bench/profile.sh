#!/usr/bin/env bash
# Where one page's or write's time goes while it is under load, as bench/http.sh loads it:
# the same gunicorn (gunicorn.conf.py, the same settings: bench/settings.sh), wrk with 64
# connections on the same 2 cores. Run by hand; it EMPTIES the register first (a
# PostgreSQL database named bench* only), as http.sh does.
#
#   DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench bench/profile.sh submit
#
# Kinds: bare, app-ok, landing, privacy, preferences, submit, confirm, unsubscribe.
# It prints (bench/cpu_shares.py):
# - the CPU each kind of process used per request (gunicorn's workers, PostgreSQL, Redis,
#   wrk): which of them a faster path has to be faster in;
# - each part of a request's work (the SQL statements, the session cookie, the limits, ...)
#   in microseconds of the workers' CPU a request: where each one goes;
# - each function's inclusive share of the workers' Python CPU time, sampled by py-spy
#   (installed into .venv on first use, like the peer; `--gil`: only while a thread holds
#   the interpreter, so waits on PostgreSQL or Redis are not in it). py-spy slows the
#   workers (about a third fewer requests a second): the shares are what to read, not the
#   rate. The folded stacks stay in /tmp/bench-profile-<kind>.folded for a flame graph.
#
# Settings: SECONDS_SAMPLED (8), TOP (60 functions), CONNECTIONS (64) and THREADS (2: wrk's),
# WEB_CONCURRENCY (gunicorn's workers; gunicorn.conf.py's default), WRITES and BENCH_REDIS as in
# bench/http.sh (WRITES: the browsers prepared for each write, each with a code sent from
# the same address within the hour, as a write's checks will count them).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database named bench* that the benchmark may empty}"
KIND=${1:?which page or write: bare, app-ok, landing, privacy, preferences, submit, confirm, unsubscribe}
SECONDS_SAMPLED=${SECONDS_SAMPLED:-8}
TOP=${TOP:-60}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BENCH_REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/7}
URL=http://127.0.0.1:8101
WRITES=${WRITES:-10000}
WRITES_DIR=/tmp/bench-profile-writes
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
PY_SPY_VERSION=0.4.3
[ -x .venv/bin/py-spy ] || .venv/bin/pip install -q "py-spy==$PY_SPY_VERSION" >/dev/null

. bench/settings.sh
: >"$SMS_OUTBOX_PATH"
if curl -s -o /dev/null "$URL/" 2>/dev/null; then echo "something answers on $URL already: another run?" >&2; exit 1; fi

load=()
case "$KIND" in
  bare) path=/__bare/ ;;
  app-ok) path=/__bench/ok ;;
  landing) path=/ ;;
  privacy) path=/privacy ;;
  preferences)
    path=/preferences
    load=(-H "Cookie: $(.venv/bin/python bench/prepare.py 2>/dev/null | tail -n 1)") ;;
  submit | confirm | unsubscribe)
    path=/
    .venv/bin/python bench/prepare_writes.py --count "$WRITES" --out "$WRITES_DIR" >/dev/null 2>/tmp/bench-prepare.log ||
      { tail -n 20 /tmp/bench-prepare.log; exit 1; }
    load=(--timeout 10s -s bench/writes.lua) ;;
  *) echo "unknown kind: $KIND" >&2; exit 2 ;;
esac
args=()
case "$KIND" in submit | confirm | unsubscribe) args=(-- "$KIND" "$WRITES_DIR/$KIND.txt" 0 "$THREADS") ;; esac

GUNICORN_MAX_REQUESTS=0 PORT=8101 .venv/bin/gunicorn --config gunicorn.conf.py --chdir bench bare:app --daemon \
  --pid /tmp/bench-profile.pid --access-logfile /dev/null
cleanup() {
  local pid
  pid=$(cat /tmp/bench-profile.pid 2>/dev/null) && kill "$pid" 2>/dev/null &&
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if [ -n "${REDIS_URL:-}" ]; then redis-cli -u "$REDIS_URL" flushdb >/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 60); do curl -fs "$URL/__bare/" >/dev/null && break; sleep 0.5; done

# The CPU split first, without the profiler (it slows the workers), then the profile.
measured=$((SECONDS_SAMPLED + 4))
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${measured}s" "${load[@]}" "$URL$path" "${args[@]}" >/tmp/bench-profile-wrk.txt &
sleep 2
split=$(.venv/bin/python bench/cpu_shares.py cpu "$SECONDS_SAMPLED")
wait
rate=$(awk '/Requests\/sec/ {print $2}' /tmp/bench-profile-wrk.txt)
echo "$KIND: $rate requests a second (wrk, $CONNECTIONS connections, $THREADS threads); $STORAGE"
echo "CPU by process while it ran, per request:"
awk -F'\t' -v r="$rate" '{ printf "  %-16s %5.2f of 2 cores  %7.3f ms a request\n", $1, $2, 1000 * $2 / r }' <<<"$split"
curl -fs -m 60 -o /dev/null "$URL/__bare/" || true

case "$KIND" in submit | confirm | unsubscribe)  # browsers the first load left alone
  used=$(sed -n 's/^writes .* used=\([0-9]*\).*/\1/p' /tmp/bench-profile-wrk.txt)
  args=(-- "$KIND" "$WRITES_DIR/$KIND.txt" "$used" "$THREADS") ;;
esac
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${measured}s" "${load[@]}" "$URL$path" "${args[@]}" >/tmp/bench-profile-wrk.txt &
sleep 2
rm -f /tmp/bench-profile-worker-*.folded
for worker in $(pgrep -P "$(cat /tmp/bench-profile.pid)"); do
  .venv/bin/py-spy record --pid "$worker" --duration "$SECONDS_SAMPLED" --rate 200 --gil \
    --format raw --output "/tmp/bench-profile-worker-$worker.folded" >/dev/null 2>&1 &
done
wait
if grep -q "exhausted=[1-9]" /tmp/bench-profile-wrk.txt; then echo "ran out of prepared browsers" >&2; fi
cat /tmp/bench-profile-worker-*.folded >"/tmp/bench-profile-$KIND.folded"
echo
echo "the workers' Python CPU time (py-spy --gil, $SECONDS_SAMPLED s, every worker), by function:"
.venv/bin/python bench/cpu_shares.py shares "/tmp/bench-profile-$KIND.folded" --top "$TOP"
# Where each microsecond of the workers' CPU a request goes, part by part (the CPU split
# above, measured without the profiler, shared out as py-spy's samples are).
workers_ms=$(awk -F'\t' -v r="$rate" '$1 == "gunicorn" { printf "%.4f", 1000 * $2 / r }' <<<"$split")
echo
.venv/bin/python bench/cpu_shares.py parts "/tmp/bench-profile-$KIND.folded" --cpu-ms "${workers_ms:-0}"
