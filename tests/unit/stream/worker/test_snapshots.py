"""Device snapshots: the state a worker restores a partition from, and what it forgets."""

from __future__ import annotations

import pytest

from stream.config import load_settings
from stream.records import PatientContext, Profile
from stream.worker import snapshots
from stream.worker.ingest import RawRecord
from stream.worker.pipeline import Pipeline
from stream.worker.state import ContextView, StateStore
from tests.unit.stream.worker.test_pipeline import KEY, START, Feed, ward


@pytest.fixture(scope="module")
def settings():
    return load_settings(pseudonym_key=KEY.decode(), stream={"signal_loss_s": 20.0})


def test_a_snapshot_carries_context_tracker_and_last_seen_and_a_tombstone_removes_them():
    store = StateStore()
    ContextView(store.contexts)["dev-1"] = PatientContext(
        device_id="dev-1", patient="p-1", ward="w", profile=Profile()
    )
    store.trackers["dev-1"] = {"last_t": 12.0, "active": {}}
    store.last_seen["dev-1"] = 13.5
    restored = StateStore()
    snapshots.apply(restored, "dev-1", snapshots.encode(store, "dev-1"))
    assert restored == store
    # An alert snapshot: the tracker a batch reached and its alerts, byte for byte.
    reached = {"last_t": 14.0, "active": {"tachycardia": "id"}}
    alerts = [b'{"alert_id":"id","value":1.0e-05}']
    snapshots.apply(restored, "dev-1", snapshots.encode(store, "dev-1", reached, alerts))
    assert restored.trackers["dev-1"] == reached and restored.outbox["dev-1"] == alerts
    snapshots.apply(restored, "dev-1", snapshots.encode(store, "dev-1"))
    assert restored == store
    snapshots.apply(restored, "dev-1", None)
    assert restored == StateStore()


def test_an_unknown_snapshot_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        snapshots.apply(StateStore(), "dev-1", b'{"format": 99}')


def test_a_worker_restored_from_snapshots_does_not_alert_twice(settings):
    """The takeover path: a new owner loads the partition's snapshots, then replays the
    frames after the last commit; the tachycardia raised before is not raised again."""
    fleet = ward(faults=False)
    first = Pipeline(settings, scorer=None)
    feed = Feed(first, fleet)
    feed.run(50)
    assert [a.kind for a in feed.alerts if a.event == "triggered"] == ["tachycardia"]
    devices = first.devices_in({0})
    taken_over = Pipeline(settings, scorer=None)
    taken_over.restore(0, {d: snapshots.encode(first.store, d) for d in devices})
    assert taken_over.store == first.store
    replay = ward(faults=False)
    for _ in range(30):
        replay.tick()  # committed before the takeover
    again = Feed(taken_over, replay)
    again.run(20)
    assert not [a for a in again.alerts if a.event == "triggered"]
    assert again.lines  # the replayed frames were processed, not dropped


def test_forgotten_devices_replayed_from_the_start_are_processed_not_dropped(settings):
    """A partition that moved away and came back: its frames are replayed from the commit,
    and nothing remembered here (order state, buffers) may drop them as duplicates."""
    pipeline = Pipeline(settings, scorer=None)
    feed = Feed(pipeline, ward(faults=False))
    feed.run(10)
    contexts = dict(pipeline.store.contexts)
    pipeline.forget(pipeline.devices_in({0}))
    # Enrolment contexts are reference data every worker follows: they stay.
    assert pipeline.store == StateStore(contexts=contexts) and len(contexts) == 2
    assert not pipeline.buffers and not pipeline.trackers
    replay = Feed(pipeline, ward(faults=False))
    replay.run(10)
    assert pipeline.ingest.duplicates == 0
    assert len(replay.lines) == len(feed.lines)


