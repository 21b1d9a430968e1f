"""The preference centre: a link opens it; only a button press changes anything.

Seeing, downloading and erasing the data need a fresh proof that this browser
holds the number (a code sent to it, or a sign-up confirmed here minutes ago),
because links get forwarded. Unsubscribing never does.
"""

from __future__ import annotations

import json
from dataclasses import astuple
from functools import wraps

from flask import Response, abort, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import escape

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import ConsentSource, ErasureSource
from viihde.phone import mask
from viihde.register import access, consent, erasure, links
from viihde.register.holdings import Whose
from viihde.register.purposes import configured
from viihde.sms import commit_then_send
from viihde.web import browser
from viihde.web.preferences import bp
from viihde.web.preferences.forms import ButtonForm, ChoicesForm, EraseForm
from viihde.web.request import client_ip, client_user_agent
from viihde.web.security import NO_STORE
from viihde.web.signup.shared import (
    FORM_MARK,
    NUMBER_MARK,
    SUBSCRIBER_MARK,
    has_flashes,
    spliced,
)

#: The field every form on a page reached by link carries: the subscriber it was shown for.
SHOWN_FOR = "subscriber"


@bp.get("/<token:token>")
def open_link(token: str):
    """Swap the token for a session and take it out of the address bar (changes nothing)."""
    subscriber = links.subscriber_for_token(token)
    if subscriber is None:
        abort(404)
    browser.remember_link(subscriber.id, subscriber.link_key)
    # The page's form token goes into the session this answer writes anyway: the page it
    # opens then writes no cookie (it made one and sent it back on each view).
    generate_csrf()
    return redirect(url_for(".page"))


def link_required(view):
    """Only a browser holding a live link of the subscriber gets in; ``g.subscriber``.

    A change (any POST) must come from a page shown for that subscriber: the session
    holds one link, and opening another (a second tab, or a link another site sends the
    browser to) replaces it, so a page left open would act on someone else. It changes
    nothing then: 409, open the link again."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        held = browser.linked()
        # A change (any POST) reads the row under its lock, once: the change takes no
        # second look at it.
        lock = request.method == "POST"
        if lock and held and request.form.get(SHOWN_FOR) != str(held[0]):
            abort(409)
        g.subscriber = links.subscriber_for_link_key(*held, lock=lock) if held else None
        if g.subscriber is None:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def step_up_required(view):
    """The data itself needs a fresh proof of the number; else go and get one."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not browser.recently_confirmed(g.subscriber.id, utcnow()):
            target = request.endpoint if request.endpoint in STEP_UP_TARGETS else ".data"
            return redirect(url_for(".verify", next=target.rsplit(".", 1)[-1]))
        return view(*args, **kwargs)

    return link_required(wrapped)


def _evidence() -> consent.Evidence:
    return consent.Evidence(ip=client_ip(), user_agent=client_user_agent())


@bp.get("/preferences")
def page():
    """Masked number, a switch per purpose, stop-all, and the rights: the link's check and
    the page's data in one statement, and no form objects (it only renders).

    The page is the same for everyone with the same choices in a language but for the
    masked number and the form token: rendered once per process per (language, choices)
    and those two spliced in (decision 5 of issue 18). A browser with a message to show
    after a redirect gets its page rendered for it alone."""
    held = browser.linked()
    view = links.preference_view(*held) if held else None
    if view is None:
        abort(404)
    saved = _saved(request.args.get("saved"), view.subscribed)
    context = {
        "purposes": configured(),
        "states": view.states,
        "subscribed": view.subscribed,
        "notice": SAVED[saved]() if saved else None,
    }
    token = browser.form_token()
    if has_flashes():
        own = render_template(
            "preferences/page.html", masked_number=mask(view.phone_e164), form_token=token,
            subscriber_id=held[0], **context,
        )  # fmt: skip
        return own, 200, NO_STORE
    shape = (view.subscribed, sorted((key, *astuple(state)) for key, state in view.states.items()))
    body = spliced(
        f"preferences/{get_locale()}/{shape!r}/{saved}",
        "preferences/page.html",
        lambda: {
            "masked_number": NUMBER_MARK,
            "form_token": FORM_MARK,
            "subscriber_id": SUBSCRIBER_MARK,
            "language_return": url_for(".page"),
            **context,
        },
        {
            NUMBER_MARK: escape(mask(view.phone_e164)),
            FORM_MARK: escape(token),
            SUBSCRIBER_MARK: str(held[0]),
        },
    )
    return body, 200, NO_STORE


