"""The dashboard's figures against a register seeded with known days."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import current_app
from freezegun import freeze_time
from sqlalchemy import func, select

from viihde.extensions import db
from viihde.jobs import purge as purge_job
from viihde.models import SignupTotal, Verification
from viihde.register import consent, reports

from . import factories

D1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 12:00 in Helsinki
D2 = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)  # 01:30 on 22 November in Helsinki
D3 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def context(source: str, campaign: str | None = None) -> consent.ConsentContext:
    return consent.ConsentContext(
        source, evidence=consent.Evidence(utm_campaign=campaign, consent_text_version="signup-1")
    )


@pytest.fixture
def seeded(app_context):
    """Three sign-ups on the 20th (two confirmed), an opt-out on the 22nd, a return on the 23rd."""
    ids = {}
    for phone, campaign, confirmed in [
        ("+358401000001", "talvi", True),
        ("+358401000002", "talvi", True),
        ("+358401000003", "kevat", False),
    ]:
        code = pending_code(phone, campaign, D1)
        code.purposes, code.attempts = "offers,new_content", 1
        code.consumed_at = D1 + timedelta(minutes=1) if confirmed else None
        db.session.add(code)
        if confirmed:
            ids[phone] = consent.subscribe(
                phone, ["offers", "new_content"], context("signup", campaign), D1
            ).id
    db.session.commit()
    first, second = ids["+358401000001"], ids["+358401000002"]
    consent.withdraw_all(first, context("preference_page"), D2)  # stops all: an opt-out
    db.session.commit()
    consent.set_consent(second, ["offers"], False, context("preference_page"), D2)  # still on
    db.session.commit()
    consent.set_consent(first, ["offers"], True, context("sms_keyword"), D3)  # comes back
    db.session.commit()
    return ids


def by_day(days) -> dict[date, tuple]:
    return {
        d.day: (d.started, d.confirmed, d.opted_out, d.net)
        for d in days
        if d.started or d.net or d.opted_out
    }


def test_daily_figures_from_the_register(seeded):
    """Started, confirmed, opt-outs and net per Helsinki day."""
    days = reports.daily(date(2026, 11, 25), 30)
    assert len(days) == 30
    assert by_day(days) == {
        date(2026, 11, 20): (3, 2, 0, 2),
        date(2026, 11, 22): (0, 0, 1, -1),  # 23:30 UTC on the 21st is the 22nd in Helsinki
        date(2026, 11, 23): (0, 0, 0, 1),
    }
    assert days[-6].day == date(2026, 11, 20)
    assert days[-6].conversion == pytest.approx(2 / 3)


def test_daily_figures_for_one_campaign(seeded):
    """A campaign's own sign-ups, confirmations and the subscribers it brought."""
    talvi = by_day(reports.daily(date(2026, 11, 25), 30, campaign="talvi"))
    assert talvi[date(2026, 11, 20)] == (2, 2, 0, 2)
    assert talvi[date(2026, 11, 22)] == (0, 0, 1, -1)
    kevat = by_day(reports.daily(date(2026, 11, 25), 30, campaign="kevat"))
    assert kevat == {date(2026, 11, 20): (1, 0, 0, 0)}


def test_purging_the_codes_keeps_the_sign_up_figures(seeded):
    """Purge deletes the codes the figures were counted from, but keeps them as daily totals;
    a second purge (or one running alongside) adds nothing twice, and codes still in the
    register add to the kept totals."""
    before_all = by_day(reports.daily(date(2026, 11, 25), 30))
    before_talvi = by_day(reports.daily(date(2026, 11, 25), 30, campaign="talvi"))
    for _ in range(2):
        report = purge_job.run(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
        assert report.failures == {}
    assert db.session.scalar(select(func.count()).select_from(Verification)) == 0
    assert by_day(reports.daily(date(2026, 11, 25), 30)) == before_all
    assert by_day(reports.daily(date(2026, 11, 25), 30, campaign="talvi")) == before_talvi
    assert reports.campaigns() == ["kevat", "talvi"]
    db.session.add(pending_code("+358401000009", "kevat", D1 + timedelta(hours=1)))
    db.session.commit()
    kevat = by_day(reports.daily(date(2026, 11, 25), 30, campaign="kevat"))
    assert kevat == {date(2026, 11, 20): (2, 0, 0, 0)}


def test_a_code_confirmed_after_midnight_counts_on_each_day_after_purge(app_context):
    """Started at 23:55 and confirmed at 00:05 Helsinki time: one day each, before and after."""
    started = datetime(2026, 11, 20, 21, 55, tzinfo=UTC)  # 23:55 in Helsinki
    code = pending_code("+358401000008", None, started)
    code.consumed_at = started + timedelta(minutes=10)
    db.session.add(code)
    db.session.commit()
    expected = {date(2026, 11, 20): (1, 0), date(2026, 11, 21): (0, 1)}
    assert signups(reports.daily(date(2026, 11, 25), 30)) == expected
    purge_job.run(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    assert signups(reports.daily(date(2026, 11, 25), 30)) == expected


def signups(days) -> dict[date, tuple]:
    return {d.day: (d.started, d.confirmed) for d in days if d.started or d.confirmed}


def test_a_dry_run_purge_keeps_no_totals(seeded):
    purge_job.run(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), dry_run=True)
    assert db.session.scalar(select(func.count()).select_from(SignupTotal)) == 0
    assert db.session.scalar(select(func.count()).select_from(Verification)) == 3


def pending_code(phone: str, campaign: str | None, at: datetime) -> Verification:
    return Verification(
        phone_e164=phone,
        kind="signup",
        code_hash="0" * 64,
        language="fi",
        purposes="offers",
        utm_campaign=campaign,
        privacy_notice_version="v",
        consent_text_version="signup-1",
        attempts=0,
        created_at=at,
        expires_at=at + timedelta(seconds=current_app.config["CODE_TTL_SECONDS"]),
    )


def test_days_outside_the_window_are_left_out(seeded):
    """Thirty days back from the 30th of December no longer reaches the 20th of November."""
    assert by_day(reports.daily(date(2026, 12, 30), 30)) == {}


@pytest.fixture
def support_client(app, seeded):
    with freeze_time("2026-11-25 12:00:00", ignore=["limits"]):
        yield factories.signed_in_staff(app, "support")


def test_dashboard_draws_svg_charts_and_a_table(support_client):
    """Server-side SVG, no script, and the day's numbers in the table."""
    page = support_client.get("/staff/dashboard", headers={"Accept-Language": "en"}).text
    assert page.count("<svg") == 2
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/js/site.js" defer>']
    assert "<td>2026-11-20</td><td>3</td><td>2</td><td>67 %</td><td>0</td><td>2</td>" in page
    assert '<option value="talvi">talvi</option>' in page


def test_dashboard_csv_has_the_same_figures(support_client):
    """The CSV download carries the same numbers, a row per day."""
    response = support_client.get("/staff/dashboard.csv?campaign=talvi")
    rows = {row["date"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert len(rows) == 30
    assert rows["2026-11-20"]["signups_started"] == "2"
    assert rows["2026-11-20"]["conversion"] == "1.000"
    assert rows["2026-11-22"]["opt_outs"] == "1"
    assert rows["2026-11-23"]["net"] == "1"
