"""Pure parts of the pre-rendered load: rendering a fleet ahead, re-dating its bytes by a
whole-second shift, and the sender's per-second schedule. No Kafka; the clock is only
read where the sender's pacing is checked against it."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest

from producers.fleet import Fleet
from producers.scenario import Scenario
from stream.tools.bench import load
from stream.tools.bench.e2e import bench_scenario

DEVICES, SECONDS, RENDER_START = 25, 12, 1_796_000_000


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> load.Rendered:
    directory = tmp_path_factory.mktemp("load")
    load.render(
        bench_scenario(warmup_s=2, seconds=10), DEVICES, SECONDS, directory,
        render_start=RENDER_START,
    )  # fmt: skip
    return load.load(directory)


def _values(rendered: load.Rendered) -> list[bytes]:
    blob = (rendered.directory / load.VALUES_FILE).read_bytes()
    return [
        blob[o : o + n]
        for o, n in zip(rendered.offset.tolist(), rendered.length.tolist(), strict=True)
    ]


def test_render_writes_the_simulators_own_messages_in_send_order(
    rendered: load.Rendered,
) -> None:
    # The same fleet as `vitalstream simulate` renders it, tick by tick.
    fleet = Fleet(
        Scenario.model_validate(bench_scenario(warmup_s=2, seconds=10)), DEVICES,
        seed=1, start=RENDER_START, faults=True,
    )  # fmt: skip
    expected = [(-1, key, value) for key, value in fleet.enrolments()]
    frames = 0
    for k in range(SECONDS):
        tick = fleet.tick()
        frames += tick.frames
        late = fleet.drain() if k == SECONDS - 1 else []
        expected += [(k, key, value) for key, value in [*tick.messages, *late]]
    keys = rendered.meta["keys"]
    got = [
        (second, keys[key], value)
        for second, key, value in zip(
            rendered.second.tolist(), rendered.key.tolist(), _values(rendered), strict=True
        )
    ]
    assert got == expected
    assert rendered.meta["frames"] == frames
    assert rendered.meta["messages"] == len(expected) - DEVICES
    assert rendered.meta["labels"] == fleet.labels(float(SECONDS))


def test_every_message_is_redated_by_the_whole_second_shift(rendered: load.Rendered) -> None:
    shift = 12_345
    for value, at, second in zip(
        _values(rendered), rendered.clock.tolist(), rendered.second.tolist(), strict=True
    ):
        moved = orjson.loads(load.shift_clock(value, at, shift))
        original = orjson.loads(value)
        field = "t" if second == load.ENROLMENTS_SECOND else "t0"
        assert moved[field] == pytest.approx(original[field] + shift, abs=1e-6)
        assert moved | {field: original[field]} == original  # nothing else changes
        if second >= 0:  # never ahead of its second (late frames are older)
            assert original["t0"] < RENDER_START + second + 1.0


def test_shift_clock_matches_float_arithmetic_on_random_epochs() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        t = round(float(rng.uniform(1.7e9, 1.9e9)), int(rng.integers(0, 5)))
        value = b'{"seq":1,"t0":%s,"x":[1]}' % orjson.dumps(t)
        shift = int(rng.integers(-10_000_000, 10_000_000))
        at = load.clock_offset(value, load.FRAME_CLOCK)
        assert orjson.loads(load.shift_clock(value, at, shift))["t0"] == pytest.approx(
            t + shift, abs=1e-6
        )


def test_plan_start_is_a_whole_second_after_the_lead() -> None:
    for now in (100.0, 100.001, 100.5, 100.999):
        start, shift = load.plan_start(40, now, lead_s=1.5)
        assert start == int(start) and start >= now + 1.5 > start - 1
        assert shift == start - 40


def test_second_bounds_cut_the_messages_by_second(rendered: load.Rendered) -> None:
    bounds = load.second_bounds(rendered.second, SECONDS)
    assert bounds[0] == DEVICES  # the enrolments come first
    assert bounds[-1] == rendered.messages
    for k in range(SECONDS):
        assert set(rendered.second[bounds[k] : bounds[k + 1]].tolist()) <= {k}
    with pytest.raises(ValueError, match="send order"):
        load.second_bounds(np.array([0, 1, 0]), 2)


def test_shifted_labels_move_with_the_frames() -> None:
    labels = [{"device_id": "d", "event": "fall", "start": 10.5, "end": 70.5}]
    assert load.shifted_labels(labels, 100) == [
        {"device_id": "d", "event": "fall", "start": 110.5, "end": 170.5}
    ]
    assert labels[0]["start"] == 10.5  # the originals are left alone


def test_pacing_reaches_each_second_on_time_and_catches_up() -> None:
    period, stall = 0.2, 0.5

    async def run() -> list[tuple[int, float, float]]:
        start = time.time() + 0.05
        reached = [(-1, start, 0.0)]
        async for k, behind in load.paced(start, 3, frame_s=period):
            reached.append((k, time.time(), behind))
            if k == 0:
                # A slow second (blocking, as a slow send would): the next ones are late,
                # not pushed back.
                time.sleep(stall)
        return reached

    (_, start, _), *reached = asyncio.run(run())
    assert [k for k, _, _ in reached] == [0, 1, 2]
    assert reached[0][1] >= start and reached[0][2] == 0.0
    assert reached[1][2] >= stall - period - 0.01  # behind, then catching up:
    assert reached[2][2] > 0.0
    assert reached[2][1] - reached[1][1] < period  # no full period waited after the stall


def test_due_in_counts_from_the_absolute_schedule() -> None:
    assert load.due_in(1_000.0, 0, 1.0, now=999.5) == 0.5
    assert load.due_in(1_000.0, 10, 1.0, now=1_012.0) == -2.0  # two seconds behind
    assert load.due_in(1_000.0, 4, 0.5, now=1_001.0) == 1.0


def test_partitions_follow_the_key_not_the_order() -> None:
    keys = [f"dev-{i:04d}" for i in range(200)]
    first = load.partitions_of(keys, [0, 1, 2, 3, 4, 5, 6, 7])
    again = load.partitions_of(list(reversed(keys)), [7, 6, 5, 4, 3, 2, 1, 0])
    assert first == list(reversed(again))
    assert set(first) == set(range(8))  # 200 devices reach every partition


def test_a_record_without_a_ten_digit_epoch_is_refused() -> None:
    with pytest.raises(ValueError, match="10-digit"):
        load.clock_offset(b'{"t0":99999.5}', load.FRAME_CLOCK)


def test_gateway_batches_render_as_the_simulator_sends_them_and_redate_every_frame(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """per_message > 1: the simulator's gateway messages (producers.gateways), each inner
    frame's clock moved by the shift and nothing else."""
    from producers.gateways import gateways_for, messages_of

    directory = tmp_path_factory.mktemp("gateway-load")
    scenario = bench_scenario(warmup_s=2, seconds=10)
    load.render(scenario, DEVICES, SECONDS, directory, render_start=RENDER_START, per_message=8)
    rendered = load.load(directory)
    fleet = Fleet(
        Scenario.model_validate(scenario), DEVICES, seed=1, start=RENDER_START, faults=True
    )
    gateways = gateways_for(fleet.device_ids, 8)
    expected = [(-1, key, value) for key, value in fleet.enrolments()]
    for k in range(SECONDS):
        tick = fleet.tick()
        late = fleet.drain() if k == SECONDS - 1 else []
        messages = messages_of([*tick.messages, *late], gateways)
        expected += [(k, key, value) for key, value in messages]
    keys = rendered.meta["keys"]
    values = _values(rendered)
    got = [
        (second, keys[key], value)
        for second, key, value in zip(
            rendered.second.tolist(), rendered.key.tolist(), values, strict=True
        )
    ]
    assert got == expected
    assert {keys[k] for k in rendered.key[rendered.second >= 0].tolist()} == set(gateways.values())
    shift = 86_400
    bounds = rendered.clock_bounds.tolist()
    for i, (value, second) in enumerate(zip(values, rendered.second.tolist(), strict=True)):
        clocks = rendered.clocks[bounds[i] : bounds[i + 1]].tolist()
        moved, original = orjson.loads(load.shift_clock(value, clocks, shift)), orjson.loads(value)
        if second == load.ENROLMENTS_SECOND:
            assert moved["t"] == pytest.approx(original["t"] + shift, abs=1e-6)
            continue
        assert len(clocks) == len(original["frames"]) >= 1
        for after, before in zip(moved["frames"], original["frames"], strict=True):
            assert after["t0"] == pytest.approx(before["t0"] + shift, abs=1e-6)
            assert after | {"t0": before["t0"]} == before
