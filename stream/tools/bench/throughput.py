"""Throughput suite: how many device-seconds the workers get through per CPU-second and per
wall-second.

Owns ``vitalstream bench throughput``. Unlike the e2e suite (a live fleet at one frame per
device per second, where the worker idles whenever it keeps up), the worker here is never
waiting for data: on fresh topics, bucket and consumer group (:func:`~.common.isolated`),

1. **preload** (:func:`preload`): the frames of ``devices`` simulated wearables for
   ``seconds`` seconds (:class:`~producers.fleet.Fleet`, the default scenario, network
   faults off) are rendered and produced to the frames topic before any worker runs,
   after the devices' enrolments, as ``vitalstream simulate`` sends them (kafka-python,
   keyed by device id, or by gateway with ``per_message`` > 1: below). They are dated
   in the past (first frame ``seconds + PRELOAD_MARGIN_S`` before now), so the worker
   meets them as a backlog: its windows and silence clocks follow the frames' own
   times. The topic's end offsets are recorded;
2. **drain**: ``workers`` ``vitalstream worker`` processes (one consumer group, each its
   own process, started at once as the e2e suite starts them:
   :func:`~.common.start_workers`) consume the backlog. Every ``SAMPLE_S`` the group's
   committed offsets per partition and the CPU time and RSS of each worker, Kafka and
   influxd are sampled, until every partition's committed offset reaches its end offset.
   A worker commits a record only once its output is durable
   (:mod:`stream.worker.delivery`), so the last commit means every frame's output is in
   InfluxDB or the sink's spool. No progress by the timeout, or a worker that exits, is an
   error that says how far the group got. Then the workers are stopped;
3. **report** (:func:`summarize`): device-seconds (``devices x seconds``, one frame each)
   per worker CPU-second (the workers' CPU summed), per wall-second of the drain (what
   scale-out buys: two workers on enough partitions carry more per second than one), and
   Kafka's and influxd's CPU per device-second.

Several worker counts (``workers=(1, 2)``) are measured one after the other, each on its
own fresh topics with the same backlog (same devices, seconds, scenario and seed): one
result each. The frames topic gets ``partitions`` partitions (default: the configured
``kafka.partitions``); a worker beyond the partition count gets none and idles.

What is measured, and what is not: before the worker starts, the suite runs the stream
core in memory on a few devices (:func:`prime_kernels`), which leaves the compiled signal
kernels in numba's on-disk cache; the worker loads them from there instead of compiling
them while it drains (compiling is start-up, not throughput: on a fresh checkout it took
tens of CPU-seconds after ``Ready``). Then the worker's CPU from Faust's ``Ready``
(imports, model loading, topic checks and joining the group are done; no frame has been
fetched: the committed offsets there are recorded as ``committed_at_ready`` and are 0) to
the sample at which the last offset is committed (:func:`delimit`). The start-up before
it is reported apart (``startup_cpu_s``). The end overshoots the last commit by less than
one ``SAMPLE_S`` of an idle worker. With several workers the span starts at the first
worker's ``Ready`` (so every frame is processed within it) and each worker's CPU is counted
from its own ``Ready`` (:func:`start_mark`): the others' start-up is not throughput, but
the wall time until the last is ready (``ready_spread_s``, a second or two) is in the span,
and the group rebalances as each joins. Kafka's and influxd's CPU is taken over the same span; they
are shared with whatever else runs on the machine, which ``load_avg_1m`` qualifies; a
service restarted during the drain (tests that stop the shared broker or influxd) is named
in ``services_restarted``, and such a run's figures are not to be used.

``per_message`` > 1 preloads gateway batches: consecutive devices share a gateway,
``per_message`` each, and each gateway's frames of a period go as one message keyed by
the gateway id, as ``vitalstream simulate --per-message`` sends them
(:mod:`producers.gateways`). ``frames`` still counts device-seconds; ``messages`` (and the
offsets to commit) are fewer.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.progress import Progress

from producers.gateways import check_per_message
from stream.config import Settings
from stream.tools.bench.common import (
    WorkerProcess,
    child_env,
    discard,
    isolated,
    prepare,
    start_workers,
    stop_workers,
    wait_all_ready,
    with_partitions,
    worker_name,
)
from stream.tools.bench.sampling import OffsetProbe, Processes, service_processes

SCENARIO = "default"
SEED = 1
# The first frame is this much older than ``seconds`` before now: the preload itself takes
# a few seconds, and no frame may be ahead of the clock when the worker reads it.
PRELOAD_MARGIN_S = 30.0
SAMPLE_S = 1.0
READY_POLL_S = 0.05  # the start mark's resolution (see delimit)
# The drain fails when the committed offsets have not moved for this long.
STALL_TIMEOUT_S = 120.0
# The in-memory pass that fills numba's cache: enough seconds to fill the 10 s windows, so
# every kernel the worker will call has run once.
PRIME_DEVICES = 5
PRIME_SECONDS = 12
WORKER = worker_name(0)  # the first (or only) worker


# -- measuring marks and the summary (pure) --------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A moment of the drain: wall time, the committed frames offsets (summed over the
    partitions) and the watched processes' CPU seconds (user + system) and RSS (MiB)."""

    t: float
    committed: int
    cpu_s: Mapping[str, float]
    rss_mib: Mapping[str, float] = field(default_factory=dict)


