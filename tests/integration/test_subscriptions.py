"""The alert feed service against the real Kafka broker and InfluxDB.

The service runs in-process (uvicorn on a free loopback port in a thread); alerts are
produced to the isolated alerts topic with kafka-python, as the stream worker would.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse
from influxdb_client import InfluxDBClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from websockets.sync.client import connect as ws_connect

from stream.config import Settings
from stream.kafka import client_options
from stream.records import Acknowledgement, Alert
from stream.subscriptions import feed as feed_module
from stream.subscriptions.cursor import Cursor
from stream.subscriptions.server import ServerThread, free_port
from stream.subscriptions.tokens import TokenStore
from stream.subscriptions.webhooks import SIGNATURE_HEADER, RetryPolicy, verify

pytestmark = pytest.mark.integration

_ids = itertools.count()


def make_alert(**overrides: object) -> Alert:
    now = time.time()
    fields: dict[str, object] = {
        "alert_id": f"al-{next(_ids)}-{now:.0f}",
        "event": "triggered",
        "kind": "tachycardia",
        "category": "physiological",
        "priority": "high",
        "patient": "p-1",
        "ward": "A",
        "device_id": "dev-1",
        "t_onset": now,
        "t_event": now,
        "emitted_at": now,
        "window": (now - 10, now),
        "values": {"hr": 141.0, "spo2": 95.0},
        "source": "rule:hr_high",
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


class Api:
    """A running service plus what a test needs to talk to it."""

    def __init__(self, settings: Settings, server: ServerThread) -> None:
        self.settings = settings
        self.server = server
        self.url = server.url
        self.tokens = TokenStore(settings.alerts_api.tokens_file)
        self.producer = KafkaProducer(**client_options(settings.kafka), acks="all", linger_ms=0)

    def token(self, **scope: object) -> str:
        scope.setdefault("wards", "*")
        scope.setdefault("subject", "nurse-test")
        return self.tokens.issue(**scope)[0]  # type: ignore[arg-type]

    def produce(self, *alerts: Alert) -> None:
        for alert in alerts:
            self.producer.send(
                self.settings.topics.alerts, alert.to_json(), key=alert.patient.encode()
            )
        self.producer.flush()

    @contextmanager
    def sse(
        self, token: str | None, params: dict | None = None, cursor: str | None = None
    ) -> Iterator[Iterator[ServerSentEvent]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cursor:
            headers["Last-Event-ID"] = cursor
        with (
            httpx.Client(base_url=self.url, timeout=httpx.Timeout(5.0)) as client,
            connect_sse(client, "GET", "/alerts/stream", params=params, headers=headers) as sse,
        ):
            yield sse.iter_sse()


def _settings(settings: Settings, tmp_path: Path, **api: object) -> Settings:
    alerts_api = settings.alerts_api.model_copy(
        update={"tokens_file": tmp_path / "tokens.json", **api}
    )
    return settings.model_copy(update={"alerts_api": alerts_api})


@contextmanager
def running(settings: Settings) -> Iterator[Api]:
    retry = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2, timeout_s=1.0)
    with ServerThread(settings, retry=retry) as server:
        server.wait_ready()
        api = Api(settings, server)
        try:
            yield api
        finally:
            api.producer.close()


@pytest.fixture
def api(isolated_settings: Settings, tmp_path: Path) -> Iterator[Api]:
    with running(_settings(isolated_settings, tmp_path, escalation_after_s=3600.0)) as api:
        yield api


def _alerts(events: Iterator[ServerSentEvent], n: int) -> list[tuple[Alert, str, float]]:
    """The next n alert events as (alert, cursor, receive time); skips ready."""
    got = []
    for event in events:
        if event.event == "alert":
            got.append((Alert.from_json(event.data), event.id, time.time()))
            if len(got) == n:
                break
    return got


def _ready(events: Iterator[ServerSentEvent]) -> str:
    event = next(events)
    assert event.event == "ready"
    return event.id


def test_subscriber_receives_alerts_within_one_second(api: Api) -> None:
    token = api.token()
    with api.sse(token) as sse:
        _ready(sse)
        sent = [make_alert(patient=f"p-{i}") for i in range(5)]
        for alert in sent:
            api.produce(alert.model_copy(update={"emitted_at": time.time()}))
        received = _alerts(sse, 5)
    # Five patients hash to different partitions: Kafka orders per partition, not across.
    assert sorted(a.alert_id for a, _, _ in received) == sorted(a.alert_id for a in sent)
    latencies = [at - alert.emitted_at for alert, _, at in received]
    assert max(latencies) < 1.0, latencies


@pytest.mark.parametrize("ring_events", [10_000, 3], ids=["from-ring", "from-kafka"])
def test_disconnected_client_resumes_with_exactly_the_full_sequence(
    api: Api, monkeypatch: pytest.MonkeyPatch, ring_events: int
) -> None:
    monkeypatch.setattr(feed_module, "RING_EVENTS", ring_events)
    token = api.token()
    sequence = [make_alert(patient=f"p-{i % 3}", alert_id=f"seq-{i}") for i in range(12)]
    with api.sse(token) as sse:
        _ready(sse)
        api.produce(*sequence[:6])
        first = _alerts(sse, 4)
    cursor = first[-1][1]
    api.produce(*sequence[6:])  # produced while the client is away
    time.sleep(0.3)
    with api.sse(token, cursor=cursor) as sse:
        resumed = _alerts(sse, 8)
    ids = [a.alert_id for a, _, _ in first + resumed]
    assert sorted(ids) == sorted(a.alert_id for a in sequence)  # no gap, no duplicate
    for patient in ("p-0", "p-1", "p-2"):  # in order where Kafka orders: per patient
        mine = [a.alert_id for a, _, _ in first + resumed if a.patient == patient]
        assert mine == [a.alert_id for a in sequence if a.patient == patient]


def test_ward_a_token_never_receives_ward_b_alerts(api: Api) -> None:
    token = api.token(wards=["A"])
    mixed = [make_alert(ward="AB"[i % 2], patient=f"p-{i}") for i in range(10)]
    sentinel = make_alert(ward="A", alert_id="sentinel")
    with api.sse(token) as sse:
        _ready(sse)
        api.produce(*mixed, sentinel)
        received = _alerts(sse, 6)
    # Exactly the six ward-A alerts: a leaked ward-B alert would displace one of them.
    assert {a.alert_id for a, _, _ in received} == {
        a.alert_id for a in [*mixed, sentinel] if a.ward == "A"
    }
    assert [a.ward for a, _, _ in received] == ["A"] * 6
    response = httpx.get(
        f"{api.url}/alerts/stream",
        params={"ward": "B"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_websocket_feed_with_first_message_token(api: Api) -> None:
    token = api.token(wards=["A"])
    with ws_connect(f"ws://127.0.0.1:{api.server.port}/alerts/ws?min_priority=high") as ws:
        ws.send(json.dumps({"token": token}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        api.produce(make_alert(priority="low"), make_alert(ward="B"), make_alert(alert_id="w1"))
        message = json.loads(ws.recv(timeout=5))
    assert message["type"] == "alert" and message["alert"]["alert_id"] == "w1"
    assert Cursor.decode(message["cursor"])


def test_bad_requests_get_precise_4xx(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    good = api.token()
    expired = api.tokens.issue(subject="old", wards="*", ttl_s=10, now=time.time() - 60)[0]
    no_ack = api.token(can_ack=False)
    cases = [
        ({"params": {"colour": "red"}, "token": good}, 400, "unknown_filter"),
        ({"params": {"min_priority": "urgent"}, "token": good}, 400, "bad_filter"),
        ({"params": {"cursor": "%%%"}, "token": good}, 400, "bad_cursor"),
        ({"cursor": Cursor({0: 10**9}).encode(), "token": good}, 400, "bad_cursor"),
        ({"params": {"token": good}, "token": None}, 400, "token_in_query"),
        ({"token": None}, 401, "missing_token"),
        ({"token": "vs_unknown"}, 401, "unknown_token"),
        ({"token": expired}, 401, "expired_token"),
    ]
    for request, status, code in cases:
        headers = {"Authorization": f"Bearer {request['token']}"} if request["token"] else {}
        if "cursor" in request:
            headers["Last-Event-ID"] = request["cursor"]
        response = httpx.get(
            f"{api.url}/alerts/stream", params=request.get("params"), headers=headers
        )
        assert (response.status_code, response.json()["error"]) == (status, code), request
        assert response.json()["detail"]
    ack = httpx.post(
        f"{api.url}/alerts/any/ack",
        json={"note": ""},
        headers={"Authorization": f"Bearer {no_ack}"},
    )
    assert (ack.status_code, ack.json()["error"]) == (403, "insufficient_scope")
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(f"{api.url}{path}").status_code == 404
    with pytest.raises(Exception, match="400"):
        ws_connect(f"ws://127.0.0.1:{api.server.port}/alerts/ws?colour=red").close()
    server_loggers = ("uvicorn", "vitalstream", "stream")  # not the test's own httpx client
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(server_loggers))
    assert "/alerts/stream" in logged  # the access log ran ...
    assert good not in logged and expired not in logged  # ... without tokens or query strings


def _topic(settings: Settings, topic: str, timeout_s: float = 5.0) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
        **client_options(settings.kafka),
    )
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def test_acknowledgement_stops_escalation(isolated_settings: Settings, tmp_path: Path) -> None:
    settings = _settings(isolated_settings, tmp_path, escalation_after_s=1.0)
    with running(settings) as api:
        acked, ignored = make_alert(patient="p-ack"), make_alert(patient="p-ign")
        api.produce(acked, ignored)
        nurse = api.token(can_ack=True, subject="nurse-7")
        deadline = time.monotonic() + 5
        while True:  # the feed must have seen the alert before it can be acknowledged
            response = httpx.post(
                f"{api.url}/alerts/{acked.alert_id}/ack",
                json={"note": "at bedside"},
                headers={"Authorization": f"Bearer {nurse}"},
            )
            if response.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 200, response.text
        assert response.json()["acknowledged_by"] == "nurse-7"
        again = httpx.post(
            f"{api.url}/alerts/{acked.alert_id}/ack",
            json={},
            headers={"Authorization": f"Bearer {nurse}"},
        )
        assert (again.status_code, again.json()["error"]) == (409, "already_acknowledged")
        time.sleep(2.6)
        fhir = httpx.get(
            f"{api.url}/fhir/DetectedIssue",
            params={"patient": "p-ack"},
            headers={"Authorization": f"Bearer {nurse}"},
        ).json()
    events = [Alert.from_json(v) for v in _topic(settings, settings.topics.alerts)]
    by_alert = {
        alert_id: [(e.event, e.escalation_level) for e in events if e.alert_id == alert_id]
        for alert_id in (acked.alert_id, ignored.alert_id)
    }
    assert by_alert[acked.alert_id] == [("triggered", 0), ("acknowledged", 0)]
    assert by_alert[ignored.alert_id][:3] == [("triggered", 0), ("escalated", 1), ("escalated", 2)]
    [ack] = [Acknowledgement.from_json(v) for v in _topic(settings, settings.topics.acks)]
    assert (ack.alert_id, ack.by, ack.note, ack.ward) == (
        acked.alert_id,
        "nurse-7",
        "at bedside",
        "A",
    )
    assert fhir["resourceType"] == "Bundle" and fhir["total"] == 1
    assert fhir["entry"][0]["resource"]["status"] == "final"
    with InfluxDBClient(
        url=settings.influx.url, token=settings.influx_token, org=settings.influx.org
    ) as client:
        tables = client.query_api().query(
            f'from(bucket: "{settings.influx.bucket}") |> range(start: -1h) '
            '|> filter(fn: (r) => r._measurement == "alerts" and r._field == "event")'
        )
    written = sorted((r.values["patient"], r.get_value()) for t in tables for r in t.records)
    assert ("p-ack", "acknowledged") in written
    assert ("p-ign", "escalated") in written


def test_escalation_is_not_repeated_after_a_restart(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(isolated_settings, tmp_path, escalation_after_s=4.0)
    old = make_alert(emitted_at=time.time() - 4.5)
    with running(settings) as api:
        api.produce(old)
        time.sleep(1.0)  # first escalation is due at once
    with running(settings):
        time.sleep(1.5)  # a restart that forgot would escalate to level 1 again here
    levels = [
        e.escalation_level
        for e in map(Alert.from_json, _topic(settings, settings.topics.alerts))
        if e.alert_id == old.alert_id and e.event == "escalated"
    ]
    assert levels == [1]


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, self.headers[SIGNATURE_HEADER]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhooks_are_signed_and_a_dead_endpoint_blocks_no_one(api: Api) -> None:
    _Receiver.received = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    token = api.token(wards=["A"])
    auth = {"Authorization": f"Bearer {token}"}
    try:
        dead = httpx.post(
            f"{api.url}/webhooks",
            headers=auth,
            json={"url": f"http://127.0.0.1:{free_port()}/gone", "filters": {}},
        ).json()
        live = httpx.post(
            f"{api.url}/webhooks",
            headers=auth,
            json={
                "url": f"http://127.0.0.1:{receiver.server_port}/hook",
                "filters": {"min_priority": "high"},
            },
        ).json()
        refused = httpx.post(
            f"{api.url}/webhooks",
            headers=auth,
            json={"url": "http://127.0.0.1:1/x", "filters": {"ward": "B"}},
        )
        assert refused.status_code == 403
        api.produce(*[make_alert(alert_id=f"hook-{i}") for i in range(5)], make_alert(ward="B"))
        deadline = time.monotonic() + 5
        while len(_Receiver.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.8)
        dead_log = httpx.get(f"{api.url}/webhooks/{dead['id']}/deliveries", headers=auth).json()
    finally:
        receiver.shutdown()
    bodies = [json.loads(body) for body, _ in _Receiver.received]
    assert [b["alert"]["alert_id"] for b in bodies] == [f"hook-{i}" for i in range(5)]
    secret = live["secret"].encode()
    assert all(verify(secret, body, signature) for body, signature in _Receiver.received)
    outcomes = [entry["outcome"] for entry in dead_log]
    assert "retrying" in outcomes and "failed" in outcomes
    assert {e["attempt"] for e in dead_log if e["outcome"] == "failed"} == {3}


def test_a_subscriber_can_connect_before_any_worker_made_the_alerts_topic(
    isolated_settings: Settings, tmp_path: Path, kafka_admin: KafkaAdminClient
) -> None:
    """A fresh stack: the alerts topic does not exist yet. The service creates it, becomes
    ready and serves an empty feed; the first alert a worker writes then arrives."""
    fresh = f"{isolated_settings.topics.alerts}.fresh"
    topics = isolated_settings.topics.model_copy(update={"alerts": fresh})
    settings = _settings(isolated_settings.model_copy(update={"topics": topics}), tmp_path)
    assert fresh not in kafka_admin.list_topics()
    try:
        with running(settings) as api:
            assert fresh in kafka_admin.list_topics()
            with api.sse(api.token()) as events:
                _ready(events)
                api.produce(make_alert())
                [(alert, _, _)] = _alerts(events, 1)
                assert alert.kind == make_alert().kind
    finally:
        with contextlib.suppress(Exception):
            kafka_admin.delete_topics([fresh])


def _adjudications(settings: Settings, expected: int, timeout_s: float = 10.0) -> list[dict]:
    """The ``adjudications`` rows (fields pivoted beside the tags), once ``expected`` are in."""
    flux = (
        f'from(bucket: "{settings.influx.bucket}") |> range(start: -1h) '
        '|> filter(fn: (r) => r._measurement == "adjudications") '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value") '
        "|> group()"
    )
    deadline = time.monotonic() + timeout_s
    with InfluxDBClient(
        url=settings.influx.url, token=settings.influx_token, org=settings.influx.org
    ) as client:
        while True:
            rows = [r.values for t in client.query_api().query(flux) for r in t.records]
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


def test_a_verdict_reaches_the_acks_topic_the_alert_feed_and_influxdb(
    isolated_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vitalstream alerts ack --verdict` through the real service, Kafka and InfluxDB; an
    acknowledgement in the old shape (no verdict) beside it still works."""
    from typer.testing import CliRunner

    from stream.cli.main import app

    settings = _settings(isolated_settings, tmp_path, escalation_after_s=3600.0)
    published = time.time() - 30  # the alarm went out 30 s before anyone acknowledged it
    judged = make_alert(patient="p-judged", kind="desaturation", emitted_at=published)
    old_style = make_alert(patient="p-old", priority="medium", emitted_at=published)
    with running(settings) as api:
        api.produce(judged, old_style)
        token = api.token(can_ack=True, subject="nurse-7")
        with api.sse(token, params={"patient": "p-judged"}) as events:
            _ready(events)
            monkeypatch.setenv("VITALSTREAM_ALERTS_TOKEN", token)
            deadline = time.monotonic() + 5
            while True:  # the feed must have seen the alert before it can be acknowledged
                result = CliRunner().invoke(
                    app,
                    ["alerts", "ack", judged.alert_id, "--verdict", "artefact",
                     "--note", "probe off the finger", "--url", api.url],
                )  # fmt: skip
                if result.exit_code == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert result.exit_code == 0, result.output
            assert f"acknowledged {judged.alert_id} as artefact by nurse-7" in result.stdout
            assert token not in result.output
            # SSE subscribers see the verdict on the acknowledged event.
            seen = _alerts(events, 1)[0][0]
            if seen.event != "acknowledged":  # the feed had not yet read the trigger
                seen = _alerts(events, 1)[0][0]
            assert (seen.alert_id, seen.verdict) == (judged.alert_id, "artefact")
        response = httpx.post(  # the body acknowledgements had before verdicts
            f"{api.url}/alerts/{old_style.alert_id}/ack",
            json={"note": "seen"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["verdict"] is None
        rows = _adjudications(settings, expected=2)
    acks = {
        a.alert_id: a
        for a in map(Acknowledgement.from_json, _topic(settings, settings.topics.acks))
    }
    assert (acks[judged.alert_id].verdict, acks[judged.alert_id].note) == (
        "artefact",
        "probe off the finger",
    )
    assert acks[old_style.alert_id].verdict is None
    acknowledged = {
        e.alert_id: e
        for e in map(Alert.from_json, _topic(settings, settings.topics.alerts))
        if e.event == "acknowledged"
    }
    assert acknowledged[judged.alert_id].verdict == "artefact"
    assert acknowledged[old_style.alert_id].verdict is None
    by_alert = {row["alert_id"]: row for row in rows}
    assert set(by_alert) == {judged.alert_id, old_style.alert_id}
    row = by_alert[judged.alert_id]
    assert (row["verdict"], row["kind"], row["priority"], row["patient"], row["ward"]) == (
        "artefact",
        "desaturation",
        "high",
        "p-judged",
        "A",
    )
    assert (row["by"], row["escalation_level"]) == ("nurse-7", 0)
    # From the alarm's publication, as the feed saw it, to the acknowledgement.
    assert 30.0 <= row["latency_s"] < 45.0, row["latency_s"]
    assert by_alert[old_style.alert_id]["verdict"] == "none"
