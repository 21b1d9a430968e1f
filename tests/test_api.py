"""The audience API: bearer tokens made by an admin, cursor pagination, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from viihde.extensions import db
from viihde.models import ApiToken, AuditEntry
from viihde.register import api_tokens, consent

from . import factories
from .factories import number
from .helpers import stored_state_only

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def token(app) -> str:
    return factories.api_token(app, at=NOW)


@pytest.fixture
def people(app) -> dict[int, int]:
    """number(1) to number(5), subscribed to offers."""
    return factories.subscribers(app, {n: ("offers",) for n in range(1, 6)}, at=NOW)


def get(app, token: str | None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().get("/api/v1/audience", query_string=params, headers=headers)


def test_pages_through_the_whole_audience_with_cursors(app, token, people):
    numbers, cursor, pages = [], None, 0
    while True:
        params = {"purpose": "offers", "limit": 2} | ({"cursor": cursor} if cursor else {})
        response = get(app, token, **params)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        numbers += [row["number"] for row in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert numbers == [number(n) for n in range(1, 6)]
    assert pages == 3
    row = get(app, token, purpose="offers").get_json()["data"][0]
    assert set(row) == {"number", "language", "preference_link", "consent_since", "basis"}


def test_an_opt_out_between_pages_is_left_out(app, token, people):
    first = get(app, token, purpose="offers", limit=2).get_json()
    with app.app_context():
        consent.withdraw_all(
            people[4], consent.ConsentContext("sms_keyword"), NOW + timedelta(hours=1)
        )
        db.session.commit()
    rest = get(app, token, purpose="offers", limit=10, cursor=first["next_cursor"]).get_json()
    assert [row["number"] for row in rest["data"]] == [number(3), number(5)]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nonsense", "Bearer viihde_wrong", "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_without_a_valid_token_401(app, people, header):
    headers = {"Authorization": header} if header else {}
    response = app.test_client().get("/api/v1/audience?purpose=offers", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "+358" not in response.text


def test_a_revoked_token_stops_at_once(app, token, people):
    assert get(app, token, purpose="offers").status_code == 200
    with app.app_context():
        api_tokens.revoke(db.session.query(ApiToken).one().id, NOW)
        db.session.commit()
    assert get(app, token, purpose="offers").status_code == 401


def test_only_a_hash_of_the_token_is_stored(app, token):
    with app.app_context():
        stored = db.session.query(ApiToken).one()
        assert token not in (stored.token_hash, stored.name)
        assert stored.last_used_at is None
    get(app, token, purpose="offers")
    with app.app_context():
        assert db.session.query(ApiToken).one().last_used_at is not None


@pytest.mark.parametrize(
    "params, error",
    [
        ({"purpose": "nonsense"}, "bad_purpose"),
        ({}, "bad_purpose"),
        ({"purpose": "offers", "limit": "many"}, "bad_limit"),
        ({"purpose": "offers", "cursor": "forged"}, "bad_cursor"),
    ],
)
def test_bad_requests_get_400_with_a_reason(app, token, people, params, error):
    response = get(app, token, **params)
    assert response.status_code == 400
    assert response.get_json()["error"] == error


def test_a_cursor_does_not_cross_purposes(app, token, people):
    cursor = get(app, token, purpose="offers", limit=1).get_json()["next_cursor"]
    response = get(app, token, purpose="new_content", cursor=cursor)
    assert response.status_code == 400


def test_every_page_is_audited_under_the_tokens_name(app, token, people):
    get(app, token, purpose="offers", limit=2)
    with app.app_context():
        entry = db.session.query(AuditEntry).filter_by(action="api_audience").one()
        assert entry.actor == "api:campaign tool"
        assert entry.detail == "offers after 0: 2"


def test_token_names_are_unique(app, token):
    with app.app_context(), pytest.raises(api_tokens.TokenNameTaken):
        api_tokens.create("campaign tool", None, NOW)


def test_the_audience_is_read_from_the_stored_state_not_the_ledger(app, token, people):
    """The API reads the consent state stored beside the ledger, not the ledger's fold
    (issue 18): with number(3)'s stored state for offers turned off and its ledger left
    granted, the API leaves number(3) out; with the state put back, it is in again."""
    with stored_state_only(app, people[3], "offers", granted=False):
        data = get(app, token, purpose="offers").get_json()["data"]
        assert [row["number"] for row in data] == [number(n) for n in (1, 2, 4, 5)]
    data = get(app, token, purpose="offers").get_json()["data"]
    assert [row["number"] for row in data] == [number(n) for n in range(1, 6)]


def test_a_head_counts_against_the_limit_as_a_get_does(app, token, people):
    """Flask answers HEAD with the GET view (the query, its audit entry): 120 a minute
    from one client whichever method, then 429 for both."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    query = {"purpose": "offers", "limit": 1}
    for n in range(120):
        method = client.head if n % 2 else client.get
        assert method("/api/v1/audience", query_string=query, headers=headers).status_code == 200
    assert client.head("/api/v1/audience", query_string=query, headers=headers).status_code == 429
    assert client.get("/api/v1/audience", query_string=query, headers=headers).status_code == 429
