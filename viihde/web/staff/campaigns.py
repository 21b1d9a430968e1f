"""Admins: write a campaign per language, see its segments and cost, test it on their own
phone, send it, pause, resume or cancel it. Every action goes to the audit log."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.jobs import campaigns as sender
from viihde.models import AuditAction, Campaign
from viihde.phone import PhoneError, mask, parse_mobile
from viihde.register import audit, campaigns
from viihde.sms import commit_then_send
from viihde.web.messages import PHONE_REFUSALS
from viihde.web.ratelimits import Rule, limited
from viihde.web.staff import bp
from viihde.web.staff.console import actor, admin_required
from viihde.web.staff.forms import ButtonForm, CampaignForm, CampaignStartForm, CampaignTestForm


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = campaigns.get(campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def _draft(form: CampaignForm) -> campaigns.Draft:
    return campaigns.Draft(
        name=form.name.data,
        purpose=form.purpose.data,
        body_fi=form.body_fi.data,
        body_sv=form.body_sv.data,
        body_en=form.body_en.data,
    )


def _page(campaign: Campaign | None, form: CampaignForm, status: int = 200, **forms):
    """The campaign page: compose and preview (drafts), test, send, and the figures."""
    purpose = form.purpose.data or form.purpose.choices[0][0]
    bodies = {lang: form[f"body_{lang}"].data or "" for lang in campaigns.LANGUAGES}
    link = campaigns.sample_link()
    footers = {
        lang: [campaigns.footer(link, lang), campaigns.footer(link, lang, customer=True)]
        for lang in campaigns.LANGUAGES
    }
    page = render_template(
        "staff/campaign.html",
        campaign=campaign,
        form=form,
        previews=campaigns.preview(purpose, bodies),
        audience=campaigns.audience_counts(),
        footers=footers,
        price=campaigns.segment_price(),
        quiet_hours=current_app.config["CAMPAIGN_QUIET_HOURS"],
        figures=campaigns.figures_of(campaign) if campaign else None,
        test_form=forms.get("test_form") or CampaignTestForm(formdata=None),
        start_form=forms.get("start_form") or CampaignStartForm(formdata=None),
        button=ButtonForm(),
    )
    return page, status


@bp.get("/campaigns")
@admin_required
def campaign_list():
    """Every campaign with its status and figures, newest first."""
    return render_template("staff/campaigns.html", figures=campaigns.figures(include_drafts=True))


@bp.route("/campaigns/new", methods=["GET", "POST"])
@admin_required
def new_campaign():
    """Write a new campaign; saved as a draft."""
    form = CampaignForm()
    if not form.validate_on_submit() or form.preview.data:
        return _page(None, form, 400 if form.errors else 200)
    campaign = campaigns.create_draft(_draft(form), current_user.id, utcnow())
    audit.record(
        actor(), AuditAction.CREATE_CAMPAIGN, utcnow(), detail=campaigns.audit_detail(campaign)
    )
    db.session.commit()
    flash(_("The campaign was saved as a draft."))
    return redirect(url_for("staff.campaign", campaign_id=campaign.id))


@bp.route("/campaigns/<id:campaign_id>", methods=["GET", "POST"])
@admin_required
def campaign(campaign_id: int):
    """A campaign: edit and preview while a draft; its progress once sending."""
    campaign = _campaign_or_404(campaign_id)
    form = CampaignForm(obj=campaign)
    if not form.validate_on_submit() or form.preview.data:
        return _page(campaign, form, 400 if form.errors else 200)
    try:
        campaigns.update_draft(campaign.id, _draft(form))
    except campaigns.CampaignStateError:
        flash(_("Only a draft can be changed."))
        return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    audit.record(
        actor(), AuditAction.EDIT_CAMPAIGN, utcnow(), detail=campaigns.audit_detail(campaign)
    )
    db.session.commit()
    flash(_("The campaign was saved."))
    return redirect(url_for("staff.campaign", campaign_id=campaign.id))


def _test_send_limit() -> str:
    return current_app.config["CAMPAIGN_TEST_SEND_LIMIT"]


def _per_staff_member() -> str:
    return f"campaign-test:{getattr(current_user, 'id', None)}"


@bp.post("/campaigns/<id:campaign_id>/test")
@admin_required
@limited(
    Rule(_test_send_limit, "campaign-test", _per_staff_member),
    counts=lambda response: response.status_code == 302,
)
def test_send_campaign(campaign_id: int):
    """Text one language's message (with a sample link) to the admin's own phone."""
    campaign = _campaign_or_404(campaign_id)
    test_form = CampaignTestForm()
    if test_form.validate_on_submit():
        try:
            phone = parse_mobile(test_form.number.data, current_app.config["ALLOWED_REGIONS"])
        except PhoneError as error:
            test_form.number.errors = [PHONE_REFUSALS[error.reason]]
        else:
            detail = f"{campaigns.audit_detail(campaign)} ({test_form.language.data})"
            campaigns.test_send(campaign.id, phone, test_form.language.data, utcnow())
            audit.record(
                actor(), AuditAction.TEST_SEND_CAMPAIGN, utcnow(), phone_e164=phone, detail=detail
            )
            commit_then_send(utcnow())  # the SMS's row with its audit entry, then the SMS
            flash(_("The test message was sent to %(number)s.", number=mask(phone)))
            return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    return _page(campaign, CampaignForm(obj=campaign), 400, test_form=test_form)


@bp.post("/campaigns/<id:campaign_id>/start")
@admin_required
def start_campaign(campaign_id: int):
    """Start sending, once the admin confirms they have checked the texts."""
    campaign = _campaign_or_404(campaign_id)
    start_form = CampaignStartForm()
    if not start_form.validate_on_submit():
        return _page(campaign, CampaignForm(obj=campaign), 400, start_form=start_form)
    start = lambda campaign_id: sender.start(campaign_id, utcnow())  # noqa: E731
    return _act(campaign, AuditAction.START_CAMPAIGN, start, _("Sending started."))


@bp.post("/campaigns/<id:campaign_id>/pause")
@admin_required
def pause_campaign(campaign_id: int):
    """Hold the campaign before its next message."""
    pause = _committed(campaigns.pause)
    return _button(campaign_id, AuditAction.PAUSE_CAMPAIGN, pause, _("Paused."))


@bp.post("/campaigns/<id:campaign_id>/resume")
@admin_required
def resume_campaign(campaign_id: int):
    """Send on from where the campaign stopped."""
    return _button(campaign_id, AuditAction.RESUME_CAMPAIGN, sender.resume, _("Sending again."))


@bp.post("/campaigns/<id:campaign_id>/cancel")
@admin_required
def cancel_campaign(campaign_id: int):
    """Stop the campaign for good."""
    cancel = _committed(lambda campaign_id: campaigns.cancel(campaign_id, utcnow()))
    return _button(
        campaign_id, AuditAction.CANCEL_CAMPAIGN, cancel, _("The campaign was cancelled.")
    )


def _committed(change: Callable[[int], object]) -> Callable[[int], object]:
    """A status change committed at once (with the audit entry staged before it)."""

    def do(campaign_id: int) -> object:
        result = change(campaign_id)
        db.session.commit()
        return result

    return do


def _button(campaign_id: int, action: AuditAction, do: Callable[[int], object], done: str):
    """A status change from a button (CSRF only)."""
    campaign = _campaign_or_404(campaign_id)
    if not ButtonForm().validate_on_submit():
        return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    return _act(campaign, action, do, done)


def _act(campaign: Campaign, action: AuditAction, do: Callable[[int], object], done: str):
    """Change the campaign's status, audit it, and say how it went. The entry is staged
    first, so the status change's commit takes it along (one transaction, or nothing);
    starting and sending on launch the sender after that commit."""
    audit.record(actor(), action, utcnow(), detail=campaigns.audit_detail(campaign))
    try:
        do(campaign.id)
    except campaigns.CampaignStateError:
        db.session.rollback()
        flash(_("That cannot be done to a campaign in this state."))
        return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    except campaigns.SenderUnavailable:
        flash(_("The sending queue cannot be reached. Press Send on in a moment."))
    else:
        flash(done)
    return redirect(url_for("staff.campaign", campaign_id=campaign.id))
