"""The streaming models' batch feeds against the per-window reference, number for number.

:func:`stream.scoring.inputs.streaming_feeds` builds a batch's newest-hop inputs as arrays;
:func:`stream.scoring.inputs.hop_inputs` of one window at a time is what training's hops
and the first streaming scorer used. Windows from a simulated faulty ward (gaps, lost
frames, devices starting, so cold starts), and made-up ones at the edges (all missing,
too short, no peaks given, no ECG, no or short trend histories).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from stream.config import load_settings
from stream.scoring import registry
from stream.scoring.inputs import cold_hops, hop_inputs, streaming_feeds
from stream.scoring.registry import LoadedModel
from stream.signal.beats import detect_r_peaks
from stream.signal.window import SignalWindow

START = 1_700_000_000.0

# (windows, features, peaks, the windows' ECG as one array's rows when the pipeline had it)
Batch = tuple[
    list[SignalWindow], list[dict[str, float]], list[np.ndarray | None], np.ndarray | None
]


def shipped(name: str, tmp: Path) -> LoadedModel:
    settings = load_settings(models={"directory": str(tmp / "none")}, pseudonym_key="k")
    return registry.load(registry.resolve(name, settings))


@pytest.fixture(scope="module")
def ward_batches(tmp_path_factory: pytest.TempPathFactory) -> list[Batch]:
    """The windows a pipeline scores on a faulty simulated ward, batch by batch."""
    from producers.fleet import Fleet
    from producers.scenario import load_scenario
    from stream.scoring.scorer import Scorer
    from stream.worker.ingest import RawRecord
    from stream.worker.pipeline import Pipeline

    tmp = tmp_path_factory.mktemp("ward")
    settings = load_settings(models={"directory": str(tmp / "registry")}, pseudonym_key="k")
    scorer = Scorer.from_registry(settings)
    pipeline = Pipeline(settings, scorer, worker="feeds")
    batches: list[Batch] = []
    score = scorer.score

    def spy(windows, features, r_peaks=None, devices=None, ecg_grid=None):  # type: ignore[no-untyped-def]
        peaks = list(r_peaks or [None] * len(windows))
        batches.append((list(windows), list(features), peaks, ecg_grid))
        return score(windows, features, r_peaks, devices, ecg_grid)

    scorer.score = spy  # type: ignore[method-assign]
    fleet = Fleet(load_scenario("default"), 10, seed=3, start=START, faults=True)
    offset = 0
    for device_id, payload in fleet.enrolments():
        offset += 1
        pipeline.enrol(RawRecord(device_id.encode(), payload, 0, offset), now=START)
    for second in range(40):
        tick = fleet.tick()
        records = []
        for number, (device_id, payload) in enumerate(tick.messages):
            if second > 12 and (second + number) % 9 == 0:
                continue  # a frame lost over the air: a second of ECG missing in windows
            offset += 1
            partition = zlib.crc32(device_id.encode()) % 3
            records.append(RawRecord(device_id.encode(), payload, partition, offset))
        pipeline.save(pipeline.process(records, now=tick.t + 1.0))
    return batches


def edge_windows() -> Batch:
    """Windows at the edges of what the builders handle."""
    rng = np.random.default_rng(8)
    fs = 128.0
    t = np.arange(int(10 * fs)) / fs
    beats = np.cumsum(rng.uniform(0.4, 1.2, 20))
    ecg = sum(1.2 * np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats) + rng.normal(
        0, 0.02, len(t)
    )
    gap = ecg.copy()
    gap[400:700] = np.nan
    tail_gap = ecg.copy()
    tail_gap[-150:] = np.nan  # the newest hop missing
    scattered = np.where(rng.random(len(t)) < 0.05, np.nan, ecg)
    history = 60.0 + rng.normal(0, 2, 900)
    history[rng.random(900) < 0.2] = np.nan
    trends = [
        {"hr": history, "spo2": history / 2 + 50, "resp": history / 4, "temp": history * 0},
        {"hr": np.full(900, np.nan), "spo2": np.zeros(0)},  # nothing, and an empty one
        {"hr": history[-25:], "spo2": history[-7:], "temp": history[-1:]},  # new device
        {},
    ]
    signals = [ecg, gap, tail_gap, scattered, np.full(len(t), np.nan), ecg[: int(9.5 * fs)]]
    windows, features, peaks = [], [], []
    for i, signal in enumerate([*signals, *signals]):
        windows.append(
            SignalWindow(START, START + 10.0, ecg=signal, ecg_fs=fs, trends=trends[i % 4])
        )
        features.append({"activity_g": 0.1 * i, "hr_device": 70.0})
        # Half are given the window features' peaks, half detect their own.
        peaks.append(detect_r_peaks(signal, fs) if i < len(signals) else None)
    windows.append(SignalWindow(START, START + 10.0, trends=trends[0]))  # no ECG
    features.append({})
    peaks.append(None)
    return windows, features, peaks, None


def assert_same_feeds(model: LoadedModel, batch: Batch, count: int) -> int:
    """``streaming_feeds`` of the batch's windows that can feed ``count`` hops against
    ``hop_inputs`` of each alone; returns how many windows were compared."""
    windows, features, peaks, grid = batch
    hop_s = model.card.streaming.hop_s  # type: ignore[union-attr]

    def feeds(window: SignalWindow) -> bool:  # as the scorer filters: ECG that holds the hops
        if model.card.inputs[0].kind != "ecg":
            return True
        ecg = window.ecg
        return (
            ecg is not None
            and cold_hops(model, window) >= 1
            and len(ecg) >= count * hop_s * window.ecg_fs
        )

    usable = [i for i, window in enumerate(windows) if feeds(window)]
    if not usable:
        return 0
    picked = (
        [windows[i] for i in usable],
        [features[i] for i in usable],
        [peaks[i] for i in usable],
    )
    batched = streaming_feeds(model, *picked, count)
    # As the pipeline feeds a batch read as one array per signal: the grid's rows.
    from_grid = streaming_feeds(model, *picked, count, grid[usable]) if grid is not None else None
    for k, i in enumerate(usable):
        alone = hop_inputs(model, [windows[i]], [features[i]], [peaks[i]], count)
        for name, values in alone.items():
            assert batched[name].dtype == values.dtype
            np.testing.assert_array_equal(batched[name][k], values[0], err_msg=f"{name} {i}")
            if from_grid is not None:
                np.testing.assert_array_equal(from_grid[name][k], values[0], err_msg=name)
    return len(usable)


@pytest.mark.parametrize("name,counts", [("rhythm", (1, 2, 10)), ("deterioration", (1, 3, 60))])
def test_batch_feeds_are_the_per_window_feeds_on_a_faulty_ward(
    name: str, counts: tuple[int, ...], ward_batches: list[Batch], tmp_path: Path
) -> None:
    model = shipped(name, tmp_path)
    compared = 0
    for batch in ward_batches:
        for count in counts:
            compared += assert_same_feeds(model, batch, count)
    assert compared > 500, compared
    # The ward had gaps in what was fed (missing ECG within windows, missing vitals).
    windows = [w for batch in ward_batches for w in batch[0]]
    assert any(w.ecg is not None and np.isnan(w.ecg).any() for w in windows)
    assert sum(batch[3] is not None for batch in ward_batches) > 10  # fed from grids too
    assert any(np.isnan(h).any() for w in windows for h in w.trends.values())


@pytest.mark.parametrize("name,counts", [("rhythm", (1, 2, 9)), ("deterioration", (1, 7, 60))])
def test_batch_feeds_are_the_per_window_feeds_at_the_edges(
    name: str, counts: tuple[int, ...], tmp_path: Path
) -> None:
    model = shipped(name, tmp_path)
    for count in counts:
        assert assert_same_feeds(model, edge_windows(), count) >= 10


def test_cold_start_counts_of_the_ward_are_fed_alike(
    ward_batches: list[Batch], tmp_path: Path
) -> None:
    """Each window's own cold start (every hop it holds), as the scorer feeds a new device."""
    for name in ("rhythm", "deterioration"):
        model = shipped(name, tmp_path)
        for windows, features, peaks, _ in ward_batches[:12]:
            for i, window in enumerate(windows):
                hops = cold_hops(model, window)
                if hops:
                    assert_same_feeds(model, ([window], [features[i]], [peaks[i]], None), hops)
