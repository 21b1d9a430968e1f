"""Preference pages: a link opens them, and only a button press changes anything."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from .. import consent, subjects
from ..clock import utcnow
from ..notices import CONSENT_TEXT
from ..phone import mask
from ..web import client_ip, client_user_agent
from .forms import ChoiceForm

bp = Blueprint("preferences", __name__)

LINK = "link"  # session key: the subscriber the opened link named, and the link's key


@bp.get("/<token:token>")
def open_link(token: str):
    """Swap the token for a session and take it out of the address bar (changes nothing)."""
    subscriber = subjects.subscriber_for_token(token)
    if subscriber is None:
        abort(404)
    session[LINK] = {"s": subscriber.id, "k": subscriber.link_key}
    return redirect(url_for(".page"))


def _subscriber():
    link = session.get(LINK)
    if not isinstance(link, dict):
        return None
    return subjects.subscriber_for_link_key(link.get("s"), link.get("k"))


@bp.get("/preferences")
def page():
    """The masked number, the current consent, and the buttons."""
    subscriber = _subscriber()
    if subscriber is None:
        abort(404)
    response = render_template(
        "preferences/page.html",
        masked_number=mask(subscriber.phone_e164),
        subscribed=consent.is_subscribed(subscriber.id),
        form=ChoiceForm(),
        consent_text=CONSENT_TEXT,
    )
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/preferences")
def change():
    """Unsubscribe or subscribe again; a repeated press records nothing more."""
    subscriber = _subscriber()
    if subscriber is None:
        abort(404)
    form = ChoiceForm()
    if form.validate_on_submit() and (form.unsubscribe.data or form.subscribe.data):
        granted = bool(form.subscribe.data) and not form.unsubscribe.data
        evidence = consent.Evidence(ip=client_ip(), user_agent=client_user_agent())
        context = consent.ConsentContext("preference_page", evidence=evidence)
        consent.set_consent(subscriber.id, consent.PURPOSES, granted, context, utcnow())
        if granted:
            flash(_("You are subscribed. Thank you!"))
        else:
            flash(_("You are unsubscribed. We will not send you marketing messages."))
    return redirect(url_for(".page"))
