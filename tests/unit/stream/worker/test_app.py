"""The Faust app: its agents, timers and tables are registered, and nothing serves patient state."""

from __future__ import annotations

import pytest
from faust.types import TP

from stream.config import load_settings
from stream.worker.app import Worker, create_app


@pytest.fixture(scope="module")
def settings():
    return load_settings(pseudonym_key="app-test-key")


def test_the_worker_app_serves_no_table_views(settings, tmp_path):
    app, worker = create_app(settings, scorer=None, datadir=tmp_path)
    # Faust's web server (and with it the /table views that would serve patient state)
    # is off; metrics go through prometheus-client on loopback instead.
    assert app.conf.web_enabled is False
    assert app.conf.web_tables_enabled is False
    # No Faust tables: per-device state is snapshotted to a compacted topic instead, so
    # a worker taking over partitions never waits in Faust's table recovery.
    assert set(app.tables) == set()
    assert worker.pipeline.buffers == {}  # raw samples live in local rings


def test_the_agents_keep_their_names_and_the_timers_are_registered(settings, tmp_path):
    app, worker = create_app(settings, scorer=None, datadir=tmp_path)
    assert isinstance(worker, Worker)
    agents = {agent.name for agent in app.agents.values()}
    assert agents == {"process_frames", "track_enrolments"}
    topics = {next(iter(agent.channel.topics)) for agent in app.agents.values()}
    assert topics == {settings.topics.frames, settings.topics.enrolments}
    # follow_rollouts, serve_metrics and the three timers (devices, spool, metrics)
    assert len(app._app_tasks) == 5


async def test_the_consumer_commits_what_the_ledger_says_and_forgets_partitions_it_lost(
    settings, tmp_path
):
    app, worker = create_app(settings, scorer=None, datadir=tmp_path)
    tp = TP(settings.topics.frames, 2)
    worker.ledger.taken([(tp.topic, tp.partition, 40), (tp.topic, tp.partition, 41)])
    worker.ledger.durable([(tp.topic, tp.partition, 41)])
    assert app.consumer._new_offset(tp) == 40
    await app.on_partitions_revoked.send({tp})
    assert app.consumer._new_offset(tp) == 40  # kept, unless another worker now owns it
    await app.on_partitions_assigned.send({TP(settings.topics.frames, 0)})
    assert app.consumer._new_offset(tp) is None
