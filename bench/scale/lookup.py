"""Look-up: staff look-up latency, the console's code path in process, then over HTTP."""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Callable

from bench.scale.database import flask_app


def typed(phone: str, style: int) -> str:
    """A number as support types what a caller reads out."""
    national = "0" + phone[4:]
    return (
        f"{national[:3]} {national[3:6]} {national[6:]}",  # 040 123 4567
        phone,  # +358401234567
        national,  # 0401234567
        f"+358 {phone[4:6]} {phone[6:9]} {phone[9:]}",  # +358 40 123 4567
    )[style % 4]


def check(condition: bool, problem: str) -> None:
    """Stop the benchmark if it measured something other than what it means to."""
    if not condition:
        raise SystemExit(f"look-up: {problem}")


def percentiles(nanoseconds: list[int]) -> dict[str, float]:
    """p50, p95, p99 and the maximum, in milliseconds (nearest rank)."""
    ordered = sorted(nanoseconds)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6, 2)

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1] / 1e6, 2),
    }


def lookup(samples: int, digit_samples: int, seed: int) -> dict:
    """Staff look-up latency: the console's code path in process, then through HTTP."""
    import pyotp
    from sqlalchemy import func, select

    from viihde.clock import utcnow
    from viihde.extensions import db
    from viihde.models import Subscriber
    from viihde.register import access, accounts, lookup

    app = flask_app()
    rng = random.Random(seed)  # noqa: S311  (which numbers to look up)
    results: dict[str, dict] = {}
    with app.app_context():
        top = db.session.scalar(select(func.max(Subscriber.id)))
        ids = rng.sample(range(1, top + 1), min(samples + 50, top))
        phones = dict(
            db.session.execute(
                select(Subscriber.id, Subscriber.phone_e164).where(Subscriber.id.in_(ids))
            ).all()
        )
        db.session.remove()
    picked = [(i, phones[i]) for i in ids if i in phones]
    regions = app.config["ALLOWED_REGIONS"]

    def timed(step: Callable[[], object]) -> int:
        """One step in a fresh session (a request's), the session's end not counted."""
        began = time.perf_counter_ns()
        step()
        elapsed = time.perf_counter_ns() - began
        db.session.remove()
        return elapsed

    find_ns, card_ns = [], []
    with app.app_context():
        for n, (subscriber_id, phone) in enumerate(picked):
            query = typed(phone, n)

            def find(query=query, subscriber_id=subscriber_id):
                search = lookup.read_search(query, regions)
                subscriber = lookup.subscriber_by_phone(search.phone_e164)
                check(subscriber.id == subscriber_id, f"{query} found someone else")

            def card(subscriber_id=subscriber_id):
                subscriber = lookup.subscriber_by_id(subscriber_id)
                data = access.export(subscriber.phone_e164)
                check(bool(data["consent_events"]), "a card without consent events")

            a, b = timed(find), timed(card)
            if n >= 50:  # the first 50 warm the caches up
                find_ns.append(a)
                card_ns.append(b)
        results["find (parse + subscriber_by_phone)"] = percentiles(find_ns)
        results["card data (subscriber_by_id + export)"] = percentiles(card_ns)
        results["find + card data"] = percentiles(
            [a + b for a, b in zip(find_ns, card_ns, strict=True)]
        )

        # The last 6 or 7 digits. read_search takes those that begin like a short Finnish
        # mobile number (4x..., 50...) for a whole number: they are left out, and counted.
        tails, taken_whole = [], 0
        for n, (subscriber_id, phone) in enumerate(picked):
            if len(tails) == digit_samples + 5:
                break
            digits = phone[-6 - n % 2 :]
            if lookup.read_search(digits, regions).last_digits:
                tails.append((subscriber_id, digits))
            else:
                taken_whole += 1
        digits_ns = []
        for n, (_, digits) in enumerate(tails):
            elapsed = timed(lambda digits=digits: lookup.find_by_last_digits(digits))
            if n >= 5:
                digits_ns.append(elapsed)
        results["last digits (find_by_last_digits)"] = percentiles(digits_ns)
        results["last digits (find_by_last_digits)"]["taken_as_a_whole_number"] = taken_whole

        # The console itself: an admin signed in with password and TOTP.
        email = f"scale-{int(time.time())}@viihdepaketti.fi"
        password = "mittaus-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
        staff = accounts.create_staff(email, "admin", password, utcnow())
        staff.totp_secret = accounts.new_totp_secret()
        secret = staff.totp_secret
        db.session.commit()
        db.session.remove()

    client = app.test_client()
    base_url = app.config["PUBLIC_BASE_URL"]

    def form_token(path: str) -> str:
        page = client.get(path, base_url=base_url).text
        marker = 'name="csrf_token" type="hidden" value="'
        return page.split(marker, 1)[1].split('"', 1)[0]

    signed_in = client.post(
        "/staff/login",
        data={"csrf_token": form_token("/staff/login"), "email": email, "password": password},
        base_url=base_url,
    )
    check(signed_in.headers.get("Location", "").endswith("/totp"), "no TOTP step")
    signed_in = client.post(
        "/staff/login/totp",
        data={"csrf_token": form_token("/staff/login/totp"), "code": pyotp.TOTP(secret).now()},
        base_url=base_url,
    )
    check(signed_in.headers.get("Location", "").endswith("/staff/"), "TOTP refused")
    token = form_token("/staff/")

    def search(query: str):
        return client.post("/staff/", data={"csrf_token": token, "query": query}, base_url=base_url)

    search_ns, view_ns = [], []
    for n, (subscriber_id, phone) in enumerate(picked):
        began = time.perf_counter_ns()
        found = search(typed(phone, n))
        middle = time.perf_counter_ns()
        shown = client.get(found.headers["Location"], base_url=base_url)
        ended = time.perf_counter_ns()
        check(found.headers.get("Location", "").endswith(f"/card/{subscriber_id}"), "search")
        check(shown.status_code == 200, f"the card answered {shown.status_code}")
        if n >= 50:
            search_ns.append(middle - began)
            view_ns.append(ended - middle)
    results["HTTP POST /staff/ (search, audited, 302)"] = percentiles(search_ns)
    results["HTTP GET /staff/card/<id> (audited, rendered)"] = percentiles(view_ns)
    results["HTTP search + card"] = percentiles(
        [a + b for a, b in zip(search_ns, view_ns, strict=True)]
    )

    digits_ns = []
    for n, (subscriber_id, digits) in enumerate(tails):
        began = time.perf_counter_ns()
        listed = search(digits)
        elapsed = time.perf_counter_ns() - began
        check(f"/staff/card/{subscriber_id}" in listed.text, "not among the last digits' list")
        if n >= 5:
            digits_ns.append(elapsed)
    results["HTTP POST /staff/ (last digits, audited)"] = percentiles(digits_ns)
    return results