def test_a_worker_restored_from_snapshots_goes_on_with_the_same_beats(settings):
    """The ECG beat and PPG pulse detectors' state travels in the snapshots: a worker that
    takes over at the last commit decides exactly the beats and pulses the old owner
    would have."""
    # Every window's features written, so both workers' lines can be compared.
    settings = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"features_every_s": 1.0})}
    )
    first = Pipeline(settings, scorer=None)
    feed = Feed(first, ward(faults=True))
    feed.run(30)
    devices = first.devices_in({0})
    assert devices and all(first.store.detectors.get(d) for d in devices)
    assert all(first.store.pulse_detectors.get(d) for d in devices)
    taken_over = Pipeline(settings, scorer=None)
    taken_over.restore(0, {d: snapshots.encode(first.store, d) for d in devices})
    replay = ward(faults=True)
    for _ in range(30):
        replay.tick()  # committed before the takeover
    continued, again = Feed.__new__(Feed), Feed.__new__(Feed)
    for driver, pipeline, fleet in ((continued, first, feed.fleet), (again, taken_over, replay)):
        driver.pipeline, driver.fleet, driver.offset = pipeline, fleet, 1000
        driver.alerts, driver.lines, driver.deadletters = [], [], []
        driver.run(30)
    for device_id in devices:
        beats = first.ecg_beats.recent_beats(device_id)
        assert len(beats) > 20
        assert beats.tolist() == taken_over.ecg_beats.recent_beats(device_id).tolist()
        pulses = first.signal.pulses.recent_pulses(device_id)
        assert len(pulses) > 20
        assert pulses.tolist() == taken_over.signal.pulses.recent_pulses(device_id).tolist()

    # Raw samples and the vitals' trend history are not in the snapshots (the buffers
    # refill): once the windows hold only frames after the takeover, the rates and RR
    # features the beats make are the same.
    def beat_features(lines: list[str]) -> dict[tuple[str, int], list[str]]:
        refilled_ns = (START + 30 + settings.stream.window_s) * 1e9
        found = {}
        for line in lines:
            head, fields, at = line.rsplit(" ", 2)
            if head.startswith("features,") and int(at) >= refilled_ns:
                kept = [f for f in fields.split(",") if f.startswith(("ecg_hr", "rr_", "rmssd"))]
                found[head, int(at)] = kept
        return found

    before, after = beat_features(continued.lines), beat_features(again.lines)
    common = before.keys() & after.keys()
    assert len(common) >= 2 * 15, len(common)  # two devices, the last 20 s less a window
    assert {key: before[key] for key in common} == {key: after[key] for key in common}


def test_a_worker_restored_from_snapshots_goes_on_from_the_models_state(settings):
    """The streaming models' state (each GRU's hidden state and conv context, by
    model@version) travels in the snapshots like the beat detectors': the worker that
    takes over holds exactly what the old owner saved, and forgets it on a move away."""
    from stream.scoring.scorer import Scorer

    first = Pipeline(settings, Scorer.from_registry(settings))
    keys = first.scorer.state_keys()
    assert {k.split("@")[0] for k in keys} >= {"rhythm", "deterioration"}
    Feed(first, ward(faults=True)).run(30)
    devices = first.devices_in({0})
    assert devices and all(first.store.models.get(d) for d in devices)
    encoded = {d: snapshots.encode(first.store, d) for d in devices}
    taken_over = Pipeline(settings, Scorer.from_registry(settings))
    taken_over.restore(0, encoded)
    compared = 0
    for device_id in devices:
        for key in keys:
            before = first.scorer.states.get(device_id, key)
            after = taken_over.scorer.states.get(device_id, key)
            if before is None:
                continue
            compared += 1
            assert after is not None and after.t == before.t
            assert after.probabilities.tolist() == before.probabilities.tolist()
            for name, value in before.tensors.items():
                assert after.tensors[name].tolist() == value.tolist()
    assert compared >= len(devices)
    # Small: the models' part of a snapshot stays under a kilobyte a device.
    assert max(len(first.store.models[d]) for d in devices) < 1024
    taken_over.forget(devices)
    assert all(taken_over.scorer.states.get(d, k) is None for d in devices for k in keys)
    assert not any(d in taken_over.store.models for d in devices)


