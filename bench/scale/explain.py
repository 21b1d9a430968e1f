"""Explain: the plans of the queries the look-up and the export make (EXPLAIN ANALYZE)."""

from __future__ import annotations

from collections.abc import Callable

from bench.scale.database import flask_app


def explain(purpose: str) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the queries the look-up and the export make, captured
    as the app sends them; returns each plan's text."""
    from sqlalchemy import event, func, select

    from viihde.extensions import db
    from viihde.models import Subscriber
    from viihde.register import audience, consent, lookup

    app = flask_app()
    plans: dict[str, str] = {}
    with app.app_context():
        top = db.session.scalar(select(func.max(Subscriber.id)))
        phone = db.session.scalar(select(Subscriber.phone_e164).where(Subscriber.id == top // 2))
        db.session.remove()
        cases: dict[str, Callable[[], object]] = {
            "subscriber_by_phone": lambda: lookup.subscriber_by_phone(phone),
            "latest_events (the card's consents)": lambda: consent.latest_events(top // 2),
            "find_by_last_digits (6 digits)": lambda: lookup.find_by_last_digits(phone[-6:]),
            "audience.page, first page": lambda: audience.page(purpose, 0),
            "audience.page, in the middle": lambda: audience.page(purpose, top // 2),
            "audience.page, last page": lambda: audience.page(purpose, max(top - 900, 0)),
        }
        for name, call in cases.items():
            captured: list[tuple[str, object]] = []

            def capture(conn, cursor, statement, parameters, context, many, captured=captured):
                captured.append((statement, parameters))

            event.listen(db.engine, "before_cursor_execute", capture)
            try:
                call()
            finally:
                event.remove(db.engine, "before_cursor_execute", capture)
                db.session.remove()
            statement, parameters = next(
                (s, p)
                for s, p in captured
                if s.lstrip().upper().startswith(("SELECT", "WITH")) and "FROM" in s.upper()
            )
            with db.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).all()
            plans[name] = "\n".join(row[0] for row in rows)
    return plans
