"""Prepare the HTTP benchmark: migrate the register, add a subscriber, print a cookie header
that opens their preference page (the benchmark reads it from standard output)."""

from __future__ import annotations

import sys
from pathlib import Path

from flask_migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import app
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.register import consent
from viihde.tokens import preference_url

with app.app_context():
    upgrade()
    subscriber = consent.subscribe(
        "+358401234567", ("offers",), consent.ConsentContext("signup"), utcnow()
    )
    db.session.commit()
    path = preference_url(subscriber.id, subscriber.link_key).split("/", 3)[3]
client = app.test_client()
response = client.get("/" + path, base_url=app.config["PUBLIC_BASE_URL"])
print(response.headers["Set-Cookie"].split(";", 1)[0])  # the session that opens the page
