"""Look a number up, read the card, act on it; each read and action goes to the audit log."""

from __future__ import annotations

import json
from functools import wraps

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import AuditAction, ConsentActor, ConsentSource, ErasureSource
from viihde.phone import PhoneError
from viihde.register import access, audit, consent, erasure, holdings, links, lookup
from viihde.register.holdings import Whose
from viihde.register.purposes import configured
from viihde.sms import commit_then_send
from viihde.web.messages import PHONE_REFUSALS
from viihde.web.ratelimits import Rule, limited
from viihde.web.request import client_ip
from viihde.web.staff import bp
from viihde.web.staff.forms import ButtonForm, EraseForm, SearchForm, WithdrawForm


def actor() -> audit.Actor:
    return audit.Actor.staff(current_user, client_ip())


def admin_required(view):
    """Admins only (erasure, the audit log, the team): support staff get 403."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            current_app.logger.warning(
                "authz_fail staff=%s view=%s", current_user.id, view.__name__
            )
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _search_limit() -> str:
    return current_app.config["STAFF_SEARCH_LIMIT"]


def _per_staff_member() -> str:
    return f"staff:{getattr(current_user, 'id', None)}"


#: A card (or an access answer) opened by its id, counted as a look-up is: ids run in
#: order, and walking them must be as slow as walking the last digits.
_READING_BY_ID = Rule(_search_limit, "staff-card", _per_staff_member)
_reading_by_id = limited(_READING_BY_ID, methods=("GET",))
#: An action on a card that did not pass shows the card again (a 400): counted alike.
_card_shown_again = limited(_READING_BY_ID, counts=lambda response: response.status_code == 400)


@bp.route("/", methods=["GET", "POST"])
@limited(Rule(_search_limit, "staff-search", _per_staff_member))
def home():
    """Search by a number in any format, or by its last digits (each search counts against
    STAFF_SEARCH_LIMIT: walking the register by last digits is slow, and on record)."""
    form = SearchForm()
    if not form.validate_on_submit():
        return render_template("staff/home.html", form=form), 400 if form.errors else 200
    try:
        search = lookup.read_search(form.query.data, current_app.config["ALLOWED_REGIONS"])
    except PhoneError as error:
        form.query.errors = [PHONE_REFUSALS[error.reason]]
        return render_template("staff/home.html", form=form), 400
    if search.last_digits:
        # The list shows each match's number: each is on record as looked up (the log,
        # filtered by a number, finds the search), or the search alone when none matched.
        detail = f"last {len(search.last_digits)} digits"
        matches = lookup.find_by_last_digits(search.last_digits)
        for phone in [match.phone_e164 for match in matches] or [None]:
            audit.record(actor(), AuditAction.SEARCH, utcnow(), phone_e164=phone, detail=detail)
        page = render_template("staff/home.html", form=form, matches=matches)
        db.session.commit()
        return page
    phone = search.phone_e164
    audit.record(actor(), AuditAction.SEARCH, utcnow(), phone_e164=phone, detail="number")
    subscriber = lookup.subscriber_by_phone(phone)
    if subscriber is not None:
        db.session.commit()
        return redirect(url_for("staff.card", subscriber_id=subscriber.id))
    return _audited_card(phone, None)


def _card(phone: str, subscriber) -> dict:
    data, holder_since = access.card(phone, subscriber)
    return {
        "data": data,
        "subscriber": subscriber,
        "holder_since": holder_since,
        "purposes": configured(),
        "withdraw_form": WithdrawForm(),
        "erase_form": EraseForm(),
        "button": ButtonForm(),
    }


def _audited_card(phone: str, subscriber, **forms) -> str:
    """The card of ``phone`` (its subscriber, or None: not in the register), its look-up
    on record: read and rendered in the audit entry's transaction, committed before the
    page leaves (nothing is shown unless its look-up is on record, and nothing read is
    read again after the commit, which expires what the session holds)."""
    audit.record(actor(), AuditAction.VIEW_CARD, utcnow(), phone_e164=phone)
    page = render_template("staff/card.html", **(_card(phone, subscriber) | forms))
    db.session.commit()
    return page


def _card_again(subscriber, **failed_form):
    """The card once more with the form that did not pass, its errors shown: a 400 (and a
    look-up on record, as any showing of the card)."""
    return _audited_card(subscriber.phone_e164, subscriber, **failed_form), 400


def _subscriber_or_404(subscriber_id: int):
    subscriber = lookup.subscriber_by_id(subscriber_id)
    if subscriber is None:
        abort(404)
    return subscriber


@bp.get("/card/<id:subscriber_id>")
@_reading_by_id
def card(subscriber_id: int):
    """The subscriber card: status, consents, timeline, SMS log, code attempts."""
    subscriber = _subscriber_or_404(subscriber_id)
    return _audited_card(subscriber.phone_e164, subscriber)


@bp.post("/card/<id:subscriber_id>/withdraw")
@_card_shown_again
def withdraw(subscriber_id: int):
    """Record a withdrawal the person asked for some other way (a call, a letter)."""
    subscriber = _subscriber_or_404(subscriber_id)
    form = WithdrawForm()
    if not form.validate_on_submit():
        return _card_again(subscriber, withdraw_form=form)
    evidence = consent.Evidence(ip=client_ip())
    context = consent.ConsentContext(
        ConsentSource.STAFF, actor=ConsentActor.staff_member(current_user.id), evidence=evidence
    )
    consent.withdraw_all(subscriber.id, context, utcnow())
    audit.record(
        actor(),
        AuditAction.WITHDRAW,
        utcnow(),
        phone_e164=subscriber.phone_e164,
        detail=form.reason.data,
    )
    db.session.commit()  # the withdrawal and its audit entry: one transaction
    flash(_("All marketing consent withdrawn."))
    return redirect(url_for("staff.card", subscriber_id=subscriber.id))


@bp.post("/card/<id:subscriber_id>/send-link")
def send_link(subscriber_id: int):
    """Text the person their preference link."""
    subscriber = _subscriber_or_404(subscriber_id)
    if ButtonForm().validate_on_submit():
        links.send_link(subscriber.id, utcnow())
        audit.record(actor(), AuditAction.SEND_LINK, utcnow(), phone_e164=subscriber.phone_e164)
        commit_then_send(utcnow())  # the SMS's row with its audit entry, then the SMS
        flash(_("The preference link was sent by SMS."))
    return redirect(url_for("staff.card", subscriber_id=subscriber.id))


def _answer(subscriber) -> tuple[dict, bool]:
    """What an access answer about the subscriber's number holds, and whether it is the
    earlier holders' (``?holding=earlier``) rather than the current holder's."""
    earlier = request.args.get("holding") == Whose.EARLIER
    if earlier and holdings.holder_since(subscriber.id) is not None:
        return access.export(subscriber.phone_e164, Whose.EARLIER), True
    return access.export(subscriber.phone_e164, Whose.CURRENT), False


@bp.get("/card/<id:subscriber_id>/export.json")
@_reading_by_id
def export_json(subscriber_id: int):
    """What is stored, as the person's own download gives it: of the current holding only
    (or, asked for, of the earlier holders'), as `flask subject export --holding` does."""
    subscriber = _subscriber_or_404(subscriber_id)
    data, earlier = _answer(subscriber)
    detail = "json earlier holder" if earlier else "json"
    audit.record(
        actor(), AuditAction.EXPORT, utcnow(), phone_e164=subscriber.phone_e164, detail=detail
    )
    db.session.commit()
    response = Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="subject-{subscriber.id}.json"'
    return response


@bp.get("/card/<id:subscriber_id>/export")
@_reading_by_id
def export_page(subscriber_id: int):
    """A printable answer to a written access request: the current holder's records only,
    unless the earlier holders' are asked for (a number that changed hands)."""
    subscriber = _subscriber_or_404(subscriber_id)
    data, earlier = _answer(subscriber)
    detail = "print earlier holder" if earlier else "print"
    audit.record(
        actor(), AuditAction.EXPORT, utcnow(), phone_e164=subscriber.phone_e164, detail=detail
    )
    db.session.commit()
    return render_template(
        "staff/export.html",
        data=data,
        holder_since=holdings.holder_since(subscriber.id),
        earlier=earlier,
        now=utcnow(),
    )


@bp.post("/card/<id:subscriber_id>/erase")
@admin_required
@_card_shown_again
def erase(subscriber_id: int):
    """Erase the person's data (admins, with a reason and a confirmation)."""
    subscriber = _subscriber_or_404(subscriber_id)
    form = EraseForm()
    if not form.validate_on_submit():
        return _card_again(subscriber, erase_form=form)
    phone = subscriber.phone_e164
    erasure.erase(phone, ErasureSource.STAFF, utcnow())
    audit.record(actor(), AuditAction.ERASE, utcnow(), phone_e164=phone, detail=form.reason.data)
    db.session.commit()  # the erasure and its audit entry: one transaction
    flash(_("The data was erased. Only a tombstone remains."))
    return redirect(url_for("staff.home"))
