"""Sign-up pages: parse the form, call one domain function, render or redirect."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from ..clock import utcnow
from ..consent import Evidence
from ..notices import PRIVACY_NOTICE_VERSION
from ..phone import mask
from ..verification import (
    CodeRefused,
    Outcome,
    Refusal,
    SignupDetails,
    confirm_code,
    pending_verification,
    request_code,
    resend_code,
)
from ..web import client_ip, client_user_agent
from .forms import CodeForm, ResendForm, SignupForm, attribution_from

bp = Blueprint("signup", __name__)

PENDING = "verification"  # session key: the id of this browser's pending verification
CONFIRMED = "confirmed"  # session key: the subscriber confirmed in this browser, and when


def refusal_message(refusal: CodeRefused) -> str:
    """The visitor's explanation of why no code was sent."""
    if refusal.reason == Refusal.TOO_SOON:
        return ngettext(
            "A code was sent a moment ago. You can ask for a new one in %(num)d second.",
            "A code was sent a moment ago. You can ask for a new one in %(num)d seconds.",
            refusal.retry_after,
        )
    if refusal.reason == Refusal.HOURLY_LIMIT:
        minutes = max(1, round(refusal.retry_after / 60))
        return ngettext(
            "Too many codes were asked for this number. Try again in %(num)d minute.",
            "Too many codes were asked for this number. Try again in %(num)d minutes.",
            minutes,
        )
    return _("We could not send the code just now. Please try again in a moment.")


def _status_for(refusal: CodeRefused) -> int:
    return 503 if refusal.reason == Refusal.SEND_FAILED else 429


def _client_details(form: SignupForm) -> SignupDetails:
    evidence = Evidence(
        utm_source=form.utm_source.data,
        utm_medium=form.utm_medium.data,
        utm_campaign=form.utm_campaign.data,
        click_id=form.click_id.data,
        ip=client_ip(),
        user_agent=client_user_agent(),
    )
    return SignupDetails(language=str(get_locale()), evidence=evidence)


@bp.route("/", methods=["GET", "POST"])
def landing():
    """The ad landing page: a number, a consent box, and a code by SMS."""
    form = (
        SignupForm()
        if request.method == "POST"
        else SignupForm(data=attribution_from(request.args))
    )
    status = 200
    if form.validate_on_submit():
        try:
            verification = request_code(
                form.phone_e164, _client_details(form), utcnow(), pending_id=session.get(PENDING)
            )
        except CodeRefused as refusal:
            form.phone.errors = [refusal_message(refusal)]
            status = _status_for(refusal)
        else:
            session[PENDING] = verification.id
            return redirect(url_for(".code"))
    elif form.errors:
        status = 400
    return render_template("signup/landing.html", form=form), status


def _render_code_page(verification, form: CodeForm, status: int = 200):
    return (
        render_template(
            "signup/code.html",
            form=form,
            resend_form=ResendForm(),
            masked_number=mask(verification.phone_e164),
            change_number_url=url_for(
                ".landing",
                utm_source=verification.utm_source,
                utm_medium=verification.utm_medium,
                utm_campaign=verification.utm_campaign,
            ),
        ),
        status,
    )


@bp.route("/code", methods=["GET", "POST"])
def code():
    """Type the code from the SMS."""
    verification = pending_verification(session.get(PENDING))
    if verification is None:
        return redirect(url_for(".landing"))
    form = CodeForm()
    if not form.validate_on_submit():
        return _render_code_page(verification, form, 400 if form.errors else 200)
    result = confirm_code(verification.id, form.code.data, utcnow())
    if result.outcome in (Outcome.CONFIRMED, Outcome.USED):
        # USED here means this browser's own twin request confirmed it a moment ago.
        if result.subscriber_id is not None:
            session[CONFIRMED] = {"s": result.subscriber_id, "at": int(utcnow().timestamp())}
        session.pop(PENDING, None)
        return redirect(url_for(".done"))
    if result.outcome == Outcome.UNKNOWN:
        return redirect(url_for(".landing"))
    form.code.errors = [_code_message(result)]
    return _render_code_page(verification, form, 400)


def _code_message(result) -> str:
    if result.outcome == Outcome.WRONG:
        return ngettext(
            "That code is not right. You have %(num)d try left.",
            "That code is not right. You have %(num)d tries left.",
            result.attempts_left,
        )
    if result.outcome == Outcome.EXPIRED:
        return _("The code has expired. Ask for a new code below.")
    return _("Too many wrong tries, so this code no longer works. Ask for a new code below.")


@bp.post("/code/resend")
def resend():
    """Send a new code to the same number."""
    verification = pending_verification(session.get(PENDING))
    if verification is None or not ResendForm().validate_on_submit():
        return redirect(url_for(".landing"))
    try:
        new = resend_code(verification.id, utcnow())
    except CodeRefused as refusal:
        form = CodeForm(formdata=None)
        form.code.errors = [refusal_message(refusal)]
        return _render_code_page(verification, form, _status_for(refusal))
    except LookupError:
        return redirect(url_for(".landing"))
    session[PENDING] = new.id
    flash(_("A new code is on its way. The earlier code no longer works."))
    return redirect(url_for(".code"))


@bp.get("/welcome")
def done():
    """The sign-up is confirmed (only a browser that confirmed one sees this)."""
    if CONFIRMED not in session:
        return redirect(url_for(".landing"))
    return render_template("signup/done.html")


@bp.get("/privacy")
def privacy():
    """The privacy notice, with the controller's details from configuration."""
    return render_template("pages/privacy.html", version=PRIVACY_NOTICE_VERSION)
