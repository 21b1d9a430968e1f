"""The one source of the current time, so tests can control it, and the company's days."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

#: The company's time zone: days in reports, filters and register files are Helsinki days.
HELSINKI = ZoneInfo("Europe/Helsinki")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def start_of_day(day: date) -> datetime:
    """The first moment of ``day`` in Helsinki, in UTC (23 or 25 hours apart at DST)."""
    return datetime.combine(day, time(), HELSINKI).astimezone(UTC)


def helsinki_day(moment: datetime) -> date:
    """The Helsinki date of a moment."""
    return moment.astimezone(HELSINKI).date()


def months_before(moment: datetime, months: int) -> datetime:
    """The same time ``months`` calendar months earlier (the 31st becomes the month's last)."""
    return moment - relativedelta(months=months)
