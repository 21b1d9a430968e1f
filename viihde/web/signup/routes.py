"""Sign-up pages: parse the form, call one domain function, render or redirect."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from viihde.clock import utcnow
from viihde.extensions import csrf, db
from viihde.models import Verification, VerificationKind
from viihde.phone import mask
from viihde.register.budget import paused_hint
from viihde.register.codes import (
    CodePage,
    CodeRefused,
    Refusal,
    SignupDetails,
    code_not_delivered,
    code_page,
    pending_verification,
    request_code,
    resend_code,
    seconds_until_resend,
)
from viihde.register.confirmation import Outcome, confirm_code
from viihde.register.consent import Evidence
from viihde.register.notices import PRIVACY_NOTICE_VERSION, SIGNUP_TEXT_VERSION
from viihde.register.purposes import configured
from viihde.sms import commit_then_send
from viihde.web import browser, messages
from viihde.web.request import client_ip, client_user_agent
from viihde.web.security import NO_STORE, same_origin_only
from viihde.web.sending import commit_and_send_code
from viihde.web.signup import shared
from viihde.web.signup.forms import CodeForm, ResendForm, SignupForm, attribution_from
from viihde.web.throttle import code_sending, count_sent_code

bp = Blueprint("signup", __name__)


def _client_details(form: SignupForm) -> SignupDetails:
    evidence = Evidence(
        utm_source=form.utm_source.data,
        utm_medium=form.utm_medium.data,
        utm_campaign=form.utm_campaign.data,
        click_id=form.click_id.data,
        consent_text_version=SIGNUP_TEXT_VERSION,
        ip=client_ip(),
        user_agent=client_user_agent(),
    )
    return SignupDetails(language=str(get_locale()), evidence=evidence)


@bp.get("/")
def landing():
    """The ad landing page: a number, a consent box, and a code by SMS. The same bytes for
    every visitor in a language (no session, no token); the form posts to ``submit`` at
    the same address, and only that view carries the SMS limits."""
    attribution = attribution_from(request.args)
    paused = paused_hint(utcnow())
    if shared.has_flashes():
        return _render_landing(SignupForm(data=attribution))
    return shared.landing(str(get_locale()), paused, attribution)


@bp.post("/")
@csrf.exempt
@same_origin_only
@code_sending
def submit():
    """Send a code to the number typed on the landing page, or show it again with why not.

    No CSRF token: the form carries no authority (a code goes to the number typed, and the
    limits guard the SMS); a cross-site POST is refused by Fetch Metadata and Origin."""
    form = SignupForm()
    status, headers = 400, {}
    if form.validate_on_submit():
        pending_id = browser.pending_id()
        try:
            verification = request_code(
                form.phone_e164, _client_details(form), utcnow(), pending_id=pending_id
            )
            verification_id = verification.id
            commit_and_send_code(verification)
        except CodeRefused as refusal:
            db.session.commit()  # a code that could not go is forgotten
            form.phone.errors = [messages.code_refusal(refusal)]
            status = messages.code_refusal_status(refusal)
            headers = messages.code_refusal_headers(refusal)
        else:
            if verification_id != pending_id:  # not the twin of a code sent a moment ago
                count_sent_code()
            browser.remember_pending(verification_id)
            return redirect(url_for(".code"))
    return _render_landing(form, status, headers)


def _render_landing(form: SignupForm, status: int = 200, headers: dict | None = None):
    """The landing page for one browser alone (a refusal shows the number as typed, a
    flash its message): kept by no browser or proxy."""
    return (
        render_template("signup/landing.html", form=form, paused=paused_hint(utcnow())),
        status,
        {**NO_STORE, **(headers or {})},
    )


def _render_code_page(
    verification: Verification | CodePage,
    form: CodeForm,
    status: int = 200,
    headers: dict | None = None,
    undelivered: Refusal | None = None,
):
    """The code page rendered for this browser alone: with its form's errors."""
    if undelivered and not form.code.errors:
        form.code.errors = [messages.code_not_delivered(undelivered)]
    return (
        render_template(
            "signup/code.html",
            form=form,
            form_token=browser.form_token(),
            masked_number=mask(verification.phone_e164),
            resend_wait=seconds_until_resend(verification, utcnow()),
            change_number_url=_change_number_url(verification),
        ),
        status,
        {**NO_STORE, **(headers or {})},
    )


