"""The app and, beside it, the ceiling: a bare Flask route. gunicorn serves both from the
same workers in the same run (``gunicorn --chdir bench bare:app``), so that their figures
compare on a noisy machine. The bare route answers at /__bare; everything else is the app.

Two more routes, on the app itself, measure the floor under every page of it:

* ``/__bench/ok`` returns "ok" through the app's own extensions (Flask-Talisman's
  headers, Flask-Limiter, Flask-Babel, Flask-Login, the session, the request id and
  metrics): what any request to the app costs before its view does anything;
* ``/__bench/page`` renders a page that extends ``base.html`` with one translated
  title and a CSRF token, so it starts a session: the least a page with a form can do.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask, render_template
from werkzeug.middleware.dispatcher import DispatcherMiddleware

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import app as viihde

bare = Flask(__name__)


@bare.get("/")
def ok() -> str:
    return "ok"


FLOOR_PAGE = viihde.jinja_env.from_string(
    '{% extends "base.html" %}{% block title %}{{ _("Privacy notice") }}{% endblock %}'
    '{% block content %}<form method="post"><input type="hidden" name="csrf_token"'
    ' value="{{ csrf_token() }}"></form>{% endblock %}'
)


def floor_page() -> str:
    return render_template(FLOOR_PAGE)


viihde.add_url_rule("/__bench/ok", "bench_ok", ok)
viihde.add_url_rule("/__bench/page", "bench_page", floor_page)
mounts = {"/__bare": bare}
try:  # the peer (bench/peer.py), when Flask-Security-Too is installed
    from peer import peer

    mounts["/__peer"] = peer
except ImportError:
    pass
app = DispatcherMiddleware(viihde, mounts)
