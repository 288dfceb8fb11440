"""Helpers of the ward board's browser tests: the browser, the service, the page.

Owns: starting Debian's ``chromium`` through ``chromium-driver`` with Selenium
(:func:`start_chrome`; a missing one fails the run, as missing services do), the alert
service of one test (:class:`BoardWorld`: its settings, tokens, a Kafka producer onto its
alerts topic, vitals written to its bucket as the worker's sink writes them, a restart on
the same port) and the page object (:class:`BoardPage`) the tests drive. Every wait is a
condition with a deadline (:func:`wait_for`).
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaProducer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from stream.config import Settings
from stream.kafka import client_options
from stream.records import Alert, Frame
from stream.sinks.measurements import patient_tags, vitals_lines
from stream.subscriptions.server import ServerThread
from stream.subscriptions.tokens import TokenStore

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
_ids = itertools.count()


def make_alert(**overrides: object) -> Alert:
    """A ``triggered`` alert of ward A emitted now; fields overridable."""
    now = time.time()
    fields: dict[str, object] = {
        "alert_id": f"bd-{next(_ids)}-{now:.0f}",
        "event": "triggered",
        "kind": "tachycardia",
        "category": "physiological",
        "priority": "high",
        "patient": "p-board-1",
        "ward": "A",
        "device_id": "dev-board-1",
        "t_onset": now,
        "t_event": now,
        "emitted_at": now,
        "window": (now - 10, now),
        "values": {"hr": 141.0, "spo2": 95.0},
        "source": "rule:hr_high",
        "message": "heart rate above 130 bpm for 10 s",
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


def wait_for(
    condition: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.05
) -> Any:
    """Poll until ``condition()`` is truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


# ---- the browser ---------------------------------------------------------------------------


def _chromium() -> tuple[str, str]:
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "the browser tests need chromium and chromedriver on PATH "
            "(`make system-deps` installs Debian's chromium and chromium-driver)",
            pytrace=False,
        )
    return browser, driver


def start_chrome() -> webdriver.Chrome:
    """Headless Chromium at 1280x900, keeping the browser console's log."""
    browser, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # containers and root: no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs (it would go to the internet).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


# ---- the service -----------------------------------------------------------------------------


class BoardWorld:
    """The alert service of one test, its tokens and a producer onto its alerts topic."""

    def __init__(self, settings: Settings, influx_client: InfluxDBClient) -> None:
        self.settings = settings
        self.influx_client = influx_client
        self.tokens = TokenStore(settings.alerts_api.tokens_file)
        self.producer = KafkaProducer(**client_options(settings.kafka), acks="all", linger_ms=0)
        self.server: ServerThread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the service (on the port of the previous start, if any) and wait for it."""
        server = ServerThread(self.settings)
        if self.port is not None:  # a restart: same origin, so the page keeps its session
            server.port = self.port
            server.url = self.url
            server.server.config.port = self.port
        self.port = server.port
        self.server = server.__enter__()
        server.wait_ready()

    def stop(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)
            self.server = None

    def token(self, **scope: Any) -> str:
        """A new token with this scope, once the running service accepts it (the service
        re-reads the tokens file at most once a second)."""
        scope.setdefault("wards", ["A"])
        scope.setdefault("subject", "nurse-7")
        token = self.tokens.issue(**scope)[0]
        headers = {"Authorization": f"Bearer {token}"}
        wait_for(
            lambda: httpx.get(f"{self.url}/me", headers=headers).status_code == 200,
            10,
            "the service to accept a new token",
        )
        return token

    def produce(self, *alerts: Alert, key: bytes | None = None) -> float:
        """Publish to the alerts topic (key: the patient, or ``key``); returns when sent."""
        for alert in alerts:
            self.producer.send(
                self.settings.topics.alerts,
                alert.to_json(),
                key=key if key is not None else alert.patient.encode(),
            )
        self.producer.flush()
        return time.time()

    def write_vitals(
        self,
        patient: str,
        ward: str,
        device: str,
        samples: list[tuple[float, dict[str, float]]],
    ) -> None:
        """Write ``(t, {"hr": .., "spo2": .., "resp": ..})`` as the worker's sink would."""
        lines: list[str] = []
        tags = patient_tags(ward, patient, device)
        for seq, (t, values) in enumerate(samples):
            units = {"hr": "bpm", "spo2": "%", "resp": "/min"}
            frame = Frame.model_validate(
                {
                    "device_id": device,
                    "seq": seq,
                    "t0": t,
                    "signals": {
                        name: {"fs": 1, "unit": units[name], "samples": [value]}
                        for name, value in values.items()
                    },
                }
            )
            lines += vitals_lines(frame, tags)
        write_api = self.influx_client.write_api(write_options=SYNCHRONOUS)
        write_api.write(
            bucket=self.settings.influx.bucket, org=self.settings.influx.org, record=lines
        )

    def close(self) -> None:
        self.stop()
        self.producer.close()


# ---- the page ---------------------------------------------------------------------------------


class BoardPage:
    """The board in the browser: what a user does, and what the tests read."""

    def __init__(self, driver: webdriver.Chrome, world: BoardWorld) -> None:
        self.driver = driver
        self.world = world

    def open(self) -> None:
        self.driver.get(f"{self.world.url}/board")
        WebDriverWait(self.driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def sign_in(self, token: str) -> None:
        field = self.find("#token")
        field.clear()
        field.send_keys(token)
        self.find("#sign-in-button").click()

    def body(self, name: str) -> str:
        return self.js(f"return document.body.dataset.{name} || ''")

    def wait_live(self, timeout_s: float = 20.0) -> None:
        wait_for(lambda: self.body("connection") == "live", timeout_s, "the feed to be live")

    def row(self, alert_id: str) -> WebElement | None:
        found = self.driver.find_elements(By.CSS_SELECTOR, f'li[data-alert-id="{alert_id}"]')
        return found[0] if found else None

    def wait_row(self, alert_id: str, timeout_s: float = 15.0, **attributes: str) -> WebElement:
        def ready() -> WebElement | None:
            row = self.row(alert_id)
            if row is None:
                return None
            for name, value in attributes.items():
                if row.get_attribute(f"data-{name}") != value:
                    return None
            return row

        return wait_for(ready, timeout_s, f"alert {alert_id} with {attributes}")

    def rows(self) -> list[dict[str, str]]:
        return self.js(
            "return [...document.querySelectorAll('#alerts li')].map(li => ({...li.dataset}))"
        )

    def console_errors(self) -> list[str]:
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
        ]
