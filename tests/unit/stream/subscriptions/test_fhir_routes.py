"""``GET /fhir/DetectedIssue`` on an app that mounts only the FHIR router."""

from stream.subscriptions.routes import fhir


async def test_a_patients_alerts_come_back_as_a_searchset_bundle(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="open", patient="p-1", ward="A"))
    api.publish(alert_factory(alert_id="done", patient="p-1", ward="A", priority="low"))
    api.publish(alert_factory(alert_id="done", patient="p-1", ward="A", event="resolved"))
    api.publish(alert_factory(alert_id="elsewhere", patient="p-1", ward="B"))
    api.publish(alert_factory(alert_id="other", patient="p-2", ward="A"))
    api.feed.ready.set()
    async with api.client(fhir.router) as client:
        response = await client.get(
            "/fhir/DetectedIssue", params={"patient": "p-1"}, headers=api.auth(wards=["A"])
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    issues = [entry["resource"] for entry in bundle["entry"]]
    assert {issue["resourceType"] for issue in issues} == {"DetectedIssue"}
    # Ward B's alert of the same patient is outside the token's scope.
    assert sorted(issue["status"] for issue in issues) == ["final", "preliminary"]


async def test_search_parameters_and_scope_are_checked(api) -> None:
    api.feed.ready.set()
    ward_a, only_p2 = api.auth(wards=["A"]), api.auth(wards="*", patients=["p-2"])
    async with api.client(fhir.router) as client:
        missing = await client.get("/fhir/DetectedIssue", headers=ward_a)
        unknown = await client.get("/fhir/DetectedIssue?patient=p-1&_count=5", headers=ward_a)
        outside = await client.get("/fhir/DetectedIssue?patient=p-1", headers=only_p2)
        anonymous = await client.get("/fhir/DetectedIssue?patient=p-1")
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "bad_request",
        "detail": "the patient search parameter is required",
    }
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "unknown_filter",
        "detail": "unsupported search parameter(s) ['_count']",
    }
    assert outside.status_code == 403
    assert outside.json()["error"] == "insufficient_scope"
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "missing_token")


async def test_an_acknowledged_alert_shows_who_acknowledged_it_and_the_verdict(
    api, alert_factory
) -> None:
    api.publish(alert_factory(alert_id="a1", patient="p-1", ward="A"))
    api.feed.ready.set()
    _, acknowledged = api.feed.book.acknowledge(
        "a1", by="nurse-7", note="", now=1_700_000_090.0, verdict="not_actionable"
    )
    api.publish(acknowledged)  # the feed's echo, as after a restart's replay
    async with api.client(fhir.router) as client:
        response = await client.get(
            "/fhir/DetectedIssue", params={"patient": "p-1"}, headers=api.auth(wards=["A"])
        )
    [entry] = response.json()["entry"]
    issue = entry["resource"]
    assert issue["status"] == "final"
    assert issue["mitigation"][0]["author"]["display"] == "nurse-7"
    assert issue["mitigation"][0]["date"].startswith("2023-11-14T22:14:50")
    assert issue["extension"][0]["valueCoding"]["code"] == "not_actionable"
