"""Staff sign-in: password, then TOTP (admins must enrol one); throttled; sessions rotated.

Wrong passwords are counted per account and client together, so nobody can lock a
colleague out from elsewhere; wrong passwords from everywhere lock an account only for
a sign-in by password alone: a correct password followed by a TOTP code still gets in.
Second-factor tries count against the account the password step proved, never against
anything the client posts.
"""

from __future__ import annotations

import segno
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from limits import parse
from redis.exceptions import RedisError

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.hashing import keyed_hash
from viihde.models import AuditAction, StaffMember
from viihde.register import accounts, audit
from viihde.web.ratelimits import Rule, limited, limits
from viihde.web.request import client_ip, client_key
from viihde.web.staff import SEEN, SIGNED_IN, bp
from viihde.web.staff.forms import ButtonForm, LoginForm, ReplaceTotpForm, TotpForm

PENDING = "staff_pending"  # session key: password checked, second step still to do
PENDING_SECONDS = 300
# A session key name (under it, what the TOTP secret being enrolled is made from, never
# the secret itself: ``accounts.enrolment_secret``), not a secret itself.
NEW_SECRET = "staff_new_totp"  # noqa: S105  # nosec B105


def _failed(response) -> bool:
    """Only failed tries count against the limits."""
    return response.status_code != 302


def _per_ip() -> str:
    return current_app.config["STAFF_LOGIN_LIMIT_PER_IP"]


def _per_client() -> str:
    return current_app.config["STAFF_LOGIN_LIMIT_PER_CLIENT"]


def _per_second_factor() -> str:
    return current_app.config["STAFF_TOTP_LIMIT_PER_ACCOUNT"]


def _email_key(email: str) -> str:
    return keyed_hash("staff-email", accounts.normalise_email(email))


def _account_and_client() -> str:
    """Wrong passwords for the email being tried, from this client."""
    return f"staff-login:{_email_key(request.form.get('email', ''))}:{client_key()}"


def _pending_token() -> str | None:
    """The account (``id:version``) whose password this session proved moments ago."""
    pending = session.get(PENDING)
    if (
        not isinstance(pending, dict)
        or utcnow().timestamp() - pending.get("at", 0) > PENDING_SECONDS
    ):
        return None
    token = pending.get("token")
    return token if isinstance(token, str) else None


def _second_factor_account() -> str:
    """Second-factor tries count against the signed-in or pending account only."""
    if current_user.is_authenticated:
        return f"staff-totp:{current_user.id}"
    return "staff-totp:" + (_pending_token() or "-").partition(":")[0]


def _no_account() -> bool:
    return not current_user.is_authenticated and _pending_token() is None


def _account_lock(email: str):
    """The limit on wrong passwords for an account from everywhere, and its counter's key."""
    setting = current_app.config["STAFF_LOGIN_LIMIT_PER_ACCOUNT"]
    return parse(setting), "staff-account:" + _email_key(email)


def _take_a_try(email: str) -> bool:
    """Take one try against the account's wrong passwords from everywhere, in the same
    step as its test (tries arriving together cannot all pass it); False when they have
    locked sign-in by password alone, or the counter cannot be reached (password alone is
    not enough then). A right password gives its try back (``_give_back``)."""
    try:
        return limits().reserve([_account_lock(email)], fallback=False)
    except RedisError:
        return False


def _give_back(email: str) -> None:
    limits().release([_account_lock(email)])


PER_IP = Rule(_per_ip, "staff-ip", client_key)
#: Wrong second-factor codes: per client, and per account (the signed-in or pending one).
_second_factor_limits = limited(
    PER_IP,
    Rule(_per_second_factor, "staff-totp", _second_factor_account, _no_account),
    counts=_failed,
)


def _actor(staff: StaffMember) -> audit.Actor:
    return audit.Actor.staff(staff, client_ip())


def _begin_session(staff: StaffMember) -> None:
    """A new session for a signed-in person (nothing of the old one survives); the
    caller commits the sign-in with its audit entry."""
    session.clear()
    session.permanent = True
    login_user(staff)
    session[SEEN] = session[SIGNED_IN] = utcnow().timestamp()
    accounts.record_login(staff, utcnow())
    audit.record(_actor(staff), AuditAction.LOGIN, utcnow())


