import json
import stat

from typer.testing import CliRunner

from stream.cli.main import app
from stream.subscriptions.tokens import TokenStore


def test_token_is_printed_once_and_stored_hashed(tmp_path, monkeypatch) -> None:
    tokens_file = tmp_path / "tokens.json"
    monkeypatch.setenv("VITALSTREAM_ALERTS_API__TOKENS_FILE", str(tokens_file))
    result = CliRunner().invoke(
        app,
        [
            "alerts",
            "token",
            "--ward",
            "A",
            "--ward",
            "B",
            "--ack",
            "--ttl",
            "2",
            "--subject",
            "nurse-1",
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("vs_")
    assert token not in tokens_file.read_text()
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    record = TokenStore(tokens_file).authenticate(token)
    assert (record.wards, record.can_ack, record.subject) == (["A", "B"], True, "nurse-1")
    assert 7100 < record.expires_at - record.created_at <= 7200

    listed = CliRunner().invoke(app, ["alerts", "tokens"])
    assert record.id in listed.stdout and token not in listed.stdout
    assert CliRunner().invoke(app, ["alerts", "revoke", record.id]).exit_code == 0
    assert json.loads(tokens_file.read_text()) == []


def test_ack_refuses_an_unknown_verdict_before_any_request() -> None:
    result = CliRunner().invoke(
        app, ["alerts", "ack", "a1", "--verdict", "false_alarm", "--token", "vs_x"]
    )
    assert result.exit_code == 2
    assert "not_actionable" in result.output  # the allowed verdicts are named


def test_ack_says_where_it_could_not_connect_and_never_prints_the_token(monkeypatch) -> None:
    secret = "vs_do-not-print-me"
    monkeypatch.setenv("VITALSTREAM_ALERTS_TOKEN", secret)
    result = CliRunner().invoke(
        app, ["alerts", "ack", "a1", "--verdict", "artefact", "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "cannot reach the alert service at http://127.0.0.1:9" in result.output
    assert secret not in result.output


def test_simulate_week_refuses_the_streams_own_bucket(monkeypatch) -> None:
    monkeypatch.setenv("VITALSTREAM_INFLUX__BUCKET", "ward-data")
    result = CliRunner().invoke(app, ["alerts", "simulate-week", "--bucket", "ward-data"])
    assert result.exit_code == 2
    assert "bucket of its own" in result.output


def test_report_refuses_a_window_that_means_nothing() -> None:
    for since, until in (("yesterday", "now"), ("-1h", "-2h")):
        result = CliRunner().invoke(app, ["alerts", "report", "--since", since, "--until", until])
        assert result.exit_code == 2, result.output
