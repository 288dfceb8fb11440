"""The ward board's routes on apps mounting only them: ``/board``, ``/me``, ``/vitals``.

The page itself is driven in a real browser by tests/browser/; here: what the routes
answer, within which scope, and the rules the page's files keep (no token in the URL or
storage, nothing fetched from elsewhere).
"""

from __future__ import annotations

import re

import pytest

from stream.subscriptions import history
from stream.subscriptions.cursor import Cursor
from stream.subscriptions.routes import ROUTERS, board, me, vitals
from stream.subscriptions.routes.board import ASSETS, asset


async def test_the_page_and_its_assets_carry_a_strict_content_security_policy(api) -> None:
    async with api.client(board.router) as client:
        responses = {
            path: await client.get(path)
            for path in ("/board", "/board/board.js", "/board/board.css")
        }
        missing = await client.get("/board/other.js")
    for path, response in responses.items():
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "form-action 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert responses["/board"].headers["content-type"].startswith("text/html")
    assert responses["/board/board.js"].headers["content-type"].startswith("text/javascript")
    assert responses["/board/board.css"].headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


def test_the_page_needs_nothing_from_another_origin_and_keeps_the_token_out_of_urls() -> None:
    page = asset("index.html").decode()
    script = asset("board.js").decode()
    style = asset("board.css").decode()
    for name, text in (("index.html", page), ("board.js", script), ("board.css", style)):
        assert not re.search(
            r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text.replace("http://www.w3.org/2000/svg", "")
        ), f"{name} refers to another origin"
    # Scripts and styles are files (the CSP forbids inline ones).
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    # The token input has no name: a form submitted without the script sends nothing.
    token_input = re.search(r"<input[^>]*id=\"token\"[^>]*>", page, re.S)
    assert token_input is not None and "name=" not in token_input.group(0)
    assert 'type="password"' in token_input.group(0)
    for storage in ("localStorage", "sessionStorage", "document.cookie", "indexedDB"):
        assert storage not in script
    assert "Authorization: `Bearer" in script
    assert "?token" not in script and "access_token" not in script


def test_every_asset_is_package_data() -> None:
    for name in ASSETS:
        assert asset(name), name


def test_the_board_routes_are_registered() -> None:
    paths = {route.path for router in ROUTERS for route in router.routes}  # type: ignore[attr-defined]
    assert {"/board", "/board/snapshot", "/me", "/vitals"} <= paths


async def test_me_answers_the_tokens_scope_and_nothing_secret(api) -> None:
    headers = api.auth(subject="nurse-7", wards=["A"], patients=["p-1"], can_ack=True)
    async with api.client(me.router) as client:
        response = await client.get("/me", headers=headers)
        anonymous = await client.get("/me")
        in_query = await client.get("/me", params={"token": "vs_x"}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("subject", "wards", "patients", "can_ack")} == {
        "subject": "nurse-7",
        "wards": ["A"],
        "patients": ["p-1"],
        "can_ack": True,
    }
    assert set(body) == {"id", "subject", "wards", "patients", "can_ack", "expires_at"}
    assert response.headers["cache-control"] == "no-store"
    assert anonymous.status_code == 401
    assert in_query.status_code == 400 and in_query.json()["error"] == "token_in_query"


async def test_snapshot_holds_the_scoped_alerts_and_the_cursor_after_them(
    api, alert_factory
) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A", patient="p-1", priority="high"))
    api.publish(alert_factory(alert_id="b1", ward="B", patient="p-2"))
    api.publish(alert_factory(alert_id="a2", ward="A", patient="p-3", priority="low"))
    api.publish(
        alert_factory(
            alert_id="a2",
            event="acknowledged",
            ward="A",
            patient="p-3",
            acknowledged_by="nurse-1",
            verdict="artefact",
        )
    )
    api.publish(alert_factory(alert_id="a1", event="escalated", escalation_level=1, ward="A"))
    headers = api.auth(wards=["A"])
    async with api.client(board.router) as client:
        starting = await client.get("/board/snapshot", headers=headers)
        api.feed.ready.set()
        response = await client.get("/board/snapshot", headers=headers)
    assert starting.status_code == 503
    body = response.json()
    assert Cursor.decode(body["cursor"]) == Cursor({0: 5})
    by_id = {item["alert"]["alert_id"]: item for item in body["alerts"]}
    assert set(by_id) == {"a1", "a2"}  # ward B's alert is not there
    assert (by_id["a1"]["status"], by_id["a1"]["escalation_level"]) == ("open", 1)
    assert by_id["a2"]["status"] == "acknowledged"
    assert (by_id["a2"]["alert"]["acknowledged_by"], by_id["a2"]["alert"]["verdict"]) == (
        "nurse-1",
        "artefact",
    )
    assert body["alerts"][0]["alert"]["alert_id"] == "a1"  # open first


async def test_vitals_checks_its_parameters_and_the_patient_scope(api, monkeypatch) -> None:
    asked: list[tuple] = []

    def fake_read(settings, token, patient, wards, minutes):
        asked.append((patient, wards, minutes))
        return history.VitalsHistory(patient, minutes, 5, 1000.0, history.series_from_rows([]))

    monkeypatch.setattr(history, "read_vitals", fake_read)
    monkeypatch.setattr(type(api.settings), "influx_token", property(lambda self: "influx-secret"))
    ward_a = api.auth(wards=["A"])
    one_patient = api.auth(wards=["A"], patients=["p-1"])
    async with api.client(vitals.router) as client:
        ok = await client.get("/vitals", params={"patient": "p-1"}, headers=ward_a)
        other = await client.get("/vitals", params={"patient": "p-2"}, headers=one_patient)
        bad_patient = await client.get("/vitals", params={"patient": 'p"1'}, headers=ward_a)
        bad_minutes = await client.get(
            "/vitals", params={"patient": "p-1", "minutes": "0"}, headers=ward_a
        )
        unknown = await client.get("/vitals", params={"patient": "p-1", "x": "1"}, headers=ward_a)
    assert ok.status_code == 200
    assert ok.json() == {
        "patient": "p-1",
        "minutes": 30,
        "window_s": 5,
        "now": 1000.0,
        "series": {"hr": [], "spo2": [], "resp": []},
    }
    assert "influx-secret" not in ok.text
    assert asked == [("p-1", ["A"], 30)]  # the token's wards go into the query
    assert other.status_code == 403 and other.json()["error"] == "insufficient_scope"
    assert bad_patient.status_code == bad_minutes.status_code == unknown.status_code == 400


async def test_vitals_without_an_influx_token_is_unavailable(api, monkeypatch) -> None:
    monkeypatch.setattr(type(api.settings), "influx_token", property(lambda self: None))
    async with api.client(vitals.router) as client:
        response = await client.get(
            "/vitals", params={"patient": "p-1"}, headers=api.auth(wards="*")
        )
    assert response.status_code == 503
    assert response.json()["error"] == "history_unavailable"


@pytest.mark.parametrize(
    ("wards", "condition"),
    [
        ("*", None),
        (["A"], 'r.ward == "A"'),
        (['A" or true or "'], r'r.ward == "A\" or true or \""'),
        ([], "false"),
    ],
)
def test_the_flux_query_confines_points_to_the_tokens_wards(wards, condition) -> None:
    query = history.vitals_flux("b", "p-1", wards, 30)
    assert 'r.patient == "p-1"' in query
    ward_lines = [line for line in query.splitlines() if "r.ward" in line or "=> false" in line]
    if condition is None:
        assert ward_lines == []
    else:
        assert ward_lines == [f"  |> filter(fn: (r) => {condition})"]