def _drive(pipeline: Pipeline, fleet, seconds: int, sent: list) -> tuple[list, list[str]]:
    """``seconds`` of ``fleet`` through ``pipeline`` as the worker runs it (a checkpoint
    after every batch); each second's records appended to ``sent``."""
    alerts, lines = [], []
    for _ in range(seconds):
        tick = fleet.tick()
        offset = sum(len(records) for _, records in sent)
        records = [
            RawRecord(d.encode(), p, 0, offset + i) for i, (d, p) in enumerate(tick.messages)
        ]
        sent.append((tick.t, records))
        out = pipeline.process(records, now=tick.t + 1)
        pipeline.save(out)
        pipeline.checkpoint()
        alerts += out.alerts
        lines += out.lines
    return alerts, lines


def _enrolled(settings, fleet) -> Pipeline:
    pipeline = Pipeline(settings, scorer=None)
    for device_id, payload in fleet.enrolments():
        pipeline.enrol(RawRecord(device_id.encode(), payload, 0, 0))
    return pipeline


@pytest.mark.parametrize("refilled", [True, False])
def test_a_worker_restored_and_refilled_raises_the_alerts_the_old_owner_would_have(
    settings, refilled
):
    """A takeover at any second around a tachycardia's onset (20 s into the event's ramp,
    raised at 27 s): the new owner restores the snapshots and refills the devices' ring
    buffers from the 15 s of frames before the commit (Pipeline.refill), then goes on
    from the commit. It raises the alerts an uninterrupted worker raises, same ids, onsets
    and times, and its first window comes a second after the takeover. Without the
    refill its rings start empty: no window for 10 s, and a tachycardia taken over
    between 16 and 25 s is raised 1 to 3 s late under another id."""
    length, margin = 45, settings.stream.replay_margin_s

    def key(alert):
        return (alert.kind, alert.event, alert.alert_id, alert.t_onset, alert.t_event)

    uninterrupted, _ = _drive(_enrolled(settings, ward(False)), ward(False), length, [])
    assert [a.kind for a in uninterrupted if a.event == "triggered"] == ["tachycardia"]
    differing = []
    for cut in range(12, 30, 2):
        sent: list = []
        first = _enrolled(settings, ward(False))
        before, _ = _drive(first, ward(False), cut, sent)
        devices = first.devices_in({0})
        taken_over = _enrolled(settings, ward(False))
        taken_over.restore(0, {d: snapshots.encode(first.store, d) for d in devices})
        if refilled:
            last = sent[-1][0]
            records = [r for t, batch in sent if t >= last - margin for r in batch]
            assert taken_over.refill(records, set(devices), last + 1) == len(records)
        fleet = ward(False)
        for _ in range(cut):
            fleet.tick()  # committed before the takeover
        after, lines = _drive(taken_over, fleet, length - cut, [])
        first_window = min(
            int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("quality,")
        )
        if [key(a) for a in before + after] != [key(a) for a in uninterrupted]:
            differing.append(cut)
        if refilled:
            assert first_window == (START + cut + 1) * 1e9, cut
        else:
            # (a window of the new ring's own clock, which its first frame set)
            wait = first_window / 1e9 - (START + cut)
            assert settings.stream.window_s - 0.02 < wait < settings.stream.window_s + 1, cut
    if refilled:
        assert differing == []
    else:  # the takeovers around the onset at least
        assert set(differing) >= {16, 18, 20, 22, 24}, differing


def test_a_tombstone_on_a_partition_being_loaded_leaves_the_device_where_it_is(settings):
    """A device that moved from partition 1 to partition 0 of this worker left a
    tombstone on 1. Loading partition 1 later neither wipes the device's state nor
    places it on 1."""
    pipeline = Pipeline(settings, scorer=None)
    feed = Feed(pipeline, ward(faults=False))
    feed.run(12)
    device = pipeline.devices_in({0})[0]
    kept = snapshots.encode(pipeline.store, device)
    pipeline.restore(1, {device: None})
    assert pipeline.partition_of(device) == 0 and pipeline.devices_in({1}) == []
    assert snapshots.encode(pipeline.store, device) == kept
