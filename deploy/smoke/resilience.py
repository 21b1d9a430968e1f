"""A web instance and a worker stop mid-run: sign-ups go on, nothing lost or sent twice."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests

from deploy.smoke.scenes import Scene
from deploy.smoke.stack import OUTBOX, instance, query, supervisor
from deploy.smoke.visitors import client, e164, is_code, random_number, sign_up

RESILIENCE_SIGN_UPS = 24


def resilience(scene: Scene) -> str:
    """Sign-ups while web-1 and worker-1 stop: every one answered, nothing lost or twice."""
    numbers = [random_number() for _ in range(RESILIENCE_SIGN_UPS)]
    stopped_at: list[datetime] = []

    def one(index: int) -> str:
        if index == RESILIENCE_SIGN_UPS // 3:
            stopped_at.append(datetime.now(UTC))
            instance("stop", "web-1")
            instance("stop", "worker-1")
        sign_up(client(30 + index), numbers[index])
        return numbers[index]

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(one, range(RESILIENCE_SIGN_UPS)))
    assert done == numbers
    status = supervisor("status")
    assert re.search(r"viihde:web-1\s+STOPPED", status) and re.search(
        r"viihde:worker-1\s+STOPPED", status
    ), status
    phones = [e164(number) for number in numbers]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (waiting,) = query(
            "SELECT count(*) FROM sms_messages WHERE phone_e164 = ANY(%s)"
            " AND status IN ('queued', 'sending')",
            phones,
        )[0]
        if not waiting:
            break
        time.sleep(0.5)
    subscribers = query(
        "SELECT phone_e164, count(*) FROM subscribers WHERE phone_e164 = ANY(%s)"
        " GROUP BY phone_e164",
        phones,
    )
    assert sorted(subscribers) == sorted((phone, 1) for phone in phones), "subscribers"
    events = query(
        "SELECT s.phone_e164, e.purpose, count(*) FROM consent_events e JOIN subscribers s"
        " ON s.id = e.subscriber_id WHERE s.phone_e164 = ANY(%s) GROUP BY 1, 2",
        phones,
    )
    assert {n for *_, n in events} == {1} and len(events) == 3 * len(phones), "consent events"
    messages = query(
        "SELECT phone_e164, kind, status, created_at FROM sms_messages WHERE phone_e164 = ANY(%s)",
        phones,
    )
    kinds = Counter((phone, kind) for phone, kind, _, _ in messages)
    assert set(kinds.values()) == {1} and len(kinds) == 2 * len(phones), "SMS rows"
    assert {status for _, _, status, _ in messages} == {"sent"}, "an SMS was not delivered"
    lines = Counter(
        (message["to"], "code" if is_code(message["body"]) else "welcome")
        for message in map(json.loads, OUTBOX.read_text().splitlines())
        if message["to"] in phones
    )
    assert set(lines.values()) == {1} and len(lines) == 2 * len(phones), "SMS sent twice or lost"
    after = sum(1 for *_, created_at in messages if created_at > stopped_at[0])
    instance("start", "web-1")
    instance("start", "worker-1")
    assert requests.get("http://127.0.0.1:8001/readyz", timeout=10).status_code == 200
    return (
        f"{len(numbers)} sign-ups, web-1 and worker-1 stopped after {len(numbers) // 3}: every "
        f"one confirmed, {len(phones)} subscribers, {len(events)} consent events, "
        f"{len(messages)} SMS each delivered once ({after} by the surviving worker), "
        "then both started again"
    )