def start_mark(readies: Sequence[tuple[str, Mark]]) -> Mark:
    """The drain's start from each worker's ``Ready`` mark (``(name, mark)``, in the order
    they became ready): the first one's time, committed offsets and services' CPU, and each
    worker's CPU at its own ``Ready`` (what it spent before is start-up).

    >>> a = Mark(10.0, 0, {"worker": 4.0, "worker-2": 3.0, "kafka": 1.0})
    >>> b = Mark(11.5, 40, {"worker": 5.0, "worker-2": 4.2, "kafka": 1.3})
    >>> m = start_mark([("worker", a), ("worker-2", b)])
    >>> m.t, m.committed, m.cpu_s
    (10.0, 0, {'worker': 4.0, 'worker-2': 4.2, 'kafka': 1.0})
    """
    if not readies:
        raise ValueError("no worker became ready")
    first = readies[0][1]
    cpu = dict(first.cpu_s)
    for name, mark in readies:
        if name in mark.cpu_s:
            cpu[name] = mark.cpu_s[name]
    return Mark(first.t, first.committed, cpu, dict(first.rss_mib))


def delimit(ready: Mark, samples: Sequence[Mark], total: int) -> tuple[Mark, Mark]:
    """The measured span: from ``ready`` (the worker's ``Ready``, before any frame is
    fetched) to the first sample at which all ``total`` offsets are committed.

    >>> ready = Mark(0.0, 0, {"worker": 5.0})
    >>> marks = [Mark(1.0, 40, {"worker": 6.0}), Mark(2.0, 100, {"worker": 7.0}),
    ...          Mark(3.0, 100, {"worker": 7.1})]
    >>> [m.t for m in delimit(ready, marks, 100)]
    [0.0, 2.0]
    """
    done = next((s for s in samples if s.t >= ready.t and s.committed >= total), None)
    if done is None:
        raise ValueError(f"no sample has all {total} offsets committed")
    return ready, done


def steady_rate(
    start: Mark, end: Mark, samples: Sequence[Mark], device_seconds: float, messages: int
) -> tuple[float | None, float | None]:
    """``(first_commit_after_s, steady_device_seconds_per_wall_s)``: when, after the span's
    start, the first sample saw any offset committed, and the drain rate from that sample to
    ``end`` (its committed offsets' share of the device-seconds over the wall time between).
    The time before the first commit is the workers' warm-up on their partitions (device
    snapshots read partition by partition, the group rebalancing as workers join), which the
    span's ``device_seconds_per_wall_s`` includes and this rate leaves out; ``None`` when no
    sample before ``end`` had a commit (a drain too short to tell).

    >>> marks = [Mark(t, c, {}) for t, c in ((1.0, 0), (8.0, 0), (9.0, 400), (13.0, 1000))]
    >>> steady_rate(Mark(0.0, 0, {}), marks[-1], marks, 2000, 1000)
    (9.0, 300.0)
    """
    first = next((m for m in samples if m.committed > 0 and start.t <= m.t < end.t), None)
    if first is None or messages <= 0:
        return None, None
    share = (end.committed - first.committed) / messages
    return round(first.t - start.t, 2), round(device_seconds * share / (end.t - first.t), 1)


