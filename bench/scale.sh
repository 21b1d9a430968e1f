#!/usr/bin/env bash
# Scale benchmark: a register of 1,000,000 subscribers and 3,000,000 consent events filled
# by COPY, the staff look-up's latency and the audience export's rate and memory, at each
# size (the package bench/scale/, run as python -m bench.scale). Run by hand; not part of
# the test suite. It EMPTIES the database.
#
#   psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE scale'
#   DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/scale bench/scale.sh
#   DATABASE_URL=... bench/scale.sh run --subscribers 100000      # one size
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database the benchmark may empty and fill}"

export APP_ENV=production SMS_BACKEND=file SMS_OUTBOX_PATH=/tmp/scale-outbox.jsonl
export SECRET_KEY=${SECRET_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')}
export HASH_KEY=${HASH_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')}
export PUBLIC_BASE_URL=http://127.0.0.1:8102 TRUSTED_HOSTS=127.0.0.1
# The look-ups are timed one after another by one staff member: no per-member cap on them.
export STAFF_SEARCH_LIMIT="1000000 per hour;1000000 per day"
exec .venv/bin/python -m bench.scale "${@:-compare}"
