"""Shared builders for the subscription unit tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from stream.config import load_settings
from stream.records import Alert
from stream.subscriptions.cursor import Cursor
from stream.subscriptions.errors import install_error_handlers
from stream.subscriptions.feed import AlertFeed
from stream.subscriptions.service import AlertService
from stream.subscriptions.tokens import TokenStore
from stream.subscriptions.webhooks import WebhookManager

_ids = itertools.count()


def make_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "alert_id": f"a{next(_ids)}",
        "event": "triggered",
        "kind": "tachycardia",
        "category": "physiological",
        "priority": "high",
        "patient": "p-1",
        "ward": "A",
        "device_id": "dev-1",
        "t_onset": 1_700_000_000.0,
        "t_event": 1_700_000_000.0,
        "emitted_at": 1_700_000_000.0,
        "window": (1_699_999_990.0, 1_700_000_000.0),
        "values": {"hr": 142.0},
        "source": "rule:hr_high",
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


@pytest.fixture
def alert_factory():
    return make_alert


# ---- the alert API's routers, each mounted alone on a test app ------------------------


class FakeProducer:
    """Records what the routes publish; ``fail`` makes every send raise (Kafka down)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = False

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append((topic, value, key))


class ApiWorld:
    """An :class:`AlertService` without Kafka: a hand-fed feed, a tokens file, a fake producer."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = load_settings(alerts_api={"tokens_file": tmp_path / "tokens.json"})
        self.tokens = TokenStore(self.settings.alerts_api.tokens_file)
        self.feed = AlertFeed(self.settings, self.tokens)
        self.feed.partitions = [0]
        self.feed.base = Cursor({0: 0})
        self.feed.position = Cursor(self.feed.base)
        self.producer = FakeProducer()
        self.service = AlertService(
            self.settings,
            self.tokens,
            self.feed,
            self.producer,
            WebhookManager(self.settings, self.tokens),
            None,
        )
        self._offset = 0

    def auth(self, **scope: Any) -> dict[str, str]:
        """Headers carrying a freshly issued token with this scope."""
        scope.setdefault("subject", "nurse-7")
        token, _ = self.tokens.issue(**scope)
        return {"Authorization": f"Bearer {token}"}

    def publish(self, alert: Alert) -> None:
        """As if the alert had just been read from the alerts topic."""
        self.feed._consume(0, self._offset, alert.to_json())
        self._offset += 1

    def app(self, *routers: APIRouter) -> FastAPI:
        """A FastAPI app with only these routers (and the API's error handlers)."""
        app = FastAPI()
        install_error_handlers(app)
        for router in routers:
            app.include_router(router)
        app.state.service = self.service
        return app

    def client(self, *routers: APIRouter) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app(*routers))
        return httpx.AsyncClient(transport=transport, base_url="http://alerts.test")


@pytest.fixture
def api(tmp_path: Path) -> ApiWorld:
    return ApiWorld(tmp_path)
