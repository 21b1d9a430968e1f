"""Prometheus metrics: requests per endpoint, and what the register does (the only module
that knows ``prometheus_client``).

With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (an empty directory) so
that /metrics adds up every worker; without it each process reports its own.
"""

from __future__ import annotations

import functools
import hmac
import os
import time
from collections.abc import Callable

from flask import Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("viihde_http_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "viihde_http_request_seconds",
    "Time to answer, per endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CODES_SENT = Counter("viihde_codes_sent_total", "One-time codes handed to the SMS backend")
CODES_CONFIRMED = Counter("viihde_codes_confirmed_total", "One-time codes confirmed")
CONSENT_EVENTS = Counter(
    "viihde_consent_events_total", "Consent events written", ["action", "source"]
)
SMS_FAILURES = Counter("viihde_sms_failures_total", "SMS the provider refused", ["code"])
LIMITED = Counter("viihde_rate_limited_total", "Requests answered 429", ["endpoint"])
SIGNUPS_HELD_BACK = Counter(
    "viihde_signups_held_back_total",
    "Sign-up codes not sent: their network or number range confirms too few codes",
    ["scope"],
)
SENDING_PAUSED = Gauge(
    "viihde_sms_sending_paused",
    "1 while a spent SMS budget holds all code sending",
    ["reason"],
    # The latest value any live worker set (gunicorn.conf.py marks gone ones dead): a
    # worker that saw a pause and then idles must not keep it "paused".
    multiprocess_mode="livemostrecent",
)


SMS_WAITING = Gauge(
    "viihde_sms_oldest_waiting_seconds",
    "How long the oldest SMS not yet handed to the provider (queued or sending) has waited;"
    " 0 when none: minutes mean no worker is delivering",
    # Each scrape sets it in the process that answers; the latest of the live ones.
    multiprocess_mode="livemostrecent",
)
#: Where an app keeps what a scrape works out first (``before_scrape``).
_BEFORE_SCRAPE = "viihde.metrics.before_scrape"


def before_scrape(app: Flask, work: Callable[[], None]) -> None:
    """Run ``work`` (which sets gauges read off the register) before each of ``app``'s
    scrapes."""
    app.extensions.setdefault(_BEFORE_SCRAPE, []).append(work)


#: The methods counted by name; any other a client makes up is counted as "other" (each
#: new label value is a new series in every worker's file: a client must not make them).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


@functools.cache
def _latency(endpoint: str):
    """The endpoint's latency series, looked up once per process (endpoints are the app's)."""
    return LATENCY.labels(endpoint)


@functools.cache
def _requests(endpoint: str, method: str, status: int):
    """The request counter's series for these labels, looked up once per process (the
    app's endpoints and statuses, and ``METHODS``)."""
    return REQUESTS.labels(endpoint, method, str(status))


def init_app(app: Flask) -> None:
    """Time every request and serve /metrics (behind METRICS_TOKEN)."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        endpoint = request.endpoint or "unmatched"
        started = g.pop("metrics_started", None)
        if started is not None:
            _latency(endpoint).observe(time.perf_counter() - started)
        method = request.method if request.method in METHODS else "other"
        _requests(endpoint, method, response.status_code).inc()
        if response.status_code == 429:
            LIMITED.labels(endpoint).inc()
        return response

    app.add_url_rule("/metrics", "metrics", metrics_view)


def is_scraper() -> bool:
    """The request carries ``Authorization: Bearer <METRICS_TOKEN>`` (constant-time check)."""
    token = current_app.config.get("METRICS_TOKEN")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def metrics_view():
    """The metrics, for a scraper that knows METRICS_TOKEN (404 for everyone else)."""
    if not is_scraper():
        abort(404)
    for work in current_app.extensions.get(_BEFORE_SCRAPE, ()):
        work()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0])
