"""``flask register``: keeping the register accurate and lean (run by hand or from cron).

Each command is a thin shell over a domain module; what it changes is audit-logged.
"""

from __future__ import annotations

from flask.cli import AppGroup

register_cli = AppGroup("register", help="Keep the register accurate and lean.")

# --- sync-holders (number holder changes) ---

# --- purge (retention) ---