@bp.post("/preferences")
@link_required
def change():
    """Save the switches, or stop everything; a repeated press records nothing more."""
    form = ChoicesForm()
    if not form.validate_on_submit():
        abort(400)
    context = consent.ConsentContext(ConsentSource.PREFERENCE_PAGE, evidence=_evidence())
    if form.stop_all.data:
        consent.withdraw_all(g.subscriber.id, context, utcnow())
        saved = STOPPED
    else:
        consent.set_choices(g.subscriber.id, form.choices(request.form), context, utcnow())
        saved = CHOICES
    db.session.commit()
    # What was saved goes in the address, not in a flash message: the session cookie is
    # then neither signed again here nor on the page (a flash is written, then popped).
    return redirect(url_for(".page", saved=saved))


STOPPED, CHOICES = "stopped", "choices"
#: The page's notice after a change, by the ``saved`` the change's redirect names.
SAVED = {
    STOPPED: lambda: _("All marketing is stopped. We will not send you marketing messages."),
    CHOICES: lambda: _("Your choices are saved."),
}


def _saved(named: str | None, subscribed: bool) -> str | None:
    """The notice a page asked for with ``?saved=`` shows when it is true: "stopped" only
    when nothing is granted (an address kept or made up cannot say otherwise)."""
    if named not in SAVED or (named == STOPPED and subscribed):
        return None
    return named


@bp.post("/preferences/sign-out")
@link_required
def sign_out():
    """Revoke every link sent so far and send a fresh one to the number."""
    if not ButtonForm().validate_on_submit():
        abort(400)
    masked_number = mask(g.subscriber.phone_e164)
    # A twin press that finds the links signed out already sends nothing more.
    links.revoke_links(g.subscriber.id, browser.linked()[1], utcnow())
    commit_then_send(utcnow())
    browser.forget_subscriber()
    page = render_template("preferences/signed_out.html", masked_number=masked_number)
    return page, 200, NO_STORE


def _own_data() -> dict:
    """What is stored about the number from the time this person has held it: a number
    that passed to a new holder keeps the earlier holder's records (proof of their
    consent), and those are never theirs to see."""
    return access.export(g.subscriber.phone_e164, Whose.CURRENT)


@bp.get("/preferences/data")
@step_up_required
def data():
    """Everything stored about the number, in plain language."""
    export = _own_data()
    return (
        render_template("preferences/data.html", data=export, purposes=configured()),
        200,
        NO_STORE,
    )


@bp.get("/preferences/data.json")
@step_up_required
def download_json():
    """The same JSON as ``flask subject export`` (of this holding only)."""
    data = _own_data()
    response = Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json")
    return _attachment(response, "viihde-data.json")


@bp.get("/preferences/data.csv")
@step_up_required
def download_csv():
    """The same records as one CSV table."""
    csv = access.export_csv(_own_data())
    return _attachment(Response(csv, mimetype="text/csv"), "viihde-data.csv")


def _attachment(response: Response, filename: str) -> Response:
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers.update(NO_STORE)
    return response


@bp.get("/preferences/receipt/<id:seq>")
@step_up_required
def receipt(seq: int):
    """A printable proof of one consent event: what text, which version, when, whence."""
    event = access.receipt(g.subscriber.id, seq)
    if event is None:
        abort(404)
    return (
        render_template(
            "preferences/receipt.html",
            event=event,
            number=g.subscriber.phone_e164,
        ),
        200,
        NO_STORE,
    )


@bp.route("/preferences/erase", methods=["GET", "POST"])
@step_up_required
def erase():
    """Explain what erasure means, then erase and leave only a tombstone."""
    form = EraseForm()
    if form.validate_on_submit():
        # A number that changed hands: its current holder erases their own holding only.
        erasure.erase_own(g.subscriber.id, ErasureSource.SUBJECT, utcnow())
        db.session.commit()
        browser.forget_subscriber()
        return render_template("preferences/erased.html"), 200, NO_STORE
    status = 400 if form.errors else 200
    return render_template("preferences/erase.html", form=form), status, NO_STORE


#: Where a step-up may lead back to (never an arbitrary URL).
STEP_UP_TARGETS = {
    "preferences.data",
    "preferences.download_json",
    "preferences.download_csv",
    "preferences.erase",
}
