# The app's settings for a benchmark run, sourced by bench/http.sh and bench/profile.sh
# (from the checkout's root, with BENCH_REDIS and URL set): production mode, SMS to a file
# or queued, every limit counted but none refusing the benchmark's traffic. Sets STORAGE
# to a line that says where the limits and the SMS went.
export APP_ENV=production SMS_BACKEND=file SMS_OUTBOX_PATH=/tmp/bench-outbox.jsonl
export SECRET_KEY=${SECRET_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')}
export HASH_KEY=${HASH_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')}
export PUBLIC_BASE_URL=$URL TRUSTED_HOSTS=127.0.0.1
# The writes all come from one address and walk through neighbouring numbers, thousands an
# hour: raise the limits that would refuse them (per address, per number block, per country,
# overall, and the SMS budget). Every limit and the budget are still counted and checked as
# in production; the per-number limits stay as they are (each number is new), and the
# confirmation-rate breaker keeps counting but cannot trip (floor 0).
export SMS_LIMIT_PER_IP="1000000 per hour;1000000 per day" SMS_LIMIT_PER_BLOCK="1000000 per hour"
export SMS_LIMIT_PER_COUNTRY="1000000 per hour" SMS_LIMIT_GLOBAL="1000000 per hour"
export SMS_HOURLY_LIMIT=1000000 SMS_DAILY_LIMIT=1000000 CONFIRMATION_RATE_FLOOR=0
unset RATELIMIT_STORAGE_URI REDIS_URL
if [ "$BENCH_REDIS" != none ] && redis-cli -u "$BENCH_REDIS" ping >/dev/null 2>&1; then
  export REDIS_URL=$BENCH_REDIS
  redis-cli -u "$REDIS_URL" flushdb >/dev/null
  STORAGE="Redis ($REDIS_URL, flushed before and after): rate limits counted there, SMS queued as RQ jobs (no worker runs)"
else
  STORAGE="no Redis: rate limits in each worker's memory, SMS sent inline to $SMS_OUTBOX_PATH (file backend)"
fi
