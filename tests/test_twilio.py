"""Sending through the real twilio SDK, against a local stand-in of Twilio's REST API.

The stand-in (pytest-httpserver) records the SDK's real requests and answers with
Twilio's documented JSON bodies: 201 with a Message, or an error object.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Response

from viihde.extensions import db
from viihde.models import ConsentEvent, SmsMessage, Subscriber, Verification
from viihde.ops import logs
from viihde.register import consent
from viihde.sms import send_sms
from viihde.sms.backends.twilio import TwilioBackend
from viihde.sms.delivery import RetryLater, deliver, record_status

from .helpers import SIGNATURE, TOKEN, Outbox, Visitor

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "stand-in-auth-token"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NUMBER = "+358401234567"


@pytest.fixture(scope="module")
def threaded_server():
    """A stand-in that answers while an earlier request still hangs (as Twilio would)."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def httpserver(threaded_server):
    yield threaded_server
    threaded_server.clear()


@pytest.fixture
def config_overrides(httpserver) -> dict:
    return {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": "Viihde",
        "TWILIO_API_BASE_URL": httpserver.url_for("/"),
        "TWILIO_TIMEOUT_SECONDS": 0.5,
    }


def message_json(sid: str = "SM" + "0" * 32, to: str = NUMBER) -> dict:
    """A Message resource as Twilio returns it on 201 Created."""
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "…",
        "date_created": "Wed, 25 Nov 2026 12:00:00 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "Viihde",
        "num_segments": "1",
        "sid": sid,
        "status": "queued",
        "to": to,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


def error_json(code: int, status: int, message: str) -> dict:
    """An error as Twilio returns it."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class StandIn:
    """Queues Twilio's answers, in order, and hands out what the SDK sent."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.hung: threading.Event | None = None

    def accepts(self, sid: str = "SM" + "0" * 32) -> None:
        self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_json(
            message_json(sid), status=201
        )

    def refuses(self, code: int, status: int, message: str = "refused") -> None:
        self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_json(
            error_json(code, status, message), status=status
        )

    def hangs(self, seconds: float = 1.5) -> None:
        self.hung = threading.Event()

        def slow(_request):
            time.sleep(seconds)  # longer than TWILIO_TIMEOUT_SECONDS: the SDK gives up
            self.hung.set()
            return Response("{}", status=504, content_type="application/json")

        self.server.expect_ordered_request(MESSAGES_PATH, method="POST").respond_with_handler(slow)

    def requests(self) -> list:
        return [request for request, _response in self.server.log]

    def accepted(self) -> int:
        """How many messages the stand-in accepted (201): what the recipient would get."""
        return sum(1 for _request, response in self.server.log if response.status_code == 201)


@pytest.fixture
def twilio(httpserver):
    stand_in = StandIn(httpserver)
    yield stand_in
    if stand_in.hung is not None:  # let a hanging answer finish before the next test
        stand_in.hung.wait(timeout=10)
        time.sleep(0.1)  # the server logs the request just after the handler returns


def queued_row(kind: str = "welcome") -> SmsMessage:
    """A logged message waiting for delivery, as send_sms leaves it before the hand-over."""
    row = SmsMessage(
        phone_e164=NUMBER,
        kind=kind,
        body="Hei!",
        segments=1,
        backend="twilio",
        status="queued",
        attempts=0,
        created_at=NOW,
        updated_at=NOW,
    )
    db.session.add(row)
    db.session.commit()
    return row


def test_a_message_goes_through_the_sdk_with_a_status_callback(app_context, twilio):
    """To, From, Body, the status callback URL and the account's credentials reach Twilio."""
    twilio.accepts("SM" + "1" * 32)
    row = send_sms(NUMBER, "Hei!", "welcome", NOW)
    assert (row.status, row.provider_sid, row.attempts) == ("sent", "SM" + "1" * 32, 1)
    (request,) = twilio.requests()
    assert request.form["To"] == NUMBER
    assert request.form["From"] == "Viihde"
    assert request.form["Body"] == "Hei!"
    assert request.form["StatusCallback"] == "https://viihdepaketti.fi/webhooks/twilio/status"
    user, _, password = (
        base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
    )
    assert (user, password) == (ACCOUNT_SID, AUTH_TOKEN)


