"""The audience export: exactly the numbers whose current consent covers the purpose,
with language and a working preference link, streamed page by page, and correct while
people opt out during the export."""

from __future__ import annotations

import csv
import hmac
import io
import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import itsdangerous
import pytest
from sqlalchemy import event, func, select

from viihde.cli import audience as cli
from viihde.extensions import db
from viihde.models import AuditEntry, Subscriber
from viihde.register import audience, consent

from . import factories
from .factories import number

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
AN_HOUR_LATER = NOW + timedelta(hours=1)
SIGNUP = consent.ConsentContext("signup")
PAGE = consent.ConsentContext("preference_page")


def exported(app, purpose: str, batch: int = audience.STREAM_BATCH) -> list[str]:
    with app.app_context():
        return numbers(audience.export(purpose, batch))


def numbers(batches) -> list[str]:
    return [line[0] for lines in batches for line in lines]


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


def test_an_opt_out_during_an_export_is_in_the_next_one_or_already_in_this(app):
    """On PostgreSQL an export is one consistent read: an opt-out made while it streams does
    not tear it (the file is what the register said when it began, as any file is by the
    time it is used; campaigns check consent again before each message). On SQLite, read
    in pages that each end their transaction, it drops out of the pages not read yet. The
    next export leaves the person out either way."""
    ids = factories.subscribers(app, {n: ("offers",) for n in range(1, 7)}, at=NOW)
    with app.app_context():
        stream = audience.export("offers", batch=2)
        first = numbers([next(stream)])
        factories.withdrawal(app, ids[5], ["offers"], at=AN_HOUR_LATER)  # another session
        rest = numbers(stream)
        streamed = db.session.get_bind().dialect.name == "postgresql"
    everyone = [number(n) for n in range(1, 7)]
    without_5 = [number(n) for n in (1, 2, 3, 4, 6)]
    assert first + rest == (everyone if streamed else without_5)
    assert exported(app, "offers") == without_5


def streaming_for_long(monkeypatch) -> None:
    """On PostgreSQL, an export whose COPY is still streaming when it stops: a million
    generated rows (the few rows of a test would all have arrived already). In an app
    context."""
    if db.engine.dialect.name == "postgresql":
        endless = (
            "COPY (SELECT g, '+358401234567', 'fi', 'k', '2026-11-02T12:00:00+00:00', "
            "'consent' FROM generate_series(1, 1000000) g) TO STDOUT"
        )
        monkeypatch.setattr(audience, "_copy_statement", lambda purpose: (endless, {}))


def test_an_export_stopped_half_way_leaves_the_session_usable(app, monkeypatch):
    """A consumer that stops (a full disk, a closed pipe). On PostgreSQL psycopg cancels a
    COPY still streaming, which aborts the transaction: the export rolls it back, so the
    session goes on (the audit entry of the next export, say) without an
    InFailedSqlTransaction."""
    factories.subscribers(app, {n: ("offers",) for n in range(1, 7)}, at=NOW)
    with app.app_context():
        streaming_for_long(monkeypatch)
        stream = audience.export("offers", batch=2)
        assert len(next(stream)) == 2
        stream.close()
        assert db.session.execute(select(func.count()).select_from(Subscriber)).scalar() == 6
    monkeypatch.undo()
    assert exported(app, "offers") == [number(n) for n in range(1, 7)]


def test_an_export_whose_output_fails_ends_and_says_so(app, runner, monkeypatch):
    """A full disk or a closed pipe half-way: the command fails at once with the error,
    puts on record what was written before it stopped (those rows, links and all, are
    out), and leaves nothing waiting. On PostgreSQL a COPY still streaming
    (a million generated rows) held the connection, and the app context's teardown waited
    for it for ever unless the command closes the export."""
    import threading

    factories.subscribers(app, {n: ("offers",) for n in range(1, 4)}, at=NOW)
    with app.app_context():
        streaming_for_long(monkeypatch)

    def full_disk(batches, out):
        for batch in batches:
            yield len(batch)
            raise OSError(28, "No space left on device")

    monkeypatch.setitem(audience.WRITERS, "csv", full_disk)
    results = []
    command = threading.Thread(
        target=lambda: results.append(
            runner.invoke(args=["audience", "export", "--purpose", "offers"])
        ),
        daemon=True,
    )
    command.start()
    command.join(timeout=60)
    assert not command.is_alive(), "the export command hung after its output failed"
    (result,) = results
    assert result.exit_code != 0 and isinstance(result.exception, OSError)
    with app.app_context():
        entries = db.session.query(AuditEntry).filter_by(action="audience_export").all()
    # The first batch went out (three rows here; on PostgreSQL the first of the generated
    # million's batches).
    (entry,) = entries
    written = re.fullmatch(r"offers: (\d+) \(csv\) stopped part-way", entry.detail)
    assert written and int(written.group(1)) in (3, audience.STREAM_BATCH)


def test_members_carry_language_and_a_working_preference_link(app):
    factories.subscribers(app, {1: ("offers",)}, at=NOW, language="sv")
    with app.app_context():
        ((line,),) = audience.export("offers")
    member = dict(zip(audience.FIELDS, line, strict=True))
    assert member["language"] == "sv"
    assert member["consent_since"] == NOW.isoformat()
    link = member["preference_link"]
    assert link.startswith(app.config["PUBLIC_BASE_URL"] + "/") and len(link) <= 48
    response = app.test_client().get(link.removeprefix(app.config["PUBLIC_BASE_URL"]))
    assert response.status_code == 302 and response.location.endswith("/preferences")


