"""The audience export: exactly the numbers whose current consent covers the purpose,
with language and a working preference link, streamed page by page, and correct while
people opt out during the export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from viihde.cli import audience as cli
from viihde.extensions import db
from viihde.models import AuditEntry
from viihde.register import audience, consent

from . import factories
from .factories import number

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
AN_HOUR_LATER = NOW + timedelta(hours=1)
SIGNUP = consent.ConsentContext("signup")
PAGE = consent.ConsentContext("preference_page")


def exported(app, purpose: str, size: int = audience.PAGE_SIZE) -> list[str]:
    with app.app_context():
        return [member.number for member in audience.members(purpose, size)]


def test_only_current_consent_for_the_purpose(app):
    ids = factories.subscribers(
        app, {1: ("offers",), 2: ("new_content",), 3: ("offers", "new_content"), 4: ()}, at=NOW
    )
    factories.withdrawal(app, ids[3], ["offers"], at=AN_HOUR_LATER)
    with app.app_context():  # a withdrawal and a new grant: the last word counts
        consent.set_consent(ids[2], ["offers"], True, PAGE, NOW + timedelta(hours=2))
        db.session.commit()
    assert exported(app, "offers") == [number(1), number(2)]
    assert exported(app, "new_content") == [number(2), number(3)]


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_every_page_size_gives_the_same_audience(app, size):
    ids = factories.subscribers(app, {n: ("offers",) for n in range(1, 8)}, at=NOW)
    factories.withdrawal(app, ids[2], ["offers"], at=AN_HOUR_LATER)
    factories.withdrawal(app, ids[3], ["offers"], at=AN_HOUR_LATER)
    expected = [number(n) for n in (1, 4, 5, 6, 7)]
    assert exported(app, "offers", size) == expected


def test_someone_who_opts_out_during_an_export_is_not_in_the_rest_of_it(app):
    ids = factories.subscribers(app, {n: ("offers",) for n in range(1, 7)}, at=NOW)
    with app.app_context():
        stream = audience.members("offers", size=2)
        first = [next(stream).number, next(stream).number]
        factories.withdrawal(
            app, ids[5], ["offers"], at=AN_HOUR_LATER
        )  # in another session, while the export runs
        rest = [member.number for member in stream]
    assert first == [number(1), number(2)]
    assert rest == [number(3), number(4), number(6)]


def test_members_carry_language_and_a_working_preference_link(app):
    factories.subscribers(app, {1: ("offers",)}, at=NOW, language="sv")
    with app.app_context():
        (member,) = audience.members("offers")
    assert member.language == "sv"
    assert member.consent_since == NOW
    link = member.preference_link
    assert link.startswith(app.config["PUBLIC_BASE_URL"] + "/") and len(link) <= 48
    response = app.test_client().get(link.removeprefix(app.config["PUBLIC_BASE_URL"]))
    assert response.status_code == 302 and response.location.endswith("/preferences")


def test_cli_csv_and_jsonl(app, runner, tmp_path):
    factories.subscribers(app, {1: ("offers",), 2: ("offers",), 3: ("new_content",)}, at=NOW)
    result = runner.invoke(args=["audience", "export", "--purpose", "offers"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["number"] for row in rows] == [number(1), number(2)]
    assert set(rows[0]) == {"number", "language", "preference_link", "consent_since", "basis"}
    out = tmp_path / "audience.jsonl"
    result = runner.invoke(
        args=["audience", "export", "--purpose", "offers", "--format", "jsonl", "--output", out]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["number"] for line in lines] == [number(1), number(2)]
    assert "Exported 2 numbers for offers." in result.stderr
    with app.app_context():  # who took the list, and how many: audited
        entry = db.session.query(AuditEntry).filter_by(action="audience_export").first()
        assert entry is not None and "offers: 2" in entry.detail


class Terminal(io.StringIO):
    """An operator's terminal as standard error."""

    def isatty(self) -> bool:
        return True


def test_cli_shows_a_progress_bar_on_a_terminal_only(app, runner, tmp_path, monkeypatch):
    """Into a file from a terminal: a bar counting to the audience's size; piped: none."""
    factories.subscribers(app, {n: ("offers",) for n in range(1, 4)}, at=NOW)
    terminal = Terminal()
    monkeypatch.setattr(cli, "sys", SimpleNamespace(stderr=terminal))
    out = tmp_path / "audience.csv"
    result = runner.invoke(args=["audience", "export", "--purpose", "offers", "--output", out])
    assert result.exit_code == 0, result.output
    bar = terminal.getvalue()
    assert "Exporting" in bar and "100%" in bar
    assert number(1) not in bar
    piped = io.StringIO()
    monkeypatch.setattr(cli, "sys", SimpleNamespace(stderr=piped))
    result = runner.invoke(args=["audience", "export", "--purpose", "offers", "--output", out])
    assert result.exit_code == 0 and piped.getvalue() == ""
    assert "Exporting" not in result.output


def test_cli_refuses_an_unknown_purpose(runner):
    result = runner.invoke(args=["audience", "export", "--purpose", "nonsense"])
    assert result.exit_code == 2
    assert "offers" in result.output


def test_export_reads_in_pages_not_all_at_once(app, monkeypatch):
    """Constant memory: the stream never asks for more than a page at a time."""
    factories.subscribers(app, {n: ("offers",) for n in range(1, 11)}, at=NOW)
    sizes = []
    real_page = audience.page

    def spy(purpose, after=0, size=audience.PAGE_SIZE):
        result = real_page(purpose, after, size)
        sizes.append(len(result.members))
        return result

    monkeypatch.setattr(audience, "page", spy)
    assert len(exported(app, "offers", size=3)) == 10
    assert max(sizes) <= 3 and len(sizes) == 4
