"""The ward board in a real headless Chromium against the real Kafka and InfluxDB.

Each test has its own alerts topic, acks topic and bucket; the alert service runs
in-process; alerts are produced to the alerts topic as the stream worker would. The page
is driven as a user would (typing, clicking, Tab/Enter/Space) and read through the DOM.

``BOARD_SCREENSHOT=docs/board.png pytest tests/browser -k screenshot`` regenerates the
picture in docs/board.md.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import httpx
import orjson
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from stream.records import Acknowledgement
from tests.browser.harness import BoardPage, BoardWorld, make_alert, wait_for
from tests.integration.harness import consume, influx_rows

pytestmark = [pytest.mark.integration, pytest.mark.browser]

RED, YELLOW, CYAN = "rgb(213, 0, 0)", "rgb(255, 214, 0)", "rgb(0, 188, 212)"


def test_a_scoped_token_signs_in_and_never_reaches_a_url_or_storage(
    world: BoardWorld, page: BoardPage
) -> None:
    page.open()
    page.sign_in("vs_not-a-real-token")
    wait_for(lambda: "not valid" in page.find("#token-error").text, 10, "the refusal")
    assert page.body("connection") == "signed-out"

    token = world.token(wards=["A"], can_ack=False, subject="nurse-7")
    page.sign_in(token)
    page.wait_live()
    scope = page.find("#scope").text
    assert "nurse-7" in scope and "ward A" in scope and "view only" in scope
    assert page.find("#token").get_attribute("value") == ""
    assert page.driver.current_url == f"{world.url}/board"
    assert page.js("return [localStorage.length, sessionStorage.length, document.cookie]") == [
        0,
        0,
        "",
    ]
    requested = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(url.endswith("/me") for url in requested)
    assert not any(token in url for url in [*requested, page.driver.current_url])
    assert token not in page.driver.page_source

    # A view-only token sees an open alert but is offered no acknowledgement.
    alert = make_alert()
    world.produce(alert)
    page.wait_row(alert.alert_id).find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: page.find("#detail").is_displayed(), 5, "the alert's detail")
    assert not page.find("#ack-form").is_displayed()

    page.find("#sign-out").click()
    wait_for(lambda: page.body("connection") == "signed-out", 5, "signing out")
    assert page.rows() == []
    assert token not in page.driver.page_source


def test_a_new_alert_reaches_the_board_within_two_seconds_in_its_priority_colour(
    world: BoardWorld, page: BoardPage
) -> None:
    page.open()
    page.sign_in(world.token(wards=["A"]))
    page.wait_live()
    high = make_alert(priority="high", patient="p-hi")
    medium = make_alert(priority="medium", kind="desaturation", patient="p-med")
    low = make_alert(priority="low", kind="low_battery", category="technical", patient="p-lo")
    latencies = []
    for alert in (high, medium, low):
        sent_at = world.produce(alert.model_copy(update={"emitted_at": time.time()}))
        row = page.wait_row(alert.alert_id, timeout_s=15, status="open")
        latencies.append(int(row.get_attribute("data-received-at")) / 1000 - sent_at)
    assert max(latencies) < 2.0, latencies

    def badge(alert_id: str) -> dict[str, str]:
        return page.js(
            "const s = getComputedStyle(document.querySelector("
            "`li[data-alert-id='${arguments[0]}'] .badge`));"
            "return {colour: s.backgroundColor, flash: s.animationName,"
            " period: s.animationDuration};",
            alert_id,
        )

    # IEC 60601-1-8: high red flashing ~2 Hz, medium yellow flashing ~0.6 Hz, low cyan steady.
    assert badge(high.alert_id) == {"colour": RED, "flash": "alarm-flash", "period": "0.5s"}
    assert badge(medium.alert_id) == {
        "colour": YELLOW,
        "flash": "alarm-flash",
        "period": "1.667s",
    }
    assert badge(low.alert_id) == {"colour": CYAN, "flash": "none", "period": "0s"}
    # Open, highest priority first.
    assert [r["alertId"] for r in page.rows()] == [high.alert_id, medium.alert_id, low.alert_id]
    # Signing in was the user's gesture: the high-priority burst sounded.
    wait_for(lambda: page.body("lastBurst") == "high", 5, "the high-priority burst")
    page.find("#sound").click()
    assert page.find("#sound").get_attribute("aria-pressed") == "true"


def test_acknowledging_with_a_verdict_by_keyboard_reaches_kafka_and_influxdb(
    world: BoardWorld, page: BoardPage
) -> None:
    alert = make_alert(patient="p-ack", ward="A")
    world.produce(alert)
    page.open()
    page.sign_in(world.token(wards=["A"], can_ack=True, subject="nurse-ack"))
    page.wait_live()
    page.wait_row(alert.alert_id, status="open")

    # Tab from the alerts heading (focused after sign-in) reaches the alert; Enter opens it.
    keys = ActionChains(page.driver)
    keys.send_keys(Keys.TAB).perform()
    focused = page.driver.switch_to.active_element
    assert focused.get_attribute("class") == "alert-select"
    outline = page.js("const s = getComputedStyle(arguments[0]); return s.outlineStyle", focused)
    assert outline == "solid"  # visible focus
    keys.send_keys(Keys.ENTER).perform()
    wait_for(lambda: page.find("#detail").is_displayed(), 5, "the alert's detail")
    assert page.driver.switch_to.active_element.get_attribute("id") == "detail-title"
    keys.send_keys(Keys.TAB).perform()  # the note
    assert page.driver.switch_to.active_element.get_attribute("id") == "ack-note"
    keys.send_keys("lead moved, pt comfortable").perform()
    for _ in range(3):  # Actionable, Not actionable, Artefact
        keys.send_keys(Keys.TAB).perform()
    assert page.driver.switch_to.active_element.text == "Artefact"
    keys.send_keys(Keys.SPACE).perform()

    page.wait_row(alert.alert_id, status="acknowledged", verdict="artefact")
    wait_for(lambda: "Acknowledged as Artefact" in page.find("#ack-result").text, 5, "result")
    assert not page.find("#ack-form").is_displayed()

    acks = [
        Acknowledgement.model_validate(orjson.loads(value))
        for value in consume(world.settings, world.settings.topics.acks, lambda v: bool(v), 15)
    ]
    assert [(a.alert_id, a.by, a.note, a.verdict) for a in acks] == [
        (alert.alert_id, "nurse-ack", "lead moved, pt comfortable", "artefact")
    ]

    def adjudications() -> list:
        return influx_rows(
            world.settings,
            world.influx_client,
            '|> filter(fn: (r) => r._measurement == "adjudications" and r._field == "alert_id")',
        )

    [row] = wait_for(adjudications, 20, "the adjudication in InfluxDB")
    assert row.get_value() == alert.alert_id
    tags = {k: row.values[k] for k in ("ward", "patient", "kind", "priority", "verdict")}
    assert tags == {
        "ward": "A",
        "patient": "p-ack",
        "kind": "tachycardia",
        "priority": "high",
        "verdict": "artefact",
    }


def test_a_token_of_another_ward_sees_nothing_of_this_one(
    world: BoardWorld, page: BoardPage
) -> None:
    before = make_alert(ward="A", patient="p-ward-a")
    world.produce(before)  # already in the book: the snapshot must not show it either
    now = time.time()
    world.write_vitals(
        "p-ward-a", "A", "dev-a", [(now - 60 + i, {"hr": 80.0}) for i in range(0, 60, 5)]
    )
    page.open()
    page.sign_in(world.token(wards=["B"], subject="nurse-b"))
    page.wait_live()
    during = make_alert(ward="A", patient="p-ward-a")
    mine = make_alert(ward="B", patient="p-ward-b")
    # One partition (same key), so ward A's alert is read before ward B's sentinel.
    world.produce(during, mine, key=b"same-partition")
    page.wait_row(mine.alert_id)
    assert [r["alertId"] for r in page.rows()] == [mine.alert_id]
    assert "p-ward-a" not in page.driver.page_source
    assert page.body("events") == "1"

    # Nor its vitals: the same query with a ward-A token does find them.
    def points(token: str) -> int:
        response = httpx.get(
            f"{world.url}/vitals",
            params={"patient": "p-ward-a"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
        return sum(len(series) for series in response.json()["series"].values())

    assert points(world.token(wards=["B"])) == 0
    assert points(world.token(wards=["A"])) > 0


def test_a_restarted_server_resumes_the_board_without_duplicates_or_loss(
    world: BoardWorld, page: BoardPage
) -> None:
    key = b"p-restart"  # one partition: the sentinel comes after everything before it
    page.open()
    page.sign_in(world.token(wards=["A"]))
    page.wait_live()
    before = [make_alert(patient=f"p-r{i}") for i in range(3)]
    world.produce(*before, key=key)
    for alert in before:
        page.wait_row(alert.alert_id)

    world.stop()
    wait_for(lambda: page.body("connection") != "live", 20, "the page to notice")
    while_down = [make_alert(patient=f"p-d{i}") for i in range(3)]
    world.produce(*while_down, key=key)
    world.start()  # same port, a fresh process state: the feed replays the topic
    after = [make_alert(patient=f"p-a{i}") for i in range(2)]
    sentinel = make_alert(patient="p-sentinel")
    world.produce(*after, sentinel, key=key)

    page.wait_row(sentinel.alert_id, timeout_s=60)
    page.wait_live()
    produced = [a.alert_id for a in [*before, *while_down, *after, sentinel]]
    rows = page.rows()
    assert sorted(r["alertId"] for r in rows) == sorted(produced)  # nothing lost
    assert {r["alertId"]: r["events"] for r in rows} == dict.fromkeys(produced, "1")
    assert page.body("events") == str(len(produced))  # nothing applied twice
    assert int(page.body("reconnects")) >= 1


def test_a_dropped_stream_resumes_from_its_cursor_without_duplicates_or_loss(
    world: BoardWorld, page: BoardPage
) -> None:
    # A one-event buffer: a burst overflows it and the server ends the stream ("lagging").
    world.stop()
    world.settings = world.settings.model_copy(
        update={"alerts_api": world.settings.alerts_api.model_copy(update={"client_buffer": 1})}
    )
    world.start()
    page.open()
    page.sign_in(world.token(wards=["A"]))
    page.wait_live()
    key = b"p-lag"
    produced: list[str] = []
    deadline = time.monotonic() + 60
    while page.body("reconnects") == "0":
        assert time.monotonic() < deadline, "the server never ended the stream"
        burst = [make_alert(patient="p-lag") for _ in range(40)]
        world.produce(*burst, key=key)
        produced += [a.alert_id for a in burst]
        expected = str(len(produced))
        wait_for(
            lambda expected=expected: (
                page.body("events") == expected or page.body("reconnects") != "0"
            ),
            30,
            "the burst or a reconnect",
        )
    sentinel = make_alert(patient="p-lag")
    world.produce(sentinel, key=key)
    produced.append(sentinel.alert_id)
    page.wait_row(sentinel.alert_id, timeout_s=30)
    rows = page.rows()
    assert sorted(r["alertId"] for r in rows) == sorted(produced)
    assert {r["alertId"]: r["events"] for r in rows} == dict.fromkeys(produced, "1")
    assert page.body("events") == str(len(produced))


def _chart_vitals(world: BoardWorld, patient: str) -> float:
    """20 minutes of 1 Hz vitals ending before now, plus points the chart must not show."""
    t0 = (int(time.time()) - 1200) // 60 * 60  # a whole minute: 5 s windows never straddle
    samples = []
    for i in range(1200):
        minute = i // 60
        samples.append(
            (
                float(t0 + i),
                {"hr": 60.0 + minute, "spo2": 92.0 if minute == 10 else 97.0, "resp": 16.0},
            )
        )
    world.write_vitals(patient, "A", "dev-chart", samples)
    # Outside the token's ward (B) and outside the 30 minutes: both would change the range.
    world.write_vitals(patient, "B", "dev-chart", [(t0 + 600.0, {"hr": 250.0})])
    world.write_vitals(patient, "A", "dev-chart", [(time.time() - 40 * 60, {"hr": 5.0})])
    return t0


def test_the_chart_shows_the_patients_last_30_minutes_from_influxdb(
    world: BoardWorld, page: BoardPage
) -> None:
    _chart_vitals(world, "p-chart")
    alert = make_alert(patient="p-chart", device_id="dev-chart")
    world.produce(alert)
    page.open()
    page.sign_in(world.token(wards=["A"]))
    page.wait_live()
    page.wait_row(alert.alert_id).find_element(By.TAG_NAME, "button").click()

    def chart(field: str) -> dict[str, str] | None:
        return page.js(
            "const f = document.querySelector(`figure[data-field='${arguments[0]}']`);"
            "return f && {points: f.dataset.points, summary: f.querySelector('figcaption')"
            ".textContent, lines: f.querySelectorAll('polyline').length,"
            " title: f.querySelector('svg title').textContent};",
            field,
        )

    hr = wait_for(lambda: chart("hr"), 15, "the heart-rate chart")
    # 1200 one-second readings in 5 s windows: 240 points, one unbroken line.
    assert hr["points"] == "240"
    assert hr["lines"] == 1
    assert hr["summary"] == (
        "Heart rate: latest 79 bpm, lowest 60, highest 79 (240 points in 30 min)"
    )
    assert hr["title"] == hr["summary"]  # the SVG's accessible name
    assert chart("spo2")["summary"] == (
        "SpO₂: latest 97 %, lowest 92, highest 97 (240 points in 30 min)"
    )
    assert chart("resp")["summary"] == (
        "Respiration: latest 16 /min, lowest 16, highest 16 (240 points in 30 min)"
    )


def test_the_board_is_readable_on_a_phone(world: BoardWorld, page: BoardPage) -> None:
    alert = make_alert(kind="ventricular_run", values={"hr": 182.0, "spo2": 93.0, "resp": 24.0})
    world.produce(alert)
    page.driver.set_window_size(390, 844)
    page.open()
    page.sign_in(world.token(wards=["A"], can_ack=True))
    page.wait_live()
    page.wait_row(alert.alert_id).find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: page.find("#ack-form").is_displayed(), 5, "the acknowledgement form")
    layout = page.js(
        "const r = (s) => document.querySelector(s).getBoundingClientRect();"
        "return {page: document.documentElement.scrollWidth, view: window.innerWidth,"
        " list: r('#alerts').right, detail: r('#detail').right,"
        " buttons: [...document.querySelectorAll('.verdict')].map(b =>"
        " b.getBoundingClientRect().height)};"
    )
    assert layout["page"] <= layout["view"], layout  # no sideways scrolling
    assert layout["list"] <= layout["view"] and layout["detail"] <= layout["view"], layout
    assert min(layout["buttons"]) >= 44, layout  # touch targets


def test_screenshot_of_a_board_with_alerts(
    world: BoardWorld, page: BoardPage, tmp_path: Path
) -> None:
    """The picture in docs/board.md (written there with BOARD_SCREENSHOT=docs/board.png)."""
    _chart_vitals(world, "p-7f3a9c")
    now = time.time()
    alerts = [
        make_alert(
            patient="p-7f3a9c",
            device_id="dev-chart",
            kind="ventricular_run",
            values={"hr": 176.0},
            t_onset=now - 95,
        ),
        make_alert(
            patient="p-2b81e0",
            priority="medium",
            kind="desaturation",
            values={"spo2": 88.0},
            t_onset=now - 300,
        ),
        make_alert(
            patient="p-c04d17",
            priority="low",
            kind="low_battery",
            category="technical",
            values={"battery": 9.0},
            t_onset=now - 600,
        ),
        make_alert(patient="p-91ee42", kind="tachypnoea", values={"resp": 31.0}, t_onset=now - 900),
    ]
    escalated = alerts[0].model_copy(
        update={"event": "escalated", "escalation_level": 1, "t_event": now, "emitted_at": now}
    )
    acknowledged = alerts[3].model_copy(
        update={
            "event": "acknowledged",
            "acknowledged_by": "nurse-7",
            "verdict": "not_actionable",
            "t_event": now,
            "emitted_at": now,
        }
    )
    world.produce(*alerts, escalated, acknowledged)
    page.open()
    page.sign_in(world.token(wards=["A"], can_ack=True))
    page.wait_live()
    page.wait_row(alerts[0].alert_id, level="1")
    page.wait_row(alerts[3].alert_id, status="acknowledged")
    page.find("#sound").click()  # quiet while the picture is taken
    page.wait_row(alerts[0].alert_id).find_element(By.TAG_NAME, "button").click()
    facts = page.find("#detail-facts").text
    assert "Escalated to level 1 of 3" in facts and "p-7f3a9c" in facts  # escalation state
    assert "Acknowledged by nurse-7 (Not actionable)" in page.row(alerts[3].alert_id).text
    wait_for(
        lambda: page.js("return document.querySelectorAll('figure polyline').length") >= 3,
        15,
        "the charts",
    )
    # The flashing badges in their "on" phase, and no focus ring, for a stable picture.
    page.js(
        "document.getAnimations().forEach(a => { a.pause(); a.currentTime = 0; });"
        "document.activeElement.blur();"
    )
    page.driver.set_window_size(1280, 1280)  # the whole board, charts included
    png = page.driver.get_screenshot_as_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1000 and height >= 700
    (tmp_path / "board.png").write_bytes(png)
    if target := os.environ.get("BOARD_SCREENSHOT"):
        Path(target).write_bytes(png)