def _cpu_between(start: Mark, end: Mark, name: str) -> float | None:
    if name not in start.cpu_s or name not in end.cpu_s:
        return None
    return end.cpu_s[name] - start.cpu_s[name]


def _per_device_second_us(cpu_s: float | None, device_seconds: float) -> float | None:
    return None if cpu_s is None else round(1e6 * cpu_s / device_seconds, 1)


def workers_cpu_s(start: Mark, end: Mark, workers: int) -> dict[str, float]:
    """Each of the ``workers`` workers' CPU seconds over the span; an error when one was
    not sampled at either end (it exited: its share of the work is unknown)."""
    found = {}
    for name in (worker_name(i) for i in range(workers)):
        cpu = _cpu_between(start, end, name)
        if cpu is None:
            raise ValueError(f"{name} was not sampled over the measured span")
        found[name] = cpu
    return found


def summarize(
    devices: int,
    seconds: float,
    per_message: int,
    start: Mark,
    end: Mark,
    *,
    frames: int,
    messages: int,
    peak_rss_mib: Mapping[str, float],
    startup_cpu_s: float,
    workers: int = 1,
) -> dict[str, Any]:
    """One run's figures over the span ``start``..``end`` (see :func:`delimit`).

    ``device_seconds`` is ``devices x seconds`` (a frame is a device's second);
    ``device_seconds_per_cpu_s`` is that over the ``workers`` workers' CPU seconds in the
    span, summed (``worker_cpu_s``; each in ``workers_cpu_s``), and
    ``us_per_device_second`` its inverse in µs; ``device_seconds_per_wall_s`` is it over
    the span's wall time (the drain rate: more workers on enough partitions raise it).
    Kafka's and influxd's CPU, when watched, come per device-second too.

    >>> s = summarize(10, 6, 1, Mark(0.0, 0, {"worker": 1.0, "kafka": 0.0}),
    ...               Mark(4.0, 60, {"worker": 3.0, "kafka": 0.3}), frames=60, messages=60,
    ...               peak_rss_mib={"worker": 300.0}, startup_cpu_s=1.0)
    >>> s["device_seconds"], s["worker_cpu_s"], s["device_seconds_per_cpu_s"]
    (60, 2.0, 30.0)
    >>> s["us_per_device_second"], s["kafka_us_per_device_second"], s["influxd_cpu_s"]
    (33333.3, 5000.0, None)
    >>> s["device_seconds_per_wall_s"], s["workers_cpu_s"]
    (15.0, {'worker': 2.0})
    """
    device_seconds = devices * seconds
    if device_seconds <= 0:
        raise ValueError("nothing was preloaded")
    each = workers_cpu_s(start, end, workers)
    worker_cpu = sum(each.values())
    if worker_cpu <= 0:
        raise ValueError("the workers used no CPU in the measured span")
    wall = end.t - start.t
    kafka_cpu = _cpu_between(start, end, "kafka")
    influxd_cpu = _cpu_between(start, end, "influxd")
    return {
        "devices": devices,
        "seconds": seconds,
        "per_message": per_message,
        "workers": workers,
        "device_seconds": device_seconds,
        "frames": frames,
        "messages": messages,
        "offsets_committed": end.committed,
        "worker_cpu_s": round(worker_cpu, 3),
        "workers_cpu_s": {name: round(cpu, 3) for name, cpu in each.items()},
        "device_seconds_per_cpu_s": round(device_seconds / worker_cpu, 2),
        "us_per_device_second": round(1e6 * worker_cpu / device_seconds, 1),
        "wall_s": round(wall, 2),
        "device_seconds_per_wall_s": round(device_seconds / wall, 1) if wall > 0 else None,
        # Cores the workers got while draining, in % of one (summed: up to 100 x workers):
        # below that they were waiting (on Kafka, InfluxDB, or other jobs taking the CPU).
        "worker_cpu_percent": round(100 * worker_cpu / wall, 1) if wall > 0 else None,
        "kafka_cpu_s": None if kafka_cpu is None else round(kafka_cpu, 3),
        "kafka_us_per_device_second": _per_device_second_us(kafka_cpu, device_seconds),
        "influxd_cpu_s": None if influxd_cpu is None else round(influxd_cpu, 3),
        "influxd_us_per_device_second": _per_device_second_us(influxd_cpu, device_seconds),
        "startup_cpu_s": round(startup_cpu_s, 3),
        # The largest worker's: each is a process of its own, sized alike.
        "worker_peak_rss_mib": round(max(peak_rss_mib.get(n, 0.0) for n in each), 1),
        "peak_rss_mib": {name: round(value, 1) for name, value in peak_rss_mib.items()},
    }