@pytest.mark.parametrize("at", [NOW, NOW + timedelta(microseconds=120_000), NOW.replace(year=2027)])
def test_the_export_says_what_the_api_says(app, at):
    """On PostgreSQL the export's times are written by PostgreSQL and its links signed by
    the export's own loop: each line is the API's member, field for field (the time's
    microseconds only when there are some, as ``isoformat`` writes it)."""
    factories.subscribers(app, {1: ("offers",), 2: ("offers",)}, at=at, language="sv")
    with app.app_context():
        lines = [line for batch in audience.export("offers") for line in batch]
        api = [tuple(member.as_dict().values()) for member in audience.page("offers").members]
    assert lines == api
    assert lines[0][3] == at.isoformat()


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


@pytest.mark.parametrize("base", ["https://viihdepaketti.fi", 'https://x.fi/a,"b"'])
def test_csv_lines_read_back_as_the_fields_whatever_the_base_url(app, base):
    """The lines are joined unquoted only when nothing in them needs quoting: a
    PUBLIC_BASE_URL with a comma or a quote sends every line through the csv module."""
    factories.subscribers(app, {1: ("offers",), 2: ("offers",)}, at=NOW)
    app.config["PUBLIC_BASE_URL"] = base
    out = io.StringIO()
    with app.app_context():
        lines = [line for batch in audience.export("offers") for line in batch]
        assert sum(audience.write_csv(audience.export("offers", batch=1), out)) == 2
    assert lines[0][2].startswith(base + "/")
    read = list(csv.reader(io.StringIO(out.getvalue())))
    assert read == [list(audience.FIELDS), *map(list, lines)]


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


def test_export_streams_one_statement_batch_by_batch(app, monkeypatch):
    """Constant memory: on PostgreSQL one COPY, read a batch at a time (no other statement
    reads the state); on SQLite pages of a batch each."""
    factories.subscribers(app, {n: ("offers",) for n in range(1, 11)}, at=NOW)
    statements, copies = [], []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        streamed = db.engine.dialect.name == "postgresql"
        if streamed:
            import psycopg

            copy = psycopg.Cursor.copy

            def copied(cursor, statement, *args, **kwargs):
                copies.append(statement)
                return copy(cursor, statement, *args, **kwargs)

            monkeypatch.setattr(psycopg.Cursor, "copy", copied)
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            batches = list(audience.export("offers", batch=3))
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
    assert [len(batch) for batch in batches] == [3, 3, 3, 1]
    pages = [statement for statement in statements if "consent_states" in statement]
    if streamed:
        assert pages == [] and len(copies) == 1 and copies[0].startswith("COPY (SELECT")
    else:
        assert len(pages) == 4 and copies == []


def test_an_export_file_is_its_owners_alone(app, runner, tmp_path):
    """The file holds numbers and live links: made 0600 whatever the umask, and a file
    that was there before loses its wider mode; the export is all it holds."""
    factories.subscribers(app, {n: ("offers",) for n in range(1, 4)}, at=NOW)
    made, kept = tmp_path / "new.csv", tmp_path / "old.csv"
    kept.write_text("an older and longer export\n" * 100)
    kept.chmod(0o644)
    for out in (made, kept):
        result = runner.invoke(args=["audience", "export", "--purpose", "offers", "--output", out])
        assert result.exit_code == 0, result.output
        assert out.stat().st_mode & 0o777 == 0o600
        assert "older" not in out.read_text() and number(1) in out.read_text()


def test_an_export_into_a_folder_that_is_not_there_says_so(app, runner, tmp_path):
    out = tmp_path / "missing" / "audience.csv"
    result = runner.invoke(args=["audience", "export", "--purpose", "offers", "--output", out])
    assert result.exit_code != 0 and "No such file or directory" in result.output


def test_an_export_signs_its_links_without_a_signer_or_an_hmac_per_row(app, monkeypatch):
    """The export signs every row's link with the key's HMAC set up once (issue 18): it
    builds no itsdangerous Signer or serializer at all, and no more HMAC objects for 8 rows
    than for 3 (a Signer per row would build one, and two HMACs, for each)."""
    built = {"signers": 0, "hmacs": 0}

    def counted(cls, name: str) -> None:
        init = cls.__init__

        def counting(self, *args, **kwargs):
            built[name] += 1
            init(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)

    def built_exporting(rows: int) -> dict[str, int]:
        built.update(signers=0, hmacs=0)
        assert len(exported(app, "offers")) == rows
        return dict(built)

    counted(itsdangerous.Signer, "signers")
    counted(itsdangerous.Serializer, "signers")
    counted(hmac.HMAC, "hmacs")
    factories.subscribers(app, {n: ("offers",) for n in range(1, 4)}, at=NOW)
    three = built_exporting(3)
    factories.subscribers(app, {n: ("offers",) for n in range(4, 9)}, at=NOW)
    eight = built_exporting(8)
    assert three["signers"] == eight["signers"] == 0
    assert three["hmacs"] == eight["hmacs"]


def test_an_export_whose_file_fails_on_its_last_flush_is_on_record(
    app, runner, monkeypatch, tmp_path
):
    """Closing the file flushes what is buffered, and that can fail (a full disk): the rows
    written before are out, so the run is on record as stopped part-way, and fails."""
    from viihde.cli import audience as audience_cli

    factories.subscribers(app, {n: ("offers",) for n in range(1, 4)}, at=NOW)

    class FullOnClose(io.StringIO):
        def close(self):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(audience_cli, "private_file", lambda path: FullOnClose())
    result = runner.invoke(
        args=["audience", "export", "--purpose", "offers", "--output", str(tmp_path / "a.csv")]
    )

    assert result.exit_code != 0 and isinstance(result.exception, OSError)
    with app.app_context():
        details = [
            e.detail for e in db.session.query(AuditEntry).filter_by(action="audience_export")
        ]
    assert details == ["offers: 3 (csv) stopped part-way"]
