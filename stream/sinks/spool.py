"""The sink's durable local overflow: fsync'd segment files of batches InfluxDB cannot take.

While InfluxDB is unreachable past the retry budget, :class:`stream.sinks.influx.InfluxSink`
puts each batch here so the flush returns, Kafka offsets advance and alerts keep flowing;
its drain timer writes the segments back once InfluxDB answers. Only when the spool is full
(or disabled) does the awaiting agent stall.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class Spool:
    """Durable local overflow for batches InfluxDB cannot take now.

    Each batch becomes one segment file holding the exact request body, written under a
    temporary name, fsync'd and renamed, so a segment on disk is always whole. Segments are
    drained oldest first under an exclusive lock (workers on one host may share the
    directory) and deleted only after InfluxDB accepted them: a crash mid-drain writes a
    segment twice, which frame-time timestamps make harmless.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._sequence = 0

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.seg"))

    def size(self) -> int:
        """Bytes spooled. The drain deletes segments while others count them (another
        thread, or another worker sharing the directory): one gone meanwhile counts 0."""
        total = 0
        for segment in self.segments():
            with contextlib.suppress(FileNotFoundError):
                total += segment.stat().st_size
        return total

    def has_room(self, incoming: int) -> bool:
        return self.size() + incoming <= self.max_bytes

    def put(self, body: bytes, lines: int) -> Path:
        self._sequence += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._sequence:06d}-{lines}.seg"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.rename(final)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a power cut
        finally:
            os.close(directory)
        return final

    @contextlib.contextmanager
    def draining(self) -> Iterator[bool]:
        """Exclusive right to drain; yields False when another process holds it."""
        with open(self.directory / ".lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def lines_in(segment: Path) -> int:
        return int(segment.stem.rsplit("-", 1)[1])
