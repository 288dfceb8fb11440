"""Gateway batches from the producers: the grouping of devices into gateways, the batches a
fleet's periods make (faults on: duplicates and late frames ride in their gateway's batch),
the committed JSON Schema, and ``vitalstream simulate|replay --per-message`` (no broker:
the publisher is replaced by a list)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import orjson
import pytest
from typer.testing import CliRunner

from producers.fleet import Fleet, run_fleet
from producers.gateways import (
    DEFAULT_PER_MESSAGE,
    MAX_PER_MESSAGE,
    check_per_message,
    gateway_of,
    gateways_for,
    messages_of,
)
from producers.scenario import load_scenario
from stream.cli.main import app
from stream.records import Frame, GatewayBatch, gateway_json_schema

START = 1_800_000_000.0
DOCS = Path(__file__).parents[3] / "docs"
GATEWAY_SCHEMA = DOCS / "gateway.schema.json"
FRAME_SCHEMA = DOCS / "frame.schema.json"


def _period(devices: int = 7, seed: int = 3) -> list[tuple[str, bytes]]:
    """One frame period of a simulated ward: ``(device id, frame)`` in send order."""
    fleet = Fleet(load_scenario("default"), devices, seed=seed, start=START, faults=False)
    return fleet.tick().messages


def _frames_of(value: bytes) -> list[dict[str, Any]]:
    """The frame objects a message carries: a gateway batch's, or the message itself."""
    decoded = orjson.loads(value)
    return decoded["frames"] if "gateway_id" in decoded else [decoded]


def test_committed_gateway_schema_is_current() -> None:
    assert json.loads(GATEWAY_SCHEMA.read_text()) == gateway_json_schema()


def test_the_gateway_schema_carries_the_frame_schema() -> None:
    gateway, frame = json.loads(GATEWAY_SCHEMA.read_text()), json.loads(FRAME_SCHEMA.read_text())
    inner = gateway["$defs"]["Frame"]
    assert {k: v for k, v in inner.items() if k != "title"} == {
        k: v for k, v in frame.items() if k not in ("$defs", "$schema", "$id", "title")
    }
    for name, definition in frame["$defs"].items():
        assert gateway["$defs"][name] == definition


def test_one_device_per_message_is_the_simulators_own_messages() -> None:
    period = _period()
    assert gateways_for([device for device, _ in period], 1) is None
    assert messages_of(period, None) == period
    assert [key for key, _ in period] == [Frame.from_json(v).device_id for _, v in period]


@pytest.mark.parametrize("per_message", [2, 3, 7, 10])
def test_gateway_batches_carry_every_frame_once_keyed_by_gateway(per_message: int) -> None:
    period = _period(7)
    gateways = gateway_of([device for device, _ in period], per_message)
    batches = messages_of(period, gateways)
    assert len(batches) == -(-len(period) // per_message)  # ceil: the last gateway is short
    validator = jsonschema.Draft202012Validator(json.loads(GATEWAY_SCHEMA.read_text()))
    carried = []
    for key, value in batches:
        validator.validate(orjson.loads(value))
        batch = GatewayBatch.from_json(value)
        assert batch.gateway_id == key and len(batch.frames) <= per_message
        assert {gateways[frame.device_id] for frame in batch.frames} == {key}
        carried += [orjson.dumps(frame) for frame in _frames_of(value)]
    # Every frame exactly once, byte for byte, in the simulator's order.
    assert carried == [value for _, value in period]


def test_devices_are_grouped_consecutively_and_deterministically() -> None:
    devices = [f"d{i}" for i in range(5)]
    assert list(gateway_of(devices, 1).values()) == [f"gw-{i:04d}" for i in range(1, 6)]
    assert list(gateway_of(devices, 2).values()) == ["gw-0001"] * 2 + ["gw-0002"] * 2 + ["gw-0003"]
    assert gateway_of(devices, 5) == gateway_of(list(devices), 5)
    assert set(gateway_of(devices, 16).values()) == {"gw-0001"}
    for wrong in (0, -1, MAX_PER_MESSAGE + 1):
        with pytest.raises(ValueError, match="per message"):
            check_per_message(wrong)


def test_a_gateway_with_more_than_a_batch_of_frames_is_split_not_refused() -> None:
    frames = [(f"d{i}", b"{}") for i in range(MAX_PER_MESSAGE + 5)]
    batches = messages_of(frames, dict.fromkeys((d for d, _ in frames), "gw-1"))
    assert [len(orjson.loads(v)["frames"]) for _, v in batches] == [MAX_PER_MESSAGE, 5]
    assert {key for key, _ in batches} == {"gw-1"}


def _sent(fleet: Fleet, per_message: int, seconds: int) -> list[tuple[str, str, bytes]]:
    sent: ClassVar[list[tuple[str, str, bytes]]] = []
    run_fleet(
        fleet, lambda topic, key, value: sent.append((topic, key, value)),
        frames_topic="frames", enrolments_topic="enrolments", duration_s=seconds, speed=0,
        per_message=per_message,
    )  # fmt: skip
    return sent


def test_a_fleet_with_faults_sends_the_same_frames_per_device_or_per_gateway() -> None:
    """Lost, late and duplicated frames on: the batches carry exactly the frames (and
    copies) the per-device run sends, each device always through the same gateway, and each
    device's frames in the order the per-device run sends them."""
    noisy = load_scenario("noisy_ambulatory")
    faults = noisy.faults.model_copy(
        update={"late_rate": 0.1, "duplicate_rate": 0.1, "dropout_rate": 0.1}
    )
    scenario = noisy.model_copy(update={"faults": faults})
    devices, seconds, per_message = 23, 20, 10

    def fleet() -> Fleet:
        return Fleet(scenario, devices, seed=8, start=START, faults=True)

    alone = _sent(fleet(), 1, seconds)
    batched = _sent(fleet(), per_message, seconds)
    enrolments = [(key, value) for topic, key, value in alone if topic == "enrolments"]
    assert enrolments == [(key, value) for topic, key, value in batched if topic == "enrolments"]
    per_device = [(key, value) for topic, key, value in alone if topic == "frames"]
    assert all(key == Frame.from_json(value).device_id for key, value in per_device)

    gateways = gateway_of(fleet().device_ids, per_message)
    seen: dict[str, list[bytes]] = defaultdict(list)
    batches = [(key, value) for topic, key, value in batched if topic == "frames"]
    for key, value in batches:
        for frame in _frames_of(value):
            assert gateways[frame["device_id"]] == key
            seen[frame["device_id"]].append(orjson.dumps(frame))
    expected: dict[str, list[bytes]] = defaultdict(list)
    for device_id, value in per_device:
        expected[device_id].append(value)
    assert seen == expected  # same frames, same copies, same order per device
    # Faults were on: copies and late (out of order) frames went through the batches.
    assert max(Counter(value for _, value in per_device).values()) == 2
    seqs = {device: [orjson.loads(v)["seq"] for v in values] for device, values in seen.items()}
    assert any(seq != sorted(seq) for seq in seqs.values())
    # A period's frames: one batch per gateway (3 here), plus late ones left at the end.
    assert len(batches) <= 3 * seconds + 3


class _ListPublisher:
    """What the commands publish, kept in a list instead of Kafka."""

    sent: ClassVar[list[tuple[str, str, bytes]]] = []

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        self.errors = 0

    def send(self, topic: str, key: str, value: bytes) -> None:
        _ListPublisher.sent.append((topic, key, value))

    def flush(self, *_args: object) -> None:
        pass

    def __enter__(self) -> _ListPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bytes]]:
    _ListPublisher.sent = []
    monkeypatch.setattr("producers.publisher.Publisher", _ListPublisher)
    monkeypatch.setattr("producers.publisher.ensure_topics", lambda *_args: [])
    return _ListPublisher.sent


