"""Metrics for Prometheus, request ids, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from sqlalchemy.exc import OperationalError

from viihde import create_app
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import Subscriber
from viihde.ops import logs
from viihde.register import links

from .helpers import SIGNATURE, TOKEN, Visitor, free_port, number_in_clear
from .settings import SECRET_KEY


@pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": "scraper-token-123"}])
def test_metrics_need_the_token(client):
    """Without the bearer token /metrics does not exist."""
    assert client.get("/metrics").status_code == 404
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404


@pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": "scraper-token-123"}])
def test_metrics_count_requests_codes_and_consents(app, outbox):
    """After a sign-up the counters show the request, the code and the grants."""
    Visitor(app.test_client(), outbox).sign_up("040 123 4567")
    body = (
        app.test_client()
        .get("/metrics", headers={"Authorization": "Bearer scraper-token-123"})
        .text
    )
    assert 'viihde_http_requests_total{endpoint="signup.submit",method="POST",status="302"}' in body
    assert "viihde_codes_sent_total" in body
    assert 'viihde_consent_events_total{action="grant",source="signup"}' in body
    assert 'viihde_http_request_seconds_bucket{endpoint="signup.code"' in body
    assert "viihde_sms_sending_paused" in body


def test_metrics_are_off_without_a_token(client):
    """No METRICS_TOKEN configured: 404 whatever is sent."""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_every_response_carries_a_request_id(client):
    """A good incoming id is kept; a bad one is replaced."""
    assert len(client.get("/").headers["X-Request-ID"]) == 16
    kept = client.get("/", headers={"X-Request-ID": "proxy-abc-123456"})
    assert kept.headers["X-Request-ID"] == "proxy-abc-123456"
    replaced = client.get("/", headers={"X-Request-ID": "bad id; <script>"})
    assert replaced.headers["X-Request-ID"] != "bad id; <script>"
    assert len(replaced.headers["X-Request-ID"]) == 16


def test_json_logs_one_line_per_record_with_request_id_in_utc(database_uri):
    """LOG_FORMAT=json: each record is one JSON line, newlines in it included."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        app = create_app(
            {
                "APP_ENV": "testing",
                "SECRET_KEY": SECRET_KEY,
                "SQLALCHEMY_DATABASE_URI": database_uri,
                "LOG_FORMAT": "json",
            }
        )
        stream = io.StringIO()
        root.handlers[0].stream = stream

        @app.get("/log-something")
        def log_something():
            app.logger.warning("input_validation_fail value=%s", "a\nb")
            return "ok"

        app.test_client().get("/log-something", headers={"X-Request-ID": "req-0123456789"})
        lines = [line for line in stream.getvalue().splitlines() if "input_validation" in line]
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert record["request_id"] == "req-0123456789"
        assert record["message"] == "input_validation_fail value=a\nb"
        assert record["timestamp"].endswith("+00:00")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def get(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    return response.text


def test_metrics_add_up_every_gunicorn_worker(tmp_path):
    """gunicorn with gunicorn.conf.py, two workers and PROMETHEUS_MULTIPROC_DIR: /metrics,
    answered by one worker, counts the requests that both served."""
    root = Path(__file__).resolve().parent.parent
    port, token, multiproc = free_port(), "scraper-token-456", tmp_path / "prometheus"
    multiproc.mkdir()
    environment = os.environ | {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'register.db'}",
        "METRICS_TOKEN": token,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_MAX_REQUESTS": "0",
    }
    environment.pop("REDIS_URL", None)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(  # noqa: S603
        [str(gunicorn), "--config", "gunicorn.conf.py", "--access-logfile", "/dev/null", "app:app"],
        cwd=root,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                get(f"{base}/healthz")
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not answer within 10 seconds")
        sent = 1
        for _ in range(50):  # at once, until each worker has served some
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: get(f"{base}/healthz"), range(20)))
            sent += 20
            if len(served_by_each(multiproc)) == 2 and all(served_by_each(multiproc)):
                break
        body = get(f"{base}/metrics", token)
    finally:
        server.terminate()
        server.wait(timeout=30)
    counts = served_by_each(multiproc)
    assert len(counts) == 2 and all(counts), counts
    served = 'viihde_http_requests_total{endpoint="health.healthz",method="GET",status="200"}'
    assert f"{served} {float(sent)}" in body
    assert sum(counts) == sent


def served_by_each(multiproc: Path) -> list[float]:
    """Each worker's own count of /healthz requests, from its own file."""
    return [
        sum(
            value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if "health.healthz" in key and '"viihde_http_requests_total"' in key
        )
        for path in multiproc.glob("counter_*.db")
    ]


@pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": "scraper-token-123"}])
def test_a_made_up_method_makes_no_new_series(app):
    """Every label value is a series in every worker's file: a client that makes up its own
    HTTP methods is counted under "other", and never adds series of its own."""
    client = app.test_client()
    for method in ("FOO", "BAR", "BAZ"):
        assert client.open("/", method=method).status_code == 405
    body = client.get("/metrics", headers={"Authorization": "Bearer scraper-token-123"}).text
    assert 'method="other",status="405"' in body
    assert not any(f'method="{method}"' in body for method in ("FOO", "BAR", "BAZ"))


@pytest.fixture
def json_lines():
    """What the production JSON handler (LOG_FORMAT=json) writes while the test runs: a
    function giving every line's fields' values as one text (JSON's escapes undone)."""
    stream = io.StringIO()
    handler = logs.json_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)

    def written() -> str:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        return "\n".join(str(value) for line in lines for value in line.values())

    yield written
    root.removeHandler(handler)


