"""Staff sign-in: password, then TOTP (admins must enrol one); throttled; sessions rotated."""

from __future__ import annotations

import segno
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from .. import accounts, audit
from ..clock import utcnow
from ..extensions import limiter
from ..hashing import keyed_hash
from ..models import StaffMember
from ..web import client_ip
from . import SEEN, bp
from .forms import ButtonForm, LoginForm, TotpForm

PENDING = "staff_pending"  # session key: password checked, second step still to do
PENDING_SECONDS = 300
# A session key name (under it, the TOTP secret being enrolled), not a secret itself.
NEW_SECRET = "staff_new_totp"  # noqa: S105  # nosec B105


def _account_key() -> str:
    """Throttle per account: the keyed hash of the email being tried (or pending)."""
    email = request.form.get("email") or session.get(PENDING, {}).get("email", "")
    return "staff-login:" + keyed_hash("staff-email", accounts.normalise_email(email))


def _failed(response) -> bool:
    """Only failed tries count against the limits."""
    return response.status_code != 302


def _per_account():
    return current_app.config["STAFF_LOGIN_LIMIT_PER_ACCOUNT"]


def _per_ip():
    return current_app.config["STAFF_LOGIN_LIMIT_PER_IP"]


def _actor(staff: StaffMember) -> audit.Actor:
    return audit.Actor.staff(staff, client_ip())


def _begin_session(staff: StaffMember) -> None:
    """A new session for a signed-in person: nothing of the old one survives."""
    session.clear()
    session.permanent = True
    login_user(staff)
    session[SEEN] = utcnow().timestamp()
    accounts.record_login(staff, utcnow())
    audit.record(_actor(staff), "login", utcnow())


def _pending_staff() -> StaffMember | None:
    pending = session.get(PENDING)
    if (
        not isinstance(pending, dict)
        or utcnow().timestamp() - pending.get("at", 0) > PENDING_SECONDS
    ):
        return None
    return accounts.from_session_token(pending.get("token", ""))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_per_ip, methods=["POST"], deduct_when=_failed)
@limiter.limit(_per_account, key_func=_account_key, methods=["POST"], deduct_when=_failed)
def login():
    """Email and password; the answer never tells which part was wrong."""
    if current_user.is_authenticated:
        return redirect(url_for("staff.home"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400 if form.errors else 200
    sign_in = accounts.authenticate(form.email.data, form.password.data)
    if sign_in is None:
        current_app.logger.info("authn_login_fail step=password ip=%s", client_ip())
        form.password.errors = [_("The email or the password is wrong.")]
        return render_template("staff/login.html", form=form), 401
    session.clear()
    session[PENDING] = {
        "token": sign_in.staff.get_id(),
        "email": sign_in.staff.email,
        "at": utcnow().timestamp(),
    }
    if sign_in.needs_totp:
        return redirect(url_for("staff.login_totp"))
    if sign_in.must_enrol_totp:
        return redirect(url_for("staff.enrol_totp"))
    session.pop(PENDING)
    _begin_session(sign_in.staff)
    return redirect(url_for("staff.home"))


@bp.route("/login/totp", methods=["GET", "POST"])
@limiter.limit(_per_ip, methods=["POST"], deduct_when=_failed)
@limiter.limit(_per_account, key_func=_account_key, methods=["POST"], deduct_when=_failed)
def login_totp():
    """The second step: a code from the authenticator app, each usable once."""
    staff = _pending_staff()
    if staff is None:
        return redirect(url_for("staff.login"))
    form = TotpForm()
    if not form.validate_on_submit():
        return render_template("staff/totp.html", form=form), 400 if form.errors else 200
    if not accounts.verify_totp(staff, form.code.data, utcnow()):
        current_app.logger.info("authn_login_fail step=totp ip=%s", client_ip())
        form.code.errors = [
            _("That code is not right, or it was used already. Wait for the next one.")
        ]
        return render_template("staff/totp.html", form=form), 401
    _begin_session(staff)
    return redirect(url_for("staff.home"))


@bp.route("/totp/enrol", methods=["GET", "POST"])
@limiter.limit(_per_ip, methods=["POST"], deduct_when=_failed)
def enrol_totp():
    """Set up the authenticator app: scan the code, then type one code it shows."""
    staff = current_user if current_user.is_authenticated else _pending_staff()
    if staff is None:
        return redirect(url_for("staff.login"))
    secret = session.get(NEW_SECRET) or accounts.new_totp_secret()
    session[NEW_SECRET] = secret
    form = TotpForm()
    if form.validate_on_submit():
        if accounts.enrol_totp(staff, secret, form.code.data, utcnow()):
            session.pop(NEW_SECRET, None)
            audit.record(_actor(staff), "enrol_totp", utcnow())
            if not current_user.is_authenticated:
                _begin_session(staff)
            flash(_("Your authenticator app is set up. Every sign-in now needs a code from it."))
            return redirect(url_for("staff.home"))
        form.code.errors = [_("That code is not right. Check the app and try the next code.")]
    qr_svg = segno.make(accounts.totp_uri(secret, staff.email), error="m").svg_inline(scale=5)
    return render_template(
        "staff/enrol.html", form=form, qr_svg=qr_svg, secret=secret
    ), 400 if form.errors else 200


@bp.post("/logout")
@login_required
def logout():
    """Sign out and forget the session."""
    if ButtonForm().validate_on_submit():
        audit.record(_actor(current_user), "logout", utcnow())
        accounts.sign_out_everywhere(current_user)
        logout_user()
        session.clear()
    return redirect(url_for("staff.login"))
