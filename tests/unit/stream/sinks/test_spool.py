"""Disk spool: segment accounting while another drain deletes segments."""

from __future__ import annotations

from stream.sinks.spool import Spool


def test_spool_size_counts_a_segment_drained_meanwhile_as_nothing(tmp_path, monkeypatch):
    spool = Spool(tmp_path, max_bytes=1_000)
    kept, drained = spool.put(b"x" * 10, 1), spool.put(b"y" * 20, 1)
    listed = spool.segments()
    drained.unlink()  # the drain deletes it between the listing and the stat
    monkeypatch.setattr(spool, "segments", lambda: listed)
    assert spool.size() == 10 and kept.exists()
    assert spool.has_room(990) and not spool.has_room(991)