def test_a_messaging_service_replaces_the_sender(app, app_context, twilio):
    """With a Messaging Service the SDK sends its SID and no From."""
    app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "b" * 32
    twilio.accepts()
    send_sms(NUMBER, "Hei!", "welcome", NOW)
    (request,) = twilio.requests()
    assert request.form["MessagingServiceSid"] == "MG" + "b" * 32
    assert "From" not in request.form


def test_region_and_edge_keep_the_data_in_the_eu(app):
    """TWILIO_REGION=ie1 and TWILIO_EDGE=dublin send to Twilio's Irish endpoint."""
    config = dict(app.config, TWILIO_REGION="ie1", TWILIO_EDGE="dublin")
    client = TwilioBackend(config).client
    hostname = client.get_hostname(f"https://api.twilio.com{MESSAGES_PATH}")
    assert hostname == f"https://api.dublin.ie1.twilio.com{MESSAGES_PATH}"


def test_the_code_never_reaches_the_message_row(app_context, twilio):
    """Twilio gets the code; the log row keeps it redacted."""
    twilio.accepts()
    row = send_sms(NUMBER, "Koodisi on 123456.", "code", NOW, secret="123456")
    assert twilio.requests()[0].form["Body"] == "Koodisi on 123456."
    assert "123456" not in row.body


@pytest.mark.parametrize(
    ("refuse", "code"),
    [
        (lambda t: t.refuses(20429, 429, "Too Many Requests"), "20429"),
        (lambda t: t.refuses(20500, 500, "Internal Server Error"), "20500"),
        (lambda t: t.refuses(20503, 503, "Service Unavailable"), "20503"),
        (lambda t: t.hangs(), "network"),
    ],
)
def test_passing_failures_are_retried_and_the_message_goes_once(app_context, twilio, refuse, code):
    """429, 5xx or no answer: the job is retried, and the retry sends exactly one message."""
    refuse(twilio)
    twilio.accepts()
    row = queued_row()
    with pytest.raises(RetryLater):
        deliver(row.id, "Hei!", NOW, final_attempt=False)
    assert (row.status, row.error_code) == ("queued", code)
    assert deliver(row.id, "Hei!", NOW + timedelta(seconds=10), final_attempt=False) == "sent"
    assert deliver(row.id, "Hei!", NOW + timedelta(seconds=20), final_attempt=False) == "sent"
    assert twilio.accepted() == 1
    assert row.attempts == 2


def test_the_last_attempt_gives_up_instead_of_retrying(app_context, twilio):
    """When the retries are used up, a passing failure is final."""
    twilio.refuses(20500, 500)
    row = queued_row()
    assert deliver(row.id, "Hei!", NOW, final_attempt=True) == "failed"
    assert row.error_code == "20500"


def test_an_invalid_number_is_not_retried(app_context, twilio):
    """21211: the number is wrong, so no retry."""
    twilio.refuses(21211, 400, "The 'To' number is not a valid phone number.")
    row = queued_row()
    assert deliver(row.id, "Hei!", NOW, final_attempt=False) == "failed"
    assert row.error_code == "21211"
    assert deliver(row.id, "Hei!", NOW, final_attempt=False) == "failed"
    assert len(twilio.requests()) == 1


