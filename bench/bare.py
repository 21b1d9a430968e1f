"""The ceiling: a bare Flask route served by the same gunicorn in the same run."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def ok() -> str:
    return "ok"