# -- preload (Kafka) ---------------------------------------------------------------------------


@dataclass
class Preloaded:
    """What :func:`preload` put on the frames topic."""

    frames: int
    messages: int
    samples: int
    bytes: int
    start: float  # the first frame's time (epoch)
    end_offsets: dict[int, int]  # frames partition -> end offset
    seconds: float  # wall time the preload took


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Each partition's end offset (the next offset to be written)."""
    from kafka import KafkaConsumer, TopicPartition

    from stream.kafka import client_options

    consumer = KafkaConsumer(**client_options(settings.kafka))
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}


def preload(
    settings: Settings,
    devices: int,
    seconds: int,
    per_message: int = 1,
    on_period: Any = None,
) -> Preloaded:
    """Enrol ``devices`` and produce their ``seconds`` of frames, dated in the past;
    ``on_period()`` is called after each frame period (progress)."""
    from producers.fleet import Fleet
    from producers.gateways import gateways_for, messages_of
    from producers.publisher import Publisher
    from producers.scenario import load_scenario

    began = time.perf_counter()
    first = time.time() - seconds - PRELOAD_MARGIN_S
    fleet = Fleet(load_scenario(SCENARIO), devices, seed=SEED, start=first, faults=False)
    gateways = gateways_for(fleet.device_ids, per_message)
    frames = messages = samples = size = 0
    with Publisher(settings, client_id="vitalstream-bench-throughput") as publisher:
        for device_id, payload in fleet.enrolments():
            publisher.send(settings.topics.enrolments, device_id, payload)
        for _ in range(seconds):
            tick = fleet.tick()
            for key, value in messages_of(tick.messages, gateways):
                publisher.send(settings.topics.frames, key, value)
                messages += 1
                size += len(value)
            frames += tick.frames
            samples += tick.samples
            if on_period is not None:
                on_period()
        publisher.flush()
        if publisher.errors:
            raise RuntimeError(
                f"preload: {publisher.errors} messages not delivered ({publisher.last_error})"
            )
    ends = _end_offsets(settings, settings.topics.frames)
    if sum(ends.values()) != messages:
        raise RuntimeError(f"preload: {messages} messages sent, topic ends at {ends}")
    return Preloaded(frames, messages, samples, size, first, ends, time.perf_counter() - began)


def prime_kernels() -> float:
    """Run the stream core in memory on :data:`PRIME_DEVICES` devices (the analysis
    suite's :func:`~stream.tools.bench.analysis.measure`), so numba's on-disk cache holds
    every kernel before the worker starts; the seconds it took."""
    from stream.tools.bench.analysis import measure

    began = time.perf_counter()
    measure(PRIME_DEVICES, 1, PRIME_SECONDS)
    return time.perf_counter() - began


