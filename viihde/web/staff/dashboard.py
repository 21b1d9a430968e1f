"""The overview: 30 days of sign-ups, confirmations, opt-outs and net subscribers, and
what became of the latest SMS campaigns."""

from __future__ import annotations

import csv
import io

from flask import Response, render_template, request
from flask_babel import gettext as _

from viihde.clock import helsinki_day, utcnow
from viihde.register import campaigns, reports
from viihde.web.staff import bp
from viihde.web.staff.forms import DashboardForm

DAYS = 30
#: The SMS campaigns shown, newest first.
CAMPAIGNS = 20


def _figures():
    form = DashboardForm(request.args)
    form.campaign.choices = [("", _("All campaigns"))] + [(c, c) for c in reports.campaigns()]
    form.validate()
    today = helsinki_day(utcnow())
    return form, reports.daily(today, DAYS, form.campaign.data or None)


@bp.get("/dashboard")
def dashboard():
    """Charts drawn on the server (SVG) and the table behind them."""
    form, days = _figures()
    sms_campaigns = campaigns.figures(limit=CAMPAIGNS)
    return render_template(
        "staff/dashboard.html", form=form, days=days, sms_campaigns=sms_campaigns
    )


@bp.get("/dashboard.csv")
def dashboard_csv():
    """The same figures as a spreadsheet."""
    _form, days = _figures()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["date", "signups_started", "codes_confirmed", "conversion", "opt_outs", "net"])
    for day in days:
        conversion = f"{day.conversion:.3f}" if day.conversion is not None else ""
        writer.writerow(
            [day.day.isoformat(), day.started, day.confirmed, conversion, day.opted_out, day.net]
        )
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="viihde-dashboard.csv"'
    return response
