"""Fan-out benchmark (a command, not a test): N concurrent subscribers, every alert to all.

Runs the service in-process on a fresh alerts topic of the configured broker, opens N SSE
(or WebSocket) subscribers, produces alerts stamped with ``emitted_at`` and measures, per
delivery, receive time minus ``emitted_at`` (Kafka produce + feed + fan-out + HTTP). The
clients share the machine (and the GIL) with the server, so the figure is pessimistic.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from httpx_sse import aconnect_sse
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from rich.console import Console
from websockets.asyncio.client import connect as ws_connect

from producers.publisher import ensure_topics
from stream.config import Settings
from stream.kafka import client_options
from stream.records import Alert
from stream.subscriptions.server import ServerThread
from stream.subscriptions.tokens import TokenStore


def _alert(i: int) -> Alert:
    now = time.time()
    return Alert(
        alert_id=f"bench-{i}",
        event="triggered",
        kind="tachycardia",
        category="physiological",
        priority="high",
        patient=f"bench-p{i % 16}",
        ward="bench",
        device_id=f"dev-{i % 16}",
        t_onset=now,
        t_event=now,
        emitted_at=now,
        window=(now - 10, now),
        values={"hr": 140.0},
        source="bench",
    )


async def _sse_subscriber(
    url: str,
    token: str,
    expected: int,
    ready: asyncio.Event,
    counter: list[int],
    latencies: list[float],
    http: httpx.AsyncClient,
) -> int:
    got = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aconnect_sse(http, "GET", f"{url}/alerts/stream", headers=headers) as sse:
        async for event in sse.aiter_sse():
            if event.event == "ready":
                counter[0] += 1
                if counter[0] >= counter[1]:
                    ready.set()
            elif event.event == "alert":
                latencies.append(time.time() - orjson.loads(event.data)["emitted_at"])
                got += 1
                if got == expected:
                    return got
    return got


async def _ws_subscriber(
    url: str,
    token: str,
    expected: int,
    ready: asyncio.Event,
    counter: list[int],
    latencies: list[float],
) -> int:
    got = 0
    ws_url = url.replace("http://", "ws://") + "/alerts/ws"
    async with ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        async for raw in ws:
            message = orjson.loads(raw)
            if message["type"] == "ready":
                counter[0] += 1
                if counter[0] >= counter[1]:
                    ready.set()
            elif message["type"] == "alert":
                latencies.append(time.time() - message["alert"]["emitted_at"])
                got += 1
                if got == expected:
                    return got
    return got


def _produce(settings: Settings, alerts: int, rate_per_s: float) -> None:
    producer = KafkaProducer(**client_options(settings.kafka), linger_ms=0)
    try:
        for i in range(alerts):
            alert = _alert(i)
            producer.send(settings.topics.alerts, alert.to_json(), key=alert.patient.encode())
            time.sleep(1 / rate_per_s)
        producer.flush()
    finally:
        producer.close()


async def _subscribe_all(
    url: str,
    token: str,
    subscribers: int,
    alerts: int,
    transport: str,
    ready_flag: Any,
) -> tuple[list[int], list[float]]:
    ready, counter, latencies = asyncio.Event(), [0, subscribers], []
    limits = httpx.Limits(max_connections=subscribers + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), limits=limits) as http:
        if transport == "ws":
            coros = [
                _ws_subscriber(url, token, alerts, ready, counter, latencies)
                for _ in range(subscribers)
            ]
        else:
            coros = [
                _sse_subscriber(url, token, alerts, ready, counter, latencies, http)
                for _ in range(subscribers)
            ]
        tasks = [asyncio.create_task(c) for c in coros]
        await asyncio.wait_for(ready.wait(), 60)
        ready_flag.set()
        done, pending = await asyncio.wait(tasks, timeout=180)
        for task in pending:
            task.cancel()
        counts = [t.result() if t in done and not t.exception() else 0 for t in tasks]
        return counts, latencies


def _client_process(
    url: str,
    token: str,
    subscribers: int,
    alerts: int,
    transport: str,
    ready_flag: Any,
    results: Any,
) -> None:
    """The subscribers, in their own process so they do not share the server's GIL."""
    results.put(asyncio.run(_subscribe_all(url, token, subscribers, alerts, transport, ready_flag)))


def _measure(
    settings: Settings,
    url: str,
    token: str,
    subscribers: int,
    alerts: int,
    transport: str,
    rate_per_s: float,
    console: Console,
) -> tuple[list[int], list[float], float]:
    context = multiprocessing.get_context("spawn")
    ready_flag, results = context.Event(), context.Queue()
    clients = context.Process(
        target=_client_process,
        args=(url, token, subscribers, alerts, transport, ready_flag, results),
    )
    clients.start()
    try:
        with console.status(f"connecting {subscribers} {transport} subscribers"):
            if not ready_flag.wait(90):
                raise RuntimeError("subscribers did not connect")
        started = time.perf_counter()
        with console.status(f"producing {alerts} alerts at {rate_per_s:g}/s"):
            _produce(settings, alerts, rate_per_s)
            counts, latencies = results.get(timeout=240)
        return counts, latencies, time.perf_counter() - started
    finally:
        clients.join(timeout=10)
        if clients.is_alive():
            clients.terminate()


def run_bench(
    settings: Settings,
    *,
    subscribers: int = 200,
    alerts: int = 200,
    transport: str = "sse",
    rate_per_s: float = 20.0,
) -> dict[str, Any]:
    """Run once and print p50/p99/max delivery latency; returns the figures."""
    console = Console()
    topic = f"{settings.topics.alerts}.bench-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic])
    with tempfile.TemporaryDirectory() as tmp:
        api = settings.alerts_api.model_copy(
            update={"tokens_file": Path(tmp) / "tokens.json", "client_buffer": max(alerts, 1000)}
        )
        bench_settings = settings.model_copy(
            update={
                "topics": settings.topics.model_copy(update={"alerts": topic}),
                "alerts_api": api,
            }
        )
        token, _ = TokenStore(api.tokens_file).issue(subject="bench", wards="*", ttl_s=3600)
        try:
            with ServerThread(bench_settings) as server:
                server.wait_ready()
                counts, latencies, elapsed = _measure(
                    bench_settings,
                    server.url,
                    token,
                    subscribers,
                    alerts,
                    transport,
                    rate_per_s,
                    console,
                )
        finally:
            admin = KafkaAdminClient(**client_options(settings.kafka))
            admin.delete_topics([topic])
            admin.close()
    lat_ms = np.array(latencies) * 1000
    result = {
        "transport": transport,
        "subscribers": subscribers,
        "alerts": alerts,
        "complete_subscribers": sum(c == alerts for c in counts),
        "deliveries": len(latencies),
        "p50_ms": float(np.percentile(lat_ms, 50)) if len(lat_ms) else float("nan"),
        "p99_ms": float(np.percentile(lat_ms, 99)) if len(lat_ms) else float("nan"),
        "max_ms": float(lat_ms.max()) if len(lat_ms) else float("nan"),
        "rate_per_s": rate_per_s,
        "elapsed_s": elapsed,
    }
    console.print(
        f"{transport}: {result['complete_subscribers']}/{subscribers} subscribers got all "
        f"{alerts} alerts at {rate_per_s:g}/s ({result['deliveries']} deliveries); latency p50 "
        f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
    )
    return result
