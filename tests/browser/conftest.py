"""Fixtures of the ward board's browser tests (helpers: :mod:`tests.browser.harness`).

``chrome`` is one headless Chromium per session; ``world`` the alert service of one test
on its own topics and bucket (``isolated_settings``); ``page`` the board in that browser,
checked at the end for script errors and CSP refusals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient
from selenium import webdriver
from selenium.common.exceptions import WebDriverException

from stream.config import Settings
from tests.browser.harness import BoardPage, BoardWorld, start_chrome


@pytest.fixture(scope="session")
def chrome() -> Iterator[webdriver.Chrome]:
    driver = start_chrome()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def board_settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    alerts_api = isolated_settings.alerts_api.model_copy(
        update={"tokens_file": tmp_path / "tokens.json", "escalation_after_s": 3600.0}
    )
    return isolated_settings.model_copy(update={"alerts_api": alerts_api})


@pytest.fixture
def world(board_settings: Settings, influx_client: InfluxDBClient) -> Iterator[BoardWorld]:
    world = BoardWorld(board_settings, influx_client)
    world.start()
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def page(chrome: webdriver.Chrome, world: BoardWorld) -> Iterator[BoardPage]:
    chrome.set_window_size(1280, 900)
    chrome.get_log("browser")  # drop what earlier tests left
    board = BoardPage(chrome, world)
    try:
        yield board
        # No script errors and no CSP refusals (connection errors while a test stops the
        # server are the network's, not the page's).
        problems = [m for m in board.console_errors() if "Uncaught" in m or "Content Security" in m]
        assert problems == []
    finally:
        # Leave the page first: its open stream would hold up the server's shutdown.
        with contextlib.suppress(WebDriverException):
            chrome.get("about:blank")