def _frames_messages(sent: list[tuple[str, str, bytes]]) -> list[tuple[str, bytes]]:
    return [(key, value) for topic, key, value in sent if not topic.endswith("enrolments")]


@pytest.mark.parametrize(
    ("option", "per_message"), [([], DEFAULT_PER_MESSAGE), (["--per-message", "8"], 8)]
)
def test_simulate_sends_gateway_batches(
    published: list, option: list[str], per_message: int
) -> None:
    devices, seconds = 20, 3
    argv = ["simulate", "--devices", str(devices), "--duration", str(seconds), "--speed", "0",
            "--no-faults", "--json", *option]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    messages = _frames_messages(published)
    per_period = -(-devices // per_message)
    assert summary["per_message"] == per_message and summary["frames"] == devices * seconds
    assert summary["messages"] == len(messages) == per_period * seconds
    keys = {f"gw-{i:04d}" for i in range(1, per_period + 1)}
    assert {key for key, _ in messages} == keys
    assert sum(len(GatewayBatch.from_json(value).frames) for _, value in messages) == 60


def test_simulate_one_device_per_message_keys_by_device(published: list) -> None:
    argv = ["simulate", "--devices", "5", "--duration", "2", "--speed", "0", "--no-faults",
            "--per-message", "1", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    messages = _frames_messages(published)
    assert len(messages) == 10
    assert all(Frame.from_json(value).device_id == key for key, value in messages)
    assert json.loads(result.output.strip().splitlines()[-1])["messages"] == 10


def test_per_message_out_of_range_is_refused_before_sending(published: list) -> None:
    runner = CliRunner()
    for wrong in ("0", str(MAX_PER_MESSAGE + 1)):
        assert runner.invoke(app, ["simulate", "--per-message", wrong]).exit_code == 2
        refused = runner.invoke(app, ["replay", "mitbih-208", "--device-id", "r",
                                      "--per-message", wrong])  # fmt: skip
        assert refused.exit_code == 2
    assert published == []


def test_replay_in_gateway_batches_sends_the_same_frames(published: list) -> None:
    runner = CliRunner()
    argv = ["replay", "mitbih-208", "--device-id", "rec-1", "--speed", "0", "--json",
            "--start", "1700000000"]  # fmt: skip
    assert runner.invoke(app, [*argv, "--per-message", "1"]).exit_code == 0
    alone = _frames_messages(published)
    published.clear()
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    batched = _frames_messages(published)
    assert json.loads(result.output.strip().splitlines()[-1])["per_message"] == DEFAULT_PER_MESSAGE
    assert len(alone) == len(batched) == 300  # record 208: five minutes, a frame a second
    assert {key for key, _ in alone} == {"rec-1"} and {key for key, _ in batched} == {"gw-0001"}
    inner = [frame for _, value in batched for frame in _frames_of(value)]
    assert [orjson.dumps(frame) for frame in inner] == [value for _, value in alone]