def test_an_unsubscribed_recipient_withdraws_marketing_like_stop(app_context, twilio):
    """21610: the person opted out at the provider, so all marketing consent is withdrawn."""
    subscriber = consent.subscribe(
        NUMBER, ("offers", "new_content", "competitions"), consent.ConsentContext("signup"), NOW
    )
    db.session.commit()
    twilio.refuses(21610, 400, "Attempt to send to unsubscribed recipient")
    row = queued_row()
    assert deliver(row.id, "Hei!", NOW, final_attempt=False) == "failed"
    assert consent.is_subscribed(subscriber.id) is False
    withdrawals = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == "withdraw")
    ).all()
    assert {(e.source, e.actor) for e in withdrawals} == {("sms_keyword", "provider")}
    assert len(withdrawals) == 3


def test_a_job_run_again_after_a_crash_mid_send_never_sends_twice(app_context, twilio):
    """'sending' left by a dead worker: wait while it may be in flight, then give up."""
    row = queued_row()
    row.status = "sending"
    db.session.commit()
    assert deliver(row.id, "Hei!", NOW + timedelta(seconds=5)) == "sending"
    assert deliver(row.id, "Hei!", NOW + timedelta(minutes=5)) == "failed"
    assert row.error_code == "outcome_unknown"
    assert twilio.requests() == []


def test_a_message_erased_before_delivery_is_not_sent(app_context, twilio):
    """Erasure between queueing and sending: nothing goes out."""
    assert deliver(424242, "Hei!", NOW) == "gone"
    assert twilio.requests() == []


def test_provider_down_tells_the_visitor_plainly_and_keeps_the_number(client, twilio, app):
    """A 503 from Twilio: a clear message, the typed number kept, no 500, nothing counted."""
    twilio.refuses(20503, 503, "Service Unavailable")
    response = client.post(
        "/",
        data={"phone": "040 123 4567", "consent": "y"},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 503
    assert "could not send the code" in response.text
    assert 'value="040 123 4567"' in response.text
    with app.app_context():
        assert db.session.scalar(select(Verification)) is None
    twilio.accepts()
    again = client.post(
        "/",
        data={"phone": "040 123 4567", "consent": "y"},
    )
    assert again.status_code == 302


def submit_number(client, number: str = "040 123 4567"):
    """The landing form, in English, as a visitor sends it (it carries no token)."""
    return client.post(
        "/",
        data={"phone": number, "consent": "y"},
        headers={"Accept-Language": "en"},
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (21211, "The 'To' number is not a valid phone number."),
        (21614, "'To' number is not a valid mobile number"),
        (21635, "'To' number cannot be a landline"),
        (21610, "Attempt to send to unsubscribed recipient"),
    ],
)
def test_a_number_that_cannot_receive_texts_is_told_so_and_nothing_is_kept(
    client, twilio, app, code, message
):
    """Twilio refuses the number itself: a 400 that says so (not a 503 'try later'), and
    neither the code nor its SMS row is kept."""
    twilio.refuses(code, 400, message)
    response = submit_number(client)
    assert response.status_code == 400
    assert "This number cannot receive text messages" in response.text
    assert "try again in a moment" not in response.text
    with app.app_context():
        assert db.session.scalar(select(Verification)) is None
        assert db.session.scalar(select(SmsMessage)) is None


@pytest.mark.parametrize(
    ("code", "status"), [(20429, 429), (20500, 500), (20503, 503), (21612, 400)]
)
def test_an_outage_is_still_a_503_and_keeps_the_failed_message(client, twilio, app, code, status):
    """Rate limits, Twilio's own errors and a route to the network it lacks are not the
    number's fault: 503 'try again', no code kept, the failed message in the SMS log."""
    twilio.refuses(code, status)
    response = submit_number(client)
    assert response.status_code == 503
    assert "try again in a moment" in response.text
    with app.app_context():
        assert db.session.scalar(select(Verification)) is None
        assert db.session.scalar(select(SmsMessage.error_code)) == str(code)


