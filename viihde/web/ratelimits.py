"""Rate limits, checked only on the views that carry them: the `limits` library's items
and fixed windows, counted in Redis so that every process shares them.

A view's limits are tested and its try taken in every counter in one Redis round trip (a
script: all counters have room and each counts one more, or none changes) before the
view; the try is given back in one more when the response says it does not count (no
code went). Requests arriving together therefore cannot all pass a test that none of them
has counted yet. A request to any other page does no rate-limit
work at all (Flask-Limiter resolved its limits on every request). Numbers reach the
counters only as keyed hashes (the views' key functions see to it).

When Redis cannot be reached the counters live in this process (the `limits` library's
memory storage), as Flask-Limiter's in-memory fallback did: never a 5xx, never open.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, wraps

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger(__name__)

EXTENSION = "viihde.ratelimits"
PREFIX = "viihde:limit:"
#: A Redis that does not answer must not hold a sign-up for long (then: process memory).
REDIS_TIMEOUT_SECONDS = 0.5

#: Take one try in every counter if each has room, else take none and answer 0 (KEYS: the
#: counters; ARGV: their limits, then their windows in seconds): the test and the count in
#: one step, so that requests arriving together cannot all pass a test none of them has
#: counted yet (a dozen at once from one address sent a dozen codes past a limit of five).
_RESERVE = """
local n = #KEYS
for i, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
        return 0
    end
end
for i, key in ipairs(KEYS) do
    redis.call('INCRBY', key, 1)
    redis.call('EXPIRE', key, ARGV[n + i], 'NX')
end
return 1
"""
#: Give back the try a request took and did not use (KEYS: its counters).
_RELEASE = """
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') > 0 then
        redis.call('DECRBY', key, 1)
    end
end
"""

#: One counter: a window of the `limits` library, and whose tries it counts.
Counter = tuple[RateLimitItem, str]


@dataclass(frozen=True)
class Rule:
    """One limit of a view: its setting (``"5 per hour;20 per day"``, or a function giving
    it), the name it is counted under, whose tries it counts, and when it does not apply."""

    limit: str | Callable[[], str]
    scope: str
    key: Callable[[], str]
    exempt: Callable[[], bool] | None = None


@lru_cache(maxsize=64)
def _items(setting: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(setting))


def counters(rules: Iterable[Rule]) -> list[Counter]:
    """The counters of the rules that apply to this request."""
    found = []
    for rule in rules:
        if rule.exempt is not None and rule.exempt():
            continue
        setting = rule.limit() if callable(rule.limit) else rule.limit
        key = f"{rule.scope}/{rule.key()}"
        found.extend((item, key) for item in _items(setting))
    return found


class Limits:
    """The counters of one app: Redis when configured, else (and whenever Redis fails)
    this process's memory."""

    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self._memory_lock = threading.Lock()

    @staticmethod
    def _key(item: RateLimitItem, key: str) -> str:
        return PREFIX + item.key_for(key)

    def retry_after(self, found: Sequence[Counter]) -> int:
        """Seconds until every counter of ``found`` that is full has room again (its window
        ends): one more round trip, made only when a request is refused. A full counter
        with no end (its EXPIRE lost, the INCRBY kept) is given its window again."""
        if self.redis is not None and not g.get("rate_limits_in_memory"):
            names = [self._key(item, key) for item, key in found]
            try:
                pipeline = self.redis.pipeline(transaction=False)
                pipeline.mget(names)
                for name in names:
                    pipeline.ttl(name)
                counts, *ttls = pipeline.execute()
            except RedisError:
                log.warning("rate_limit_storage_unreachable step=retry_after")
            else:
                waits = []
                for (item, _), name, count, ttl in zip(found, names, counts, ttls, strict=True):
                    if int(count or 0) < item.amount:
                        continue
                    if ttl == -1:  # full for ever: would refuse every try from now on
                        self._heal(name, item)
                        ttl = item.get_expiry()
                    waits.append(max(ttl, 1))
                return max(waits, default=1)
        now = time.time()
        full = [(item, key) for item, key in found if not self.memory.test(item, key)]
        return max(
            (
                max(1, math.ceil(self.memory.get_window_stats(item, key).reset_time - now))
                for item, key in full
            ),
            default=1,
        )

    def _heal(self, name: str, item: RateLimitItem) -> None:
        try:
            self.redis.expire(name, item.get_expiry(), nx=True)
        except RedisError:
            log.warning("rate_limit_storage_unreachable step=heal")

    def reserve(self, found: Sequence[Counter], fallback: bool = True) -> bool:
        """Take one try in every counter if each has room, else none; whether it did (one
        round trip, one script). A view's limits are reserved before it runs and given
        back (``release``) when its answer says the try does not count: what is tested is
        also what is counted, however many requests arrive at once."""
        if not found:
            return True
        if self.redis is not None:
            names = [self._key(item, key) for item, key in found]
            amounts = [item.amount for item, _ in found]
            windows = [item.get_expiry() for item, _ in found]
            try:
                return bool(self.redis.eval(_RESERVE, len(names), *names, *amounts, *windows))
            except RedisError:
                if not fallback:  # the caller fails closed
                    raise
                log.warning("rate_limit_storage_unreachable step=reserve")
                g.rate_limits_in_memory = True  # its release and Retry-After ask memory too
        with self._memory_lock:
            if not all(self.memory.test(item, key) for item, key in found):
                return False
            for item, key in found:
                self.memory.hit(item, key)
            return True

    def release(self, found: Sequence[Counter]) -> None:
        """Give back the try ``reserve`` took (one round trip), where it was taken."""
        if not found:
            return
        if self.redis is not None and not g.get("rate_limits_in_memory"):
            try:
                self.redis.eval(_RELEASE, len(found), *(self._key(i, k) for i, k in found))
                return
            except RedisError:
                log.warning("rate_limit_storage_unreachable step=release")
                return  # the try stays counted: never opens a limit
        with self._memory_lock:
            for item, key in found:
                self.memory.storage.decr(item.key_for(key))


def init_app(app: Flask) -> None:
    """The app's counters, in RATELIMIT_STORAGE_URI's Redis or (``memory://``) here."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    redis = None
    if uri.startswith(("redis://", "rediss://", "unix://")):
        redis = Redis.from_url(
            uri,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
    app.extensions[EXTENSION] = Limits(redis)


def limits() -> Limits:
    return current_app.extensions[EXTENSION]


def limited(
    *rules: Rule,
    counts: Callable[[Response], bool] | None = None,
    methods: tuple[str, ...] = ("POST",),
):
    """Guard a view with ``rules`` on ``methods``: a request that would go over any of them
    gets a 429 before the view runs, and otherwise takes its try in each (``reserve``);
    after it, the try is given back unless ``counts`` says it counts (every try counts
    without it; a view that raises gives it back). A HEAD is a GET here (Flask runs the
    GET view for it). The rules are kept on the view as ``rate_limits``."""
    guarded_methods = frozenset(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorator(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if request.method not in guarded_methods:
                return view(*args, **kwargs)
            found = counters(rules)
            if not limits().reserve(found):
                raise TooManyRequests(retry_after=limits().retry_after(found))
            try:
                response = current_app.make_response(view(*args, **kwargs))
            except BaseException:
                limits().release(found)
                raise
            if counts is not None and not counts(response):
                limits().release(found)
            return response

        guarded.rate_limits = rules
        return guarded

    return decorator