# -- the drain (a worker process) -------------------------------------------------------------


class PartitionProbe(OffsetProbe):
    """The group's committed offset on each partition of the frames topic."""

    def committed_by_partition(self) -> dict[int, int]:
        committed = self._committed()
        return {
            tp.partition: max(committed[tp].offset, 0) if tp in committed else 0
            for tp in self.partitions
        }


def _mark(probe: PartitionProbe, watched: Processes) -> tuple[Mark, dict[int, int]]:
    by_partition = probe.committed_by_partition()
    cpu, rss = watched.cpu_and_rss()
    return Mark(time.time(), sum(by_partition.values()), cpu, rss), by_partition


def _reopened(probe: PartitionProbe, settings: Settings) -> PartitionProbe:
    """A fresh probe after a broker hiccup, or the old one while the broker is still away."""
    with contextlib.suppress(Exception):
        probe.close()
    try:
        return PartitionProbe(settings)
    except Exception:
        return probe


def _progress_text(ends: Mapping[int, int], committed: Mapping[int, int]) -> str:
    """``partition committed/end`` for each partition, for errors."""
    return ", ".join(f"p{p} {committed.get(p, 0)}/{end}" for p, end in sorted(ends.items()))


def _peak_rss_mib(proc: psutil.Process) -> float | None:
    """The kernel's high-water mark of the process's RSS (``VmHWM``), in MiB."""
    with contextlib.suppress(OSError, psutil.Error):
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def restarted_services(
    watched: Mapping[str, psutil.Process], now: Mapping[str, psutil.Process]
) -> list[str]:
    """The services watched since the start that are gone or run as another process now
    (a restart mid-drain: their CPU figures stop short, and the drain waited on them)."""
    return sorted(
        name for name, proc in watched.items() if name not in now or now[name].pid != proc.pid
    )


@dataclass
class Drained:
    ready: Mark  # the span's start (start_mark of readies)
    readies: list[tuple[str, Mark]]  # each worker's Ready, in the order they came
    samples: list[Mark]
    startup_cpu_s: float  # the workers' CPU before their Ready, summed
    peak_rss_mib: dict[str, float]
    launched_at: float
    services_restarted: list[str]


def _stopped_early(started: Sequence[WorkerProcess]) -> WorkerProcess | None:
    return next((w for w in started if w.proc.poll() is not None), None)


def drain(
    settings: Settings,
    loaded: Preloaded,
    workdir: Path,
    progress: Progress | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    workers: int = 1,
) -> Drained:
    """Start ``workers`` workers (one group) on the preloaded topic and sample until they
    have committed every offset; always stops them."""
    total = sum(loaded.end_offsets.values())
    task = progress.add_task(f"{workers} worker(s) draining", total=total) if progress else None
    probe = PartitionProbe(settings)
    services = service_processes(settings)
    watched = Processes(dict(services))
    samples: list[Mark] = []
    readies: list[tuple[str, Mark]] = []
    started: list[WorkerProcess] = []

    def on_ready(worker: WorkerProcess) -> None:
        readies.append((worker.name, _mark(probe, watched)[0]))

    try:
        launched_at = time.time()
        started = start_workers(child_env(settings), workdir, workers)
        # Watched from launch: each one's CPU at its Ready is its start-up.
        watched.procs |= {w.name: psutil.Process(w.proc.pid) for w in started}
        wait_all_ready(started, on_ready, poll_s=READY_POLL_S)
        ready = start_mark(readies)
        moved_at, last = time.monotonic(), readies[-1][1].committed
        while True:
            time.sleep(SAMPLE_S)
            try:
                mark, committed = _mark(probe, watched)
            except Exception:  # the broker did not answer: this sample is lost, not the run
                probe = _reopened(probe, settings)
                continue
            samples.append(mark)
            if task is not None and progress is not None:
                progress.update(task, completed=mark.committed)
            if all(committed.get(p, 0) >= end for p, end in loaded.end_offsets.items()):
                break
            if mark.committed != last:
                moved_at, last = time.monotonic(), mark.committed
            gone = _stopped_early(started)
            if gone is not None or time.monotonic() - moved_at > stall_timeout_s:
                why = f"{gone.name} exited" if gone else f"stalled {stall_timeout_s:g} s"
                tail = (gone or started[0]).log_tail()
                raise RuntimeError(
                    f"drain {why} after committing {mark.committed}/{total} offsets "
                    f"({_progress_text(loaded.end_offsets, committed)}):\n{tail}"
                )
        restarted = restarted_services(services, service_processes(settings))
        peak = dict(watched.peak_rss)
        for w in started:
            exact = _peak_rss_mib(watched.procs[w.name])
            if exact is not None:
                peak[w.name] = exact
    finally:
        stop_workers(started)
        probe.close()
    startup = sum(mark.cpu_s.get(name, 0.0) for name, mark in readies)
    return Drained(ready, readies, samples, startup, peak, launched_at, restarted)