def test_a_code_the_network_cannot_deliver_says_the_number_cannot_receive_texts(app, twilio):
    """Twilio took the code, then reports 30005 (no such handset): the code page says the
    number cannot receive texts, not just that the code was not delivered."""
    twilio.accepts("SM" + "5" * 32)
    visitor = Visitor(app.test_client(), Outbox(app.config["SMS_OUTBOX_PATH"]))
    assert submit_number(visitor.client).status_code == 302
    with app.app_context():
        record_status("SM" + "5" * 32, "undelivered", "30005", NOW)
    page = visitor.client.get("/code", headers={"Accept-Language": "en"})
    assert "this number cannot receive text messages" in page.text


def test_send_test_command_reports_the_outcome(runner, twilio, app_context):
    """`flask sms send-test` sends through the configured backend and says how it went."""
    twilio.accepts()
    result = runner.invoke(args=["sms", "send-test", "040 123 4567"])
    assert result.exit_code == 0, result.output
    assert "+358 40 *** **67" in result.output and "sent" in result.output
    assert "401234567" not in result.output
    twilio.refuses(21211, 400)
    failed = runner.invoke(args=["sms", "send-test", "040 123 4567"])
    assert failed.exit_code == 1
    assert "21211" in failed.output


def test_worker_command_needs_redis(runner, app_context):
    """Without REDIS_URL there is no queue to work on, and the command says so."""
    result = runner.invoke(args=["worker", "--burst"])
    assert result.exit_code != 0
    assert "REDIS_URL" in result.output


# The queue against a real Redis (CI sets REDIS_URL; a laptop skips these).

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL not set")


@pytest.fixture
def redis_queue(app, redis_url):
    """The app's RQ queue on the real Redis, emptied, with retries that need no waiting."""
    from viihde.sms import queue as sms_queue

    app.config.update(REDIS_URL=redis_url, SMS_RETRY_INTERVALS=[0, 0, 0])
    sms_queue.init_app(app)
    queue = app.extensions[sms_queue.EXTENSION]
    queue.empty()
    yield queue
    queue.empty()


def work(app, queue) -> None:
    """Run a burst worker in this process, in the app context, as `flask worker` does."""
    from viihde.sms.queue import make_worker

    with app.app_context():
        make_worker(queue).work(burst=True)


@needs_redis
def test_queued_message_is_sent_by_the_worker(app, twilio, redis_queue):
    """With Redis, send_sms queues; the worker hands the message to Twilio."""
    twilio.accepts()
    with app.app_context():
        row_id = send_sms(NUMBER, "Hei!", "welcome", NOW).id
        assert db.session.get(SmsMessage, row_id).status == "queued"
    assert twilio.requests() == []
    work(app, redis_queue)
    with app.app_context():
        assert db.session.get(SmsMessage, row_id).status == "sent"
    assert len(twilio.requests()) == 1


@needs_redis
def test_the_queue_retries_429_and_500_then_sends_once(app, twilio, redis_queue):
    """RQ retries the job on passing failures; Twilio gets one successful request."""
    twilio.refuses(20429, 429)
    twilio.refuses(20500, 500)
    twilio.accepts()
    with app.app_context():
        row_id = send_sms(NUMBER, "Hei!", "welcome", NOW).id
    for _ in range(3):
        work(app, redis_queue)
    with app.app_context():
        row = db.session.get(SmsMessage, row_id)
        assert (row.status, row.attempts) == ("sent", 3)
    assert len(twilio.requests()) == 3


@needs_redis
def test_enqueueing_a_message_twice_makes_one_job(app, twilio, redis_queue):
    """The job id is the message id: a repeated enqueue cannot send twice."""
    from viihde.sms.queue import enqueue_delivery

    twilio.accepts()
    with app.app_context():
        row_id = send_sms(NUMBER, "Hei!", "welcome", NOW).id
        enqueue_delivery(row_id, "Hei!")
    work(app, redis_queue)
    assert len(twilio.requests()) == 1


