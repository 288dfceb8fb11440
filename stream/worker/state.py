"""The worker's small durable per-device state, and the mapping views the core reads it by.

Owns :class:`StateStore` (enrolment contexts, alert-tracker state, when each device was
last heard from, its ECG beat and PPG pulse detectors' and streaming models' state: plain
dicts, made durable by the worker as per-device snapshots, :mod:`stream.worker.snapshots`) and
:class:`ContextView` (JSON bytes → :class:`~stream.records.PatientContext`). Raw samples
never live here: they stay in the worker's local ring buffers (:mod:`stream.signal.buffers`).

>>> from stream.records import Profile
>>> store = StateStore()
>>> contexts = ContextView(store.contexts)
>>> contexts["dev-1"] = PatientContext(
...     device_id="dev-1", patient="p", ward="w", profile=Profile())
>>> store.contexts["dev-1"][:25], contexts["dev-1"].ward
(b'{"device_id":"dev-1","pat', 'w')
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from stream.records import PatientContext


@dataclass
class StateStore:
    """The small, durable per-device state; Faust tables in the worker.

    Values are JSON-ready (bytes or dicts) so any mapping can hold them.
    """

    contexts: MutableMapping[str, bytes] = field(default_factory=dict)
    trackers: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)
    last_seen: MutableMapping[str, float] = field(default_factory=dict)
    # The ECG beat detector's state (EcgBeatStream.export) as of the last durable batch.
    detectors: MutableMapping[str, bytes] = field(default_factory=dict)
    # The PPG pulse detector's state (PpgPulseStream.export), likewise.
    pulse_detectors: MutableMapping[str, bytes] = field(default_factory=dict)
    # The streaming models' state (Scorer.take_states: each GRU's hidden state and conv
    # context by model@version) as of the last durable batch.
    models: MutableMapping[str, bytes] = field(default_factory=dict)
    # The end of the device's newest window whose output is durable: a new owner starts
    # its window schedule after it (FleetBuffers.resume), neither judging nor writing
    # again what the previous owner did.
    windowed: MutableMapping[str, float] = field(default_factory=dict)
    # Its waveform rings' rate and end (FleetBuffers.ring_ends) as of the last checkpoint,
    # where a new owner's refill of them ends: it puts them back on that sample grid.
    rings: MutableMapping[str, dict[str, list[float]]] = field(default_factory=dict)
    # Alerts (JSON) an alert snapshot carried: published, or about to be, by the device's
    # previous owner; re-published by the one that restores it (stream.worker.snapshots).
    outbox: MutableMapping[str, list[bytes]] = field(default_factory=dict)


class ContextView(MutableMapping[str, PatientContext]):
    """PatientContext view over a mapping of JSON bytes (what a Faust table holds)."""

    def __init__(self, raw: MutableMapping[str, bytes]) -> None:
        self.raw = raw
        self._cache: dict[str, tuple[bytes, PatientContext]] = {}

    def __getitem__(self, device_id: str) -> PatientContext:
        data = self.raw[device_id]
        cached = self._cache.get(device_id)
        if cached is None or cached[0] != data:
            cached = (data, PatientContext.model_validate_json(data))
            self._cache[device_id] = cached
        return cached[1]

    def get(self, device_id: str, default: Any = None) -> Any:
        return self[device_id] if device_id in self.raw else default

    def __setitem__(self, device_id: str, context: PatientContext) -> None:
        self.raw[device_id] = context.to_json()

    def __delitem__(self, device_id: str) -> None:
        del self.raw[device_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self.raw