def _change_number_url(verification: Verification | CodePage) -> str:
    return url_for(
        ".landing",
        utm_source=verification.utm_source,
        utm_medium=verification.utm_medium,
        utm_campaign=verification.utm_campaign,
    )


def _show_code_page():
    """The page that asks for the code: the browser's verification in one statement
    outside a transaction, and no form object (the page is shared by every browser in a
    language, their own parts put in) unless it has an error or a message to show."""
    page = code_page(browser.pending_id())
    if page is None or page.kind != VerificationKind.SIGNUP:
        return redirect(url_for(".landing"))
    if page.undelivered or shared.has_flashes():
        return _render_code_page(page, CodeForm(formdata=None), undelivered=page.undelivered)
    body = shared.code_page(
        str(get_locale()),
        mask(page.phone_e164),
        seconds_until_resend(page, utcnow()),
        _change_number_url(page),
        browser.form_token(),
    )
    return body, 200, NO_STORE


def _pending_signup():
    verification = pending_verification(browser.pending_id())
    return (
        verification
        if verification is not None and verification.kind == VerificationKind.SIGNUP
        else None
    )


@bp.route("/code", methods=["GET", "POST"])
def code():
    """Type the code from the SMS."""
    if request.method != "POST":  # GET, and HEAD as Flask serves it
        return _show_code_page()
    verification = _pending_signup()
    if verification is None:
        return redirect(url_for(".landing"))
    form = CodeForm()
    if not form.validate_on_submit():
        return _render_code_page(
            verification, form, 400, undelivered=code_not_delivered(verification)
        )
    result = confirm_code(verification.id, form.code.data, utcnow())
    # The new subscriber's link, as the sign-up wrote it: nothing is read back after the commit.
    signed_up = result.subscriber
    link = (signed_up.id, signed_up.link_key) if signed_up is not None else None
    commit_then_send(utcnow())  # the try it took, and a sign-up with its welcome SMS
    if result.outcome == Outcome.USED:
        # This browser's own twin request (a double tap) confirmed it a moment ago: the
        # link is in the twin's answer. This one leaves the session as it is: forgetting
        # the code here would send a cookie without the link, and it arrives last.
        return redirect(url_for(".done"))
    if result.outcome == Outcome.CONFIRMED:
        if link is not None:
            browser.remember_link(*link)
            browser.remember_confirmation(link[0], utcnow())
        browser.forget_pending()
        return redirect(url_for(".done"))
    if result.outcome == Outcome.UNKNOWN:
        return redirect(url_for(".landing"))
    form.code.errors = [messages.code_outcome(result)]
    return _render_code_page(verification, form, 400, undelivered=code_not_delivered(verification))


@bp.post("/code/resend")
@code_sending
def resend():
    """Send a new code to the same number."""
    verification = _pending_signup()
    if verification is None or not ResendForm().validate_on_submit():
        return redirect(url_for(".landing"))
    try:
        new = resend_code(verification.id, utcnow())
        new_id = new.id
        commit_and_send_code(new)
    except CodeRefused as refusal:
        db.session.commit()  # a code that could not go is forgotten
        form = CodeForm(formdata=None)
        form.code.errors = [messages.code_refusal(refusal)]
        status, headers = (
            messages.code_refusal_status(refusal),
            messages.code_refusal_headers(refusal),
        )
        return _render_code_page(
            verification, form, status, headers, code_not_delivered(verification)
        )
    except LookupError:
        return redirect(url_for(".landing"))
    count_sent_code()
    browser.remember_pending(new_id)
    flash(_("A new code is on its way. The earlier code no longer works."))
    return redirect(url_for(".code"))


@bp.get("/welcome")
def done():
    """The sign-up is confirmed (only a browser that confirmed one sees this)."""
    if browser.linked() is None:
        return redirect(url_for(".landing"))
    return render_template("signup/done.html")


@bp.get("/privacy")
def privacy():
    """The privacy notice: controller, purposes, retention, processors, rights. The same
    bytes for everyone in a language (unless a query or a flash makes it someone's own)."""

    def context() -> dict:
        return {"version": PRIVACY_NOTICE_VERSION, "purposes": configured()}

    if request.query_string or shared.has_flashes():
        return render_template("pages/privacy.html", **context())
    return shared.rendered(f"privacy-page/{get_locale()}", "pages/privacy.html", context)