# -- the suite ---------------------------------------------------------------------------


def _published(settings: Settings) -> dict[str, int | None]:
    """Messages the worker published: dead letters are frames it could not read (None when
    the broker does not answer: the figures stand without them)."""
    outputs = {"deadletters": settings.topics.deadletter, "alerts": settings.topics.alerts}
    try:
        return {name: sum(_end_offsets(settings, t).values()) for name, t in outputs.items()}
    except Exception:
        return dict.fromkeys(outputs)


def one_run(
    settings: Settings,
    devices: int,
    seconds: int,
    per_message: int = 1,
    isolate: bool = True,
    progress: Progress | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    workers: int = 1,
    partitions: int | None = None,
) -> dict[str, Any]:
    """Preload, drain with ``workers`` workers, summarize; always drops (``isolate``) its
    topics and bucket, which get ``partitions`` partitions (default: the configured count).
    Without ``isolate`` it runs on ``settings``' own topics, group and bucket, which the
    caller created (tests), with the partitions they have."""
    check_per_message(per_message)  # before anything is created
    if workers < 1:
        raise ValueError("the drain needs at least one worker")
    run = isolated(settings, f"throughput{devices}w{workers}") if isolate else settings
    run = with_partitions(run, partitions) if isolate else run
    try:
        if isolate:
            prepare(run)
        primed_s = prime_kernels()  # first: the frames' age when the worker meets them is less
        task = progress.add_task("preload", total=seconds) if progress else None
        advance = (lambda: progress.advance(task)) if progress and task is not None else None
        loaded = preload(run, devices, seconds, per_message, on_period=advance)
        with tempfile.TemporaryDirectory(prefix="vitalstream-throughput-") as tmp:
            drained = drain(run, loaded, Path(tmp), progress, stall_timeout_s, workers)
        published = _published(run)
    finally:
        if isolate:
            discard(run)
    start, end = delimit(drained.ready, drained.samples, loaded.messages)
    figures = summarize(
        devices, seconds, per_message, start, end,
        frames=loaded.frames, messages=loaded.messages, peak_rss_mib=drained.peak_rss_mib,
        startup_cpu_s=drained.startup_cpu_s, workers=workers,
    )  # fmt: skip
    names = [worker_name(i) for i in range(workers)]
    last_ready = drained.readies[-1][1]
    first_commit_s, steady = steady_rate(
        start, end, drained.samples, figures["device_seconds"], loaded.messages
    )
    return figures | {
        "first_commit_after_s": first_commit_s,
        "steady_device_seconds_per_wall_s": steady,
        # Not empty: Kafka or influxd restarted during the drain; the figures are suspect.
        "services_restarted": drained.services_restarted,
        "partitions": len(loaded.end_offsets),
        "committed_at_ready": drained.ready.committed,
        # With several workers: the group's progress when the last one became Ready.
        "committed_at_all_ready": last_ready.committed,
        **published,
        "samples_per_frame": round(loaded.samples / max(loaded.frames, 1), 1),
        "preload_mib": round(loaded.bytes / 2**20, 1),
        "preload_s": round(loaded.seconds, 2),
        "kernels_primed_s": round(primed_s, 2),
        "frames_dated_from": loaded.start,
        "end_offsets": {str(p): offset for p, offset in sorted(loaded.end_offsets.items())},
        "ready_after_s": round(drained.ready.t - drained.launched_at, 2),
        "ready_spread_s": round(last_ready.t - drained.ready.t, 2),
        "workers_ready_after_s": {
            name: round(mark.t - drained.launched_at, 2) for name, mark in drained.readies
        },
        "workers_startup_cpu_s": {
            name: round(mark.cpu_s.get(name, 0.0), 3) for name, mark in drained.readies
        },
        # [s since the start, offsets committed, the workers' CPU seconds summed]
        "committed_series": [
            [
                round(m.t - start.t, 1),
                m.committed,
                round(sum(m.cpu_s.get(n, 0.0) for n in names), 2),
            ]
            for m in drained.samples
        ],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


SUMMARY_KEYS = (
    "devices", "seconds", "per_message", "device_seconds", "device_seconds_per_cpu_s",
    "us_per_device_second", "worker_cpu_s", "wall_s", "worker_cpu_percent",
    "kafka_cpu_s", "kafka_us_per_device_second", "influxd_cpu_s",
    "influxd_us_per_device_second", "worker_peak_rss_mib", "startup_cpu_s",
    "services_restarted", "workers", "partitions", "device_seconds_per_wall_s",
    "workers_cpu_s", "ready_spread_s", "first_commit_after_s",
    "steady_device_seconds_per_wall_s",
)  # fmt: skip


def sweep_summary(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The first result's :data:`SUMMARY_KEYS` (the smallest worker count: one worker by
    default, as before there was a choice), each worker count's under ``by_workers``, and
    ``wall_speedup``: each count's ``device_seconds_per_wall_s`` over the first's (2 workers
    carry more than one when theirs is above 1); ``steady_wall_speedup`` the same from the
    first commit on (:func:`steady_rate`).

    >>> rows = [{k: 0 for k in SUMMARY_KEYS} | {"workers": n, "device_seconds_per_wall_s": r}
    ...         for n, r in ((1, 50.0), (2, 80.0))]
    >>> s = sweep_summary(rows)
    >>> s["workers"], s["wall_speedup"], s["by_workers"]["2"]["device_seconds_per_wall_s"]
    (1, {'1': 1.0, '2': 1.6}, 80.0)
    """
    if not results:
        raise ValueError("no run to summarize")
    by_workers = {str(r["workers"]): {key: r[key] for key in SUMMARY_KEYS} for r in results}
    return {key: results[0][key] for key in SUMMARY_KEYS} | {
        "by_workers": by_workers,
        "wall_speedup": _speedup(results, "device_seconds_per_wall_s"),
        "steady_wall_speedup": _speedup(results, "steady_device_seconds_per_wall_s"),
    }


def _speedup(results: Sequence[Mapping[str, Any]], key: str) -> dict[str, float | None]:
    """Each result's ``key`` over the first's (``None`` where either is missing)."""
    base = results[0].get(key)
    return {
        str(r["workers"]): round(r[key] / base, 2) if base and r.get(key) is not None else None
        for r in results
    }


def run(
    settings: Settings,
    devices: int = 200,
    seconds: int = 60,
    per_message: int = 1,
    isolate: bool = True,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    workers: Sequence[int] = (1,),
    partitions: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One preload-and-drain per worker count (in the order given, each on fresh topics
    with the same backlog); ``(results, summary)`` (:func:`sweep_summary`)."""
    results = []
    with Progress() as progress:
        for count in workers:
            measured = one_run(
                settings, devices, seconds, per_message, isolate, progress, stall_timeout_s,
                workers=count, partitions=partitions,
            )  # fmt: skip
            results.append(measured)
    return results, sweep_summary(results)