@needs_redis
def test_finished_jobs_do_not_keep_or_log_the_code(app, twilio, redis_queue, caplog):
    """A code travels in the job only until it is sent, and no worker log line shows it."""
    twilio.accepts()
    with app.app_context():
        send_sms(NUMBER, "Koodisi on 123456.", "code", NOW, secret="123456")
    with caplog.at_level(logging.DEBUG):
        work(app, redis_queue)
    assert "123456" not in caplog.text
    keys = redis_queue.connection.keys("rq:job:*")
    assert not any(b"123456" in (redis_queue.connection.dump(key) or b"") for key in keys)


@needs_redis
def test_a_failed_attempt_logs_neither_the_text_nor_the_number(app, twilio, redis_queue):
    """A passing failure (Twilio's 429): RQ logs the failed job with its arguments, the
    SMS's text with the code or a live link. The production JSON lines (LOG_FORMAT=json)
    carry RQ's line, and neither the code, the link's token nor the number (the arguments
    were a field of that line)."""
    twilio.refuses(20429, 429)
    stream = io.StringIO()
    handler = logs.json_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    body = f"Koodisi on 123456. Muuta: https://viihdepaketti.fi/{TOKEN} (+358401234567)"
    try:
        with app.app_context():
            send_sms(NUMBER, body, "code", NOW, secret="123456")
        work(app, redis_queue)
    finally:
        root.removeHandler(handler)
    lines = stream.getvalue()
    assert "exception raised while executing" in lines
    assert "123456" not in lines and SIGNATURE not in lines and "401234567" not in lines


@needs_redis
def test_a_code_that_cannot_be_delivered_is_shown_on_the_code_page(app, twilio, redis_queue):
    """Queued sending: when Twilio refuses the number, the code page says so."""
    twilio.refuses(21211, 400)
    visitor = Visitor(app.test_client(), Outbox(app.config["SMS_OUTBOX_PATH"]))
    with freeze_time("2026-11-25 12:00:00"):
        assert visitor.submit_number("040 123 4567").status_code == 302
        work(app, redis_queue)
        page = visitor.client.get("/code", headers={"Accept-Language": "en"})
    assert "could not deliver the code: this number cannot receive text messages" in page.text


@needs_redis
def test_when_redis_is_down_messages_go_out_inline(app, twilio, redis_queue):
    """A queue that cannot be reached does not lose the message or fail the request."""
    from redis import Redis
    from rq import Queue

    from viihde.sms import queue as sms_queue

    app.extensions[sms_queue.EXTENSION] = Queue(
        "sms", connection=Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    )
    twilio.accepts()
    with app.app_context():
        row = send_sms(NUMBER, "Hei!", "welcome", NOW)
        assert row.status == "sent"
    assert len(twilio.requests()) == 1


def test_subscriber_table_is_untouched_by_sending(app_context, twilio):
    """Sending to a number never creates a subscriber."""
    twilio.accepts()
    send_sms(NUMBER, "Hei!", "test", NOW)
    assert db.session.scalar(select(Subscriber)) is None


@needs_redis
def test_a_worker_told_to_stop_just_after_taking_a_job_delivers_it(app, twilio, redis_queue):
    """A TERM between taking a job off the queue and starting it (rq/rq#2236): RQ's own
    worker raised StopRequested and left the job queued nowhere, for ten minutes; the
    app's worker finishes the job it took, then stops."""
    import signal

    from viihde.sms.queue import make_worker

    twilio.accepts()
    with app.app_context():
        row_id = send_sms(NUMBER, "Hei!", "welcome", NOW).id
    worker = make_worker(redis_queue)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with app.app_context():
            job, queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
            worker.request_stop(signal.SIGTERM, None)  # raised StopRequested before
            assert worker._stop_requested
            worker.execute_job(job, queue)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    with app.app_context():
        assert db.session.get(SmsMessage, row_id).status == "sent"
    assert len(twilio.requests()) == 1
