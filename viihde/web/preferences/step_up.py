"""Step-up: a fresh code to the number before the data is shown, downloaded or erased."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from flask_babel import get_locale

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import VerificationKind
from viihde.phone import mask
from viihde.register.codes import (
    CodeRefused,
    code_not_delivered,
    pending_verification,
    request_step_up_code,
    resend_code,
)
from viihde.register.confirmation import Outcome, confirm_code
from viihde.web import browser, messages
from viihde.web.preferences import bp
from viihde.web.preferences.routes import NO_STORE, STEP_UP_TARGETS, link_required
from viihde.web.sending import commit_and_send_code
from viihde.web.signup.forms import CodeForm, ResendForm
from viihde.web.throttle import code_sending, count_sent_code


def _next() -> str:
    """Where to go once the number is proven: a known page, never an arbitrary URL."""
    target = request.values.get("next", "data")
    return target if f"preferences.{target}" in STEP_UP_TARGETS else "data"


def _pending():
    """This browser's unconfirmed step-up code for the subscriber's number, if any."""
    verification = pending_verification(browser.pending_id())
    if (
        verification is None
        or verification.kind != VerificationKind.STEP_UP
        or verification.phone_e164 != g.subscriber.phone_e164
        or verification.consumed_at is not None
    ):
        return None
    return verification


def _render(
    form: CodeForm | None = None,
    status: int = 200,
    error: str | None = None,
    headers: dict | None = None,
):
    pending = _pending()
    form = form or CodeForm(formdata=None)
    if error:
        form.code.errors = [error]
    elif (
        pending is not None
        and not form.code.errors
        and (undelivered := code_not_delivered(pending))
    ):
        form.code.errors = [messages.code_not_delivered(undelivered)]
    return (
        render_template(
            "preferences/verify.html",
            masked_number=mask(g.subscriber.phone_e164),
            next=_next(),
            pending=pending is not None,
            form=form,
        ),
        status,
        {**NO_STORE, **(headers or {})},
    )


@bp.get("/preferences/verify")
@link_required
def verify():
    """Explain why a code is needed, and take it once sent."""
    return _render()


@bp.post("/preferences/verify/send")
@link_required
@code_sending
def send_code():
    """Send (or send again) a step-up code to the subscriber's number."""
    if not ResendForm().validate_on_submit():
        return redirect(url_for(".verify", next=_next()))
    pending = _pending()
    try:
        if pending is not None:
            verification = resend_code(pending.id, utcnow())
        else:
            verification = request_step_up_code(
                g.subscriber.phone_e164, str(get_locale()), utcnow()
            )
        verification_id = verification.id
        commit_and_send_code(verification)
    except CodeRefused as refusal:
        db.session.commit()  # a code that could not go is forgotten
        return _render(
            status=messages.code_refusal_status(refusal),
            error=messages.code_refusal(refusal),
            headers=messages.code_refusal_headers(refusal),
        )
    count_sent_code()
    browser.remember_pending(verification_id)
    return redirect(url_for(".verify", next=_next()))


@bp.post("/preferences/verify")
@link_required
def check_code():
    """The right code unlocks the data for a few minutes in this browser."""
    pending = _pending()
    form = CodeForm()
    if pending is None:
        return redirect(url_for(".verify", next=_next()))
    if not form.validate_on_submit():
        return _render(form, 400)
    result = confirm_code(pending.id, form.code.data, utcnow())
    db.session.commit()  # the try it took, or the proof
    if result.outcome == Outcome.CONFIRMED and result.subscriber_id == g.subscriber.id:
        browser.forget_pending()
        browser.remember_confirmation(g.subscriber.id, utcnow())
        return redirect(url_for(f".{_next()}"))
    if result.outcome in (Outcome.CONFIRMED, Outcome.USED, Outcome.UNKNOWN):
        return redirect(url_for(".verify", next=_next()))
    return _render(form, 400, messages.code_outcome(result))
