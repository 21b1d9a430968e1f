"""The app and, beside it, the ceiling: a bare Flask route. gunicorn serves both from the
same workers in the same run (``gunicorn --chdir bench bare:app``), so that their figures
compare on a noisy machine. The bare route answers at /__bare; everything else is the app."""

from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import app as viihde

bare = Flask(__name__)


@bare.get("/")
def ok() -> str:
    return "ok"


app = DispatcherMiddleware(viihde, {"/__bare": bare})
