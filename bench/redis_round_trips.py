"""The client's side of a submission's three Redis round trips, the way the app makes
them: the limits' MGET, their count script (EVAL) and a job's pipeline (HSET + RPUSH).
Run it under callgrind to count instructions, which hold still on a noisy machine (with
and without hiredis installed, for example):

    valgrind --tool=callgrind .venv/bin/python -m bench.redis_round_trips --rounds 200
    valgrind --tool=callgrind .venv/bin/python -m bench.redis_round_trips --rounds 0

The difference between the two totals, divided by the rounds, is one round's count (the
second run counts the start-up alone). It flushes REDIS_URL's database (default: 7).
"""

from __future__ import annotations

import argparse
import os

import redis

from viihde.web.ratelimits import _COUNT

KEYS = [f"viihde:limit:LIMITER/bench/k{i}/5/1/hour" for i in range(6)]


def one_round(client: redis.Redis) -> None:
    client.mget(KEYS)
    client.eval(_COUNT, len(KEYS), *KEYS, *([3600] * len(KEYS)))
    pipeline = client.pipeline()
    pipeline.hset("bench:job", mapping={f"field{i}": "v" * 20 for i in range(15)})
    pipeline.rpush("bench:queue", "job")
    pipeline.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7"))
    client.ping()
    for _ in range(rounds):
        one_round(client)
    client.flushdb()


if __name__ == "__main__":
    main()