def _pending_staff() -> StaffMember | None:
    return accounts.from_session_token(_pending_token() or "")


@bp.route("/login", methods=["GET", "POST"])
@limited(PER_IP, Rule(_per_client, "staff-login", _account_and_client), counts=_failed)
def login():
    """Email and password; the answer never tells which part was wrong."""
    if current_user.is_authenticated:
        return redirect(url_for("staff.home"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400 if form.errors else 200
    email = form.email.data
    locked = not _take_a_try(email)
    sign_in = accounts.authenticate(email, form.password.data)
    if sign_in is not None and not locked:
        _give_back(email)  # a right password is no wrong one
    if sign_in is None or (locked and not sign_in.needs_totp):
        current_app.logger.info(
            "authn_login_fail step=password locked=%s ip=%s", locked, client_ip()
        )
        if locked:
            form.password.errors = [
                _("Too many wrong passwords were typed for this account. Try again later.")
            ]
            return render_template("staff/login.html", form=form), 429
        form.password.errors = [_("The email or the password is wrong.")]
        return render_template("staff/login.html", form=form), 401
    session.clear()
    session[PENDING] = {"token": sign_in.staff.get_id(), "at": utcnow().timestamp()}
    if sign_in.needs_totp:
        return redirect(url_for("staff.login_totp"))
    if sign_in.must_enrol_totp:
        return redirect(url_for("staff.enrol_totp"))
    session.pop(PENDING)
    _begin_session(sign_in.staff)
    db.session.commit()
    return redirect(url_for("staff.home"))


@bp.route("/login/totp", methods=["GET", "POST"])
@_second_factor_limits
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
    db.session.commit()
    return redirect(url_for("staff.home"))


@bp.route("/totp/enrol", methods=["GET", "POST"])
@_second_factor_limits
def enrol_totp():
    """Set up the authenticator app: scan the code, then type one code it shows.

    A session that has only passed the password step may set up a first app, never
    replace one (that would skip the second factor); replacing needs a signed-in
    session that types a code from the current app first.
    """
    staff = current_user if current_user.is_authenticated else _pending_staff()
    if staff is None:
        return redirect(url_for("staff.login"))
    replacing = staff.totp_secret
    if replacing is not None and not current_user.is_authenticated:
        return redirect(url_for("staff.login_totp"))
    enrolment = session.get(NEW_SECRET) or accounts.new_enrolment()
    session[NEW_SECRET] = enrolment
    secret = accounts.enrolment_secret(staff.id, enrolment)
    form = ReplaceTotpForm() if replacing else TotpForm()
    if form.validate_on_submit():
        if replacing and not accounts.verify_totp(staff, form.current_code.data, utcnow()):
            current_app.logger.info("authn_login_fail step=totp_replace ip=%s", client_ip())
            form.current_code.errors = [
                _("That code is not right, or it was used already. Wait for the next one.")
            ]
        elif accounts.enrol_totp(staff, secret, form.code.data, utcnow(), replacing=replacing):
            session.pop(NEW_SECRET, None)
            audit.record(
                _actor(staff),
                AuditAction.REPLACE_TOTP if replacing else AuditAction.ENROL_TOTP,
                utcnow(),
            )
            if not current_user.is_authenticated:
                _begin_session(staff)
            db.session.commit()
            flash(_("Your authenticator app is set up. Every sign-in now needs a code from it."))
            return redirect(url_for("staff.home"))
        else:
            form.code.errors = [_("That code is not right. Check the app and try the next code.")]
    qr_svg = segno.make(accounts.totp_uri(secret, staff.email), error="m").svg_inline(scale=5)
    return render_template(
        "staff/enrol.html", form=form, qr_svg=qr_svg, secret=secret, replacing=bool(replacing)
    ), 400 if form.errors else 200


@bp.post("/logout")
@login_required
def logout():
    """Sign out and forget the session."""
    if ButtonForm().validate_on_submit():
        audit.record(_actor(current_user), AuditAction.LOGOUT, utcnow())
        accounts.sign_out_everywhere(current_user)
        db.session.commit()
        logout_user()
        session.clear()
    return redirect(url_for("staff.login"))
