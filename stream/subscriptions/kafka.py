"""aiokafka client options from :class:`stream.config.KafkaSettings`.

The feed service is asyncio end to end (FastAPI, SSE, WebSockets), so it uses aiokafka,
which faust-streaming already brings, rather than a kafka-python thread bridged into the
event loop: ``assign``/``seek``/``end_offsets`` and the producer are then plain awaits.
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from stream.config import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    kafka = settings.kafka
    options: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap, **kafka.client_basics()}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile
        )
    return options
