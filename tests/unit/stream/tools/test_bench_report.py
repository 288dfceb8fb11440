"""The benchmark report's inputs and I/O: profile summaries and the files it writes."""

from __future__ import annotations

import orjson
import pytest

from stream.tools.bench.report import profile_top, write_report


def test_profile_top_counts_self_and_inclusive_shares() -> None:
    collapsed = "\n".join(
        [
            "main (app.py:1);process (stream/pipeline.py:10);bandpass (stream/features.py:5) 6",
            "main (app.py:1);process (/srv/vs/stream/pipeline.py:10) 2",
            "main (app.py:1);poll (aiokafka/consumer.py:3) 2",
            "garbage line",
        ]
    )
    top = profile_top(collapsed)
    assert top["self"][0] == ("features.py:bandpass", pytest.approx(0.6))
    assert top["self"][2] == ("consumer.py:poll", pytest.approx(0.2))
    totals = dict(top["total"])
    assert "app.py:main" not in totals  # the entry point is on every sample
    assert "consumer.py:poll" not in totals  # library code: only self time
    assert totals["pipeline.py:process"] == pytest.approx(0.8)


def test_write_report_draws_where_the_cores_go(tmp_path, headroom_suite) -> None:
    (tmp_path / "headroom.json").write_bytes(orjson.dumps(headroom_suite))
    written = write_report(tmp_path, tmp_path / "benchmarks.md")
    assert tmp_path / "headroom_cpu.png" in written
    assert (tmp_path / "headroom_cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Headroom" in (tmp_path / "benchmarks.md").read_text()
