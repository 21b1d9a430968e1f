"""Admins: the audit log (read and filter, never edit) and the team (recovery, disabling)."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from viihde.clock import start_of_day, utcnow
from viihde.extensions import db
from viihde.models import AuditAction, StaffMember
from viihde.phone import PhoneError, parse_mobile
from viihde.register import accounts, api_tokens, audit
from viihde.web.staff import bp
from viihde.web.staff.console import actor, admin_required
from viihde.web.staff.forms import ApiTokenForm, AuditFilterForm, ButtonForm


def _start_of(day, days_later: int = 0) -> datetime | None:
    if day is None:
        return None
    return start_of_day(day + timedelta(days=days_later))


@bp.route("/audit", methods=["GET", "POST"])
@admin_required
def audit_log():
    """The audit log, newest first, filtered by who, what, whose number and when.

    The filters are posted: a number typed in must not travel in an address, where access
    logs, the browser's history and a Referer would keep it. A GET takes the filters
    without a number from its query (an address to keep or share), and reads nothing of
    the log but what it shows; nothing here changes an entry."""
    if request.method == "POST":
        form = AuditFilterForm()
    else:
        form = AuditFilterForm(
            MultiDict(item for item in request.args.items(multi=True) if item[0] != "number")
        )
    form.action.choices = [("", _("All"))] + [(a, a) for a in audit.actions()]
    form.validate()
    phone = None
    if form.number.data:
        try:
            phone = parse_mobile(form.number.data, current_app.config["ALLOWED_REGIONS"])
        except PhoneError:
            form.number.errors = [_("Type the whole number in any format.")]
    entries = audit.entries(
        actor=form.filter_value("actor"),
        action=form.action.data or None,
        phone_e164=phone,
        since=_start_of(form.filter_value("since")),
        until=_start_of(form.filter_value("until"), days_later=1),
    )
    audit.record(actor(), AuditAction.READ_AUDIT_LOG, utcnow(), phone_e164=phone)
    db.session.commit()
    return render_template("staff/audit.html", form=form, entries=entries)


@bp.get("/team")
@admin_required
def team():
    """Who has access, their role, second factor and last sign-in."""
    return render_template("staff/team.html", staff=accounts.all_staff(), button=ButtonForm())


def _member(staff_id: int) -> StaffMember:
    member = accounts.by_id(staff_id)
    if member is None:
        abort(404)
    return member


@bp.post("/team/<id:staff_id>/reset-totp")
@admin_required
def reset_totp(staff_id: int):
    """Recovery: the person enrols a new authenticator at their next sign-in."""
    member = _member(staff_id)
    if ButtonForm().validate_on_submit():
        accounts.reset_totp(member)
        audit.record(actor(), AuditAction.RESET_TOTP, utcnow(), detail=member.email)
        db.session.commit()
        flash(_("The second factor of %(email)s was reset.", email=member.email))
    return redirect(url_for("staff.team"))


@bp.post("/team/<id:staff_id>/disable")
@admin_required
def disable(staff_id: int):
    """Shut an account; its sessions end at once. Admins cannot shut themselves out."""
    member = _member(staff_id)
    if ButtonForm().validate_on_submit() and member.id != current_user.id:
        accounts.disable(member, utcnow())
        audit.record(actor(), AuditAction.DISABLE_STAFF, utcnow(), detail=member.email)
        db.session.commit()
        flash(_("%(email)s can no longer sign in.", email=member.email))
    return redirect(url_for("staff.team"))


def _render_tokens(form: ApiTokenForm, new_token: str | None = None, status: int = 200):
    return (
        render_template(
            "staff/api_tokens.html",
            tokens=api_tokens.all_tokens(),
            form=form,
            button=ButtonForm(),
            new_token=new_token,
        ),
        status,
    )


@bp.route("/api-tokens", methods=["GET", "POST"])
@admin_required
def api_token_list():
    """Tokens for the audience API: make one (shown once), see when each was last used."""
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _render_tokens(form, status=400 if form.errors else 200)
    try:
        token, plain = api_tokens.create(form.name.data, current_user, utcnow())
    except api_tokens.TokenNameTaken:
        form.name.errors = [_("A token with this name exists already.")]
        return _render_tokens(form, status=400)
    audit.record(actor(), AuditAction.CREATE_API_TOKEN, utcnow(), detail=token.name)
    db.session.commit()
    return _render_tokens(ApiTokenForm(formdata=None), new_token=plain)


@bp.post("/api-tokens/<id:token_id>/revoke")
@admin_required
def revoke_api_token(token_id: int):
    """The token stops working at once."""
    if ButtonForm().validate_on_submit():
        token = api_tokens.revoke(token_id, utcnow())
        if token is None:
            abort(404)
        audit.record(actor(), AuditAction.REVOKE_API_TOKEN, utcnow(), detail=token.name)
        db.session.commit()
        flash(_("The token %(name)s no longer works.", name=token.name))
    return redirect(url_for("staff.api_token_list"))
