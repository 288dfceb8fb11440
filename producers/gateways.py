"""Gateways: which gateway relays each device, and the Kafka messages a period's frames make.

Owns the one rule by which the producers (``vitalstream simulate``, ``vitalstream replay``)
and the throughput bench group devices into gateways, and how a period's frames are put
into messages:

- **one device per message** (``per_message`` 1): each frame is its own message keyed by
  its device id, the wire format of a wearable that talks to Kafka itself;
- **gateway batches** (``per_message`` N > 1): consecutive devices, in the fleet's order,
  share a gateway, N per gateway (the last one may relay fewer); each gateway's frames of
  a period travel as one :class:`~stream.records.GatewayBatch`
  (:func:`~stream.records.gateway_batch_json`) keyed by the gateway id, so a gateway's
  devices share its partition.

The grouping is deterministic (same device list and N, same gateways), so a device keeps
its gateway, and its partition, for a whole run.

:data:`DEFAULT_PER_MESSAGE` is the producers' default: a realistic gateway, not a
benchmark's. A ward-bay gateway (or bedside hub) relays the wearables within its radio's
reach: Bluetooth LE central radios keep roughly 8-20 peripherals connected at once, so
a bay of beds with one or two wearables per patient makes 8-16 devices per gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from stream.records import MAX_GATEWAY_FRAMES, gateway_batch_json

# A ward-bay gateway relaying its beds' wearables (see the module docstring).
DEFAULT_PER_MESSAGE = 16
MAX_PER_MESSAGE = MAX_GATEWAY_FRAMES  # what one gateway batch may carry
GATEWAY_PREFIX = "gw-"
PER_MESSAGE_HELP = (
    "devices' frames per Kafka message. 1: one frame per message keyed by device id. "
    "N > 1: consecutive devices share a gateway, N each, and each gateway's frames of a "
    "period go as one gateway batch keyed by the gateway id (gw-0001, ...). Default "
    f"{DEFAULT_PER_MESSAGE}: a ward-bay gateway or bedside hub relaying the wearables in its "
    "radio's reach (Bluetooth LE centrals hold about 8-20 connections: a bay of beds, one "
    "or two wearables each)"
)


def check_per_message(per_message: int) -> int:
    """``per_message`` when a gateway batch can carry that many frames, else ValueError.

    >>> check_per_message(16)
    16
    >>> check_per_message(0)
    Traceback (most recent call last):
    ...
    ValueError: per message must be 1..1000 devices, got 0
    """
    if not 1 <= per_message <= MAX_PER_MESSAGE:
        raise ValueError(f"per message must be 1..{MAX_PER_MESSAGE} devices, got {per_message}")
    return per_message


def gateway_of(device_ids: Sequence[str], per_message: int) -> dict[str, str]:
    """Each device's gateway: consecutive runs of ``per_message`` devices share one.

    >>> gateway_of(["a", "b", "c"], 2)
    {'a': 'gw-0001', 'b': 'gw-0001', 'c': 'gw-0002'}
    """
    check_per_message(per_message)
    return {
        device: f"{GATEWAY_PREFIX}{i // per_message + 1:04d}" for i, device in enumerate(device_ids)
    }


def gateways_for(device_ids: Sequence[str], per_message: int) -> dict[str, str] | None:
    """The gateways of :func:`messages_of`: None (one frame per message) for ``per_message``
    1, else :func:`gateway_of`.

    >>> gateways_for(["a", "b"], 1) is None, gateways_for(["a", "b"], 2)
    (True, {'a': 'gw-0001', 'b': 'gw-0001'})
    """
    return None if check_per_message(per_message) == 1 else gateway_of(device_ids, per_message)


def messages_of(
    frames: Iterable[tuple[str, bytes]], gateways: Mapping[str, str] | None
) -> list[tuple[str, bytes]]:
    """The ``(key, value)`` messages carrying one period's ``(device id, frame)`` pairs.

    Without ``gateways`` each frame is its own message keyed by its device; with them,
    each gateway's frames (in the order given: a duplicate or a late frame released this
    period rides with its gateway's others) make one batch keyed by the gateway,
    gateways in the order of their first frame.

    >>> messages_of([("a", b"{}"), ("b", b"{}")], None)
    [('a', b'{}'), ('b', b'{}')]
    >>> messages_of([("a", b"{}"), ("b", b"{}")], {"a": "g", "b": "g"})
    [('g', b'{"v":1,"gateway_id":"g","frames":[{},{}]}')]
    """
    if gateways is None:
        return list(frames)
    grouped: dict[str, list[bytes]] = {}
    for device_id, payload in frames:
        grouped.setdefault(gateways[device_id], []).append(payload)
    # A batch holds at most MAX_GATEWAY_FRAMES: a gateway's duplicates and late releases
    # could take it past that only with per_message near the limit; split, never refuse.
    return [
        (gateway, gateway_batch_json(gateway, batch[i : i + MAX_GATEWAY_FRAMES]))
        for gateway, batch in grouped.items()
        for i in range(0, len(batch), MAX_GATEWAY_FRAMES)
    ]
