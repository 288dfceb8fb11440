"""``POST /alerts/{alert_id}/ack`` on an app that mounts only the acknowledgement router."""

import orjson

from stream.records import Acknowledgement, Alert
from stream.subscriptions.routes import acks

NOTE = {"note": "at bedside"}


async def test_acknowledging_publishes_the_ack_and_an_acknowledged_event(
    api, alert_factory
) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A", patient="p-1"))
    api.feed.ready.set()
    headers = api.auth(subject="nurse-7", wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["alert_id"] == "a1"
    assert body["acknowledged_by"] == "nurse-7"
    assert isinstance(body["at"], float)
    [(ack_topic, ack_json, ack_key), (alert_topic, alert_json, alert_key)] = api.producer.sent
    assert (ack_topic, ack_key) == (api.settings.topics.acks, b"p-1")
    ack = Acknowledgement.model_validate(orjson.loads(ack_json))
    assert (ack.alert_id, ack.by, ack.note, ack.at) == ("a1", "nurse-7", "at bedside", body["at"])
    assert (alert_topic, alert_key) == (api.settings.topics.alerts, b"p-1")
    assert Alert.from_json(alert_json).event == "acknowledged"
    assert api.feed.book.entries["a1"].status == "acknowledged"


async def test_acknowledging_needs_the_can_ack_scope(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    read_only = api.auth(wards=["A"])
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=NOTE, headers=read_only)
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "detail": "token may not acknowledge alerts",
    }
    assert api.producer.sent == []
    assert api.feed.book.entries["a1"].status == "open"


async def test_an_alert_of_another_ward_is_unknown_to_the_token(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    ward_b = api.auth(wards=["B"], can_ack=True)
    async with api.client(acks.router) as client:
        other_ward = await client.post("/alerts/a1/ack", json=NOTE, headers=ward_b)
        missing = await client.post("/alerts/nope/ack", json=NOTE, headers=ward_b)
    # Indistinguishable from an alert that does not exist: nothing leaks across wards.
    assert other_ward.status_code == missing.status_code == 404
    assert (
        other_ward.json()
        == missing.json()
        == {
            "error": "unknown_alert",
            "detail": "no such alert within this token's scope",
        }
    )
    assert api.producer.sent == []


async def test_a_token_limited_to_other_patients_cannot_acknowledge(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A", patient="p-1"))
    api.feed.ready.set()
    headers = api.auth(wards="*", patients=["p-2"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_alert"


async def test_a_second_acknowledgement_is_a_conflict(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1"))
    api.publish(alert_factory(alert_id="a2", event="resolved"))
    api.feed.ready.set()
    headers = api.auth(wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        first = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
        again = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
        resolved = await client.post("/alerts/a2/ack", json={}, headers=headers)
    assert first.status_code == 200
    assert (again.status_code, again.json()["error"]) == (409, "already_acknowledged")
    assert (resolved.status_code, resolved.json()["error"]) == (409, "already_resolved")
    assert len(api.producer.sent) == 2  # only the first acknowledgement was published


async def test_an_unpublished_acknowledgement_leaves_the_alert_open(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1"))
    api.feed.ready.set()
    api.producer.fail = True
    headers = api.auth(wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
        api.producer.fail = False
        retried = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
    assert response.status_code == 503
    assert response.json() == {
        "error": "kafka_unavailable",
        "detail": "acknowledgement not recorded; retry",
    }
    assert retried.status_code == 200  # still open, so escalation went on and a retry works


async def test_acknowledging_waits_for_the_feed_to_catch_up(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1"))
    headers = api.auth(wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
    assert response.status_code == 503
    assert response.json()["error"] == "starting"


async def test_authentication_comes_before_the_body_is_checked(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1"))
    api.feed.ready.set()
    async with api.client(acks.router) as client:
        anonymous = await client.post("/alerts/a1/ack", json={"colour": "red"})
        unknown = await client.post(
            "/alerts/a1/ack", json=NOTE, headers={"Authorization": "Bearer vs_nope"}
        )
        in_query = await client.post("/alerts/a1/ack?token=vs_nope", json=NOTE)
        bad_body = await client.post(
            "/alerts/a1/ack", json={"colour": "red"}, headers=api.auth(wards=["A"], can_ack=True)
        )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"] == "missing_token"
    assert (unknown.status_code, unknown.json()["error"]) == (401, "unknown_token")
    assert (in_query.status_code, in_query.json()["error"]) == (400, "token_in_query")
    assert bad_body.status_code == 400
    assert bad_body.json() == {
        "error": "bad_request",
        "detail": "body.colour: Extra inputs are not permitted",
    }


async def test_a_verdict_reaches_the_ack_the_event_and_the_response(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A", patient="p-1"))
    api.feed.ready.set()
    headers = api.auth(subject="nurse-7", wards=["A"], can_ack=True)
    body = {"note": "electrode off", "verdict": "artefact"}
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["verdict"] == "artefact"
    [(_, ack_json, _), (_, alert_json, _)] = api.producer.sent
    assert Acknowledgement.from_json(ack_json).verdict == "artefact"
    event = Alert.from_json(alert_json)
    assert (event.event, event.verdict, event.note) == ("acknowledged", "artefact", "electrode off")


async def test_an_ack_without_a_verdict_answers_a_null_verdict(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    headers = api.auth(wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post("/alerts/a1/ack", json=NOTE, headers=headers)
    assert response.status_code == 200
    assert response.json()["verdict"] is None
    [(_, ack_json, _), _] = api.producer.sent
    assert b"verdict" not in ack_json  # the same bytes an acknowledgement had before verdicts


async def test_an_invalid_verdict_is_a_422_and_acknowledges_nothing(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    headers = api.auth(wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post(
            "/alerts/a1/ack", json={"verdict": "false_alarm"}, headers=headers
        )
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_verdict",
        "detail": "verdict 'false_alarm' is not one of actionable, not_actionable, artefact",
    }
    assert api.producer.sent == []
    assert api.feed.book.entries["a1"].status == "open"


async def test_a_failed_publication_forgets_the_verdict_too(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    api.producer.fail = True
    headers = api.auth(wards=["A"], can_ack=True)
    async with api.client(acks.router) as client:
        response = await client.post(
            "/alerts/a1/ack", json={"verdict": "actionable"}, headers=headers
        )
    assert response.status_code == 503
    entry = api.feed.book.entries["a1"]
    assert (entry.status, entry.acknowledgement) == ("open", None)