def test_an_unhandled_error_on_a_link_logs_no_token(app, client, json_lines, monkeypatch):
    """The database gone while a link is opened: the 500's lines (Flask's "Exception on
    <path>", ours with the incident, the traceback) keep the token's subscriber part only."""

    def database_gone(token):
        raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(links, "subscriber_for_token", database_gone)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the 500 page
    assert client.get(f"/{TOKEN}").status_code == 500
    lines = json_lines()
    assert "Exception on /AQ.…" in lines and "unhandled_error incident=" in lines
    assert "server closed the connection" in lines  # the traceback is kept, made private
    assert SIGNATURE not in lines


@pytest.mark.own_app  # adds a route
def test_a_database_error_logs_no_number(app, json_lines):
    """A database error's text lists the statement's values unless told not to, and a
    PostgreSQL one names the row's in its DETAIL: the lines about the 500 mask the number."""

    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/duplicate-number")
    def duplicate_number():
        for key in ("a", "b"):
            db.session.add(Subscriber(phone_e164="+358401234567", language="fi", link_key=key,
                                      created_at=utcnow()))  # fmt: skip
            db.session.flush()
        return "unreachable"

    assert app.test_client().get("/duplicate-number").status_code == 500
    lines = json_lines()
    assert "IntegrityError" in lines
    assert "401234567" not in lines


@pytest.mark.parametrize(
    ("logged", "written"),
    [
        ("Exception on /AQ.I08kXpW0UpfC7tTT [GET]", "Exception on /AQ.… [GET]"),
        ("GET /AQ%2EI08kXpW0UpfC7tTT", "GET /AQ.…"),
        ("next=%2FAQ.I08kXpW0UpfC7tTT", "next=%2FAQ.…"),
        ("?t=AQ.I08kXpW0UpfC7tTT&x=1", "?t=AQ.…&x=1"),
        ("Key (phone_e164)=(+358401234567)", "Key (phone_e164)=(+358 40 *** **67)"),
        ("to=358401234567", "to=+358 40 *** **67"),
        ("phone=%2B358401234567", "phone=+358 40 *** **67"),
        ("+27821234567 abroad", "+27 82 *** **67 abroad"),
        ("typed 0401234567", "typed ***"),
        ('File "/srv/viihde/register/confirmation.py", in self.dispatch_request', None),
        ("sid SM0123456789abcdef0123456789abcdef", None),
        ("Worker 3ce2796b033b43e7ae056285124c05b9: done, quitting", None),
    ],
)  # fmt: skip
def test_every_record_is_made_private(app, caplog, logged, written):
    """Any logger, any line: a link's token where an address or a parameter puts it, in any
    encoding, and a number in any of the forms the register and people write it; what
    only looks like one in a traceback (a file, a method, a message id) stays readable."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("%s", logged)
    assert caplog.records[-1].getMessage() == (written or logged)


@pytest.mark.parametrize(
    ("line", "shows_one"),
    [
        ("Worker 3ce2796b033b43e7ae056285124c05b9: done, quitting", False),
        ("job 1b4e28ba-2fa1-4d2b-a3e1-056285124c05 queued", False),
        ("message SM0123ab056285124c05b93ce2796b0334 sent", False),
        ("Worker 3ce2796b033b43e7ae056285124c05b9: sent to 0401234567", True),
        ("to=+358401234567", True),
        ("Key (phone_e164)=(358401234567)", True),
        ("typed 050 1234567 as 0501234567.", True),
    ],
)
def test_the_tests_see_a_number_in_clear_and_not_in_a_random_identifier(line, shows_one):
    """Every test's log check (conftest's ``no_personal_data_in_logs``) flags a number in
    clear and not the digits of an RQ worker's uuid4 name: a CI run failed on
    "…ae056285124c05b9", which reads like 056 285124 by chance."""
    assert number_in_clear(line) is shows_one


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize(
    ("template", "arguments"),
    [("count %d", ("x",)), ("two %s %s", (1,)), ("shown %s", (Unprintable(),))],
)
def test_a_logging_call_that_cannot_be_formatted_does_not_raise(app, caplog, template, arguments):
    """A library's faulty logging call (arguments that do not fit, a value whose text
    raises) neither raises into its caller nor has its arguments printed raw: the line
    says it was withheld."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info(template, *arguments)
    assert caplog.records[-1].getMessage().startswith("log_record_withheld")


def test_json_lines_leave_the_record_to_other_handlers(app, json_lines, caplog):
    """A library's extra field stays out of the JSON line, not out of the record: another
    handler (here pytest's) still has it."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("rq.worker").error("failed", extra={"arguments": (7, "text")})
    assert "failed" in json_lines() and "text" not in json_lines()
    assert caplog.records[-1].arguments == (7, "text")


@pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": "scraper-token-123"}])
def test_metrics_show_how_long_the_oldest_unsent_sms_has_waited(app, client):
    """Dead workers with Redis up leave messages queued and the queue looking busy: the
    scrape says how long the oldest one not yet handed to the provider has waited."""
    from datetime import timedelta

    from viihde.sms import log_sms

    scrape = {"Authorization": "Bearer scraper-token-123"}
    assert "viihde_sms_oldest_waiting_seconds 0.0" in client.get("/metrics", headers=scrape).text
    with app.app_context():
        log_sms("+358401234567", "Hei!", "welcome", utcnow() - timedelta(minutes=5))
        db.session.commit()
    body = client.get("/metrics", headers=scrape).text
    (line,) = [x for x in body.splitlines() if x.startswith("viihde_sms_oldest_waiting_seconds ")]
    assert 299 < float(line.split()[1]) < 330
