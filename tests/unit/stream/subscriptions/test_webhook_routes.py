"""``/webhooks`` on an app that mounts only the webhook router: ownership and scope."""

from stream.subscriptions.routes import webhooks

HOOK = {"url": "https://pager.example/hook", "filters": {"ward": "A", "min_priority": "high"}}


async def test_a_token_registers_lists_and_deletes_its_own_webhooks(api) -> None:
    mine, theirs = api.auth(wards=["A"]), api.auth(wards=["A"])
    try:
        async with api.client(webhooks.router) as client:
            created = await client.post("/webhooks", json=HOOK, headers=mine)
            assert created.status_code == 201
            hook = created.json()
            assert hook["url"] == HOOK["url"]
            assert hook["filters"]["wards"] == ["A"]
            assert hook["filters"]["min_priority"] == "high"
            assert hook["secret"]  # generated here (no shared secret), shown once
            listed = await client.get("/webhooks", headers=mine)
            assert [h["id"] for h in listed.json()] == [hook["id"]]
            assert "secret" not in listed.json()[0]
            assert (await client.get("/webhooks", headers=theirs)).json() == []
            log = await client.get(f"/webhooks/{hook['id']}/deliveries", headers=mine)
            assert (log.status_code, log.json()) == (200, [])

            # Another token cannot see or delete it, and learns nothing about its existence.
            for response in (
                await client.get(f"/webhooks/{hook['id']}/deliveries", headers=theirs),
                await client.delete(f"/webhooks/{hook['id']}", headers=theirs),
            ):
                assert response.status_code == 404
                assert response.json() == {
                    "error": "unknown_webhook",
                    "detail": "no such webhook for this token",
                }

            deleted = await client.delete(f"/webhooks/{hook['id']}", headers=mine)
            assert (deleted.status_code, deleted.content) == (204, b"")
            assert (await client.get("/webhooks", headers=mine)).json() == []
            assert api.service.webhooks.endpoints == {}
    finally:
        await api.service.webhooks.close()


async def test_webhook_filters_are_checked_against_the_token(api) -> None:
    ward_a = api.auth(wards=["A"])
    try:
        async with api.client(webhooks.router) as client:
            outside = await client.post(
                "/webhooks", json={**HOOK, "filters": {"ward": ["A", "B"]}}, headers=ward_a
            )
            unknown = await client.post(
                "/webhooks", json={**HOOK, "filters": {"cursor": "x"}}, headers=ward_a
            )
            bad_url = await client.post("/webhooks", json={"url": "pager"}, headers=ward_a)
            anonymous = await client.post("/webhooks", json=HOOK)
    finally:
        await api.service.webhooks.close()
    assert outside.status_code == 403
    assert outside.json() == {
        "error": "insufficient_scope",
        "detail": "token does not cover ward(s) ['B']",
    }
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unknown_filter")
    assert (bad_url.status_code, bad_url.json()["error"]) == (400, "bad_request")
    assert bad_url.json()["detail"].startswith("body.url: ")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "missing_token")
    assert api.service.webhooks.endpoints == {}
