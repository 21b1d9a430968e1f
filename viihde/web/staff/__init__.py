"""The support console: named staff only, every read and action audited."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from viihde.clock import utcnow
from viihde.extensions import login_manager
from viihde.register import accounts
from viihde.register.budget import pause_hint

bp = Blueprint("staff", __name__, url_prefix="/staff")

#: Endpoints a signed-out person may reach: the login steps.
PUBLIC_ENDPOINTS = {"staff.login", "staff.login_totp", "staff.enrol_totp"}
SEEN = "staff_seen"  # session key: when this staff session last did anything
SIGNED_IN = "staff_signed_in"  # session key: when this staff session signed in


@login_manager.user_loader
def load_staff(token: str):
    """The staff member of a session, unless disabled or their sessions were ended."""
    return accounts.from_session_token(token)


login_manager.login_view = "staff.login"
login_manager.login_message = None


@bp.before_request
def require_signed_in_staff():
    """Everything under /staff/ is for signed-in staff. A session ends after 30 idle
    minutes, and 12 hours after its sign-in however busy it is."""
    if not current_user.is_authenticated:
        return None if request.endpoint in PUBLIC_ENDPOINTS else redirect(url_for("staff.login"))
    now = utcnow().timestamp()
    idle = timedelta(minutes=current_app.config["STAFF_IDLE_MINUTES"]).total_seconds()
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if now - session.get(SIGNED_IN, 0) > lifetime:
        reason = _("You were signed out 12 hours after signing in. Please sign in again.")
    elif now - session.get(SEEN, 0) > idle:
        reason = _("You were signed out after 30 minutes without activity. Please sign in again.")
    else:
        session[SEEN] = now
        return None
    logout_user()
    session.clear()
    flash(reason)
    return redirect(url_for("staff.login"))


@bp.context_processor
def sending_state() -> dict:
    """Who is signed in, and (staff see it within BUDGET_HINT_SECONDS) whether the SMS
    budget breaker has paused sign-ups. Only the console's pages load the user
    (viihde/__init__.py)."""
    return {
        "current_user": current_user,
        "sms_pause": pause_hint(utcnow()) if current_user.is_authenticated else None,
    }


@bp.after_request
def never_cache(response):
    """Console pages show personal data: browsers and proxies must not keep them."""
    response.headers["Cache-Control"] = "no-store"
    return response


from viihde.web.staff import admin, auth, campaigns, console, dashboard  # noqa: E402, F401  (views register on bp)
