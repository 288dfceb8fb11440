"""FrameBatch: columns of frames, taken and joined, agree with the frames they came from."""

from __future__ import annotations

import random

import numpy as np
import pytest

from producers.fleet import Fleet
from producers.scenario import load_scenario
from stream.records import SIGNALS, Frame
from stream.signal.frames import FrameBatch


def _frames(seed: int, devices: int = 12, seconds: int = 3) -> list[Frame]:
    fleet = Fleet(load_scenario("default"), devices, seed=seed, start=1_700_000_000.0, faults=True)
    frames = []
    for _ in range(seconds):
        frames += [Frame.model_validate_json(payload) for _, payload in fleet.tick().messages]
    return frames


def _assert_rows_are(batch: FrameBatch, frames: list[Frame]) -> None:
    assert len(batch) == len(frames)
    assert batch.frames() == frames
    assert batch.device_ids == [f.device_id for f in frames]
    assert batch.seq.tolist() == [f.seq for f in frames]
    assert batch.ends.tolist() == [f.t0 + f.duration() for f in frames]
    for name, blocks in batch.blocks.items():
        assert (np.diff(blocks.members) > 0).all(), f"{name}: blocks in row order"
        assert (
            blocks.offsets.tolist()
            == np.concatenate(([0], np.cumsum(blocks.lengths)[:-1])).tolist()
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_columns_round_trip_to_the_frames(seed: int) -> None:
    frames = _frames(seed)
    batch = FrameBatch.from_frames(frames, [(0, i) for i in range(len(frames))])
    _assert_rows_are(batch, frames)
    assert set(batch.blocks) <= set(SIGNALS)


@pytest.mark.parametrize("seed", [4, 5])
def test_take_and_concat_agree_with_the_frames_picked(seed: int) -> None:
    rng = random.Random(seed)
    frames = _frames(seed)
    # Some frames lack signals (a detached sensor's, a device without PPG): make some.
    frames = [
        f.model_copy(update={"signals": f.signals.model_copy(update={"ppg": None})})
        if rng.random() < 0.3 and f.signals.hr is not None
        else f
        for f in frames
    ]
    batch = FrameBatch.from_frames(frames, [(0, i) for i in range(len(frames))])
    for _ in range(20):
        rows = rng.sample(range(len(frames)), rng.randint(0, len(frames)))
        _assert_rows_are(batch.take(rows), [frames[r] for r in rows])
        cut = rng.randint(0, len(rows))
        joined = FrameBatch.concat([batch.take(rows[:cut]), batch.take(rows[cut:])])
        _assert_rows_are(joined, [frames[r] for r in rows])
        assert joined.positions == [(0, r) for r in rows]


def test_observations_follow_their_rows() -> None:
    frames = _frames(6, devices=3, seconds=1)
    frames[1] = Frame.model_validate(
        {**frames[1].model_dump(), "observations": {"systolic_bp": 95.0}}
    )
    batch = FrameBatch.from_frames(frames, [(0, i) for i in range(3)])
    assert list(batch.observations) == [1]
    assert list(batch.take([2, 1]).observations) == [1]
    assert batch.take([2, 1]).frame(1) == frames[1]
    assert list(FrameBatch.concat([batch.take([0]), batch.take([1])]).observations) == [1]
